//! RP-initiated and back-channel logout, form_post responses, pairwise subjects, synthetic
//! email and native-app loopback redirects.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use telegram_oidc::admin::NewClient;
use telegram_oidc::oidc::pkce;
use telegram_oidc::store::{ClientKind, SubjectType};
use tokio::sync::mpsc;

use crate::harness::*;

const VERIFIER: &str = "logout-test-verifier-0123456789-abcdefghijklmnopqrstuv";

async fn register(app: &TestApp, new: NewClient) -> TestClient {
    let redirect_uri = new.redirect_uris[0].clone();
    let (record, secret) = telegram_oidc::admin::add_client(app.store.as_ref(), new, app.now())
        .await
        .unwrap();
    TestClient {
        record,
        secret,
        redirect_uri,
    }
}

fn code_url(app: &TestApp, client: &TestClient, redirect_uri: &str, extra: &str) -> String {
    format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid%20email&state=st&code_challenge={}&code_challenge_method=S256{extra}",
        app.url("/authorize"),
        client.id(),
        url::form_urlencoded::byte_serialize(redirect_uri.as_bytes()).collect::<String>(),
        pkce::s256(VERIFIER),
    )
}

async fn exchange(app: &TestApp, client: &TestClient, code: &str, redirect_uri: &str) -> Value {
    let mut req = reqwest::Client::new().post(app.url("/token"));
    let mut form = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", VERIFIER),
    ];
    match &client.secret {
        Some(secret) => req = req.basic_auth(client.id(), Some(secret)),
        None => form.push(("client_id", client.id())),
    }
    let resp = req.form(&form).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

fn claims(jwt: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn header(jwt: &str) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').next().unwrap())
            .unwrap(),
    )
    .unwrap()
}

/// A back-channel logout receiver on loopback: every posted logout token arrives on the channel.
async fn logout_receiver() -> (String, mpsc::UnboundedReceiver<String>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
    let router = axum::Router::new().route(
        "/backchannel",
        axum::routing::post(move |axum::Form(form): axum::Form<Vec<(String, String)>>| {
            let tx = tx.clone();
            async move {
                for (k, v) in form {
                    if k == "logout_token" {
                        let _ = tx.send(v);
                    }
                }
                StatusCode::OK
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, rx)
}

#[tokio::test]
async fn rp_initiated_logout_ends_the_session_and_tells_the_app_on_the_back_channel() {
    let app = TestApp::start().await;
    let (backchannel, mut tokens_rx) = logout_receiver().await;
    let client = register(
        &app,
        NewClient {
            name: "Logout RP".into(),
            redirect_uris: vec!["https://rp.example.test/cb".into()],
            post_logout_redirect_uris: vec!["https://rp.example.test/bye".into()],
            backchannel_logout_uri: Some(backchannel),
            skip_consent: true,
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::new();
    let back = authorize_through(
        &app,
        &browser,
        &code_url(&app, &client, &client.redirect_uri, ""),
        &TgUser::new(777),
    )
    .await;
    let tokens = exchange(
        &app,
        &client,
        &query_param(&back, "code").unwrap(),
        &client.redirect_uri,
    )
    .await;
    let id_token = tokens["id_token"].as_str().unwrap();

    // An unregistered return address gets a page, never a redirect.
    let resp = browser
        .get(&format!(
            "{}?id_token_hint={id_token}&post_logout_redirect_uri={}",
            app.url("/logout"),
            url::form_urlencoded::byte_serialize(b"https://evil.test/").collect::<String>()
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());

    let resp = browser
        .get(&format!(
            "{}?id_token_hint={id_token}&post_logout_redirect_uri={}&state=bye1",
            app.url("/logout"),
            url::form_urlencoded::byte_serialize(b"https://rp.example.test/bye")
                .collect::<String>()
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let to = location(resp.headers());
    assert!(to.starts_with("https://rp.example.test/bye"), "{to}");
    assert_eq!(query_param(&to, "state").as_deref(), Some("bye1"));

    // The session is over: the next authorization asks for Telegram again.
    let resp = browser
        .get(&code_url(&app, &client, &client.redirect_uri, ""))
        .await;
    assert!(location(resp.headers()).contains("/login?"));

    let logout_token = tokio::time::timeout(Duration::from_secs(10), tokens_rx.recv())
        .await
        .expect("a logout token arrives")
        .unwrap();
    assert_eq!(header(&logout_token)["typ"], "logout+jwt");
    let c = claims(&logout_token);
    assert_eq!(c["iss"], app.base);
    assert_eq!(c["aud"], client.id());
    assert_eq!(c["sub"], "777");
    assert!(c["jti"].is_string());
    assert!(c["events"]["http://schemas.openid.net/event/backchannel-logout"].is_object());
    assert!(c.get("nonce").is_none());
    app.stop().await;
}

#[tokio::test]
async fn logout_without_a_hint_asks_the_user_and_checks_the_form() {
    let app = TestApp::start().await;
    let client = register(
        &app,
        NewClient {
            name: "Logout RP".into(),
            redirect_uris: vec!["https://rp.example.test/cb".into()],
            skip_consent: true,
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::new();
    authorize_through(
        &app,
        &browser,
        &code_url(&app, &client, &client.redirect_uri, ""),
        &TgUser::new(9),
    )
    .await;
    let page = browser.get(&app.url("/logout")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let csrf = hidden(&html, "csrf");
    let resp = browser
        .post_form(
            &app.url("/logout/confirm"),
            &[
                ("csrf".into(), "forged".into()),
                ("decision".into(), "logout".into()),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = browser
        .get(&code_url(&app, &client, &client.redirect_uri, ""))
        .await;
    assert!(
        query_param(&location(resp.headers()), "code").is_some(),
        "still signed in"
    );
    let resp = browser
        .post_form(
            &app.url("/logout/confirm"),
            &[("csrf".into(), csrf), ("decision".into(), "logout".into())],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = browser
        .get(&code_url(&app, &client, &client.redirect_uri, ""))
        .await;
    assert!(location(resp.headers()).contains("/login?"), "signed out");
    app.stop().await;
}

#[tokio::test]
async fn form_post_returns_a_self_submitting_form_to_the_registered_uri() {
    let app = TestApp::start().await;
    let client = app
        .client(ClientSpec {
            skip_consent: true,
            ..Default::default()
        })
        .await;
    let browser = Browser::new();
    let url = code_url(
        &app,
        &client,
        &client.redirect_uri,
        "&response_mode=form_post",
    );
    let resp = browser.get(&url).await;
    let login = absolute(&app, &location(resp.headers()));
    let fields = widget_fields(&TgUser::new(3), app.now(), BOT_TOKEN);
    let resp = browser
        .get(&format!(
            "{}?{}",
            app.url(&format!("/login/telegram/{}", req_of(&login))),
            encode(&fields)
        ))
        .await;
    let resp = browser
        .get(&absolute(&app, &location(resp.headers())))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let csp = resp.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("form-action https://app.example.test"),
        "{csp}"
    );
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("action=\"https://app.example.test/callback\""),
        "{html}"
    );
    let code = hidden(&html, "code");
    assert_eq!(hidden(&html, "state"), "st");
    assert_eq!(hidden(&html, "iss"), app.base);
    exchange(&app, &client, &code, &client.redirect_uri).await;
    app.stop().await;
}

#[tokio::test]
async fn pairwise_subjects_are_stable_per_sector_and_unlinkable_across_sectors() {
    let app = TestApp::start().await;
    let pairwise = |name: &str, host: &str| NewClient {
        name: name.into(),
        redirect_uris: vec![format!("https://{host}/cb")],
        subject_type: SubjectType::Pairwise,
        synthetic_email: true,
        skip_consent: true,
        scopes: vec!["openid".into(), "email".into()],
        ..Default::default()
    };
    let a = register(&app, pairwise("A", "a.example.test")).await;
    let a2 = register(&app, pairwise("A2", "a.example.test")).await;
    let b = register(&app, pairwise("B", "b.example.test")).await;
    let user = TgUser::new(123_456);
    let mut subs = Vec::new();
    for client in [&a, &a2, &b, &a] {
        // Each login is a new Telegram proof (the same one twice would be a replay).
        app.clock.advance(1);
        let back = authorize_through(
            &app,
            &Browser::new(),
            &code_url(&app, client, &client.redirect_uri, ""),
            &user,
        )
        .await;
        let tokens = exchange(
            &app,
            client,
            &query_param(&back, "code").unwrap(),
            &client.redirect_uri,
        )
        .await;
        let sub = claims(tokens["id_token"].as_str().unwrap())["sub"]
            .as_str()
            .unwrap()
            .to_string();
        let info: Value = reqwest::Client::new()
            .get(app.url("/userinfo"))
            .bearer_auth(tokens["access_token"].as_str().unwrap())
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(info["sub"], sub, "userinfo and ID token agree");
        assert_eq!(info["email"], format!("{sub}@telegram.invalid"));
        assert_ne!(sub, "123456", "a pairwise subject is not the Telegram id");
        subs.push(sub);
    }
    assert_eq!(subs[0], subs[1], "same sector, same subject");
    assert_eq!(subs[0], subs[3], "stable across logins");
    assert_ne!(subs[0], subs[2], "other sector, other subject");
    app.stop().await;
}

#[tokio::test]
async fn a_native_app_may_use_any_loopback_port_and_nothing_else_loosens() {
    let app = TestApp::start().await;
    let native = register(
        &app,
        NewClient {
            name: "CLI".into(),
            kind: ClientKind::Public,
            redirect_uris: vec!["http://127.0.0.1/callback".into()],
            skip_consent: true,
            ..Default::default()
        },
    )
    .await;
    let browser = Browser::new();
    let back = authorize_through(
        &app,
        &browser,
        &code_url(&app, &native, "http://127.0.0.1:53127/callback", ""),
        &TgUser::new(4),
    )
    .await;
    assert!(
        back.starts_with("http://127.0.0.1:53127/callback?"),
        "{back}"
    );
    exchange(
        &app,
        &native,
        &query_param(&back, "code").unwrap(),
        "http://127.0.0.1:53127/callback",
    )
    .await;
    for bad in [
        "http://127.0.0.1:53127/callback/../x",
        "http://127.0.0.1:53127/Callback",
        "http://127.0.0.1:53127/callback?x=1",
        "http://localhost:53127/callback",
        "http://127.0.0.1.evil.test:53127/callback",
        "http://127.0.0.1@evil.test/callback",
        "https://127.0.0.1:53127/callback",
    ] {
        let resp = browser.get(&code_url(&app, &native, bad, "")).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{bad}");
        assert!(resp.headers().get("location").is_none(), "{bad}");
    }
    // A confidential client gets no port flexibility.
    let web = register(
        &app,
        NewClient {
            name: "Web".into(),
            redirect_uris: vec!["http://127.0.0.1/callback".into()],
            ..Default::default()
        },
    )
    .await;
    let resp = browser
        .get(&code_url(&app, &web, "http://127.0.0.1:53127/callback", ""))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}
