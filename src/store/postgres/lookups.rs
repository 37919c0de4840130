//! The lookups every token use and every login makes (an access token by its hash, a user by
//! id, a browser session, a pending authorization, a consent), run for every request waiting
//! at the moment as one `SELECT ... WHERE key = ANY($1)` (a [`Job`] of `group.rs`). Sixty
//! introspections at once cost PostgreSQL one statement, not sixty. A row that ends is read
//! whatever its end, and each request sees it only while it has not ended at that request's
//! `now`, as the single-row statement's `expires_at > $2` would.
//!
//! A group's statement starts only after each of its requests was handed over, so a lookup
//! sees every write committed before it was asked, as a statement of its own would.

use std::collections::BTreeMap;

use sqlx::postgres::PgRow;
use sqlx::{PgPool, Row};

use super::group::{Grouper, Job, Pending};
use super::{rows, text};
use crate::store::{
    AccessTokenState, PendingAuthorization, RefreshTokenState, SessionRecord, StoreResult,
    UserRecord,
};

const GET_ACCESS_TOKENS: &str = "SELECT a.token_hash, a.grant_id, a.client_id, a.user_id, a.scope, a.created_at, a.expires_at, \
     a.revoked_at AS token_revoked_at, g.id AS live_grant, g.revoked_at \
     FROM access_tokens a LEFT JOIN grants g ON g.id = a.grant_id WHERE a.token_hash = ANY($1::bytea[])";
const GET_REFRESH_TOKENS: &str = "SELECT r.token_hash, r.created_at AS token_created_at, r.expires_at AS token_expires_at, r.used_at, \
     g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.amr, g.nonce, g.created_at, g.revoked_at, g.expires_at, g.session_hash \
     FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = ANY($1::bytea[])";
const GET_USERS: &str = "SELECT telegram_id, first_name, last_name, username, photo_url, language_code, is_premium, phone_number, created_at, updated_at, group_names \
     FROM users WHERE telegram_id = ANY($1::bigint[])";
const GET_SESSIONS: &str = "SELECT id_hash, user_id, auth_time, amr, created_at, expires_at, device, place, last_used_at \
     FROM sessions WHERE id_hash = ANY($1::bytea[])";
const GET_PENDINGS: &str = "SELECT id_hash, client_id, request, created_at, expires_at \
     FROM pending_authorizations WHERE id_hash = ANY($1::bytea[])";
const GET_CONSENTS: &str = "SELECT c.user_id, c.client_id, c.scope FROM consents c \
     JOIN unnest($1::bigint[], $2::text[]) AS k(u, id) ON c.user_id = k.u AND c.client_id = k.id \
     WHERE c.user_id = ANY($1::bigint[])";

/// Most lookups one statement makes.
const MOST_LOOKUPS: usize = 256;

/// An access token, by the hash of the token.
pub(super) struct AccessTokenByHash(pub(super) Vec<u8>);

/// A refresh token, with its grant, by the hash of the token.
pub(super) struct RefreshTokenByHash(pub(super) Vec<u8>);

/// A user, by Telegram id.
pub(super) struct UserById(pub(super) i64);

/// A browser session by the hash of its id, if it has not ended at `now`.
pub(super) struct SessionByHash {
    pub(super) id_hash: Vec<u8>,
    pub(super) now: i64,
}

/// A pending authorization by the hash of its id, if it has not ended at `now`.
pub(super) struct PendingByHash {
    pub(super) id_hash: Vec<u8>,
    pub(super) now: i64,
}

/// The scope a user consented to for a client.
pub(super) struct ConsentOf {
    pub(super) user_id: i64,
    pub(super) client_id: String,
}

pub(super) type AccessTokenLookups = Grouper<AccessTokenByHash>;
pub(super) type RefreshTokenLookups = Grouper<RefreshTokenByHash>;
pub(super) type UserLookups = Grouper<UserById>;
pub(super) type SessionLookups = Grouper<SessionByHash>;
pub(super) type PendingLookups = Grouper<PendingByHash>;
pub(super) type ConsentLookups = Grouper<ConsentOf>;

impl Job for AccessTokenByHash {
    type Answer = Option<AccessTokenState>;
    const MOST: usize = MOST_LOOKUPS;

    async fn run(pool: PgPool, group: Vec<Pending<Self>>) -> bool {
        let keys: Vec<&[u8]> = group.iter().map(|p| &p.job.0[..]).collect();
        let found = sqlx::query(GET_ACCESS_TOKENS)
            .bind(&keys)
            .fetch_all(&pool)
            .await;
        answer_each(
            group,
            found,
            |p| p.job.0.clone(),
            |row| {
                let state = rows::access_token(row)?;
                Ok((state.record.token_hash.clone(), state))
            },
        )
        .answer(|_, state| state)
    }
}

impl Job for RefreshTokenByHash {
    type Answer = Option<RefreshTokenState>;
    const MOST: usize = MOST_LOOKUPS;

    async fn run(pool: PgPool, group: Vec<Pending<Self>>) -> bool {
        let keys: Vec<&[u8]> = group.iter().map(|p| &p.job.0[..]).collect();
        let found = sqlx::query(GET_REFRESH_TOKENS)
            .bind(&keys)
            .fetch_all(&pool)
            .await;
        let key = |p: &Pending<Self>| p.job.0.clone();
        answer_each(group, found, key, |row| {
            let state = rows::refresh_token(row)?;
            Ok((state.record.token_hash.clone(), state))
        })
        .answer(|_, state| state)
    }
}

impl Job for UserById {
    type Answer = Option<UserRecord>;
    const MOST: usize = MOST_LOOKUPS;

    async fn run(pool: PgPool, group: Vec<Pending<Self>>) -> bool {
        let keys: Vec<i64> = group.iter().map(|p| p.job.0).collect();
        let found = sqlx::query(GET_USERS).bind(&keys).fetch_all(&pool).await;
        answer_each(
            group,
            found,
            |p| p.job.0,
            |row| {
                let user = rows::user(row)?;
                Ok((user.telegram_id, user))
            },
        )
        .answer(|_, user| user)
    }
}

impl Job for SessionByHash {
    type Answer = Option<SessionRecord>;
    const MOST: usize = MOST_LOOKUPS;

    async fn run(pool: PgPool, group: Vec<Pending<Self>>) -> bool {
        let keys: Vec<&[u8]> = group.iter().map(|p| &p.job.id_hash[..]).collect();
        let found = sqlx::query(GET_SESSIONS).bind(&keys).fetch_all(&pool).await;
        let found = answer_each(
            group,
            found,
            |p| p.job.id_hash.clone(),
            |row| {
                let session = rows::session(row)?;
                Ok((session.id_hash.clone(), session))
            },
        );
        found.answer(|p, s| s.filter(|s| s.expires_at > p.job.now))
    }
}

impl Job for PendingByHash {
    type Answer = Option<PendingAuthorization>;
    const MOST: usize = MOST_LOOKUPS;

    async fn run(pool: PgPool, group: Vec<Pending<Self>>) -> bool {
        let keys: Vec<&[u8]> = group.iter().map(|p| &p.job.id_hash[..]).collect();
        let found = sqlx::query(GET_PENDINGS).bind(&keys).fetch_all(&pool).await;
        let found = answer_each(
            group,
            found,
            |p| p.job.id_hash.clone(),
            |row| {
                let pending = rows::pending(row)?;
                Ok((pending.id_hash.clone(), pending))
            },
        );
        found.answer(|p, found| found.filter(|f| f.expires_at > p.job.now))
    }
}

impl Job for ConsentOf {
    type Answer = Option<String>;
    const MOST: usize = MOST_LOOKUPS;

    async fn run(pool: PgPool, group: Vec<Pending<Self>>) -> bool {
        let users: Vec<i64> = group.iter().map(|p| p.job.user_id).collect();
        let clients: Vec<_> = group.iter().map(|p| text(&p.job.client_id)).collect();
        let found = sqlx::query(GET_CONSENTS)
            .bind(&users)
            .bind(&clients)
            .fetch_all(&pool)
            .await;
        let key = |p: &Pending<Self>| (p.job.user_id, text(&p.job.client_id).into_owned());
        answer_each(group, found, key, |row| {
            let user: i64 = row.try_get("user_id")?;
            let client: String = row.try_get("client_id")?;
            Ok(((user, client), row.try_get("scope")?))
        })
        .answer(|_, scope| scope)
    }
}

/// A group with the rows its statement found, by key.
struct Found<J: Job, K, V> {
    group: Vec<Pending<J>>,
    key_of: fn(&Pending<J>) -> K,
    rows: StoreResult<BTreeMap<K, V>>,
}

/// Reads the rows a group's statement found (`entry` gives each row's key and value).
fn answer_each<J: Job, K: Ord, V>(
    group: Vec<Pending<J>>,
    found: Result<Vec<PgRow>, sqlx::Error>,
    key_of: fn(&Pending<J>) -> K,
    entry: impl Fn(&PgRow) -> StoreResult<(K, V)>,
) -> Found<J, K, V> {
    let rows = found
        .map_err(Into::into)
        .and_then(|rows| rows.iter().map(&entry).collect());
    Found {
        group,
        key_of,
        rows,
    }
}

impl<J: Job, K: Ord, V: Clone> Found<J, K, V> {
    /// Answers each request with what `answer` makes of the row found for its key, or of
    /// none; every request with the error when the statement (or reading one of its rows)
    /// failed. `true` when the statement succeeded.
    fn answer(self, answer: impl Fn(&Pending<J>, Option<V>) -> J::Answer) -> bool {
        match self.rows {
            Ok(rows) => {
                for request in self.group {
                    let value = rows.get(&(self.key_of)(&request)).cloned();
                    let value = answer(&request, value);
                    request.answer(Ok(value));
                }
                true
            }
            Err(error) => {
                for request in self.group {
                    request.answer(Err(error.clone()));
                }
                false
            }
        }
    }
}
