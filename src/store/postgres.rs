//! PostgreSQL: what a team runs when one node is not enough.

use std::str::FromStr;
use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::job_lock::{self, JobLock};
use super::{StoreError, StoreResult};

#[derive(Clone)]
pub struct PostgresStore {
    pool: PgPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

impl PostgresStore {
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Internal(format!("bad postgres url: {e}")))?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // When the database is gone a request waits this long, then answers 503.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options)
            .await?;
        Ok(PostgresStore { pool })
    }

    /// Applies migrations; concurrent callers on many nodes serialise on sqlx's advisory lock.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Internal(format!("migration failed: {e}")))
    }

    /// SQLite's direct path (sqlite_direct.rs) has no counterpart here: every statement goes
    /// through the pool.
    fn direct(&self) -> Option<&super::sqlite_direct::SqliteDirect> {
        None
    }

    async fn lock_job(&self, job: &str) -> StoreResult<Option<JobLock>> {
        job_lock::try_lock_postgres(&self.pool, job).await
    }
}

super::sql::impl_sql_store!(PostgresStore, sqlx::Postgres);
super::sql_flows::impl_flow_store!(PostgresStore, sqlx::Postgres);
