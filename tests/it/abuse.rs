//! Abuse cases: each asserts the exact error a forged, replayed or malformed input gets.

use futures::future::join_all;
use reqwest::StatusCode;
use reqwest::header::{
    CACHE_CONTROL, CONTENT_TYPE, HeaderMap, LOCATION, SET_COOKIE, WWW_AUTHENTICATE,
};
use serde_json::Value;
use telegram_oidc::oidc::pkce;
use telegram_oidc::store::ClientKind;

use crate::harness::{
    BOT_TOKEN, Browser, ClientSpec, TestApp, TestClient, TgUser, absolute, authorize_through,
    consent_form, encode, location, query_param, req_of, widget_fields,
};

/// A valid RFC 7636 verifier (43..=128 unreserved characters).
const VERIFIER: &str = "abuse-verifier_0123456789.abcdefghijklmnopqrstuvwxyz~ABCDEFG";
/// Another valid verifier that does not match [`VERIFIER`]'s challenge.
const OTHER_VERIFIER: &str = "another-verifier_0123456789.abcdefghijklmnopqrstuvwxyz~XYZ";
const STATE: &str = "st-abuse-1";
const NONCE: &str = "n-abuse-1";
const SCOPE: &str = "openid profile offline_access";

fn user() -> TgUser {
    TgUser::new(4_242_001)
}

// ---- authorization helpers ----

/// An authorization URL with the usual parameters, plus `extra` (PKCE or its absence).
fn authorize_url_with(
    app: &TestApp,
    client_id: &str,
    redirect_uri: &str,
    extra: &[(&str, &str)],
) -> String {
    let mut pairs: Vec<(&str, &str)> = vec![
        ("response_type", "code"),
        ("client_id", client_id),
        ("redirect_uri", redirect_uri),
        ("scope", SCOPE),
        ("state", STATE),
        ("nonce", NONCE),
    ];
    pairs.extend_from_slice(extra);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish();
    app.url(&format!("/authorize?{query}"))
}

/// The usual authorization URL: the client's own redirect URI and S256 PKCE over `verifier`.
fn authorize_url(app: &TestApp, client: &TestClient, verifier: &str) -> String {
    let challenge = pkce::s256(verifier);
    authorize_url_with(
        app,
        client.id(),
        &client.redirect_uri,
        &[
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    )
}

/// Runs a full authorization (login if needed, consent if needed) and returns the code.
async fn code_for(app: &TestApp, browser: &Browser, client: &TestClient, user: &TgUser) -> String {
    let back = authorize_through(app, browser, &authorize_url(app, client, VERIFIER), user).await;
    assert!(
        back.starts_with(&format!("{}?", client.redirect_uri)),
        "expected a redirect to the app, got {back}"
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some(STATE));
    assert_eq!(
        query_param(&back, "iss").as_deref(),
        Some(app.base.as_str())
    );
    assert_eq!(
        query_param(&back, "error"),
        None,
        "unexpected error in {back}"
    );
    query_param(&back, "code").expect("a code in the redirect")
}

/// Starts an authorization in `browser` (not logged in) and returns the `req` of its login page.
async fn start_login(app: &TestApp, browser: &Browser, client: &TestClient) -> String {
    let resp = browser.get(&authorize_url(app, client, VERIFIER)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let next = location(resp.headers());
    assert!(
        next.contains("/login?"),
        "expected the login page, got {next}"
    );
    req_of(&next)
}

/// The widget callback URL for `req` carrying `fields`.
fn widget_url(app: &TestApp, req: &str, fields: &[(String, String)]) -> String {
    format!(
        "{}?{}",
        app.url(&format!("/login/telegram/{req}")),
        encode(fields)
    )
}

/// Sends widget data dated `now + offset` (server clock), retrying if the clock ticked while
/// the request was in flight, so the server saw exactly the offset intended.
async fn widget_login_at(
    app: &TestApp,
    browser: &Browser,
    req: &str,
    user: &TgUser,
    offset: i64,
) -> reqwest::Response {
    for _ in 0..5 {
        let before = app.now();
        let fields = widget_fields(user, before + offset, BOT_TOKEN);
        let resp = browser.get(&widget_url(app, req, &fields)).await;
        if app.now() == before {
            return resp;
        }
    }
    panic!("the clock kept ticking during widget requests");
}

/// Where `/authorize/continue` sends this browser for `req`.
async fn continue_location(app: &TestApp, browser: &Browser, req: &str) -> String {
    let resp = browser
        .get(&app.url(&format!("/authorize/continue?req={req}")))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    location(resp.headers())
}

/// An HTML error page: the status, no redirect anywhere, an HTML body; returns the body.
async fn assert_page(resp: reqwest::Response, status: StatusCode) -> String {
    let got = resp.status();
    let no_location = resp.headers().get(LOCATION).is_none();
    let html = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    let body = resp.text().await.unwrap();
    assert_eq!(got, status, "page body: {body}");
    assert!(no_location, "an error page must not redirect");
    assert!(html, "an error page is HTML");
    body
}

/// A 302 back to the app carrying `error`, `state` and `iss`.
fn assert_redirect_error(
    app: &TestApp,
    client: &TestClient,
    resp: &reqwest::Response,
    error: &str,
) {
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to = location(resp.headers());
    assert!(
        to.starts_with(&format!("{}?", client.redirect_uri)),
        "expected a redirect to the app, got {to}"
    );
    assert_eq!(query_param(&to, "error").as_deref(), Some(error), "in {to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some(STATE));
    assert_eq!(query_param(&to, "iss").as_deref(), Some(app.base.as_str()));
    assert_eq!(query_param(&to, "code"), None);
}

// ---- token endpoint helpers ----

type Reply = (StatusCode, HeaderMap, Value);

async fn reply(resp: reqwest::Response) -> Reply {
    let status = resp.status();
    let headers = resp.headers().clone();
    let text = resp.text().await.unwrap();
    let body = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"));
    (status, headers, body)
}

/// POSTs a form to /token, with HTTP Basic credentials when `basic` is given.
async fn token_request(app: &TestApp, basic: Option<(&str, &str)>, form: &[(&str, &str)]) -> Reply {
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    token_raw(app, basic, "application/x-www-form-urlencoded", body).await
}

/// POSTs a raw body to /token.
async fn token_raw(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    content_type: &str,
    body: String,
) -> Reply {
    let mut req = reqwest::Client::new()
        .post(app.url("/token"))
        .header(CONTENT_TYPE, content_type)
        .body(body);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    reply(req.send().await.unwrap()).await
}

fn creds(client: &TestClient) -> Option<(&str, &str)> {
    Some((client.id(), client.secret()))
}

async fn exchange(app: &TestApp, client: &TestClient, code: &str, verifier: &str) -> Reply {
    token_request(
        app,
        creds(client),
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", verifier),
        ],
    )
    .await
}

async fn refresh(app: &TestApp, client: &TestClient, refresh_token: &str) -> Reply {
    token_request(
        app,
        creds(client),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

/// A token endpoint error: exact status and `error`, JSON, never cached.
fn assert_token_error(reply: &Reply, status: StatusCode, error: &str) {
    let (got, headers, body) = reply;
    assert_eq!(*got, status, "body: {body}");
    assert_eq!(body["error"], error, "body: {body}");
    assert!(body.get("access_token").is_none());
    assert_eq!(
        headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
}

fn assert_tokens(reply: &Reply) -> (String, String) {
    let (status, _, body) = reply;
    assert_eq!(*status, StatusCode::OK, "body: {body}");
    let access = body["access_token"]
        .as_str()
        .expect("an access_token")
        .to_owned();
    let refresh = body["refresh_token"]
        .as_str()
        .expect("a refresh_token")
        .to_owned();
    (access, refresh)
}

/// A code for a fresh browser, exchanged: (access token, refresh token).
async fn tokens_for(app: &TestApp, client: &TestClient) -> (String, String) {
    let code = code_for(app, &Browser::new(), client, &user()).await;
    assert_tokens(&exchange(app, client, &code, VERIFIER).await)
}

// ---- userinfo helpers ----

async fn userinfo(app: &TestApp, token: Option<&str>) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(app.url("/userinfo"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

async fn assert_userinfo_ok(app: &TestApp, token: &str) {
    let resp = userinfo(app, Some(token)).await;
    let status = resp.status();
    let body = resp.text().await.unwrap();
    assert_eq!(status, StatusCode::OK, "userinfo: {body}");
    let claims: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(claims["sub"], user().id.to_string());
}

/// 401 with a Bearer challenge naming `invalid_token`.
async fn assert_userinfo_invalid_token(app: &TestApp, token: &str) {
    let resp = userinfo(app, Some(token)).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = www_authenticate(resp.headers());
    assert!(challenge.starts_with("Bearer"), "challenge: {challenge}");
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "challenge: {challenge}"
    );
}

fn www_authenticate(headers: &HeaderMap) -> String {
    headers
        .get(WWW_AUTHENTICATE)
        .expect("a WWW-Authenticate header")
        .to_str()
        .unwrap()
        .to_owned()
}

// ---- 1-5: the Login Widget ----

#[tokio::test]
async fn forged_widget_hash_is_refused_and_starts_no_session() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let req = start_login(&app, &browser, &client).await;

    let mut fields = widget_fields(&user(), app.now(), BOT_TOKEN);
    let first_name = fields.iter_mut().find(|(k, _)| k == "first_name").unwrap();
    first_name.1 = "Eve".into();
    let resp = browser.get(&widget_url(&app, &req, &fields)).await;
    assert!(
        resp.headers().get(SET_COOKIE).is_none(),
        "no session cookie"
    );
    assert_page(resp, StatusCode::UNAUTHORIZED).await;

    let next = continue_location(&app, &browser, &req).await;
    assert!(next.contains("/login?req="), "still not logged in: {next}");
    app.stop().await;
}

#[tokio::test]
async fn widget_data_signed_by_another_bot_is_refused() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let req = start_login(&app, &browser, &client).await;

    let fields = widget_fields(&user(), app.now(), "7770009999:ANOTHER-bot-token_not-ours");
    let resp = browser.get(&widget_url(&app, &req, &fields)).await;
    assert!(resp.headers().get(SET_COOKIE).is_none());
    assert_page(resp, StatusCode::UNAUTHORIZED).await;

    let next = continue_location(&app, &browser, &req).await;
    assert!(next.contains("/login?req="), "still not logged in: {next}");
    app.stop().await;
}

#[tokio::test]
async fn stale_auth_date_is_refused_and_the_window_edge_is_accepted() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let req = start_login(&app, &browser, &client).await;
    assert_eq!(app.config.telegram.auth_date_window_secs, 300);

    let resp = widget_login_at(&app, &browser, &req, &user(), -301).await;
    let body = assert_page(resp, StatusCode::BAD_REQUEST).await;
    assert!(body.contains("too old"), "page: {body}");
    let next = continue_location(&app, &browser, &req).await;
    assert!(next.contains("/login?req="), "still not logged in: {next}");

    let resp = widget_login_at(&app, &browser, &req, &user(), -300).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "now - 300 is inside the window"
    );
    let next = location(resp.headers());
    assert!(next.contains("/authorize/continue?req="), "{next}");
    let next = continue_location(&app, &browser, &req).await;
    assert!(next.contains("/consent?req="), "logged in now: {next}");
    app.stop().await;
}

#[tokio::test]
async fn auth_date_in_the_future_beyond_skew_is_refused() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let req = start_login(&app, &browser, &client).await;
    assert_eq!(app.config.telegram.clock_skew_secs, 30);

    let resp = widget_login_at(&app, &browser, &req, &user(), 31).await;
    let body = assert_page(resp, StatusCode::BAD_REQUEST).await;
    assert!(body.contains("future"), "page: {body}");
    let next = continue_location(&app, &browser, &req).await;
    assert!(next.contains("/login?req="), "still not logged in: {next}");

    // The skew itself is tolerated.
    let resp = widget_login_at(&app, &browser, &req, &user(), 30).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "now + 30 is within the skew"
    );
    app.stop().await;
}

#[tokio::test]
async fn replayed_widget_hash_is_refused() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let fields = widget_fields(&user(), app.now(), BOT_TOKEN);

    let first = Browser::new();
    let req1 = start_login(&app, &first, &client).await;
    let resp = first.get(&widget_url(&app, &req1, &fields)).await;
    assert_eq!(
        resp.status(),
        StatusCode::SEE_OTHER,
        "the first use is accepted"
    );

    let second = Browser::new();
    let req2 = start_login(&app, &second, &client).await;
    assert_ne!(req1, req2);
    let resp = second.get(&widget_url(&app, &req2, &fields)).await;
    assert!(resp.headers().get(SET_COOKIE).is_none());
    let body = assert_page(resp, StatusCode::BAD_REQUEST).await;
    assert!(body.contains("already used"), "page: {body}");

    let next = continue_location(&app, &second, &req2).await;
    assert!(
        next.contains("/login?req="),
        "the replayer is not logged in: {next}"
    );
    app.stop().await;
}

// ---- 6-8: the authorization request ----

#[tokio::test]
async fn unregistered_redirect_uris_get_a_page_never_a_redirect() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    assert_eq!(client.redirect_uri, "https://app.example.test/callback");
    let challenge = pkce::s256(VERIFIER);
    let pkce_params = [
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ];
    for bad in [
        "https://app.example.test/callback/",
        "https://app.example.test/Callback",
        "https://app.example.test/callback?extra=1",
        "https://app.example.test/callback/../evil",
        "https://evil.example.test/callback",
    ] {
        let browser = Browser::new();
        let resp = browser
            .get(&authorize_url_with(&app, client.id(), bad, &pkce_params))
            .await;
        assert!(
            resp.headers().get(LOCATION).is_none(),
            "no redirect to {bad}"
        );
        assert_page(resp, StatusCode::BAD_REQUEST).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn unknown_client_gets_a_page_never_a_redirect() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let challenge = pkce::s256(VERIFIER);
    let url = authorize_url_with(
        &app,
        "no-such-client",
        &client.redirect_uri,
        &[
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ],
    );
    let resp = Browser::new().get(&url).await;
    assert_page(resp, StatusCode::BAD_REQUEST).await;
    app.stop().await;
}

#[tokio::test]
async fn public_client_must_use_s256_pkce() {
    let app = TestApp::start().await;
    let client = app
        .client(ClientSpec {
            kind: ClientKind::Public,
            ..Default::default()
        })
        .await;
    let browser = Browser::new();

    let resp = browser
        .get(&authorize_url_with(
            &app,
            client.id(),
            &client.redirect_uri,
            &[],
        ))
        .await;
    assert_redirect_error(&app, &client, &resp, "invalid_request");

    let resp = browser
        .get(&authorize_url_with(
            &app,
            client.id(),
            &client.redirect_uri,
            &[
                ("code_challenge", VERIFIER),
                ("code_challenge_method", "plain"),
            ],
        ))
        .await;
    assert_redirect_error(&app, &client, &resp, "invalid_request");
    app.stop().await;
}

// ---- 9-11, 14, 18, 19: the authorization code ----

#[tokio::test]
async fn wrong_code_verifier_is_refused_and_consumes_the_code() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &Browser::new(), &client, &user()).await;

    let r = exchange(&app, &client, &code, OTHER_VERIFIER).await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");

    // Single use even on failure: the right verifier comes too late.
    let r = exchange(&app, &client, &code, VERIFIER).await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    app.stop().await;
}

#[tokio::test]
async fn code_reuse_revokes_what_the_first_use_issued() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &Browser::new(), &client, &user()).await;

    let (access, refresh_token) = assert_tokens(&exchange(&app, &client, &code, VERIFIER).await);
    assert_userinfo_ok(&app, &access).await;

    let r = exchange(&app, &client, &code, VERIFIER).await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");

    assert_userinfo_invalid_token(&app, &access).await;
    let r = refresh(&app, &client, &refresh_token).await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    app.stop().await;
}

#[tokio::test]
async fn ten_parallel_redemptions_of_one_code_succeed_once() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &Browser::new(), &client, &user()).await;

    let replies = join_all((0..10).map(|_| exchange(&app, &client, &code, VERIFIER))).await;
    let ok = replies
        .iter()
        .filter(|(status, _, _)| *status == StatusCode::OK)
        .count();
    let refused: Vec<&Reply> = replies
        .iter()
        .filter(|(status, _, _)| *status != StatusCode::OK)
        .collect();
    let summary: Vec<String> = replies
        .iter()
        .map(|(s, _, b)| format!("{s} {} {}", b["error"], b["error_description"]))
        .collect();
    assert_eq!(ok, 1, "exactly one redemption wins: {summary:?}");
    assert_eq!(refused.len(), 9);
    for r in refused {
        assert_token_error(r, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    app.stop().await;
}

#[tokio::test]
async fn another_clients_code_is_refused_and_not_consumed() {
    let app = TestApp::start().await;
    let client_a = app.confidential_client().await;
    let client_b = app.confidential_client().await;
    assert_ne!(client_a.id(), client_b.id());
    let code = code_for(&app, &Browser::new(), &client_a, &user()).await;

    let r = exchange(&app, &client_b, &code, VERIFIER).await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");

    let (access, _) = assert_tokens(&exchange(&app, &client_a, &code, VERIFIER).await);
    assert_userinfo_ok(&app, &access).await;
    app.stop().await;
}

#[tokio::test]
async fn expired_code_is_refused() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &Browser::new(), &client, &user()).await;

    app.clock.advance(61);
    let r = exchange(&app, &client, &code, VERIFIER).await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    app.stop().await;
}

#[tokio::test]
async fn redirect_uri_mismatch_at_the_token_endpoint_is_refused() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();

    // Omitted.
    let code = code_for(&app, &browser, &client, &user()).await;
    let r = token_request(
        &app,
        creds(&client),
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("code_verifier", VERIFIER),
        ],
    )
    .await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");

    // Different: another URI registered for the same client, and a near miss.
    for other in [
        "http://127.0.0.1:9/cb",
        "https://app.example.test/callback/",
    ] {
        let code = code_for(&app, &browser, &client, &user()).await;
        let r = token_request(
            &app,
            creds(&client),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", other),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
        assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    }
    app.stop().await;
}

// ---- 12: refresh tokens ----

#[tokio::test]
async fn replayed_refresh_token_revokes_the_family() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let (_, first) = tokens_for(&app, &client).await;

    let (access, second) = assert_tokens(&refresh(&app, &client, &first).await);
    assert_ne!(first, second, "refresh tokens rotate");
    assert_userinfo_ok(&app, &access).await;

    let r = refresh(&app, &client, &first).await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");

    let r = refresh(&app, &client, &second).await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_grant");
    assert_userinfo_invalid_token(&app, &access).await;
    app.stop().await;
}

// ---- 13: client authentication ----

#[tokio::test]
async fn bad_client_credentials_are_invalid_client() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &Browser::new(), &client, &user()).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("code_verifier", VERIFIER),
    ];

    // Wrong secret over Basic: 401 with a Basic challenge.
    let r = token_request(&app, Some((client.id(), "tgcs_not-the-secret")), &form).await;
    assert_token_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(www_authenticate(&r.1).starts_with("Basic"), "{:?}", r.1);

    // Unknown client over Basic.
    let r = token_request(&app, Some(("no-such-client", "whatever")), &form).await;
    assert_token_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");
    assert!(www_authenticate(&r.1).starts_with("Basic"), "{:?}", r.1);

    // Wrong secret in the form body.
    let mut with_post = form.to_vec();
    with_post.extend([
        ("client_id", client.id()),
        ("client_secret", "tgcs_not-the-secret"),
    ]);
    let r = token_request(&app, None, &with_post).await;
    assert_token_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");

    // A confidential client naming itself without any secret.
    let mut id_only = form.to_vec();
    id_only.push(("client_id", client.id()));
    let r = token_request(&app, None, &id_only).await;
    assert_token_error(&r, StatusCode::UNAUTHORIZED, "invalid_client");

    // None of that touched the code: the real client still redeems it.
    let (access, _) = assert_tokens(&exchange(&app, &client, &code, VERIFIER).await);
    assert_userinfo_ok(&app, &access).await;
    app.stop().await;
}

// ---- 15, 16: malformed and oversized requests ----

#[tokio::test]
async fn token_request_with_a_json_body_is_invalid_request() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let body = serde_json::json!({ "grant_type": "authorization_code", "code": "tgc_x" });
    let r = token_raw(&app, creds(&client), "application/json", body.to_string()).await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    app.stop().await;
}

#[tokio::test]
async fn token_request_with_a_repeated_parameter_is_invalid_request() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let code = code_for(&app, &Browser::new(), &client, &user()).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("code_verifier", VERIFIER),
    ];
    let r = token_request(&app, creds(&client), &form).await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_request");

    // Refused before the grant was looked at: the code is still good.
    let (access, _) = assert_tokens(&exchange(&app, &client, &code, VERIFIER).await);
    assert_userinfo_ok(&app, &access).await;
    app.stop().await;
}

#[tokio::test]
async fn token_request_with_invalid_percent_encoding_is_invalid_request() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let redirect: String =
        url::form_urlencoded::byte_serialize(client.redirect_uri.as_bytes()).collect();
    let mut outcomes = Vec::new();
    // Broken escapes, and an escape that decodes to bytes that are not UTF-8. Each is tried on
    // an otherwise valid exchange of a fresh code.
    for bad in ["%ZZ", "%", "%4", "%FF%FE"] {
        let code = code_for(&app, &browser, &client, &user()).await;
        let body = format!(
            "grant_type=authorization_code&code={code}&redirect_uri={redirect}\
             &code_verifier={VERIFIER}&junk={bad}"
        );
        let r = token_raw(
            &app,
            creds(&client),
            "application/x-www-form-urlencoded",
            body,
        )
        .await;
        outcomes.push((bad, r));
    }
    let summary: Vec<String> = outcomes
        .iter()
        .map(|(bad, (status, _, body))| format!("{bad}: {status} {}", body["error"]))
        .collect();
    for (_, r) in &outcomes {
        assert_eq!(r.0, StatusCode::BAD_REQUEST, "outcomes: {summary:?}");
        assert_token_error(r, StatusCode::BAD_REQUEST, "invalid_request");
    }
    app.stop().await;
}

#[tokio::test]
async fn token_request_without_grant_type_is_invalid_request() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let r = token_request(&app, creds(&client), &[("code", "tgc_whatever")]).await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "invalid_request");
    app.stop().await;
}

#[tokio::test]
async fn password_grant_is_unsupported_grant_type() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let r = token_request(
        &app,
        creds(&client),
        &[
            ("grant_type", "password"),
            ("username", "ada"),
            ("password", "hunter2"),
        ],
    )
    .await;
    assert_token_error(&r, StatusCode::BAD_REQUEST, "unsupported_grant_type");
    app.stop().await;
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    assert_eq!(app.config.max_body_bytes, 16 * 1024);
    let padding = "a".repeat(17 * 1024);

    // /token: JSON invalid_request with 413.
    let body = format!("grant_type=authorization_code&code=tgc_x&padding={padding}");
    let r = token_raw(
        &app,
        creds(&client),
        "application/x-www-form-urlencoded",
        body,
    )
    .await;
    assert_token_error(&r, StatusCode::PAYLOAD_TOO_LARGE, "invalid_request");

    // POST /authorize: an otherwise valid request, but too big: a page, not a redirect.
    let challenge = pkce::s256(VERIFIER);
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client.id()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", SCOPE),
            ("state", STATE),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
            ("padding", padding.as_str()),
        ])
        .finish();
    let resp = Browser::new()
        .http
        .post(app.url("/authorize"))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_page(resp, StatusCode::PAYLOAD_TOO_LARGE).await;
    app.stop().await;
}

// ---- 17: consent ----

#[tokio::test]
async fn consent_answer_needs_this_browsers_csrf_token() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let victim = user();

    // The first browser reaches the consent page.
    let first = Browser::new();
    let req = start_login(&app, &first, &client).await;
    let resp = widget_login_at(&app, &first, &req, &victim, 0).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let consent_url = absolute(&app, &continue_location(&app, &first, &req).await);
    assert!(consent_url.contains("/consent?req="), "{consent_url}");
    let (form_req, csrf) = consent_form(&first, &consent_url).await;
    assert_eq!(form_req, req);

    let answer = |csrf: &str| -> Vec<(String, String)> {
        vec![
            ("req".into(), form_req.clone()),
            ("csrf".into(), csrf.to_owned()),
            ("decision".into(), "approve".into()),
        ]
    };

    // A wrong token from the right browser.
    let resp = first
        .post_form(&app.url("/consent"), &answer("not-the-token"))
        .await;
    assert_page(resp, StatusCode::FORBIDDEN).await;

    // The right token from another browser, logged in as the same Telegram user.
    let second = Browser::new();
    let req2 = start_login(&app, &second, &client).await;
    let resp = widget_login_at(&app, &second, &req2, &victim, -100).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let next = continue_location(&app, &second, &req2).await;
    assert!(
        next.contains("/consent?req="),
        "the second browser is logged in: {next}"
    );
    let resp = second.post_form(&app.url("/consent"), &answer(&csrf)).await;
    assert_page(resp, StatusCode::FORBIDDEN).await;

    // And from a browser with no session at all.
    let resp = Browser::new()
        .post_form(&app.url("/consent"), &answer(&csrf))
        .await;
    assert_page(resp, StatusCode::FORBIDDEN).await;

    // The first browser's own answer still works.
    let resp = first.post_form(&app.url("/consent"), &answer(&csrf)).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let back = location(resp.headers());
    assert!(
        back.starts_with(&format!("{}?", client.redirect_uri)),
        "{back}"
    );
    let code = query_param(&back, "code").expect("a code");
    let (access, _) = assert_tokens(&exchange(&app, &client, &code, VERIFIER).await);
    assert_userinfo_ok(&app, &access).await;
    app.stop().await;
}

// ---- 20: userinfo ----

#[tokio::test]
async fn userinfo_refuses_missing_garbage_and_tampered_tokens() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;

    let resp = userinfo(&app, None).await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let challenge = www_authenticate(resp.headers());
    assert!(challenge.starts_with("Bearer"), "challenge: {challenge}");

    assert_userinfo_invalid_token(&app, "garbage").await;
    assert_userinfo_invalid_token(&app, "tgat_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await;
    assert_userinfo_invalid_token(&app, "a.b.c").await;

    let (access, _) = tokens_for(&app, &client).await;
    assert_eq!(
        access.matches('.').count(),
        2,
        "the harness default is a JWT access token"
    );
    assert_userinfo_ok(&app, &access).await;

    // Change one character in the middle of the signature.
    let sig_start = access.rfind('.').unwrap() + 1;
    let at = sig_start + (access.len() - sig_start) / 2;
    let mut bytes = access.clone().into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(bytes).unwrap();
    assert_ne!(tampered, access);
    assert_userinfo_invalid_token(&app, &tampered).await;

    // The genuine token is unaffected.
    assert_userinfo_ok(&app, &access).await;
    app.stop().await;
}

#[tokio::test]
async fn a_wider_scope_on_refresh_is_refused_and_leaves_the_token_usable() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let (_, first) = tokens_for(&app, &client).await;
    let wider = token_request(
        &app,
        creds(&client),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first),
            ("scope", "openid profile telegram"),
        ],
    )
    .await;
    assert_token_error(&wider, StatusCode::BAD_REQUEST, "invalid_scope");
    // The refused request did not use the token: a narrower one still succeeds with it.
    let narrower = token_request(
        &app,
        creds(&client),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &first),
            ("scope", "openid"),
        ],
    )
    .await;
    assert_eq!(narrower.0, StatusCode::OK, "{:?}", narrower.2);
    assert_eq!(narrower.2["scope"], "openid");
    app.stop().await;
}
