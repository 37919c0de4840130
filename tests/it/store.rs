//! One scenario, generic over the store: it runs on SQLite always and on PostgreSQL whenever
//! `TEST_DATABASE_URL` is set (CI sets it; without it, outside CI, the PostgreSQL run says
//! loudly that it was skipped).

use std::sync::Arc;

use telegram_oidc::keys::SigningAlg;
use telegram_oidc::secrets::{new_id, random_bytes, sha256};
use telegram_oidc::store::*;

/// The PostgreSQL URL for tests, or `None` (allowed only outside CI).
pub fn postgres_url() -> Option<String> {
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the PostgreSQL tests: set TEST_DATABASE_URL"
            );
            eprintln!(
                "SKIPPED: PostgreSQL tests need TEST_DATABASE_URL (e.g. postgres://postgres@127.0.0.1/test)"
            );
            None
        }
    }
}

pub(crate) fn unique_user() -> i64 {
    (u32::from_le_bytes(random_bytes::<4>()) as i64) + 1_000_000
}

pub(crate) fn client(now: i64) -> ClientRecord {
    ClientRecord {
        client_id: new_id(),
        secret_hash: Some(sha256(b"secret")),
        settings: ClientSettings {
            name: "Scenario".into(),
            kind: ClientKind::Confidential,
            redirect_uris: vec!["https://a.example/cb".into()],
            allowed_scopes: vec!["openid".into()],
            id_token_alg: SigningAlg::ES256,
            access_token_format: AccessTokenFormat::Opaque,
            refresh_policy: RefreshPolicy::Always,
            skip_consent: false,
            service_account: false,
            token_exchange: None,
            subject_type: SubjectType::Public,
            sector_identifier: None,
            synthetic_email: false,
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
            token_endpoint_auth_method: None,
            jwks: None,
            jwks_uri: Some("https://a.example/jwks.json".into()),
            registration_token_hash: Some("00ff".into()),
            sector_identifier_uri: None,
            device_flow: false,
            access_policy: None,
            require_bot_confirmation: false,
            ciba: None,
        },
        created_at: now,
    }
}

pub(crate) fn grant(client_id: &str, user: i64, now: i64) -> GrantRecord {
    GrantRecord {
        id: new_id(),
        client_id: client_id.into(),
        user_id: Some(user),
        scope: "openid".into(),
        auth_time: now,
        amr: "telegram_widget".into(),
        nonce: Some("n".into()),
        created_at: now,
        revoked_at: None,
        expires_at: now + 60,
        session_hash: None,
    }
}

fn code(grant_id: &str, now: i64) -> CodeRecord {
    CodeRecord {
        code_hash: random_bytes::<32>().to_vec(),
        grant_id: grant_id.into(),
        redirect_uri: "https://a.example/cb".into(),
        code_challenge: None,
        expires_at: now + 60,
    }
}

pub(crate) fn refresh(grant_id: &str, now: i64, ttl: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: random_bytes::<32>().to_vec(),
        grant_id: grant_id.into(),
        created_at: now,
        expires_at: now + ttl,
    }
}

/// The scope of the grant behind a refresh token of `client_id`, without using it.
/// A new, empty database on the server of `url`, named after the test's own database and
/// `name`, for a test that must see only its own rows.
pub async fn fresh_postgres_database(url: &str, name: &str) -> String {
    use sqlx::Connection;
    let mut parsed = url::Url::parse(url).unwrap();
    let base = parsed.path().trim_start_matches('/').to_string();
    let db = format!("{base}_{name}");
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .await
        .unwrap();
    parsed.set_path(&format!("/{db}"));
    parsed.to_string()
}

pub async fn refresh_token_scope(
    store: &dyn Store,
    token_hash: &[u8],
    client_id: &str,
) -> Option<String> {
    store
        .get_refresh_token(token_hash)
        .await
        .unwrap()
        .filter(|t| t.grant.client_id == client_id)
        .map(|t| t.grant.scope)
}

async fn scenario(store: Arc<dyn Store>) {
    // Far in the past, so the sweep at the end removes only this scenario's rows and never
    // those of tests running beside it on the same PostgreSQL database.
    let now = 1_000_000_000;
    store.ping().await.unwrap();

    // Clients.
    let mut c = client(now);
    store.create_client(&c).await.unwrap();
    assert!(matches!(
        store.create_client(&c).await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(
        store
            .get_client(&c.client_id)
            .await
            .unwrap()
            .unwrap()
            .settings,
        c.settings
    );
    c.settings.name = "Renamed".into();
    assert!(store.update_client(&c).await.unwrap());
    assert_eq!(
        store
            .get_client(&c.client_id)
            .await
            .unwrap()
            .unwrap()
            .settings
            .name,
        "Renamed"
    );
    assert!(
        store
            .list_clients()
            .await
            .unwrap()
            .iter()
            .any(|x| x.client_id == c.client_id)
    );
    let other = client(now);
    store.create_client(&other).await.unwrap();

    // Users: a later login refreshes the profile but keeps what it does not carry.
    let uid = unique_user();
    let mut user = UserRecord {
        telegram_id: uid,
        first_name: "A".into(),
        last_name: None,
        username: Some("a".into()),
        photo_url: None,
        language_code: Some("ru".into()),
        is_premium: true,
        phone_number: Some("+100".into()),
        created_at: now,
        updated_at: now,
        groups: None,
    };
    store.upsert_user(&user).await.unwrap();
    user.first_name = "B".into();
    user.language_code = None;
    user.phone_number = None;
    user.created_at = now + 5;
    user.updated_at = now + 5;
    store.upsert_user(&user).await.unwrap();
    let got = store.get_user(uid).await.unwrap().unwrap();
    assert_eq!(got.first_name, "B");
    assert_eq!(got.language_code.as_deref(), Some("ru"));
    assert_eq!(got.phone_number.as_deref(), Some("+100"));
    assert_eq!(got.created_at, now);
    assert!(got.is_premium);

    // Text from outside may hold NUL: stored (PostgreSQL, whose text cannot hold it, keeps
    // U+FFFD in its place) or simply not found, never an error.
    assert!(store.get_client("a\0b").await.unwrap().is_none());
    let nul = UserRecord {
        telegram_id: unique_user(),
        first_name: "N\0ul".into(),
        username: Some("\0".into()),
        ..user.clone()
    };
    store.upsert_user(&nul).await.unwrap();
    let got = store.get_user(nul.telegram_id).await.unwrap().unwrap();
    assert_eq!(got.first_name.replace('\u{FFFD}', "\0"), nul.first_name);
    assert!(store.get_consent(uid, "x\0").await.unwrap().is_none());

    // One-time proofs.
    let proof = random_bytes::<32>();
    assert!(store.consume_proof(&proof, now + 10).await.unwrap());
    assert!(!store.consume_proof(&proof, now + 10).await.unwrap());

    // Sessions expire.
    let sid = random_bytes::<32>().to_vec();
    store
        .create_session(&SessionRecord {
            id_hash: sid.clone(),
            user_id: uid,
            auth_time: now,
            amr: "telegram_widget".into(),
            created_at: now,
            expires_at: now + 100,
            device: Some("Firefox on Linux".into()),
            place: None,
            last_used_at: now,
        })
        .await
        .unwrap();
    assert!(store.get_session(&sid, now + 99).await.unwrap().is_some());
    assert!(store.get_session(&sid, now + 100).await.unwrap().is_none());
    store.delete_session(&sid).await.unwrap();
    assert!(store.get_session(&sid, now).await.unwrap().is_none());

    // Pending authorizations.
    let pid = random_bytes::<32>().to_vec();
    store
        .create_pending(&PendingAuthorization {
            id_hash: pid.clone(),
            client_id: c.client_id.clone(),
            request: "{}".into(),
            created_at: now,
            expires_at: now + 10,
        })
        .await
        .unwrap();
    assert!(store.update_pending(&pid, "{\"x\":1}").await.unwrap());
    assert_eq!(
        store.get_pending(&pid, now).await.unwrap().unwrap().request,
        "{\"x\":1}"
    );
    assert!(store.get_pending(&pid, now + 10).await.unwrap().is_none());
    store.delete_pending(&pid).await.unwrap();
    assert!(!store.update_pending(&pid, "{}").await.unwrap());

    // Consent.
    assert!(
        store
            .get_consent(uid, &c.client_id)
            .await
            .unwrap()
            .is_none()
    );
    store
        .save_consent(uid, &c.client_id, "openid", now)
        .await
        .unwrap();
    store
        .save_consent(uid, &c.client_id, "openid profile", now)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_consent(uid, &c.client_id)
            .await
            .unwrap()
            .as_deref(),
        Some("openid profile")
    );

    // Codes: once, for their own client only; reuse is reported with the grant.
    let g = grant(&c.client_id, uid, now);
    let k = code(&g.id, now);
    store.create_grant_with_code(&g, &k).await.unwrap();
    assert!(matches!(
        store
            .redeem_code(&k.code_hash, &other.client_id, now)
            .await
            .unwrap(),
        RedeemOutcome::NotFound
    ));
    match store
        .redeem_code(&k.code_hash, &c.client_id, now)
        .await
        .unwrap()
    {
        RedeemOutcome::Redeemed(r) => assert_eq!(r.grant_id, g.id),
        other => panic!("expected Redeemed, got {other:?}"),
    }
    match store
        .redeem_code(&k.code_hash, &c.client_id, now)
        .await
        .unwrap()
    {
        RedeemOutcome::AlreadyUsed { grant_id } => assert_eq!(grant_id, g.id),
        other => panic!("expected AlreadyUsed, got {other:?}"),
    }

    // Tokens of a grant die with it.
    let access = AccessTokenRecord {
        token_hash: random_bytes::<32>().to_vec(),
        grant_id: g.id.clone(),
        client_id: c.client_id.clone(),
        user_id: Some(uid),
        scope: "openid".into(),
        created_at: now,
        expires_at: now + 3600,
    };
    let r1 = refresh(&g.id, now, 1000);
    store.store_tokens(Some(&access), Some(&r1)).await.unwrap();
    assert_eq!(
        store.get_grant(&g.id).await.unwrap().unwrap().expires_at,
        now + 1000
    );
    assert!(
        !store
            .get_access_token(&access.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert_eq!(
        refresh_token_scope(store.as_ref(), &r1.token_hash, &c.client_id)
            .await
            .as_deref(),
        Some("openid")
    );
    assert!(
        refresh_token_scope(store.as_ref(), &r1.token_hash, &other.client_id)
            .await
            .is_none()
    );

    // Rotation: another client's attempt leaves the token usable; a second use is a replay.
    let r2 = refresh("", now, 2000);
    assert!(matches!(
        store
            .rotate_refresh_token_issuing(&r1.token_hash, &other.client_id, &r2, None, now)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    ));
    match store
        .rotate_refresh_token_issuing(&r1.token_hash, &c.client_id, &r2, None, now)
        .await
        .unwrap()
    {
        RotateOutcome::Rotated(found) => assert_eq!(found.id, g.id),
        other => panic!("expected Rotated, got {other:?}"),
    }
    assert_eq!(
        store.get_grant(&g.id).await.unwrap().unwrap().expires_at,
        now + 2000
    );
    let r3 = refresh("", now, 10);
    match store
        .rotate_refresh_token_issuing(&r1.token_hash, &c.client_id, &r3, None, now)
        .await
        .unwrap()
    {
        RotateOutcome::Replayed { grant_id } => assert_eq!(grant_id, g.id),
        other => panic!("expected Replayed, got {other:?}"),
    }
    store.revoke_grant(&g.id, now).await.unwrap();
    assert!(
        store
            .get_access_token(&access.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(matches!(
        store
            .rotate_refresh_token_issuing(&r2.token_hash, &c.client_id, &r3, None, now)
            .await
            .unwrap(),
        RotateOutcome::Invalid
    ));
    // An expired refresh token cannot be used.
    let g2 = grant(&c.client_id, uid, now);
    store.create_grant(&g2).await.unwrap();
    let short = refresh(&g2.id, now, 5);
    store.store_tokens(None, Some(&short)).await.unwrap();
    assert!(matches!(
        store
            .rotate_refresh_token_issuing(
                &short.token_hash,
                &c.client_id,
                &refresh("", now, 5),
                None,
                now + 5
            )
            .await
            .unwrap(),
        RotateOutcome::Invalid
    ));
    // A code of a revoked grant cannot be redeemed.
    let g3 = grant(&c.client_id, uid, now);
    let k3 = code(&g3.id, now);
    store.create_grant_with_code(&g3, &k3).await.unwrap();
    store.revoke_grant(&g3.id, now).await.unwrap();
    assert!(matches!(
        store
            .redeem_code(&k3.code_hash, &c.client_id, now)
            .await
            .unwrap(),
        RedeemOutcome::NotFound
    ));

    // Rotation and the access token it issues are stored together or not at all.
    let g5 = grant(&c.client_id, uid, now);
    store.create_grant(&g5).await.unwrap();
    let r5 = refresh(&g5.id, now, 100);
    store.store_tokens(None, Some(&r5)).await.unwrap();
    let stray = AccessTokenRecord {
        token_hash: random_bytes::<32>().to_vec(),
        grant_id: "another-grant".into(),
        client_id: c.client_id.clone(),
        user_id: Some(uid),
        scope: "openid".into(),
        created_at: now,
        expires_at: now + 60,
    };
    assert!(
        store
            .rotate_refresh_token_issuing(
                &r5.token_hash,
                &c.client_id,
                &refresh("", now, 100),
                Some(&stray),
                now
            )
            .await
            .is_err()
    );
    assert!(
        store
            .get_access_token(&stray.token_hash)
            .await
            .unwrap()
            .is_none()
    );
    let fine = AccessTokenRecord {
        grant_id: g5.id.clone(),
        ..stray.clone()
    };
    let next = refresh("", now, 100);
    assert!(matches!(
        store
            .rotate_refresh_token_issuing(&r5.token_hash, &c.client_id, &next, Some(&fine), now)
            .await
            .unwrap(),
        RotateOutcome::Rotated(_)
    ));
    assert!(
        store
            .get_access_token(&fine.token_hash)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .get_refresh_token(&next.token_hash)
            .await
            .unwrap()
            .is_some()
    );

    // A removal bound to a version refuses once the settings changed, and removes at the
    // current one.
    let mut stale = other.clone();
    stale.settings.name = format!("{} (renamed)", other.settings.name);
    assert!(store.update_client(&stale).await.unwrap());
    assert!(
        !store
            .delete_client_unless_changed(&other.client_id, &other.settings)
            .await
            .unwrap()
    );
    assert!(store.get_client(&other.client_id).await.unwrap().is_some());
    assert!(
        !store
            .delete_client_unless_changed("no-such-client", &other.settings)
            .await
            .unwrap()
    );

    // Removing a client revokes its grants.
    let g4 = grant(&other.client_id, uid, now);
    store.create_grant(&g4).await.unwrap();
    assert!(
        store
            .delete_client_unless_changed(&other.client_id, &stale.settings)
            .await
            .unwrap()
    );
    assert!(store.get_client(&other.client_id).await.unwrap().is_none());
    assert!(
        store
            .get_grant(&g4.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(!store.delete_client(&other.client_id).await.unwrap());

    // Cleanup removes what expired long ago and keeps what lives.
    let removed = store.delete_expired(now + 10 * 86_400).await.unwrap();
    assert!(removed > 0);
    assert!(store.get_user(uid).await.unwrap().is_some());
}

/// Ten parallel redemptions of one code: exactly one wins.
async fn parallel_redemption(store: Arc<dyn Store>) {
    let now = 1_000_000_000;
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let g = grant(&c.client_id, unique_user(), now);
    let k = code(&g.id, now);
    store.create_grant_with_code(&g, &k).await.unwrap();
    let attempts = (0..10).map(|_| {
        let store = store.clone();
        let hash = k.code_hash.clone();
        let client_id = c.client_id.clone();
        tokio::spawn(async move { store.redeem_code(&hash, &client_id, now).await.unwrap() })
    });
    let outcomes = futures::future::join_all(attempts).await;
    let wins = outcomes
        .iter()
        .filter(|o| matches!(o.as_ref().unwrap(), RedeemOutcome::Redeemed(_)))
        .count();
    assert_eq!(wins, 1);
}

/// Many writes at once (on SQLite they share transactions: one writer commits what is waiting
/// as a group), some of which fail: each failing write gets its own error, every other write
/// succeeds and is there afterwards, and single use holds inside a group.
async fn concurrent_writes_fail_alone(store: Arc<dyn Store>) {
    // The real time: rows dated far in the past would be swept by the cleanup job of any server
    // that other tests run on the same PostgreSQL database meanwhile.
    let now = telegram_oidc::clock::system_now();
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let taken = grant(&c.client_id, unique_user(), now);
    store.create_grant(&taken).await.unwrap();
    let g = grant(&c.client_id, unique_user(), now);
    let k = code(&g.id, now);
    store.create_grant_with_code(&g, &k).await.unwrap();
    let old = refresh(&g.id, now, 3600);
    store.store_tokens(None, Some(&old)).await.unwrap();

    let mut tasks = Vec::new();
    for i in 0..300 {
        let store = store.clone();
        let (c, taken, k, old) = (c.clone(), taken.clone(), k.clone(), old.clone());
        tasks.push(tokio::spawn(async move {
            match i % 30 {
                // The same id again: refused.
                0 => ("duplicate", store.create_grant(&taken).await.map(|_| None)),
                // A rotation that must fail (the access token names another grant): rolled
                // back, the old token untouched.
                1 => {
                    let mut wrong = grant(&c.client_id, 1, now);
                    wrong.id = "another-grant".into();
                    let access = AccessTokenRecord {
                        token_hash: random_bytes::<32>().to_vec(),
                        grant_id: wrong.id.clone(),
                        client_id: c.client_id.clone(),
                        user_id: Some(1),
                        scope: "openid".into(),
                        created_at: now,
                        expires_at: now + 60,
                    };
                    let next = refresh(&old.grant_id, now, 3600);
                    let outcome = store
                        .rotate_refresh_token_issuing(
                            &old.token_hash,
                            &c.client_id,
                            &next,
                            Some(&access),
                            now,
                        )
                        .await;
                    ("bad rotation", outcome.map(|_| None))
                }
                2 => {
                    let outcome = store.redeem_code(&k.code_hash, &c.client_id, now).await;
                    let won = matches!(outcome, Ok(RedeemOutcome::Redeemed(_)));
                    ("redeem", outcome.map(|_| won.then(String::new)))
                }
                _ => {
                    let fresh = grant(&c.client_id, unique_user(), now);
                    let id = fresh.id.clone();
                    ("fresh", store.create_grant(&fresh).await.map(|_| Some(id)))
                }
            }
        }));
    }
    let mut redeemed = 0;
    let mut fresh = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            ("duplicate", outcome) => {
                assert!(
                    matches!(outcome, Err(StoreError::Conflict(_))),
                    "{outcome:?}"
                )
            }
            ("bad rotation", outcome) => {
                assert!(
                    matches!(outcome, Err(StoreError::Internal(_))),
                    "{outcome:?}"
                )
            }
            ("redeem", outcome) => redeemed += usize::from(outcome.unwrap().is_some()),
            (_, outcome) => fresh.push(outcome.unwrap().unwrap()),
        }
    }
    assert_eq!(
        redeemed, 1,
        "a code is redeemed once, however the writes were grouped"
    );
    assert_eq!(fresh.len(), 270);
    for id in &fresh {
        assert!(
            store.get_grant(id).await.unwrap().is_some(),
            "grant {id} was lost"
        );
    }
    // The failed rotations changed nothing: the old token rotates now, once.
    let next = refresh(&old.grant_id, now, 3600);
    let outcome = store
        .rotate_refresh_token_issuing(&old.token_hash, &c.client_id, &next, None, now)
        .await
        .unwrap();
    assert!(matches!(outcome, RotateOutcome::Rotated(_)), "{outcome:?}");
}

async fn sqlite() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/s.db", dir.path().display());
    let store = telegram_oidc::open_store(&url).await.unwrap();
    (dir, store)
}

#[tokio::test]
async fn scenario_on_sqlite() {
    let (_dir, store) = sqlite().await;
    scenario(store.clone()).await;
    parallel_redemption(store).await;
}

#[tokio::test]
async fn scenario_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let store = telegram_oidc::open_store(&url).await.unwrap();
    scenario(store.clone()).await;
    parallel_redemption(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_fail_alone_on_sqlite() {
    let (_dir, store) = sqlite().await;
    concurrent_writes_fail_alone(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_fail_alone_on_postgres() {
    let Some(url) = postgres_url() else { return };
    let store = telegram_oidc::open_store(&url).await.unwrap();
    concurrent_writes_fail_alone(store).await;
}
