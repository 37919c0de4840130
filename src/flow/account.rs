//! What users manage themselves, from the bot chat (`/apps`, `/sessions`, `/alerts`) or the
//! `/account` page: the apps they gave something to, their signed-in browsers, their login
//! alerts. Both ways call the functions here, so an app revoked in the chat and one revoked on
//! the page end the same way.
//!
//! Buttons and forms name things by handles that are safe to show: an app by a short digest of
//! its client id, a session by the SHA-256 of its id (the digest the store keys it by, which
//! cannot be turned back into the cookie). Every action looks the handle up among the acting
//! user's own apps or sessions, so a handle of someone else's finds nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::oidc::{logout, scopes, subject};
use crate::secrets::sha256;
use crate::state::App;
use crate::store::{ClientRecord, SessionRecord, StoreResult};
use crate::telegram::bot::{BotApiError, InlineButton};

/// An app as the user's list shows it.
#[derive(Debug, Clone)]
pub struct AppEntry {
    /// What a Revoke button or form sends back.
    pub handle: String,
    pub client_id: String,
    pub name: String,
    /// The host of the app's first redirect URI.
    pub domain: Option<String>,
    /// What the user allowed, in words (unknown scopes as they are).
    pub scopes: Vec<String>,
    pub last_used_at: i64,
}

/// A signed-in browser as the user's list shows it.
#[derive(Debug, Clone)]
pub struct SessionEntry {
    /// What a Sign out button or form sends back.
    pub handle: String,
    pub device: Option<String>,
    pub place: Option<String>,
    pub signed_in_at: i64,
    pub last_used_at: i64,
}

/// What "This wasn't me" under a login alert ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Undo {
    /// A browser login: that session, and every grant issued in it.
    Session(Vec<u8>),
    /// A login without a browser session (token exchange, a device): everything the user gave
    /// that app.
    App(String),
}

impl Undo {
    /// The handle a button carries (at most 48 bytes, within `callback_data`'s 64).
    pub fn handle(&self) -> String {
        match self {
            Undo::Session(hash) => format!("s:{}", URL_SAFE_NO_PAD.encode(hash)),
            Undo::App(client_id) => format!("a:{}", app_handle(client_id)),
        }
    }
}

/// The handle of an app: 96 bits of the SHA-256 of its client id, enough to tell a user's apps
/// apart, short enough for a button.
pub fn app_handle(client_id: &str) -> String {
    URL_SAFE_NO_PAD.encode(&sha256(client_id.as_bytes())[..12])
}

pub fn session_handle(id_hash: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(id_hash)
}

fn session_hash_of(handle: &str) -> Option<Vec<u8>> {
    if handle.len() != 43 {
        return None;
    }
    URL_SAFE_NO_PAD
        .decode(handle)
        .ok()
        .filter(|h| h.len() == 32)
}

/// The host of an app's first redirect URI: what the user knows the app by besides its name.
pub fn domain_of(client: &ClientRecord) -> Option<String> {
    let first = client.settings.redirect_uris.first()?;
    url::Url::parse(first)
        .ok()?
        .host_str()
        .map(|h| h.chars().take(253).collect())
}

/// A time as the lists and alerts show it: `2025-01-02 15:04 UTC`.
pub fn when(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// The apps `user_id` gave something to, most recently used first.
pub async fn apps(app: &App, user_id: i64, now: i64) -> StoreResult<Vec<AppEntry>> {
    let mut out = Vec::new();
    for found in app.store.list_user_apps(user_id, now).await? {
        // An app deleted since took its grants with it; a row that outlived it is not shown.
        let Some(client) = app.store.get_client(&found.client_id).await? else {
            continue;
        };
        out.push(AppEntry {
            handle: app_handle(&client.client_id),
            domain: domain_of(&client),
            scopes: found
                .scope
                .split(' ')
                .filter(|s| !s.is_empty())
                .map(|s| scopes::describe(s).unwrap_or(s).to_owned())
                .collect(),
            name: client.settings.name,
            client_id: client.client_id,
            last_used_at: found.last_used_at,
        });
    }
    Ok(out)
}

/// Ends everything the user gave the app `handle` names: consent, grants, refresh and access
/// tokens, at once; the app hears it on its back-channel logout URI. The app's name, or `None`
/// when the user has no such app.
pub async fn revoke_app(
    app: &App,
    user_id: i64,
    handle: &str,
    now: i64,
) -> StoreResult<Option<String>> {
    let Some(entry) = apps(app, user_id, now)
        .await?
        .into_iter()
        .find(|a| a.handle == handle)
    else {
        return Ok(None);
    };
    revoke_client(app, user_id, &entry.client_id, now).await?;
    Ok(Some(entry.name))
}

async fn revoke_client(app: &App, user_id: i64, client_id: &str, now: i64) -> StoreResult<()> {
    app.store.revoke_user_app(user_id, client_id, now).await?;
    tracing::info!(user_id, client_id, "the user revoked an app");
    if let Some(client) = app.store.get_client(client_id).await?
        && let Some(uri) = client.settings.backchannel_logout_uri.clone()
    {
        // No `sid`: the app ends every session it has for this user (Back-Channel Logout §2.4).
        notify_logout(app, client, user_id, uri, now);
    }
    Ok(())
}

/// The live browser sessions of `user_id`, most recently used first.
pub async fn sessions(app: &App, user_id: i64, now: i64) -> StoreResult<Vec<SessionEntry>> {
    Ok(app
        .store
        .list_user_sessions(user_id, now)
        .await?
        .into_iter()
        .map(|s| entry_of(&s))
        .collect())
}

fn entry_of(s: &SessionRecord) -> SessionEntry {
    SessionEntry {
        handle: session_handle(&s.id_hash),
        device: s.device.clone(),
        place: s.place.clone(),
        signed_in_at: s.auth_time,
        last_used_at: s.last_used_at,
    }
}

/// Signs out the user's session `handle` names; false when the user has no such session.
pub async fn sign_out(app: &App, user_id: i64, handle: &str, now: i64) -> StoreResult<bool> {
    let Some(hash) = session_hash_of(handle) else {
        return Ok(false);
    };
    let owned = app
        .store
        .list_user_sessions(user_id, now)
        .await?
        .into_iter()
        .any(|s| s.id_hash == hash);
    if owned {
        end_session(app, &hash, now).await?;
    }
    Ok(owned)
}

/// Signs out every browser of the user; how many there were.
pub async fn sign_out_everywhere(app: &App, user_id: i64, now: i64) -> StoreResult<usize> {
    let all = app.store.list_user_sessions(user_id, now).await?;
    for session in &all {
        end_session(app, &session.id_hash, now).await?;
    }
    tracing::info!(user_id, count = all.len(), "the user signed out everywhere");
    Ok(all.len())
}

/// Ends a browser session as `/logout` does: the session goes, and every app that received a
/// code in it and asked to be told gets a logout token (Back-Channel Logout 1.0).
pub async fn end_session(app: &App, session_hash: &[u8], now: i64) -> StoreResult<()> {
    for (client, user_id, uri) in logout::end_session(app, session_hash).await? {
        notify_logout(app, client, user_id, uri, now);
    }
    Ok(())
}

/// Sends a logout token in the background: the user's session is over whatever the app says.
fn notify_logout(app: &App, client: ClientRecord, user_id: i64, uri: String, now: i64) {
    let sub = subject::subject_for(app, &client, user_id);
    match logout::logout_token(app, &client, &sub, now) {
        Ok(token) => {
            let outbound = app.outbound.clone();
            tokio::spawn(async move {
                logout::send_logout_token(outbound, uri, token, &client).await;
            });
        }
        Err(e) => tracing::warn!(error = %e, "could not sign a logout token"),
    }
}

/// "This wasn't me": ends what the login behind `handle` (an [`Undo::handle`]) opened, if it
/// was this user's. False when it names nothing of theirs.
pub async fn not_me(app: &App, user_id: i64, handle: &str, now: i64) -> StoreResult<bool> {
    if let Some(session) = handle.strip_prefix("s:") {
        let Some(hash) = session_hash_of(session) else {
            return Ok(false);
        };
        let live = app
            .store
            .list_user_sessions(user_id, now)
            .await?
            .into_iter()
            .any(|s| s.id_hash == hash);
        if live {
            end_session(app, &hash, now).await?;
        }
        // The grants are found by session and user, so they go even if the session is over;
        // their access tokens go with them (a token of a revoked grant is refused).
        let revoked = app.store.revoke_session_grants(user_id, &hash, now).await?;
        tracing::info!(
            user_id,
            "a login was reported as not the user's: its session and grants ended"
        );
        return Ok(live || !revoked.is_empty());
    }
    if let Some(app_handle) = handle.strip_prefix("a:") {
        tracing::info!(
            user_id,
            "a login was reported as not the user's: the app's access ended"
        );
        return Ok(revoke_app(app, user_id, app_handle, now).await?.is_some());
    }
    Ok(false)
}

/// Whether `user_id` gets login alerts: their own choice, else the configured default.
pub async fn alerts_on(app: &App, user_id: i64) -> StoreResult<bool> {
    use crate::config::AlertsDefault;
    let Some(setting) = app.store.login_alerts(user_id).await? else {
        return Ok(false);
    };
    Ok(match setting.chosen {
        Some(chosen) => chosen,
        None => match app.config.account.login_alerts {
            AlertsDefault::BotUsers => setting.bot_chat_since.is_some(),
            AlertsDefault::Everyone => true,
            AlertsDefault::Nobody => false,
        },
    })
}

/// Whether a Bot API refusal means the user has not let the bot write to them: they never
/// started it, or blocked it (403).
pub fn not_allowed(e: &BotApiError) -> bool {
    matches!(e, BotApiError::Refused { code: 403, .. })
}

/// Counts a message skipped because the user has not let the bot write to them.
pub fn note_skipped(counter: &AtomicU64) {
    let total = counter.fetch_add(1, Ordering::Relaxed) + 1;
    tracing::info!(
        skipped_total = total,
        "a bot message was skipped: the user has not started the bot or has blocked it"
    );
}

/// Sends a message to the user's private chat with the bot, in the background: the caller
/// (a login) never waits for Telegram and never fails because of it. A user who has not let
/// the bot write to them is skipped quietly and counted.
pub fn send_in_background(app: &App, user_id: i64, text: String, buttons: Vec<InlineButton>) {
    let Some(bot) = app.bot.clone() else {
        return;
    };
    let skipped: Arc<AtomicU64> = app.bot_messages_skipped.clone();
    tokio::spawn(async move {
        // A private chat's id is the user's id.
        match bot.send_message(user_id, &text, &buttons).await {
            Ok(_) => {}
            Err(e) if not_allowed(&e) => note_skipped(&skipped),
            Err(e) => tracing::warn!(error = %e, "a message to a user could not be sent"),
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_fit_in_a_button_and_read_back() {
        let hash = sha256(b"sess_x");
        let undo = Undo::Session(hash.clone());
        assert!(format!("nm:{}", undo.handle()).len() <= 64);
        assert_eq!(
            session_hash_of(undo.handle().strip_prefix("s:").unwrap()),
            Some(hash)
        );
        assert_eq!(app_handle("client").len(), 16);
        assert_eq!(session_hash_of("short"), None);
        assert_eq!(session_hash_of(&"!".repeat(43)), None);
    }

    #[test]
    fn times_read_as_utc() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_700_000_000), "2023-11-14 22:13 UTC");
    }
}
