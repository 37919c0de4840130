//! The browser session: started by a login that passed the gate's first step, found again by
//! the hash of the id in the browser's cookie (the cookie itself is `web`'s business).

use crate::secrets::{TokenKind, new_token, token_hash};
use crate::state::App;
use crate::store::{SessionRecord, StoreResult};

/// A session's last use is written at most this often: a use is a read, and the list of
/// sessions needs no finer time than this.
pub const TOUCH_EVERY_SECS: i64 = 60;

/// A session just started: the raw id for the cookie, the stored hash, its lifetime.
pub struct NewSession {
    pub id: String,
    pub id_hash: Vec<u8>,
    pub ttl_secs: i64,
}

/// What is known of the browser a login happens in, for the user's list of sessions and the
/// login alert: what its user agent says it is, and roughly where it is (only with a GeoIP
/// database configured).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Browser {
    pub device: Option<String>,
    pub place: Option<String>,
}

/// The live session whose raw id is `id`, if any; its last use is noted.
pub async fn find(app: &App, id: &str, now: i64) -> StoreResult<Option<SessionRecord>> {
    let hash = token_hash(id);
    let found = app.store.get_session(&hash, now).await?;
    if let Some(session) = &found
        && now - session.last_used_at >= TOUCH_EVERY_SECS
    {
        app.store.touch_session(&hash, now).await?;
    }
    Ok(found)
}

/// Starts a session for `user_id`. A new login replaces the browser's old session (`replaces`):
/// a fixed id would let a planted cookie ride along.
pub async fn start(
    app: &App,
    user_id: i64,
    amr: &str,
    replaces: Option<&str>,
    browser: &Browser,
    now: i64,
) -> StoreResult<NewSession> {
    if let Some(old) = replaces {
        app.store.delete_session(&token_hash(old)).await?;
    }
    let id = new_token(TokenKind::Session);
    let id_hash = token_hash(&id);
    let ttl_secs = app.config.tokens.session_ttl_secs;
    app.store
        .create_session(&SessionRecord {
            id_hash: id_hash.clone(),
            user_id,
            auth_time: now,
            amr: amr.to_owned(),
            created_at: now,
            expires_at: now + ttl_secs,
            device: browser.device.clone(),
            place: browser.place.clone(),
            last_used_at: now,
        })
        .await?;
    Ok(NewSession {
        id,
        id_hash,
        ttl_secs,
    })
}
