//! Rate limits (README, "Rate limits"): every limited endpoint answers with the `RateLimit` /
//! `RateLimit-Policy` and `X-RateLimit-*` headers, refuses with 429 and `Retry-After` past its
//! limit, and lets requests through again once the window has passed (the test clock moves,
//! nothing sleeps). Behind a trusted proxy on loopback, `X-Forwarded-For` names the visitor.

use std::future::Future;

use reqwest::StatusCode;
use serde_json::{Value, json};
use telegram_oidc::config::{Config, Limit, Secret, UpdateMode};
use telegram_oidc::secrets::{random_bytes, sha256};
use telegram_oidc::store::AuditQuery;

use crate::fake_bot_api::{FakeBotApi, WEBHOOK_SECRET, app_with_bot};
use crate::harness::{Browser, ClientSpec, TestApp, TgUser, authorize_through};

/// The window every limit under test uses: long enough that a test never crosses it.
const WINDOW: i64 = 600;

fn behind_proxy(c: &mut Config) {
    c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
}

/// Moves the test clock to the start of a window.
fn align(app: &TestApp) {
    app.clock.advance(WINDOW - app.now().rem_euclid(WINDOW));
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn header(resp: &reqwest::Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
}

/// The `r` and `t` of `policy` in the `RateLimit` header.
fn remaining_of(resp: &reqwest::Response, policy: &str) -> Option<(u32, i64)> {
    let field = header(resp, "ratelimit")?;
    let item = field
        .split(", ")
        .find(|item| item.starts_with(&format!("\"{policy}\";")))?;
    let mut r = None;
    let mut t = None;
    for param in item.split(';').skip(1) {
        match param.split_once('=') {
            Some(("r", v)) => r = v.parse().ok(),
            Some(("t", v)) => t = v.parse().ok(),
            _ => {}
        }
    }
    Some((r?, t?))
}

/// Sends `limit` allowed requests, then one too many, then one after the window: asserts the
/// headers and statuses of each. `policy` must be the tightest of what the request counts
/// against.
async fn exercise<F, Fut>(app: &TestApp, policy: &str, limit: u32, send: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = reqwest::Response>,
{
    for i in 0..limit {
        let resp = send().await;
        assert_ne!(
            resp.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{policy}: request {i}"
        );
        assert!(
            header(&resp, "ratelimit-policy")
                .unwrap_or_default()
                .contains(&format!("\"{policy}\";q={limit};w={WINDOW}")),
            "{policy}: {:?}",
            resp.headers()
        );
        let (r, t) = remaining_of(&resp, policy).expect("a RateLimit item for the policy");
        assert_eq!(r, limit - 1 - i, "{policy}: remaining after request {i}");
        assert!(t > 0 && t <= WINDOW, "{policy}: t={t}");
        assert_eq!(
            header(&resp, "x-ratelimit-limit").unwrap(),
            limit.to_string()
        );
        assert_eq!(
            header(&resp, "x-ratelimit-remaining").unwrap(),
            (limit - 1 - i).to_string()
        );
        assert_eq!(header(&resp, "x-ratelimit-reset").unwrap(), t.to_string());
        assert_eq!(header(&resp, "retry-after"), None, "{policy}: allowed");
    }
    let resp = send().await;
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "{policy}: past the limit"
    );
    let retry: i64 = header(&resp, "retry-after").unwrap().parse().unwrap();
    assert!(
        retry > WINDOW - 60 && retry <= WINDOW,
        "{policy}: Retry-After {retry}"
    );
    assert_eq!(remaining_of(&resp, policy).unwrap(), (0, retry));
    assert_eq!(header(&resp, "x-ratelimit-remaining").unwrap(), "0");
    assert_eq!(
        header(&resp, "x-ratelimit-reset").unwrap(),
        retry.to_string()
    );
    let is_json = header(&resp, "content-type").is_some_and(|c| c.contains("json"));
    if is_json {
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "rate_limited", "{policy}");
    }
    app.clock.advance(WINDOW);
    let resp = send().await;
    assert_ne!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "{policy}: a new window"
    );
    assert_eq!(remaining_of(&resp, policy).unwrap().0, limit - 1);
}

/// A documentation address (RFC 5737) no other test run used: counters on a shared
/// PostgreSQL outlive a test.
fn fresh_ip() -> String {
    let [a, b] = random_bytes::<2>();
    format!("198.18.{a}.{b}")
}

#[tokio::test]
async fn the_token_endpoint_is_limited_per_address() {
    let app = TestApp::start_with(|c| {
        behind_proxy(c);
        c.rate_limits.token_ip = Limit::per(3, WINDOW);
    })
    .await;
    align(&app);
    let http = http();
    let post = |ip: &'static str| {
        http.post(app.url("/token"))
            .header("x-forwarded-for", ip)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", "nobody"),
            ])
            .send()
    };
    exercise(&app, "token-ip", 3, || async {
        post("203.0.113.1").await.unwrap()
    })
    .await;
    // Another address has its own allowance.
    align(&app);
    for _ in 0..3 {
        post("203.0.113.1").await.unwrap();
    }
    assert_eq!(post("203.0.113.1").await.unwrap().status(), 429);
    let other = post("203.0.113.2").await.unwrap();
    assert_eq!(other.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(remaining_of(&other, "token-ip").unwrap().0, 2);
    // An IPv6 client's whole /64 is one visitor.
    let v6 = |ip: &'static str| post(ip);
    for _ in 0..3 {
        assert_ne!(v6("2001:db8:1:2::1").await.unwrap().status(), 429);
    }
    assert_eq!(v6("2001:db8:1:2:ffff::9").await.unwrap().status(), 429);
    assert_ne!(v6("2001:db8:1:3::1").await.unwrap().status(), 429);
}

#[tokio::test]
async fn the_token_endpoint_is_limited_per_client() {
    let app = TestApp::start_with(|c| {
        behind_proxy(c);
        c.rate_limits.token_client = Limit::per(3, WINDOW);
    })
    .await;
    let one = app.confidential_client().await;
    let two = app.confidential_client().await;
    align(&app);
    let http = http();
    let post = |ip: &'static str, client: &str, secret: &str| {
        http.post(app.url("/token"))
            .header("x-forwarded-for", ip)
            .basic_auth(client, Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    // Wrong secrets count too: the limit is what stops guessing.
    exercise(&app, "token-client", 3, || async {
        post("203.0.113.1", one.id(), "wrong").await.unwrap()
    })
    .await;
    align(&app);
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        assert_ne!(post(ip, one.id(), "wrong").await.unwrap().status(), 429);
    }
    // One client from another address: still the same client's allowance.
    let refused = post("203.0.113.4", one.id(), one.secret()).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    // Another client from the same address is not refused.
    let resp = post("203.0.113.1", two.id(), two.secret()).await.unwrap();
    assert_ne!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(remaining_of(&resp, "token-client").unwrap().0, 2);
    // `client_id` in the form counts as the same client as the Basic user.
    let resp = http
        .post(app.url("/token"))
        .header("x-forwarded-for", "203.0.113.5")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", one.id()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    // The first refusal of each window is audited, with the policy; the rest are not, one
    // by one, nor as refused token requests.
    let query = |event: &str| AuditQuery {
        event: Some(event.into()),
        limit: 100,
        ..Default::default()
    };
    for _ in 0..300 {
        if app
            .store
            .query_audit(&query("rate_limit.reached"))
            .await
            .unwrap()
            .len()
            >= 2
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let reached = app
        .store
        .query_audit(&query("rate_limit.reached"))
        .await
        .unwrap();
    assert_eq!(reached.len(), 2, "{reached:?}");
    assert!(
        reached
            .iter()
            .all(|e| e.detail["policy"] == "token-client" && e.ip.is_some())
    );
    let refused = app
        .store
        .query_audit(&query("token.refused"))
        .await
        .unwrap();
    assert!(
        refused.iter().all(|e| e.detail["error"] != "rate_limited"),
        "{refused:?}"
    );
}

#[tokio::test]
async fn device_authorization_is_limited_per_address_and_per_client() {
    let app = TestApp::start_with(|c| {
        behind_proxy(c);
        c.rate_limits.device_authorization_ip = Limit::per(3, WINDOW);
        c.rate_limits.device_authorization_client = Limit::per(4, WINDOW);
    })
    .await;
    let tv = app
        .client(ClientSpec {
            device_flow: true,
            ..Default::default()
        })
        .await;
    align(&app);
    let http = http();
    let post = |ip: &'static str| {
        http.post(app.url("/device_authorization"))
            .header("x-forwarded-for", ip)
            .basic_auth(tv.id(), Some(tv.secret()))
            .form(&[("scope", "openid")])
            .send()
    };
    exercise(&app, "device-authorization-ip", 3, || async {
        let resp = post("203.0.113.1").await.unwrap();
        if resp.status() != 429 {
            assert_eq!(resp.status(), StatusCode::OK);
        }
        resp
    })
    .await;
    // The client's own allowance (4) spans addresses.
    align(&app);
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3", "203.0.113.4"] {
        assert_eq!(post(ip).await.unwrap().status(), StatusCode::OK, "{ip}");
    }
    let resp = post("203.0.113.5").await.unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        remaining_of(&resp, "device-authorization-client")
            .unwrap()
            .0,
        0
    );
    assert_eq!(remaining_of(&resp, "device-authorization-ip").unwrap().0, 2);
}

#[tokio::test]
async fn the_device_page_is_limited_per_address() {
    let app = TestApp::start_with(|c| {
        behind_proxy(c);
        c.rate_limits.device_ip = Limit::per(3, WINDOW);
    })
    .await;
    align(&app);
    let http = http();
    exercise(&app, "device-ip", 3, || async {
        let resp = http
            .post(app.url("/device"))
            .header("x-forwarded-for", "203.0.113.1")
            .form(&[("user_code", "BCDF-GHJK")])
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            assert!(
                resp.headers()["content-type"]
                    .to_str()
                    .unwrap()
                    .contains("html")
            );
        }
        resp
    })
    .await;
    // Showing the page is not limited.
    for _ in 0..5 {
        let resp = http.get(app.url("/device")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "ratelimit"), None);
    }
}

/// Logs `user` in on `browser` (a session cookie), through an ordinary authorization.
async fn sign_in(app: &TestApp, browser: &Browser, user: &TgUser) {
    let client = app
        .client(ClientSpec {
            skip_consent: true,
            ..Default::default()
        })
        .await;
    let url = app.url(&format!(
        "/authorize?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s&nonce=n",
        client.id(),
        url::form_urlencoded::byte_serialize(client.redirect_uri.as_bytes()).collect::<String>()
    ));
    let done = authorize_through(app, browser, &url, user).await;
    assert!(done.starts_with(&client.redirect_uri), "{done}");
}

#[tokio::test]
async fn wrong_user_codes_are_limited_per_user_not_per_network() {
    let app = TestApp::start_with(|c| {
        behind_proxy(c);
        c.rate_limits.device_miss = Limit::per(3, WINDOW);
    })
    .await;
    let (guesser, neighbour) = (Browser::new(), Browser::new());
    sign_in(&app, &guesser, &TgUser::new(71)).await;
    sign_in(&app, &neighbour, &TgUser::new(72)).await;
    align(&app);
    let enter = |browser: &Browser| {
        browser
            .http
            .post(app.url("/device"))
            // Both behind one office NAT.
            .header("x-forwarded-for", "203.0.113.1")
            .form(&[("user_code", "BCDF-GHJK")])
            .send()
    };
    exercise(&app, "device-miss", 3, || async {
        let resp = enter(&guesser).await.unwrap();
        if resp.status() != 429 {
            assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        }
        resp
    })
    .await;
    align(&app);
    for _ in 0..3 {
        assert_eq!(
            enter(&guesser).await.unwrap().status(),
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(enter(&guesser).await.unwrap().status(), 429);
    // The other user in the same network still gets to try.
    let resp = enter(&neighbour).await.unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(remaining_of(&resp, "device-miss").unwrap().0, 2);
    // A browser without a session is counted by its address, apart from both users.
    let anonymous = http()
        .post(app.url("/device"))
        .header("x-forwarded-for", "203.0.113.1")
        .form(&[("user_code", "BCDF-GHJK")])
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_login_callbacks_share_one_limit_per_address() {
    let app = TestApp::start_with(|c| {
        behind_proxy(c);
        c.rate_limits.login_ip = Limit::per(3, WINDOW);
    })
    .await;
    align(&app);
    let http = http();
    let n = std::sync::atomic::AtomicUsize::new(0);
    // The widget callback (GET and POST) and the bot login's completion, in turn.
    exercise(&app, "login-ip", 3, || {
        let i = n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let request = match i % 3 {
            0 => http.get(app.url("/login/telegram/tgp_nothing?id=1")),
            1 => http
                .post(app.url("/login/telegram/tgp_nothing"))
                .form(&[("id", "1")]),
            _ => http
                .post(app.url("/login/bot/complete"))
                .form(&[("id", "x")]),
        }
        .header("x-forwarded-for", "203.0.113.1");
        async move {
            let resp = request.send().await.unwrap();
            if resp.status() == 429 {
                let page = resp.headers()["content-type"].to_str().unwrap().to_string();
                assert!(page.contains("html"), "{page}");
            }
            resp
        }
    })
    .await;
    // The login page itself is not limited.
    let resp = http.get(app.url("/login?req=x")).send().await.unwrap();
    assert_eq!(header(&resp, "ratelimit"), None);
}

#[tokio::test]
async fn registration_is_limited_per_address_and_per_client() {
    let app = TestApp::start_with(|c| {
        behind_proxy(c);
        c.registration.enabled = true;
        c.registration.initial_access_token = Secret::new("i".repeat(40));
        c.rate_limits.register_ip = Limit::per(3, WINDOW);
        c.rate_limits.register_client = Limit::per(2, WINDOW);
    })
    .await;
    align(&app);
    let http = http();
    exercise(&app, "register-ip", 3, || async {
        http.post(app.url("/register"))
            .header("x-forwarded-for", "203.0.113.1")
            .bearer_auth("wrong")
            .json(&json!({"redirect_uris": ["https://a.example/cb"]}))
            .send()
            .await
            .unwrap()
    })
    .await;
    // The management endpoint counts per client id as well, whatever the address.
    align(&app);
    for ip in ["203.0.113.2", "203.0.113.3"] {
        let resp = http
            .get(app.url("/register/some-client"))
            .header("x-forwarded-for", ip)
            .bearer_auth("wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{ip}");
    }
    let resp = http
        .get(app.url("/register/some-client"))
        .header("x-forwarded-for", "203.0.113.4")
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(remaining_of(&resp, "register-client").unwrap().0, 0);
    let resp = http
        .get(app.url("/register/another-client"))
        .header("x-forwarded-for", "203.0.113.4")
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn the_webhook_limits_only_calls_without_the_secret() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |c| {
        behind_proxy(c);
        c.rate_limits.webhook_ip = Limit::per(3, WINDOW);
    })
    .await;
    align(&app);
    let http = http();
    let call = |secret: Option<&'static str>| {
        let mut request = http
            .post(app.url("/telegram/webhook"))
            .header("x-forwarded-for", "149.154.167.1")
            .json(&json!({}));
        if let Some(secret) = secret {
            request = request.header("x-telegram-bot-api-secret-token", secret);
        }
        request.send()
    };
    let n = std::sync::atomic::AtomicUsize::new(0);
    exercise(&app, "webhook-ip", 3, || {
        let wrong = n
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            .is_multiple_of(2);
        let secret = if wrong { Some("wrong-secret") } else { None };
        async move {
            let resp = call(secret).await.unwrap();
            if resp.status() != 429 {
                assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
            }
            resp
        }
    })
    .await;
    align(&app);
    for _ in 0..4 {
        call(Some("wrong-secret")).await.unwrap();
    }
    assert_eq!(call(None).await.unwrap().status(), 429);
    // Telegram's own deliveries, from the same address, are never counted nor refused.
    for _ in 0..10 {
        let resp = call(Some(WEBHOOK_SECRET)).await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(header(&resp, "ratelimit"), None);
    }
}

#[tokio::test]
async fn limits_off_count_nothing() {
    let app = TestApp::start_with(|c| {
        c.rate_limits.enabled = false;
        c.rate_limits.token_ip = Limit::per(1, WINDOW);
    })
    .await;
    let http = http();
    for _ in 0..3 {
        let resp = http
            .post(app.url("/token"))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_ne!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(header(&resp, "ratelimit"), None);
        assert_eq!(header(&resp, "x-ratelimit-limit"), None);
    }
}

#[tokio::test]
async fn the_defaults_are_advertised() {
    // The harness raises the per-address limits; these are the shipped defaults.
    let app = TestApp::start_with(|c| c.rate_limits = Default::default()).await;
    let resp = http()
        .post(app.url("/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", "x")])
        .send()
        .await
        .unwrap();
    let policy = header(&resp, "ratelimit-policy").unwrap();
    assert_eq!(
        policy,
        "\"token-ip\";q=600;w=60, \"token-client\";q=1200;w=60"
    );
}

#[tokio::test]
async fn on_postgresql_two_nodes_share_one_limit() {
    let Some(url) = crate::store::postgres_url() else {
        return;
    };
    let adjust = |c: &mut Config| {
        behind_proxy(c);
        c.database_url = url.clone();
        c.rate_limits.token_ip = Limit::per(4, WINDOW);
    };
    let a = TestApp::start_with(adjust).await;
    let b = TestApp::start_with(adjust).await;
    // Both nodes' clocks at the start of the same window.
    align(&a);
    b.clock.advance(a.now() - b.now());
    assert_eq!(a.now().div_euclid(WINDOW), b.now().div_euclid(WINDOW));
    let ip = fresh_ip();
    let http = http();
    let post = |node: &TestApp| {
        http.post(node.url("/token"))
            .header("x-forwarded-for", ip.clone())
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    let mut left = Vec::new();
    for node in [&a, &b, &a, &b] {
        let resp = post(node).await.unwrap();
        assert_ne!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        left.push(remaining_of(&resp, "token-ip").unwrap().0);
    }
    assert_eq!(left, vec![3, 2, 1, 0], "one count across both nodes");
    for node in [&a, &b] {
        let resp = post(node).await.unwrap();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(header(&resp, "retry-after").is_some());
    }
    // The counter is one row under the SHA-256 of the policy and the address: the address
    // itself is not stored.
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let key = sha256(format!("token-ip\n{ip}").as_bytes());
    let hits: i32 = sqlx::query_scalar("SELECT hits FROM rate_counters WHERE key_hash = $1")
        .bind(&key)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(hits, 6);
    a.stop().await;
    b.stop().await;
}
