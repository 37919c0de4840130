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
