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
