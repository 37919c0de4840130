//! Telegram's own OpenID Connect provider as an upstream, against a local fake of it: the login
//! through the real HTTP surface ends in our code, tokens and userinfo, and every way the
//! upstream answer can be wrong is refused.

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;
use serde_json::Value;
use telegram_oidc::config::{Config, Secret, UpstreamOidcConfig};
use telegram_oidc::secrets::random_bytes;

use crate::fake_telegram_oidc::{CLIENT_ID, CLIENT_SECRET, FakeTelegramOidc, FakeUser, Tweaks};
use crate::harness::*;

pub(crate) fn upstream_config(fake: &FakeTelegramOidc) -> UpstreamOidcConfig {
    UpstreamOidcConfig {
        issuer: fake.issuer.clone(),
        client_id: CLIENT_ID.into(),
        client_secret: Secret::new(CLIENT_SECRET),
        scopes: vec!["openid".into(), "profile".into(), "phone".into()],
        ..Default::default()
    }
}

pub(crate) async fn start_with_upstream(
    fake: &FakeTelegramOidc,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    let upstream = upstream_config(fake);
    let app = TestApp::start_with(|c| {
        c.telegram_oidc = Some(upstream);
        adjust(c);
    })
    .await;
    fake.use_clock(app.clock.clone());
    app
}

/// A Telegram id no other test (or earlier run on a shared PostgreSQL) uses.
pub(crate) fn unique_id() -> i64 {
    i64::from(u32::from_le_bytes(random_bytes::<4>())) + 2_000_000_000
}

async fn client_with_phone(app: &TestApp) -> TestClient {
    let mut tc = app.confidential_client().await;
    tc.record.settings.allowed_scopes.push("phone".into());
    assert!(app.store.update_client(&tc.record).await.unwrap());
    tc
}

pub(crate) fn authorize_url(app: &TestApp, tc: &TestClient, scope: &str) -> String {
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", tc.id())
        .append_pair("redirect_uri", &tc.redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "app-state")
        .append_pair("nonce", "app-nonce");
    url.to_string()
}

/// Where Telegram sends the browser back, and the login cookie the start set.
pub(crate) struct AtTelegram {
    pub(crate) callback: String,
    cookie: String,
    telegram_auth_url: String,
}

/// From the app's authorization request through our login page and start endpoint to the
/// fake Telegram, which logs in its current user and redirects back.
pub(crate) async fn go_to_telegram(
    app: &TestApp,
    browser: &Browser,
    authorize: &str,
) -> AtTelegram {
    let resp = browser.get(authorize).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let login = absolute(app, &location(resp.headers()));
    assert!(login.contains("/login?req="), "{login}");
    let page = browser.get(&login).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let marker = "href=\"/login/telegram-oidc/start?req=";
    let start = html.find(marker).expect("a Log in with Telegram button") + 6;
    let end = html[start..].find('"').unwrap() + start;
    assert!(html.contains("Log in with Telegram"));
    let resp = browser.get(&app.url(&html[start..end])).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let cookie = resp
        .headers()
        .get(SET_COOKIE)
        .expect("the login cookie")
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_string();
    let telegram_auth_url = location(resp.headers());
    let resp = browser.get(&telegram_auth_url).await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "the fake Telegram logs in"
    );
    AtTelegram {
        callback: location(resp.headers()),
        cookie,
        telegram_auth_url,
    }
}

/// From Telegram's callback through consent back to the app; `Err` is the page shown instead.
pub(crate) async fn come_back(
    app: &TestApp,
    browser: &Browser,
    callback: &str,
) -> Result<String, (StatusCode, String)> {
    let resp = browser.get(callback).await;
    if resp.status() != StatusCode::SEE_OTHER {
        return Err((resp.status(), resp.text().await.unwrap()));
    }
    let next = absolute(app, &location(resp.headers()));
    assert!(next.contains("/authorize/continue?req="), "{next}");
    let resp = browser.get(&next).await;
    let next = absolute(app, &location(resp.headers()));
    if next.contains("/consent?") {
        return Ok(approve_consent(app, browser, &next).await);
    }
    Ok(next)
}

pub(crate) async fn log_in_through_telegram(app: &TestApp, tc: &TestClient, scope: &str) -> String {
    let browser = Browser::new();
    let at = go_to_telegram(app, &browser, &authorize_url(app, tc, scope)).await;
    come_back(app, &browser, &at.callback)
        .await
        .expect("the login succeeds")
}

pub(crate) async fn redeem(app: &TestApp, tc: &TestClient, back: &str) -> Value {
    let code = query_param(back, "code").expect("a code");
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(tc.id(), Some(tc.secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", tc.redirect_uri.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn userinfo(app: &TestApp, access_token: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(access_token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

pub fn jwt_claims(jwt: &str) -> Value {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

async fn full_login(app: TestApp, fake: &FakeTelegramOidc) {
    let id = unique_id();
    fake.log_in_as(FakeUser::new(id));
    let tc = app.confidential_client().await;
    let browser = Browser::new();
    let at = go_to_telegram(&app, &browser, &authorize_url(&app, &tc, "openid profile")).await;
    // What went to Telegram: PKCE S256, state, nonce, our callback, the configured scopes.
    let sent = &at.telegram_auth_url;
    assert!(
        sent.starts_with(&format!("{}/auth?", fake.issuer)),
        "{sent}"
    );
    assert_eq!(
        query_param(sent, "code_challenge_method").as_deref(),
        Some("S256")
    );
    assert_eq!(query_param(sent, "code_challenge").unwrap().len(), 43);
    assert!(query_param(sent, "state").unwrap().len() >= 43);
    assert!(query_param(sent, "nonce").unwrap().len() >= 43);
    assert_eq!(
        query_param(sent, "redirect_uri").unwrap(),
        app.url("/login/telegram-oidc/callback")
    );
    assert_eq!(
        query_param(sent, "scope").as_deref(),
        Some("openid profile phone")
    );
    let back = come_back(&app, &browser, &at.callback).await.unwrap();
    assert!(back.starts_with(&tc.redirect_uri), "{back}");
    assert_eq!(query_param(&back, "state").as_deref(), Some("app-state"));

    let tokens = redeem(&app, &tc, &back).await;
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    // The Telegram id from the `id` claim, not Telegram's opaque `sub`.
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["amr"], serde_json::json!(["telegram_oidc"]));
    assert_eq!(claims["nonce"], "app-nonce");
    assert_eq!(claims["name"], "Grace Hopper");
    assert_eq!(claims["preferred_username"], "grace_tg");
    assert_eq!(claims["picture"], "https://t.me/i/userpic/320/grace.jpg");
    let info = userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["sub"], id.to_string());
    assert_eq!(info["name"], "Grace Hopper");
    let user = app
        .store
        .get_user(id)
        .await
        .unwrap()
        .expect("a user record");
    assert_eq!(user.username.as_deref(), Some("grace_tg"));
    app.stop().await;
}

#[tokio::test]
async fn telegram_oidc_login_ends_in_our_code_tokens_and_userinfo() {
    let fake = FakeTelegramOidc::start().await;
    let app = start_with_upstream(&fake, |_| {}).await;
    // The JWKS the server had to read holds an ES256K key first; it was skipped, not fatal.
    let jwks: Value = reqwest::get(format!("{}/.well-known/jwks.json", fake.issuer))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jwks["keys"][0]["crv"], "secp256k1");
    full_login(app, &fake).await;
}

#[tokio::test]
async fn telegram_oidc_login_on_postgres() {
    let Some(url) = crate::store::postgres_url() else {
        return;
    };
    let fake = FakeTelegramOidc::start().await;
    let app = start_with_upstream(&fake, |c| c.database_url = url).await;
    full_login(app, &fake).await;
}

#[tokio::test]
async fn a_string_id_claim_and_a_shared_phone_number() {
    let fake = FakeTelegramOidc::start().await;
    let app = start_with_upstream(&fake, |_| {}).await;
    let id = unique_id();
    fake.log_in_as(FakeUser {
        id_as_string: true,
        phone: Some("79991234567".into()),
        ..FakeUser::new(id)
    });
    let tc = client_with_phone(&app).await;
    let back = log_in_through_telegram(&app, &tc, "openid phone").await;
    let tokens = redeem(&app, &tc, &back).await;
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["phone_number"], "+79991234567");
    assert_eq!(claims["phone_number_verified"], true);
    assert!(claims.get("name").is_none(), "profile was not asked for");
    let info = userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["phone_number"], "+79991234567");
    assert_eq!(info["phone_number_verified"], true);

    // Without the phone scope, the number stays with us.
    let back = log_in_through_telegram(&app, &tc, "openid profile").await;
    let tokens = redeem(&app, &tc, &back).await;
    let info = userinfo(&app, tokens["access_token"].as_str().unwrap()).await;
    assert!(info.get("phone_number").is_none(), "{info}");
    app.stop().await;
}

#[tokio::test]
async fn the_same_person_through_the_widget_and_telegram_oidc_is_one_user() {
    let fake = FakeTelegramOidc::start().await;
    let app = start_with_upstream(&fake, |_| {}).await;
    let id = unique_id();
    let tc = app.confidential_client().await;

    let widget_browser = Browser::new();
    let back = authorize_through(
        &app,
        &widget_browser,
        &authorize_url(&app, &tc, "openid profile"),
        &TgUser::new(id),
    )
    .await;
    let by_widget = jwt_claims(redeem(&app, &tc, &back).await["id_token"].as_str().unwrap());
    assert_eq!(by_widget["amr"], serde_json::json!(["telegram_widget"]));

    fake.log_in_as(FakeUser::new(id));
    let back = log_in_through_telegram(&app, &tc, "openid profile").await;
    let by_oidc = jwt_claims(redeem(&app, &tc, &back).await["id_token"].as_str().unwrap());
    assert_eq!(by_oidc["amr"], serde_json::json!(["telegram_oidc"]));
    assert_eq!(by_widget["sub"], by_oidc["sub"]);
    assert_eq!(by_oidc["sub"], id.to_string());
    // One record, refreshed by the latest login.
    let user = app.store.get_user(id).await.unwrap().unwrap();
    assert_eq!(user.first_name, "Grace Hopper");
    app.stop().await;
}

#[tokio::test]
async fn upstream_id_tokens_with_a_wrong_audience_nonce_issuer_or_signature_are_refused() {
    let fake = FakeTelegramOidc::start().await;
    let app = start_with_upstream(&fake, |_| {}).await;
    let tc = app.confidential_client().await;
    fake.log_in_as(FakeUser::new(unique_id()));
    for (what, tweaks) in [
        (
            "audience",
            Tweaks {
                audience: Some("another-bot".into()),
                ..Default::default()
            },
        ),
        (
            "nonce",
            Tweaks {
                nonce: Some("not-the-nonce-we-sent".into()),
                ..Default::default()
            },
        ),
        (
            "issuer",
            Tweaks {
                issuer: Some("https://oauth.telegram.example".into()),
                ..Default::default()
            },
        ),
        (
            "signature",
            Tweaks {
                forge_with_key: Some(2),
                ..Default::default()
            },
        ),
    ] {
        fake.tweak(tweaks);
        let browser = Browser::new();
        let authorize = authorize_url(&app, &tc, "openid");
        let at = go_to_telegram(&app, &browser, &authorize).await;
        let (status, body) = come_back(&app, &browser, &at.callback)
            .await
            .expect_err(what);
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
        assert!(body.contains("could not be verified"), "{what}: {body}");
        // No session came of it: the next authorization asks for a login again.
        let resp = browser.get(&authorize).await;
        assert!(
            location(resp.headers()).contains("/login?req="),
            "{what}: logged in anyway"
        );
    }
    // Whether Telegram echoes the nonce is unconfirmed: a token without one is accepted
    // (state and PKCE still bind the code to this browser).
    fake.tweak(Tweaks {
        omit_nonce: true,
        ..Default::default()
    });
    let back = log_in_through_telegram(&app, &tc, "openid").await;
    assert!(query_param(&back, "code").is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_replayed_state_or_a_callback_in_another_browser_is_refused() {
    let fake = FakeTelegramOidc::start().await;
    let app = start_with_upstream(&fake, |_| {}).await;
    let tc = app.confidential_client().await;
    fake.log_in_as(FakeUser::new(unique_id()));
    let browser = Browser::new();
    let at = go_to_telegram(&app, &browser, &authorize_url(&app, &tc, "openid")).await;

    // Sent to someone else (login CSRF): refused, and the login of the right browser survives.
    let (status, body) = come_back(&app, &Browser::new(), &at.callback)
        .await
        .unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("another browser"), "{body}");
    assert_eq!(fake.token_calls(), 0, "no code was redeemed for a stranger");

    let back = come_back(&app, &browser, &at.callback).await.unwrap();
    assert!(query_param(&back, "code").is_some());
    assert_eq!(fake.token_calls(), 1);

    // The same state again, even with the right cookie: used up.
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&at.callback)
        .header("cookie", &at.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("already used"));
    assert_eq!(
        fake.token_calls(),
        1,
        "the code was not sent to Telegram twice"
    );

    // A state we never issued, and a callback with no state at all.
    let forged = at.callback.replace("state=", "state=x");
    let resp = browser.get(&forged).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = browser
        .get(&app.url("/login/telegram-oidc/callback?code=abc"))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let resp = browser
        .get(&app.url("/login/telegram-oidc/callback?code=%ZZ&state=a"))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    // A cookie of the right name planted with another value (another login's secret and
    // authorization) does not match what the state was issued to.
    let at = go_to_telegram(&app, &Browser::new(), &authorize_url(&app, &tc, "openid")).await;
    let (name, value) = at.cookie.split_once('=').unwrap();
    let (_, req) = value.split_once('.').unwrap();
    let planted = format!("{name}={}.{req}", "A".repeat(43));
    let resp = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(&at.callback)
        .header("cookie", planted)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("another browser"));
    assert_eq!(fake.token_calls(), 1);
    app.stop().await;
}

#[tokio::test]
async fn a_cancelled_login_and_an_expired_state_end_on_a_page() {
    let fake = FakeTelegramOidc::start().await;
    let app = start_with_upstream(&fake, |_| {}).await;
    let tc = app.confidential_client().await;
    let browser = Browser::new();
    let at = go_to_telegram(&app, &browser, &authorize_url(&app, &tc, "openid")).await;
    let state = query_param(&at.callback, "state").unwrap();
    let cancelled = format!(
        "{}?error=access_denied&state={}",
        app.url("/login/telegram-oidc/callback"),
        state
    );
    let (status, body) = come_back(&app, &browser, &cancelled).await.unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("cancelled"), "{body}");

    let at = go_to_telegram(&app, &browser, &authorize_url(&app, &tc, "openid")).await;
    app.clock.advance(601);
    let (status, body) = come_back(&app, &browser, &at.callback).await.unwrap_err();
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("expired"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn without_configuration_there_is_no_telegram_oidc_button_and_no_endpoint() {
    let app = TestApp::start().await;
    let tc = app.confidential_client().await;
    let browser = Browser::new();
    let resp = browser.get(&authorize_url(&app, &tc, "openid")).await;
    let login = absolute(&app, &location(resp.headers()));
    let html = browser.get(&login).await.text().await.unwrap();
    assert!(!html.contains("telegram-oidc/start"), "{html}");
    assert!(html.contains("data-telegram-login"));
    let req = req_of(&login);
    let resp = browser
        .get(&app.url(&format!("/login/telegram-oidc/start?req={req}")))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = browser
        .get(&app.url("/login/telegram-oidc/callback?code=a&state=b"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_telegram_gives_a_page_and_a_bad_start_link_too() {
    // Nothing listens on the discard port.
    let app = TestApp::start_with(|c| {
        c.telegram_oidc = Some(UpstreamOidcConfig {
            issuer: "http://127.0.0.1:9".into(),
            client_id: CLIENT_ID.into(),
            client_secret: Secret::new(CLIENT_SECRET),
            ..Default::default()
        });
    })
    .await;
    let tc = app.confidential_client().await;
    let browser = Browser::new();
    let resp = browser.get(&authorize_url(&app, &tc, "openid")).await;
    let req = req_of(&location(resp.headers()));
    let resp = browser
        .get(&app.url(&format!("/login/telegram-oidc/start?req={req}")))
        .await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.text().await.unwrap().contains("another way to log in"));
    for bad in [
        "/login/telegram-oidc/start",
        "/login/telegram-oidc/start?req=tgp_unknown",
    ] {
        let resp = browser.get(&app.url(bad)).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
    }
    app.stop().await;
}
