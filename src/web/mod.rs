//! Browser-facing pieces: extractors that turn malformed input into OAuth errors, the browser
//! session cookie, and the HTML pages.

pub mod consent;
pub mod deeplink;
pub mod emulator;
pub mod i18n;
pub mod login;
pub mod pages;
pub mod upstream;

use axum::extract::{FromRequest, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::app::{App, AppState};
use crate::error::OAuthError;
use crate::secrets::{TokenKind, new_token, token_hash};
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

/// Parameters exactly as sent, in order, duplicates kept (RFC 6749 §3.1 forbids repeating one).
/// Strict where browsers' parsers are lenient: a broken `%` escape or bytes that are not UTF-8
/// make the whole request malformed instead of being passed on half-decoded.
pub fn parse_params(raw: &str) -> Result<Vec<(String, String)>, OAuthError> {
    let mut out = Vec::new();
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        out.push((strict_decode(k)?, strict_decode(v)?));
    }
    Ok(out)
}

fn strict_decode(s: &str) -> Result<String, OAuthError> {
    let malformed = || OAuthError::invalid_request("malformed percent-encoding in the parameters");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or_else(malformed)?;
                let hex = std::str::from_utf8(hex).map_err(|_| malformed())?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| malformed())?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| malformed())
}

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
    let found = app.store.get_session(&token_hash(&id), app.now()).await?;
    Ok(found.map(|s| (id, s)))
}

/// Starts a session for a user just proven by Telegram; returns the `Set-Cookie` value and the
/// stored hash of the new session id.
pub async fn start_session(
    app: &App,
    user_id: i64,
    amr: &str,
    headers: &HeaderMap,
) -> StoreResult<(HeaderValue, Vec<u8>)> {
    // A new login replaces the old session: a fixed id would let a planted cookie ride along.
    if let Some(old) = session_id(app, headers) {
        app.store.delete_session(&token_hash(&old)).await?;
    }
    let now = app.now();
    let id = new_token(TokenKind::Session);
    let id_hash = token_hash(&id);
    let ttl = app.config.tokens.session_ttl_secs;
    app.store
        .create_session(&SessionRecord {
            id_hash: id_hash.clone(),
            user_id,
            auth_time: now,
            amr: amr.to_owned(),
            created_at: now,
            expires_at: now + ttl,
        })
        .await?;
    let secure = if app.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    let cookie = format!(
        "{}={}; Path={}; Max-Age={}; HttpOnly; SameSite=Lax{}",
        session_cookie_name(app),
        id,
        app.config.cookie_path(),
        ttl,
        secure
    );
    let cookie = HeaderValue::from_str(&cookie)
        .map_err(|e| crate::store::StoreError::Internal(e.to_string()))?;
    Ok((cookie, id_hash))
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
