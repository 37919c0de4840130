//! The browser session: started by a login that passed the gate's first step, found again by
//! the hash of the id in the browser's cookie (the cookie itself is `web`'s business).

use crate::secrets::{TokenKind, new_token, token_hash};
use crate::state::App;
use crate::store::{SessionRecord, StoreResult};

/// A session just started: the raw id for the cookie, the stored hash, its lifetime.
pub struct NewSession {
    pub id: String,
    pub id_hash: Vec<u8>,
    pub ttl_secs: i64,
}

/// The live session whose raw id is `id`, if any.
pub async fn find(app: &App, id: &str, now: i64) -> StoreResult<Option<SessionRecord>> {
    app.store.get_session(&token_hash(id), now).await
}

/// Starts a session for `user_id`. A new login replaces the browser's old session (`replaces`):
/// a fixed id would let a planted cookie ride along.
pub async fn start(
    app: &App,
    user_id: i64,
    amr: &str,
    replaces: Option<&str>,
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
        })
        .await?;
    Ok(NewSession {
        id,
        id_hash,
        ttl_secs,
    })
}
