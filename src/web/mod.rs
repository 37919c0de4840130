//! Everything HTTP: every axum handler and page, the router, the extractors that turn malformed
//! input into OAuth errors, the browser session cookie, and how errors are written.

pub mod account;
pub mod admin_api;
pub mod admin_desk;
pub mod authorize;
pub mod body_deadline;
pub mod browser_error;
pub mod ciba;
pub mod client_addr;
pub mod consent;
pub mod csrf;
pub mod deeplink;
pub mod device;
pub mod discovery;
pub mod emulator;
pub mod errors;
pub mod extract;
pub mod i18n;
pub mod introspect;
pub mod login;
pub mod logout;
pub mod metrics;
pub mod pages;
pub mod rate_limit;
pub mod registration;
pub mod request_span;
pub mod revoke;
pub mod router;
pub mod token;
pub mod upstream;
pub mod user_agent;
pub mod userinfo;
pub mod webhook;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::flow::session::NewSession;
use crate::secrets::TokenKind;
use crate::state::{App, AppState};
use crate::store::{SessionRecord, StoreResult};

pub use extract::{OAuthForm, parse_params, read_form_params};

// ---- the browser session ----

pub fn session_cookie_name(app: &App) -> &'static str {
    if app.config.secure_cookies() && app.config.cookie_path() == "/" {
        "__Host-tgoidc_session"
    } else {
        "tgoidc_session"
    }
}

pub fn cookie_value<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The raw session id from the cookie, if it has the shape of one.
pub fn session_id(app: &App, headers: &HeaderMap) -> Option<String> {
    cookie_value(headers, session_cookie_name(app))
        .filter(|v| v.starts_with(TokenKind::Session.prefix()) && v.len() < 128)
        .map(str::to_owned)
}

/// The live session of this browser, if any.
pub async fn current_session(
    app: &App,
    headers: &HeaderMap,
) -> StoreResult<Option<(String, SessionRecord)>> {
    let Some(id) = session_id(app, headers) else {
        return Ok(None);
    };
    let found = crate::flow::session::find(app, &id, app.now()).await?;
    Ok(found.map(|s| (id, s)))
}

/// The `Set-Cookie` value that hands a new session to the browser.
pub fn session_cookie(app: &App, session: &NewSession) -> StoreResult<HeaderValue> {
    let secure = if app.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{}",
        session_cookie_name(app),
        session.id,
        app.config.cookie_path(),
        session.ttl_secs,
        secure
    );
    HeaderValue::from_str(&cookie).map_err(|e| crate::store::StoreError::Internal(e.to_string()))
}

/// The `Set-Cookie` value that ends the browser's session cookie.
pub fn clear_session_cookie(app: &App) -> Option<HeaderValue> {
    let cookie = format!(
        "{}=; Path={}; Max-Age=0; HttpOnly; SameSite=Lax{}",
        session_cookie_name(app),
        app.config.cookie_path(),
        if app.config.secure_cookies() {
            "; Secure"
        } else {
            ""
        }
    );
    HeaderValue::from_str(&cookie).ok()
}

/// The notice a page shows after an action that redirected back with `?done=<key>`: the text
/// of that key in `notices`, if any.
pub fn done_notice(query: Option<&str>, notices: &[(&str, &'static str)]) -> Option<&'static str> {
    let params = parse_params(query.unwrap_or("")).ok()?;
    let (_, done) = params.iter().find(|(k, _)| k == "done")?;
    notices
        .iter()
        .find(|(key, _)| key == done)
        .map(|(_, text)| *text)
}

// ---- small handlers ----

pub async fn healthz() -> &'static str {
    "ok"
}

pub async fn readyz(State(app): State<AppState>) -> Response {
    match app.store.ping().await {
        Ok(()) => (StatusCode::OK, "ready").into_response(),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "5")],
            "database unavailable",
        )
            .into_response(),
    }
}

/// The router's fallback, and the answer to a link without its `req`. It has no state, so its
/// page links the stylesheet at the root path, whatever the issuer's path.
pub async fn not_found() -> Response {
    browser_error::Problem::page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
    .at_site("", "")
    .into_response()
}

pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("../../templates/app.css"),
    )
        .into_response()
}
