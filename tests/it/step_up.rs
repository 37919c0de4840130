//! Step-up: an app asks (`acr_values=urn:telegram-oidc:acr:bot-confirmed`, or its registration
//! requires it) that every login is also confirmed in the bot chat. After the first proof (here
//! the Login Widget) the question goes straight to the user's chat, the page shows the number
//! to press, only that Telegram account's answer counts, and the ID token's `acr` and `amr` say
//! what happened. `prompt=none`, `prompt=login` and a missing bot are covered too.

use reqwest::StatusCode;
use serde_json::Value;
use telegram_oidc::admin::{self, ClientUpdate};
use telegram_oidc::config::UpdateMode;
use telegram_oidc::oidc::acr::{ACR_BOT_CONFIRMED, ACR_TELEGRAM};
use telegram_oidc::oidc::pkce;

use crate::deeplink::{BotLogin, collect, read_bot_login, start, status};
use crate::fake_bot_api::{
    FakeBotApi, WEBHOOK_SECRET, app_with_bot, button, buttons, jwt_claims, number_button,
};
use crate::harness::*;

const VERIFIER: &str = "step-up-verifier_0123456789.abcdefghijklmnopqrstuvwxyz~ABCDEFGHIJ";
const STATE: &str = "st-step-up";

fn authorize_url(app: &TestApp, client: &TestClient, extra: &[(&str, &str)]) -> String {
    let challenge = pkce::s256(VERIFIER);
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.extend_pairs([
        ("response_type", "code"),
        ("client_id", client.id()),
        ("redirect_uri", client.redirect_uri.as_str()),
        ("scope", "openid profile"),
        ("state", STATE),
        ("nonce", "n-step-up"),
        ("code_challenge", challenge.as_str()),
        ("code_challenge_method", "S256"),
    ]);
    query.extend_pairs(extra.iter().copied());
    app.url(&format!("/authorize?{}", query.finish()))
}

const BOT_CONFIRMED: (&str, &str) = ("acr_values", ACR_BOT_CONFIRMED);

/// Follows redirects inside the provider from `url`; returns the first URL that is a page to
/// show (login, consent) or the app's redirect.
async fn follow(app: &TestApp, browser: &Browser, url: &str) -> String {
    let mut url = url.to_owned();
    for _ in 0..6 {
        if url.contains("/login?") || url.contains("/consent?") || !url.starts_with(&app.base) {
            return url;
        }
        let resp = browser.get(&url).await;
        let code = resp.status();
        assert!(
            code == StatusCode::SEE_OTHER || code == StatusCode::FOUND,
            "{url}: {code} {}",
            resp.text().await.unwrap_or_default()
        );
        url = absolute(app, &location(resp.headers()));
    }
    panic!("too many redirects from {url}");
}

/// Logs in with the Login Widget on the login page `login_url`; returns where that leads.
async fn widget_login(app: &TestApp, browser: &Browser, login_url: &str, user: &TgUser) -> String {
    widget_login_at(app, browser, login_url, user, app.now()).await
}

/// [`widget_login`] with widget data signed at `auth_date` (each proof is accepted once).
async fn widget_login_at(
    app: &TestApp,
    browser: &Browser,
    login_url: &str,
    user: &TgUser,
    auth_date: i64,
) -> String {
    let req = req_of(login_url);
    let fields = widget_fields(user, auth_date, BOT_TOKEN);
    let resp = browser
        .get(&format!(
            "{}?{}",
            app.url(&format!("/login/telegram/{req}")),
            encode(&fields)
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    follow(app, browser, &absolute(app, &location(resp.headers()))).await
}

/// The questions ("Log in to ...?") the bot sent since call number `since` of sendMessage
/// (login alerts, sent in the background, may be among the calls too).
fn questions_since(fake: &FakeBotApi, since: usize) -> Vec<crate::fake_bot_api::Call> {
    fake.calls("sendMessage")
        .into_iter()
        .skip(since)
        .filter(|c| {
            c.body["text"]
                .as_str()
                .unwrap_or("")
                .starts_with("Log in to")
        })
        .collect()
}

/// Presses `data` in `user`'s chat; returns the message's new text.
async fn press(app: &TestApp, fake: &FakeBotApi, user: &TgUser, data: &str) -> String {
    let edits = fake.calls("editMessageText").len();
    fake.deliver(
        app,
        &fake.update(button(user, user.id, 77, data)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    fake.calls("editMessageText")
        .get(edits)
        .map(|e| e.body["text"].as_str().unwrap().to_owned())
        .unwrap_or_default()
}

/// The confirmation collected by the browser, then consent: the code for the app.
async fn finish(app: &TestApp, browser: &Browser, login: &BotLogin) -> String {
    let resp = collect(app, browser, login).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let next = follow(app, browser, &absolute(app, &location(resp.headers()))).await;
    let back = if next.contains("/consent?") {
        approve_consent(app, browser, &next).await
    } else {
        next
    };
    assert_eq!(
        query_param(&back, "state").as_deref(),
        Some(STATE),
        "{back}"
    );
    query_param(&back, "code").unwrap_or_else(|| panic!("a code in {back}"))
}

/// The ID token's claims for `code`.
async fn id_token_claims(app: &TestApp, client: &TestClient, code: &str) -> Value {
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
    let body: Value = resp.json().await.unwrap();
    jwt_claims(body["id_token"].as_str().unwrap())
}

/// Widget login with the confirmation asked: the question is in the user's chat, the right
/// number completes it, and the tokens say both proofs happened.
#[tokio::test]
async fn acr_values_ask_the_bot_after_the_widget() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let discovery: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        discovery["acr_values_supported"],
        serde_json::json!([ACR_TELEGRAM, ACR_BOT_CONFIRMED])
    );
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let user = TgUser::new(7_500_001);
    let login_url = follow(
        &app,
        &browser,
        &authorize_url(&app, &client, &[BOT_CONFIRMED]),
    )
    .await;
    assert!(login_url.contains("/login?req="), "{login_url}");
    let sent = fake.calls("sendMessage").len();
    let confirm_url = widget_login(&app, &browser, &login_url, &user).await;
    // Logged in, not yet confirmed: back to the same page, now asking for the confirmation.
    assert_eq!(req_of(&confirm_url), req_of(&login_url));
    let (html, login) = read_bot_login(&browser, &confirm_url).await;
    assert!(
        html.contains("We sent you a question in Telegram"),
        "{html}"
    );
    assert!(
        !html.contains("telegram-widget-script"),
        "no widget: {html}"
    );
    // The question went to the user's own chat, without a /start.
    let asked = questions_since(&fake, sent)[0].clone();
    assert_eq!(asked.body["chat_id"], user.id);
    let text = asked.body["text"].as_str().unwrap();
    assert!(
        text.contains("Log in to Test App (app.example.test) as Ada (@ada_tg)?"),
        "{text}"
    );
    assert_eq!(status(&app, &browser, &login.id).await.1, "opened");

    let edited = press(&app, &fake, &user, &number_button(&asked, login.match_code)).await;
    assert!(edited.starts_with("Approved"), "{edited}");
    let code = finish(&app, &browser, &login).await;
    let claims = id_token_claims(&app, &client, &code).await;
    assert_eq!(claims["acr"], ACR_BOT_CONFIRMED);
    assert_eq!(
        claims["amr"],
        serde_json::json!(["telegram_widget", "telegram_bot"])
    );
    assert_eq!(claims["sub"].as_str().map(|s| !s.is_empty()), Some(true));

    // The session is confirmed now: the next request that asks goes straight on.
    let next = follow(
        &app,
        &browser,
        &authorize_url(&app, &client, &[BOT_CONFIRMED]),
    )
    .await;
    assert!(
        !next.contains("/login?"),
        "a confirmed session is not asked again: {next}"
    );
    // prompt=login asks for both again: a new login, then a new confirmation.
    let again = follow(
        &app,
        &browser,
        &authorize_url(&app, &client, &[BOT_CONFIRMED, ("prompt", "login")]),
    )
    .await;
    assert!(again.contains("/login?req="), "{again}");
    let (_, html) = read_page(&browser, &again).await;
    assert!(
        html.contains("telegram-widget-script"),
        "the login comes first"
    );
    let sent = fake.calls("sendMessage").len();
    let confirm_url = widget_login_at(&app, &browser, &again, &user, app.now() - 1).await;
    let (_, login) = read_bot_login(&browser, &confirm_url).await;
    let asked = questions_since(&fake, sent);
    assert_eq!(asked.len(), 1, "asked again, once");
    let asked = asked[0].clone();
    press(&app, &fake, &user, &number_button(&asked, login.match_code)).await;
    let code = finish(&app, &browser, &login).await;
    let claims = id_token_claims(&app, &client, &code).await;
    assert_eq!(claims["acr"], ACR_BOT_CONFIRMED);
    app.stop().await;
}

async fn read_page(browser: &Browser, url: &str) -> (StatusCode, String) {
    let resp = browser.get(url).await;
    (resp.status(), resp.text().await.unwrap())
}

/// Without the request, a widget login says so: one proof, `acr` of one proof.
#[tokio::test]
async fn without_step_up_the_acr_is_one_proof() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let user = TgUser::new(7_500_002);
    let back = authorize_through(&app, &browser, &authorize_url(&app, &client, &[]), &user).await;
    let code = query_param(&back, "code").unwrap();
    let claims = id_token_claims(&app, &client, &code).await;
    assert_eq!(claims["acr"], ACR_TELEGRAM);
    assert_eq!(claims["amr"], serde_json::json!(["telegram_widget"]));
    // Unknown acr values are voluntary and ignored.
    let back = authorize_through(
        &app,
        &browser,
        &authorize_url(&app, &client, &[("acr_values", "urn:example:unknown")]),
        &user,
    )
    .await;
    assert!(query_param(&back, "code").is_some(), "{back}");
    app.stop().await;
}

/// Only the account that logged in can confirm: another user's press and another user's
/// `/start` of the link change nothing. A wrong number ends the attempt with `access_denied`.
#[tokio::test]
async fn only_the_same_account_confirms() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let user = TgUser::new(7_500_003);
    let other = TgUser::new(7_500_004);
    let login_url = follow(
        &app,
        &browser,
        &authorize_url(&app, &client, &[BOT_CONFIRMED]),
    )
    .await;
    let sent = fake.calls("sendMessage").len();
    let confirm_url = widget_login(&app, &browser, &login_url, &user).await;
    let (_, login) = read_bot_login(&browser, &confirm_url).await;
    let asked = questions_since(&fake, sent)[0].clone();

    // Someone else opens the link: the login is bound to the user, so it is not theirs.
    let sent = fake.calls("sendMessage").len();
    fake.deliver(
        &app,
        &fake.update(start(&other, &login.payload)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let reply = fake
        .calls("sendMessage")
        .into_iter()
        .skip(sent)
        .find(|c| c.body["chat_id"] == other.id)
        .expect("an answer to the other account");
    assert_eq!(reply.body["chat_id"], other.id);
    assert!(
        reply.body["text"].as_str().unwrap().contains("expired"),
        "{}",
        reply.body
    );
    // ... and presses the user's button: refused, nothing decided.
    let answers = fake.calls("answerCallbackQuery").len();
    fake.deliver(
        &app,
        &fake.update(button(
            &other,
            other.id,
            78,
            &number_button(&asked, login.match_code),
        )),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let answer = fake.calls("answerCallbackQuery")[answers].clone();
    assert!(
        answer.body["text"]
            .as_str()
            .unwrap()
            .contains("another Telegram account"),
        "{}",
        answer.body
    );
    assert_eq!(status(&app, &browser, &login.id).await.1, "opened");

    // The user opens the link too (the question again, for them), then presses a wrong number.
    let sent = fake.calls("sendMessage").len();
    fake.deliver(
        &app,
        &fake.update(start(&user, &login.payload)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let again = questions_since(&fake, sent)[0].clone();
    assert!(
        again.body["text"]
            .as_str()
            .unwrap()
            .contains("Log in to Test App"),
        "{}",
        again.body
    );
    let wrong = buttons(&again)
        .into_iter()
        .find(|d| d.starts_with("n:") && !d.ends_with(&format!(":{}", login.match_code)))
        .unwrap();
    let edited = press(&app, &fake, &user, &wrong).await;
    assert!(edited.starts_with("Refused"), "{edited}");
    let resp = collect(&app, &browser, &login).await;
    let back = location(resp.headers());
    assert!(back.starts_with(&client.redirect_uri), "{back}");
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    app.stop().await;
}

/// A user the bot may not write to first (never started it): the page offers the link, and
/// their `/start` asks the question.
#[tokio::test]
async fn a_user_the_bot_cannot_write_to_opens_the_link() {
    let fake = FakeBotApi::start().await;
    let app = app_with_bot(&fake, UpdateMode::Webhook, |_| {}).await;
    let mut client = app.confidential_client().await;
    // The app requires it for every login, without asking in the request.
    client.record = admin::update_client(
        app.store.as_ref(),
        client.id(),
        ClientUpdate {
            access_policy: None,
            scopes: None,
            require_bot_confirmation: Some(true),
            ..ClientUpdate::default()
        },
    )
    .await
    .unwrap();
    let browser = Browser::new();
    let user = TgUser::new(7_500_005);
    fake.block(user.id);
    let login_url = follow(&app, &browser, &authorize_url(&app, &client, &[])).await;
    let confirm_url = widget_login(&app, &browser, &login_url, &user).await;
    let (html, login) = read_bot_login(&browser, &confirm_url).await;
    assert!(html.contains("Confirm in the Telegram bot"), "{html}");
    assert!(!html.contains("We sent you a question"), "{html}");

    // prompt=none meanwhile: the app hears that interaction is needed.
    let other_tab = follow(
        &app,
        &browser,
        &authorize_url(&app, &client, &[("prompt", "none")]),
    )
    .await;
    assert_eq!(
        query_param(&other_tab, "error").as_deref(),
        Some("interaction_required"),
        "{other_tab}"
    );

    let sent = fake.calls("sendMessage").len();
    fake.unblock(user.id);
    fake.deliver(
        &app,
        &fake.update(start(&user, &login.payload)),
        Some(WEBHOOK_SECRET),
    )
    .await;
    let asked = questions_since(&fake, sent)[0].clone();
    press(&app, &fake, &user, &number_button(&asked, login.match_code)).await;
    let code = finish(&app, &browser, &login).await;
    let claims = id_token_claims(&app, &client, &code).await;
    assert_eq!(claims["acr"], ACR_BOT_CONFIRMED);
    assert_eq!(
        claims["amr"],
        serde_json::json!(["telegram_widget", "telegram_bot"])
    );
    app.stop().await;
}

/// Without a bot to ask, a login that needs the confirmation cannot happen: the app hears
/// `access_denied` rather than getting a weaker login.
#[tokio::test]
async fn without_a_bot_the_app_is_told() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let user = TgUser::new(7_500_006);
    let login_url = follow(
        &app,
        &browser,
        &authorize_url(&app, &client, &[BOT_CONFIRMED]),
    )
    .await;
    let back = widget_login(&app, &browser, &login_url, &user).await;
    assert!(back.starts_with(&client.redirect_uri), "{back}");
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert!(query_param(&back, "code").is_none());
    app.stop().await;
}
