//! Server-side request forgery: with `outbound.allow_private` off (the default), URLs that a
//! dynamically registered client chose never make the server connect to an internal address,
//! whether the address is written in the URL or a name resolves to it. Admin-registered URLs
//! and `allow_private` reach them.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use reqwest::StatusCode;
use serde_json::{Value, json};
use telegram_oidc::config::Secret;

use crate::client_assertion::{JWT_BEARER, Signer, claims, post_form};
use crate::harness::*;

const INITIAL_TOKEN: &str = "initial-access-token-ssrf-0123456789abcdef";
const REDIRECT: &str = "https://rp.example.test/callback";

async fn start(allow_private: bool) -> TestApp {
    TestApp::start_with(|c| {
        c.registration.enabled = true;
        c.registration.initial_access_token = Secret::new(INITIAL_TOKEN);
        c.outbound.allow_private = allow_private;
    })
    .await
}

async fn register(app: &TestApp, metadata: &Value) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(app.url("/register"))
        .bearer_auth(INITIAL_TOKEN)
        .json(metadata)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A TCP listener that only counts the connections made to it.
struct Canary {
    port: u16,
    connections: Arc<AtomicUsize>,
}

async fn canary() -> Canary {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(AtomicUsize::new(0));
    let seen = connections.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            seen.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    Canary { port, connections }
}

/// This machine's name, which resolves to one of its own (internal) addresses.
async fn own_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the host name is readable")
        .trim()
        .to_owned();
    let addrs: Vec<_> = tokio::net::lookup_host((name.as_str(), 0))
        .await
        .unwrap_or_else(|e| panic!("the host name `{name}` does not resolve: {e}"))
        .collect();
    assert!(
        addrs
            .iter()
            .all(|a| telegram_oidc::outbound::internal_ip(a.ip()).is_some()),
        "`{name}` resolves to {addrs:?}; the test needs a name for an internal address"
    );
    name
}

#[tokio::test]
async fn internal_addresses_are_refused_at_registration() {
    let app = start(false).await;
    let canary = canary().await;
    let port = canary.port;
    let internal = [
        format!("http://127.0.0.1:{port}/x"),
        format!("https://127.0.0.1:{port}/x"),
        format!("http://localhost:{port}/x"),
        format!("https://localhost:{port}/x"),
        "https://169.254.169.254/latest/meta-data".to_string(),
        "https://10.0.0.1/x".to_string(),
        "https://192.168.0.1/x".to_string(),
        "https://[fd00::1]/x".to_string(),
        "https://[fe80::1]/x".to_string(),
        "https://0.0.0.0/x".to_string(),
        "https://[::ffff:127.0.0.1]/x".to_string(),
        "https://100.64.0.1/x".to_string(),
    ];
    for uri in &internal {
        let cases = [
            (
                "jwks_uri",
                json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                       "jwks_uri": uri, "scope": "profile"}),
            ),
            (
                "sector_identifier_uri",
                json!({"redirect_uris": [REDIRECT], "subject_type": "pairwise",
                       "sector_identifier_uri": uri}),
            ),
            (
                "backchannel_logout_uri",
                json!({"redirect_uris": [REDIRECT], "backchannel_logout_uri": uri}),
            ),
        ];
        for (name, metadata) in cases {
            let (status, body) = register(&app, &metadata).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{name} {uri}: {body}");
            assert_eq!(body["error"], "invalid_client_metadata", "{name} {uri}");
            let description = body["error_description"].as_str().unwrap();
            assert!(description.starts_with(name), "{description}");
        }
    }
    assert_eq!(
        canary.connections.load(Ordering::SeqCst),
        0,
        "no connection was made"
    );
    app.stop().await;
}

/// A name is not refused at registration, but the connection is: the client resolves the
/// name itself and connects only to public addresses, so DNS (or a rebinding) cannot lead it
/// inside. With `allow_private`, the same URL is reached.
#[tokio::test]
async fn a_name_resolving_inside_is_refused_when_connecting() {
    let name = own_name().await;
    for allow_private in [false, true] {
        let app = start(allow_private).await;
        let canary = canary().await;
        let signer = Signer::es256("k");
        let jwks_uri = format!("https://{name}:{}/jwks.json", canary.port);
        let (status, body) = register(
            &app,
            &json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
                    "jwks_uri": jwks_uri, "scope": "profile"}),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let client_id = body["client_id"].as_str().unwrap().to_string();
        let (status, body) = post_form(
            &app,
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_assertion_type", JWT_BEARER),
                ("client_assertion", &signer.sign(&claims(&app, &client_id))),
            ],
        )
        .await;
        // No keys could be fetched either way (the canary speaks no TLS).
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_client");
        let connections = canary.connections.load(Ordering::SeqCst);
        if allow_private {
            assert!(connections >= 1, "allow_private reaches the address");
        } else {
            assert_eq!(
                connections, 0,
                "the internal address was never connected to"
            );
        }
        app.stop().await;
    }
}

/// The sector identifier document is fetched during registration: through the same client.
#[tokio::test]
async fn a_sector_identifier_behind_a_name_is_not_fetched_inside() {
    let name = own_name().await;
    let app = start(false).await;
    let canary = canary().await;
    let (status, body) = register(
        &app,
        &json!({"redirect_uris": [REDIRECT], "subject_type": "pairwise",
                "sector_identifier_uri": format!("https://{name}:{}/sector.json", canary.port)}),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_client_metadata");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("does not reach"),
        "{body}"
    );
    assert_eq!(canary.connections.load(Ordering::SeqCst), 0);
    app.stop().await;
}

/// A client registered through the registration API cannot turn itself public (and shed the
/// secret that guards its tokens); the admin still can.
#[tokio::test]
async fn a_registration_cannot_change_its_client_type() {
    let app = start(false).await;
    let (status, body) = register(&app, &json!({"redirect_uris": [REDIRECT]})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let uri = body["registration_client_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let rat = body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let client_id = body["client_id"].as_str().unwrap().to_string();
    let put = |metadata: Value| {
        let (uri, rat) = (uri.clone(), rat.clone());
        async move {
            let resp = reqwest::Client::new()
                .put(&uri)
                .bearer_auth(&rat)
                .json(&metadata)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let (status, body) = put(json!({"client_id": client_id, "redirect_uris": [REDIRECT],
                                     "token_endpoint_auth_method": "none"}))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_client_metadata");
    let stored = app.store.get_client(&client_id).await.unwrap().unwrap();
    assert_eq!(
        stored.settings.kind,
        telegram_oidc::store::ClientKind::Confidential
    );
    assert!(stored.secret_hash.is_some(), "the secret is kept");
    // The same type with another method is still a valid replacement.
    let (status, body) = put(json!({"client_id": client_id, "redirect_uris": [REDIRECT],
                                     "token_endpoint_auth_method": "client_secret_post"}))
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}
