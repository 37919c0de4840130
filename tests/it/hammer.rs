//! One SQLite file under parallel writers: two stores (two writer threads, as two processes
//! would have) issue and redeem codes and rotate refresh tokens at once; WAL and the busy timeout
//! must make every write land, none lost and none refused as "database is locked".

use std::sync::Arc;

use telegram_oidc::admin::{self, NewClient};
use telegram_oidc::secrets::{new_id, random_bytes};
use telegram_oidc::store::*;

const WRITERS: usize = 16;
const ROUNDS: usize = 12;
const ROTATIONS: usize = 4;

fn refresh(grant_id: &str, now: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: random_bytes::<32>().to_vec(),
        grant_id: grant_id.into(),
        created_at: now,
        expires_at: now + 3600,
    }
}

/// What one writer did: the codes it redeemed and the last token of each rotation chain.
struct Work {
    codes: Vec<Vec<u8>>,
    chain_ends: Vec<Vec<u8>>,
    refresh_rows: usize,
}

async fn writer(store: Arc<dyn Store>, client_id: String, user: i64, now: i64) -> Work {
    let mut work = Work {
        codes: Vec::new(),
        chain_ends: Vec::new(),
        refresh_rows: 0,
    };
    for _ in 0..ROUNDS {
        let grant = GrantRecord {
            id: new_id(),
            client_id: client_id.clone(),
            user_id: Some(user),
            scope: "openid".into(),
            auth_time: now,
            amr: "telegram_widget".into(),
            nonce: None,
            created_at: now,
            revoked_at: None,
            expires_at: now + 60,
            session_hash: None,
        };
        let code = CodeRecord {
            code_hash: random_bytes::<32>().to_vec(),
            grant_id: grant.id.clone(),
            redirect_uri: "https://a.example/cb".into(),
            code_challenge: None,
            expires_at: now + 60,
        };
        store.create_grant_with_code(&grant, &code).await.unwrap();
        match store
            .redeem_code(&code.code_hash, &client_id, now)
            .await
            .unwrap()
        {
            RedeemOutcome::Redeemed(r) => assert_eq!(r.grant_id, grant.id),
            other => panic!("a fresh code must redeem, got {other:?}"),
        }
        work.codes.push(code.code_hash);

        let access = AccessTokenRecord {
            token_hash: random_bytes::<32>().to_vec(),
            grant_id: grant.id.clone(),
            client_id: client_id.clone(),
            user_id: Some(user),
            scope: "openid".into(),
            created_at: now,
            expires_at: now + 3600,
        };
        let mut current = refresh(&grant.id, now);
        store
            .store_tokens(Some(&access), Some(&current))
            .await
            .unwrap();
        work.refresh_rows += 1;
        for _ in 0..ROTATIONS {
            let next = refresh("", now);
            match store
                .rotate_refresh_token_issuing(&current.token_hash, &client_id, &next, None, now)
                .await
                .unwrap()
            {
                RotateOutcome::Rotated(g) => assert_eq!(g.id, grant.id),
                other => panic!("an unused refresh token must rotate, got {other:?}"),
            }
            work.refresh_rows += 1;
            current = next;
        }
        work.chain_ends.push(current.token_hash);
    }
    work
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_writers_on_one_sqlite_file_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/hammer.db", dir.path().display());
    let first = SqliteStore::connect(&url).await.unwrap();
    first.migrate().await.unwrap();
    let second = SqliteStore::connect(&url).await.unwrap();

    let (mode, busy_ms) = first.journal_settings().await.unwrap();
    assert_eq!(mode, "wal", "the store must run SQLite in WAL mode");
    assert!(
        busy_ms >= 1000,
        "writers must wait for the lock, not fail: busy_timeout is {busy_ms} ms"
    );

    let stores: [Arc<dyn Store>; 2] = [Arc::new(first), Arc::new(second)];
    let now = 1_900_000_000;
    let (c, _) = admin::add_client(
        stores[0].as_ref(),
        NewClient {
            name: "Hammer".into(),
            redirect_uris: vec!["https://a.example/cb".into()],
            ..Default::default()
        },
        now,
    )
    .await
    .unwrap();
    let user = 7_000_001;
    stores[0]
        .upsert_user(&UserRecord {
            telegram_id: user,
            first_name: "H".into(),
            last_name: None,
            username: None,
            photo_url: None,
            language_code: None,
            is_premium: false,
            phone_number: None,
            created_at: now,
            updated_at: now,
            groups: None,
        })
        .await
        .unwrap();

    let started = std::time::Instant::now();
    let tasks = (0..WRITERS).map(|i| {
        tokio::spawn(writer(
            stores[i % 2].clone(),
            c.client_id.clone(),
            user,
            now,
        ))
    });
    let results: Vec<Work> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .collect();
    let elapsed = started.elapsed();
    let writes = WRITERS * ROUNDS * (3 + ROTATIONS);
    eprintln!(
        "hammer: {WRITERS} writers, {writes} write transactions in {:.2} s",
        elapsed.as_secs_f64()
    );

    // Every code was used exactly once: a second redemption sees it used.
    let store = &stores[1];
    let codes: Vec<&Vec<u8>> = results.iter().flat_map(|w| &w.codes).collect();
    assert_eq!(codes.len(), WRITERS * ROUNDS);
    for code in &codes {
        assert!(matches!(
            store.redeem_code(code, &c.client_id, now).await.unwrap(),
            RedeemOutcome::AlreadyUsed { .. }
        ));
    }
    // The end of every chain is still valid and still unused.
    let ends: Vec<&Vec<u8>> = results.iter().flat_map(|w| &w.chain_ends).collect();
    for end in &ends {
        assert_eq!(
            crate::store::refresh_token_scope(store.as_ref(), end, &c.client_id)
                .await
                .as_deref(),
            Some("openid")
        );
    }
    let last = ends[0];
    assert!(matches!(
        store
            .rotate_refresh_token_issuing(last, &c.client_id, &refresh("", now), None, now)
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));

    // Row counts straight from the file: as many as were issued, and the used ones marked.
    let file = rusqlite::Connection::open(dir.path().join("hammer.db")).unwrap();
    let count = |sql: &str| file.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap() as usize;
    let issued: usize = results.iter().map(|w| w.refresh_rows).sum();
    assert_eq!(count("SELECT COUNT(*) FROM refresh_tokens"), issued + 1);
    assert_eq!(
        count("SELECT COUNT(*) FROM refresh_tokens WHERE used_at IS NULL"),
        ends.len()
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM codes WHERE used_at IS NOT NULL"),
        WRITERS * ROUNDS
    );
    assert_eq!(
        count("SELECT COUNT(*) FROM access_tokens"),
        WRITERS * ROUNDS
    );
    assert_eq!(count("SELECT COUNT(*) FROM grants"), WRITERS * ROUNDS);
}
