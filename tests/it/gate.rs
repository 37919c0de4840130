//! Every login way passes the one gate: with an access policy that refuses one Telegram id, that
//! user gets nothing on any way (Login Widget, Telegram's OpenID Connect, the bot deep link,
//! Mini App and widget token exchange, a device approved on the page or in the bot), while
//! another user on the same server gets through the same way.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::Value;
use telegram_oidc::config::UpdateMode;
use telegram_oidc::flow::policy::{Admission, LoginPolicy};
use telegram_oidc::store::{ClientRecord, UserRecord};

use crate::deeplink::{collect, open_login_page, start};
use crate::device::{authorize_device, device_code, public_client};
use crate::fake_bot_api::{FakeBotApi, WEBHOOK_SECRET, app_with_bot_gated, button, number_button};
use crate::fake_telegram_oidc::{FakeTelegramOidc, FakeUser};
use crate::harness::*;
use crate::miniapp::{exchange, exchange_init_data, init_data, mini_app_client};
use crate::upstream::{go_to_telegram, upstream_config};

/// The one user the policy refuses.
pub(crate) const REFUSED: i64 = 6_660_001;
/// A user the same policy lets in.
pub(crate) const ADMITTED: i64 = 6_660_002;

/// Refuses `REFUSED` everywhere and counts how often it was asked.
#[derive(Default)]
struct RefuseOne {
    asked: AtomicUsize,
}

#[async_trait]
impl LoginPolicy for RefuseOne {
    fn applies_to(&self, _client: &ClientRecord) -> bool {
        true
    }

    async fn admit(&self, user: &UserRecord, _client: &ClientRecord) -> Admission {
        self.asked.fetch_add(1, Ordering::SeqCst);
        if user.telegram_id == REFUSED {
            Admission::Refuse {
                rule: "test: refused id".into(),
            }
        } else {
            Admission::Admit
        }
    }
}

/// A server with the bot (webhook) and Telegram's OpenID Connect as login methods, gated.
async fn gated_app(bot: &FakeBotApi, upstream: &FakeTelegramOidc) -> (TestApp, Arc<RefuseOne>) {
    let policy = Arc::new(RefuseOne::default());
    let config = upstream_config(upstream);
    let app = app_with_bot_gated(
        bot,
        UpdateMode::Webhook,
        |c| c.telegram_oidc = Some(config),
        Some(policy.clone()),
    )
    .await;
    upstream.use_clock(app.clock.clone());
    (app, policy)
}

pub(crate) fn authorize_url(app: &TestApp, client: &TestClient) -> String {
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id())
        .append_pair("redirect_uri", &client.redirect_uri)
        .append_pair("scope", "openid profile")
        .append_pair("state", "gate-state");
    url.to_string()
}

/// Follows redirects from `url` until something other than a redirect within the server.
pub(crate) async fn follow(
    app: &TestApp,
    browser: &Browser,
    mut url: String,
) -> (StatusCode, String) {
    for _ in 0..8 {
        let resp = browser.get(&url).await;
        let status = resp.status();
        if status != StatusCode::SEE_OTHER && status != StatusCode::FOUND {
            return (status, resp.text().await.unwrap());
        }
        let next = absolute(app, &location(resp.headers()));
        if !next.starts_with(app.base.as_str()) || next.contains("/consent?") {
            return (status, next);
        }
        url = next;
    }
    panic!("too many redirects");
}

/// Where a login's answer leads: a blocked user is refused on the spot (the first step of the
/// gate); a policy refuses after the redirect, once the app is known.
async fn end_of(app: &TestApp, browser: &Browser, resp: reqwest::Response) -> (StatusCode, String) {
    if resp.status() == StatusCode::FORBIDDEN {
        return (resp.status(), resp.text().await.unwrap());
    }
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    follow(app, browser, absolute(app, &location(resp.headers()))).await
}

fn assert_refused_page((status, body): &(StatusCode, String)) {
    assert_eq!(*status, StatusCode::FORBIDDEN, "{body}");
    assert!(
        body.contains("has not let this Telegram account in"),
        "the page says the admin has not let them in: {body}"
    );
    assert!(!body.contains("test: refused id"), "never which rule");
}

/// The widget in a browser: the refused user ends on a page, the admitted one at consent.
pub(crate) async fn widget_way(app: &TestApp) {
    let client = app.confidential_client().await;
    for (id, refused) in [(REFUSED, true), (ADMITTED, false)] {
        let browser = Browser::new();
        let resp = browser.get(&authorize_url(app, &client)).await;
        let req = req_of(&location(resp.headers()));
        let fields = widget_fields(&TgUser::new(id), app.now(), BOT_TOKEN);
        let callback = format!(
            "{}?{}",
            app.url(&format!("/login/telegram/{req}")),
            encode(&fields)
        );
        let end = follow(app, &browser, callback).await;
        if refused {
            assert_refused_page(&end);
        } else {
            assert!(end.1.contains("/consent?req="), "{end:?}");
        }
    }
}

/// Telegram's own OpenID Connect in a browser.
pub(crate) async fn telegram_oidc_way(app: &TestApp, upstream: &FakeTelegramOidc) {
    let client = app.confidential_client().await;
    for (id, refused) in [(REFUSED, true), (ADMITTED, false)] {
        upstream.log_in_as(FakeUser::new(id));
        let browser = Browser::new();
        let at = go_to_telegram(app, &browser, &authorize_url(app, &client)).await;
        let resp = browser.get(&at.callback).await;
        let end = end_of(app, &browser, resp).await;
        if refused {
            assert_refused_page(&end);
        } else {
            assert!(end.1.contains("/consent?req="), "{end:?}");
        }
    }
}

/// The bot deep link, approved in the chat and collected by the waiting browser.
pub(crate) async fn bot_way(app: &TestApp, bot: &FakeBotApi) {
    let client = app.confidential_client().await;
    for (id, refused) in [(REFUSED, true), (ADMITTED, false)] {
        let browser = Browser::new();
        let login = open_login_page(app, &browser, &client).await;
        let user = TgUser::new(id);
        let before = bot.calls("sendMessage").len();
        bot.deliver(
            app,
            &bot.update(start(&user, &login.payload)),
            Some(WEBHOOK_SECRET),
        )
        .await;
        let approve = number_button(&bot.calls("sendMessage")[before], login.match_code);
        bot.deliver(
            app,
            &bot.update(button(&user, user.id, 900, &approve)),
            Some(WEBHOOK_SECRET),
        )
        .await;
        let resp = collect(app, &browser, &login).await;
        let end = end_of(app, &browser, resp).await;
        if refused {
            assert_refused_page(&end);
        } else {
            assert!(end.1.contains("/consent?req="), "{end:?}");
        }
    }
}

/// Mini App initData and widget data from a WebView, traded at the token endpoint.
pub(crate) async fn token_exchange_way(app: &TestApp) {
    let client = mini_app_client(app, None, ClientSpec::default()).await;
    // Widget data of another second than the browser way's, which was used once already.
    app.clock.advance(2);
    for (id, refused) in [(REFUSED, true), (ADMITTED, false)] {
        let (status, body) = exchange_init_data(app, &client, &init_data(app, id)).await;
        let fields = widget_fields(&TgUser::new(id), app.now(), BOT_TOKEN);
        let widget = encode(&fields);
        let (widget_status, widget_body) = exchange(
            app,
            &client,
            &[
                ("grant_type", crate::miniapp::GRANT),
                ("subject_token", widget.as_str()),
                ("subject_token_type", crate::miniapp::WIDGET),
            ],
        )
        .await;
        for (status, body) in [(status, body), (widget_status, widget_body)] {
            if refused {
                assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
                assert_eq!(body["error"], "access_denied", "{body}");
                assert!(body.get("access_token").is_none());
            } else {
                assert_eq!(status, StatusCode::OK, "{body}");
                assert!(body["access_token"].is_string());
            }
        }
    }
}

/// A device code approved on the `/device` page.
pub(crate) async fn device_page_way(app: &TestApp) {
    let client = public_client(app).await;
    for (id, refused) in [(REFUSED, true), (ADMITTED, false)] {
        // Widget data of another second than any used before.
        app.clock.advance(2);
        let started = authorize_device(app, &client, "openid").await;
        let typed = started["user_code"].as_str().unwrap().to_owned();
        let browser = Browser::new();
        let page = confirm_on_web_status(app, &browser, &typed, &TgUser::new(id)).await;
        app.clock.advance(6);
        let polled = poll_error_or_ok(app, &client, &device_code(&started)).await;
        if refused {
            assert_refused_page(&page);
            assert_eq!(polled, "access_denied");
        } else {
            assert_eq!(page.0, StatusCode::OK, "{}", page.1);
            assert_eq!(polled, "ok");
        }
    }
}

/// A device code approved in the bot chat.
pub(crate) async fn device_bot_way(app: &TestApp, bot: &FakeBotApi) {
    device_bot_way_polling(app, bot, "access_denied").await
}

/// As [`device_bot_way`]; the refused user's device then polls `refused_poll` (a blocked
/// user is refused before the device code is decided, so it stays pending).
async fn device_bot_way_polling(app: &TestApp, bot: &FakeBotApi, refused_poll: &str) {
    let client = public_client(app).await;
    for (id, refused) in [(REFUSED, true), (ADMITTED, false)] {
        let started = authorize_device(app, &client, "openid").await;
        let link = started["verification_uri_telegram"].as_str().unwrap();
        let payload = link.rsplit('=').next().unwrap();
        let user = TgUser::new(id);
        let before = bot.calls("sendMessage").len();
        bot.deliver(
            app,
            &bot.update(start(&user, payload)),
            Some(WEBHOOK_SECRET),
        )
        .await;
        let code = started["telegram_match_code"].as_i64().unwrap();
        let approve = number_button(&bot.calls("sendMessage")[before], code);
        let edits = bot.calls("editMessageText").len();
        bot.deliver(
            app,
            &bot.update(button(&user, user.id, 901, &approve)),
            Some(WEBHOOK_SECRET),
        )
        .await;
        let edited = bot.calls("editMessageText")[edits].body["text"]
            .as_str()
            .unwrap()
            .to_owned();
        app.clock.advance(6);
        let polled = poll_error_or_ok(app, &client, &device_code(&started)).await;
        if refused {
            assert!(
                edited.contains("has not let this Telegram account in"),
                "{edited}"
            );
            assert_eq!(polled, refused_poll);
        } else {
            assert!(edited.starts_with("Approved"), "{edited}");
            assert_eq!(polled, "ok");
        }
    }
}

/// The device page's answer to Approve, whatever it is.
async fn confirm_on_web_status(
    app: &TestApp,
    browser: &Browser,
    typed: &str,
    user: &TgUser,
) -> (StatusCode, String) {
    let resp = browser
        .post_form(&app.url("/device"), &[("user_code".into(), typed.into())])
        .await;
    let mut url = absolute(app, &location(resp.headers()));
    for _ in 0..6 {
        if url.contains("/device/confirm?") {
            break;
        }
        if url.contains("/login?") {
            let fields = widget_fields(user, app.now(), BOT_TOKEN);
            url = format!(
                "{}?{}",
                app.url(&format!("/login/telegram/{}", req_of(&url))),
                encode(&fields)
            );
        }
        let resp = browser.get(&url).await;
        if resp.status() == StatusCode::FORBIDDEN {
            // Refused at login (a blocked user), before the device is ever asked about.
            return (resp.status(), resp.text().await.unwrap());
        }
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{url}");
        url = absolute(app, &location(resp.headers()));
    }
    let html = browser.get(&url).await.text().await.unwrap();
    let resp = browser
        .post_form(
            &app.url("/device/confirm"),
            &[
                ("req".into(), hidden(&html, "req")),
                ("csrf".into(), hidden(&html, "csrf")),
                ("decision".into(), "approve".into()),
            ],
        )
        .await;
    (resp.status(), resp.text().await.unwrap())
}

/// `ok` when the poll gave tokens, else the error code.
async fn poll_error_or_ok(app: &TestApp, client: &TestClient, device_code: &str) -> String {
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .form(&[
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("device_code", device_code),
            ("client_id", client.id()),
        ])
        .send()
        .await
        .unwrap();
    if resp.status() == StatusCode::OK {
        let body: Value = resp.json().await.unwrap();
        assert!(body["access_token"].is_string());
        return "ok".into();
    }
    let body: Value = resp.json().await.unwrap();
    body["error"].as_str().unwrap_or("").to_owned()
}

#[tokio::test]
async fn every_login_way_passes_the_one_gate() {
    let bot = FakeBotApi::start().await;
    let upstream = FakeTelegramOidc::start().await;
    let (app, policy) = gated_app(&bot, &upstream).await;

    widget_way(&app).await;
    telegram_oidc_way(&app, &upstream).await;
    bot_way(&app, &bot).await;
    token_exchange_way(&app).await;
    device_page_way(&app).await;
    device_bot_way(&app, &bot).await;
    crate::ciba::ciba_way(&app, &bot, REFUSED, ADMITTED).await;

    // Asked on every way, for both users.
    assert!(policy.asked.load(Ordering::SeqCst) >= 16);
    app.stop().await;
}

/// A user an admin blocked is refused on every login way, with no policy at all; another user
/// gets through the same ways. (Not CIBA: there a blocked user's request stays pending
/// instead of being denied.)
#[tokio::test]
async fn a_blocked_user_passes_no_way() {
    let bot = FakeBotApi::start().await;
    let upstream = FakeTelegramOidc::start().await;
    let config = upstream_config(&upstream);
    let app = app_with_bot_gated(
        &bot,
        UpdateMode::Webhook,
        |c| c.telegram_oidc = Some(config),
        None,
    )
    .await;
    upstream.use_clock(app.clock.clone());
    app.store
        .upsert_user(&UserRecord {
            telegram_id: REFUSED,
            first_name: "Blocked".into(),
            last_name: None,
            username: None,
            photo_url: None,
            language_code: None,
            is_premium: false,
            phone_number: None,
            created_at: app.now(),
            updated_at: app.now(),
            groups: None,
        })
        .await
        .unwrap();
    telegram_oidc::admin::block_user(
        app.store.as_ref(),
        &telegram_oidc::admin::Actor::cli(),
        REFUSED,
        app.now() * 1000,
    )
    .await
    .unwrap();

    widget_way(&app).await;
    telegram_oidc_way(&app, &upstream).await;
    bot_way(&app, &bot).await;
    token_exchange_way(&app).await;
    // The device page: the blocked user is refused at login, so the device never gets tokens.
    let client = public_client(&app).await;
    app.clock.advance(2);
    let started = authorize_device(&app, &client, "openid").await;
    let typed = started["user_code"].as_str().unwrap().to_owned();
    let page = confirm_on_web_status(&app, &Browser::new(), &typed, &TgUser::new(REFUSED)).await;
    assert_refused_page(&page);
    app.clock.advance(6);
    assert_ne!(
        poll_error_or_ok(&app, &client, &device_code(&started)).await,
        "ok"
    );
    device_bot_way_polling(&app, &bot, "authorization_pending").await;
    app.stop().await;
}
