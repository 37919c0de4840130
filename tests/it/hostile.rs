//! The same hostile values, NUL and other control characters among them, sent to every
//! endpoint on both stores: each answer is a clear error (or the ordinary answer), never a
//! 5xx, and never a redirect to a URI the client did not register. Telegram's own fields
//! (vouched for by its signature) are stored whatever they hold.

use base64::Engine;
use reqwest::StatusCode;
use reqwest::header::LOCATION;
use serde_json::{Value, json};
use telegram_oidc::config::{Secret, UpdateMode};

use crate::fake_bot_api::{FakeBotApi, WEBHOOK_SECRET, app_with_bot, message};
use crate::harness::*;

const INITIAL_TOKEN: &str = "initial-access-token-hostile-0123456789abc";

/// Hostile text values (each valid UTF-8, so that it can also stand in JSON and signed
/// Telegram fields).
const VALUES: &[&str] = &[
    "\0",
    "a\0b",
    "\0\0\0\0",
    "\u{1}",
    "\u{1b}[31m",
    "\u{7f}",
    "\u{85}",
    "line\nbreak",
    "\r\n\r\n",
    "\t",
    "\u{FFFD}",
    "\u{202e}gnp.exe",
    "\u{feff}",
    "😀",
    "'\"<>&;--",
    "%00",
    "../../etc/passwd",
    "",
    " ",
];

/// Raw query or form pieces that do not decode to text at all.
const RAW: &[&str] = &["%ff", "%c0%80", "%", "%0", "%zz", "%ed%a0%80"];

/// Whether hostile value `i` (of [`VALUES`] then [`RAW`]) decodes to text without a control
/// character.
fn decodes_clean(i: usize) -> bool {
    VALUES
        .get(i)
        .is_some_and(|v| !v.chars().any(char::is_control))
}

fn enc(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// Not a 5xx, and any redirect goes to a page of ours or to the client's registered URI.
fn assert_safe(
    case: &str,
    status: StatusCode,
    location: Option<&str>,
    app: &TestApp,
    redirect: &str,
) {
    assert!(!status.is_server_error(), "{case}: answered {status}");
    if let Some(location) = location {
        assert!(
            location.starts_with('/')
                || location.starts_with(&app.base)
                || location.starts_with(redirect),
            "{case}: redirected to {location}"
        );
    }
}

async fn send(
    app: &TestApp,
    redirect: &str,
    case: &str,
    request: reqwest::RequestBuilder,
) -> (StatusCode, Value) {
    let resp = request.send().await.unwrap();
    let status = resp.status();
    let location = resp
        .headers()
        .get(LOCATION)
        .map(|v| v.to_str().unwrap().to_string());
    assert_safe(case, status, location.as_deref(), app, redirect);
    let text = resp.text().await.unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A form body from already-encoded pieces.
fn form(pairs: &[(&str, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

async fn suite(app: TestApp, fake: &FakeBotApi) {
    let client = app.confidential_client().await;
    let redirect = client.redirect_uri.clone();
    let http = no_redirects();
    let challenge =
        telegram_oidc::oidc::pkce::s256("hostile-verifier-0123456789-abcdefghijklmnopq");
    let mut encoded: Vec<String> = VALUES.iter().map(|v| enc(v)).collect();
    encoded.extend(RAW.iter().map(|r| r.to_string()));
    // A browser signed in on the account page, whose forms are sent holding each value.
    let account = crate::account::browser(crate::account::FIREFOX);
    let account_page = crate::account_page::account_login(&app, &account, 8_800_002).await;
    let account_csrf = enc(&hidden(&account_page, "csrf"));
    // A client registered for CIBA, and a user it may name.
    let (ciba, ciba_secret) = telegram_oidc::admin::add_client(
        app.store.as_ref(),
        telegram_oidc::admin::NewClient {
            name: "Hostile CIBA".into(),
            ciba: Some(telegram_oidc::store::CibaSettings {
                delivery_mode: telegram_oidc::store::CibaDeliveryMode::Ping,
                client_notification_endpoint: Some("https://crm.example.test/n".into()),
            }),
            ..Default::default()
        },
        app.now(),
    )
    .await
    .unwrap();
    let ciba_secret = ciba_secret.unwrap();
    let ciba_user = telegram_oidc::store::UserRecord {
        telegram_id: 8_800_003,
        first_name: "Ciba".into(),
        last_name: None,
        username: None,
        photo_url: None,
        language_code: None,
        is_premium: false,
        phone_number: None,
        created_at: app.now(),
        updated_at: app.now(),
        groups: None,
    };
    app.store.upsert_user(&ciba_user).await.unwrap();

    for (i, value) in encoded.iter().enumerate() {
        let case = |what: &str| format!("{what} with value #{i} ({value})");
        // The authorization request, each parameter in turn.
        for name in [
            "client_id",
            "redirect_uri",
            "scope",
            "state",
            "nonce",
            "response_type",
            "prompt",
            "max_age",
            "code_challenge",
        ] {
            let mut pairs = vec![
                ("response_type", "code".to_string()),
                ("client_id", enc(client.id())),
                ("redirect_uri", enc(&redirect)),
                ("scope", "openid".to_string()),
                ("state", "s".to_string()),
                ("code_challenge", challenge.clone()),
                ("code_challenge_method", "S256".to_string()),
            ];
            pairs.retain(|(k, _)| *k != name);
            pairs.push((name, value.clone()));
            let url = app.url(&format!("/authorize?{}", form(&pairs)));
            send(
                &app,
                &redirect,
                &case(&format!("GET /authorize {name}")),
                http.get(&url),
            )
            .await;
            send(
                &app,
                &redirect,
                &case(&format!("POST /authorize {name}")),
                http.post(app.url("/authorize"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&pairs)),
            )
            .await;
        }
        // The token endpoint: each parameter, and the client's credentials.
        for (name, grant) in [
            ("grant_type", None),
            ("code", Some("authorization_code")),
            ("redirect_uri", Some("authorization_code")),
            ("code_verifier", Some("authorization_code")),
            ("refresh_token", Some("refresh_token")),
            ("scope", Some("client_credentials")),
            (
                "device_code",
                Some("urn:ietf:params:oauth:grant-type:device_code"),
            ),
            (
                "subject_token",
                Some("urn:ietf:params:oauth:grant-type:token-exchange"),
            ),
        ] {
            let mut pairs = vec![(name, value.clone())];
            if let Some(grant) = grant {
                pairs.push(("grant_type", enc(grant)));
            }
            let (status, body) = send(
                &app,
                &redirect,
                &case(&format!("POST /token {name}")),
                http.post(app.url("/token"))
                    .basic_auth(client.id(), Some(client.secret()))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&pairs)),
            )
            .await;
            assert!(status.is_client_error(), "{}: {status} {body}", case(name));
            assert!(body["error"].is_string(), "{}: {body}", case(name));
            // What no parameter can hold is refused as such, before any lookup.
            if name != "subject_token" && !decodes_clean(i) {
                assert_eq!(body["error"], "invalid_request", "{}: {body}", case(name));
            }
        }
        for path in ["/token", "/revoke", "/introspect", "/device_authorization"] {
            // The client id in the form, and in a Basic header as the id and as the secret.
            let (status, body) = send(
                &app,
                &redirect,
                &case(&format!("{path} client_id")),
                http.post(app.url(path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&[
                        ("client_id", value.clone()),
                        ("grant_type", "client_credentials".into()),
                        ("token", "x".into()),
                    ])),
            )
            .await;
            assert!(status.is_client_error(), "{}: {status}", case(path));
            assert!(body["error"].is_string(), "{}: {body}", case(path));
            if !decodes_clean(i) {
                assert_eq!(body["error"], "invalid_request", "{}: {body}", case(path));
            }
            for basic in [
                format!("{value}:{value}"),
                format!("{}:{value}", client.id()),
            ] {
                let header = format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(basic.as_bytes())
                );
                let (status, body) = send(
                    &app,
                    &redirect,
                    &case(&format!("{path} Basic {basic}")),
                    http.post(app.url(path))
                        .header("authorization", header)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body("grant_type=client_credentials&token=x"),
                )
                .await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{}: {body}", case(path));
                assert_eq!(body["error"], "invalid_client", "{}", case(path));
            }
        }
        // The backchannel authentication request (CIBA), each parameter in turn; and its id at
        // the token endpoint.
        for name in [
            "scope",
            "login_hint",
            "id_token_hint",
            "login_hint_token",
            "binding_message",
            "requested_expiry",
            "user_code",
            "client_notification_token",
        ] {
            let mut pairs = vec![
                ("scope", "openid".to_string()),
                ("login_hint", ciba_user.telegram_id.to_string()),
                ("client_notification_token", "tok".to_string()),
            ];
            pairs.retain(|(k, _)| *k != name && !(name == "id_token_hint" && *k == "login_hint"));
            pairs.push((name, value.clone()));
            let (status, body) = send(
                &app,
                &redirect,
                &case(&format!("POST /bc-authorize {name}")),
                http.post(app.url("/bc-authorize"))
                    .basic_auth(ciba.client_id.as_str(), Some(ciba_secret.as_str()))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&pairs)),
            )
            .await;
            if !decodes_clean(i) {
                // A line break or tab passes the edge in free text, and is then no binding
                // message.
                let expected = if name == "binding_message" && !value.contains("%00") {
                    ["invalid_request", "invalid_binding_message"].as_slice()
                } else {
                    ["invalid_request"].as_slice()
                };
                assert!(
                    expected.contains(&body["error"].as_str().unwrap_or("")),
                    "{}: {body}",
                    case(name)
                );
            } else if status != StatusCode::OK {
                assert!(status.is_client_error(), "{}: {status} {body}", case(name));
                assert!(body["error"].is_string(), "{}: {body}", case(name));
            }
        }
        let (status, body) = send(
            &app,
            &redirect,
            &case("POST /token auth_req_id"),
            http.post(app.url("/token"))
                .basic_auth(ciba.client_id.as_str(), Some(ciba_secret.as_str()))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[
                    ("grant_type", enc("urn:openid:params:grant-type:ciba")),
                    ("auth_req_id", value.clone()),
                ])),
        )
        .await;
        assert!(
            status.is_client_error(),
            "{}: {status} {body}",
            case("auth_req_id")
        );
        assert!(body["error"].is_string(), "{}: {body}", case("auth_req_id"));
        for path in ["/revoke", "/introspect"] {
            send(
                &app,
                &redirect,
                &case(&format!("{path} token")),
                http.post(app.url(path))
                    .basic_auth(client.id(), Some(client.secret()))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&[
                        ("token", value.clone()),
                        ("token_type_hint", value.clone()),
                    ])),
            )
            .await;
        }
        send(
            &app,
            &redirect,
            &case("POST /userinfo access_token"),
            http.post(app.url("/userinfo"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[("access_token", value.clone())])),
        )
        .await;
        // Registration: the client id in the path, and the metadata.
        for method in [reqwest::Method::GET, reqwest::Method::DELETE] {
            let (status, _) = send(
                &app,
                &redirect,
                &case("registration path"),
                http.request(method, app.url(&format!("/register/{value}")))
                    .bearer_auth("reg-token"),
            )
            .await;
            assert!(
                status.is_client_error(),
                "{}: {status}",
                case("registration path")
            );
        }
        // Logout, by GET and by POST.
        for name in [
            "client_id",
            "post_logout_redirect_uri",
            "id_token_hint",
            "state",
            "ui_locales",
        ] {
            let pairs = vec![("client_id", enc(client.id())), (name, value.clone())];
            send(
                &app,
                &redirect,
                &case(&format!("GET /logout {name}")),
                http.get(app.url(&format!("/logout?{}", form(&pairs)))),
            )
            .await;
            send(
                &app,
                &redirect,
                &case(&format!("POST /logout {name}")),
                http.post(app.url("/logout"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&pairs)),
            )
            .await;
        }
        // The device page and the login pages.
        send(
            &app,
            &redirect,
            &case("POST /device"),
            http.post(app.url("/device"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form(&[("user_code", value.clone())])),
        )
        .await;
        // The account page's form, each field in turn, from the signed-in browser.
        for name in ["csrf", "action", "target"] {
            let mut pairs = vec![
                ("csrf", account_csrf.clone()),
                ("action", "revoke".to_string()),
                ("target", "x".to_string()),
            ];
            pairs.retain(|(k, _)| *k != name);
            pairs.push((name, value.clone()));
            let (status, _) = send(
                &app,
                &redirect,
                &case(&format!("POST /account {name}")),
                account
                    .http
                    .post(app.url("/account"))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(form(&pairs)),
            )
            .await;
            assert!(
                status.is_client_error() || status.is_redirection(),
                "{status}"
            );
        }
        for path in [
            "/account",
            "/device",
            "/login",
            "/consent",
            "/login/telegram/x",
            "/device/confirm",
        ] {
            send(
                &app,
                &redirect,
                &case(&format!("GET {path}")),
                http.get(app.url(&format!("{path}?req={value}&user_code={value}&id={value}"))),
            )
            .await;
        }
    }

    for value in VALUES {
        let case = format!("value {value:?}");
        // Registration metadata holding the value.
        let (status, body) = send(
            &app,
            &redirect,
            &case,
            http.post(app.url("/register"))
                .bearer_auth(INITIAL_TOKEN)
                .json(
                    &json!({"redirect_uris": [format!("https://rp.example.test/{value}")],
                              "client_name": value}),
                ),
        )
        .await;
        if value.contains('\0') {
            assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
            assert_eq!(body["error"], "invalid_client_metadata", "{case}");
        }
        // The webhook: an update whose text and sender hold the value is taken (200), so
        // Telegram does not resend it forever.
        let mut user = TgUser::new(8_800_001);
        user.first_name = format!("N{value}");
        let update = fake.update(message(&user, &format!("/start {value}")));
        let resp = fake.deliver(&app, &update, Some(WEBHOOK_SECRET)).await;
        assert_eq!(resp.status(), StatusCode::OK, "{case}");
        // The account's commands and buttons holding the value.
        for text in ["/apps", "/sessions", "/alerts", "/help"] {
            let update = fake.update(message(&user, &format!("{text} {value}")));
            let resp = fake.deliver(&app, &update, Some(WEBHOOK_SECRET)).await;
            assert_eq!(resp.status(), StatusCode::OK, "{case} {text}");
        }
        for data in ["ra:", "so:", "sa", "nm:", "nm:s:", "nm:a:"] {
            let update = fake.update(crate::fake_bot_api::button(
                &user,
                user.id,
                1,
                &format!("{data}{value}"),
            ));
            let resp = fake.deliver(&app, &update, Some(WEBHOOK_SECRET)).await;
            assert_eq!(resp.status(), StatusCode::OK, "{case} {data}");
        }
    }
    // A webhook body that is not JSON at all, with the right secret: acknowledged.
    for body in [
        "not json",
        "{",
        "\0",
        "[]",
        "{\"update_id\": 1, \"message\": 5}",
    ] {
        let resp = http
            .post(app.url("/telegram/webhook"))
            .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{body:?}");
    }

    // Telegram's own fields, correctly signed, whatever they hold: the login goes through
    // and the user is stored.
    for (i, value) in VALUES.iter().enumerate() {
        if value.is_empty() || value.trim().is_empty() {
            continue;
        }
        let user = TgUser {
            id: 8_900_000 + i as i64,
            first_name: format!("First{value}"),
            username: Some(format!("u{value}")),
        };
        let url = format!(
            "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile&state=s&code_challenge={challenge}&code_challenge_method=S256",
            app.url("/authorize"),
            client.id(),
            enc(&redirect),
        );
        let back = authorize_through(&app, &Browser::new(), &url, &user).await;
        assert!(back.starts_with(&redirect), "{value:?}: {back}");
        assert!(query_param(&back, "code").is_some(), "{value:?}: {back}");
        let stored = app.store.get_user(user.id).await.unwrap().expect("stored");
        // PostgreSQL text cannot hold NUL: it is kept as U+FFFD there.
        assert_eq!(
            stored.first_name.replace('\u{FFFD}', "\0"),
            user.first_name.replace('\u{FFFD}', "\0"),
            "{value:?}"
        );
    }
}

async fn start(fake: &FakeBotApi, database_url: Option<String>) -> TestApp {
    app_with_bot(fake, UpdateMode::Webhook, move |c| {
        c.registration.enabled = true;
        c.registration.initial_access_token = Secret::new(INITIAL_TOKEN);
        if let Some(url) = database_url {
            c.database_url = url;
        }
    })
    .await
}

#[tokio::test]
async fn hostile_values_on_sqlite() {
    let fake = FakeBotApi::start().await;
    let app = start(&fake, None).await;
    suite(app, &fake).await;
}

#[tokio::test]
async fn hostile_values_on_postgres() {
    let Some(url) = crate::store::postgres_url() else {
        return;
    };
    let fake = FakeBotApi::start().await;
    let app = start(&fake, Some(url)).await;
    suite(app, &fake).await;
}

/// A body that stalls after the headers (or trickles in) is answered 408 once
/// `body_timeout_secs` has passed, not held until the request timeout.
#[tokio::test]
async fn a_stalled_body_is_answered_408() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::start_with(|c| c.body_timeout_secs = 1).await;
    let addr = app.base.trim_start_matches("http://").to_string();
    for path in ["/token", "/device", "/register"] {
        let mut socket = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 100\r\n\r\ngrant_type="
        );
        socket.write_all(head.as_bytes()).await.unwrap();
        let started = std::time::Instant::now();
        let mut answer = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(20), async {
            let mut buf = [0u8; 4096];
            loop {
                // Trickle a byte now and then: the deadline is on the whole body.
                tokio::select! {
                    n = socket.read(&mut buf) => {
                        let n = n.unwrap();
                        if n == 0 { break; }
                        answer.extend_from_slice(&buf[..n]);
                        if answer.windows(4).any(|w| w == b"\r\n\r\n") { break; }
                    }
                    _ = tokio::time::sleep(std::time::Duration::from_millis(300)) => {
                        let _ = socket.write_all(b"x").await;
                    }
                }
            }
        })
        .await;
        assert!(read.is_ok(), "{path}: no answer");
        let answer = String::from_utf8_lossy(&answer);
        // /register is off here (404 before any body is read); the others read the body.
        let expected = if path == "/register" { "404" } else { "408" };
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {expected}")),
            "{path}: {answer}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "{path}: answered after {:?}",
            started.elapsed()
        );
    }
    app.stop().await;
}
