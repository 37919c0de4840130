//! Backchannel authentication (CIBA Core 1.0) with the bot chat as the authentication device,
//! through the real HTTP surface: `/bc-authorize`, the question in the user's chat, the
//! answer pressed there, and the token endpoint's answers to the polling (or pinged) client.

use std::sync::{Arc, Mutex};

use reqwest::StatusCode;
use serde_json::{Value, json};
use telegram_oidc::admin::{self, NewClient};
use telegram_oidc::config::UpdateMode;
use telegram_oidc::store::{
    AuditQuery, CibaDeliveryMode, CibaSettings, ClientKind, Store, UserRecord,
};
use tokio::sync::Notify;

use crate::fake_bot_api::{
    Call, FakeBotApi, WEBHOOK_SECRET, app_with_bot, button, buttons, deny_button, jwt_claims,
    not_me_button,
};
use crate::harness::{TestApp, TestClient, TgUser};

const GRANT: &str = "urn:openid:params:grant-type:ciba";

async fn ciba_client_with(
    app: &TestApp,
    ciba: Option<CibaSettings>,
    tweak: impl FnOnce(&mut NewClient),
) -> TestClient {
    let mut new = NewClient {
        name: "Call Centre".into(),
        kind: ClientKind::Confidential,
        redirect_uris: Vec::new(),
        scopes: vec![
            "openid".into(),
            "profile".into(),
            "telegram".into(),
            "offline_access".into(),
        ],
        ciba,
        ..Default::default()
    };
    if new.ciba.is_none() {
        new.redirect_uris = vec!["https://app.example.test/callback".into()];
    }
    tweak(&mut new);
    let (record, secret) = admin::add_client(app.store.as_ref(), new, app.now())
        .await
        .unwrap();
    TestClient {
        record,
        secret,
        redirect_uri: String::new(),
    }
}

async fn poll_client(app: &TestApp) -> TestClient {
    ciba_client_with(
        app,
        Some(CibaSettings {
            delivery_mode: CibaDeliveryMode::Poll,
            client_notification_endpoint: None,
        }),
        |_| {},
    )
    .await
}

/// A user the provider has seen (and who started the bot, unless the fake blocks them).
async fn known_user(app: &TestApp, id: i64, username: &str) -> TgUser {
    let now = app.now();
    app.store
        .upsert_user(&UserRecord {
            telegram_id: id,
            first_name: "Ada".into(),
            last_name: None,
            username: Some(username.into()),
            photo_url: None,
            language_code: Some("en".into()),
            is_premium: false,
            phone_number: None,
            created_at: now,
            updated_at: now,
            groups: None,
        })
        .await
        .unwrap();
    TgUser {
        id,
        first_name: "Ada".into(),
        username: Some(username.into()),
    }
}

/// `POST /bc-authorize` with the client's secret in the form.
async fn bc_authorize(
    app: &TestApp,
    client: &TestClient,
    params: &[(&str, &str)],
) -> (StatusCode, Value) {
    let mut form = vec![
        ("client_id", client.id()),
        ("client_secret", client.secret()),
    ];
    form.extend_from_slice(params);
    let resp = reqwest::Client::new()
        .post(app.url("/bc-authorize"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    if status == StatusCode::OK {
        assert_eq!(resp.headers()["cache-control"], "no-store");
    }
    (status, resp.json().await.unwrap())
}

/// `POST /bc-authorize` with a raw body, for input no form encoder would write.
async fn bc_authorize_raw(app: &TestApp, client: &TestClient, rest: &str) -> (StatusCode, Value) {
    let body = format!(
        "client_id={}&client_secret={}&{rest}",
        client.id(),
        client.secret()
    );
    let resp = reqwest::Client::new()
        .post(app.url("/bc-authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn poll(app: &TestApp, client: &TestClient, auth_req_id: &str) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(&[("grant_type", GRANT), ("auth_req_id", auth_req_id)])
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn poll_error(app: &TestApp, client: &TestClient, auth_req_id: &str) -> String {
    let (status, body) = poll(app, client, auth_req_id).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    body["error"].as_str().unwrap().to_owned()
}

/// Starts a request for `user` and returns its `auth_req_id` and the question the bot sent.
async fn ask(
    app: &TestApp,
    fake: &FakeBotApi,
    client: &TestClient,
    params: &[(&str, &str)],
) -> (String, Call) {
    let before = fake.calls("sendMessage").len();
    let (status, body) = bc_authorize(app, client, params).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let id = body["auth_req_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("tgbc_"), "{id}");
    (id, question_since(fake, before).await)
}

/// The first question (a message with an Approve button) sent after the first `before`
/// messages; a login alert of an earlier approval, sent in the background, may come between.
async fn question_since(fake: &FakeBotApi, before: usize) -> Call {
    for count in before + 1..before + 5 {
        let sent = fake.wait_for("sendMessage", count).await;
        if let Some(question) = sent[before..]
            .iter()
            .find(|c| buttons(c).iter().any(|d| d.starts_with("a:")))
        {
            return question.clone();
        }
    }
    panic!("no question was sent");
}

async fn press(app: &TestApp, fake: &FakeBotApi, user: &TgUser, data: &str) -> String {
    let edits = fake.calls("editMessageText").len();
    let resp = fake
        .deliver(
            app,
            &fake.update(button(user, user.id, 777, data)),
            Some(WEBHOOK_SECRET),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    match fake.calls("editMessageText").get(edits) {
        Some(edit) => edit.body["text"].as_str().unwrap().to_owned(),
        None => String::new(),
    }
}

fn approve_button(call: &Call) -> String {
    buttons(call)
        .into_iter()
        .find(|d| d.starts_with("a:"))
        .expect("an Approve button")
}

async fn audit_count(store: &dyn Store, event: &str, want: usize) -> usize {
    let query = AuditQuery {
        event: Some(event.into()),
        limit: 100,
        ..Default::default()
    };
    for _ in 0..300 {
        let found = store.query_audit(&query).await.unwrap().len();
        if found >= want {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    store.query_audit(&query).await.unwrap().len()
}

/// A server whose bot talks to `fake`, on SQLite or, with `database_url`, on PostgreSQL.
async fn app_on(fake: &FakeBotApi, database_url: Option<String>) -> TestApp {
    app_with_bot(fake, UpdateMode::Webhook, move |c| {
        if let Some(url) = database_url {
            c.database_url = url;
        }
    })
    .await
}

/// A fresh PostgreSQL database of this module's own, or `None` (skipped) without one.
async fn postgres(name: &str) -> Option<String> {
    let url = crate::store::postgres_url()?;
    Some(crate::store::fresh_postgres_database(&url, name).await)
}

/// Neither the SQLite file nor its write-ahead log holds `secret` in plain text.
fn not_stored(app: &TestApp, secret: &str) {
    let Some(path) = app.config.database_url.strip_prefix("sqlite://") else {
        return;
    };
    assert!(std::fs::metadata(path).is_ok_and(|m| m.len() > 0), "{path}");
    for file in [path.to_owned(), format!("{path}-wal")] {
        let bytes = std::fs::read(&file).unwrap_or_default();
        assert!(
            !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
            "{secret} is stored in plain text in {file}"
        );
    }
}

#[tokio::test]
async fn poll_mode_from_request_to_tokens() {
    let fake = FakeBotApi::start().await;
    poll_mode(app_on(&fake, None).await, &fake).await;
}

#[tokio::test]
async fn poll_mode_on_postgres() {
    let Some(url) = postgres("ciba_poll").await else {
        return;
    };
    let fake = FakeBotApi::start().await;
    poll_mode(app_on(&fake, Some(url)).await, &fake).await;
}

async fn poll_mode(app: TestApp, fake: &FakeBotApi) {
    let client = poll_client(&app).await;
    let user = known_user(&app, 8_100_001, "ada_ciba").await;

    // Discovery names the endpoint, the modes and the grant.
    let doc: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        doc["backchannel_authentication_endpoint"],
        app.url("/bc-authorize")
    );
    assert_eq!(
        doc["backchannel_token_delivery_modes_supported"],
        json!(["poll", "ping"])
    );
    assert_eq!(doc["backchannel_user_code_parameter_supported"], false);
    assert!(
        doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(GRANT))
    );

    // The username in another case and with `@` names the user.
    let (status, body) = bc_authorize(
        &app,
        &client,
        &[
            ("scope", "openid profile"),
            ("login_hint", "@ADA_Ciba"),
            ("binding_message", "Заказ 4711 ✓"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 300);
    assert_eq!(body["interval"], 5);
    let id = body["auth_req_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("tgbc_") && id.len() >= 45, "{id}");
    let asked = fake.wait_for("sendMessage", 1).await[0].clone();
    assert_eq!(asked.body["chat_id"], user.id);
    let text = asked.body["text"].as_str().unwrap();
    assert!(text.contains("Call Centre"), "{text}");
    assert!(text.contains("Binding message: Заказ 4711 ✓"), "{text}");
    assert!(text.contains("Ada (@ada_ciba)"), "{text}");
    // No number to match (there is no screen of ours): Approve, Deny, This wasn't me.
    let data = buttons(&asked);
    assert_eq!(data.len(), 3, "{data:?}");
    assert!(data[0].starts_with("a:") && data[1].starts_with("d:") && data[2].starts_with("x:"));

    assert_eq!(
        poll_error(&app, &client, &id).await,
        "authorization_pending"
    );
    // Again at once: too fast.
    assert_eq!(poll_error(&app, &client, &id).await, "slow_down");
    // Another client cannot use it.
    let other = poll_client(&app).await;
    assert_eq!(poll_error(&app, &other, &id).await, "invalid_grant");

    let edited = press(&app, fake, &user, &approve_button(&asked)).await;
    assert!(edited.starts_with("Approved"), "{edited}");
    // The interval grew to 10 seconds with the slow_down.
    app.clock.advance(11);
    let (status, tokens) = poll(&app, &client, &id).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["access_token"].is_string());
    assert_eq!(tokens["scope"], "openid profile");
    assert!(
        tokens.get("refresh_token").is_none(),
        "no offline_access asked"
    );
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["aud"], client.id());
    assert_eq!(claims["amr"], json!(["telegram_bot"]));
    assert!(claims["auth_time"].as_i64().unwrap() > 0);
    assert_eq!(claims["preferred_username"], "ada_ciba");

    // Once only.
    app.clock.advance(11);
    assert_eq!(poll_error(&app, &client, &id).await, "invalid_grant");
    not_stored(&app, &id);
    assert!(audit_count(app.store.as_ref(), "ciba.requested", 1).await >= 1);
    assert!(audit_count(app.store.as_ref(), "ciba.approved", 1).await >= 1);

    // The ID token names the same user again, as id_token_hint; offline_access brings a
    // refresh token.
    let (again, asked) = ask(
        &app,
        fake,
        &client,
        &[
            ("scope", "openid offline_access"),
            ("id_token_hint", tokens["id_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(asked.body["chat_id"], user.id);
    assert!(
        !asked.body["text"]
            .as_str()
            .unwrap()
            .contains("Binding message")
    );
    press(&app, fake, &user, &approve_button(&asked)).await;
    let (status, tokens) = poll(&app, &client, &again).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert!(tokens["refresh_token"].is_string(), "{tokens}");
    // An ID token of another client is no hint for this one.
    let (status, body) = bc_authorize(
        &app,
        &other,
        &[
            ("scope", "openid"),
            ("id_token_hint", tokens["id_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request"))
    );
    app.stop().await;
}

/// What the notification endpoint received: the `Authorization` header and the JSON body.
type Seen = Arc<Mutex<Vec<(Option<String>, Value)>>>;

/// A notification endpoint on loopback that records what it is sent.
struct Listener {
    url: String,
    seen: Seen,
    arrived: Arc<Notify>,
}

async fn listener() -> Listener {
    use axum::routing::post;
    let seen: Seen = Arc::default();
    let arrived = Arc::new(Notify::new());
    let (s, a) = (seen.clone(), arrived.clone());
    let router = axum::Router::new().route(
        "/ciba/notify",
        post(
            move |headers: axum::http::HeaderMap, body: axum::Json<Value>| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                s.lock().unwrap().push((auth, body.0));
                a.notify_waiters();
                StatusCode::NO_CONTENT
            },
        ),
    );
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/ciba/notify", socket.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(socket, router).await.unwrap();
    });
    Listener { url, seen, arrived }
}

impl Listener {
    async fn wait(&self, count: usize) -> Vec<(Option<String>, Value)> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
        loop {
            let notified = self.arrived.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let seen = self.seen.lock().unwrap().clone();
            if seen.len() >= count {
                return seen;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!("{} notifications arrived, expected {count}", seen.len());
            }
        }
    }
}

#[tokio::test]
async fn ping_mode_tells_the_client_then_it_fetches_the_tokens() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let endpoint = listener().await;
    let client = ciba_client_with(
        &app,
        Some(CibaSettings {
            delivery_mode: CibaDeliveryMode::Ping,
            client_notification_endpoint: Some(endpoint.url.clone()),
        }),
        |_| {},
    )
    .await;
    let user = known_user(&app, 8_100_002, "bea_ciba").await;
    let hint = user.id.to_string();

    // Ping mode needs the client's token for its endpoint.
    let (status, body) =
        bc_authorize(&app, &client, &[("scope", "openid"), ("login_hint", &hint)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_request")),
        "{body}"
    );
    let (status, body) = bc_authorize(
        &app,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", &hint),
            ("client_notification_token", &"t".repeat(1025)),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let token = "8d67dc78-7faa-4d41-aabd-67707b374255";
    let (id, asked) = ask(
        &app,
        &fake,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", &hint),
            ("client_notification_token", token),
        ],
    )
    .await;
    assert!(endpoint.seen.lock().unwrap().is_empty());
    // Only its hash and the seed it was derived from are kept.
    not_stored(&app, &id);
    press(&app, &fake, &user, &approve_button(&asked)).await;
    let seen = endpoint.wait(1).await;
    assert_eq!(
        seen[0].0.as_deref(),
        Some(format!("Bearer {token}").as_str())
    );
    assert_eq!(seen[0].1, json!({ "auth_req_id": id }));
    let (status, tokens) = poll(&app, &client, &id).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    assert_eq!(
        jwt_claims(tokens["id_token"].as_str().unwrap())["amr"],
        json!(["telegram_bot"])
    );

    // A denial is pinged too.
    let (denied, asked) = ask(
        &app,
        &fake,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", &hint),
            ("client_notification_token", token),
        ],
    )
    .await;
    press(&app, &fake, &user, &deny_button(&asked)).await;
    let seen = endpoint.wait(2).await;
    assert_eq!(seen[1].1, json!({ "auth_req_id": denied }));
    assert_eq!(poll_error(&app, &client, &denied).await, "access_denied");
    app.stop().await;
}

#[tokio::test]
async fn deny_and_not_me_give_access_denied() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = poll_client(&app).await;
    let user = known_user(&app, 8_100_003, "cid_ciba").await;
    let hint = user.id.to_string();
    let params = [("scope", "openid"), ("login_hint", hint.as_str())];

    let (id, asked) = ask(&app, &fake, &client, &params).await;
    let edited = press(&app, &fake, &user, &deny_button(&asked)).await;
    assert!(edited.starts_with("Denied"), "{edited}");
    assert_eq!(poll_error(&app, &client, &id).await, "access_denied");
    // A second press changes nothing.
    press(&app, &fake, &user, &approve_button(&asked)).await;
    app.clock.advance(6);
    assert_eq!(poll_error(&app, &client, &id).await, "access_denied");

    let (id, asked) = ask(&app, &fake, &client, &params).await;
    let edited = press(&app, &fake, &user, &not_me_button(&asked)).await;
    assert!(
        edited.starts_with("Stopped: Call Centre was not told that it is you."),
        "{edited}"
    );
    assert_eq!(poll_error(&app, &client, &id).await, "access_denied");
    let stored = app
        .store
        .get_bot_login(approve_button(&asked).strip_prefix("a:").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.answer.as_deref(), Some("not_me"));

    // Someone else's press does nothing.
    let (id, asked) = ask(&app, &fake, &client, &params).await;
    let stranger = TgUser::new(8_100_999);
    press(&app, &fake, &stranger, &approve_button(&asked)).await;
    assert_eq!(
        poll_error(&app, &client, &id).await,
        "authorization_pending"
    );
    assert!(audit_count(app.store.as_ref(), "ciba.denied", 2).await >= 2);
    app.stop().await;
}

#[tokio::test]
async fn an_unanswered_request_expires() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = poll_client(&app).await;
    let user = known_user(&app, 8_100_004, "dan_ciba").await;
    let hint = user.id.to_string();
    // Longer than the maximum is cut to it.
    let (status, body) = bc_authorize(
        &app,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", &hint),
            ("requested_expiry", "100000"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 600);

    let (id, asked) = ask(
        &app,
        &fake,
        &client,
        &[
            ("scope", "openid"),
            ("login_hint", &hint),
            ("requested_expiry", "60"),
        ],
    )
    .await;
    assert_eq!(
        poll_error(&app, &client, &id).await,
        "authorization_pending"
    );
    app.clock.advance(61);
    assert_eq!(poll_error(&app, &client, &id).await, "expired_token");
    // Too late to approve.
    press(&app, &fake, &user, &approve_button(&asked)).await;
    app.clock.advance(6);
    assert_eq!(poll_error(&app, &client, &id).await, "expired_token");
    app.stop().await;
}

#[tokio::test]
async fn unknown_and_unreachable_users_look_the_same() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = poll_client(&app).await;
    // Known to the provider, but the bot may not write to them (never started it): 403.
    let silent = known_user(&app, 8_100_005, "eve_ciba").await;
    fake.block(silent.id);

    let mut bodies = Vec::new();
    for hint in [
        "8100404",
        "@nobody_here",
        "eve_ciba",
        "8100005",
        "-5",
        &"9".repeat(5000),
    ] {
        let (status, body) =
            bc_authorize(&app, &client, &[("scope", "openid"), ("login_hint", hint)]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{hint}: {body}");
        assert_eq!(body["error"], "unknown_user_id", "{hint}: {body}");
        bodies.push(body);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "{bodies:?}");
    // The bot did try the known user, and was refused.
    let tried = fake.calls("sendMessage");
    assert!(
        tried.iter().any(|c| c.body["chat_id"] == silent.id),
        "{tried:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_client_not_registered_for_ciba_is_unauthorized() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let plain = ciba_client_with(&app, None, |_| {}).await;
    let user = known_user(&app, 8_100_006, "fay_ciba").await;
    let hint = user.id.to_string();
    let (status, body) =
        bc_authorize(&app, &plain, &[("scope", "openid"), ("login_hint", &hint)]).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("unauthorized_client")),
        "{body}"
    );
    assert!(fake.calls("sendMessage").is_empty());
    // Nor may it poll a request of a client that is.
    let client = poll_client(&app).await;
    let (id, _) = ask(
        &app,
        &fake,
        &client,
        &[("scope", "openid"), ("login_hint", &hint)],
    )
    .await;
    assert_eq!(poll_error(&app, &plain, &id).await, "unauthorized_client");
    // Without client authentication, nothing.
    let resp = reqwest::Client::new()
        .post(app.url("/bc-authorize"))
        .form(&[
            ("client_id", client.id()),
            ("scope", "openid"),
            ("login_hint", &hint),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_client");
    app.stop().await;
}

#[tokio::test]
async fn the_access_policy_is_asked_and_the_chat_is_told() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = ciba_client_with(
        &app,
        Some(CibaSettings {
            delivery_mode: CibaDeliveryMode::Poll,
            client_notification_endpoint: None,
        }),
        |n| n.access_policy = Some(telegram_oidc::access::Rule::Ids(vec![1])),
    )
    .await;
    let user = known_user(&app, 8_100_007, "gus_ciba").await;
    let hint = user.id.to_string();
    let (id, asked) = ask(
        &app,
        &fake,
        &client,
        &[("scope", "openid"), ("login_hint", &hint)],
    )
    .await;
    let edited = press(&app, &fake, &user, &approve_button(&asked)).await;
    assert!(
        edited.contains("has not let this Telegram account in"),
        "{edited}"
    );
    assert_eq!(poll_error(&app, &client, &id).await, "access_denied");
    assert!(audit_count(app.store.as_ref(), "policy.refused", 1).await >= 1);
    app.stop().await;
}

#[tokio::test]
async fn malformed_requests_get_the_right_errors() {
    let fake = FakeBotApi::start().await;
    malformed(app_on(&fake, None).await, &fake).await;
}

#[tokio::test]
async fn malformed_requests_on_postgres() {
    let Some(url) = postgres("ciba_malformed").await else {
        return;
    };
    let fake = FakeBotApi::start().await;
    malformed(app_on(&fake, Some(url)).await, &fake).await;
}

async fn malformed(app: TestApp, fake: &FakeBotApi) {
    let client = poll_client(&app).await;
    let user = known_user(&app, 8_100_008, "hal_ciba").await;
    let hint = user.id.to_string();
    let h = hint.as_str();
    let long = "x".repeat(65);
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        ("no scope", vec![("login_hint", h)], "invalid_request"),
        (
            "no openid",
            vec![("scope", "profile"), ("login_hint", h)],
            "invalid_request",
        ),
        ("no hint", vec![("scope", "openid")], "invalid_request"),
        (
            "two hints",
            vec![
                ("scope", "openid"),
                ("login_hint", h),
                ("id_token_hint", "a.b.c"),
            ],
            "invalid_request",
        ),
        (
            "login_hint_token",
            vec![("scope", "openid"), ("login_hint_token", "x")],
            "invalid_request",
        ),
        (
            "bad id_token_hint",
            vec![("scope", "openid"), ("id_token_hint", "a.b.c")],
            "invalid_request",
        ),
        (
            "long binding message",
            vec![
                ("scope", "openid"),
                ("login_hint", h),
                ("binding_message", &long),
            ],
            "invalid_binding_message",
        ),
        (
            "binding message with a line break",
            vec![
                ("scope", "openid"),
                ("login_hint", h),
                ("binding_message", "a\nb"),
            ],
            "invalid_binding_message",
        ),
        (
            "requested_expiry not a number",
            vec![
                ("scope", "openid"),
                ("login_hint", h),
                ("requested_expiry", "soon"),
            ],
            "invalid_request",
        ),
        (
            "requested_expiry zero",
            vec![
                ("scope", "openid"),
                ("login_hint", h),
                ("requested_expiry", "0"),
            ],
            "invalid_request",
        ),
        (
            "user_code",
            vec![
                ("scope", "openid"),
                ("login_hint", h),
                ("user_code", "1234"),
            ],
            "invalid_request",
        ),
        (
            "signed request",
            vec![("scope", "openid"), ("request", "e30.e30.")],
            "invalid_request",
        ),
    ];
    for (case, params, error) in cases {
        let (status, body) = bc_authorize(&app, &client, &params).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert_eq!(body["error"], error, "{case}: {body}");
    }
    for (case, rest) in [
        (
            "NUL in login_hint",
            format!("scope=openid&login_hint={h}%00"),
        ),
        (
            "control in login_hint",
            format!("scope=openid&login_hint=%01{h}"),
        ),
        (
            "repeated",
            format!("scope=openid&login_hint={h}&login_hint={h}"),
        ),
        ("broken escape", "scope=openid&login_hint=%zz".to_owned()),
    ] {
        let (status, body) = bc_authorize_raw(&app, &client, &rest).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert_eq!(body["error"], "invalid_request", "{case}: {body}");
    }
    // None of them reached the user.
    assert!(fake.calls("sendMessage").is_empty());
    // The token endpoint: unknown, malformed and missing ids.
    for id in [
        "tgbc_unknown",
        "nonsense",
        &format!("tgbc_{}", "a".repeat(500)),
    ] {
        assert_eq!(poll_error(&app, &client, id).await, "invalid_grant", "{id}");
    }
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(&[("grant_type", GRANT)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_request");
    app.stop().await;
}

#[tokio::test]
async fn without_a_bot_there_is_no_ciba() {
    let app = TestApp::start().await;
    let doc: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc.get("backchannel_authentication_endpoint").is_none());
    assert!(
        !doc["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!(GRANT))
    );
    let resp = reqwest::Client::new()
        .post(app.url("/bc-authorize"))
        .form(&[("scope", "openid")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}

#[test]
fn a_ciba_registration_must_be_whole() {
    let ciba = |mode, endpoint: Option<&str>| NewClient {
        name: "CRM".into(),
        ciba: Some(CibaSettings {
            delivery_mode: mode,
            client_notification_endpoint: endpoint.map(str::to_owned),
        }),
        ..Default::default()
    };
    assert!(admin::build_client(ciba(CibaDeliveryMode::Poll, None), 0).is_ok());
    assert!(
        admin::build_client(
            ciba(CibaDeliveryMode::Ping, Some("https://crm.example/ciba")),
            0
        )
        .is_ok()
    );
    for (case, new) in [
        ("ping without endpoint", ciba(CibaDeliveryMode::Ping, None)),
        (
            "poll with endpoint",
            ciba(CibaDeliveryMode::Poll, Some("https://crm.example/ciba")),
        ),
        (
            "plain http",
            ciba(CibaDeliveryMode::Ping, Some("http://crm.example/ciba")),
        ),
        (
            "public",
            NewClient {
                kind: ClientKind::Public,
                ..ciba(CibaDeliveryMode::Poll, None)
            },
        ),
    ] {
        assert!(admin::build_client(new, 0).is_err(), "{case}");
    }
}

#[tokio::test]
async fn dynamic_registration_of_ciba_clients() {
    const INITIAL: &str = "initial-access-token-0123456789abcdef-XYZ";
    let app = TestApp::start_with(|c| {
        c.registration.enabled = true;
        c.registration.initial_access_token = telegram_oidc::config::Secret::new(INITIAL);
    })
    .await;
    let register = |metadata: Value| {
        let url = app.url("/register");
        async move {
            let resp = reqwest::Client::new()
                .post(url)
                .bearer_auth(INITIAL)
                .json(&metadata)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            (status, resp.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = register(json!({
        "client_name": "CRM",
        "grant_types": [GRANT],
        "backchannel_token_delivery_mode": "ping",
        "backchannel_client_notification_endpoint": "https://crm.example.test/ciba",
    }))
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["grant_types"], json!([GRANT]));
    assert_eq!(body["backchannel_token_delivery_mode"], "ping");
    assert_eq!(
        body["backchannel_client_notification_endpoint"],
        "https://crm.example.test/ciba"
    );
    let stored = app
        .store
        .get_client(body["client_id"].as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.settings.ciba.map(|c| c.delivery_mode),
        Some(CibaDeliveryMode::Ping)
    );
    for (case, metadata) in [
        (
            "push",
            json!({"grant_types": [GRANT], "backchannel_token_delivery_mode": "push"}),
        ),
        ("no mode", json!({"grant_types": [GRANT]})),
        (
            "ping without endpoint",
            json!({"grant_types": [GRANT], "backchannel_token_delivery_mode": "ping"}),
        ),
        (
            "mode without the grant",
            json!({"redirect_uris": ["https://a.example.test/cb"], "backchannel_token_delivery_mode": "poll"}),
        ),
        (
            "public",
            json!({"grant_types": [GRANT], "backchannel_token_delivery_mode": "poll", "token_endpoint_auth_method": "none"}),
        ),
        (
            "signed requests",
            json!({"grant_types": [GRANT], "backchannel_token_delivery_mode": "poll", "backchannel_authentication_request_signing_alg": "RS256"}),
        ),
    ] {
        let (status, body) = register(metadata).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{case}: {body}");
        assert_eq!(body["error"], "invalid_client_metadata", "{case}: {body}");
    }
    app.stop().await;
}

#[test]
fn the_command_line_registers_ciba_clients() {
    use crate::cli::{run, write_config};
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    // No redirect URI needed.
    let (ok, stdout, stderr) = run(
        &config,
        &[
            "client",
            "add",
            "--name",
            "CRM",
            "--ciba",
            "ping",
            "--ciba-notification-endpoint",
            "https://crm.example.com/ciba/notify",
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let added: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        added["settings"]["ciba"],
        json!({"delivery_mode": "ping", "client_notification_endpoint": "https://crm.example.com/ciba/notify"})
    );
    let id = added["client_id"].as_str().unwrap();
    let (_, shown, _) = run(&config, &["client", "show", id]);
    assert!(
        shown.contains("ciba:           ping, https://crm.example.com/ciba/notify"),
        "{shown}"
    );
    for (case, args) in [
        ("ping without endpoint", vec!["--ciba", "ping"]),
        ("push", vec!["--ciba", "push"]),
        ("public", vec!["--ciba", "poll", "--public"]),
        (
            "endpoint without --ciba",
            vec!["--ciba-notification-endpoint", "https://crm.example.com/n"],
        ),
    ] {
        let mut all = vec!["client", "add", "--name", "Bad"];
        all.extend(args);
        let (ok, _, stderr) = run(&config, &all);
        assert!(!ok, "{case}: {stderr}");
    }
}

/// The gate's way through CIBA, for `tests/it/gate.rs` and `tests/it/policy.rs`: with a
/// policy that refuses `refused` and admits `admitted`, the refused user's Approve denies the
/// request and the chat says why; the admitted user's brings tokens.
pub(crate) async fn ciba_way(app: &TestApp, bot: &FakeBotApi, refused: i64, admitted: i64) {
    let policy = app.client_policy.lock().unwrap().clone();
    let client = ciba_client_with(
        app,
        Some(CibaSettings {
            delivery_mode: CibaDeliveryMode::Poll,
            client_notification_endpoint: None,
        }),
        |n| n.access_policy = policy,
    )
    .await;
    for (id, refuse) in [(refused, true), (admitted, false)] {
        let user = known_user(app, id, &format!("gate_{id}")).await;
        let hint = id.to_string();
        let (auth_req_id, asked) = ask(
            app,
            bot,
            &client,
            &[("scope", "openid"), ("login_hint", &hint)],
        )
        .await;
        let edited = press(app, bot, &user, &approve_button(&asked)).await;
        let (status, body) = poll(app, &client, &auth_req_id).await;
        if refuse {
            assert!(
                edited.contains("has not let this Telegram account in"),
                "{edited}"
            );
            assert_eq!(
                (status, body["error"].as_str()),
                (StatusCode::BAD_REQUEST, Some("access_denied")),
                "{body}"
            );
        } else {
            assert!(edited.starts_with("Approved"), "{edited}");
            assert_eq!(status, StatusCode::OK, "{body}");
            assert!(body["access_token"].is_string());
        }
    }
}

#[tokio::test]
async fn a_pairwise_id_token_hint_names_its_user() {
    let fake = FakeBotApi::start().await;
    let app = app_on(&fake, None).await;
    let client = ciba_client_with(
        &app,
        Some(CibaSettings {
            delivery_mode: CibaDeliveryMode::Poll,
            client_notification_endpoint: None,
        }),
        |n| {
            n.subject_type = telegram_oidc::store::SubjectType::Pairwise;
            n.sector_identifier = Some("crm.example.test".into());
        },
    )
    .await;
    let user = known_user(&app, 8_100_010, "ida_ciba").await;
    // Someone else the client served too.
    known_user(&app, 8_100_011, "joe_ciba").await;
    let mut id_tokens = Vec::new();
    for (who, scope) in [
        (8_100_011, "openid"),
        (user.id, "openid"),
        (user.id, "openid telegram"),
    ] {
        let hint = who.to_string();
        let (id, asked) = ask(
            &app,
            &fake,
            &client,
            &[("scope", scope), ("login_hint", &hint)],
        )
        .await;
        let presser = TgUser::new(who);
        press(&app, &fake, &presser, &approve_button(&asked)).await;
        let (status, tokens) = poll(&app, &client, &id).await;
        assert_eq!(status, StatusCode::OK, "{tokens}");
        id_tokens.push(tokens["id_token"].as_str().unwrap().to_owned());
    }
    let sub = jwt_claims(&id_tokens[1])["sub"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(sub, user.id.to_string(), "the subject is pairwise");
    // Without a telegram_id claim (matched among the users the client served), and with one.
    for hint in &id_tokens[1..] {
        let before = fake.calls("sendMessage").len();
        let (status, body) = bc_authorize(
            &app,
            &client,
            &[("scope", "openid"), ("id_token_hint", hint)],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let question = question_since(&fake, before).await;
        assert_eq!(question.body["chat_id"], user.id);
    }
}

#[tokio::test]
async fn naming_unknown_users_is_throttled_per_client_and_address() {
    let fake = FakeBotApi::start().await;
    let app = app_on(&fake, None).await;
    let client = poll_client(&app).await;
    let other = poll_client(&app).await;
    let user = known_user(&app, 8_100_020, "kim_ciba").await;
    for n in 0..30 {
        let hint = (8_200_000 + n).to_string();
        let (status, body) =
            bc_authorize(&app, &client, &[("scope", "openid"), ("login_hint", &hint)]).await;
        assert_eq!(body["error"], "unknown_user_id", "{n}: {status} {body}");
    }
    // Past 30 a minute, even a known user is not looked up for this client at this address.
    let resp = reqwest::Client::new()
        .post(app.url("/bc-authorize"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(&[("scope", "openid"), ("login_hint", &user.id.to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "60");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    // Another client is not held back, and the next minute is a new one.
    let hint = user.id.to_string();
    ask(
        &app,
        &fake,
        &other,
        &[("scope", "openid"), ("login_hint", &hint)],
    )
    .await;
    app.clock.advance(60);
    ask(
        &app,
        &fake,
        &client,
        &[("scope", "openid"), ("login_hint", &hint)],
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_registered_notification_endpoint_must_be_public_https() {
    const INITIAL: &str = "initial-access-token-0123456789abcdef-XYZ";
    let app = TestApp::start_with(|c| {
        c.registration.enabled = true;
        c.registration.initial_access_token = telegram_oidc::config::Secret::new(INITIAL);
        c.outbound.allow_private = false;
    })
    .await;
    for endpoint in [
        "https://127.0.0.1/ciba",
        "https://localhost/ciba",
        "https://169.254.169.254/latest",
        "http://crm.example.test/ciba",
    ] {
        let resp = reqwest::Client::new()
            .post(app.url("/register"))
            .bearer_auth(INITIAL)
            .json(&json!({
                "grant_types": [GRANT],
                "backchannel_token_delivery_mode": "ping",
                "backchannel_client_notification_endpoint": endpoint,
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{endpoint}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(
            body["error"], "invalid_client_metadata",
            "{endpoint}: {body}"
        );
    }
    app.stop().await;
}
