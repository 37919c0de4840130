//! The `/account` page over HTTP: a Telegram login through the ordinary login pages, the
//! apps and browsers it lists, Revoke and Sign out behind a CSRF token, in English and
//! Russian. On SQLite, and on PostgreSQL when `TEST_DATABASE_URL` is set.

use reqwest::StatusCode;
use reqwest::header::SET_COOKIE;
use telegram_oidc::config::AlertsDefault;

use crate::account::{
    CHROME_ANDROID, FIREFOX, account_app, assert_live, browser, databases, log_in, register,
    signed_in, text,
};
use crate::fake_bot_api::FakeBotApi;
use crate::harness::*;

/// Logs in on the account page through the widget: `/account`, the login page, the widget's
/// callback, back to `/account`. Returns the page.
pub async fn account_login(app: &TestApp, browser: &Browser, user: i64) -> String {
    app.clock.advance(1);
    let resp = browser.get(&app.url("/account")).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let login = absolute(app, &location(resp.headers()));
    let req = req_of(&login);
    let page = browser.get(&login).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    assert!(
        page.contains("your account") || page.contains("ваш аккаунт"),
        "{page}"
    );
    let fields = widget_fields(&TgUser::new(user), app.now(), BOT_TOKEN);
    let mut url = format!(
        "{}?{}",
        app.url(&format!("/login/telegram/{req}")),
        encode(&fields)
    );
    for _ in 0..4 {
        let resp = browser.get(&url).await;
        if resp.status() == StatusCode::OK {
            return resp.text().await.unwrap();
        }
        assert_eq!(resp.status(), StatusCode::SEE_OTHER, "{url}");
        url = absolute(app, &location(resp.headers()));
    }
    panic!("the login did not end on the account page");
}

/// The hidden `target` of the form around the entry that mentions `needle`.
fn target_near(html: &str, needle: &str) -> String {
    let at = html
        .find(needle)
        .unwrap_or_else(|| panic!("no {needle} on the page"));
    hidden(&html[at..], "target")
}

async fn act(
    app: &TestApp,
    browser: &Browser,
    csrf: &str,
    action: &str,
    target: &str,
) -> reqwest::Response {
    browser
        .post_form(
            &app.url("/account"),
            &[
                ("csrf".into(), csrf.into()),
                ("action".into(), action.into()),
                ("target".into(), target.into()),
            ],
        )
        .await
}

#[tokio::test]
async fn the_account_page_revokes_and_signs_out_behind_csrf() {
    for database in databases() {
        let bot = FakeBotApi::start().await;
        let app = account_app(&bot, database, |_| {}).await;
        let client = register(&app, "Grafana", "grafana.example.test", None).await;
        let user = 5_600_001;
        let other = browser(CHROME_ANDROID);
        let mut tokens = log_in(&app, &client, &other, user).await;
        let b = browser(FIREFOX);
        let html = account_login(&app, &b, user).await;
        assert!(
            html.contains("Grafana") && html.contains("grafana.example.test"),
            "{html}"
        );
        assert!(html.contains("Firefox on Linux") && html.contains("(this browser)"));
        assert!(html.contains("Chrome on Android"));
        let csrf = hidden(&html, "csrf");

        // A form from elsewhere, or without this browser's session, is refused.
        let resp = act(&app, &b, "forged", "revoke", &target_near(&html, "Grafana")).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let resp = act(
            &app,
            &Browser::new(),
            &csrf,
            "revoke",
            &target_near(&html, "Grafana"),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert_live(&app, &client, &mut tokens, true).await;
        let resp = act(&app, &b, &csrf, "explode", "x").await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

        let resp = act(&app, &b, &csrf, "revoke", &target_near(&html, "Grafana")).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert!(location(resp.headers()).ends_with("/account?done=revoked"));
        assert_live(&app, &client, &mut tokens, false).await;
        let html = b
            .get(&app.url("/account?done=revoked"))
            .await
            .text()
            .await
            .unwrap();
        assert!(html.contains("access was revoked"), "{html}");
        assert!(!html.contains("grafana.example.test"), "{html}");

        // Sign out the other browser, then this one.
        let resp = act(
            &app,
            &b,
            &csrf,
            "sign_out",
            &target_near(&html, "Chrome on Android"),
        )
        .await;
        assert!(location(resp.headers()).ends_with("/account?done=signed_out"));
        assert!(!signed_in(&app, &other).await);
        let html = b.get(&app.url("/account")).await.text().await.unwrap();
        let resp = act(
            &app,
            &b,
            &csrf,
            "sign_out",
            &target_near(&html, "Firefox on Linux"),
        )
        .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let cookie = resp
            .headers()
            .get(SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert!(cookie.contains("Max-Age=0"), "{cookie}");
        assert!(!signed_in(&app, &b).await);

        // Sign out everywhere: both browsers of a user.
        let one = browser(FIREFOX);
        let two = browser(CHROME_ANDROID);
        account_login(&app, &two, user).await;
        let html = account_login(&app, &one, user).await;
        let resp = act(&app, &one, &hidden(&html, "csrf"), "sign_out_all", "").await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(!signed_in(&app, &one).await);
        assert!(!signed_in(&app, &two).await);
        app.stop().await;
    }
}

#[tokio::test]
async fn the_account_page_speaks_russian_and_its_login_alerts() {
    let bot = FakeBotApi::start().await;
    let app = account_app(&bot, None, |c| {
        c.account.login_alerts = AlertsDefault::Everyone
    })
    .await;
    let b = Browser {
        http: reqwest::Client::builder()
            .cookie_store(true)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(FIREFOX)
            .default_headers(
                [(
                    reqwest::header::ACCEPT_LANGUAGE,
                    reqwest::header::HeaderValue::from_static("ru-RU,ru;q=0.9"),
                )]
                .into_iter()
                .collect(),
            )
            .build()
            .unwrap(),
    };
    let html = account_login(&app, &b, 5_700_001).await;
    assert!(html.contains("Ваши входы через Telegram"), "{html}");
    assert!(html.contains("Выйти везде"), "{html}");
    // A login to the account page is a login like any other: it is alerted.
    let alert = bot.wait_for("sendMessage", 1).await[0].clone();
    assert!(text(&alert).contains("New login to your account page"));
    app.stop().await;
}
