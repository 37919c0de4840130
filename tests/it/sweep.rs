//! The sweep of expired rows runs in batches: many batches' worth of rows all go, the live
//! ones and those kept for reuse detection stay, the count is right (on both stores); on
//! SQLite a write that comes during a long sweep does not wait for its end; and
//! `sweep_interval_secs = 0` turns the server's sweep off.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use telegram_oidc::secrets::{new_id, random_bytes};
use telegram_oidc::store::*;

use crate::harness::TestApp;
use crate::store::{fresh_postgres_database, grant, postgres_url};

const NOW: i64 = 1_000_000_000;
/// More than two batches of the sweep on either store (`SWEEP_BATCH_SQLITE`, 200;
/// `SWEEP_BATCH_POSTGRES`, 1000), and a multiple of neither.
const EXPIRED_TOKENS: usize = 2_500;

fn access_token(expires_at: i64) -> AccessTokenRecord {
    AccessTokenRecord {
        token_hash: random_bytes::<32>().to_vec(),
        grant_id: new_id(),
        client_id: "sweep".into(),
        user_id: Some(7),
        scope: "openid".into(),
        created_at: expires_at - 60,
        expires_at,
    }
}

/// Stores the tokens, many at once (on SQLite they commit in groups).
async fn store_tokens(store: &dyn Store, tokens: &[AccessTokenRecord]) {
    for chunk in tokens.chunks(250) {
        for stored in join_all(chunk.iter().map(|t| store.store_tokens(Some(t), None))).await {
            stored.unwrap();
        }
    }
}

async fn present(store: &dyn Store, tokens: &[AccessTokenRecord]) -> usize {
    let mut found = 0;
    for t in tokens {
        if store
            .get_access_token(&t.token_hash)
            .await
            .unwrap()
            .is_some()
        {
            found += 1;
        }
    }
    found
}

async fn sweep_in_batches(store: Arc<dyn Store>) {
    let expired: Vec<_> = (0..EXPIRED_TOKENS)
        .map(|i| access_token(NOW - 1 - i as i64))
        .collect();
    let live: Vec<_> = (0..10).map(|i| access_token(NOW + 1 + i)).collect();
    store_tokens(&*store, &expired).await;
    store_tokens(&*store, &live).await;
    // Grants outlive their expiry by an hour (a code's reuse is still recognised): only those
    // expired longer ago go.
    let mut grants = Vec::new();
    for (expires_at, goes) in [(NOW - 7_200, true), (NOW - 60, false), (NOW + 60, false)] {
        for _ in 0..5 {
            let mut g = grant("sweep", 7, NOW);
            g.expires_at = expires_at;
            store.create_grant(&g).await.unwrap();
            grants.push((g.id, goes));
        }
    }
    let grants_gone = grants.iter().filter(|(_, goes)| *goes).count();
    // PostgreSQL's rate counters: ended windows go, more than a batch of them.
    let mut windows_gone = 0;
    let live_window = RateWindow {
        key_hash: random_bytes::<32>(),
        window_start: NOW - 30,
        expires_at: NOW + 30,
    };
    if store.shares_rate_counters() {
        let ended: Vec<_> = (0..1_200)
            .map(|i| RateWindow {
                key_hash: random_bytes::<32>(),
                window_start: NOW - 120 - i,
                expires_at: NOW - 60 - i,
            })
            .collect();
        store.add_rate_hits(&ended).await.unwrap();
        store
            .add_rate_hits(std::slice::from_ref(&live_window))
            .await
            .unwrap();
        windows_gone = ended.len();
    }

    let removed = store.delete_expired(NOW).await.unwrap();
    assert_eq!(
        removed as usize,
        EXPIRED_TOKENS + grants_gone + windows_gone,
        "every expired row, counted once"
    );
    assert_eq!(
        present(&*store, &expired).await,
        0,
        "an expired token stayed"
    );
    assert_eq!(
        present(&*store, &live).await,
        live.len(),
        "a live token went"
    );
    for (id, goes) in &grants {
        assert_eq!(store.get_grant(id).await.unwrap().is_none(), *goes, "{id}");
    }
    if store.shares_rate_counters() {
        assert_eq!(store.read_rate_hits(&live_window).await.unwrap(), 1);
    }
    assert_eq!(store.delete_expired(NOW).await.unwrap(), 0);

    // The audit retention sweep, in batches too.
    let entry = |at: i64| AuditEntry {
        at,
        event: "login".into(),
        result: "ok".into(),
        ..Default::default()
    };
    let mut entries: Vec<_> = (0..2_100).map(|i| entry(NOW * 1000 - 1 - i)).collect();
    entries.extend((0..3).map(|i| entry(NOW * 1000 + i)));
    store.record_audit(&entries).await.unwrap();
    assert_eq!(store.delete_audit_before(NOW * 1000).await.unwrap(), 2_100);
    let left = store
        .query_audit(&AuditQuery {
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(left.len(), 3);
    assert!(left.iter().all(|e| e.at >= NOW * 1000));
}

#[tokio::test]
async fn the_sweep_removes_many_batches_of_expired_rows_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = telegram_oidc::open_store(&format!("sqlite://{}/s.db", dir.path().display()))
        .await
        .unwrap();
    sweep_in_batches(store).await;
}

#[tokio::test]
async fn the_sweep_removes_many_batches_of_expired_rows_on_postgres() {
    let Some(url) = postgres_url() else { return };
    // A database of its own: the count must not include what other tests left to sweep.
    let url = fresh_postgres_database(&url, "sweep").await;
    let store = telegram_oidc::open_store(&url).await.unwrap();
    sweep_in_batches(store).await;
}

/// On SQLite every write goes through one writer thread. A write that comes while a long sweep
/// runs is committed after at most a batch or two, not after the sweep: the test sees a part of
/// the sweep committed, writes, and finds expired rows still left to sweep.
///
/// Not a timing test: on this runtime (one thread) the sweep hands its next batch to the
/// writer only when this test awaits, so between two of the test's reads it submits at most
/// one batch, and the write below queues behind at most one or two of the 20.
#[tokio::test(flavor = "current_thread")]
async fn a_write_during_a_long_sweep_on_sqlite_waits_for_a_batch_not_the_sweep() {
    const ROWS: usize = 20_000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let store = telegram_oidc::open_store(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let expired: Vec<_> = (0..ROWS)
        .map(|i| access_token(NOW - 1 - i as i64))
        .collect();
    store_tokens(&*store, &expired).await;
    let reader = rusqlite::Connection::open(&path).unwrap();
    let left = || -> usize {
        reader
            .query_row(
                "SELECT count(*) FROM access_tokens WHERE expires_at < ?1",
                [NOW],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(left(), ROWS);

    let sweep = tokio::spawn({
        let store = store.clone();
        async move { store.delete_expired(NOW).await }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = ROWS;
    while seen == ROWS {
        assert!(Instant::now() < deadline, "the sweep never committed");
        tokio::task::yield_now().await;
        seen = left();
    }
    assert!(
        seen > 0,
        "the sweep's rows were committed all at once, not in batches"
    );

    let written = Instant::now();
    let live = access_token(NOW + 3600);
    store.store_tokens(Some(&live), None).await.unwrap();
    let waited = written.elapsed();
    let still = left();
    eprintln!(
        "sweep: a write during the sweep took {waited:?}; {seen} then {still} of {ROWS} rows left"
    );
    assert!(
        still > 0,
        "the write waited until the sweep had deleted every row"
    );
    assert_eq!(sweep.await.unwrap().unwrap() as usize, ROWS);
    assert_eq!(left(), 0);
    assert!(
        store
            .get_access_token(&live.token_hash)
            .await
            .unwrap()
            .is_some()
    );
}

/// A SQLite file holding one access token that expired long ago.
async fn database_with_an_expired_token(dir: &std::path::Path, name: &str) -> (String, Vec<u8>) {
    let url = format!("sqlite://{}/{name}.db", dir.display());
    let store = telegram_oidc::open_store(&url).await.unwrap();
    // Dated by the real clock: the server's sweep compares with its own.
    let token = access_token(telegram_oidc::clock::system_now() - 86_400);
    store.store_tokens(Some(&token), None).await.unwrap();
    (url, token.token_hash)
}

/// A server sweeps when it starts, unless `sweep_interval_secs = 0`. Of two servers, the one
/// that does not sweep starts first; once the other has swept, the first still has its row.
#[tokio::test]
async fn a_zero_sweep_interval_turns_the_servers_sweep_off() {
    let dir = tempfile::tempdir().unwrap();
    let (never_url, never_token) = database_with_an_expired_token(dir.path(), "never").await;
    let (default_url, default_token) = database_with_an_expired_token(dir.path(), "default").await;
    let never = TestApp::start_with(|c| {
        c.database_url = never_url;
        c.sweep_interval_secs = 0;
    })
    .await;
    let swept = TestApp::start_with(|c| {
        assert_eq!(c.sweep_interval_secs, 300);
        c.database_url = default_url;
    })
    .await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while swept
        .store
        .get_access_token(&default_token)
        .await
        .unwrap()
        .is_some()
    {
        assert!(Instant::now() < deadline, "the start-up sweep did not run");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        never
            .store
            .get_access_token(&never_token)
            .await
            .unwrap()
            .is_some(),
        "swept although sweep_interval_secs = 0"
    );
    swept.stop().await;
    never.stop().await;
}

/// From the environment as from the file: `TGOIDC_SWEEP_INTERVAL_SECS`, checked like the rest.
#[test]
fn the_sweep_interval_from_the_environment_is_checked() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::cli::write_config(dir.path());
    let check = |value: &str| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_telegram-oidc"))
            .arg("--config")
            .arg(&config)
            .arg("check-config")
            .env_remove("TGOIDC_CONFIG")
            .env("TGOIDC_SWEEP_INTERVAL_SECS", value)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    for value in ["0", "60"] {
        let (ok, stderr) = check(value);
        assert!(ok, "{value}: {stderr}");
    }
    for value in ["5", "often"] {
        let (ok, stderr) = check(value);
        assert!(!ok, "{value} accepted");
        assert!(stderr.contains("sweep_interval_secs"), "{value}: {stderr}");
    }
    let (_, stderr) = check("often");
    assert!(stderr.contains("TGOIDC_SWEEP_INTERVAL_SECS"), "{stderr}");
}
