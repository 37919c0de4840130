//! The revocation endpoint (RFC 7009): the client authenticates; 200 whatever the token was
//! (§2.2).

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::error::OAuthResult;
use crate::flow::audit::{Event, Outcome, hash_prefix};
use crate::oidc::revoke;
use crate::secrets::token_hash;
use crate::state::AppState;
use crate::web::extract::{self, FormParams};
use crate::web::token::authenticated_client;

pub async fn revoke(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let result: OAuthResult<()> = async {
        let form = FormParams::read(&app, &headers, body).await?;
        let client = authenticated_client(&app, &headers, &form).await?;
        let request = extract::revocation_request(&form)?;
        revoke::revoke(&app, &client, &request, app.now()).await?;
        app.audit(
            Event::new("token.revoked", Outcome::Ok)
                .client(&client.client_id)
                .with("token_hash", hash_prefix(&token_hash(&request.token))),
        );
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
