//! The introspection endpoint (RFC 7662): the client authenticates, and learns about its own
//! tokens only.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::OAuthResult;
use crate::oidc::introspect;
use crate::state::AppState;
use crate::web::extract::{self, FormParams};
use crate::web::token::authenticated_client;

pub async fn introspect(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result: OAuthResult<serde_json::Value> = async {
        let form = FormParams::read(&app, &headers, body).await?;
        let client = authenticated_client(&app, &headers, &form).await?;
        let request = extract::introspection_request(&form)?;
        introspect::describe(&app, &client, &request, app.now()).await
    }
    .await;
    match result {
        Ok(body) => {
            let mut response = Json(body).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => e.into_response(),
    }
}
