//! Login through Telegram's own OpenID Connect provider: the start (a redirect to Telegram) and
//! the callback (code and state back from Telegram), which ends in the shared
//! [`finish_login`](super::login::finish_login).
//!
//! The flow's secrets never reach the database: the start gives the browser a short-lived
//! HttpOnly cookie holding a random secret and the pending authorization handle; the PKCE
//! verifier and the nonce are derived from that secret. The database row makes `state`
//! single-use and records the cookie's hash, so the callback is accepted only once, only from
//! the browser that started the login (no login CSRF), and on whichever node it arrives.

use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::secrets::{constant_time_eq, random_bytes, sha256};
use crate::state::{App, AppState};
use crate::store::UpstreamLogin;
use crate::telegram::upstream_oidc::{LoginSecrets, UpstreamError};
use crate::web::authorize::{load_login_pending, see_other};
use crate::web::browser_error::Problem;
use crate::web::client_addr::ClientAddr;
use crate::web::{self, login::finish_login};

/// How long the user has at Telegram before the login must be started again.
const FLOW_TTL_SECS: i64 = 600;
const COOKIE_PREFIX: &str = "tgoidc_up_";
const MAX_PARAM_LEN: usize = 2048;

/// Where Telegram sends the browser back; register it with BotFather (Web Login).
pub use crate::telegram::upstream_oidc::CALLBACK_PATH;
pub const START_PATH: &str = "/login/telegram-oidc/start";

/// One cookie per login, named after its state, so logins in two tabs do not collide.
fn cookie_name(state: &str) -> String {
    let digest = hex::encode(sha256(state.as_bytes()));
    format!("{COOKIE_PREFIX}{}", &digest[..16])
}

fn cookie_header(app: &App, name: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    let secure = if app.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    // SameSite=Lax: the callback is a top-level navigation from Telegram, which Lax allows.
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={}/login/telegram-oidc; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        app.base_path()
    ))
    .ok()
}

fn page(app: &App, status: StatusCode, title: &'static str, message: &str) -> Response {
    Problem::page(status, title, message)
        .at(app)
        .into_response()
}

fn upstream_failure(app: &App, e: &UpstreamError) -> Response {
    match e {
        // Never Telegram's own doing: someone tampered with the answer, or the keys are wrong.
        UpstreamError::Forged(reason) => {
            tracing::warn!(reason, "a forged Telegram ID token was refused");
            app.metrics.login("telegram_oidc", "invalid");
        }
        UpstreamError::InvalidIdToken(reason) => {
            tracing::warn!(reason = %reason, "a Telegram ID token with unacceptable claims was refused");
            app.metrics.login("telegram_oidc", "invalid");
        }
        UpstreamError::Unavailable(_) | UpstreamError::Refused(_) => {
            tracing::info!(reason = %e, "Telegram OIDC login failed");
        }
    }
    match e {
        UpstreamError::Unavailable(_) => page(
            app,
            StatusCode::SERVICE_UNAVAILABLE,
            "Telegram cannot be reached",
            "Telegram's login service did not answer. Try again shortly, or go back and use another way to log in.",
        ),
        UpstreamError::Refused(_) => page(
            app,
            StatusCode::BAD_REQUEST,
            "Telegram login refused",
            "Telegram did not confirm this login. Go back to the app and sign in again.",
        ),
        UpstreamError::Forged(_) | UpstreamError::InvalidIdToken(_) => page(
            app,
            StatusCode::UNAUTHORIZED,
            "Telegram login refused",
            "The answer from Telegram could not be verified. Go back to the app and sign in again.",
        ),
    }
}

#[derive(Deserialize)]
pub struct StartQuery {
    req: String,
}

/// Sends the browser to Telegram's authorization endpoint for the pending authorization `req`.
pub async fn start(
    State(app): State<AppState>,
    query: Result<Query<StartQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Some(upstream) = app.telegram_oidc.clone() else {
        return web::not_found().await;
    };
    let Ok(Query(query)) = query else {
        return page(
            &app,
            StatusCode::BAD_REQUEST,
            "This sign-in link is incomplete",
            "Go back to the app and start signing in again.",
        );
    };
    if let Err(e) = load_login_pending(&app, &query.req).await {
        return e.at(&app).into_response();
    }
    let now = app.now();
    let browser_secret = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let state = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
    let secrets = LoginSecrets::derive(&browser_secret);
    let url = match upstream.authorization_url(&state, &secrets, now).await {
        Ok(url) => url,
        Err(e) => return upstream_failure(&app, &e),
    };
    let cookie_value = format!("{browser_secret}.{}", query.req);
    let stored = app
        .store
        .create_upstream_login(&UpstreamLogin {
            state_hash: sha256(state.as_bytes()),
            binding_hash: sha256(cookie_value.as_bytes()),
            created_at: now,
            expires_at: now + FLOW_TTL_SECS,
        })
        .await;
    if let Err(e) = stored {
        return Problem::from(e).at(&app).into_response();
    }
    let Some(cookie) = cookie_header(&app, &cookie_name(&state), &cookie_value, FLOW_TTL_SECS)
    else {
        return Problem::from(crate::error::OAuthError::server_error("cookie header"))
            .at(&app)
            .into_response();
    };
    let mut response = see_other(&url);
    response.headers_mut().append(header::SET_COOKIE, cookie);
    response
}

/// Telegram's redirect back with `code` and `state` (or `error`).
pub async fn callback(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
) -> Response {
    let Some(upstream) = app.telegram_oidc.clone() else {
        return web::not_found().await;
    };
    let incomplete = |message: &str| {
        page(
            &app,
            StatusCode::BAD_REQUEST,
            "The Telegram login could not be completed",
            message,
        )
    };
    let params = match web::parse_params(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => return incomplete(&e.description),
    };
    if params.iter().any(|(_, v)| v.len() > MAX_PARAM_LEN)
        || web::extract::first_repeated(&params).is_some()
    {
        return incomplete("The answer from Telegram is malformed.");
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let Some(state) = get("state") else {
        return incomplete(
            "The answer from Telegram has no state. Go back to the app and sign in again.",
        );
    };
    let name = cookie_name(state);
    // Checked before the state is used up: a link opened in another browser leaves the login
    // of the browser that started it intact.
    let Some(cookie) = web::cookie_value(&headers, &name).map(str::to_owned) else {
        return incomplete(
            "This login was started in another browser, or it took too long. Go back to the app and sign in again.",
        );
    };
    let mut response = finish(&app, &upstream, &params, state, &cookie, &headers, addr).await;
    if let Some(clear) = cookie_header(&app, &name, "", 0) {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    response
}

async fn finish(
    app: &App,
    upstream: &crate::telegram::upstream_oidc::UpstreamOidc,
    params: &[(String, String)],
    state: &str,
    cookie: &str,
    headers: &HeaderMap,
    addr: std::net::IpAddr,
) -> Response {
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    };
    let refused = |message: &str| {
        page(
            app,
            StatusCode::BAD_REQUEST,
            "The Telegram login could not be completed",
            message,
        )
    };
    let now = app.now();
    let login = match app
        .store
        .take_upstream_login(&sha256(state.as_bytes()), now)
        .await
    {
        Ok(Some(login)) => login,
        Ok(None) => {
            return refused(
                "This login has expired or was already used. Go back to the app and sign in again.",
            );
        }
        Err(e) => return Problem::from(e).at(app).into_response(),
    };
    if !constant_time_eq(&login.binding_hash, &sha256(cookie.as_bytes())) {
        return refused(
            "This login was started in another browser. Go back to the app and sign in again.",
        );
    }
    // RFC 9207: an `iss` that is not Telegram's means the answer belongs to another provider.
    let expected_issuer = app
        .config
        .telegram_oidc
        .as_ref()
        .map(|u| u.issuer.as_str())
        .unwrap_or_default();
    if get("iss").is_some_and(|iss| iss != expected_issuer) {
        return refused("The answer did not come from Telegram.");
    }
    if let Some(error) = get("error") {
        tracing::info!(error, "Telegram OIDC returned an error");
        return if error == "access_denied" {
            refused("The login was cancelled at Telegram. Go back to the app to try again.")
        } else {
            refused("Telegram could not log you in. Go back to the app and sign in again.")
        };
    }
    let Some(code) = get("code") else {
        return refused("The answer from Telegram has no code.");
    };
    let Some((browser_secret, req)) = cookie.split_once('.') else {
        return refused("The login cookie is malformed.");
    };
    let request = match load_login_pending(app, req).await {
        Ok((request, _, _)) => request,
        Err(e) => return e.at(app).into_response(),
    };
    let secrets = LoginSecrets::derive(browser_secret);
    let identity = match upstream.redeem(code, &secrets, now).await {
        Ok(identity) => identity,
        Err(e) => return upstream_failure(app, &e),
    };
    // Single use is kept by the upstream code, its state and its PKCE verifier.
    finish_login(app, &identity, None, headers, addr, req, request)
        .await
        .unwrap_or_else(|e| e.at(app).into_response())
}
