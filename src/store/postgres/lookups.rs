//! The lookups every token use makes (an access token by its hash, a user by id), run for
//! every request waiting at the moment as one `SELECT ... WHERE key = ANY($1)` (a [`Job`] of
//! `group.rs`). Sixty introspections at once cost PostgreSQL one statement, not sixty.
//!
//! A group's statement starts only after each of its requests was handed over, so a lookup
//! sees every write committed before it was asked, as a statement of its own would.

use std::collections::BTreeMap;

use sqlx::PgPool;
use sqlx::postgres::PgRow;

use super::group::{Grouper, Job, Pending};
use super::rows;
use crate::store::{AccessTokenState, StoreResult, UserRecord};

const GET_ACCESS_TOKENS: &str = "SELECT a.token_hash, a.grant_id, a.client_id, a.user_id, a.scope, a.created_at, a.expires_at, \
     a.revoked_at AS token_revoked_at, g.id AS live_grant, g.revoked_at \
     FROM access_tokens a LEFT JOIN grants g ON g.id = a.grant_id WHERE a.token_hash = ANY($1::bytea[])";
const GET_USERS: &str = "SELECT telegram_id, first_name, last_name, username, photo_url, language_code, is_premium, phone_number, created_at, updated_at, group_names \
     FROM users WHERE telegram_id = ANY($1::bigint[])";

/// Most lookups one statement makes.
const MOST_LOOKUPS: usize = 256;

/// An access token, by the hash of the token.
pub(super) struct AccessTokenByHash(pub(super) Vec<u8>);

/// A user, by Telegram id.
pub(super) struct UserById(pub(super) i64);

pub(super) type AccessTokenLookups = Grouper<AccessTokenByHash>;
pub(super) type UserLookups = Grouper<UserById>;

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
    }
}

/// Answers each request of a group with the row found for its key, or none; every request
/// with the error when the statement (or reading one of its rows) failed.
fn answer_each<J, K, V>(
    group: Vec<Pending<J>>,
    found: Result<Vec<PgRow>, sqlx::Error>,
    key_of: impl Fn(&Pending<J>) -> K,
    entry: impl Fn(&PgRow) -> StoreResult<(K, V)>,
) -> bool
where
    J: Job<Answer = Option<V>>,
    K: Ord,
    V: Clone,
{
    let found: StoreResult<BTreeMap<K, V>> = found
        .map_err(Into::into)
        .and_then(|rows| rows.iter().map(&entry).collect());
    match found {
        Ok(found) => {
            for request in group {
                let value = found.get(&key_of(&request)).cloned();
                request.answer(Ok(value));
            }
            true
        }
        Err(error) => {
            for request in group {
                request.answer(Err(error.clone()));
            }
            false
        }
    }
}
