//! How an OAuth error is written on the wire: one JSON shape, the status its code calls for,
//! `Cache-Control: no-store`, and the `WWW-Authenticate` challenge of RFC 6750 §3.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::{ErrorCode, OAuthError, Style};

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    error_description: &'a str,
}

/// Quotes a value for an HTTP auth-param (RFC 9110 §11.2): only characters that are safe
/// inside a quoted string are kept.
fn quote_param(v: &str) -> String {
    v.chars()
        .filter(|c| *c != '"' && *c != '\\' && (c.is_ascii_graphic() || *c == ' '))
        .collect()
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let body = ErrorBody {
            error: self.code.as_str(),
            error_description: &self.description,
        };
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if self.code == ErrorCode::TemporarilyUnavailable {
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        let challenge = match (self.style, status) {
            (Style::Bearer, _) => Some(format!(
                "Bearer error=\"{}\", error_description=\"{}\"",
                self.code.as_str(),
                quote_param(&self.description)
            )),
            (Style::BearerNoCredentials, _) => Some("Bearer realm=\"telegram-oidc\"".to_string()),
            (Style::Json, StatusCode::UNAUTHORIZED) if self.basic_challenge => {
                Some("Basic realm=\"telegram-oidc\"".to_string())
            }
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::WWW_AUTHENTICATE, value);
        }
        response
    }
}
