//! Rows saved by a login, for every request waiting at the moment in one statement (a [`Job`]
//! of `group.rs`): Telegram users saved, pending authorizations updated. Each row once per
//! statement (one statement may not touch a row twice): when two requests of a group save
//! the same row, the first one's values are written, as if it had come last of the two, and
//! both hear what the statement found.

use std::collections::BTreeMap;

use sqlx::{PgPool, Row};

use super::group::{Grouper, Job, Pending, Repeats, run_keyed};
use super::{column, opt_text, text};
use crate::store::{StoreResult, UserRecord};

/// As `sql::UPSERT_USER`, for many: the users saved, each with when it was blocked.
const UPSERT_USERS: &str = concat!(
    "INSERT INTO users (telegram_id, first_name, last_name, username, photo_url, language_code, is_premium, phone_number, created_at, updated_at) \
     SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[], $8::text[], $9::bigint[], $10::bigint[])",
    crate::store::sql::user_saved_over!(),
    " RETURNING telegram_id, blocked_at"
);
/// As `sql::UPDATE_PENDING`, for many: the ones found.
const UPDATE_PENDINGS: &str = "UPDATE pending_authorizations p SET request = v.r \
     FROM unnest($1::bytea[], $2::text[]) AS v(h, r) \
     WHERE p.id_hash = ANY($1::bytea[]) AND p.id_hash = v.h RETURNING p.id_hash";

/// Most requests one statement takes.
const MOST_SAVED: usize = 256;

/// A user to save: when the user was blocked, if ever.
pub(super) struct SaveUser(pub(super) UserRecord);

/// A pending authorization's new request: whether it was there.
pub(super) struct UpdatePending {
    pub(super) id_hash: Vec<u8>,
    pub(super) request: String,
}

pub(super) type UserSaves = Grouper<SaveUser>;
pub(super) type PendingUpdates = Grouper<UpdatePending>;

impl Job for SaveUser {
    type Answer = Option<i64>;
    const MOST: usize = MOST_SAVED;

    async fn run(pool: PgPool, group: Vec<Pending<Self>>) -> bool {
        let key = |u: &SaveUser| u.0.telegram_id;
        run_keyed(&pool, group, key, Repeats::Share, save_users).await
    }
}

impl Job for UpdatePending {
    type Answer = bool;
    const MOST: usize = MOST_SAVED;

    async fn run(pool: PgPool, group: Vec<Pending<Self>>) -> bool {
        let key = |u: &UpdatePending| u.id_hash.clone();
        run_keyed(&pool, group, key, Repeats::Share, update_pendings).await
    }
}

async fn save_users(
    pool: &PgPool,
    users: &BTreeMap<i64, &SaveUser>,
) -> StoreResult<BTreeMap<i64, Option<i64>>> {
    let u: Vec<&UserRecord> = users.values().map(|s| &s.0).collect();
    let saved = sqlx::query(UPSERT_USERS)
        .bind(column(&u, |u| u.telegram_id))
        .bind(column(&u, |u| text(&u.first_name)))
        .bind(column(&u, |u| opt_text(&u.last_name)))
        .bind(column(&u, |u| opt_text(&u.username)))
        .bind(column(&u, |u| opt_text(&u.photo_url)))
        .bind(column(&u, |u| opt_text(&u.language_code)))
        .bind(column(&u, |u| u.is_premium))
        .bind(column(&u, |u| opt_text(&u.phone_number)))
        .bind(column(&u, |u| u.created_at))
        .bind(column(&u, |u| u.updated_at))
        .fetch_all(pool)
        .await?;
    let mut blocked = BTreeMap::new();
    for row in &saved {
        blocked.insert(row.try_get("telegram_id")?, row.try_get("blocked_at")?);
    }
    Ok(blocked)
}

async fn update_pendings(
    pool: &PgPool,
    updates: &BTreeMap<Vec<u8>, &UpdatePending>,
) -> StoreResult<BTreeMap<Vec<u8>, bool>> {
    let hashes: Vec<&[u8]> = updates.keys().map(|h| &h[..]).collect();
    let requests: Vec<_> = updates.values().map(|u| text(&u.request)).collect();
    let found: Vec<Vec<u8>> = sqlx::query_scalar(UPDATE_PENDINGS)
        .bind(&hashes)
        .bind(&requests)
        .fetch_all(pool)
        .await?;
    Ok(found.into_iter().map(|h| (h, true)).collect())
}
