//! The bot chat: a `t.me/<bot>?start=<payload>` link opens the bot, Telegram sends us
//! `/start <payload>` with the user's profile, the bot asks "Log in to <app>?" and only the
//! right answer, pressed by the user who sent `/start`, proves the identity
//! (`telegram::deeplink::identity_of`). A browser login is then collected by the waiting
//! browser and passes the gate there; a device code is approved right here, through the gate.
//!
//! Against remote phishing (RFC 8628 §5.4: an attacker starts a login and sends the victim the
//! link), the question names the app and its domain, what asked (the browser, or the device's
//! user code) and when; and the waiting page or device shows a two-digit number, which the user
//! must pick among three in the chat (number matching). A wrong number denies the attempt, and
//! "This wasn't me" ends it; either is recorded with the login (`answer`) and logged.

use crate::flow::device::{self, Decided};
use crate::flow::login::{self, Refused};
use crate::secrets::{new_id, token_hash};
use crate::state::App;
use crate::store::flows::{BotLoginRecord, BotLoginStatus, DeviceApproval};
use crate::store::{ClientRecord, StoreError};
use crate::telegram::TelegramIdentity;
use serde::{Deserialize, Serialize};

use crate::telegram::bot::{BotApi, BotApiError, CallbackQuery, InlineButton, Message, Update};
use crate::telegram::deeplink::{
    COLLECT_SECS, identity_of, is_valid_payload, link, new_match_code, new_payload, offered_numbers,
};

/// Approve without a number: only for logins stored before number matching.
const APPROVE: &str = "a:";
/// A number pressed: `n:<id>:<number>`.
const NUMBER: &str = "n:";
const DENY: &str = "d:";
const NOT_ME: &str = "x:";
const GONE_APP: &str = "an app that is no longer registered";

/// What a deep-link login confirms.
pub enum Purpose {
    /// A browser's pending authorization, collected only by the browser holding the binding.
    Browser {
        pending_hash: Vec<u8>,
        browser_hash: Vec<u8>,
    },
    /// A device code (RFC 8628), approved right in the chat.
    Device { device_hash: Vec<u8> },
}

/// What asked for a login, named in the approval message so that the user can tell their own
/// attempt from someone else's.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Requester {
    /// A summary of the browser ("Firefox on Linux"), from fixed words only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<String>,
    /// A device's user code (RFC 8628), as the device shows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_code: Option<String>,
    /// Where the app lives: the host of the redirect URI the login returns to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_domain: Option<String>,
}

/// A stored deep-link login: the public id, the link to show, and the number the user must
/// press in the chat.
pub struct NewBotLogin {
    pub id: String,
    pub link: String,
    pub match_code: i64,
}

pub async fn create(
    app: &App,
    client_id: &str,
    purpose: Purpose,
    requester: &Requester,
    expires_at: i64,
) -> Result<NewBotLogin, StoreError> {
    let payload = new_payload();
    let id = new_id();
    let match_code = new_match_code();
    let requester = serde_json::to_string(requester)
        .map_err(|e| StoreError::Internal(format!("requester: {e}")))?;
    let (pending_hash, browser_hash, device_hash) = match purpose {
        Purpose::Browser {
            pending_hash,
            browser_hash,
        } => (Some(pending_hash), Some(browser_hash), None),
        Purpose::Device { device_hash } => (None, None, Some(device_hash)),
    };
    app.store
        .create_bot_login(&BotLoginRecord {
            id: id.clone(),
            payload_hash: token_hash(&payload),
            client_id: client_id.to_owned(),
            pending_hash,
            browser_hash,
            device_hash,
            status: BotLoginStatus::Pending,
            telegram_id: None,
            identity: None,
            created_at: app.now(),
            expires_at,
            match_code: Some(match_code),
            requester: Some(requester),
            answer: None,
        })
        .await?;
    Ok(NewBotLogin {
        link: link(&app.config.telegram.bot_username, &payload),
        id,
        match_code,
    })
}

/// Why an update could not be handled. A store failure is worth a redelivery (the webhook
/// answers 503); a Bot API failure is only logged, since the state change already happened.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Bot(#[from] BotApiError),
}

/// What the bot does with one update; shared by the webhook and the poller.
pub async fn handle_update(app: &App, bot: &BotApi, update: &Update) -> Result<(), HandleError> {
    if let Some(message) = &update.message {
        return on_message(app, bot, message).await;
    }
    if let Some(query) = &update.callback_query {
        return on_button(app, bot, query).await;
    }
    Ok(())
}

const EXPIRED: &str = "This login link has expired or was already used. Go back to the page you came from and start again.";

async fn on_message(app: &App, bot: &BotApi, message: &Message) -> Result<(), HandleError> {
    let Some(from) = &message.from else {
        return Ok(());
    };
    if message.chat.kind != "private" || from.is_bot {
        return Ok(());
    }
    let text = message.text.as_deref().unwrap_or("").trim();
    let Some(rest) = text.strip_prefix("/start") else {
        return Ok(());
    };
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return Ok(());
    }
    let payload = rest.trim();
    if payload.is_empty() {
        bot.send_message(
            message.chat.id,
            "This bot confirms logins. Start signing in on the website or device, choose to log in through Telegram, and open the link it shows.",
            &[],
        )
        .await?;
        return Ok(());
    }
    let now = app.now();
    let started = if is_valid_payload(payload) {
        app.store
            .start_bot_login(&token_hash(payload), from.id, now)
            .await?
    } else {
        None
    };
    let Some(login) = started else {
        bot.send_message(message.chat.id, EXPIRED, &[]).await?;
        return Ok(());
    };
    let app_name = client_name(app, &login.client_id).await?;
    let who = match &from.username {
        Some(username) => format!("{} (@{username})", from.first_name),
        None => from.first_name.clone(),
    };
    let (question, buttons) = approval_message(&login, &app_name, &who);
    bot.send_message(message.chat.id, &question, &buttons)
        .await?;
    Ok(())
}

/// `2026-12-07 14:05 UTC`.
fn utc_minute(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// The question and its buttons: the app and its domain, what asked and when; three numbers to
/// pick from (the one on the waiting page or device among them), Deny, and "This wasn't me".
fn approval_message(
    login: &BotLoginRecord,
    app_name: &str,
    who: &str,
) -> (String, Vec<Vec<InlineButton>>) {
    let requester: Requester = login
        .requester
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    let app = match &requester.app_domain {
        Some(domain) => format!("{app_name} ({domain})"),
        None => app_name.to_owned(),
    };
    let device = login.device_hash.is_some();
    let mut text = if device {
        format!("Sign in to {app} on your device as {who}?\n")
    } else {
        format!("Log in to {app} as {who}?\n")
    };
    if let Some(code) = &requester.user_code {
        text.push_str(&format!("\nDevice code: {code}"));
    }
    if let Some(browser) = &requester.browser {
        text.push_str(&format!("\nRequested from: {browser}"));
    }
    text.push_str(&format!("\nAt: {}\n", utc_minute(login.created_at)));
    let button = |text: String, data: String| InlineButton {
        text,
        callback_data: data,
    };
    let id = &login.id;
    let mut rows = Vec::new();
    match login.match_code {
        Some(code) => {
            let screen = if device {
                "your device"
            } else {
                "the login page"
            };
            text.push_str(&format!(
                "\nPress the number {screen} shows. If you did not start this yourself just now, press \"This wasn't me\"."
            ));
            rows.push(
                offered_numbers(code)
                    .iter()
                    .map(|n| button(n.to_string(), format!("{NUMBER}{id}:{n}")))
                    .collect(),
            );
        }
        None => {
            text.push_str("\nPress Approve only if you started this yourself just now.");
            rows.push(vec![button("Approve".into(), format!("{APPROVE}{id}"))]);
        }
    }
    rows.push(vec![
        button("Deny".into(), format!("{DENY}{id}")),
        button("This wasn't me".into(), format!("{NOT_ME}{id}")),
    ]);
    (text, rows)
}

async fn client_name(app: &App, client_id: &str) -> Result<String, StoreError> {
    Ok(match app.store.get_client(client_id).await? {
        Some(client) => client.settings.name,
        None => GONE_APP.into(),
    })
}

/// What a button press says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Press {
    /// Approve of a login from before number matching.
    Approve,
    Number(i64),
    Deny,
    NotMe,
}

fn read_press(data: &str) -> Option<(Press, &str)> {
    if let Some(id) = data.strip_prefix(APPROVE) {
        return Some((Press::Approve, id));
    }
    if let Some(id) = data.strip_prefix(DENY) {
        return Some((Press::Deny, id));
    }
    if let Some(id) = data.strip_prefix(NOT_ME) {
        return Some((Press::NotMe, id));
    }
    let (id, number) = data.strip_prefix(NUMBER)?.rsplit_once(':')?;
    let number = number.parse().ok().filter(|n| (10..=99).contains(n))?;
    Some((Press::Number(number), id))
}

/// How a press answers the login: approve, or deny with the word recorded for it.
fn answer_of(press: Press, login: &BotLoginRecord) -> (bool, &'static str) {
    match (press, login.match_code) {
        (Press::Number(n), Some(code)) if n == code => (true, "approve"),
        (Press::Number(_), _) => (false, "wrong_number"),
        // Approve without a number is no answer to a login that asked for one.
        (Press::Approve, None) => (true, "approve"),
        (Press::Approve, Some(_)) => (false, "wrong_number"),
        (Press::Deny, _) => (false, "deny"),
        (Press::NotMe, _) => (false, "not_me"),
    }
}

async fn on_button(app: &App, bot: &BotApi, query: &CallbackQuery) -> Result<(), HandleError> {
    let Some((press, id)) = read_press(query.data.as_deref().unwrap_or("")) else {
        bot.answer_callback_query(&query.id, None).await?;
        return Ok(());
    };
    let now = app.now();
    let login = match app.store.get_bot_login(id).await? {
        Some(login) if login.expires_at > now => login,
        _ => {
            bot.answer_callback_query(&query.id, Some("This login has expired."))
                .await?;
            return Ok(());
        }
    };
    if login.telegram_id != Some(query.from.id) || query.from.is_bot {
        tracing::info!("a login button was pressed by another Telegram account; ignored");
        bot.answer_callback_query(
            &query.id,
            Some("This confirmation belongs to another Telegram account."),
        )
        .await?;
        return Ok(());
    }
    let (approve, answer) = answer_of(press, &login);
    let identity = identity_of(&query.from, now);
    let identity_json = if approve {
        Some(
            serde_json::to_string(&identity)
                .map_err(|e| StoreError::Internal(format!("identity: {e}")))?,
        )
    } else {
        None
    };
    let decided = app
        .store
        .decide_bot_login(
            id,
            query.from.id,
            identity_json.as_deref(),
            answer,
            now,
            now + COLLECT_SECS,
        )
        .await?;
    let Some(decided) = decided else {
        bot.answer_callback_query(
            &query.id,
            Some("This login was already answered or has expired."),
        )
        .await?;
        return Ok(());
    };
    let client = app.store.get_client(&decided.client_id).await?;
    let app_name = client
        .as_ref()
        .map(|c| c.settings.name.clone())
        .unwrap_or_else(|| GONE_APP.into());
    if matches!(answer, "wrong_number" | "not_me") {
        // Possibly someone else's attempt (remote phishing): worth an operator's attention.
        tracing::warn!(
            answer,
            login = %decided.id,
            client_id = %decided.client_id,
            telegram_id = query.from.id,
            "a bot login was refused in the chat"
        );
    }
    let outcome = match (&decided.device_hash, &client) {
        // A device code is denied too, so the device stops waiting.
        (Some(device_hash), Some(client)) => {
            decide_device(app, device_hash, client, &identity, approve, now).await?
        }
        (Some(_), None) => format!("{app_name}: nothing to sign in to."),
        (None, _) if approve => {
            format!(
                "Approved: you are logging in to {app_name}. Go back to your browser; it continues by itself."
            )
        }
        (None, _) => format!("Denied: {app_name} was not given access."),
    };
    let screen = if decided.device_hash.is_some() {
        "your device showed"
    } else {
        "the login page showed"
    };
    let outcome = match answer {
        "wrong_number" => format!(
            "Refused: that is not the number {screen}. Nobody was signed in to {app_name}. If you were signing in yourself, start again; if not, someone else tried, and was stopped."
        ),
        "not_me" => format!(
            "Stopped: nobody was signed in to {app_name}. Someone else may have tried to use your Telegram account: do not open login links you did not ask for."
        ),
        _ => outcome,
    };
    let note = match answer {
        "approve" => "Approved",
        "wrong_number" => "Refused: wrong number",
        "not_me" => "Stopped",
        _ => "Denied",
    };
    bot.answer_callback_query(&query.id, Some(note)).await?;
    if let Some(message) = &query.message {
        bot.edit_message_text(message.chat.id, message.message_id, &outcome)
            .await?;
    }
    Ok(())
}

/// Approve or Deny pressed for a device code: the chat is where the user consents.
async fn decide_device(
    app: &App,
    device_hash: &[u8],
    client: &ClientRecord,
    identity: &TelegramIdentity,
    approve: bool,
    now: i64,
) -> Result<String, StoreError> {
    let app_name = &client.settings.name;
    let decided = if approve {
        let approval = DeviceApproval {
            user_id: identity.id,
            auth_time: now,
            amr: identity.method.amr().to_owned(),
        };
        async {
            let user = login::prove(app, identity, None, now).await?;
            device::approve(app, device_hash, client, approval, Some(&user), now).await
        }
        .await
    } else {
        device::deny(app, device_hash, now).await
    };
    Ok(match decided {
        Ok(Decided::Approved) => format!("Approved: your device is now signed in to {app_name}."),
        Ok(Decided::Denied) => format!("Denied: the device was not signed in to {app_name}."),
        Ok(Decided::Gone) => {
            "This sign-in request has expired or was already answered. Start again on the device."
                .into()
        }
        Err(Refused::NotAdmitted) => format!(
            "You cannot sign in to {app_name}: its administrator has not let this Telegram account in."
        ),
        Err(Refused::AlreadyUsed) => "This sign-in request was already answered.".into(),
        Err(Refused::Unavailable) => format!(
            "Telegram could not be asked whether you may sign in to {app_name}. Please try again in a few minutes."
        ),
        Err(Refused::Store(e)) => return Err(e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn button_data_fits_in_64_bytes() {
        assert!(format!("{APPROVE}{}", new_id()).len() <= 64);
        assert!(format!("{NUMBER}{}:99", new_id()).len() <= 64);
    }

    #[test]
    fn presses_are_read_strictly() {
        assert_eq!(read_press("n:abc:47"), Some((Press::Number(47), "abc")));
        assert_eq!(read_press("d:abc"), Some((Press::Deny, "abc")));
        assert_eq!(read_press("x:abc"), Some((Press::NotMe, "abc")));
        assert_eq!(read_press("a:abc"), Some((Press::Approve, "abc")));
        for bad in [
            "n:abc:9",
            "n:abc:100",
            "n:abc:-5",
            "n:abc",
            "n:abc:4x",
            "z:abc",
            "",
        ] {
            assert_eq!(read_press(bad), None, "{bad}");
        }
    }
}
