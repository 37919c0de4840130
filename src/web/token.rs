//! The token endpoint (RFC 6749 §3.2): authenticates the client, then hands the request to the
//! grant it names. Also the client authentication the other client endpoints share.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::error::OAuthResult;
use crate::flow::audit::{Event, Outcome};
use crate::flow::limits::Policy;
use crate::oidc::client_auth::{self, ClientCredentials};
use crate::oidc::{
    client_assertion, grant_ciba, grant_client_credentials, grant_code, grant_device,
};
use crate::state::{App, AppState};
use crate::store::{AccessTokenFormat, ClientRecord};
use crate::web::extract::{self, FormParams, TokenRequest};
use crate::web::rate_limit::Limits;

/// Proves the client by its secret, or by its assertion (RFC 7523 §2.2).
async fn authenticate_client(
    app: &App,
    credentials: &ClientCredentials,
) -> OAuthResult<ClientRecord> {
    match credentials {
        ClientCredentials::Secret(secret) => client_auth::authenticate(app, secret).await,
        ClientCredentials::Assertion { jwt, client_id } => {
            client_assertion::authenticate(app, jwt, client_id.as_deref(), app.now()).await
        }
    }
}

/// The client of a request to a client endpoint, from its headers and form, proven.
pub async fn authenticated_client(
    app: &App,
    headers: &HeaderMap,
    form: &FormParams,
) -> OAuthResult<ClientRecord> {
    let credentials = extract::client_credentials(headers, form)?;
    authenticate_client(app, &credentials).await
}

pub async fn token(
    State(app): State<AppState>,
    limits: Limits,
    headers: HeaderMap,
    body: Body,
) -> Response {
    // What the audit log says of this request: the grant type and the client, once known.
    let mut grant_type: Option<String> = None;
    let mut client_id: Option<String> = None;
    let mut format: Option<&'static str> = None;
    let result: OAuthResult<serde_json::Value> = async {
        let form = FormParams::read(&app, &headers, body).await?;
        grant_type = form
            .get("grant_type")
            .map(|g| g.chars().take(100).collect());
        client_id = form.get("client_id").map(|c| c.chars().take(200).collect());
        if let Some(claimed) = extract::claimed_client_id(&headers, &form) {
            limits.count(&app, Policy::TokenClient, &claimed).await?;
        }
        let client = authenticated_client(&app, &headers, &form).await?;
        client_id = Some(client.client_id.clone());
        format = Some(match client.settings.access_token_format {
            AccessTokenFormat::Jwt => "jwt",
            AccessTokenFormat::Opaque => "opaque",
        });
        let request = TokenRequest::parse(&form)?;
        let now = app.now();
        match &request {
            TokenRequest::AuthorizationCode(r) => grant_code::exchange(&app, &client, r, now).await,
            TokenRequest::RefreshToken(r) => {
                crate::flow::login::refresh(&app, &client, r, now).await
            }
            TokenRequest::DeviceCode(r) => {
                grant_device::exchange(&app, &client, r, app.now_millis()).await
            }
            TokenRequest::Ciba(r) => grant_ciba::exchange(&app, &client, r, app.now_millis()).await,
            TokenRequest::TokenExchange(r) => {
                crate::flow::token_exchange::exchange(&app, &client, r, now).await
            }
            TokenRequest::ClientCredentials(r) => {
                grant_client_credentials::exchange(&app, &client, r, now).await
            }
        }
    }
    .await;
    let event = match &result {
        // Audited once a window as `rate_limit.reached`, not once a request.
        Err(e) if e.code == crate::error::ErrorCode::RateLimited => {
            return e.clone().into_response();
        }
        Ok(_) => Event::new("token.issued", Outcome::Ok)
            .with("access_token_format", format.unwrap_or_default()),
        Err(e) => Event::new("token.refused", Outcome::Refused).with("error", e.code.as_str()),
    };
    let event = event.with("grant_type", grant_type.unwrap_or_default());
    app.audit(match &client_id {
        Some(id) => event.client(id),
        None => event,
    });
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
