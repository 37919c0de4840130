//! `/admin/api/v1/keys`: the signing keys, and rotating them.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{JsonBody, Problem, ReadAccess, WriteAccess};
use crate::admin;
use crate::keys::{KeyInfo, SigningAlg};
use crate::state::AppState;

/// One signing key.
#[derive(Debug, Serialize, ToSchema)]
pub struct KeyView {
    pub kid: String,
    /// `RS256`, `ES256` or `EdDSA`.
    pub alg: String,
    /// `active` (signs), `published` (signs from `not_before`) or `retired` (only verifies).
    pub state: String,
    /// Unix seconds.
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pub not_before: Option<i64>,
}

impl KeyView {
    fn of(k: &KeyInfo) -> KeyView {
        let state = if k.active {
            "active"
        } else if k.retired_at.is_none() && k.not_before.is_some() {
            "published"
        } else {
            "retired"
        };
        KeyView {
            kid: k.kid.clone(),
            alg: k.alg.to_string(),
            state: state.into(),
            created_at: k.created_at,
            retired_at: k.retired_at,
            not_before: k.not_before,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct KeyList {
    pub items: Vec<KeyView>,
}

/// A new signing key.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRotate {
    /// `RS256` (default), `ES256` or `EdDSA`.
    pub alg: Option<String>,
    /// Publish now, sign only this many seconds later (0 to 86400), so every node and every
    /// app caching the JWKS holds the key first.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 86400)]
    pub activate_in: i64,
}

#[utoipa::path(get, path = "/admin/api/v1/keys", tag = "keys",
    responses((status = 200, description = "Every signing key", body = KeyList)))]
pub async fn list(State(app): State<AppState>, _: ReadAccess) -> axum::Json<KeyList> {
    axum::Json(KeyList {
        items: app.keys.list().iter().map(KeyView::of).collect(),
    })
}

#[utoipa::path(post, path = "/admin/api/v1/keys/rotate", tag = "keys", request_body = KeyRotate,
    responses((status = 201, description = "The new key", body = KeyView)))]
pub async fn rotate(
    State(app): State<AppState>,
    WriteAccess(actor): WriteAccess,
    JsonBody(r): JsonBody<KeyRotate>,
) -> Result<Response, Problem> {
    let alg = match r.alg.as_deref() {
        None => SigningAlg::RS256,
        Some(a) => SigningAlg::parse(a).ok_or_else(|| {
            Problem::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("alg: `{a}` is not RS256, ES256 or EdDSA"),
            )
        })?,
    };
    let info = admin::rotate_signing_key(
        &app.keys,
        app.store.as_ref(),
        &actor,
        alg,
        r.activate_in,
        app.now_millis(),
    )
    .await?;
    Ok((StatusCode::CREATED, axum::Json(KeyView::of(&info))).into_response())
}
