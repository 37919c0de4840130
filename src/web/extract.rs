//! Strict request parsing: a malformed, oversized or repeated parameter is an OAuth
//! `invalid_request` (or a page, on browser endpoints), never axum's plain-text rejection.
//! Requests are parsed here once into the typed requests the protocol core takes.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::OAuthError;
pub use crate::params::parse_params;
use crate::state::App;

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

// ---- the authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1) ----

use crate::oidc::authorize::{AuthorizeParams, Param};
use crate::web::browser_error::{Problem, UNUSABLE_REQUEST};

/// The authorization request in a query; a malformed one is a page, since nothing in it can
/// be trusted yet.
pub fn authorize_query(raw: Option<&str>) -> Result<AuthorizeParams, Problem> {
    match parse_params(raw.unwrap_or("")) {
        Ok(params) => Ok(authorize_params(&params)),
        Err(e) => Err(Problem::unusable(e.description)),
    }
}

/// The authorization request in a form body (OIDC Core §3.1.2.1 allows POST); an unreadable
/// or oversized body is a page.
pub async fn authorize_form(
    app: &App,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<AuthorizeParams, Problem> {
    match read_form_params(app, headers, body).await {
        Ok(params) => Ok(authorize_params(&params)),
        Err(e) => {
            let status = if e.code == crate::error::ErrorCode::PayloadTooLarge {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            Err(Problem::page(status, UNUSABLE_REQUEST, e.description))
        }
    }
}

/// The parameters, read once. An empty value counts as absent (RFC 6749 §3.1); a repeated
/// parameter has no value, and the first one repeated is named, so that `oidc::authorize` can
/// tell the person (a repeated `client_id` or `redirect_uri`) or the app (any other).
pub fn authorize_params(params: &[(String, String)]) -> AuthorizeParams {
    let single = |name: &str| {
        let mut found = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        match (found.next(), found.next()) {
            (Some(_), Some(_)) => Param::Repeated,
            (Some(v), None) if !v.is_empty() => Param::Once(v.clone()),
            _ => Param::Missing,
        }
    };
    let get = |name: &str| match single(name) {
        Param::Once(v) => Some(v),
        Param::Missing | Param::Repeated => None,
    };
    AuthorizeParams {
        client_id: single("client_id"),
        redirect_uri: single("redirect_uri"),
        repeated: first_repeated(params).map(str::to_owned),
        state: get("state"),
        response_type: get("response_type"),
        response_mode: get("response_mode"),
        scope: get("scope"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        prompt: get("prompt"),
        max_age: get("max_age"),
        nonce: get("nonce"),
        login_hint: get("login_hint"),
        id_token_hint: get("id_token_hint"),
        request: get("request"),
        request_uri: get("request_uri"),
    }
}

/// The first parameter that appears more than once (RFC 6749 §3.1 forbids it), empty values
/// included.
pub fn first_repeated(params: &[(String, String)]) -> Option<&str> {
    params
        .iter()
        .enumerate()
        .find(|(i, (k, _))| params[..*i].iter().any(|(p, _)| p == k))
        .map(|(_, (k, _))| k.as_str())
}
