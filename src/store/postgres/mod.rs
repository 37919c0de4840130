//! PostgreSQL: what a team runs when one node is not enough. On sqlx's pool; every statement
//! is one round trip, and what must be atomic is one statement or one transaction. What every
//! login and token request asks is asked for all requests waiting at once, as one statement
//! (`group.rs`): the inserts of grants, codes, tokens, sessions and pending authorizations are
//! committed in groups by one writer task (`batch.rs`), each request answered once its group
//! is committed; lookups (`lookups.rs`), rate limit hits (`rate.rs`), single-use codes and
//! proofs (`single_use.rs`) and the rows a login saves (`updates.rs`) likewise.

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::job_lock::{self, JobLock};
use super::{StoreError, StoreResult};

mod account;
mod admin_keys;
mod audit;
mod batch;
mod client_cache;
mod flows;
mod group;
mod lookups;
mod rate;
mod rows;
mod single_use;
mod store;
mod updates;

pub use client_cache::LISTENER_APPLICATION_NAME;

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
    /// The grouped statements' connections (see `connect`).
    grouped: PgPool,
    options: PgConnectOptions,
    /// Clients held in memory (a server's store); `None`: every lookup reads the database.
    clients: Option<Arc<client_cache::ClientCache>>,
    /// Grants, codes and tokens, committed in groups (`batch.rs`); its task ends when the
    /// last copy of the store is dropped.
    writes: Arc<batch::GroupWriter>,
    /// Rate limit hits, counted in groups (`rate.rs`).
    hits: Arc<rate::HitCounter>,
    /// Access tokens and users, looked up in groups (`lookups.rs`).
    access_tokens: Arc<lookups::AccessTokenLookups>,
    refresh_tokens: Arc<lookups::RefreshTokenLookups>,
    users: Arc<lookups::UserLookups>,
    sessions: Arc<lookups::SessionLookups>,
    pendings: Arc<lookups::PendingLookups>,
    consents: Arc<lookups::ConsentLookups>,
    /// Codes redeemed and proofs consumed, in groups (`single_use.rs`).
    redemptions: Arc<single_use::Redemptions>,
    consumptions: Arc<single_use::Consumptions>,
    /// Users saved and pending authorizations updated, in groups (`updates.rs`).
    user_saves: Arc<updates::UserSaves>,
    pending_updates: Arc<updates::PendingUpdates>,
}

/// A pooled connection idle at least this long is pinged before it is used.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad postgres url: {e}")))?;
        let pool = pool_options(16).connect_with(options.clone()).await?;
        // The grouped statements run on connections of their own that plan each statement
        // for the arrays it is given. A plan kept for the statement's text (PostgreSQL's
        // generic plan, chosen after five runs) is made for arrays of unknown size and for
        // the tables as they were then: made while the tables were new and small, it scans
        // a whole table, and keeps doing so as the table grows (measured: a group of codes
        // redeemed in 25 ms instead of well under one). A group is one statement for many
        // requests, so planning it each time costs little.
        let grouped = pool_options(8).connect_lazy_with(
            options
                .clone()
                .options([("plan_cache_mode", "force_custom_plan")]),
        );
        let group = || grouped.clone();
        Ok(PostgresStore {
            writes: Arc::new(batch::GroupWriter::new(group())),
            hits: Arc::new(rate::HitCounter::new(group())),
            access_tokens: Arc::new(lookups::AccessTokenLookups::new(group())),
            refresh_tokens: Arc::new(lookups::RefreshTokenLookups::new(group())),
            users: Arc::new(lookups::UserLookups::new(group())),
            sessions: Arc::new(lookups::SessionLookups::new(group())),
            pendings: Arc::new(lookups::PendingLookups::new(group())),
            consents: Arc::new(lookups::ConsentLookups::new(group())),
            redemptions: Arc::new(single_use::Redemptions::new(group())),
            consumptions: Arc::new(single_use::Consumptions::new(group())),
            user_saves: Arc::new(updates::UserSaves::new(group())),
            pending_updates: Arc::new(updates::PendingUpdates::new(group())),
            grouped,
            pool,
            options,
            clients: None,
        })
    }

    /// Holds clients in memory for up to `ttl`, dropped on every node as soon as one changes
    /// (see `client_cache.rs`); a zero `ttl` keeps reading every client from the database.
    /// For a long-lived server: it keeps one more connection, which listens.
    pub fn with_client_cache(mut self, ttl: Duration) -> PostgresStore {
        if ttl.is_zero() {
            self.clients = None;
            return self;
        }
        let listening = PgPoolOptions::new()
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(3))
            .max_lifetime(None)
            .idle_timeout(None)
            .connect_lazy_with(
                self.options
                    .clone()
                    .application_name(LISTENER_APPLICATION_NAME),
            );
        self.clients = Some(client_cache::ClientCache::start(ttl, listening));
        self
    }

    /// Applies migrations; concurrent callers on many nodes serialise on sqlx's advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    }

    async fn lock_job(&self, job: &str) -> StoreResult<Option<JobLock>> {
        job_lock::try_lock_postgres(&self.pool, job).await
    }

    /// Deletes what one of `sql::Sweep`'s PostgreSQL statements finds before `before`, each
    /// batch a statement in a transaction of its own (autocommit).
    async fn sweep(&self, statement: &'static str, before: i64) -> StoreResult<u64> {
        let pool = &self.pool;
        super::sweep_in_batches(super::sql::SWEEP_BATCH_POSTGRES, |size| async move {
            Ok(sqlx::query(statement)
                .bind(before)
                .bind(size)
                .execute(pool)
                .await?
                .rows_affected())
        })
        .await
    }

    /// Groups of grant, code and token writes committed so far by this store's writer.
    #[cfg(test)]
    pub(crate) fn groups_committed(&self) -> u64 {
        self.writes.committed()
    }

    /// Statements that counted rate limit hits, and that looked up access tokens and users.
    #[cfg(test)]
    pub(crate) fn counted_and_looked_up(&self) -> (u64, u64) {
        (
            self.hits.succeeded(),
            self.access_tokens.succeeded()
                + self.refresh_tokens.succeeded()
                + self.users.succeeded()
                + self.sessions.succeeded()
                + self.pendings.succeeded()
                + self.consents.succeeded(),
        )
    }

    /// Something the group writer's task holds until it ends.
    #[cfg(test)]
    pub(crate) fn writer_probe(&self) -> std::sync::Weak<std::sync::atomic::AtomicU64> {
        self.writes.task_probe()
    }
}

/// Text as PostgreSQL can hold it. Its `text` cannot contain NUL, and a NUL sent in a parameter
/// fails the statement (SQLSTATE 22021), which would turn text from outside (a Telegram name, a
/// client id in a request) into a server error. It becomes U+FFFD instead: stored, and in a
/// lookup simply not found. SQLite stores NUL as it is.
fn text(s: &str) -> Cow<'_, str> {
    if s.contains('\0') {
        Cow::Owned(s.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(s)
    }
}

fn opt_text(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(text)
}

/// One column of many rows, bound as one array parameter (`unnest($1::text[], ...)`).
fn column<'r, R, T>(rows: &'r [R], value: impl Fn(&'r R) -> T) -> Vec<T> {
    rows.iter().map(value).collect()
}

/// A pool of `max` connections. When the database is gone a request waits up to three seconds
/// for a connection, then answers 503.
///
/// sqlx pings every connection before handing it out (and again, always, when it comes back):
/// a round trip in front of each statement. A connection in steady use was checked by that
/// ping on its return moments ago, so only one that sat idle for a while is pinged first; a
/// dead one is dropped and another taken.
fn pool_options(max: u32) -> PgPoolOptions {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(3))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for < PING_IF_IDLE_FOR {
                    return Ok(true);
                }
                match sqlx::Connection::ping(conn).await {
                    Ok(()) => Ok(true),
                    Err(error) => {
                        tracing::info!(%error, "an idle database connection is gone");
                        Ok(false)
                    }
                }
            })
        })
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        let error = store_error(e);
        super::count_error(&error);
        error
    }
}

fn store_error(e: sqlx::Error) -> StoreError {
    match &e {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(e.to_string()),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::Conflict(db.message().to_string())
        }
        sqlx::Error::Database(db)
            if is_starting_or_stopping(db.message())
                || is_connection_lost(db.code().as_deref()) =>
        {
            StoreError::Unavailable(db.message().to_string())
        }
        _ => StoreError::Internal(e.to_string()),
    }
}

/// "the database system is starting up / shutting down / in recovery mode".
fn is_starting_or_stopping(message: &str) -> bool {
    message.contains("the database system is")
}

/// PostgreSQL SQLSTATEs that mean the server went away or cannot take us right now, not that
/// the statement was wrong: class 08 (connection exception), 57P01-57P03 (admin shutdown, crash
/// shutdown, cannot connect now) and 53300 (too many connections).
fn is_connection_lost(code: Option<&str>) -> bool {
    code.is_some_and(|c| c.starts_with("08") || matches!(c, "57P01" | "57P02" | "57P03" | "53300"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_or_refused_postgres_connection_is_unavailable_not_a_bug() {
        for code in ["08006", "08001", "57P01", "57P02", "57P03", "53300"] {
            assert!(is_connection_lost(Some(code)), "{code}");
        }
        for code in ["23505", "42P01", "40001", "5"] {
            assert!(!is_connection_lost(Some(code)), "{code}");
        }
        assert!(!is_connection_lost(None));
    }

    #[test]
    fn nul_never_reaches_postgres() {
        assert!(matches!(text("plain"), Cow::Borrowed("plain")));
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        assert_eq!(opt_text(&Some("\0".into())).as_deref(), Some("\u{FFFD}"));
    }
}
