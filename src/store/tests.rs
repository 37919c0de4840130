//! The flows and single-use rows the scenario of tests/it/store.rs leaves out, run on both
//! stores: SQLite always, PostgreSQL when `TEST_DATABASE_URL` is set.

use std::sync::Arc;

use super::flows::*;
use super::*;
use crate::keys::SigningAlg;
use crate::secrets::{new_id, random_bytes};

fn client(now: i64) -> ClientRecord {
    ClientRecord {
        client_id: new_id(),
        secret_hash: None,
        settings: ClientSettings {
            name: "Flows".into(),
            kind: ClientKind::Public,
            redirect_uris: vec!["https://a.example/cb".into()],
            allowed_scopes: vec!["openid".into()],
            id_token_alg: SigningAlg::ES256,
            access_token_format: AccessTokenFormat::Opaque,
            refresh_policy: RefreshPolicy::Never,
            skip_consent: false,
            token_exchange: None,
            service_account: false,
            subject_type: SubjectType::Public,
            sector_identifier: None,
            synthetic_email: false,
            post_logout_redirect_uris: vec![],
            backchannel_logout_uri: None,
            token_endpoint_auth_method: None,
            jwks: None,
            jwks_uri: None,
            registration_token_hash: None,
            sector_identifier_uri: None,
            device_flow: true,
            access_policy: None,
            require_bot_confirmation: false,
            ciba: None,
        },
        created_at: now,
    }
}

fn grant(client_id: &str, user: i64, now: i64) -> GrantRecord {
    GrantRecord {
        id: new_id(),
        client_id: client_id.into(),
        user_id: Some(user),
        scope: "openid".into(),
        auth_time: now,
        amr: "telegram_bot".into(),
        nonce: None,
        created_at: now,
        revoked_at: None,
        expires_at: now + 60,
        session_hash: None,
    }
}

/// The flows that wait for a person elsewhere, and the other single-use rows: each step once.
async fn flows(store: Arc<dyn Store>) {
    let now = crate::clock::system_now();
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let (id, payload) = (new_id(), random_bytes::<32>().to_vec());
    let (pending, browser) = (random_bytes::<32>().to_vec(), random_bytes::<32>().to_vec());
    let login = BotLoginRecord {
        id: id.clone(),
        payload_hash: payload.clone(),
        client_id: c.client_id.clone(),
        pending_hash: Some(pending.clone()),
        browser_hash: Some(browser.clone()),
        device_hash: None,
        ciba_hash: None,
        status: BotLoginStatus::Pending,
        telegram_id: None,
        identity: None,
        created_at: now,
        expires_at: now + 60,
        match_code: Some(47),
        requester: Some(r#"{"browser":"Firefox on Linux"}"#.into()),
        answer: None,
    };
    store.create_bot_login(&login).await.unwrap();
    let started = store.start_bot_login(&payload, 7, now).await.unwrap();
    assert_eq!(started.unwrap().status, BotLoginStatus::Started);
    assert!(
        store
            .start_bot_login(&payload, 8, now)
            .await
            .unwrap()
            .is_none()
    );
    // The same user may open the link again; the question is asked again.
    let again = store.start_bot_login(&payload, 7, now).await.unwrap();
    assert_eq!(again.unwrap().telegram_id, Some(7));
    assert!(
        store
            .decide_bot_login(&id, 8, Some("{}"), "approve", now, now + 99)
            .await
            .unwrap()
            .is_none()
    );
    let decided = store
        .decide_bot_login(&id, 7, Some("{}"), "approve", now, now + 99)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decided.expires_at, now + 99);
    assert_eq!(decided.match_code, Some(47));
    assert_eq!(decided.requester, login.requester);
    assert_eq!(decided.answer.as_deref(), Some("approve"));
    // Answered: nobody starts it again, not even its user.
    assert!(
        store
            .start_bot_login(&payload, 7, now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .finish_bot_login(&id, &pending, &pending, now)
            .await
            .unwrap()
            .is_none()
    );
    let done = store
        .finish_bot_login(&id, &browser, &pending, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (done.status, done.identity.as_deref()),
        (BotLoginStatus::Consumed, Some("{}"))
    );
    assert!(
        store
            .finish_bot_login(&id, &browser, &pending, now)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store.get_bot_login(&id).await.unwrap().unwrap().telegram_id,
        Some(7)
    );

    let (device, user_code) = (random_bytes::<32>().to_vec(), random_bytes::<32>().to_vec());
    let code = DeviceCodeRecord {
        device_code_hash: device.clone(),
        user_code_hash: user_code.clone(),
        client_id: c.client_id.clone(),
        scope: "openid".into(),
        status: DeviceStatus::Pending,
        user_id: None,
        auth_time: None,
        amr: None,
        interval_secs: 5,
        last_polled_at: None,
        created_at: now,
        expires_at: now + 600,
    };
    store.create_device_code(&code).await.unwrap();
    let taken = DeviceCodeRecord {
        device_code_hash: random_bytes::<32>().to_vec(),
        ..code.clone()
    };
    assert!(matches!(
        store.create_device_code(&taken).await,
        Err(StoreError::Conflict(_))
    ));
    assert!(
        store
            .find_device_code(&user_code, now)
            .await
            .unwrap()
            .is_some()
    );
    let poll = store
        .poll_device_code(&device, &c.client_id, now * 1000)
        .await
        .unwrap();
    assert!(matches!(poll, DevicePoll::Polled(d) if d.status == DeviceStatus::Pending));
    let poll = store
        .poll_device_code(&device, &c.client_id, now * 1000 + 4_990)
        .await
        .unwrap();
    assert!(
        matches!(poll, DevicePoll::SlowDown { interval_secs: 10 }),
        "{poll:?}"
    );
    let poll = store
        .poll_device_code(&device, "another", (now + 20) * 1000)
        .await
        .unwrap();
    assert!(matches!(poll, DevicePoll::Unknown));
    let approval = DeviceApproval {
        user_id: 7,
        auth_time: now,
        amr: "telegram_bot".into(),
    };
    let approved = store
        .decide_device_code(&device, Some(&approval), now)
        .await
        .unwrap();
    assert_eq!(approved.unwrap().status, DeviceStatus::Approved);
    assert!(
        store
            .decide_device_code(&device, None, now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .consume_device_code(&device, "another", now)
            .await
            .unwrap()
            .is_none()
    );
    let consumed = store
        .consume_device_code(&device, &c.client_id, now)
        .await
        .unwrap();
    assert_eq!(consumed.unwrap().user_id, Some(7));
    assert!(
        store
            .consume_device_code(&device, &c.client_id, now)
            .await
            .unwrap()
            .is_none()
    );
    let poll = store
        .poll_device_code(&device, &c.client_id, (now + 700) * 1000)
        .await
        .unwrap();
    assert!(matches!(poll, DevicePoll::Polled(d) if d.status == DeviceStatus::Consumed));

    let state = random_bytes::<32>().to_vec();
    let upstream = UpstreamLogin {
        state_hash: state.clone(),
        binding_hash: random_bytes::<32>().to_vec(),
        created_at: now,
        expires_at: now + 60,
    };
    store.create_upstream_login(&upstream).await.unwrap();
    assert!(
        store
            .take_upstream_login(&state, now + 60)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .take_upstream_login(&state, now)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .take_upstream_login(&state, now)
            .await
            .unwrap()
            .is_none()
    );

    let session = random_bytes::<32>().to_vec();
    for client in ["x", "y", "x"] {
        store
            .record_session_client(&session, client, 7, now + 60)
            .await
            .unwrap();
    }
    let mut told = store.take_session_clients(&session).await.unwrap();
    told.sort();
    assert_eq!(told, vec![("x".into(), 7), ("y".into(), 7)]);
    assert!(
        store
            .take_session_clients(&session)
            .await
            .unwrap()
            .is_empty()
    );

    let g = grant(&c.client_id, 7, now);
    store.create_grant(&g).await.unwrap();
    let access = AccessTokenRecord {
        token_hash: random_bytes::<32>().to_vec(),
        grant_id: g.id.clone(),
        client_id: c.client_id.clone(),
        user_id: Some(7),
        scope: "openid".into(),
        created_at: now,
        expires_at: now + 60,
    };
    store.store_tokens(Some(&access), None).await.unwrap();
    assert!(
        !store
            .revoke_access_token(&access.token_hash, "another", now)
            .await
            .unwrap()
    );
    assert!(
        store
            .revoke_access_token(&access.token_hash, &c.client_id, now)
            .await
            .unwrap()
    );
    assert!(
        !store
            .revoke_access_token(&access.token_hash, &c.client_id, now)
            .await
            .unwrap()
    );
    assert!(
        store
            .get_access_token(&access.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    assert!(
        store
            .try_lock_job("store-scenario")
            .await
            .unwrap()
            .is_some()
    );
}

fn ciba_request(client_id: &str, user_id: i64, now: i64) -> CibaRequestRecord {
    CibaRequestRecord {
        request_hash: random_bytes::<32>().to_vec(),
        client_id: client_id.into(),
        user_id,
        scope: "openid profile".into(),
        binding_message: Some("Order \0 4711 ✓".into()),
        status: CibaStatus::Pending,
        approved_user_id: None,
        auth_time: None,
        amr: None,
        interval_secs: 5,
        last_polled_at: None,
        notification_token: Some("client-token".into()),
        id_seed: Some(random_bytes::<32>().to_vec()),
        created_at: now,
        expires_at: now + 300,
    }
}

/// Backchannel authentication requests (CIBA): polled at the interval to the millisecond,
/// decided once, consumed once by their own client; usernames found in any case.
async fn ciba(store: Arc<dyn Store>) {
    let now = crate::clock::system_now();
    let ms = now * 1000;
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let user = 7_000_000_000 + i64::from(u32::from_be_bytes(random_bytes::<4>()) % 1_000_000);
    let r = ciba_request(&c.client_id, user, now);
    store.create_ciba_request(&r).await.unwrap();
    let hash = r.request_hash.clone();
    assert!(matches!(
        store.poll_ciba_request(&hash, "other", ms).await.unwrap(),
        CibaPoll::Unknown
    ));
    let CibaPoll::Polled(first) = store
        .poll_ciba_request(&hash, &c.client_id, ms)
        .await
        .unwrap()
    else {
        panic!("the first poll is in time");
    };
    assert_eq!(first.status, CibaStatus::Pending);
    assert_eq!(first.user_id, user);
    assert_eq!(first.notification_token.as_deref(), Some("client-token"));
    assert_eq!(first.id_seed, r.id_seed);
    // Any text is kept or made safe (PostgreSQL has no NUL in text), never an error.
    assert!(
        first
            .binding_message
            .as_deref()
            .is_some_and(|m| m.starts_with("Order ") && m.ends_with("4711 ✓"))
    );
    // One millisecond short of the interval is too soon, and the interval grows.
    assert!(matches!(
        store
            .poll_ciba_request(&hash, &c.client_id, ms + 4_999)
            .await
            .unwrap(),
        CibaPoll::SlowDown { interval_secs: 10 }
    ));
    assert!(matches!(
        store
            .poll_ciba_request(&hash, &c.client_id, ms + 4_999 + 10_000)
            .await
            .unwrap(),
        CibaPoll::Polled(_)
    ));
    // Not approved yet: nothing to consume.
    assert!(
        store
            .consume_ciba_request(&hash, &c.client_id, now)
            .await
            .unwrap()
            .is_none()
    );
    let approval = DeviceApproval {
        user_id: user,
        auth_time: now,
        amr: "telegram_bot".into(),
    };
    let decided = store
        .decide_ciba_request(&hash, Some(&approval), now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(decided.status, CibaStatus::Approved);
    assert_eq!(decided.approved_user_id, Some(user));
    // Decided once: a later Deny changes nothing.
    assert!(
        store
            .decide_ciba_request(&hash, None, now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .consume_ciba_request(&hash, "other", now)
            .await
            .unwrap()
            .is_none()
    );
    let consumed = store
        .consume_ciba_request(&hash, &c.client_id, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (consumed.approved_user_id, consumed.amr.as_deref()),
        (Some(user), Some("telegram_bot"))
    );
    assert!(
        store
            .consume_ciba_request(&hash, &c.client_id, now)
            .await
            .unwrap()
            .is_none()
    );
    let CibaPoll::Polled(after) = store
        .poll_ciba_request(&hash, &c.client_id, ms + 60_000)
        .await
        .unwrap()
    else {
        panic!("a consumed request is still found");
    };
    assert_eq!(after.status, CibaStatus::Consumed);

    // Denied, and expired.
    let denied = ciba_request(&c.client_id, user, now);
    store.create_ciba_request(&denied).await.unwrap();
    let d = store
        .decide_ciba_request(&denied.request_hash, None, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((d.status, d.approved_user_id), (CibaStatus::Denied, None));
    let mut old = ciba_request(&c.client_id, user, now);
    old.expires_at = now - 1;
    store.create_ciba_request(&old).await.unwrap();
    assert!(
        store
            .decide_ciba_request(&old.request_hash, Some(&approval), now)
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        store
            .poll_ciba_request(&old.request_hash, &c.client_id, ms)
            .await
            .unwrap(),
        CibaPoll::Expired
    ));

    // A bot login that asks about a CIBA request keeps the link.
    let (id, payload) = (new_id(), random_bytes::<32>().to_vec());
    store
        .create_bot_login(&BotLoginRecord {
            id: id.clone(),
            payload_hash: payload.clone(),
            client_id: c.client_id.clone(),
            pending_hash: None,
            browser_hash: None,
            device_hash: None,
            ciba_hash: Some(hash.clone()),
            status: BotLoginStatus::Pending,
            telegram_id: None,
            identity: None,
            created_at: now,
            expires_at: now + 60,
            match_code: None,
            requester: Some(r#"{"binding_message":"Order 4711"}"#.into()),
            answer: None,
        })
        .await
        .unwrap();
    let started = store
        .start_bot_login(&payload, user, now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (started.ciba_hash.as_deref(), started.match_code),
        (Some(hash.as_slice()), None)
    );

    // Usernames, in any case; the most recently seen holder wins.
    let name = format!("Ciba_{}", new_id().replace('-', "_"));
    let mut holder = UserRecord {
        telegram_id: user,
        first_name: "C".into(),
        last_name: None,
        username: Some(name.clone()),
        photo_url: None,
        language_code: None,
        is_premium: false,
        phone_number: None,
        created_at: now,
        updated_at: now,
        groups: None,
    };
    store.upsert_user(&holder).await.unwrap();
    assert_eq!(
        store
            .find_user_by_username(&name.to_lowercase())
            .await
            .unwrap(),
        Some(user)
    );
    holder.telegram_id = user + 1;
    holder.updated_at = now + 1;
    store.upsert_user(&holder).await.unwrap();
    assert_eq!(
        store
            .find_user_by_username(&name.to_uppercase())
            .await
            .unwrap(),
        Some(user + 1)
    );
    assert_eq!(
        store.find_user_by_username("nobody\0here").await.unwrap(),
        None
    );
    // The users a client has served: by consent or by grant, each once.
    store
        .save_consent(user, &c.client_id, "openid", now)
        .await
        .unwrap();
    store
        .create_grant(&grant(&c.client_id, user, now))
        .await
        .unwrap();
    store
        .create_grant(&grant(&c.client_id, user + 2, now))
        .await
        .unwrap();
    let mut served = store.client_user_ids(&c.client_id, 10).await.unwrap();
    served.sort();
    assert_eq!(served, vec![user, user + 2]);
    assert_eq!(
        store.client_user_ids(&c.client_id, 1).await.unwrap().len(),
        1
    );
    assert!(store.client_user_ids("other", 10).await.unwrap().is_empty());
}

#[tokio::test]
async fn ciba_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/ciba.db", dir.path().display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    ciba(Arc::new(store)).await;
}

#[tokio::test]
async fn ciba_on_postgres() {
    let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: the PostgreSQL run needs TEST_DATABASE_URL");
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    ciba(Arc::new(store)).await;
}

#[tokio::test]
async fn flows_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/flows.db", dir.path().display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    flows(Arc::new(store)).await;
}

#[tokio::test]
async fn flows_on_postgres() {
    let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the PostgreSQL tests: set TEST_DATABASE_URL"
        );
        eprintln!("SKIPPED: the PostgreSQL run needs TEST_DATABASE_URL");
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    flows(Arc::new(store)).await;
}

/// Shared rate counters: one statement counts several windows, each window counts apart, a
/// read does not count, and ended windows are swept.
#[tokio::test]
async fn rate_counters_on_postgres() {
    let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: the PostgreSQL run needs TEST_DATABASE_URL");
        return;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    assert!(store.shares_rate_counters());
    let window = |key: [u8; 32], start: i64| RateWindow {
        key_hash: key,
        window_start: start,
        expires_at: start + 60,
    };
    let (a, b) = (random_bytes::<32>(), random_bytes::<32>());
    // Far in the past, so that the sweep below takes only these rows' windows.
    let start = 60 * i64::from(u16::from_le_bytes(random_bytes::<2>()));
    assert_eq!(
        store
            .add_rate_hits(&[window(b, start), window(a, start)])
            .await
            .unwrap(),
        vec![1, 1]
    );
    assert_eq!(
        store.add_rate_hits(&[window(a, start)]).await.unwrap(),
        vec![2]
    );
    assert_eq!(
        store
            .add_rate_hits(&[window(a, start), window(b, start)])
            .await
            .unwrap(),
        vec![3, 2]
    );
    assert_eq!(store.read_rate_hits(&window(a, start)).await.unwrap(), 3);
    assert_eq!(store.read_rate_hits(&window(a, start)).await.unwrap(), 3);
    assert_eq!(
        store.read_rate_hits(&window(a, start + 60)).await.unwrap(),
        0
    );
    assert_eq!(
        store.add_rate_hits(&[window(a, start + 60)]).await.unwrap(),
        vec![1]
    );
    store.delete_expired(start + 61).await.unwrap();
    assert_eq!(store.read_rate_hits(&window(a, start)).await.unwrap(), 0);
    assert_eq!(store.read_rate_hits(&window(b, start)).await.unwrap(), 0);
    assert_eq!(
        store.read_rate_hits(&window(a, start + 60)).await.unwrap(),
        1
    );
    // SQLite keeps none: the limiter counts in memory there.
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::connect(&format!("sqlite://{}/r.db", dir.path().display()))
        .await
        .unwrap();
    assert!(!sqlite.shares_rate_counters());
}

fn access(g: &GrantRecord, now: i64) -> AccessTokenRecord {
    AccessTokenRecord {
        token_hash: random_bytes::<32>().to_vec(),
        grant_id: g.id.clone(),
        client_id: g.client_id.clone(),
        user_id: g.user_id,
        scope: g.scope.clone(),
        created_at: now,
        expires_at: now + 60,
    }
}

fn refresh(g: &GrantRecord, now: i64, ttl: i64) -> RefreshTokenRecord {
    RefreshTokenRecord {
        token_hash: random_bytes::<32>().to_vec(),
        grant_id: g.id.clone(),
        created_at: now,
        expires_at: now + ttl,
    }
}

/// The PostgreSQL store of the tests, or `None` without `TEST_DATABASE_URL`.
async fn postgres() -> Option<PostgresStore> {
    let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        eprintln!("SKIPPED: the PostgreSQL run needs TEST_DATABASE_URL");
        return None;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

async fn sqlite_store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let url = format!("sqlite://{}/writes.db", dir.path().display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}

/// What one task of a burst stored, to be read back afterwards.
struct Stored {
    grant: GrantRecord,
    access: Option<AccessTokenRecord>,
    refresh: Option<RefreshTokenRecord>,
}

/// 200 requests at once, storing grants, codes and tokens every way a request does (on
/// PostgreSQL they share transactions): every one succeeds and is there afterwards, each
/// grant kept alive as long as its refresh tokens, the longest of several in the same burst.
async fn many_writes_at_once(store: Arc<dyn Store>) {
    // The real time: rows dated in the past would be swept by another test's server.
    let now = crate::clock::system_now();
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let shared = grant(&c.client_id, 5, now);
    store.create_grant(&shared).await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..200_i64 {
        let (store, c, shared) = (store.clone(), c.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let g = grant(&c.client_id, 1000 + i, now);
            let (a, r) = (access(&g, now), refresh(&g, now, 3600 + i));
            match i % 5 {
                // A token exchange, a device or CIBA grant: a new grant with its tokens.
                0 => {
                    store
                        .create_grant_with_tokens(&g, Some(&a), Some(&r))
                        .await
                        .unwrap();
                    Stored {
                        grant: g,
                        access: Some(a),
                        refresh: Some(r),
                    }
                }
                // client_credentials.
                1 => {
                    store
                        .create_grant_with_tokens(&g, Some(&a), None)
                        .await
                        .unwrap();
                    Stored {
                        grant: g,
                        access: Some(a),
                        refresh: None,
                    }
                }
                // A login: the grant with its code, then the code's tokens.
                2 => {
                    let code = CodeRecord {
                        code_hash: random_bytes::<32>().to_vec(),
                        grant_id: g.id.clone(),
                        redirect_uri: "https://a.example/cb".into(),
                        code_challenge: Some("challenge".into()),
                        expires_at: now + 60,
                    };
                    store.create_grant_with_code(&g, &code).await.unwrap();
                    let redeemed = store
                        .redeem_code(&code.code_hash, &c.client_id, now)
                        .await
                        .unwrap();
                    assert!(matches!(redeemed, RedeemOutcome::Redeemed(_)));
                    store.store_tokens(Some(&a), Some(&r)).await.unwrap();
                    Stored {
                        grant: g,
                        access: Some(a),
                        refresh: Some(r),
                    }
                }
                3 => {
                    store.create_grant(&g).await.unwrap();
                    store.store_tokens(Some(&a), None).await.unwrap();
                    Stored {
                        grant: g,
                        access: Some(a),
                        refresh: None,
                    }
                }
                // Refresh tokens of one grant, in many requests of the burst, the longest
                // neither first nor last.
                _ => {
                    let r = refresh(&shared, now, 3600 + (i * 37) % 200);
                    store.store_tokens(None, Some(&r)).await.unwrap();
                    Stored {
                        grant: shared,
                        access: None,
                        refresh: Some(r),
                    }
                }
            }
        }));
    }
    let mut stored = Vec::new();
    for task in tasks {
        stored.push(task.await.unwrap());
    }
    for s in &stored {
        let g = store
            .get_grant(&s.grant.id)
            .await
            .unwrap()
            .expect("a grant");
        assert_eq!(
            (&g.client_id, g.user_id, &g.scope),
            (&s.grant.client_id, s.grant.user_id, &s.grant.scope)
        );
        if let Some(a) = &s.access {
            let found = store.get_access_token(&a.token_hash).await.unwrap();
            let found = found.expect("an access token");
            assert!(!found.revoked);
            assert_eq!(
                (&found.record.grant_id, found.record.expires_at),
                (&a.grant_id, a.expires_at)
            );
        }
        if let Some(r) = &s.refresh {
            let found = store.get_refresh_token(&r.token_hash).await.unwrap();
            let found = found.expect("a refresh token");
            assert!(!found.used);
            assert_eq!(found.grant.id, r.grant_id);
            assert_eq!(found.record.expires_at, r.expires_at);
            assert!(g.expires_at >= r.expires_at, "the grant outlives its token");
        }
    }
    // The grant of many refresh tokens lives as long as the longest.
    let longest = stored
        .iter()
        .filter(|s| s.grant.id == shared.id)
        .filter_map(|s| s.refresh.as_ref().map(|r| r.expires_at))
        .max()
        .unwrap();
    let g = store.get_grant(&shared.id).await.unwrap().unwrap();
    assert_eq!(g.expires_at, longest);
    // A grant is never stored with another grant's token.
    let g = grant(&c.client_id, 7, now);
    let other = access(&shared, now);
    assert!(matches!(
        store.create_grant_with_tokens(&g, Some(&other), None).await,
        Err(StoreError::Internal(_))
    ));
    assert!(store.get_grant(&g.id).await.unwrap().is_none());
}

/// A burst in which two writes reuse a stored token hash: those two get `Conflict` and store
/// nothing (not even their grant), every other write of the burst succeeds (on PostgreSQL:
/// their group was rolled back and each write ran again alone).
async fn one_conflict_in_a_burst(store: Arc<dyn Store>) {
    let now = crate::clock::system_now();
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let first = grant(&c.client_id, 1, now);
    let (taken_access, taken_refresh) = (access(&first, now), refresh(&first, now, 3600));
    store
        .create_grant_with_tokens(&first, Some(&taken_access), Some(&taken_refresh))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..100 {
        let store = store.clone();
        let (c, taken_access, taken_refresh) =
            (c.clone(), taken_access.clone(), taken_refresh.clone());
        tasks.push(tokio::spawn(async move {
            let g = grant(&c.client_id, 100 + i, now);
            let (mut a, mut r) = (access(&g, now), refresh(&g, now, 3600));
            match i {
                40 => a.token_hash = taken_access.token_hash,
                60 => r.token_hash = taken_refresh.token_hash,
                _ => {}
            }
            let outcome = store.create_grant_with_tokens(&g, Some(&a), Some(&r)).await;
            (i, g, a, outcome)
        }));
    }
    for task in tasks {
        let (i, g, a, outcome) = task.await.unwrap();
        if i == 40 || i == 60 {
            assert!(
                matches!(outcome, Err(StoreError::Conflict(_))),
                "{outcome:?}"
            );
            assert!(
                store.get_grant(&g.id).await.unwrap().is_none(),
                "all or nothing"
            );
        } else {
            outcome.unwrap();
            assert!(store.get_grant(&g.id).await.unwrap().is_some());
            let found = store
                .get_access_token(&a.token_hash)
                .await
                .unwrap()
                .unwrap();
            assert_eq!(found.record.grant_id, g.id);
        }
    }
    // The tokens that were there first are untouched.
    let found = store
        .get_access_token(&taken_access.token_hash)
        .await
        .unwrap();
    assert_eq!(found.unwrap().record.grant_id, first.id);
    let found = store
        .get_refresh_token(&taken_refresh.token_hash)
        .await
        .unwrap();
    assert_eq!(found.unwrap().grant.id, first.id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writes_at_once_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    many_writes_at_once(sqlite_store(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writes_at_once_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    many_writes_at_once(Arc::new(store)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_conflict_in_a_burst_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    one_conflict_in_a_burst(sqlite_store(&dir).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_conflict_in_a_burst_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    one_conflict_in_a_burst(Arc::new(store)).await;
}

/// On PostgreSQL a burst of writes is committed in fewer transactions than it has writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_committed_in_groups_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    let now = crate::clock::system_now();
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let before = store.groups_committed();
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    let tasks: Vec<_> = (0..200)
        .map(|i| {
            let (store, c) = (shared.clone(), c.clone());
            tokio::spawn(async move {
                let g = grant(&c.client_id, i, now);
                let a = access(&g, now);
                store.create_grant_with_tokens(&g, Some(&a), None).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let groups = store.groups_committed() - before;
    eprintln!("200 writes in {groups} transactions");
    assert!((1..200).contains(&groups), "{groups} groups");
}

/// Text with NUL, through the group writer: stored as U+FFFD, as the single-row statements
/// store it, and found again by the same text.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nul_in_grouped_writes_is_stored_as_replacement_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    let store: Arc<dyn Store> = Arc::new(store);
    let now = crate::clock::system_now();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut g = grant(&format!("app\0{i}"), i, now);
                g.id = format!("{}\0", g.id);
                g.scope = "openid\0x".into();
                g.amr = "telegram\0bot".into();
                g.nonce = Some("n\0".into());
                let mut a = access(&g, now);
                a.scope = "s\0".into();
                let r = refresh(&g, now, 3600);
                let code = CodeRecord {
                    code_hash: random_bytes::<32>().to_vec(),
                    grant_id: g.id.clone(),
                    redirect_uri: "https://a.example/\0".into(),
                    code_challenge: Some("c\0".into()),
                    expires_at: now + 60,
                };
                if i % 2 == 0 {
                    store
                        .create_grant_with_tokens(&g, Some(&a), Some(&r))
                        .await
                        .unwrap();
                } else {
                    store.create_grant_with_code(&g, &code).await.unwrap();
                    store.store_tokens(Some(&a), Some(&r)).await.unwrap();
                }
                (g, a, r, code, i % 2 == 1)
            })
        })
        .collect();
    for task in tasks {
        let (g, a, r, code, with_code) = task.await.unwrap();
        let stored = store
            .get_grant(&g.id)
            .await
            .unwrap()
            .expect("found by its id");
        assert!(!stored.id.contains('\0') && stored.id.ends_with('\u{FFFD}'));
        assert_eq!(stored.client_id, g.client_id.replace('\0', "\u{FFFD}"));
        assert_eq!(stored.scope, "openid\u{FFFD}x");
        assert_eq!(stored.amr, "telegram\u{FFFD}bot");
        assert_eq!(stored.nonce.as_deref(), Some("n\u{FFFD}"));
        let found = store
            .get_access_token(&a.token_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.record.grant_id, stored.id);
        assert_eq!(found.record.client_id, stored.client_id);
        assert_eq!(found.record.scope, "s\u{FFFD}");
        let found = store
            .get_refresh_token(&r.token_hash)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.grant.id, stored.id);
        if with_code {
            let redeemed = store
                .redeem_code(&code.code_hash, &g.client_id, now)
                .await
                .unwrap();
            let RedeemOutcome::Redeemed(redeemed) = redeemed else {
                panic!("the code is found: {redeemed:?}");
            };
            assert_eq!(redeemed.grant_id, stored.id);
            assert_eq!(redeemed.redirect_uri, "https://a.example/\u{FFFD}");
            assert_eq!(redeemed.code_challenge.as_deref(), Some("c\u{FFFD}"));
        }
    }
}

/// The group writer runs on the runtime of the first write; when that runtime is gone (and the
/// writer with it), a later write on another runtime is answered, never left waiting: stored
/// by a writer started again, or refused as unavailable when the pool's connections went with
/// the old runtime.
#[test]
fn a_write_after_the_writers_runtime_ended_is_answered_on_postgres() {
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    };
    let first = runtime();
    let Some(store) = first.block_on(postgres()) else {
        return;
    };
    let now = crate::clock::system_now();
    let c = client(now);
    first.block_on(async {
        store.create_client(&c).await.unwrap();
        store
            .create_grant(&grant(&c.client_id, 1, now))
            .await
            .unwrap();
    });
    drop(first);
    let second = runtime();
    let g = grant(&c.client_id, 2, now);
    let outcome = second.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(20), store.create_grant(&g)).await
    });
    match outcome.expect("answered, not left waiting") {
        Ok(()) => {
            let stored = second.block_on(store.get_grant(&g.id)).unwrap();
            assert!(stored.is_some(), "answered Ok, so stored");
        }
        Err(e) => assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}"),
    }
}

/// The group writer is one task, shared by the store's copies, that ends when the last copy
/// is dropped.
#[tokio::test]
async fn the_group_writer_ends_with_its_store_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    let now = crate::clock::system_now();
    let c = client(now);
    store.create_client(&c).await.unwrap();
    let copy = store.clone();
    store
        .create_grant(&grant(&c.client_id, 1, now))
        .await
        .unwrap();
    copy.create_grant(&grant(&c.client_id, 2, now))
        .await
        .unwrap();
    let probe = store.writer_probe();
    drop(store);
    copy.create_grant(&grant(&c.client_id, 3, now))
        .await
        .unwrap();
    assert!(probe.strong_count() > 0, "a copy keeps the writer");
    drop(copy);
    for _ in 0..100 {
        if probe.strong_count() == 0 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the writer outlived its store");
}
