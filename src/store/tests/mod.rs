//! The flows and single-use rows the scenario of tests/it/store.rs leaves out, and bursts of
//! writes, run on both stores: SQLite always, PostgreSQL when `TEST_DATABASE_URL` is set.
//! `flows.rs`: the flows that wait for a person elsewhere, CIBA, shared rate counters;
//! `grouped.rs`: many writes at once (on PostgreSQL the group writer).

mod flows;
mod grouped;

use std::sync::Arc;

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

/// The PostgreSQL store of the tests, or `None` without `TEST_DATABASE_URL` (never in CI).
async fn postgres() -> Option<PostgresStore> {
    let Some(url) = std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
    else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run the PostgreSQL tests: set TEST_DATABASE_URL"
        );
        eprintln!("SKIPPED: the PostgreSQL run needs TEST_DATABASE_URL");
        return None;
    };
    let store = PostgresStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Some(store)
}

async fn sqlite_store(dir: &tempfile::TempDir) -> Arc<dyn Store> {
    let url = format!("sqlite://{}/store.db", dir.path().display());
    let store = SqliteStore::connect(&url).await.unwrap();
    store.migrate().await.unwrap();
    Arc::new(store)
}
