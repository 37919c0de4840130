//! Login confirmed in the bot chat, end to end: the login page's `t.me` link, `/start` through
//! the webhook or the long poll of a fake Bot API, Approve / Deny, and the waiting browser
//! continuing to the app; and every way it must refuse.

use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;
use serde_json::Value;
use telegram_oidc::config::UpdateMode;
use telegram_oidc::oidc::pkce;

use crate::fake_bot_api::{
    FakeBotApi, WEBHOOK_SECRET, app_with_bot, button, buttons, deny_button, jwt_claims, message,
    number_button,
};
use crate::harness::{
    BOT_USERNAME, Browser, TestApp, TestClient, TgUser, absolute, approve_consent, hidden,
    location, query_param,
};

const VERIFIER: &str = "deeplink-verifier_0123456789.abcdefghijklmnopqrstuvwxyz~ABCDEFG";
const STATE: &str = "st-bot-1";

/// What the login page offered for the bot.
pub(crate) struct BotLogin {
    pub(crate) req: String,
    pub(crate) id: String,
    pub(crate) payload: String,
    /// The number the page shows, to press in the chat.
    pub(crate) match_code: i64,
    /// `name=value` of the cookie that binds the login to the browser.
    binding: String,
}

fn authorize_url(app: &TestApp, client: &TestClient) -> String {
    let challenge = pkce::s256(VERIFIER);
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client.id()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid profile telegram"),
            ("state", STATE),
            ("nonce", "n-bot-1"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    app.url(&format!("/authorize?{query}"))
}

/// Starts an authorization and opens its login page; returns what the page offers the bot.
pub(crate) async fn open_login_page(
    app: &TestApp,
    browser: &Browser,
    client: &TestClient,
) -> BotLogin {
    let resp = browser.get(&authorize_url(app, client)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let login = absolute(app, &location(resp.headers()));
    assert!(login.contains("/login?req="), "{login}");
    read_bot_login(browser, &login).await.1
}

/// Opens a page that offers a bot login (the login page, or the confirmation of a step-up);
/// returns its HTML and what it offers.
pub(crate) async fn read_bot_login(browser: &Browser, url: &str) -> (String, BotLogin) {
    let page = browser.get(url).await;
    assert_eq!(page.status(), StatusCode::OK);
    let cookies: Vec<String> = page
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let csp = page
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(csp.contains("connect-src 'self'"), "{csp}");
    let html = page.text().await.unwrap();
    let marker = format!("https://t.me/{BOT_USERNAME}?start=");
    let start = html.find(&marker).expect("a t.me link on the login page") + marker.len();
    let payload: String = html[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .collect();
    assert!(payload.len() >= 32 && payload.len() <= 64, "{payload}");
    assert!(html.contains("<svg"), "a QR code rendered on the server");
    let marker = "id=\"bot-match-code\"";
    let at = html.find(marker).expect("the number to press") + marker.len();
    let at = html[at..].find('>').unwrap() + at + 1;
    let match_code: i64 = html[at..at + 2].parse().expect("two digits");
    assert!((10..=99).contains(&match_code));
    let id = hidden(&html, "id");
    let binding = cookies
        .iter()
        .find(|c| c.starts_with(&format!("tgoidc_bot_{id}=tgbb_")) && c.contains("HttpOnly"))
        .unwrap_or_else(|| panic!("a binding cookie: {cookies:?}"));
    let login = BotLogin {
        req: hidden(&html, "req"),
        binding: binding.split(';').next().unwrap().to_owned(),
        id,
        payload,
        match_code,
    };
    (html, login)
}

pub(crate) async fn status(app: &TestApp, browser: &Browser, id: &str) -> (StatusCode, String) {
    let resp = browser
        .get(&app.url(&format!("/login/bot/status?id={id}")))
        .await;
    let code = resp.status();
    let body: Value = resp.json().await.unwrap();
    (code, body["status"].as_str().unwrap_or("").to_owned())
}

pub(crate) async fn collect(
    app: &TestApp,
    browser: &Browser,
    login: &BotLogin,
) -> reqwest::Response {
    browser
        .post_form(
            &app.url("/login/bot/complete"),
            &[
                ("id".into(), login.id.clone()),
                ("req".into(), login.req.clone()),
            ],
        )
        .await
}

pub(crate) fn start(user: &TgUser, payload: &str) -> Value {
    message(user, &format!("/start {payload}"))
}

/// The browser collects an approval and goes on through consent to the app; returns the code.
pub(crate) async fn continue_to_app(app: &TestApp, browser: &Browser, login: &BotLogin) -> String {
    let resp = collect(app, browser, login).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let next = absolute(app, &location(resp.headers()));
    assert!(next.contains("/authorize/continue?req="), "{next}");
    let resp = browser.get(&next).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let consent = absolute(app, &location(resp.headers()));
    assert!(consent.contains("/consent?req="), "{consent}");
    let back = approve_consent(app, browser, &consent).await;
    assert_eq!(query_param(&back, "state").as_deref(), Some(STATE));
    query_param(&back, "code").expect("a code")
}

async fn redeem(app: &TestApp, client: &TestClient, code: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("code_verifier", VERIFIER),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// The whole webhook path: link, `/start`, buttons naming the app, Approve, the browser going
/// on, and an ID token whose `amr` says how the user was proven.
async fn webhook_login_on(app: TestApp, fake: &FakeBotApi) {
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let login = open_login_page(&app, &browser, &client).await;
    assert_eq!(status(&app, &browser, &login.id).await.1, "waiting");

    let user = TgUser::new(7_100_001);
    let resp = fake
        .deliver(
            &app,
            &fake.update(start(&user, &login.payload)),
            Some(WEBHOOK_SECRET),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let sent = fake.calls("sendMessage");
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].body["chat_id"], user.id);
    let text = sent[0].body["text"].as_str().unwrap();
    assert!(text.contains("Test App") && text.contains("Ada"), "{text}");
    let data = buttons(&sent[0]);
    // Three numbers, the page's among them, then Deny and "This wasn't me".
    assert_eq!(data.len(), 5, "{data:?}");
    assert!(
        data.contains(&format!("n:{}:{}", login.id, login.match_code)),
        "{data:?}"
    );
    assert!(
        data[..3]
            .iter()
            .all(|d| d.starts_with(&format!("n:{}:", login.id)))
    );
    assert_eq!(
        data[3..],
        [format!("d:{}", login.id), format!("x:{}", login.id)]
    );
    let approve = number_button(&sent[0], login.match_code);
    assert!(
        !text.contains(&login.payload) && data.iter().all(|d| !d.contains(&login.payload)),
        "the payload is never sent back"
    );
    assert_eq!(status(&app, &browser, &login.id).await.1, "opened");

    // Without JavaScript, "continue" before the answer shows a waiting page and changes nothing.
    let early = collect(&app, &browser, &login).await;
    assert_eq!(early.status(), StatusCode::OK);
    assert!(early.text().await.unwrap().contains("Not confirmed yet"));

    let resp = fake
        .deliver(
            &app,
            &fake.update(button(&user, user.id, 555, &approve)),
            Some(WEBHOOK_SECRET),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(fake.calls("answerCallbackQuery").len(), 1);
    let edited = fake.calls("editMessageText");
    assert_eq!(edited.len(), 1);
    assert_eq!(edited[0].body["message_id"], 555);
    assert!(
        edited[0].body["text"]
            .as_str()
            .unwrap()
            .starts_with("Approved")
    );
    assert_eq!(status(&app, &browser, &login.id).await.1, "approved");

    let code = continue_to_app(&app, &browser, &login).await;
    let tokens = redeem(&app, &client, &code).await;
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["amr"], serde_json::json!(["telegram_bot"]));
    assert_eq!(claims["preferred_username"], "ada_tg");
    assert_eq!(claims["locale"], "en");

    // Collected once: the binding cookie is cleared, and even replayed it collects nothing.
    assert_eq!(status(&app, &browser, &login.id).await.1, "unknown");
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(app.url("/login/bot/complete"))
        .header("cookie", &login.binding)
        .form(&[("id", login.id.as_str()), ("req", login.req.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::BAD_REQUEST);
    app.stop().await;
}

#[tokio::test]
async fn bot_login_through_the_webhook() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    webhook_login_on(app, &fake).await;
}

#[tokio::test]
async fn bot_login_through_the_webhook_on_postgres() {
    let Some(url) = crate::store::postgres_url() else {
        return;
    };
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |c| c.database_url = url).await;
    webhook_login_on(app, &fake).await;
}

#[tokio::test]
async fn bot_login_through_long_polling() {
    let fake = FakeBotApi::start().await;
    // The default mode with a bot token and no webhook secret: polling.
    let app = app_with_bot(&fake, UpdateMode::Auto, |c| {
        c.telegram.webhook_secret = telegram_oidc::config::Secret::default();
    })
    .await;
    // In polling mode there is no webhook at all.
    let resp = fake
        .deliver(
            &app,
            &fake.update(message(&TgUser::new(1), "/start")),
            Some(WEBHOOK_SECRET),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);

    let client = app.confidential_client().await;
    let browser = Browser::new();
    let login = open_login_page(&app, &browser, &client).await;
    let user = TgUser::new(7_100_002);
    fake.push_update(fake.update(start(&user, &login.payload)));
    let sent = fake.wait_for("sendMessage", 1).await;
    let approve = number_button(&sent[0], login.match_code);
    fake.push_update(fake.update(button(&user, user.id, 42, &approve)));
    fake.wait_for("editMessageText", 1).await;
    assert_eq!(status(&app, &browser, &login.id).await.1, "approved");
    // Later polls confirm what was handled: the offset moved past both updates.
    let polls = fake.wait_for("getUpdates", 3).await;
    let last_offset = polls.last().unwrap().body["offset"].as_i64().unwrap();
    assert!(last_offset >= 1002, "offset {last_offset}");

    let code = continue_to_app(&app, &browser, &login).await;
    let tokens = redeem(&app, &client, &code).await;
    let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["amr"], serde_json::json!(["telegram_bot"]));
    app.stop().await;
}

#[tokio::test]
async fn deny_in_the_chat_sends_access_denied_to_the_app() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let login = open_login_page(&app, &browser, &client).await;
    let user = TgUser::new(7_100_003);
    fake.deliver(
        &app,
        &fake.update(start(&user, &login.payload)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let asked = fake.calls("sendMessage")[0].clone();
    fake.deliver(
        &app,
        &fake.update(button(&user, user.id, 9, &deny_button(&asked))),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert!(
        fake.calls("editMessageText")[0].body["text"]
            .as_str()
            .unwrap()
            .starts_with("Denied")
    );
    assert_eq!(status(&app, &browser, &login.id).await.1, "denied");
    // The right number after Deny changes nothing.
    fake.deliver(
        &app,
        &fake.update(button(
            &user,
            user.id,
            9,
            &number_button(&asked, login.match_code),
        )),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_eq!(status(&app, &browser, &login.id).await.1, "denied");

    let resp = collect(&app, &browser, &login).await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let back = location(resp.headers());
    assert!(back.starts_with(&client.redirect_uri), "{back}");
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some(STATE));
    assert_eq!(query_param(&back, "code"), None);
    // The authorization is over: its login page is gone.
    let again = browser
        .get(&app.url(&format!("/login?req={}", login.req)))
        .await;
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn a_replayed_start_payload_changes_nothing() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let login = open_login_page(&app, &browser, &client).await;
    let user = TgUser::new(7_100_004);
    let mallory = TgUser::new(7_100_666);
    fake.deliver(
        &app,
        &fake.update(start(&user, &login.payload)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    // The same payload again, from the same user (asked again, the same login) and from
    // someone else who saw the link (refused).
    for who in [&user, &mallory] {
        let resp = fake
            .deliver(
                &app,
                &fake.update(start(who, &login.payload)),
                Some(WEBHOOK_SECRET),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let sent = fake.calls("sendMessage");
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1].body["chat_id"], user.id);
    // The same question again: the same login, the page's number among the three offered.
    let right = number_button(&sent[0], login.match_code);
    assert_eq!(number_button(&sent[1], login.match_code), right);
    assert_eq!(deny_button(&sent[1]), deny_button(&sent[0]));
    for reply in &sent[2..] {
        assert_eq!(reply.body["chat_id"], mallory.id);
        assert!(buttons(reply).is_empty(), "no buttons for someone else");
        assert!(
            reply.body["text"]
                .as_str()
                .unwrap()
                .contains("expired or was already used")
        );
    }
    assert_eq!(sent[2].body["chat_id"], mallory.id);
    // The login still belongs to the first user: Mallory's Approve is refused.
    let approve = number_button(&sent[0], login.match_code);
    fake.deliver(
        &app,
        &fake.update(button(&mallory, mallory.id, 1, &approve)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_eq!(status(&app, &browser, &login.id).await.1, "opened");
}

#[tokio::test]
async fn an_expired_payload_is_refused() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let login = open_login_page(&app, &browser, &client).await;
    app.clock.advance(301);
    assert_eq!(status(&app, &browser, &login.id).await.1, "expired");
    let user = TgUser::new(7_100_005);
    fake.deliver(
        &app,
        &fake.update(start(&user, &login.payload)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let sent = fake.calls("sendMessage");
    assert_eq!(sent.len(), 1);
    assert!(buttons(&sent[0]).is_empty());
    assert!(sent[0].body["text"].as_str().unwrap().contains("expired"));
    // The browser is sent back to the login page for a fresh link.
    let resp = collect(&app, &browser, &login).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(location(resp.headers()).contains(&format!("/login?req={}", login.req)));
}

#[tokio::test]
async fn a_webhook_without_the_secret_is_refused_and_changes_nothing() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let login = open_login_page(&app, &browser, &client).await;
    let user = TgUser::new(7_100_006);
    let update = fake.update(start(&user, &login.payload));
    for secret in [
        None,
        Some("wrong"),
        Some(""),
        Some(&WEBHOOK_SECRET[..WEBHOOK_SECRET.len() - 1]),
    ] {
        let resp = fake.deliver(&app, &update, secret).await;
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "{secret:?}");
    }
    assert!(fake.calls("sendMessage").is_empty());
    assert_eq!(status(&app, &browser, &login.id).await.1, "waiting");
    // The payload was not used up: the real delivery still works.
    let resp = fake.deliver(&app, &update, Some(WEBHOOK_SECRET)).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(buttons(&fake.calls("sendMessage")[0]).len(), 5);
    // Garbage from Telegram itself is not an error worth a redelivery loop.
    let resp = reqwest::Client::new()
        .post(app.url("/telegram/webhook"))
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .header("content-type", "application/json")
        .body("{\"update_id\": \"not a number\"}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = reqwest::Client::new()
        .post(app.url("/telegram/webhook"))
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .body("not json")
        .send()
        .await
        .unwrap();
    // Not even JSON, yet from Telegram (the secret matched): acknowledged, never resent.
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_button_pressed_by_another_telegram_user_is_refused() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let login = open_login_page(&app, &browser, &client).await;
    let user = TgUser::new(7_100_007);
    let other = TgUser::new(7_100_008);
    fake.deliver(
        &app,
        &fake.update(start(&user, &login.payload)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let approve = number_button(&fake.calls("sendMessage")[0], login.match_code);
    fake.deliver(
        &app,
        &fake.update(button(&other, user.id, 3, &approve)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let answers = fake.calls("answerCallbackQuery");
    assert_eq!(answers.len(), 1);
    assert!(
        answers[0].body["text"]
            .as_str()
            .unwrap()
            .contains("another Telegram account")
    );
    assert!(fake.calls("editMessageText").is_empty());
    assert_eq!(status(&app, &browser, &login.id).await.1, "opened");
    // A button naming an unknown login, or made-up data, changes nothing either.
    for data in ["a:nonexistent", "x:whatever", ""] {
        fake.deliver(
            &app,
            &fake.update(button(&user, user.id, 3, data)),
            Some(WEBHOOK_SECRET),
        )
        .await;
    }
    assert_eq!(status(&app, &browser, &login.id).await.1, "opened");
    // The right user still can.
    fake.deliver(
        &app,
        &fake.update(button(&user, user.id, 3, &approve)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    assert_eq!(status(&app, &browser, &login.id).await.1, "approved");
}

#[tokio::test]
async fn only_the_browser_that_started_the_login_can_collect_it() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let login = open_login_page(&app, &browser, &client).await;
    let user = TgUser::new(7_100_009);
    fake.deliver(
        &app,
        &fake.update(start(&user, &login.payload)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let approve = number_button(&fake.calls("sendMessage")[0], login.match_code);
    fake.deliver(
        &app,
        &fake.update(button(&user, user.id, 3, &approve)),
        Some(WEBHOOK_SECRET),
    )
    .await;

    // An attacker who learned the id and the req, in another browser.
    let thief = Browser::new();
    assert_eq!(
        status(&app, &thief, &login.id).await,
        (StatusCode::NOT_FOUND, "unknown".into())
    );
    let resp = collect(&app, &thief, &login).await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // With a binding cookie of their own login, for the victim's id: still refused.
    let own = open_login_page(&app, &thief, &client).await;
    let resp = collect(
        &app,
        &thief,
        &BotLogin {
            req: own.req.clone(),
            id: login.id.clone(),
            payload: String::new(),
            match_code: 0,
            binding: String::new(),
        },
    )
    .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    // The rightful browser cannot be tricked into another authorization's req either.
    let resp = collect(
        &app,
        &browser,
        &BotLogin {
            req: own.req,
            id: login.id.clone(),
            payload: String::new(),
            match_code: 0,
            binding: String::new(),
        },
    )
    .await;
    assert_ne!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(status(&app, &browser, &login.id).await.1, "approved");
    // And then collects its own.
    continue_to_app(&app, &browser, &login).await;
}

#[tokio::test]
async fn the_webhook_is_registered_at_startup() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |c| {
        c.telegram.register_webhook = true
    })
    .await;
    let calls = fake.calls("setWebhook");
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].body["url"], app.url("/telegram/webhook"));
    assert_eq!(calls[0].body["secret_token"], WEBHOOK_SECRET);
    assert_eq!(
        calls[0].body["allowed_updates"],
        serde_json::json!(["message", "callback_query"])
    );
}

#[tokio::test]
async fn without_a_bot_the_login_page_offers_no_link() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let resp = browser.get(&authorize_url(&app, &client)).await;
    let page = browser
        .get(&absolute(&app, &location(resp.headers())))
        .await;
    assert!(page.headers().get(SET_COOKIE).is_none());
    let html = page.text().await.unwrap();
    assert!(!html.contains("t.me/"), "no bot link without updates");
    let resp = reqwest::Client::new()
        .post(app.url("/telegram/webhook"))
        .header("X-Telegram-Bot-Api-Secret-Token", WEBHOOK_SECRET)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

/// Two nodes on one PostgreSQL, both configured to poll: the job lock lets only one of them
/// call getUpdates (two pollers would both handle the same `/start`), and the state the poller
/// writes is what the browser's node reads.
#[tokio::test]
async fn one_node_of_two_polls_and_any_node_serves_the_browser() {
    let Some(url) = crate::store::postgres_url() else {
        return;
    };
    let fake = FakeBotApi::start().await;
    let a = app_with_bot(&fake, UpdateMode::Polling, |c| c.database_url = url.clone()).await;
    let b = app_with_bot(&fake, UpdateMode::Polling, |c| c.database_url = url.clone()).await;
    let client = a.confidential_client().await;
    let browser = Browser::new();
    let login = open_login_page(&a, &browser, &client).await;
    let user = TgUser::new(7_100_010);
    fake.push_update(fake.update(start(&user, &login.payload)));
    let sent = fake.wait_for("sendMessage", 1).await;
    // Give a second poller every chance to take the same update: two more long polls.
    let polls = fake.calls("getUpdates").len();
    fake.wait_for("getUpdates", polls + 2).await;
    let sent_now = fake.calls("sendMessage");
    assert_eq!(
        sent_now.len(),
        1,
        "one /start, one answer: {:?}",
        sent_now.iter().map(|c| &c.body["text"]).collect::<Vec<_>>()
    );
    let approve = number_button(&sent[0], login.match_code);
    fake.push_update(fake.update(button(&user, user.id, 5, &approve)));
    fake.wait_for("editMessageText", 1).await;
    // The other node sees the answer (the binding cookie is not tied to a port).
    assert_eq!(status(&b, &browser, &login.id).await.1, "approved");
    let code = continue_to_app(&a, &browser, &login).await;
    redeem(&a, &client, &code).await;
    a.stop().await;
    b.stop().await;
}
