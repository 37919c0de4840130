//! Browser-facing pieces: extractors that turn malformed input into OAuth errors, the browser
//! session cookie, and the HTML pages.

pub mod authorize;
pub mod consent;
pub mod deeplink;
pub mod device;
pub mod emulator;
pub mod errors;
pub mod i18n;
pub mod login;
pub mod pages;
pub mod router;
pub mod token;
pub mod upstream;
pub mod webhook;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::error::OAuthError;
use crate::flow::session::NewSession;
use crate::secrets::TokenKind;
use crate::state::{App, AppState};
use crate::store::{SessionRecord, StoreResult};

/// `axum::Form`, but a malformed or oversized body is an OAuth `invalid_request` in JSON,
/// never axum's plain-text rejection.
pub struct OAuthForm<T>(pub T);

impl<S, T> FromRequest<S> for OAuthForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Form::<T>::from_request(req, state).await {
            Ok(axum::Form(value)) => Ok(OAuthForm(value)),
            Err(rejection) => Err(form_rejection(rejection)),
        }
    }
}

fn form_rejection(rejection: axum::extract::rejection::FormRejection) -> OAuthError {
    use axum::extract::rejection::FormRejection;
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return OAuthError::new(
            crate::error::ErrorCode::PayloadTooLarge,
            "the request body is too large",
        );
    }
    let description = match &rejection {
        FormRejection::InvalidFormContentType(_) => {
            "the body must be application/x-www-form-urlencoded".to_string()
        }
        FormRejection::FailedToDeserializeForm(e) => {
            format!("malformed parameters: {}", e.body_text())
        }
        FormRejection::FailedToDeserializeFormBody(e) => {
            format!("malformed parameters: {}", e.body_text())
        }
        _ => "the request body could not be read".to_string(),
    };
    OAuthError::invalid_request(description)
}

pub use crate::params::parse_params;

/// Reads a urlencoded body into parameters; `Err` is the response to send.
pub async fn read_form_params(
    app: &App,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Vec<(String, String)>, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = axum::body::to_bytes(body, app.config.max_body_bytes)
        .await
        .map_err(|_| {
            OAuthError::new(
                crate::error::ErrorCode::PayloadTooLarge,
                "the request body is too large",
            )
        })?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
    parse_params(text)
}

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

pub async fn not_found() -> Response {
    pages::error_page(
        StatusCode::NOT_FOUND,
        "Not found",
        "There is nothing at this address.",
    )
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
