//! The token endpoint (RFC 6749 §3.2): authenticates the client, then hands the request to the
//! grant it names.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::oidc::client_auth::{self, param};
use crate::oidc::grant_token_exchange;
use crate::oidc::{grant_client_credentials, grant_code, grant_refresh};
use crate::state::AppState;
use crate::web;

pub async fn token(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result: OAuthResult<serde_json::Value> = async {
        let params = web::read_form_params(&app, &headers, body).await?;
        client_auth::reject_duplicates(&params)?;
        let client = client_auth::authenticate(&app, &headers, &params).await?;
        let now = app.now();
        match param(&params, "grant_type") {
            Some("authorization_code") => grant_code::exchange(&app, &client, &params, now).await,
            Some("refresh_token") => grant_refresh::exchange(&app, &client, &params, now).await,
            Some(crate::oidc::grant_device::GRANT_TYPE) => {
                crate::oidc::grant_device::exchange(&app, &client, &params, now).await
            }
            Some(grant_token_exchange::GRANT_TYPE) => {
                crate::flow::token_exchange::exchange(&app, &client, &params, now).await
            }
            Some("client_credentials") => {
                grant_client_credentials::exchange(&app, &client, &params, now).await
            }
            Some(_) => Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "this grant type is not supported",
            )),
            None => Err(OAuthError::invalid_request("grant_type is missing")),
        }
    }
    .await;
    match result {
        Ok(body) => {
            let mut response = Json(body).into_response();
            let h = response.headers_mut();
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
            response
        }
        Err(e) => e.into_response(),
    }
}
