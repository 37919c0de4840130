//! Token revocation (RFC 7009). A refresh token takes its whole family with it; an access
//! token goes alone. Unknown, foreign and already revoked tokens answer 200 all the same
//! (§2.2), so the endpoint tells an attacker nothing.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::{OAuthError, OAuthResult};
use crate::oidc::client_auth::{self, param};
use crate::oidc::token_lookup::{self, Found};
use crate::state::AppState;
use crate::web;

pub async fn revoke(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result: OAuthResult<()> = async {
        let params = web::read_form_params(&app, &headers, body).await?;
        client_auth::reject_duplicates(&params)?;
        let client = client_auth::authenticate(&app, &headers, &params).await?;
        let token = param(&params, "token")
            .ok_or_else(|| OAuthError::invalid_request("token is missing"))?;
        let now = app.now();
        match token_lookup::find(&app, token).await? {
            Found::Refresh(state) if state.grant.client_id == client.client_id => {
                app.store.revoke_grant(&state.grant.id, now).await?;
            }
            Found::Access(state) if state.record.client_id == client.client_id => {
                app.store
                    .revoke_access_token(&state.record.token_hash, &client.client_id, now)
                    .await?;
            }
            // Another client's token is not this client's to revoke (§2.1); say nothing.
            _ => {}
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => {
            let mut response = StatusCode::OK.into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => e.into_response(),
    }
}
