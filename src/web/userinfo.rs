//! The UserInfo endpoint (OpenID Connect Core §5.3): GET with the bearer token in the header,
//! or POST with it in the header or the form (RFC 6750 §2.1, §2.2).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorCode, OAuthError, OAuthResult, Style};
use crate::oidc::userinfo;
use crate::state::{App, AppState};
use crate::web::extract;

async fn respond(app: &App, headers: &HeaderMap, body: Option<Body>) -> Response {
    let result: OAuthResult<serde_json::Value> = async {
        let Some(token) = extract::access_token(app, headers, body).await? else {
            // No credentials at all: the challenge without an error code (RFC 6750 §3.1).
            let mut e = OAuthError::new(ErrorCode::InvalidToken, "an access token is required");
            e.style = Style::BearerNoCredentials;
            return Err(e);
        };
        userinfo::claims(app, &token, app.now())
            .await
            .map_err(OAuthError::bearer)
    }
    .await;
    match result {
        Ok(claims) => {
            let mut response = Json(claims).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => e.into_response(),
    }
}

pub async fn userinfo_get(State(app): State<AppState>, headers: HeaderMap) -> Response {
    respond(&app, &headers, None).await
}

/// POST accepts the header or a form-encoded `access_token` (RFC 6750 §2.2), never both.
pub async fn userinfo_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    respond(&app, &headers, Some(body)).await
}
