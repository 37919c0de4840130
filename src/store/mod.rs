//! Storage behind one trait. Every backend implements [`Store`]; the provider never knows
//! which one it talks to. Bearer secrets (codes, tokens, session ids, client secrets) arrive
//! here already hashed: a store never sees one in plain text.

//!
//! Each database has its own module with plain implementations: `sqlite/` on rusqlite (reads on
//! the caller's thread, one writer thread committing in groups), `postgres/` on sqlx (new
//! grants, codes and tokens committed in groups too, by one writer task). The text of their
//! statements, where it is the same, lives once in `sql.rs`.

use async_trait::async_trait;

pub mod account;
pub mod admin_keys;
pub mod admin_users;
pub mod audit;
pub mod flows;
pub mod job_lock;
pub mod postgres;
pub mod rate;
mod records;
mod sql;
pub mod sqlite;
#[cfg(test)]
mod tests;

pub use account::{AccountStore, LoginAlertsRecord, UserAppRecord};
pub use admin_keys::{AdminKeyRecord, AdminKeyStore, AdminScope, AdminSessionRecord};
pub use admin_users::{AdminUserStore, UserQuery, UserSummary};
pub use audit::{AuditEntry, AuditQuery, AuditStore};
pub use flows::FlowStore;
pub use job_lock::JobLock;
pub use postgres::PostgresStore;
pub use rate::{RateCounterStore, RateWindow};
pub use records::*;
pub use sqlite::SqliteStore;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached right now; the request may be retried.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    #[error("already exists: {0}")]
    Conflict(String),
    #[error("database error: {0}")]
    Internal(String),
}

/// A store failure as the protocol reports it: an outage is `temporarily_unavailable`, anything
/// else a `server_error` whose detail stays in the log.
impl From<StoreError> for crate::error::OAuthError {
    fn from(e: StoreError) -> Self {
        use crate::error::OAuthError;
        match e {
            StoreError::Unavailable(msg) => {
                tracing::warn!(error = %msg, "database unavailable");
                OAuthError::new(
                    crate::error::ErrorCode::TemporarilyUnavailable,
                    "the service is temporarily unavailable, try again shortly",
                )
            }
            other => OAuthError::server_error(other),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Counts a database driver's error in the metrics (a conflict is an answer, not an error).
pub(crate) fn count_error(error: &StoreError) {
    match error {
        StoreError::Unavailable(_) => crate::metrics::db_error("unavailable"),
        StoreError::Internal(_) => crate::metrics::db_error("internal"),
        StoreError::Conflict(_) => {}
    }
}

/// Runs one batch of a sweep after another until a batch finds fewer than `size` rows
/// ([`sql::SWEEP_BATCH_SQLITE`], [`sql::SWEEP_BATCH_POSTGRES`]); returns how many rows they deleted in all. Each batch is a
/// statement of its own (on SQLite a write of its own), so what waits for the database runs
/// between two of them rather than after the whole sweep; and after each batch the sweep
/// rests [`SWEEP_REST`] times as long as the batch took, so it never holds the database more
/// than a third of the time (a deleted row costs about what an inserted one did: a sweep at
/// full speed under load halved the requests served on SQLite, measured with the benchmark's
/// `--preload --sweep`).
pub(crate) async fn sweep_in_batches<F, Fut>(size: i64, mut batch: F) -> StoreResult<u64>
where
    F: FnMut(i64) -> Fut,
    Fut: std::future::Future<Output = StoreResult<u64>>,
{
    let mut total = 0;
    loop {
        let started = std::time::Instant::now();
        let deleted = batch(size).await?;
        total += deleted;
        if deleted < size as u64 {
            return Ok(total);
        }
        tokio::time::sleep(started.elapsed() * SWEEP_REST).await;
    }
}

/// How many times as long as a batch of the sweep took it rests before the next batch.
const SWEEP_REST: u32 = 2;

/// The tokens stored with a new grant ([`Store::create_grant_with_tokens`]) must be its own.
pub(crate) fn check_tokens_of(
    grant: &GrantRecord,
    access: Option<&AccessTokenRecord>,
    refresh: Option<&RefreshTokenRecord>,
) -> StoreResult<()> {
    let ids = access.map(|a| &a.grant_id).into_iter();
    if ids
        .chain(refresh.map(|r| &r.grant_id))
        .any(|id| *id != grant.id)
    {
        return Err(StoreError::Internal("a token of another grant".into()));
    }
    Ok(())
}

/// Group names as the users table keeps them: a JSON array.
pub(crate) fn groups_json(groups: &[String]) -> StoreResult<String> {
    serde_json::to_string(groups).map_err(|e| StoreError::Internal(format!("groups: {e}")))
}

/// The users table's group names, read back; a value that is not an array of names reads as
/// never computed.
pub(crate) fn groups_from_json(json: Option<String>) -> Option<Vec<String>> {
    json.and_then(|j| serde_json::from_str(&j).ok())
}

#[async_trait]
pub trait Store:
    FlowStore
    + AccountStore
    + AuditStore
    + AdminKeyStore
    + AdminUserStore
    + RateCounterStore
    + Send
    + Sync
    + 'static
{
    async fn ping(&self) -> StoreResult<()>;

    /// How the store's connections are used right now, for the metrics.
    fn pool_stats(&self) -> crate::metrics::PoolStats;

    async fn create_client(&self, client: &ClientRecord) -> StoreResult<()>;
    async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>>;
    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>>;
    async fn update_client(&self, client: &ClientRecord) -> StoreResult<bool>;
    /// Stores `client` only while its stored settings are still `read` (checked and written
    /// in one transaction); false when the client is gone or was changed meanwhile.
    async fn update_client_unless_changed(
        &self,
        client: &ClientRecord,
        read: &ClientSettings,
    ) -> StoreResult<bool>;
    async fn delete_client(&self, client_id: &str) -> StoreResult<bool>;
    /// Removes the client (as [`Store::delete_client`]) only while its stored settings are
    /// still `read`, checked and removed in one transaction; false when it is gone or was
    /// changed meanwhile.
    async fn delete_client_unless_changed(
        &self,
        client_id: &str,
        read: &ClientSettings,
    ) -> StoreResult<bool>;

    /// Inserts the user, or refreshes the profile of a known one, whose `created_at` stays.
    /// Returns when an admin blocked the user, if one did (read in the same statement, so
    /// the login gate needs no second query).
    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<Option<i64>>;
    async fn get_user(&self, telegram_id: i64) -> StoreResult<Option<UserRecord>>;
    /// Replaces the configured groups a known user was found in (the `groups` claim).
    async fn set_user_groups(&self, telegram_id: i64, groups: &[String]) -> StoreResult<()>;

    /// Records a one-time proof (a widget `hash`, an initData hash, ...). True the first time,
    /// false on every later call with the same hash: the caller refuses a replay.
    async fn consume_proof(&self, proof_hash: &[u8], expires_at: i64) -> StoreResult<bool>;

    async fn create_session(&self, session: &SessionRecord) -> StoreResult<()>;
    async fn get_session(&self, id_hash: &[u8], now: i64) -> StoreResult<Option<SessionRecord>>;
    async fn delete_session(&self, id_hash: &[u8]) -> StoreResult<()>;
    /// Notes that `client_id` received a code in this browser session.
    async fn record_session_client(
        &self,
        session_hash: &[u8],
        client_id: &str,
        user_id: i64,
        expires_at: i64,
    ) -> StoreResult<()>;
    /// The apps of a session, forgotten as they are returned: a logout tells each one once.
    async fn take_session_clients(&self, session_hash: &[u8]) -> StoreResult<Vec<(String, i64)>>;

    async fn create_pending(&self, pending: &PendingAuthorization) -> StoreResult<()>;
    async fn get_pending(
        &self,
        id_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<PendingAuthorization>>;
    async fn update_pending(&self, id_hash: &[u8], request: &str) -> StoreResult<bool>;
    async fn delete_pending(&self, id_hash: &[u8]) -> StoreResult<()>;

    async fn get_consent(&self, user_id: i64, client_id: &str) -> StoreResult<Option<String>>;
    async fn save_consent(
        &self,
        user_id: i64,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<()>;

    async fn create_grant_with_code(
        &self,
        grant: &GrantRecord,
        code: &CodeRecord,
    ) -> StoreResult<()>;
    async fn create_grant(&self, grant: &GrantRecord) -> StoreResult<()>;
    /// Ends an authorization in a browser with a code: stores the grant with its code, notes
    /// its client for the session (`record_session_client`) and deletes the pending
    /// authorization. A store that can does it as one write (PostgreSQL, all or nothing);
    /// by default one after the other, in that order.
    async fn issue_code(
        &self,
        grant: &GrantRecord,
        code: &CodeRecord,
        session: &SessionRecord,
        pending_hash: &[u8],
    ) -> StoreResult<()> {
        self.create_grant_with_code(grant, code).await?;
        self.record_session_client(
            &session.id_hash,
            &grant.client_id,
            session.user_id,
            session.expires_at,
        )
        .await?;
        self.delete_pending(pending_hash).await
    }
    /// Stores a new grant and the first tokens issued for it, all or nothing: a failure leaves
    /// no grant behind. The tokens must be of `grant`, else nothing is stored.
    async fn create_grant_with_tokens(
        &self,
        grant: &GrantRecord,
        access: Option<&AccessTokenRecord>,
        refresh: Option<&RefreshTokenRecord>,
    ) -> StoreResult<()>;
    async fn get_grant(&self, id: &str) -> StoreResult<Option<GrantRecord>>;
    /// Marks a code of `client_id` used, atomically: of many parallel callers exactly one gets
    /// `Redeemed`. Another client's code is `NotFound` and stays unused.
    async fn redeem_code(
        &self,
        code_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<RedeemOutcome>;
    async fn revoke_grant(&self, grant_id: &str, now: i64) -> StoreResult<()>;

    /// Stores what one token response issues, all or nothing.
    async fn store_tokens(
        &self,
        access: Option<&AccessTokenRecord>,
        refresh: Option<&RefreshTokenRecord>,
    ) -> StoreResult<()>;
    async fn get_access_token(&self, token_hash: &[u8]) -> StoreResult<Option<AccessTokenState>>;
    /// Revokes one access token of `client_id` (RFC 7009); false when there is none.
    async fn revoke_access_token(
        &self,
        token_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<bool>;
    /// A refresh token with its grant, used or not, for revocation and introspection.
    async fn get_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshTokenState>>;
    /// Uses a refresh token of `client_id` once and stores its successor (same grant), and the
    /// access token issued with it if any, in the same transaction: either the caller gets
    /// both, or the old token stays unused. Another client's token is `Invalid` and stays
    /// usable. The access token must belong to the grant of `old_hash`, else nothing is stored.
    async fn rotate_refresh_token_issuing(
        &self,
        old_hash: &[u8],
        client_id: &str,
        successor: &RefreshTokenRecord,
        access: Option<&AccessTokenRecord>,
        now: i64,
    ) -> StoreResult<RotateOutcome>;

    /// Deletes rows whose life is over; returns how many.
    async fn delete_expired(&self, now: i64) -> StoreResult<u64>;

    async fn create_upstream_login(&self, login: &UpstreamLogin) -> StoreResult<()>;
    /// Uses an upstream login once, atomically: of many parallel callers with the same state
    /// only one gets it, and only before it expires.
    async fn take_upstream_login(
        &self,
        state_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<UpstreamLogin>>;

    /// Takes the lock of a job that must run on one node at a time (expired-row cleanup, Bot
    /// API polling), or `None` while another node or task holds it. The lock is held until the
    /// [`JobLock`] is released or dropped; see [`job_lock`] for how.
    async fn try_lock_job(&self, job: &str) -> StoreResult<Option<JobLock>>;
}
