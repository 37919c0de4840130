//! The flows that wait for a person elsewhere, the other single-use rows, CIBA requests and
//! the shared rate counters, on both stores.

use std::sync::Arc;

use super::*;
use crate::store::flows::*;

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
    ciba(sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn ciba_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    ciba(Arc::new(store)).await;
}

#[tokio::test]
async fn flows_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    flows(sqlite_store(&dir).await).await;
}

#[tokio::test]
async fn flows_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
    flows(Arc::new(store)).await;
}

/// Shared rate counters: one statement counts several windows, each window counts apart, a
/// read does not count, and ended windows are swept.
#[tokio::test]
async fn rate_counters_on_postgres() {
    let Some(store) = postgres().await else {
        return;
    };
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
