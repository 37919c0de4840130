//! The account store, generic over the backend: what a user's lists show and what revoking
//! and signing out change, on SQLite always and on PostgreSQL when `TEST_DATABASE_URL` is set.

use std::sync::Arc;

use telegram_oidc::secrets::random_bytes;
use telegram_oidc::store::*;

use crate::store::{client, grant, postgres_url, refresh, unique_user};

fn session(user: i64, now: i64, device: &str) -> SessionRecord {
    SessionRecord {
        id_hash: random_bytes::<32>().to_vec(),
        user_id: user,
        auth_time: now,
        amr: "telegram_widget".into(),
        created_at: now,
        expires_at: now + 600,
        device: Some(device.into()),
        place: Some("Testville, Testland\0".into()),
        last_used_at: now,
    }
}

fn access(g: &GrantRecord, now: i64) -> AccessTokenRecord {
    AccessTokenRecord {
        token_hash: random_bytes::<32>().to_vec(),
        grant_id: g.id.clone(),
        client_id: g.client_id.clone(),
        user_id: g.user_id,
        scope: g.scope.clone(),
        created_at: now,
        expires_at: now + 600,
    }
}

async fn account_scenario(store: Arc<dyn Store>) {
    let now = telegram_oidc::clock::system_now();
    let user = unique_user();
    let (a, b) = (client(now), client(now));
    store.create_client(&a).await.unwrap();
    store.create_client(&b).await.unwrap();

    // Sessions: listed most recently used first, touched, with what the browser said.
    let s1 = session(user, now, "Firefox on Linux");
    let s2 = session(user, now + 1, "Chrome on Android");
    store.create_session(&s1).await.unwrap();
    store.create_session(&s2).await.unwrap();
    store
        .create_session(&session(unique_user(), now, "someone else"))
        .await
        .unwrap();
    let listed = store.list_user_sessions(user, now).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].device.as_deref(), Some("Chrome on Android"));
    assert!(listed[0].place.as_deref().unwrap().starts_with("Testville"));
    store.touch_session(&s1.id_hash, now + 30).await.unwrap();
    let listed = store.list_user_sessions(user, now + 30).await.unwrap();
    assert_eq!(listed[0].id_hash, s1.id_hash);
    assert_eq!(listed[0].last_used_at, now + 30);
    assert!(
        store
            .list_user_sessions(user, now + 601)
            .await
            .unwrap()
            .is_empty()
    );

    // Apps: a consent, a grant issued in session 1 with tokens, a grant of another app.
    store
        .save_consent(user, &a.client_id, "openid profile", now)
        .await
        .unwrap();
    let mut ga = grant(&a.client_id, user, now + 5);
    ga.session_hash = Some(s1.id_hash.clone());
    store.create_grant(&ga).await.unwrap();
    let ta = access(&ga, now + 7);
    let ra = refresh(&ga.id, now, 3600);
    store.store_tokens(Some(&ta), Some(&ra)).await.unwrap();
    let gb = grant(&b.client_id, user, now + 2);
    store.create_grant(&gb).await.unwrap();
    let tb = access(&gb, now + 2);
    store.store_tokens(Some(&tb), None).await.unwrap();
    let apps = store.list_user_apps(user, now + 8).await.unwrap();
    assert_eq!(
        apps,
        vec![
            UserAppRecord {
                client_id: a.client_id.clone(),
                scope: "openid profile".into(),
                last_used_at: now + 7,
            },
            UserAppRecord {
                client_id: b.client_id.clone(),
                scope: "openid".into(),
                last_used_at: now + 2,
            },
        ]
    );
    assert_eq!(
        store.get_grant(&ga.id).await.unwrap().unwrap().session_hash,
        Some(s1.id_hash.clone())
    );

    // Revoking app a: consent, grant, refresh and access tokens, at once; b untouched.
    assert!(
        store
            .revoke_user_app(user, &a.client_id, now + 9)
            .await
            .unwrap()
    );
    assert!(
        store
            .get_consent(user, &a.client_id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_access_token(&ta.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    let next = refresh(&ga.id, now + 9, 3600);
    let rotated = store
        .rotate_refresh_token_issuing(&ra.token_hash, &a.client_id, &next, None, now + 9)
        .await
        .unwrap();
    assert!(matches!(rotated, RotateOutcome::Invalid), "{rotated:?}");
    assert!(
        !store
            .get_access_token(&tb.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked
    );
    let apps = store.list_user_apps(user, now + 10).await.unwrap();
    assert_eq!(apps.len(), 1);
    assert_eq!(apps[0].client_id, b.client_id);
    assert!(
        !store
            .revoke_user_app(user, &a.client_id, now + 10)
            .await
            .unwrap()
    );

    // The grants of one session: only this user's, only that session's.
    let mut gs = grant(&b.client_id, user, now + 11);
    gs.session_hash = Some(s2.id_hash.clone());
    store.create_grant(&gs).await.unwrap();
    assert!(
        store
            .revoke_session_grants(unique_user(), &s2.id_hash, now + 12)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store
            .revoke_session_grants(user, &s2.id_hash, now + 12)
            .await
            .unwrap(),
        vec![b.client_id.clone()]
    );
    assert!(
        store
            .get_grant(&gs.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert!(
        store
            .get_grant(&gb.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_none()
    );

    // Login alerts: unknown users have none; a choice and a first bot login are kept.
    assert_eq!(store.login_alerts(user).await.unwrap(), None);
    assert!(!store.set_login_alerts(user, true).await.unwrap());
    let mut record = UserRecord {
        telegram_id: user,
        first_name: "A".into(),
        last_name: None,
        username: None,
        photo_url: None,
        language_code: None,
        is_premium: false,
        phone_number: None,
        created_at: now,
        updated_at: now,
        groups: None,
    };
    store.upsert_user(&record).await.unwrap();
    assert_eq!(
        store.login_alerts(user).await.unwrap(),
        Some(LoginAlertsRecord::default())
    );
    store.note_bot_chat_login(user, now).await.unwrap();
    store.note_bot_chat_login(user, now + 5).await.unwrap();
    assert!(store.set_login_alerts(user, false).await.unwrap());
    record.first_name = "Renamed".into();
    store.upsert_user(&record).await.unwrap();
    assert_eq!(
        store.login_alerts(user).await.unwrap(),
        Some(LoginAlertsRecord {
            chosen: Some(false),
            bot_chat_since: Some(now),
        })
    );
}

#[tokio::test]
async fn account_scenario_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/s.db", dir.path().display());
    account_scenario(telegram_oidc::open_store(&url).await.unwrap()).await;
}

#[tokio::test]
async fn account_scenario_on_postgres() {
    let Some(url) = postgres_url() else { return };
    account_scenario(telegram_oidc::open_store(&url).await.unwrap()).await;
}
