//! Locks for work that must run on one node at a time: the sweep of expired rows, and the Bot
//! API long poll (`getUpdates` answers one caller; two pollers would steal each other's updates).
//!
//! On PostgreSQL the lock is a session-level advisory lock (`pg_try_advisory_lock`) taken on one
//! pooled connection that the holder keeps for as long as it runs the job. Advisory locks belong
//! to the session: the same connection must unlock, and if the node dies or its connection
//! breaks, PostgreSQL frees the lock and another node takes the job over on its next try. This
//! needs a session, so a pooler in transaction mode (PgBouncer) must not sit in between.
//! On SQLite, the single-node store, the lock lives in the process.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use sqlx::pool::PoolConnection;

use super::StoreResult;

/// The holder's right to run one job. Dropping it releases the lock (on PostgreSQL by closing
/// its connection); [`JobLock::release`] releases it and keeps the connection.
pub struct JobLock {
    job: String,
    inner: Inner,
}

enum Inner {
    Local(Arc<Mutex<HashSet<String>>>),
    Postgres {
        conn: Option<PoolConnection<sqlx::Postgres>>,
        key: i64,
    },
}

impl std::fmt::Debug for JobLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobLock").field("job", &self.job).finish()
    }
}

/// The advisory lock key of a job: 64 bits of a namespaced SHA-256, so that our jobs never
/// collide with each other or with another application's keys on the same database.
pub fn advisory_key(job: &str) -> i64 {
    let digest = crate::secrets::sha256(format!("telegram-oidc job {job}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// Process-local job locks, for the single-node store.
#[derive(Clone, Default)]
pub struct LocalJobLocks(Arc<Mutex<HashSet<String>>>);

impl LocalJobLocks {
    pub fn try_lock(&self, job: &str) -> Option<JobLock> {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if !held.insert(job.to_owned()) {
            return None;
        }
        Some(JobLock {
            job: job.to_owned(),
            inner: Inner::Local(self.0.clone()),
        })
    }
}

/// Takes the advisory lock of `job` on a connection of `pool`, which the lock then keeps.
pub async fn try_lock_postgres(pool: &sqlx::PgPool, job: &str) -> StoreResult<Option<JobLock>> {
    let key = advisory_key(job);
    let mut conn = pool.acquire().await?;
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut *conn)
        .await?;
    if !taken {
        return Ok(None);
    }
    Ok(Some(JobLock {
        job: job.to_owned(),
        inner: Inner::Postgres {
            conn: Some(conn),
            key,
        },
    }))
}

impl JobLock {
    pub fn job(&self) -> &str {
        &self.job
    }

    /// Whether this holder still has the lock. On PostgreSQL the lock lives exactly as long as
    /// the session that took it, so a session that still answers still holds it; a broken one
    /// has lost it (another node may have it by now), and the holder must stop and try again.
    pub async fn is_held(&mut self) -> bool {
        match &mut self.inner {
            Inner::Local(_) => true,
            Inner::Postgres { conn, .. } => {
                let Some(c) = conn.as_mut() else { return false };
                let alive = sqlx::query("SELECT 1").execute(&mut **c).await.is_ok();
                if !alive && let Some(mut broken) = conn.take() {
                    broken.close_on_drop();
                }
                alive
            }
        }
    }

    /// Releases the lock now.
    pub async fn release(mut self) {
        if let Inner::Postgres { conn, key } = &mut self.inner
            && let Some(mut c) = conn.take()
        {
            let unlocked: Result<bool, _> = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
                .bind(*key)
                .fetch_one(&mut *c)
                .await;
            if !matches!(unlocked, Ok(true)) {
                // Ending the session is the other way to free a session-level lock.
                c.close_on_drop();
            }
        }
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        match &mut self.inner {
            Inner::Local(held) => {
                held.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .remove(&self.job);
            }
            Inner::Postgres { conn, .. } => {
                // No async unlock in `drop`: closing the session releases its locks, whereas
                // handing the connection back to the pool would leave the lock held.
                if let Some(c) = conn.as_mut() {
                    c.close_on_drop();
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_locks_are_exclusive_per_job_and_freed_on_drop() {
        let locks = LocalJobLocks::default();
        let first = locks.try_lock("cleanup").unwrap();
        assert!(locks.try_lock("cleanup").is_none());
        assert!(locks.try_lock("telegram-updates").is_some());
        drop(first);
        assert!(locks.try_lock("cleanup").is_some());
    }

    #[test]
    fn advisory_keys_differ_per_job_and_are_stable() {
        assert_ne!(advisory_key("cleanup"), advisory_key("telegram-updates"));
        assert_eq!(advisory_key("cleanup"), advisory_key("cleanup"));
    }
}
