//! The askama pages and the headers every page carries (content security policy, no caching).

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::secrets::random_bytes;
// The templates call these as `self::t(...)`.
use crate::web::i18n::{lang, t, tf};

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage<'a> {
    pub base: &'a str,
    pub title: &'a str,
    pub message: &'a str,
}

#[derive(Template)]
#[template(path = "login.html")]
pub struct LoginPage<'a> {
    pub base: &'a str,
    pub client_name: &'a str,
    pub bot_username: &'a str,
    pub widget_script_url: &'a str,
    pub callback_url: &'a str,
    pub js_mode: bool,
    pub nonce: &'a str,
    /// How long the widget script may take before the page offers the other ways in.
    pub widget_timeout_ms: u64,
    pub emulator_url: Option<String>,
    /// The start of a login through Telegram's own OpenID Connect provider, when configured.
    pub telegram_oidc_url: Option<String>,
    /// Whether that login asks Telegram for the phone number.
    pub shares_phone: bool,
    /// A login confirmed in the bot chat: link, QR code, and where to check for the answer.
    pub bot_login: Option<crate::web::deeplink::BotLoginView>,
}

#[derive(Template)]
#[template(path = "consent.html")]
pub struct ConsentPage<'a> {
    pub base: &'a str,
    pub client_name: &'a str,
    /// The host the app's redirect URI points at.
    pub app_domain: &'a str,
    /// The user's full name, and Telegram username when there is one.
    pub user_name: &'a str,
    pub username: Option<&'a str>,
    pub scopes: Vec<&'a str>,
    pub req: &'a str,
    pub csrf: &'a str,
    pub action: &'a str,
}

#[derive(Template)]
#[template(path = "emulator.html")]
pub struct EmulatorPage<'a> {
    pub base: &'a str,
    pub req: &'a str,
    pub action: &'a str,
    pub default_id: &'a str,
}

#[derive(Template)]
#[template(path = "callback.html")]
pub struct DemoCallbackPage<'a> {
    pub base: &'a str,
    pub code: &'a str,
    pub error: Option<&'a str>,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub token_endpoint: &'a str,
    /// The demo client's secret (dev mode only: it is printed in the terminal too).
    pub client_secret: &'a str,
    /// How long the code lives, counted down on the page.
    pub code_ttl_secs: i64,
    pub nonce: &'a str,
}

#[derive(Template)]
#[template(path = "form_post.html")]
pub struct FormPostPage<'a> {
    pub action: &'a str,
    pub fields: Vec<(String, String)>,
    pub nonce: &'a str,
}

#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    pub base: &'a str,
    pub title: &'a str,
    pub message: &'a str,
}

#[derive(Template)]
#[template(path = "logout.html")]
pub struct LogoutPage<'a> {
    pub base: &'a str,
    pub client_name: Option<&'a str>,
    pub action: &'a str,
    pub csrf: &'a str,
    pub client_id: &'a str,
    pub post_logout_redirect_uri: &'a str,
    pub state: &'a str,
}

/// A fresh nonce for inline scripts allowed by the content security policy.
pub fn csp_nonce() -> String {
    hex::encode(random_bytes::<16>())
}

/// The origin of a URL (`scheme://host[:port]`), for CSP source lists.
pub fn origin_of(url: &str) -> Option<String> {
    let parsed = url::Url::parse(url).ok()?;
    match parsed.origin() {
        url::Origin::Tuple(..) => Some(parsed.origin().ascii_serialization()),
        url::Origin::Opaque(_) => None,
    }
}

/// Where an app lives, as a person can check it: the host of its redirect URI (punycode for an
/// international name, so that look-alike letters show), or the scheme of a native app's URI.
pub fn app_domain(redirect_uri: &str) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(url) => match url.host_str() {
            Some(host) => host.to_owned(),
            None => url.scheme().to_owned(),
        },
        Err(_) => String::new(),
    }
}

/// Renders a page with the given status and content security policy.
pub fn render(status: StatusCode, page: &impl Template, csp: &str) -> Response {
    match page.render() {
        Ok(html) => {
            let mut response = (status, Html(html)).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            if let Ok(value) = HeaderValue::from_str(csp) {
                headers.insert(header::CONTENT_SECURITY_POLICY, value);
            }
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "template failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "the page could not be shown",
            )
                .into_response()
        }
    }
}

/// The policy of a page with no script at all; `form_targets` lists where its forms may lead
/// (a form's redirect to an app counts as a form target in browsers that enforce it).
pub fn strict_csp(form_targets: &[String]) -> String {
    let mut form_action = String::from("'self'");
    for t in form_targets {
        form_action.push(' ');
        form_action.push_str(t);
    }
    format!(
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action {form_action}; base-uri 'none'; frame-ancestors 'none'"
    )
}

/// An error page whose stylesheet lives under the issuer's path `base`. Handlers return a
/// `web::browser_error::BrowserError`, which draws its pages with this.
pub fn error_page_at(base: &str, status: StatusCode, title: &str, message: &str) -> Response {
    render(
        status,
        &ErrorPage {
            base,
            title,
            message,
        },
        &strict_csp(&[]),
    )
}
