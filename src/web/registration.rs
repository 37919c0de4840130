//! The registration endpoints (RFC 7591 §3, RFC 7592 §2): the bearer token is checked before
//! the body is read, then `oidc::registration` does the rest.

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::OAuthResult;
use crate::oidc::registration;
use crate::state::AppState;
use crate::web::extract;

fn json_response(status: StatusCode, body: Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /register` (RFC 7591 §3).
pub async fn register(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result: OAuthResult<Value> = async {
        let token = extract::registration_token(&headers)?;
        registration::check_initial_access_token(&app, &token)?;
        let meta = extract::client_metadata(&app, &headers, body).await?;
        registration::register(&app, meta, app.now()).await
    }
    .await;
    match result {
        Ok(body) => json_response(StatusCode::CREATED, body),
        Err(e) => e.into_response(),
    }
}

/// `GET /register/{client_id}` (RFC 7592 §2.1).
pub async fn read(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result: OAuthResult<Value> = async {
        let token = extract::registration_token(&headers)?;
        let client = registration::registered_client(&app, &client_id, &token).await?;
        Ok(registration::client_information(
            &app, &client, None, &token,
        ))
    }
    .await;
    match result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
}

/// `PUT /register/{client_id}` (RFC 7592 §2.2): replaces the metadata as a whole.
pub async fn update(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result: OAuthResult<Value> = async {
        let token = extract::registration_token(&headers)?;
        let old = registration::registered_client(&app, &client_id, &token).await?;
        let meta = extract::client_metadata(&app, &headers, body).await?;
        registration::update(&app, old, &token, meta).await
    }
    .await;
    match result {
        Ok(body) => json_response(StatusCode::OK, body),
        Err(e) => e.into_response(),
    }
}

/// `DELETE /register/{client_id}` (RFC 7592 §2.3).
pub async fn delete(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let result: OAuthResult<()> = async {
        let token = extract::registration_token(&headers)?;
        let client = registration::registered_client(&app, &client_id, &token).await?;
        registration::delete(&app, &client).await
    }
    .await;
    match result {
        Ok(()) => (
            StatusCode::NO_CONTENT,
            [(header::CACHE_CONTROL, "no-store")],
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}
