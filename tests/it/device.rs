//! The device authorization grant (RFC 8628) through the real HTTP surface: confirmed on the
//! `/device` page after a Telegram login, or in the bot chat; and the token endpoint's answers
//! to the polling device, each exactly as §3.5 says.

use reqwest::StatusCode;
use serde_json::Value;
use telegram_oidc::config::UpdateMode;
use telegram_oidc::store::ClientKind;

use crate::fake_bot_api::{
    FakeBotApi, WEBHOOK_SECRET, app_with_bot, button, buttons, deny_button, jwt_claims, message,
    number_button,
};
use crate::harness::{
    BOT_TOKEN, Browser, ClientSpec, TestApp, TestClient, TgUser, absolute, encode, hidden,
    location, req_of, widget_fields,
};

const GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub(crate) async fn public_client(app: &TestApp) -> TestClient {
    app.client(ClientSpec {
        kind: ClientKind::Public,
        device_flow: true,
        ..Default::default()
    })
    .await
}

/// `POST /device_authorization` as a public client.
pub(crate) async fn authorize_device(app: &TestApp, client: &TestClient, scope: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(app.url("/device_authorization"))
        .form(&[("client_id", client.id()), ("scope", scope)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    resp.json().await.unwrap()
}

/// One poll of the token endpoint by the device.
async fn poll(app: &TestApp, client: &TestClient, device_code: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", GRANT),
            ("client_id", client.id()),
            ("device_code", device_code),
        ])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

pub(crate) async fn poll_error(app: &TestApp, client: &TestClient, device_code: &str) -> String {
    let (status, body) = poll(app, client, device_code).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    body["error"].as_str().unwrap().to_owned()
}

pub(crate) fn device_code(started: &Value) -> String {
    started["device_code"].as_str().unwrap().to_owned()
}

/// A browser types the user code, logs in with the widget, and answers on the device page.
async fn confirm_on_web(
    app: &TestApp,
    browser: &Browser,
    typed: &str,
    user: &TgUser,
    decision: &str,
) -> String {
    let resp = browser
        .post_form(&app.url("/device"), &[("user_code".into(), typed.into())])
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let mut url = absolute(app, &location(resp.headers()));
    for _ in 0..6 {
        if url.contains("/device/confirm?") {
            break;
        }
        if url.contains("/login?") {
            let req = req_of(&url);
            let fields = widget_fields(user, app.now(), BOT_TOKEN);
            url = format!(
                "{}?{}",
                app.url(&format!("/login/telegram/{req}")),
                encode(&fields)
            );
        }
        let resp = browser.get(&url).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{url}");
        url = absolute(app, &location(resp.headers()));
    }
    assert!(url.contains("/device/confirm?req="), "{url}");
    let page = browser.get(&url).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    assert!(html.contains("Test App"), "the page names the app");
    let resp = browser
        .post_form(
            &app.url("/device/confirm"),
            &[
                ("req".into(), hidden(&html, "req")),
                ("csrf".into(), hidden(&html, "csrf")),
                ("decision".into(), decision.into()),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.text().await.unwrap()
}

#[tokio::test]
async fn device_flow_confirmed_on_the_web_page() {
    let app = TestApp::start().await;
    let doc: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["device_authorization_endpoint"],
        app.url("/device_authorization")
    );
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|g| g == GRANT)
    );

    let client = public_client(&app).await;
    let started = authorize_device(&app, &client, "openid profile offline_access").await;
    let user_code = started["user_code"].as_str().unwrap().to_owned();
    assert_eq!(user_code.len(), 9);
    assert_eq!(&user_code[4..5], "-");
    assert!(
        user_code
            .chars()
            .filter(|c| *c != '-')
            .all(|c| "BCDFGHJKLMNPQRSTVWXZ".contains(c))
    );
    assert!(device_code(&started).starts_with("tgdc_"));
    assert_eq!(started["verification_uri"], app.url("/device"));
    assert_eq!(
        started["verification_uri_complete"],
        app.url(&format!("/device?user_code={user_code}"))
    );
    assert_eq!(started["expires_in"], 600);
    assert_eq!(started["interval"], 5);
    assert!(
        started.get("verification_uri_telegram").is_none(),
        "no bot configured"
    );

    assert_eq!(
        poll_error(&app, &client, &device_code(&started)).await,
        "authorization_pending"
    );

    let browser = Browser::new();
    let page = browser
        .get(started["verification_uri_complete"].as_str().unwrap())
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(
        page.text().await.unwrap().contains(&user_code),
        "the code is filled in"
    );
    // Typed carelessly: lower case, no dash, spaces.
    let typed = format!(" {} ", user_code.replace('-', "").to_lowercase());
    let user = TgUser::new(7_200_001);
    let done = confirm_on_web(&app, &browser, &typed, &user, "approve").await;
    assert!(done.contains("signed in"), "{done}");

    app.clock.advance(5);
    let (status, tokens) = poll(&app, &client, &device_code(&started)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["refresh_token"].as_str().is_some());
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["aud"], client.id());
    assert_eq!(claims["amr"], serde_json::json!(["telegram_widget"]));
    assert!(claims.get("nonce").is_none());
    let info: Value = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], user.id.to_string());

    // Tokens once: the next poll is refused.
    app.clock.advance(5);
    assert_eq!(
        poll_error(&app, &client, &device_code(&started)).await,
        "invalid_grant"
    );
    // The user code is spent too.
    let resp = browser
        .post_form(&app.url("/device"), &[("user_code".into(), user_code)])
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn denied_on_the_web_page_is_access_denied() {
    let app = TestApp::start().await;
    let client = public_client(&app).await;
    let started = authorize_device(&app, &client, "openid").await;
    let browser = Browser::new();
    let user = TgUser::new(7_200_002);
    let code = started["user_code"].as_str().unwrap();
    let done = confirm_on_web(&app, &browser, code, &user, "deny").await;
    assert!(done.contains("not signed in"), "{done}");
    assert_eq!(
        poll_error(&app, &client, &device_code(&started)).await,
        "access_denied"
    );
    app.clock.advance(5);
    assert_eq!(
        poll_error(&app, &client, &device_code(&started)).await,
        "access_denied"
    );
}

#[tokio::test]
async fn the_confirmation_form_needs_this_browsers_csrf_token() {
    let app = TestApp::start().await;
    let client = public_client(&app).await;
    let started = authorize_device(&app, &client, "openid").await;
    let browser = Browser::new();
    let user = TgUser::new(7_200_003);
    // Logged in once through another device flow, so the session exists.
    let first = authorize_device(&app, &client, "openid").await;
    confirm_on_web(
        &app,
        &browser,
        first["user_code"].as_str().unwrap(),
        &user,
        "approve",
    )
    .await;
    let resp = browser
        .post_form(
            &app.url("/device"),
            &[(
                "user_code".into(),
                started["user_code"].as_str().unwrap().into(),
            )],
        )
        .await;
    let next = absolute(&app, &location(resp.headers()));
    let resp = browser.get(&next).await;
    let confirm = absolute(&app, &location(resp.headers()));
    assert!(
        confirm.contains("/device/confirm?req="),
        "a session skips the login: {confirm}"
    );
    let resp = browser
        .post_form(
            &app.url("/device/confirm"),
            &[
                ("req".into(), req_of(&confirm)),
                ("csrf".into(), "forged".into()),
                ("decision".into(), "approve".into()),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        poll_error(&app, &client, &device_code(&started)).await,
        "authorization_pending"
    );
}

/// The device flow confirmed in the chat: the `t.me` link of the response, `/start`, a message
/// naming the app, Approve, and tokens for the Telegram user of the chat.
async fn approved_in_the_bot_on(app: TestApp, fake: &FakeBotApi) {
    let client = public_client(&app).await;
    let started = authorize_device(&app, &client, "openid profile").await;
    let link = started["verification_uri_telegram"]
        .as_str()
        .expect("a t.me link")
        .to_owned();
    let payload = link
        .strip_prefix("https://t.me/test_login_bot?start=")
        .expect("a start link to the bot");
    let user = TgUser::new(7_200_010);
    fake.deliver(
        &app,
        &fake.update(message(&user, &format!("/start {payload}"))),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let sent = fake.calls("sendMessage");
    assert_eq!(sent.len(), 1);
    assert!(sent[0].body["text"].as_str().unwrap().contains("Test App"));
    let text = sent[0].body["text"].as_str().unwrap();
    // The device's user code and the number it shows, to pick among three.
    assert!(
        text.contains(&format!(
            "Device code: {}",
            started["user_code"].as_str().unwrap()
        )),
        "{text}"
    );
    let code = started["telegram_match_code"]
        .as_i64()
        .expect("a number to press");
    assert_eq!(buttons(&sent[0]).len(), 5);
    let approve = number_button(&sent[0], code);
    assert_eq!(
        poll_error(&app, &client, &device_code(&started)).await,
        "authorization_pending"
    );

    fake.deliver(
        &app,
        &fake.update(button(&user, user.id, 77, &approve)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let edited = fake.calls("editMessageText");
    assert!(
        edited[0].body["text"]
            .as_str()
            .unwrap()
            .contains("signed in to Test App")
    );

    app.clock.advance(5);
    let (status, tokens) = poll(&app, &client, &device_code(&started)).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["amr"], serde_json::json!(["telegram_bot"]));
    assert_eq!(claims["given_name"], "Ada");
    app.clock.advance(5);
    assert_eq!(
        poll_error(&app, &client, &device_code(&started)).await,
        "invalid_grant"
    );
    app.stop().await;
}

#[tokio::test]
async fn device_flow_approved_in_the_bot() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    approved_in_the_bot_on(app, &fake).await;
}

#[tokio::test]
async fn device_flow_approved_in_the_bot_on_postgres() {
    let Some(url) = crate::store::postgres_url() else {
        return;
    };
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |c| c.database_url = url).await;
    approved_in_the_bot_on(app, &fake).await;
}

#[tokio::test]
async fn device_flow_denied_in_the_bot() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = public_client(&app).await;
    let started = authorize_device(&app, &client, "openid").await;
    let link = started["verification_uri_telegram"].as_str().unwrap();
    let payload = link.rsplit('=').next().unwrap();
    let user = TgUser::new(7_200_011);
    fake.deliver(
        &app,
        &fake.update(message(&user, &format!("/start {payload}"))),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let deny = deny_button(&fake.calls("sendMessage")[0]);
    fake.deliver(
        &app,
        &fake.update(button(&user, user.id, 78, &deny)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_eq!(
        poll_error(&app, &client, &device_code(&started)).await,
        "access_denied"
    );
    // The user code cannot be approved on the web afterwards.
    let resp = Browser::new()
        .post_form(
            &app.url("/device"),
            &[(
                "user_code".into(),
                started["user_code"].as_str().unwrap().into(),
            )],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_expired_device_code_gets_expired_token() {
    let app = TestApp::start().await;
    let client = public_client(&app).await;
    let started = authorize_device(&app, &client, "openid").await;
    app.clock.advance(601);
    assert_eq!(
        poll_error(&app, &client, &device_code(&started)).await,
        "expired_token"
    );
    let resp = Browser::new()
        .post_form(
            &app.url("/device"),
            &[(
                "user_code".into(),
                started["user_code"].as_str().unwrap().into(),
            )],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn polling_too_fast_gets_slow_down_and_a_longer_interval() {
    let app = TestApp::start().await;
    let client = public_client(&app).await;
    let started = authorize_device(&app, &client, "openid").await;
    let code = device_code(&started);
    assert_eq!(
        poll_error(&app, &client, &code).await,
        "authorization_pending"
    );
    assert_eq!(poll_error(&app, &client, &code).await, "slow_down");
    // The interval is now 10 s (RFC 8628 §3.5: +5 s for this and all later requests), so
    // waiting the original 5 s is still too fast.
    app.clock.advance(5);
    assert_eq!(poll_error(&app, &client, &code).await, "slow_down");
    app.clock.advance(15);
    assert_eq!(
        poll_error(&app, &client, &code).await,
        "authorization_pending"
    );
}

#[tokio::test]
async fn device_codes_are_bound_to_their_client() {
    let app = TestApp::start().await;
    let client = public_client(&app).await;
    let other = public_client(&app).await;
    let started = authorize_device(&app, &client, "openid").await;
    let code = device_code(&started);
    assert_eq!(poll_error(&app, &other, &code).await, "invalid_grant");
    assert_eq!(
        poll_error(&app, &client, "tgdc_made-up").await,
        "invalid_grant"
    );
    let (status, body) = poll(&app, &client, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    // The other client's poll did not count against this one.
    assert_eq!(
        poll_error(&app, &client, &code).await,
        "authorization_pending"
    );
    // A confidential client must authenticate to start a device flow.
    let confidential = app.confidential_client().await;
    let resp = reqwest::Client::new()
        .post(app.url("/device_authorization"))
        .form(&[("client_id", confidential.id()), ("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = reqwest::Client::new()
        .post(app.url("/device_authorization"))
        .form(&[("client_id", client.id()), ("scope", "admin")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_scope");
    // A client not registered for the device flow cannot start one.
    let web = app
        .client(ClientSpec {
            kind: ClientKind::Public,
            ..Default::default()
        })
        .await;
    let resp = reqwest::Client::new()
        .post(app.url("/device_authorization"))
        .form(&[("client_id", web.id()), ("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "unauthorized_client");
}

#[tokio::test]
async fn guessing_user_codes_is_throttled_per_visitor() {
    // Behind a proxy on loopback, `X-Forwarded-For` tells two visitors apart.
    let app = TestApp::start_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        // The shipped limit (the harness raises it).
        c.rate_limits.device_miss = telegram_oidc::config::RateLimitConfig::default().device_miss;
    })
    .await;
    let http = reqwest::Client::new();
    let enter = |from: &'static str, code: String| {
        let request = http
            .post(app.url("/device"))
            .header("x-forwarded-for", from)
            .form(&[("user_code", code)]);
        async move { request.send().await.unwrap() }
    };
    let (guesser, other) = ("198.51.100.7", "203.0.113.9");
    let limit = app.config.rate_limits.device_miss;
    // Start at a window boundary so the window does not roll over mid-test.
    app.clock
        .advance(limit.window_secs - app.now().rem_euclid(limit.window_secs));
    for i in 0..limit.limit {
        let resp = enter(guesser, format!("BBBB-{:04}", i)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "attempt {i}");
    }
    let resp = enter(guesser, "BCDF-GHJK".into()).await;
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry: i64 = resp.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        retry > limit.window_secs - 30 && retry <= limit.window_secs,
        "{retry}"
    );
    // Another visitor is not locked out by the guesser.
    let resp = enter(other, "BCDF-GHJK".into()).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "another visitor");
    app.clock.advance(limit.window_secs);
    let resp = enter(guesser, "BCDF-GHJK".into()).await;
    assert_eq!(
        resp.status(),
        StatusCode::BAD_REQUEST,
        "a new window, a new allowance"
    );
}
