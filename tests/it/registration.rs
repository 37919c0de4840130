//! Dynamic client registration (RFC 7591) and its management API (RFC 7592).

use reqwest::StatusCode;
use serde_json::{Value, json};
use telegram_oidc::config::Secret;
use telegram_oidc::secrets::token_hash;

use crate::client_assertion::{JWT_BEARER, Signer, claims, jwks, key_server, post_form};
use crate::harness::*;

const INITIAL_TOKEN: &str = "initial-access-token-0123456789abcdef-XYZ";
const VERIFIER: &str = "registration-test-verifier-0123456789-abcdefghijklmnop";
const REDIRECT: &str = "https://rp.example.test/callback";
static NEXT_USER: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(7_000_001);

async fn start() -> TestApp {
    TestApp::start_with(|c| {
        c.registration.enabled = true;
        c.registration.initial_access_token = Secret::new(INITIAL_TOKEN);
    })
    .await
}

struct Answer {
    status: StatusCode,
    body: Value,
    challenge: Option<String>,
}

async fn call(
    _app: &TestApp,
    method: reqwest::Method,
    url: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut req = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req.json(body);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status();
    if status != StatusCode::NOT_FOUND && status != StatusCode::NO_CONTENT {
        assert_eq!(
            resp.headers()
                .get("cache-control")
                .map(|v| v.to_str().unwrap()),
            Some("no-store"),
            "{url}"
        );
    }
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_string());
    let text = resp.text().await.unwrap();
    Answer {
        status,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        challenge,
    }
}

async fn register(app: &TestApp, metadata: Value) -> Answer {
    call(
        app,
        reqwest::Method::POST,
        &app.url("/register"),
        Some(INITIAL_TOKEN),
        Some(&metadata),
    )
    .await
}

fn assert_error(answer: &Answer, status: StatusCode, error: &str, case: &str) {
    assert_eq!(answer.status, status, "{case}: {}", answer.body);
    assert_eq!(answer.body["error"], error, "{case}: {}", answer.body);
}

fn authorize_url(app: &TestApp, client_id: &str, scope: &str) -> String {
    format!(
        "{}?response_type=code&client_id={client_id}&redirect_uri={}&scope={}&state=s&code_challenge={}&code_challenge_method=S256",
        app.url("/authorize"),
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>(),
        telegram_oidc::oidc::pkce::s256(VERIFIER),
    )
}

/// Logs a user in for `client_id` and returns the code.
async fn code_for(app: &TestApp, client_id: &str, scope: &str) -> String {
    let back = authorize_through(
        app,
        &Browser::new(),
        &authorize_url(app, client_id, scope),
        // A new user each time: the same widget data twice would be a replay.
        &TgUser::new(NEXT_USER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)),
    )
    .await;
    assert!(back.starts_with(REDIRECT), "{back}");
    query_param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"))
}

async fn redeem_with_secret(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    code: &str,
) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(client_id, Some(secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn registration_is_off_by_default() {
    let app = TestApp::start().await;
    let answer = register(&app, json!({"redirect_uris": [REDIRECT]})).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let answer = call(
        &app,
        reqwest::Method::GET,
        &app.url("/register/some-client"),
        Some("tgra_x"),
        None,
    )
    .await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    let doc: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc.get("registration_endpoint").is_none(), "{doc}");
    app.stop().await;
}

#[tokio::test]
async fn registering_needs_the_initial_access_token() {
    let app = start().await;
    let doc: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["registration_endpoint"], app.url("/register"));

    let metadata = json!({"redirect_uris": [REDIRECT]});
    let url = app.url("/register");
    let none = call(&app, reqwest::Method::POST, &url, None, Some(&metadata)).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert!(none.challenge.unwrap().starts_with("Bearer"));
    for wrong in [
        "wrong",
        "initial-access-token-0123456789abcdef-XY",
        "initial-access-token-0123456789abcdef-XYZW",
    ] {
        let answer = call(
            &app,
            reqwest::Method::POST,
            &url,
            Some(wrong),
            Some(&metadata),
        )
        .await;
        assert_error(&answer, StatusCode::UNAUTHORIZED, "invalid_token", wrong);
        assert!(answer.challenge.unwrap().contains("invalid_token"));
    }
    let basic = reqwest::Client::new()
        .post(&url)
        .basic_auth("x", Some(INITIAL_TOKEN))
        .json(&metadata)
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    assert!(app.store.list_clients().await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_registered_confidential_client_completes_a_code_flow() {
    let app = start().await;
    let before = app.now();
    let answer = register(
        &app,
        json!({
            "redirect_uris": [REDIRECT],
            "client_name": "Registered RP",
            "grant_types": ["authorization_code", "refresh_token"],
            "scope": "openid profile offline_access",
            "id_token_signed_response_alg": "ES256",
            "logo_uri": "https://rp.example.test/logo.png",
            "client_name#ja": "登録",
        }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let b = &answer.body;
    let client_id = b["client_id"].as_str().unwrap().to_string();
    let secret = b["client_secret"].as_str().unwrap().to_string();
    let rat = b["registration_access_token"].as_str().unwrap().to_string();
    assert!(secret.starts_with("tgcs_"));
    assert!(rat.starts_with("tgra_"));
    assert_eq!(b["client_secret_expires_at"], 0);
    // The time of the registration, which a second's tick may put before the test's now.
    let issued_at = b["client_id_issued_at"].as_i64().unwrap();
    assert!((before..=app.now()).contains(&issued_at), "{issued_at}");
    assert_eq!(
        b["registration_client_uri"],
        app.url(&format!("/register/{client_id}"))
    );
    assert_eq!(b["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(
        b["grant_types"],
        json!(["authorization_code", "refresh_token"])
    );
    assert_eq!(b["response_types"], json!(["code"]));
    assert_eq!(b["redirect_uris"], json!([REDIRECT]));
    assert_eq!(b["client_name"], "Registered RP");
    assert_eq!(b["scope"], "openid profile offline_access");
    assert_eq!(b["id_token_signed_response_alg"], "ES256");
    assert!(b.get("logo_uri").is_none(), "unknown metadata is ignored");

    // Only digests are stored.
    let stored = app.store.get_client(&client_id).await.unwrap().unwrap();
    assert_eq!(stored.secret_hash, Some(token_hash(&secret)));
    let settings = serde_json::to_string(&stored.settings).unwrap();
    assert!(!settings.contains(&rat) && !settings.contains(&secret));
    assert_eq!(
        stored.settings.registration_token_hash,
        Some(hex::encode(token_hash(&rat)))
    );

    let code = code_for(&app, &client_id, "openid profile offline_access").await;
    let (status, body) = redeem_with_secret(&app, &client_id, &secret, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["refresh_token"].is_string());
    let header = body["id_token"]
        .as_str()
        .unwrap()
        .split('.')
        .next()
        .unwrap();
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header).unwrap(),
    )
    .unwrap();
    assert_eq!(header["alg"], "ES256");
    app.stop().await;
}

#[tokio::test]
async fn a_public_client_gets_no_secret_and_must_use_pkce() {
    let app = start().await;
    let answer = register(
        &app,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none",
               "client_name": "SPA"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let b = &answer.body;
    assert!(b.get("client_secret").is_none());
    assert!(b.get("client_secret_expires_at").is_none());
    assert_eq!(b["token_endpoint_auth_method"], "none");
    assert_eq!(b["grant_types"], json!(["authorization_code"]));
    let client_id = b["client_id"].as_str().unwrap().to_string();

    // Without PKCE the authorization request is refused.
    let no_pkce = format!(
        "{}?response_type=code&client_id={client_id}&redirect_uri={}&scope=openid&state=s",
        app.url("/authorize"),
        url::form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
    );
    let resp = Browser::new().get(&no_pkce).await;
    let to = location(resp.headers());
    assert_eq!(
        query_param(&to, "error").as_deref(),
        Some("invalid_request")
    );

    let code = code_for(&app, &client_id, "openid").await;
    let (status, body) = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_id", &client_id),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        body.get("refresh_token").is_none(),
        "no refresh_token grant registered"
    );

    let answer = register(
        &app,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "none"}),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        "public service account",
    );
    app.stop().await;
}

#[tokio::test]
async fn a_private_key_jwt_client_registers_its_keys() {
    let app = start().await;
    let signer = Signer::es256("rp-key-1");
    let answer = register(
        &app,
        json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt",
               "jwks": jwks(&[&signer])}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    let b = &answer.body;
    assert!(b.get("client_secret").is_none());
    assert_eq!(b["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(b["jwks"], jwks(&[&signer]));
    let client_id = b["client_id"].as_str().unwrap().to_string();

    let code = code_for(&app, &client_id, "openid").await;
    let (status, body) = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &signer.sign(&claims(&app, &client_id))),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Keys by URL: a client credentials service account.
    let rsa = Signer::rs256("svc");
    let server = key_server(jwks(&[&rsa])).await;
    let answer = register(
        &app,
        json!({"grant_types": ["client_credentials"], "token_endpoint_auth_method": "private_key_jwt",
               "jwks_uri": server.url, "scope": "profile"}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["grant_types"], json!(["client_credentials"]));
    assert_eq!(answer.body["response_types"], json!([]));
    assert_eq!(answer.body["jwks_uri"], server.url);
    let svc = answer.body["client_id"].as_str().unwrap().to_string();
    let (status, body) = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &rsa.sign(&claims(&app, &svc))),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "profile");

    for (case, metadata) in [
        (
            "no keys",
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt"}),
        ),
        (
            "both jwks and jwks_uri",
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt",
                   "jwks": jwks(&[&signer]), "jwks_uri": server.url}),
        ),
        (
            "only symmetric keys",
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt",
                   "jwks": {"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}}),
        ),
        (
            "jwks_uri over plain http",
            json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt",
                   "jwks_uri": "http://keys.example.com/jwks.json"}),
        ),
    ] {
        let answer = register(&app, metadata).await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_client_metadata",
            case,
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn invalid_metadata_is_refused_with_the_rfc_7591_codes() {
    let app = start().await;
    for (case, metadata) in [
        ("no redirect_uris", json!({"client_name": "x"})),
        ("empty redirect_uris", json!({"redirect_uris": []})),
        (
            "plain http",
            json!({"redirect_uris": ["http://rp.example.test/cb"]}),
        ),
        (
            "fragment",
            json!({"redirect_uris": ["https://rp.example.test/cb#x"]}),
        ),
        ("relative", json!({"redirect_uris": ["/cb"]})),
        (
            "javascript",
            json!({"redirect_uris": ["javascript:alert(1)"]}),
        ),
    ] {
        let answer = register(&app, metadata).await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "invalid_redirect_uri",
            case,
        );
    }
    let ok = json!([REDIRECT]);
    for (case, metadata) in [
        (
            "auth method",
            json!({"redirect_uris": ok, "token_endpoint_auth_method": "client_secret_jwt"}),
        ),
        (
            "implicit",
            json!({"redirect_uris": ok, "grant_types": ["implicit"]}),
        ),
        (
            "only refresh",
            json!({"redirect_uris": ok, "grant_types": ["refresh_token"]}),
        ),
        (
            "token response",
            json!({"redirect_uris": ok, "response_types": ["code", "token"]}),
        ),
        (
            "code without its grant",
            json!({"redirect_uris": ok, "grant_types": ["client_credentials"], "response_types": ["code"]}),
        ),
        (
            "unknown scope",
            json!({"redirect_uris": ok, "scope": "openid admin"}),
        ),
        (
            "alg",
            json!({"redirect_uris": ok, "id_token_signed_response_alg": "none"}),
        ),
        (
            "subject type",
            json!({"redirect_uris": ok, "subject_type": "secret"}),
        ),
        ("wrong type", json!({"redirect_uris": ok, "client_name": 5})),
        ("uris not a list", json!({"redirect_uris": REDIRECT})),
        (
            "long name",
            json!({"redirect_uris": ok, "client_name": "n".repeat(101)}),
        ),
        (
            "bad logout uri",
            json!({"redirect_uris": ok, "post_logout_redirect_uris": ["http://rp.example.test/"]}),
        ),
        ("array body", json!([1, 2])),
    ] {
        let answer = register(&app, metadata).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            answer.body
        );
        let error = answer.body["error"].as_str().unwrap_or("");
        assert!(
            error == "invalid_client_metadata"
                || (case == "uris not a list" && error == "invalid_redirect_uri"),
            "{case}: {}",
            answer.body
        );
    }
    for (content_type, body) in [
        ("application/json", "{not json"),
        (
            "application/x-www-form-urlencoded",
            "redirect_uris=https://rp.example.test/cb",
        ),
    ] {
        let resp = reqwest::Client::new()
            .post(app.url("/register"))
            .bearer_auth(INITIAL_TOKEN)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{content_type}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_request");
    }
    let resp = reqwest::Client::new()
        .post(app.url("/register"))
        .bearer_auth(INITIAL_TOKEN)
        .header("content-type", "application/json")
        .body(format!("{{\"client_name\":\"{}\"}}", "x".repeat(20_000)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(app.store.list_clients().await.unwrap().is_empty());
    app.stop().await;
}

#[tokio::test]
async fn a_sector_identifier_must_list_every_redirect_uri() {
    let app = start().await;
    let server = key_server(json!([REDIRECT, "https://rp.example.test/other"])).await;
    let answer = register(
        &app,
        json!({"redirect_uris": [REDIRECT], "subject_type": "pairwise",
               "sector_identifier_uri": server.url}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(answer.body["subject_type"], "pairwise");
    assert_eq!(answer.body["sector_identifier_uri"], server.url);
    let id = answer.body["client_id"].as_str().unwrap();
    let stored = app.store.get_client(id).await.unwrap().unwrap();
    assert_eq!(
        stored.settings.sector_identifier.as_deref(),
        Some("127.0.0.1")
    );

    let answer = register(
        &app,
        json!({"redirect_uris": [REDIRECT, "https://elsewhere.example.test/cb"],
               "subject_type": "pairwise", "sector_identifier_uri": server.url}),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "invalid_client_metadata",
        "unlisted redirect URI",
    );
    app.stop().await;
}

#[tokio::test]
async fn the_registration_access_token_reads_replaces_and_deletes() {
    registration_lifecycle(start().await).await;
}

#[tokio::test]
async fn the_registration_lifecycle_on_postgres() {
    let Some(url) = crate::store::postgres_url() else {
        return;
    };
    let app = TestApp::start_with(|c| {
        c.database_url = url;
        c.registration.enabled = true;
        c.registration.initial_access_token = Secret::new(INITIAL_TOKEN);
    })
    .await;
    registration_lifecycle(app).await;
}

async fn registration_lifecycle(app: TestApp) {
    let first = register(
        &app,
        json!({"redirect_uris": [REDIRECT], "client_name": "First"}),
    )
    .await;
    let other = register(
        &app,
        json!({"redirect_uris": [REDIRECT], "client_name": "Other"}),
    )
    .await;
    assert_eq!(first.status, StatusCode::CREATED);
    let client_id = first.body["client_id"].as_str().unwrap().to_string();
    let secret = first.body["client_secret"].as_str().unwrap().to_string();
    let rat = first.body["registration_access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let uri = first.body["registration_client_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let other_rat = other.body["registration_access_token"].as_str().unwrap();
    let get = reqwest::Method::GET;
    let put = reqwest::Method::PUT;
    let delete = reqwest::Method::DELETE;

    // Read.
    let read = call(&app, get.clone(), &uri, Some(&rat), None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["client_name"], "First");
    assert_eq!(read.body["registration_access_token"], rat);
    assert!(
        read.body.get("client_secret").is_none(),
        "a secret is shown once"
    );
    assert_eq!(read.body["client_secret_expires_at"], 0);

    // Wrong, foreign, initial and missing tokens are all 401; so is an unknown client.
    for token in [
        Some("tgra_wrong"),
        Some(other_rat),
        Some(INITIAL_TOKEN),
        None,
    ] {
        for method in [get.clone(), put.clone(), delete.clone()] {
            let answer = call(
                &app,
                method.clone(),
                &uri,
                token,
                Some(&json!({"redirect_uris": [REDIRECT]})),
            )
            .await;
            assert_eq!(
                answer.status,
                StatusCode::UNAUTHORIZED,
                "{method} {token:?}"
            );
            assert!(answer.challenge.unwrap().starts_with("Bearer"));
        }
    }
    let unknown = call(
        &app,
        get.clone(),
        &app.url("/register/nope"),
        Some(&rat),
        None,
    )
    .await;
    assert_error(
        &unknown,
        StatusCode::UNAUTHORIZED,
        "invalid_token",
        "unknown client",
    );

    // Replace: new name and redirect URIs; the secret stays.
    let replaced = call(
        &app,
        put.clone(),
        &uri,
        Some(&rat),
        Some(
            &json!({"client_id": client_id, "client_secret": secret, "client_name": "Renamed",
                     "redirect_uris": [REDIRECT, "https://rp.example.test/second"]}),
        ),
    )
    .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.body);
    assert_eq!(replaced.body["client_name"], "Renamed");
    assert!(replaced.body.get("client_secret").is_none());
    let read = call(&app, get.clone(), &uri, Some(&rat), None).await;
    assert_eq!(
        read.body["redirect_uris"],
        json!([REDIRECT, "https://rp.example.test/second"])
    );
    let code = code_for(&app, &client_id, "openid").await;
    let (status, body) = redeem_with_secret(&app, &client_id, &secret, &code).await;
    assert_eq!(status, StatusCode::OK, "the old secret still works: {body}");

    for (case, metadata) in [
        (
            "another client_id",
            json!({"client_id": "someone-else", "redirect_uris": [REDIRECT]}),
        ),
        (
            "a chosen secret",
            json!({"client_secret": "my-own-secret", "redirect_uris": [REDIRECT]}),
        ),
        (
            "bad metadata",
            json!({"redirect_uris": ["http://rp.example.test/cb"]}),
        ),
    ] {
        let answer = call(&app, put.clone(), &uri, Some(&rat), Some(&metadata)).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{case}: {}",
            answer.body
        );
    }

    // Switching to private_key_jwt drops the secret; switching back issues a new one.
    let signer = Signer::eddsa("k");
    let switched = call(
        &app,
        put.clone(),
        &uri,
        Some(&rat),
        Some(
            &json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "private_key_jwt",
                     "jwks": jwks(&[&signer])}),
        ),
    )
    .await;
    assert_eq!(switched.status, StatusCode::OK, "{}", switched.body);
    assert!(switched.body.get("client_secret_expires_at").is_none());
    let code = code_for(&app, &client_id, "openid").await;
    let (status, _) = redeem_with_secret(&app, &client_id, &secret, &code).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "the secret is gone");
    let back = call(
        &app,
        put.clone(),
        &uri,
        Some(&rat),
        Some(&json!({"redirect_uris": [REDIRECT], "token_endpoint_auth_method": "client_secret_post"})),
    )
    .await;
    assert_eq!(back.status, StatusCode::OK, "{}", back.body);
    let new_secret = back.body["client_secret"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    let code = code_for(&app, &client_id, "openid").await;
    let (status, body) = redeem_with_secret(&app, &client_id, &new_secret, &code).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Delete: the client is gone, its token with it.
    let deleted = call(&app, delete.clone(), &uri, Some(&rat), None).await;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let read = call(&app, get.clone(), &uri, Some(&rat), None).await;
    assert_eq!(read.status, StatusCode::UNAUTHORIZED);
    assert!(app.store.get_client(&client_id).await.unwrap().is_none());
    let (status, _) = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &client_id),
            ("client_secret", &new_secret),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The other registration is untouched.
    let read = call(
        &app,
        get,
        other.body["registration_client_uri"].as_str().unwrap(),
        Some(other_rat),
        None,
    )
    .await;
    assert_eq!(read.status, StatusCode::OK);
    app.stop().await;
}

#[test]
fn enabling_registration_without_an_initial_access_token_stops_startup() {
    use crate::cli::write_config;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let check = |envs: &[(&str, &str)]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_telegram-oidc"))
            .arg("--config")
            .arg(&config)
            .arg("check-config")
            .env_remove("TGOIDC_CONFIG")
            .envs(envs.iter().copied())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, stderr) = check(&[("TGOIDC_REGISTRATION__ENABLED", "true")]);
    assert!(!ok);
    assert!(
        stderr.contains("registration.initial_access_token"),
        "{stderr}"
    );
    let token_file = dir.path().join("initial_token");
    std::fs::write(&token_file, format!("{INITIAL_TOKEN}\n")).unwrap();
    let (ok, stderr) = check(&[
        ("TGOIDC_REGISTRATION__ENABLED", "true"),
        (
            "TGOIDC_REGISTRATION__INITIAL_ACCESS_TOKEN_FILE",
            token_file.to_str().unwrap(),
        ),
    ]);
    assert!(ok, "{stderr}");
    assert!(!stderr.contains(INITIAL_TOKEN));
}

/// `default_acr_values` with the bot confirmation registers an app that requires it for every
/// login (step-up), and the registration says so; without it, nothing is required.
#[tokio::test]
async fn default_acr_values_register_the_step_up() {
    let app = start().await;
    let answer = register(
        &app,
        json!({
            "redirect_uris": [REDIRECT],
            "default_acr_values": ["urn:example:other", "urn:telegram-oidc:acr:bot-confirmed"],
        }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.body);
    assert_eq!(
        answer.body["default_acr_values"],
        json!(["urn:telegram-oidc:acr:bot-confirmed"])
    );
    let id = answer.body["client_id"].as_str().unwrap();
    let stored = app.store.get_client(id).await.unwrap().unwrap();
    assert!(stored.settings.require_bot_confirmation);

    let plain = register(&app, json!({"redirect_uris": [REDIRECT]})).await;
    assert_eq!(plain.status, StatusCode::CREATED);
    assert!(
        plain.body.get("default_acr_values").is_none(),
        "{}",
        plain.body
    );
    let id = plain.body["client_id"].as_str().unwrap();
    let stored = app.store.get_client(id).await.unwrap().unwrap();
    assert!(!stored.settings.require_bot_confirmation);
    app.stop().await;
}
