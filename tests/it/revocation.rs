//! Revocation (RFC 7009), introspection (RFC 7662) and service accounts (client credentials).

use reqwest::StatusCode;
use serde_json::{Value, json};
use telegram_oidc::store::AccessTokenFormat;

use crate::harness::*;

const VERIFIER: &str = "revocation-test-verifier-0123456789-abcdefghijklmnop";

async fn post(
    app: &TestApp,
    path: &str,
    client: &TestClient,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(app.url(path))
        .basic_auth(client.id(), Some(client.secret()))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    assert_eq!(
        resp.headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap()),
        Some("no-store")
    );
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Access and refresh token for `client` after a full login.
async fn tokens(app: &TestApp, client: &TestClient) -> (String, String) {
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid%20offline_access&state=s&code_challenge={}&code_challenge_method=S256",
        app.url("/authorize"),
        client.id(),
        url::form_urlencoded::byte_serialize(client.redirect_uri.as_bytes()).collect::<String>(),
        telegram_oidc::oidc::pkce::s256(VERIFIER),
    );
    let back = authorize_through(app, &Browser::new(), &url, &TgUser::new(8080)).await;
    let code = query_param(&back, "code").unwrap();
    let (status, body) = post(
        app,
        "/token",
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    (
        body["access_token"].as_str().unwrap().to_string(),
        body["refresh_token"].as_str().unwrap().to_string(),
    )
}

async fn userinfo_status(app: &TestApp, access: &str) -> StatusCode {
    reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let (access, refresh) = tokens(&app, &client).await;
    let (status, _) = post(
        &app,
        "/revoke",
        &client,
        &[("token", &refresh), ("token_type_hint", "refresh_token")],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        userinfo_status(&app, &access).await,
        StatusCode::UNAUTHORIZED
    );
    let (status, body) = post(
        &app,
        "/token",
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
    app.stop().await;
}

#[tokio::test]
async fn revoking_an_access_token_leaves_the_refresh_token_working() {
    for format in [AccessTokenFormat::Jwt, AccessTokenFormat::Opaque] {
        let app = TestApp::start().await;
        let client = app
            .client(ClientSpec {
                format,
                ..Default::default()
            })
            .await;
        let (access, refresh) = tokens(&app, &client).await;
        assert_eq!(userinfo_status(&app, &access).await, StatusCode::OK);
        let (status, _) = post(&app, "/revoke", &client, &[("token", &access)]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            userinfo_status(&app, &access).await,
            StatusCode::UNAUTHORIZED
        );
        let (_, intro) = post(&app, "/introspect", &client, &[("token", &access)]).await;
        assert_eq!(intro, json!({"active": false}));
        let (status, body) = post(
            &app,
            "/token",
            &client,
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        app.stop().await;
    }
}

#[tokio::test]
async fn revocation_needs_client_authentication_and_answers_200_for_unknown_and_foreign_tokens() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let other = app.confidential_client().await;
    let (access, refresh) = tokens(&app, &client).await;
    let resp = reqwest::Client::new()
        .post(app.url("/revoke"))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let (status, body) = post(&app, "/revoke", &client, &[("token", "tgrt_unknown")]).await;
    assert_eq!((status, body), (StatusCode::OK, Value::Null));
    let (status, body) = post(&app, "/revoke", &client, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    // Another client cannot revoke this client's tokens.
    for token in [&access, &refresh] {
        let (status, _) = post(&app, "/revoke", &other, &[("token", token)]).await;
        assert_eq!(status, StatusCode::OK);
    }
    assert_eq!(userinfo_status(&app, &access).await, StatusCode::OK);
    let (_, intro) = post(&app, "/introspect", &client, &[("token", &refresh)]).await;
    assert_eq!(intro["active"], true);
    app.stop().await;
}

#[tokio::test]
async fn introspection_describes_live_tokens_and_hides_everything_else() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let other = app.confidential_client().await;
    let (access, refresh) = tokens(&app, &client).await;
    let (status, intro) = post(&app, "/introspect", &client, &[("token", &access)]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(intro["active"], true);
    assert_eq!(intro["sub"], "8080");
    assert_eq!(intro["client_id"], client.id());
    assert_eq!(intro["scope"], "openid offline_access");
    assert_eq!(intro["iss"], app.base);
    assert_eq!(intro["token_type"], "Bearer");
    assert!(intro["exp"].as_i64().unwrap() > intro["iat"].as_i64().unwrap());
    let (_, intro) = post(&app, "/introspect", &client, &[("token", &refresh)]).await;
    assert_eq!(intro["active"], true);
    assert_eq!(intro["token_type"], "refresh_token");
    // Foreign, unknown, garbage: inactive and nothing else.
    let (_, intro) = post(&app, "/introspect", &other, &[("token", &access)]).await;
    assert_eq!(intro, json!({"active": false}));
    for junk in ["tgat_nothing", "a.b.c", "x"] {
        let (_, intro) = post(&app, "/introspect", &client, &[("token", junk)]).await;
        assert_eq!(intro, json!({"active": false}));
    }
    // Expired.
    app.clock
        .advance(app.config.tokens.access_token_ttl_secs + 1);
    let (_, intro) = post(&app, "/introspect", &client, &[("token", &access)]).await;
    assert_eq!(intro, json!({"active": false}));
    // A used refresh token.
    let (_, _) = post(
        &app,
        "/token",
        &client,
        &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
    )
    .await;
    let (_, intro) = post(&app, "/introspect", &client, &[("token", &refresh)]).await;
    assert_eq!(intro, json!({"active": false}));
    // Unauthenticated callers get nothing.
    let resp = reqwest::Client::new()
        .post(app.url("/introspect"))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

#[tokio::test]
async fn a_service_account_gets_only_an_access_token_for_its_scopes() {
    let app = TestApp::start().await;
    let (record, secret) = telegram_oidc::admin::add_client(
        app.store.as_ref(),
        telegram_oidc::admin::NewClient {
            name: "Billing job".into(),
            kind: telegram_oidc::store::ClientKind::Confidential,
            redirect_uris: vec![],
            scopes: vec!["api:read".into(), "api:write".into()],
            id_token_alg: telegram_oidc::keys::SigningAlg::RS256,
            access_token_format: AccessTokenFormat::Opaque,
            refresh_policy: telegram_oidc::store::RefreshPolicy::Never,
            skip_consent: false,
            service_account: true,
            ..Default::default()
        },
        app.now(),
    )
    .await
    .unwrap();
    let service = TestClient {
        record,
        secret,
        redirect_uri: String::new(),
    };
    let (status, body) = post(
        &app,
        "/token",
        &service,
        &[("grant_type", "client_credentials"), ("scope", "api:read")],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "api:read");
    assert!(body.get("id_token").is_none() && body.get("refresh_token").is_none());
    let access = body["access_token"].as_str().unwrap();
    let (_, intro) = post(&app, "/introspect", &service, &[("token", access)]).await;
    assert_eq!(intro["active"], true);
    assert_eq!(intro["sub"], service.id());
    // Userinfo is for users, not services.
    assert_eq!(userinfo_status(&app, access).await, StatusCode::FORBIDDEN);
    let (status, body) = post(
        &app,
        "/token",
        &service,
        &[("grant_type", "client_credentials"), ("scope", "api:admin")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_scope"))
    );
    // An ordinary app is not a service account.
    let app_client = app.confidential_client().await;
    let (status, body) = post(
        &app,
        "/token",
        &app_client,
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client"))
    );
    app.stop().await;
}
