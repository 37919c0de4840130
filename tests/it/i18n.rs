//! The pages speak the language of `Accept-Language`: English or Russian.

use reqwest::StatusCode;
use reqwest::header::{ACCEPT_LANGUAGE, CONTENT_LANGUAGE, VARY};

use crate::harness::*;

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

async fn page(browser: &Browser, url: &str, accept_language: Option<&str>) -> (String, String) {
    let mut request = browser.http.get(url);
    if let Some(value) = accept_language {
        request = request.header(ACCEPT_LANGUAGE, value);
    }
    let response = request.send().await.unwrap();
    let content_language = response
        .headers()
        .get(CONTENT_LANGUAGE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let vary: Vec<_> = response.headers().get_all(VARY).iter().collect();
    assert!(
        vary.iter()
            .any(|v| v.to_str().unwrap().contains("Accept-Language")),
        "a page that depends on Accept-Language must say so in Vary: {vary:?}"
    );
    (content_language, response.text().await.unwrap())
}

#[tokio::test]
async fn login_page_follows_accept_language() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let resp = browser.get(&authorize_url(&app, &client)).await;
    let login = absolute(&app, &location(resp.headers()));
    assert!(login.contains("/login?"), "{login}");

    let (lang, html) = page(&browser, &login, Some("ru-RU,ru;q=0.9,en-US;q=0.8")).await;
    assert_eq!(lang, "ru");
    assert!(html.contains(r#"<html lang="ru">"#), "{html}");
    assert!(html.contains("Вход в "), "{html}");
    assert!(!html.contains("Sign in to "), "{html}");

    for accept in [
        None,
        Some("en-US,en;q=0.9"),
        Some("de-DE"),
        Some("de, ru;q=0"),
    ] {
        let (lang, html) = page(&browser, &login, accept).await;
        assert_eq!(lang, "en", "{accept:?}");
        assert!(html.contains(r#"<html lang="en">"#), "{accept:?}");
        assert!(html.contains("Sign in to "), "{accept:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn error_and_consent_pages_speak_russian() {
    let app = TestApp::start().await;
    let client = app.confidential_client().await;
    let browser = Browser::new();

    let unknown = app.url("/authorize?response_type=code&client_id=no-such-app&scope=openid");
    let response = browser
        .http
        .get(&unknown)
        .header(ACCEPT_LANGUAGE, "ru")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let html = response.text().await.unwrap();
    assert!(
        html.contains("Этот запрос на вход нельзя использовать"),
        "{html}"
    );
    assert!(
        html.contains("Приложение, которое направило вас сюда, не зарегистрировано."),
        "{html}"
    );

    // Log in, then look at the consent page in Russian: buttons and scopes are translated,
    // while the form fields the server reads keep their names and values.
    let resp = browser.get(&authorize_url(&app, &client)).await;
    let login = absolute(&app, &location(resp.headers()));
    let fields = widget_fields(&TgUser::new(4242), app.now(), BOT_TOKEN);
    let callback = format!(
        "{}?{}",
        app.url(&format!("/login/telegram/{}", req_of(&login))),
        encode(&fields)
    );
    let mut url = callback;
    let consent = loop {
        let resp = browser.get(&url).await;
        let next = absolute(&app, &location(resp.headers()));
        if next.contains("/consent?") {
            break next;
        }
        url = next;
    };
    let (lang, html) = page(&browser, &consent, Some("ru")).await;
    assert_eq!(lang, "ru");
    for text in [
        "Отклонить",
        "Разрешить",
        "Ваше имя, имя пользователя и фото профиля",
        r#"name="decision" value="approve""#,
    ] {
        assert!(html.contains(text), "{text} missing: {html}");
    }
    app.stop().await;
}
