//! A login page that never dead-ends: the other ways in when telegram.org's widget does not load
//! (a fallback block the page's script reveals) and without JavaScript (server-rendered links);
//! the bot login on by default; and a consent page that names the app's domain and the user,
//! with "Not you? Sign out".

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, SET_COOKIE};
use telegram_oidc::config::{Secret, UpdateMode};
use telegram_oidc::telegram::widget;

use crate::fake_bot_api::{FakeBotApi, app_with_bot};
use crate::fake_telegram_oidc::FakeTelegramOidc;
use crate::harness::*;
use crate::upstream::upstream_config;

fn authorize_url(app: &TestApp, client: &TestClient) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client.id()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid profile"),
            ("state", "s"),
            ("nonce", "n"),
        ])
        .finish();
    app.url(&format!("/authorize?{query}"))
}

/// The login page of a new authorization: its URL, its CSP and its HTML.
async fn login_page(
    app: &TestApp,
    browser: &Browser,
    client: &TestClient,
) -> (String, String, String) {
    let resp = browser.get(&authorize_url(app, client)).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let url = absolute(app, &location(resp.headers()));
    let page = browser.get(&url).await;
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page
        .headers()
        .get(CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    (url, csp, page.text().await.unwrap())
}

/// The element that starts at the first `<tag ... id="id"` and its text up to `</tag>`.
fn element<'a>(html: &'a str, tag: &str, id: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"{id}\""))
        .and_then(|at| html[..at].rfind(&format!("<{tag}")))
        .unwrap_or_else(|| panic!("no <{tag} id={id}> in {html}"));
    let end = html[start..].find(&format!("</{tag}>")).unwrap() + start;
    &html[start..end]
}

fn between<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
    let start = html
        .find(open)
        .unwrap_or_else(|| panic!("no {open} in {html}"));
    let end = html[start..].find(close).unwrap() + start;
    &html[start..end]
}

/// The page's HTML without its scripts: what a browser without JavaScript shows.
fn without_scripts(html: &str) -> String {
    let mut out = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<script") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("</script>").unwrap() + start + "</script>".len();
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn when_the_widget_does_not_load_the_page_shows_the_other_ways_in() {
    let bot = FakeBotApi::start().await;
    let upstream = FakeTelegramOidc::start().await;
    let oidc = upstream_config(&upstream);
    // The defaults: a bot token and no webhook secret, so the bot login polls.
    let app = app_with_bot(&bot, UpdateMode::Auto, move |c| {
        c.telegram.webhook_secret = Secret::default();
        c.telegram_oidc = Some(oidc);
    })
    .await;
    let client = app.confidential_client().await;
    let (_, csp, html) = login_page(&app, &Browser::new(), &client).await;

    // The widget, loaded from telegram.org under a strict policy: scripts only with this
    // page's nonce or from the widget's origin, nothing inline without the nonce.
    assert!(html.contains("id=\"telegram-widget-script\""), "{html}");
    assert!(html.contains("data-telegram-login=\"test_login_bot\""));
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    let nonce = csp
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .expect("a script nonce");
    assert!(csp.contains("script-src 'nonce-") && csp.contains("https://telegram.org"));
    for script in html.split("<script").skip(1) {
        let tag = &script[..script.find('>').unwrap()];
        assert!(
            tag.contains(&format!("nonce=\"{nonce}\""))
                || tag.contains("src=\"https://telegram.org/"),
            "a script the policy would block: {tag}"
        );
    }
    // Its failure is watched for: the script's error event, and a timeout.
    assert!(html.contains("addEventListener(\"error\""), "{html}");
    assert!(html.contains("}, 6000);"), "{html}");

    // The fallback, hidden until the script reveals it, names the other ways.
    let fallback = element(&html, "div", "widget-fallback");
    assert!(fallback.contains(" hidden>"), "{fallback}");
    assert!(fallback.contains("did not load"), "{fallback}");
    assert!(
        fallback.contains("href=\"/login/telegram-oidc/start?req="),
        "Log in with Telegram: {fallback}"
    );
    assert!(fallback.contains("href=\"#bot-login\""), "{fallback}");

    // Without JavaScript: a notice, and ways in that need none: Telegram's OIDC (a link), the
    // bot link with its QR code and the form that collects the answer.
    let noscript = between(&html, "<noscript>", "</noscript>");
    assert!(noscript.contains("work without it"), "{noscript}");
    let static_page = without_scripts(&html);
    assert!(static_page.contains("href=\"/login/telegram-oidc/start?req="));
    assert!(static_page.contains("href=\"https://t.me/test_login_bot?start="));
    assert!(static_page.contains("<svg"), "the QR code");
    let form = element(&static_page, "form", "bot-complete");
    assert!(form.contains("type=\"submit\""), "{form}");

    // The bot login is on by default: the server polls the Bot API.
    bot.wait_for("getUpdates", 1).await;
    app.stop().await;
}

#[tokio::test]
async fn with_no_other_way_configured_the_fallback_says_what_to_do() {
    let app = TestApp::start_with(|c| c.telegram.updates = UpdateMode::None).await;
    let client = app.confidential_client().await;
    let (_, _, html) = login_page(&app, &Browser::new(), &client).await;
    let fallback = element(&html, "div", "widget-fallback");
    assert!(fallback.contains("ask the administrator"), "{fallback}");
    assert!(
        !html.contains("t.me/"),
        "updates = none turns the bot login off"
    );
    let noscript = between(&html, "<noscript>", "</noscript>");
    assert!(!noscript.contains("other ways"), "{noscript}");
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_secret_makes_the_default_a_webhook() {
    let bot = FakeBotApi::start().await;
    let app = app_with_bot(&bot, UpdateMode::Auto, |_| {}).await;
    let resp = reqwest::Client::new()
        .post(app.url("/telegram/webhook"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::UNAUTHORIZED,
        "the webhook is served"
    );
    assert!(bot.calls("getUpdates").is_empty(), "and nothing polls");
    app.stop().await;
}

/// Logs in through the widget as `id` with a last name, and returns the consent page's URL.
async fn log_in_to_consent(
    app: &TestApp,
    browser: &Browser,
    login: &str,
    id: i64,
    name: (&str, &str, &str),
) -> String {
    let req = req_of(login);
    let mut fields = vec![
        ("id".to_string(), id.to_string()),
        ("first_name".to_string(), name.0.to_string()),
        ("last_name".to_string(), name.1.to_string()),
        ("username".to_string(), name.2.to_string()),
        ("auth_date".to_string(), app.now().to_string()),
    ];
    let hash = widget::sign(&fields, BOT_TOKEN);
    fields.push(("hash".into(), hash));
    let resp = browser
        .get(&format!(
            "{}?{}",
            app.url(&format!("/login/telegram/{req}")),
            encode(&fields)
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = browser.get(&absolute(app, &location(resp.headers()))).await;
    let consent = absolute(app, &location(resp.headers()));
    assert!(consent.contains("/consent?req="), "{consent}");
    consent
}

#[tokio::test]
async fn the_consent_page_names_the_app_domain_and_the_user_with_a_way_out() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let (login, _, _) = login_page(&app, &browser, &client).await;
    let consent = log_in_to_consent(
        &app,
        &browser,
        &login,
        6_200_001,
        ("Ada", "Lovelace", "ada_tg"),
    )
    .await;
    let html = browser.get(&consent).await.text().await.unwrap();
    assert!(html.contains("<strong>Test App</strong>"), "{html}");
    assert!(
        element(&html, "span", "app-domain").ends_with(">app.example.test"),
        "{html}"
    );
    assert!(
        element(&html, "strong", "user-name").ends_with(">Ada Lovelace"),
        "{html}"
    );
    assert!(
        element(&html, "span", "user-username").ends_with(">@ada_tg"),
        "{html}"
    );
    assert!(
        html.contains("Not you?") && html.contains("value=\"switch\""),
        "{html}"
    );
    let (req, csrf) = consent_form(&browser, &consent).await;

    // A forged answer (another page's token) signs nobody out.
    let resp = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("req".into(), req.clone()),
                ("csrf".into(), "forged".into()),
                ("decision".into(), "switch".into()),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        browser.get(&consent).await.status(),
        StatusCode::OK,
        "still signed in"
    );

    // "Not you? Sign out": the session ends and the same authorization asks for a login.
    let resp = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("req".into(), req),
                ("csrf".into(), csrf),
                ("decision".into(), "switch".into()),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let back_to_login = absolute(&app, &location(resp.headers()));
    assert_eq!(
        req_of(&back_to_login),
        req_of(&login),
        "the same authorization"
    );
    assert!(back_to_login.contains("/login?req="), "{back_to_login}");
    let cleared = resp
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .any(|c| c.to_str().unwrap().contains("Max-Age=0"));
    assert!(cleared, "the session cookie is cleared");
    let resp = browser.get(&consent).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER, "no session any more");
    assert!(location(resp.headers()).contains("/login?req="));

    // Someone else logs in and allows the app.
    let consent = log_in_to_consent(
        &app,
        &browser,
        &back_to_login,
        6_200_002,
        ("Grace", "Hopper", "grace_tg"),
    )
    .await;
    let html = browser.get(&consent).await.text().await.unwrap();
    assert!(
        html.contains("Grace Hopper") && !html.contains("Ada"),
        "{html}"
    );
    let back = approve_consent(&app, &browser, &consent).await;
    assert!(
        back.starts_with(&client.redirect_uri) && back.contains("code="),
        "{back}"
    );
    app.stop().await;
}
