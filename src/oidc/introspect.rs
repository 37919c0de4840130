//! Token introspection (RFC 7662) for authenticated clients. A client learns about its own
//! tokens only: another client's token, like a revoked, expired or unknown one, is
//! `{"active": false}` and nothing more (§2.2).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::error::{OAuthError, OAuthResult};
use crate::oidc::client_auth::{self, param};
use crate::oidc::subject;
use crate::oidc::token_lookup::{self, Found};
use crate::state::{App, AppState};
use crate::store::ClientRecord;
use crate::web;

pub async fn introspect(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result: OAuthResult<Value> = async {
        let params = web::read_form_params(&app, &headers, body).await?;
        client_auth::reject_duplicates(&params)?;
        let client = client_auth::authenticate(&app, &headers, &params).await?;
        let token = param(&params, "token")
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        describe(&app, &client, token).await
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

async fn describe(app: &App, client: &ClientRecord, token: &str) -> OAuthResult<Value> {
    let now = app.now();
    let inactive = json!({ "active": false });
    let sub = |user: Option<i64>| match user {
        Some(id) => subject::subject_for(app, client, id),
        None => client.client_id.clone(),
    };
    Ok(match token_lookup::find(app, token).await? {
        Found::Access(state)
            if state.record.client_id == client.client_id
                && !state.revoked
                && state.record.expires_at > now =>
        {
            let r = &state.record;
            json!({
                "active": true,
                "token_type": "Bearer",
                "scope": r.scope,
                "client_id": r.client_id,
                "sub": sub(r.user_id),
                "aud": r.client_id,
                "iss": app.config.issuer,
                "iat": r.created_at,
                "exp": r.expires_at,
            })
        }
        Found::Refresh(state)
            if state.grant.client_id == client.client_id
                && !state.used
                && state.grant.revoked_at.is_none()
                && state.record.expires_at > now =>
        {
            json!({
                "active": true,
                "token_type": "refresh_token",
                "scope": state.grant.scope,
                "client_id": state.grant.client_id,
                "sub": sub(state.grant.user_id),
                "iss": app.config.issuer,
                "iat": state.record.created_at,
                "exp": state.record.expires_at,
            })
        }
        _ => inactive,
    })
}
