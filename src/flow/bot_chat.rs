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
//!
//! A backchannel request (CIBA, `flow::ciba`) is asked straight in the named user's chat; with
//! no screen of ours to show a number on, it offers Approve beside Deny and "This wasn't me",
//! and shows the app's binding message instead.

use crate::flow::audit::{Event, Outcome};
use crate::flow::ciba;
use crate::flow::device::{self, Decided};
use crate::flow::login::{self, Refused};
use crate::flow::{account, bot_account};
use crate::oidc::authorize::{ACCOUNT_PAGE, ADMIN_DESK};
use crate::secrets::{new_id, token_hash};
use crate::state::App;
use crate::store::flows::{BotLoginRecord, BotLoginStatus};
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
    /// A backchannel authentication request (CIBA), approved right in the chat. There is no
    /// screen of ours to show a number on, so the question offers Approve; the binding message
    /// is shown instead.
    Backchannel {
        request_hash: Vec<u8>,
        binding_message: Option<String>,
    },
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
    /// Roughly where the request came from ("Berlin, Germany"), when a GeoIP database is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<String>,
}

/// What the stored requester JSON adds for a backchannel request: its binding message
/// (CIBA §7.1), which the app shows too. Kept beside [`Requester`]'s fields rather than among
/// them, so that the places that build a `Requester` need not know of CIBA.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct BackchannelNote {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    binding_message: Option<String>,
}

/// A stored deep-link login: the public id, the link to show, and the number the user must
/// press in the chat.
pub struct NewBotLogin {
    pub id: String,
    pub link: String,
    /// Not asked for a backchannel request, which has no screen to show it on.
    pub match_code: i64,
    /// The secret in the link, kept only to bind the login to a known user at once.
    payload: String,
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
    let mut requester = serde_json::to_value(requester)
        .map_err(|e| StoreError::Internal(format!("requester: {e}")))?;
    let (pending_hash, browser_hash, device_hash, ciba_hash) = match purpose {
        Purpose::Browser {
            pending_hash,
            browser_hash,
        } => (Some(pending_hash), Some(browser_hash), None, None),
        Purpose::Device { device_hash } => (None, None, Some(device_hash), None),
        Purpose::Backchannel {
            request_hash,
            binding_message,
        } => {
            if let (Some(message), Some(fields)) = (binding_message, requester.as_object_mut()) {
                fields.insert("binding_message".into(), message.into());
            }
            (None, None, None, Some(request_hash))
        }
    };
    let requester = requester.to_string();
    let asked_code = ciba_hash.is_none().then_some(match_code);
    app.store
        .create_bot_login(&BotLoginRecord {
            id: id.clone(),
            payload_hash: token_hash(&payload),
            client_id: client_id.to_owned(),
            pending_hash,
            browser_hash,
            device_hash,
            ciba_hash,
            status: BotLoginStatus::Pending,
            telegram_id: None,
            identity: None,
            created_at: app.now(),
            expires_at,
            match_code: asked_code,
            requester: Some(requester),
            answer: None,
        })
        .await?;
    Ok(NewBotLogin {
        link: link(&app.config.telegram.bot_username, &payload),
        id,
        match_code,
        payload,
    })
}

/// Whether the question reached the user's chat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// The question is in the chat: the user answers there without opening the link.
    Sent,
    /// The bot may not write to the user (they never started it, or blocked it): the link,
    /// opened by this same user, still asks the question.
    NotAllowed,
    /// Telegram could not be reached, or there is no bot.
    Failed,
}

/// A login for a user already known (a step-up confirmation, a backchannel request): stored
/// bound to `user_id` from the start, so only that Telegram account can answer it, and the
/// question is sent straight to their chat with the bot. The link still works, for that user
/// only (for when the bot may not write to them first).
pub async fn create_for_user(
    app: &App,
    client_id: &str,
    purpose: Purpose,
    requester: &Requester,
    expires_at: i64,
    user_id: i64,
) -> Result<(NewBotLogin, Pushed), StoreError> {
    let login = create(app, client_id, purpose, requester, expires_at).await?;
    let now = app.now();
    let Some(record) = app
        .store
        .start_bot_login(&token_hash(&login.payload), user_id, now)
        .await?
    else {
        return Err(StoreError::Internal(
            "a new bot login could not be bound".into(),
        ));
    };
    let Some(bot) = app.bot.as_ref() else {
        return Ok((login, Pushed::Failed));
    };
    let app_name = client_name(app, client_id).await?;
    let who = match app.store.get_user(user_id).await? {
        Some(user) => match &user.username {
            Some(username) => format!("{} (@{username})", user.first_name),
            None => user.first_name.clone(),
        },
        None => format!("Telegram user {user_id}"),
    };
    let (question, buttons) = approval_message(&record, &app_name, &who);
    // A private chat's id is the user's id.
    let pushed = match bot.send_message_rows(user_id, &question, &buttons).await {
        Ok(_) => Pushed::Sent,
        Err(e) if account::not_allowed(&e) => {
            account::note_skipped(&app.bot_messages_skipped);
            Pushed::NotAllowed
        }
        Err(e) => {
            tracing::warn!(error = %e, "a confirmation could not be sent to the user's chat");
            Pushed::Failed
        }
    };
    Ok((login, pushed))
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

/// What the bot does with one update; shared by the webhook and the poller. An answer the user
/// has not let the bot send (they blocked it since: 403) is skipped quietly and counted.
pub async fn handle_update(app: &App, bot: &BotApi, update: &Update) -> Result<(), HandleError> {
    let handled = if let Some(message) = &update.message {
        on_message(app, bot, message).await
    } else if let Some(query) = &update.callback_query {
        on_button(app, bot, query).await
    } else {
        Ok(())
    };
    match handled {
        Err(HandleError::Bot(e)) if account::not_allowed(&e) => {
            account::note_skipped(&app.bot_messages_skipped);
            Ok(())
        }
        other => other,
    }
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
        bot_account::on_command(app, bot, message, from.id, text).await?;
        return Ok(());
    };
    if !(rest.is_empty() || rest.starts_with(' ')) {
        return Ok(());
    }
    let payload = rest.trim();
    if payload.is_empty() {
        bot.send_message(
            message.chat.id,
            &format!("Start signing in on the website or device, choose to log in through Telegram, and open the link it shows.\n\n{}", bot_account::HELP),
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
    bot.send_message_rows(message.chat.id, &question, &buttons)
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
    let backchannel = login.ciba_hash.is_some();
    let mut text = if device {
        format!("Sign in to {app} on your device as {who}?\n")
    } else if backchannel {
        format!("{app} asks you to confirm that it is you, {who}.\n")
    } else {
        format!("Log in to {app} as {who}?\n")
    };
    let note: BackchannelNote = login
        .requester
        .as_deref()
        .and_then(|json| serde_json::from_str(json).ok())
        .unwrap_or_default();
    if let Some(message) = &note.binding_message {
        text.push_str(&format!("\nBinding message: {message}"));
    }
    if let Some(code) = &requester.user_code {
        text.push_str(&format!("\nDevice code: {code}"));
    }
    if let Some(browser) = &requester.browser {
        text.push_str(&format!("\nRequested from: {browser}"));
    }
    if let Some(place) = &requester.place {
        text.push_str(&format!("\nApproximately in: {place}"));
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
        None if backchannel => {
            text.push_str(&format!(
                "\nPress Approve only if you are dealing with {app_name} right now and it shows you the same binding message. If not, press \"This wasn't me\"."
            ));
            rows.push(vec![button("Approve".into(), format!("{APPROVE}{id}"))]);
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
    if client_id == ACCOUNT_PAGE {
        return Ok("your account page".into());
    }
    if client_id == ADMIN_DESK {
        return Ok("the admin desk".into());
    }
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
    if bot_account::on_button(app, bot, query).await? {
        return Ok(());
    }
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
    let app_name = client_name(app, &decided.client_id).await?;
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
    if !approve {
        app.audit(
            Event::new("login", Outcome::Refused)
                .user(query.from.id)
                .client(&decided.client_id)
                .with("method", "telegram_bot")
                .with("reason", answer),
        );
    }
    let outcome = match (&decided.device_hash, &decided.ciba_hash, &client) {
        // A device code is denied too, so the device stops waiting.
        (Some(device_hash), _, Some(client)) => {
            decide_device(app, device_hash, client, &identity, approve, now).await?
        }
        // So is a backchannel request, so the app stops waiting.
        (None, Some(request_hash), Some(client)) => {
            decide_backchannel(app, request_hash, client, &identity, answer, now).await?
        }
        (Some(_), _, None) | (None, Some(_), None) => {
            format!("{app_name}: nothing to sign in to.")
        }
        (None, None, _) if approve => {
            format!(
                "Approved: you are logging in to {app_name}. Go back to your browser; it continues by itself."
            )
        }
        (None, None, _) => format!("Denied: {app_name} was not given access."),
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
        "not_me" if decided.ciba_hash.is_some() => format!(
            "Stopped: {app_name} was not told that it is you. If someone asked you to approve this, they may be trying to use your Telegram account."
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

/// Approve, Deny or "This wasn't me" pressed for a backchannel request (CIBA).
async fn decide_backchannel(
    app: &App,
    request_hash: &[u8],
    client: &ClientRecord,
    identity: &TelegramIdentity,
    answer: &'static str,
    now: i64,
) -> Result<String, StoreError> {
    let app_name = &client.settings.name;
    let decided = if answer == "approve" {
        ciba::approve(app, request_hash, client, identity, now).await
    } else {
        ciba::deny(app, request_hash, client, answer, now)
            .await
            .map_err(Refused::from)
    };
    Ok(match decided {
        Ok(Decided::Approved) => format!("Approved: {app_name} now knows that it is you."),
        Ok(Decided::Denied) => format!("Denied: {app_name} was not told that it is you."),
        Ok(Decided::Gone) => "This request has expired or was already answered.".into(),
        Err(Refused::NotAdmitted) => {
            format!("Denied: {app_name}'s administrator has not let this Telegram account in.")
        }
        Err(Refused::AlreadyUsed | Refused::OtherAccount) => {
            "This request was already answered.".into()
        }
        Err(Refused::Unavailable) => format!(
            "Telegram could not be asked whether you may sign in to {app_name}. Please try again in a few minutes."
        ),
        Err(Refused::Store(e)) => return Err(e),
    })
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
        login::device_in_bot(app, identity, device_hash, client, now).await
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
        Err(Refused::AlreadyUsed | Refused::OtherAccount) => {
            "This sign-in request was already answered.".into()
        }
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
