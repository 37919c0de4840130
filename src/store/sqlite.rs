//! The embedded default: one SQLite file in WAL mode.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::job_lock::{JobLock, LocalJobLocks};
use super::sqlite_direct::SqliteDirect;
use super::{StoreError, StoreResult};

#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// The statements of logins and token requests, called directly (sqlite_direct.rs); none
    /// for an in-memory database, which only the pool's connections share.
    direct: Option<Arc<SqliteDirect>>,
    jobs: LocalJobLocks,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");

impl SqliteStore {
    /// Opens (creating if missing) the database file of a `sqlite://` URL.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad sqlite url: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        if let Some(parent) = options.get_filename().parent()
            && !parent.as_os_str().is_empty()
        {
            std::fs::create_dir_all(parent).map_err(|e| {
                StoreError::Internal(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        let filename = options.get_filename();
        let direct = (filename != std::path::Path::new(":memory:") && !url.contains("mode=memory"))
            .then(|| Arc::new(SqliteDirect::new(filename.to_path_buf())));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            // sqlx would otherwise ping every connection it hands out: for SQLite a round trip
            // to the connection's worker thread per query, and a file does not go stale.
            .test_before_acquire(false)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await?;
        Ok(SqliteStore {
            pool,
            direct,
            jobs: LocalJobLocks::default(),
        })
    }

    fn direct(&self) -> Option<&SqliteDirect> {
        self.direct.as_deref()
    }

    /// One SQLite file serves one node, so its run-once jobs need only a lock in the process.
    async fn lock_job(&self, job: &str) -> StoreResult<Option<JobLock>> {
        Ok(self.jobs.try_lock(job))
    }

    /// The journal mode and busy timeout (ms) a pooled connection runs with, for checks.
    pub async fn journal_settings(&self) -> StoreResult<(String, i64)> {
        let mut conn = self.pool.acquire().await?;
        let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await?;
        let timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await?;
        Ok((mode, timeout))
    }

    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    }
}

super::sql::impl_sql_store!(SqliteStore, sqlx::Sqlite);
super::sql_flows::impl_flow_store!(SqliteStore, sqlx::Sqlite);
