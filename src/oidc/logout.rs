//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and back-channel logout
//! notifications (OpenID Connect Back-Channel Logout 1.0).
//!
//! A `post_logout_redirect_uri` is followed only when it is registered for the app, matched
//! exactly; anything else gets a page. Without an `id_token_hint` naming the signed-in user,
//! the user confirms on a page first, so a stray link cannot sign anyone out.

use std::time::Duration;

use aws_lc_rs::hmac;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use crate::oidc::authorize::check_id_token_hint;
use crate::oidc::{client_auth::param, subject};
use crate::secrets::{constant_time_eq, new_id, token_hash};
use crate::state::{App, AppState};
use crate::store::ClientRecord;
use crate::web::authorize::redirect_to_client;
use crate::web::{self, pages};

const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

fn csrf_token(session_id: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, session_id.as_bytes());
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, b"logout").as_ref())
}

fn page(app: &App, status: StatusCode, title: &str, message: &str) -> Response {
    pages::render(
        status,
        &pages::MessagePage {
            base: app.base_path(),
            title,
            message,
        },
        &pages::strict_csp(&[]),
    )
}

/// What a logout request asks for, checked.
struct LogoutRequest {
    client: Option<ClientRecord>,
    hinted_sub: Option<String>,
    post_logout_redirect_uri: Option<String>,
    state: Option<String>,
}

async fn parse(app: &App, params: &[(String, String)]) -> Result<LogoutRequest, Response> {
    let bad = |message: &str| {
        page(
            app,
            StatusCode::BAD_REQUEST,
            "This sign-out request cannot be used",
            message,
        )
    };
    if crate::oidc::client_auth::reject_duplicates(params).is_err() {
        return Err(bad("A parameter appears more than once."));
    }
    let hint = param(params, "id_token_hint");
    let mut client_id = param(params, "client_id").map(str::to_owned);
    // The hint's audience names the app when client_id is absent.
    if client_id.is_none()
        && let Some(hint) = hint
        && let Ok((_, claims)) = app.verify_jwt(hint, app.now())
    {
        client_id = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => Some(a.clone()),
            Some(serde_json::Value::Array(list)) if list.len() == 1 => {
                list[0].as_str().map(str::to_owned)
            }
            _ => None,
        };
    }
    let client = match &client_id {
        Some(id) => match app.store.get_client(id).await {
            Ok(Some(c)) => Some(c),
            Ok(None) => return Err(bad("The app that sent you here is not registered.")),
            Err(e) => {
                return Err(crate::oidc::authorize::AuthorizeError::from(e).into_response(app));
            }
        },
        None => None,
    };
    let hinted_sub = match (hint, &client) {
        (Some(hint), Some(client)) => match check_id_token_hint(app, client, hint) {
            Some(sub) => Some(sub),
            None => {
                return Err(bad(
                    "id_token_hint is not an ID token this server issued to this app.",
                ));
            }
        },
        (Some(_), None) => return Err(bad("id_token_hint is not an ID token this server issued.")),
        _ => None,
    };
    let post_logout_redirect_uri = param(params, "post_logout_redirect_uri").map(str::to_owned);
    if let Some(uri) = &post_logout_redirect_uri {
        let registered = client.as_ref().is_some_and(|c| {
            c.settings
                .post_logout_redirect_uris
                .iter()
                .any(|r| r == uri)
        });
        if !registered {
            return Err(bad(
                "The address to return to after signing out is not registered for this app.",
            ));
        }
    }
    Ok(LogoutRequest {
        client,
        hinted_sub,
        post_logout_redirect_uri,
        state: param(params, "state").map(str::to_owned),
    })
}

/// `end_session_endpoint`, GET or POST.
pub async fn end_session(
    State(app): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = if method == Method::POST {
        web::read_form_params(&app, &headers, body).await
    } else {
        web::parse_params(query.as_deref().unwrap_or(""))
    };
    let params = match params {
        Ok(p) => p,
        Err(e) => {
            return page(
                &app,
                StatusCode::BAD_REQUEST,
                "This sign-out request cannot be used",
                &e.description,
            );
        }
    };
    let request = match parse(&app, &params).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let session = match web::current_session(&app, &headers).await {
        Ok(s) => s,
        Err(e) => return crate::oidc::authorize::AuthorizeError::from(e).into_response(&app),
    };
    let Some((session_id, session)) = session else {
        return finish(&app, &request, None);
    };
    let hint_matches = match (&request.hinted_sub, &request.client) {
        (Some(sub), Some(client)) => *sub == subject::subject_for(&app, client, session.user_id),
        _ => false,
    };
    if hint_matches {
        return logout(&app, &session_id, &request).await;
    }
    pages::render(
        StatusCode::OK,
        &pages::LogoutPage {
            base: app.base_path(),
            client_name: request.client.as_ref().map(|c| c.settings.name.as_str()),
            action: &format!("{}/logout/confirm", app.base_path()),
            csrf: &csrf_token(&session_id),
            client_id: request
                .client
                .as_ref()
                .map(|c| c.client_id.as_str())
                .unwrap_or(""),
            post_logout_redirect_uri: request.post_logout_redirect_uri.as_deref().unwrap_or(""),
            state: request.state.as_deref().unwrap_or(""),
        },
        &pages::strict_csp(
            &request
                .post_logout_redirect_uri
                .iter()
                .filter_map(|u| pages::origin_of(u))
                .collect::<Vec<_>>(),
        ),
    )
}

/// The confirmation form's answer.
pub async fn confirm(State(app): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let params = match web::read_form_params(&app, &headers, body).await {
        Ok(p) => p,
        Err(e) => {
            return page(
                &app,
                StatusCode::BAD_REQUEST,
                "The answer could not be read",
                &e.description,
            );
        }
    };
    let forbidden = || {
        page(
            &app,
            StatusCode::FORBIDDEN,
            "This answer was not accepted",
            "It did not come from the sign-out page shown in this browser.",
        )
    };
    let session = match web::current_session(&app, &headers).await {
        Ok(s) => s,
        Err(e) => return crate::oidc::authorize::AuthorizeError::from(e).into_response(&app),
    };
    let mut forwarded: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "client_id" | "post_logout_redirect_uri" | "state"
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .cloned()
        .collect();
    forwarded.dedup_by(|a, b| a.0 == b.0);
    let request = match parse(&app, &forwarded).await {
        Ok(r) => r,
        Err(response) => return response,
    };
    let Some((session_id, _)) = session else {
        return finish(&app, &request, None);
    };
    let csrf = param(&params, "csrf").unwrap_or("");
    if !constant_time_eq(csrf_token(&session_id).as_bytes(), csrf.as_bytes()) {
        return forbidden();
    }
    match param(&params, "decision") {
        Some("logout") => logout(&app, &session_id, &request).await,
        _ => page(
            &app,
            StatusCode::OK,
            "You are still signed in",
            "Nothing was changed. You can close this page.",
        ),
    }
}

/// Ends the session, tells the apps that asked to be told, and sends the browser on.
async fn logout(app: &App, session_id: &str, request: &LogoutRequest) -> Response {
    let session_hash = token_hash(session_id);
    let clients = match app.store.take_session_clients(&session_hash).await {
        Ok(c) => c,
        Err(e) => return crate::oidc::authorize::AuthorizeError::from(e).into_response(app),
    };
    if let Err(e) = app.store.delete_session(&session_hash).await {
        return crate::oidc::authorize::AuthorizeError::from(e).into_response(app);
    }
    for (client_id, user_id) in clients {
        if let Ok(Some(client)) = app.store.get_client(&client_id).await
            && let Some(uri) = client.settings.backchannel_logout_uri.clone()
        {
            match logout_token(app, &client, user_id) {
                Ok(token) => {
                    tokio::spawn(send_logout_token(uri, token, client.client_id.clone()));
                }
                Err(e) => tracing::warn!(error = %e, "could not sign a logout token"),
            }
        }
    }
    let cookie = format!(
        "{}=; Path={}; Max-Age=0; HttpOnly; SameSite=Lax{}",
        web::session_cookie_name(app),
        app.config.cookie_path(),
        if app.config.secure_cookies() {
            "; Secure"
        } else {
            ""
        }
    );
    finish(app, request, HeaderValue::from_str(&cookie).ok())
}

fn finish(app: &App, request: &LogoutRequest, cookie: Option<HeaderValue>) -> Response {
    let mut response = match &request.post_logout_redirect_uri {
        Some(uri) => {
            let mut r = redirect_to_client(app, uri, request.state.as_deref(), vec![]);
            // RP-Initiated Logout returns `state` only; `iss` is for authorization responses.
            if let Some(location) = r
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok())
            {
                let cleaned = strip_iss(location);
                if let Ok(v) = HeaderValue::from_str(&cleaned) {
                    r.headers_mut().insert(header::LOCATION, v);
                }
            }
            r
        }
        None => page(
            app,
            StatusCode::OK,
            "You are signed out",
            "Your Telegram sign-in on this device has ended.",
        ),
    };
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

fn strip_iss(location: &str) -> String {
    match url::Url::parse(location) {
        Ok(mut url) => {
            let kept: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "iss")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            if kept.is_empty() {
                url.set_query(None);
            } else {
                url.query_pairs_mut().clear().extend_pairs(kept);
            }
            url.to_string()
        }
        Err(_) => location.to_owned(),
    }
}

/// The logout token (Back-Channel Logout §2.4), signed like the client's ID tokens.
pub fn logout_token(
    app: &App,
    client: &ClientRecord,
    user_id: i64,
) -> Result<String, crate::keys::KeyError> {
    let now = app.now();
    let claims = json!({
        "iss": app.config.issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": new_id(),
        "sub": subject::subject_for(app, client, user_id),
        "events": { BACKCHANNEL_EVENT: {} },
    });
    app.keys
        .sign(client.settings.id_token_alg, "logout+jwt", &claims)
}

async fn send_logout_token(uri: String, token: String, client_id: String) {
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .redirect(reqwest::redirect::Policy::none())
        .build()
    {
        Ok(c) => c,
        Err(_) => return,
    };
    match client
        .post(&uri)
        .form(&[("logout_token", token)])
        .send()
        .await
    {
        Ok(r) if r.status().is_success() => {
            tracing::info!(client_id = %client_id, "back-channel logout delivered");
        }
        Ok(r) => {
            tracing::warn!(client_id = %client_id, status = %r.status(), "back-channel logout refused")
        }
        Err(e) => {
            tracing::warn!(client_id = %client_id, error = %e.without_url(), "back-channel logout failed")
        }
    }
}
