//! The backchannel authentication endpoint (CIBA Core 1.0 §7): `POST /bc-authorize`. The
//! client authenticates as at the token endpoint; the user is asked in their bot chat
//! (`flow::ciba`), and the client then polls the token endpoint with the `auth_req_id`.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorCode, OAuthError};
use crate::flow;
use crate::flow::limits::{self, Policy};
use crate::oidc::ciba;
use crate::state::AppState;
use crate::web;
use crate::web::client_addr::{ClientAddr, limit_key};

/// `POST /bc-authorize` (§7.1). Requests naming unknown users are counted per client and
/// address (per node, as the device code throttle): past the limit for this minute the
/// endpoint answers `temporarily_unavailable`, so a client cannot list who uses the bot.
pub async fn bc_authorize(
    State(app): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let form = web::extract::FormParams::read(&app, &headers, body).await?;
        let client = web::token::authenticated_client(&app, &headers, &form).await?;
        if client.settings.ciba.is_none() {
            return Err(ciba::unauthorized());
        }
        let request = web::extract::backchannel_request(&form);
        let now = app.now();
        let key = format!("{} {}", client.client_id, limit_key(addr));
        if !limits::peek(&app, now, Policy::BcAuthorizeMiss, &key)
            .await
            .allowed
        {
            return Err(OAuthError::new(
                ErrorCode::TemporarilyUnavailable,
                "too many requests named unknown users; wait a minute",
            ));
        }
        let started = flow::ciba::start(&app, &client, &request).await;
        if started
            .as_ref()
            .is_err_and(|e| e.code == ErrorCode::UnknownUserId)
        {
            limits::hit(&app, now, &[(Policy::BcAuthorizeMiss, &key)]).await;
        }
        started
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
        Err(e) => {
            let throttled = e.code == ErrorCode::TemporarilyUnavailable;
            let mut response = e.into_response();
            if throttled {
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("60"));
            }
            response
        }
    }
}
