//! Login confirmed in the bot chat: a `t.me/<bot>?start=<payload>` link opens the bot, Telegram
//! sends us `/start <payload>` with the user's profile, the bot asks "Log in to <app>?" with
//! Approve / Deny buttons, and only Approve, pressed by the user who sent `/start`, proves the
//! identity. The identity comes from the update's `from`, which is trustworthy because the
//! update arrived over the authenticated webhook or through `getUpdates` with our token.
//!
//! The payload is the bearer secret (single use, stored hashed); buttons and the waiting
//! browser name the login by a separate short id, so the payload never travels twice.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::bot::{BotApi, BotApiError, CallbackQuery, InlineButton, Message, Update, User};
use super::{ProofMethod, TelegramIdentity};
use crate::app::App;
use crate::secrets::{new_id, random_bytes, token_hash};
use crate::store::StoreError;
use crate::store::flows::{BotLoginRecord, BotLoginStatus, DeviceApproval};

/// Telegram's limit on a start parameter (characters of `A-Za-z0-9_-`).
pub const MAX_PAYLOAD_LEN: usize = 64;
/// How long the waiting browser has to collect an answer given in the chat.
pub const COLLECT_SECS: i64 = 120;
const APPROVE: &str = "a:";
const DENY: &str = "d:";

/// A new start payload: 32 random bytes, base64url (43 characters).
pub fn new_payload() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

pub fn is_valid_payload(payload: &str) -> bool {
    !payload.is_empty()
        && payload.len() <= MAX_PAYLOAD_LEN
        && payload
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn link(bot_username: &str, payload: &str) -> String {
    format!("https://t.me/{bot_username}?start={payload}")
}

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

/// A stored deep-link login: the public id and the link to show.
pub struct NewBotLogin {
    pub id: String,
    pub link: String,
}

pub async fn create(
    app: &App,
    client_id: &str,
    purpose: Purpose,
    expires_at: i64,
) -> Result<NewBotLogin, StoreError> {
    let payload = new_payload();
    let id = new_id();
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
        })
        .await?;
    Ok(NewBotLogin {
        link: link(&app.config.telegram.bot_username, &payload),
        id,
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
    let question = if login.device_hash.is_some() {
        format!(
            "Sign in to {app_name} on your device as {who}?\n\nPress Approve only if you started this sign-in yourself."
        )
    } else {
        format!(
            "Log in to {app_name} as {who}?\n\nPress Approve only if you started this login yourself just now."
        )
    };
    bot.send_message(
        message.chat.id,
        &question,
        &[
            InlineButton {
                text: "Approve".into(),
                callback_data: format!("{APPROVE}{}", login.id),
            },
            InlineButton {
                text: "Deny".into(),
                callback_data: format!("{DENY}{}", login.id),
            },
        ],
    )
    .await?;
    Ok(())
}

async fn client_name(app: &App, client_id: &str) -> Result<String, StoreError> {
    Ok(match app.store.get_client(client_id).await? {
        Some(client) => client.settings.name,
        None => "an app that is no longer registered".into(),
    })
}

/// The identity an Approve press proves.
pub fn identity_of(user: &User, now: i64) -> TelegramIdentity {
    let non_empty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
    TelegramIdentity {
        id: user.id,
        first_name: user.first_name.clone(),
        last_name: non_empty(&user.last_name),
        username: non_empty(&user.username),
        photo_url: None,
        language_code: non_empty(&user.language_code),
        is_premium: user.is_premium.unwrap_or(false),
        phone_number: None,
        method: ProofMethod::BotDeepLink,
        proven_at: now,
    }
}

async fn on_button(app: &App, bot: &BotApi, query: &CallbackQuery) -> Result<(), HandleError> {
    let data = query.data.as_deref().unwrap_or("");
    let (approve, id) = if let Some(id) = data.strip_prefix(APPROVE) {
        (true, id)
    } else if let Some(id) = data.strip_prefix(DENY) {
        (false, id)
    } else {
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
    let app_name = client_name(app, &decided.client_id).await?;
    let outcome = match &decided.device_hash {
        Some(device_hash) => decide_device(app, device_hash, &identity, approve, &app_name).await?,
        None if approve => {
            format!(
                "Approved: you are logging in to {app_name}. Go back to your browser; it continues by itself."
            )
        }
        None => format!("Denied: {app_name} was not given access."),
    };
    bot.answer_callback_query(&query.id, Some(if approve { "Approved" } else { "Denied" }))
        .await?;
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
    identity: &TelegramIdentity,
    approve: bool,
    app_name: &str,
) -> Result<String, StoreError> {
    let now = app.now();
    if !approve {
        app.store.decide_device_code(device_hash, None, now).await?;
        return Ok(format!(
            "Denied: the device was not signed in to {app_name}."
        ));
    }
    crate::web::login::save_user(app, identity).await?;
    let approval = DeviceApproval {
        user_id: identity.id,
        auth_time: now,
        amr: identity.method.amr().to_owned(),
    };
    let approved = app
        .store
        .decide_device_code(device_hash, Some(&approval), now)
        .await?;
    if let Some(code) = approved {
        // Approving in the chat, where the app is named, is the consent (as on the device page).
        app.store
            .save_consent(identity.id, &code.client_id, &code.scope, now)
            .await?;
        Ok(format!(
            "Approved: your device is now signed in to {app_name}."
        ))
    } else {
        Ok(
            "This sign-in request has expired or was already answered. Start again on the device."
                .into(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_fit_telegrams_start_parameter() {
        let p = new_payload();
        assert_eq!(p.len(), 43);
        assert!(is_valid_payload(&p));
        assert_ne!(p, new_payload());
        assert!(!is_valid_payload(""));
        assert!(!is_valid_payload(&"a".repeat(65)));
        assert!(is_valid_payload(&"a".repeat(64)));
        assert!(!is_valid_payload("abc def"));
        assert!(!is_valid_payload("abc+def"));
    }

    #[test]
    fn button_data_fits_in_64_bytes() {
        assert!(format!("{APPROVE}{}", new_id()).len() <= 64);
    }
}
