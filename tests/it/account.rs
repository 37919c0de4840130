//! Users manage what they gave, in the bot chat (`/apps`, `/sessions`, `/alerts`, "This wasn't
//! me") and on the `/account` page: every revocation and sign-out is checked where it must
//! show, at userinfo, introspection and refresh, at once. On SQLite, and on PostgreSQL when
//! `TEST_DATABASE_URL` is set.

use std::net::Ipv4Addr;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;
use telegram_oidc::admin::{self, NewClient};
use telegram_oidc::config::{AlertsDefault, Config, UpdateMode};
use telegram_oidc::oidc::pkce;
use tokio::sync::mpsc;

use crate::fake_bot_api::{Call, FakeBotApi, WEBHOOK_SECRET, app_with_bot, button, message};
use crate::harness::*;
use crate::store::postgres_url;

const VERIFIER: &str = "account-test-verifier-0123456789-abcdefghijklmnopqrs";
pub const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
pub const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Mobile Safari/537.36";

/// The stores to run on: SQLite, and PostgreSQL when it is configured.
pub(crate) fn databases() -> Vec<Option<String>> {
    let mut out = vec![None];
    if let Some(url) = postgres_url() {
        out.push(Some(url));
    }
    out
}

/// A server whose bot is `bot`, on the given store; `adjust` may change more.
pub(crate) async fn account_app(
    bot: &FakeBotApi,
    database: Option<String>,
    adjust: impl FnOnce(&mut Config),
) -> TestApp {
    app_with_bot(bot, UpdateMode::Webhook, move |c| {
        if let Some(url) = database {
            c.database_url = url;
        }
        adjust(c);
    })
    .await
}

/// A browser that says it is `user_agent`.
pub fn browser(user_agent: &str) -> Browser {
    Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(user_agent)
            .build()
            .unwrap(),
    }
}

pub(crate) async fn register(
    app: &TestApp,
    name: &str,
    host: &str,
    backchannel: Option<String>,
) -> TestClient {
    let redirect_uri = format!("https://{host}/callback");
    let (record, secret) = admin::add_client(
        app.store.as_ref(),
        NewClient {
            name: name.into(),
            redirect_uris: vec![redirect_uri.clone()],
            scopes: ["openid", "profile", "offline_access"]
                .map(String::from)
                .to_vec(),
            backchannel_logout_uri: backchannel,
            ..Default::default()
        },
        app.now(),
    )
    .await
    .unwrap();
    TestClient {
        record,
        secret,
        redirect_uri,
    }
}

pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// `user` logs in to `client` in `browser` through the widget (and consent), and the code is
/// redeemed.
pub async fn log_in(app: &TestApp, client: &TestClient, browser: &Browser, user: i64) -> Tokens {
    // A second apart, so that two logins of one user are two different widget proofs.
    app.clock.advance(1);
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile%20offline_access&state=s&code_challenge={}&code_challenge_method=S256",
        app.url("/authorize"),
        client.id(),
        url::form_urlencoded::byte_serialize(client.redirect_uri.as_bytes()).collect::<String>(),
        pkce::s256(VERIFIER),
    );
    let back = authorize_through(app, browser, &url, &TgUser::new(user)).await;
    let code = query_param(&back, "code").expect("a code");
    let (status, body) = token(
        app,
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
    Tokens {
        access: body["access_token"].as_str().unwrap().into(),
        refresh: body["refresh_token"].as_str().unwrap().into(),
    }
}

async fn token(app: &TestApp, client: &TestClient, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap_or(Value::Null))
}

pub async fn userinfo(app: &TestApp, access: &str) -> StatusCode {
    reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .status()
}

async fn active(app: &TestApp, client: &TestClient, token: &str) -> bool {
    let resp = reqwest::Client::new()
        .post(app.url("/introspect"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    body["active"].as_bool().unwrap()
}

/// Live: userinfo answers, introspection says active, the refresh token works (and is
/// rotated: the new one is returned). Dead: all three refuse.
pub(crate) async fn assert_live(
    app: &TestApp,
    client: &TestClient,
    tokens: &mut Tokens,
    live: bool,
) {
    let expected = if live {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    };
    assert_eq!(userinfo(app, &tokens.access).await, expected, "userinfo");
    assert_eq!(
        active(app, client, &tokens.access).await,
        live,
        "access introspection"
    );
    assert_eq!(
        active(app, client, &tokens.refresh).await,
        live,
        "refresh introspection"
    );
    let (status, body) = token(
        app,
        client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &tokens.refresh),
        ],
    )
    .await;
    if live {
        assert_eq!(status, StatusCode::OK, "{body}");
        tokens.refresh = body["refresh_token"].as_str().unwrap().into();
    } else {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_grant");
    }
}

/// `user` writes `text` to the bot; the bot's answer.
async fn say(bot: &FakeBotApi, app: &TestApp, user: &TgUser, text: &str) -> Call {
    let before = bot.calls("sendMessage").len();
    let resp = bot
        .deliver(app, &bot.update(message(user, text)), Some(WEBHOOK_SECRET))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    bot.wait_for("sendMessage", before + 1).await[before].clone()
}

/// `user` presses the button `data`; the message's new text.
async fn press(bot: &FakeBotApi, app: &TestApp, user: &TgUser, data: &str) -> String {
    let before = bot.calls("editMessageText").len();
    let resp = bot
        .deliver(
            app,
            &bot.update(button(user, user.id, 77, data)),
            Some(WEBHOOK_SECRET),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let edited = bot.wait_for("editMessageText", before + 1).await[before].clone();
    edited.body["text"].as_str().unwrap().to_owned()
}

pub(crate) fn text(call: &Call) -> String {
    call.body["text"].as_str().unwrap_or("").to_owned()
}

/// The data of the button whose label contains `label`.
fn button_for(call: &Call, label: &str) -> String {
    call.body["reply_markup"]["inline_keyboard"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|row| row.as_array().cloned().unwrap_or_default())
        .find(|b| b["text"].as_str().unwrap_or("").contains(label))
        .and_then(|b| b["callback_data"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no button {label}: {}", call.body))
}

/// The number of the list entry whose text contains `needle` ("2. Firefox on Linux").
fn entry_number(list: &str, needle: &str) -> String {
    let line = list
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no {needle} in {list}"));
    line.split('.').next().unwrap().to_owned()
}

/// Whether `browser` is signed in: `/account` shows the page rather than sending it to log in.
pub(crate) async fn signed_in(app: &TestApp, browser: &Browser) -> bool {
    let resp = browser.get(&app.url("/account")).await;
    match resp.status() {
        StatusCode::OK => true,
        StatusCode::SEE_OTHER => {
            assert!(location(resp.headers()).contains("/login?req="));
            false
        }
        other => panic!("/account answered {other}"),
    }
}

/// A back-channel logout receiver: every posted logout token arrives on the channel.
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

async fn next_logout(rx: &mut mpsc::UnboundedReceiver<String>) -> Value {
    let token = tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("a logout token in time")
        .unwrap();
    crate::fake_bot_api::jwt_claims(&token)
}

#[tokio::test]
async fn apps_in_the_bot_revoke_an_app_at_once() {
    for database in databases() {
        let bot = FakeBotApi::start().await;
        let app = account_app(&bot, database, |_| {}).await;
        let (backchannel, mut logouts) = logout_receiver().await;
        let grafana = register(&app, "Grafana", "grafana.example.test", Some(backchannel)).await;
        let wiki = register(&app, "Wiki", "wiki.example.test", None).await;
        let user = TgUser::new(5_100_001);
        let b = browser(FIREFOX);
        let mut g = log_in(&app, &grafana, &b, user.id).await;
        let mut w = log_in(&app, &wiki, &b, user.id).await;

        let list = say(&bot, &app, &user, "/apps").await;
        let shown = text(&list);
        assert!(shown.contains("Grafana (grafana.example.test)"), "{shown}");
        assert!(shown.contains("Wiki (wiki.example.test)"), "{shown}");
        assert!(
            shown.contains("Your name, username and profile photo"),
            "{shown}"
        );
        assert!(shown.contains("Last used: "), "{shown}");
        let revoke = button_for(&list, "Grafana");
        assert!(revoke.starts_with("ra:") && revoke.len() <= 64, "{revoke}");

        // Another Telegram user pressing the same button revokes nothing of this user's.
        let stranger = TgUser::new(5_100_002);
        let outcome = press(&bot, &app, &stranger, &revoke).await;
        assert!(outcome.contains("no access"), "{outcome}");
        assert_live(&app, &grafana, &mut g, true).await;

        let outcome = press(&bot, &app, &user, &revoke).await;
        assert!(
            outcome.contains("Grafana no longer has access"),
            "{outcome}"
        );
        assert_live(&app, &grafana, &mut g, false).await;
        assert_live(&app, &wiki, &mut w, true).await;
        // The app hears it on its back channel: every session of this user.
        let claims = next_logout(&mut logouts).await;
        assert_eq!(claims["sub"], user.id.to_string());
        assert!(claims.get("sid").is_none());

        let shown = text(&say(&bot, &app, &user, "/apps").await);
        assert!(!shown.contains("Grafana"), "{shown}");
        assert!(shown.contains("Wiki"), "{shown}");
        // The consent went too: the next login asks again.
        let resp = b
            .get(&format!(
                "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&code_challenge={}&code_challenge_method=S256",
                app.url("/authorize"),
                grafana.id(),
                url::form_urlencoded::byte_serialize(grafana.redirect_uri.as_bytes())
                    .collect::<String>(),
                pkce::s256(VERIFIER)
            ))
            .await;
        assert!(location(resp.headers()).contains("/consent?req="));
        app.stop().await;
    }
}

#[tokio::test]
async fn sessions_in_the_bot_sign_out_one_browser_or_all() {
    for database in databases() {
        let bot = FakeBotApi::start().await;
        let app = account_app(&bot, database, |_| {}).await;
        let (backchannel, mut logouts) = logout_receiver().await;
        let client = register(&app, "Grafana", "grafana.example.test", Some(backchannel)).await;
        let user = TgUser::new(5_200_001);
        let firefox = browser(FIREFOX);
        let phone = browser(CHROME_ANDROID);
        let mut f = log_in(&app, &client, &firefox, user.id).await;
        log_in(&app, &client, &phone, user.id).await;

        let list = say(&bot, &app, &user, "/sessions").await;
        let shown = text(&list);
        assert!(shown.contains("Firefox on Linux"), "{shown}");
        assert!(shown.contains("Chrome on Android"), "{shown}");
        assert!(
            !shown.contains("near"),
            "no place without a GeoIP database: {shown}"
        );
        let n = entry_number(&shown, "Firefox on Linux");
        let sign_out = button_for(&list, &format!("Sign out {n}"));
        let outcome = press(&bot, &app, &user, &sign_out).await;
        assert!(outcome.contains("signed out"), "{outcome}");
        assert!(!signed_in(&app, &firefox).await);
        assert!(signed_in(&app, &phone).await);
        // Signing out ends the session, as /logout does: the app is told, with the session's
        // user; what the app was given stays until it is revoked.
        assert_eq!(next_logout(&mut logouts).await["sub"], user.id.to_string());
        assert_live(&app, &client, &mut f, true).await;
        // Pressed again: nothing left to sign out.
        let outcome = press(&bot, &app, &user, &sign_out).await;
        assert!(outcome.contains("already signed out"), "{outcome}");

        let list = say(&bot, &app, &user, "/sessions").await;
        let outcome = press(&bot, &app, &user, &button_for(&list, "everywhere")).await;
        assert!(
            outcome.contains("Signed out everywhere (1 browser)"),
            "{outcome}"
        );
        assert!(!signed_in(&app, &phone).await);
        let shown = text(&say(&bot, &app, &user, "/sessions").await);
        assert!(shown.contains("No browser is signed in"), "{shown}");
        app.stop().await;
    }
}

#[tokio::test]
async fn alerts_on_and_off_and_this_wasnt_me() {
    for database in databases() {
        let bot = FakeBotApi::start().await;
        let app = account_app(&bot, database, |_| {}).await;
        let client = register(&app, "Grafana", "grafana.example.test", None).await;
        let user = TgUser::new(5_300_001);
        // A widget user has not started the bot: no alert by default.
        let mine = browser(FIREFOX);
        let mut m = log_in(&app, &client, &mine, user.id).await;
        assert!(bot.calls("sendMessage").is_empty(), "no alert by default");
        let shown = text(&say(&bot, &app, &user, "/alerts").await);
        assert!(shown.contains("Login alerts are off"), "{shown}");
        let shown = text(&say(&bot, &app, &user, "/alerts on").await);
        assert!(shown.contains("Login alerts are on"), "{shown}");

        // Someone else logs in as the user: the bot tells.
        let before = bot.calls("sendMessage").len();
        let theirs = browser(CHROME_ANDROID);
        let mut t = log_in(&app, &client, &theirs, user.id).await;
        let alert = bot.wait_for("sendMessage", before + 1).await[before].clone();
        assert_eq!(alert.body["chat_id"], user.id);
        let shown = text(&alert);
        for part in [
            "New login to Grafana",
            "Time: ",
            "Browser: Chrome on Android",
        ] {
            assert!(shown.contains(part), "{part}: {shown}");
        }
        assert!(!shown.contains("Place"), "no place without GeoIP: {shown}");
        let not_me = button_for(&alert, "This wasn't me");
        assert!(
            not_me.starts_with("nm:s:") && not_me.len() <= 64,
            "{not_me}"
        );

        // Only the user can use it.
        let outcome = press(&bot, &app, &TgUser::new(5_300_002), &not_me).await;
        assert!(outcome.contains("already ended"), "{outcome}");
        assert!(signed_in(&app, &theirs).await);

        let outcome = press(&bot, &app, &user, &not_me).await;
        assert!(outcome.contains("signed out"), "{outcome}");
        assert!(!signed_in(&app, &theirs).await);
        assert_live(&app, &client, &mut t, false).await;
        // The user's own browser and tokens are untouched.
        assert!(signed_in(&app, &mine).await);
        assert_live(&app, &client, &mut m, true).await;

        let shown = text(&say(&bot, &app, &user, "/alerts off").await);
        assert!(shown.contains("Login alerts are off"), "{shown}");
        let before = bot.calls("sendMessage").len();
        log_in(&app, &client, &browser(FIREFOX), user.id).await;
        assert_eq!(bot.calls("sendMessage").len(), before, "no alert when off");

        // /alerts from someone who never logged in changes nothing.
        let shown = text(&say(&bot, &app, &TgUser::new(5_300_003), "/alerts on").await);
        assert!(shown.contains("not logged in"), "{shown}");
        app.stop().await;
    }
}

#[tokio::test]
async fn the_alert_default_is_a_setting_and_places_show_with_a_geoip_database() {
    let dir = tempfile::tempdir().unwrap();
    let geoip = dir.path().join("places.mmdb");
    std::fs::write(
        &geoip,
        crate::geoip_file::database(&[(Ipv4Addr::new(127, 0, 0, 0), 8)], "Testville", "Testland"),
    )
    .unwrap();
    let bot = FakeBotApi::start().await;
    let app = account_app(&bot, None, |c| {
        c.account.login_alerts = AlertsDefault::Everyone;
        c.account.geoip_database = Some(geoip);
    })
    .await;
    let client = register(&app, "Grafana", "grafana.example.test", None).await;
    let user = TgUser::new(5_400_001);
    log_in(&app, &client, &browser(FIREFOX), user.id).await;
    let alert = bot.wait_for("sendMessage", 1).await[0].clone();
    let shown = text(&alert);
    assert!(
        shown.contains("Place (approximate): Testville, Testland"),
        "{shown}"
    );
    let shown = text(&say(&bot, &app, &user, "/sessions").await);
    assert!(
        shown.contains("Firefox on Linux, near Testville, Testland"),
        "{shown}"
    );
    app.stop().await;

    // "nobody": not even a user of the bot chat gets alerts until they ask.
    let bot = FakeBotApi::start().await;
    let app = account_app(&bot, None, |c| {
        c.account.login_alerts = AlertsDefault::Nobody
    })
    .await;
    bot_login(&app, &bot, &TgUser::new(5_400_002)).await;
    let alerts = bot
        .calls("sendMessage")
        .iter()
        .filter(|c| text(c).contains("New login"))
        .count();
    assert_eq!(alerts, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_bot_chat_user_gets_alerts_by_default() {
    let bot = FakeBotApi::start().await;
    let app = account_app(&bot, None, |_| {}).await;
    let user = TgUser::new(5_800_001);
    // The bot login itself: the question in the chat, then the alert.
    bot_login(&app, &bot, &user).await;
    let sent = bot.wait_for("sendMessage", 2).await;
    let shown = text(&sent[1]);
    assert!(shown.contains("New login to Test App"), "{shown}");
    assert!(shown.contains("How: confirmed in this chat"), "{shown}");
    // A later widget login of the same user is told too.
    let client = register(&app, "Grafana", "grafana.example.test", None).await;
    let before = bot.calls("sendMessage").len();
    log_in(&app, &client, &browser(FIREFOX), user.id).await;
    let sent = bot.wait_for("sendMessage", before + 1).await;
    assert!(text(&sent[before]).contains("New login to Grafana"));
    app.stop().await;
}

#[tokio::test]
async fn a_user_who_blocked_the_bot_still_logs_in() {
    for database in databases() {
        let bot = FakeBotApi::start().await;
        let app = account_app(&bot, database, |c| {
            c.account.login_alerts = AlertsDefault::Everyone;
        })
        .await;
        let client = register(&app, "Grafana", "grafana.example.test", None).await;
        let user = TgUser::new(5_500_001);
        bot.block(user.id);
        let mut tokens = log_in(&app, &client, &browser(FIREFOX), user.id).await;
        // The alert was tried, refused with 403, and the login went on regardless.
        let tried = bot.wait_for("sendMessage", 1).await;
        assert_eq!(tried[0].body["chat_id"], user.id);
        assert_live(&app, &client, &mut tokens, true).await;
        // A command whose answer is refused is not worth a redelivery either.
        let resp = bot
            .deliver(
                &app,
                &bot.update(message(&user, "/apps")),
                Some(WEBHOOK_SECRET),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        app.stop().await;
    }
}

/// `user` logs in to a new client through the bot chat; the browser ends at the consent page.
async fn bot_login(app: &TestApp, bot: &FakeBotApi, user: &TgUser) {
    let client = app.confidential_client().await;
    let b = browser(FIREFOX);
    let login = crate::deeplink::open_login_page(app, &b, &client).await;
    let before = bot.calls("sendMessage").len();
    bot.deliver(
        app,
        &bot.update(crate::deeplink::start(user, &login.payload)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let question = bot.wait_for("sendMessage", before + 1).await[before].clone();
    // Number matching: the number the login page shows.
    let approve = crate::fake_bot_api::number_button(&question, login.match_code);
    bot.deliver(
        app,
        &bot.update(button(user, user.id, 900, &approve)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let resp = crate::deeplink::collect(app, &b, &login).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let (_, end) = crate::gate::follow(app, &b, absolute(app, &location(resp.headers()))).await;
    assert!(end.contains("/consent?req="), "{end}");
}
