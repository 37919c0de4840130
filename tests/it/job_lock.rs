//! Run-once jobs: of two nodes asking at once, one gets the job; a released, dropped or lost
//! lock can be taken by the other.

use std::sync::Arc;
use std::time::{Duration, Instant};

use telegram_oidc::secrets::new_id;
use telegram_oidc::store::job_lock::advisory_key;
use telegram_oidc::store::{JobLock, Store};

use crate::store::postgres_url;

async fn race(a: &Arc<dyn Store>, b: &Arc<dyn Store>, job: &str) -> (Option<JobLock>, bool) {
    let (x, y) = tokio::join!(a.try_lock_job(job), b.try_lock_job(job));
    match (x.unwrap(), y.unwrap()) {
        (Some(lock), None) => (Some(lock), true),
        (None, Some(lock)) => (Some(lock), false),
        (x, y) => panic!(
            "exactly one taker must win, got {} winners",
            x.is_some() as u8 + y.is_some() as u8
        ),
    }
}

/// Tries to take `job` on `store` until it succeeds or `limit` passes: a dropped lock is
/// freed when PostgreSQL notices its session closed, which another process does.
async fn take_within(store: &Arc<dyn Store>, job: &str, limit: Duration) -> JobLock {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(lock) = store.try_lock_job(job).await.unwrap() {
            return lock;
        }
        assert!(
            Instant::now() < deadline,
            "the lock of {job} was never freed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn one_of_two_postgres_nodes_gets_a_job_and_the_other_takes_over() {
    let Some(url) = postgres_url() else { return };
    // Two stores, two pools: two nodes as far as PostgreSQL can tell.
    let a = telegram_oidc::open_store(&url).await.unwrap();
    let b = telegram_oidc::open_store(&url).await.unwrap();
    let job = format!("test-{}", new_id());

    for _ in 0..5 {
        let (lock, a_won) = race(&a, &b, &job).await;
        let mut lock = lock.unwrap();
        assert!(lock.is_held().await);
        let (winner, loser) = if a_won { (&a, &b) } else { (&b, &a) };
        assert!(winner.try_lock_job(&job).await.unwrap().is_none());
        assert!(loser.try_lock_job(&job).await.unwrap().is_none());
        // Other jobs are not held up by this one.
        let other = loser.try_lock_job(&format!("{job}-other")).await.unwrap();
        assert!(other.is_some());
        // Released now: a dropped lock frees its session only once the close is done, and the
        // next round may ask for it from the other node at once.
        other.unwrap().release().await;
        lock.release().await;
        let again = loser.try_lock_job(&job).await.unwrap();
        assert!(again.is_some(), "a released lock is free at once");
        again.unwrap().release().await;
    }

    // Dropped without a release (a task aborted at shutdown): the session closes, the lock goes.
    let (lock, a_won) = race(&a, &b, &job).await;
    drop(lock);
    let other = if a_won { &b } else { &a };
    take_within(other, &job, Duration::from_secs(10))
        .await
        .release()
        .await;

    // The holder's session dies (its node crashed, or PostgreSQL cut it): the holder learns it
    // has lost the lock and the other node takes it.
    let (lock, a_won) = race(&a, &b, &job).await;
    let mut lock = lock.unwrap();
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    let key = advisory_key(&job) as u64;
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted \
         AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) \
         AND classid::text::bigint = $1 AND objid::text::bigint = $2 AND objsubid = 1",
    )
    .bind((key >> 32) as i64)
    .bind((key & 0xffff_ffff) as i64)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(killed, vec![true], "one session held the lock");
    let other = if a_won { &b } else { &a };
    let mut taken = take_within(other, &job, Duration::from_secs(10)).await;
    assert!(
        !lock.is_held().await,
        "a holder whose session died must know"
    );
    assert!(taken.is_held().await);
    taken.release().await;
}

#[tokio::test]
async fn a_sqlite_job_runs_once_per_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = telegram_oidc::open_store(&format!("sqlite://{}/j.db", dir.path().display()))
        .await
        .unwrap();
    let lock = store.try_lock_job("cleanup").await.unwrap().unwrap();
    assert!(store.try_lock_job("cleanup").await.unwrap().is_none());
    lock.release().await;
    let lock = store.try_lock_job("cleanup").await.unwrap();
    assert!(lock.is_some());
}
