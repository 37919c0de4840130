//! The bot chat: a `t.me/<bot>?start=<payload>` link opens the bot, Telegram sends us
//! `/start <payload>` with the user's profile, the bot asks "Log in to <app>?" with Approve /
//! Deny buttons, and only Approve, pressed by the user who sent `/start`, proves the identity
//! (`telegram::deeplink::identity_of`). A browser login is then collected by the waiting
//! browser and passes the gate there; a device code is approved right here, through the gate.

use crate::flow::device::{self, Decided};
use crate::flow::login::{self, Refused};
use crate::flow::{account, bot_account};
use crate::oidc::authorize::ACCOUNT_PAGE;
use crate::secrets::{new_id, token_hash};
use crate::state::App;
use crate::store::flows::{BotLoginRecord, BotLoginStatus};
use crate::store::{ClientRecord, StoreError};
use crate::telegram::TelegramIdentity;
use crate::telegram::bot::{BotApi, BotApiError, CallbackQuery, InlineButton, Message, Update};
use crate::telegram::deeplink::{COLLECT_SECS, identity_of, is_valid_payload, link, new_payload};

const APPROVE: &str = "a:";
const DENY: &str = "d:";
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
    if client_id == ACCOUNT_PAGE {
        return Ok("your account page".into());
    }
    Ok(match app.store.get_client(client_id).await? {
        Some(client) => client.settings.name,
        None => GONE_APP.into(),
    })
}

async fn on_button(app: &App, bot: &BotApi, query: &CallbackQuery) -> Result<(), HandleError> {
    if bot_account::on_button(app, bot, query).await? {
        return Ok(());
    }
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
    let client = app.store.get_client(&decided.client_id).await?;
    let app_name = client_name(app, &decided.client_id).await?;
    let outcome = match (&decided.device_hash, &client) {
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
    }
}
