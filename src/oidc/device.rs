//! The device authorization grant (RFC 8628): `/device_authorization` hands a device its codes,
//! and the user confirms on the `/device` page (after an ordinary Telegram login) or right in
//! the bot chat through a `t.me/<bot>?start=` link. The device's polling is in
//! [`grant_device`](super::grant_device).

use askama::Template;
use aws_lc_rs::hmac;
use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::app::{App, AppState};
use crate::error::{OAuthError, OAuthResult};
use crate::oidc::authorize::{AuthorizationRequest, AuthorizeError, load_pending, see_other};
use crate::oidc::client_auth::{self, param};
use crate::oidc::scopes;
use crate::secrets::{TokenKind, constant_time_eq, new_token, random_bytes, token_hash};
use crate::store::flows::{DeviceApproval, DeviceCodeRecord, DeviceStatus};
use crate::store::{ClientRecord, PendingAuthorization, StoreError};
use crate::telegram::deeplink::{self, Purpose};
// The templates call these as `self::t(...)`.
use crate::web::i18n::{lang, t, tf};
use crate::web::{self, OAuthForm, pages};

pub const AUTHORIZATION_PATH: &str = "/device_authorization";
pub const VERIFICATION_PATH: &str = "/device";
pub const CONFIRM_PATH: &str = "/device/confirm";

/// Consonants only: no vowels to spell words, none that read alike (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(AUTHORIZATION_PATH, post(device_authorization))
        .route(VERIFICATION_PATH, get(enter_page).post(enter_code))
        .route(CONFIRM_PATH, get(confirm_page).post(confirm_decision))
}

/// A new user code: 8 letters, about 34.6 bits, drawn without modulo bias.
pub fn new_user_code() -> String {
    let mut code = String::with_capacity(USER_CODE_LEN);
    while code.len() < USER_CODE_LEN {
        for b in random_bytes::<16>() {
            // 240 is the largest multiple of 20 that fits a byte.
            if b < 240 && code.len() < USER_CODE_LEN {
                code.push(char::from(USER_CODE_ALPHABET[usize::from(b % 20)]));
            }
        }
    }
    code
}

/// `BCDFGHJK` as people read it: `BCDF-GHJK`.
pub fn display_user_code(code: &str) -> String {
    match code.split_at_checked(USER_CODE_LEN / 2) {
        Some((a, b)) => format!("{a}-{b}"),
        None => code.to_owned(),
    }
}

/// What the user typed, as stored: case, dashes and spaces do not matter (RFC 8628 §6.1).
pub fn normalize_user_code(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

fn json_response(body: Value) -> Response {
    let mut response = Json(body).into_response();
    let h = response.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

/// `POST /device_authorization` (RFC 8628 §3.1, §3.2).
pub async fn device_authorization(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let params = web::read_form_params(&app, &headers, body).await?;
        client_auth::reject_duplicates(&params)?;
        let client = client_auth::authenticate(&app, &headers, &params).await?;
        if !client.settings.device_flow {
            return Err(OAuthError::new(
                crate::error::ErrorCode::UnauthorizedClient,
                "this client is not registered for the device authorization grant",
            ));
        }
        start(&app, &client, param(&params, "scope")).await
    }
    .await;
    match result {
        Ok(body) => json_response(body),
        Err(e) => e.into_response(),
    }
}

/// The scopes a device asks for that it may have; omitted means `openid`.
fn granted_scope(client: &ClientRecord, asked: Option<&str>) -> OAuthResult<String> {
    let asked = scopes::parse(asked.unwrap_or(scopes::OPENID));
    let granted: Vec<String> = asked
        .into_iter()
        .filter(|s| scopes::SUPPORTED.contains(&s.as_str()))
        .filter(|s| client.settings.allowed_scopes.iter().any(|a| a == s))
        .collect();
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope(
            "none of the requested scopes is available to this app",
        ));
    }
    Ok(scopes::join(&granted))
}

async fn start(app: &App, client: &ClientRecord, asked: Option<&str>) -> OAuthResult<Value> {
    let scope = granted_scope(client, asked)?;
    let now = app.now();
    let ttl = app.config.tokens.device_code_ttl_secs;
    let interval = app.config.tokens.device_poll_interval_secs;
    let device_code = new_token(TokenKind::DeviceCode);
    let device_hash = token_hash(&device_code);
    let mut user_code = String::new();
    // A user code is short, so it can collide with a live one: draw again.
    for attempt in 0..5 {
        user_code = new_user_code();
        let created = app
            .store
            .create_device_code(&DeviceCodeRecord {
                device_code_hash: device_hash.clone(),
                user_code_hash: token_hash(&user_code),
                client_id: client.client_id.clone(),
                scope: scope.clone(),
                status: DeviceStatus::Pending,
                user_id: None,
                auth_time: None,
                amr: None,
                interval_secs: interval,
                last_polled_at: None,
                created_at: now,
                expires_at: now + ttl,
            })
            .await;
        match created {
            Ok(()) => break,
            Err(StoreError::Conflict(_)) if attempt < 4 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let display = display_user_code(&user_code);
    let verification_uri = app.url(VERIFICATION_PATH);
    let complete = format!("{verification_uri}?user_code={display}");
    let mut body = json!({
        "device_code": device_code,
        "user_code": display,
        "verification_uri": verification_uri,
        "verification_uri_complete": complete,
        "expires_in": ttl,
        "interval": interval,
    });
    if web::deeplink::enabled(app) {
        let login = deeplink::create(
            app,
            &client.client_id,
            Purpose::Device {
                device_hash: device_hash.clone(),
            },
            now + ttl,
        )
        .await?;
        // An extension parameter (RFC 8628 §3.2 allows them): confirm in the bot chat instead.
        body["verification_uri_telegram"] = json!(login.link);
    }
    Ok(body)
}

// ---- the verification page ----

#[derive(Template)]
#[template(path = "device.html")]
struct EnterPage<'a> {
    base: &'a str,
    action: &'a str,
    user_code: &'a str,
    error: Option<&'a str>,
}

fn enter_page_with(
    app: &App,
    status: StatusCode,
    user_code: &str,
    error: Option<&str>,
) -> Response {
    let action = format!("{}{VERIFICATION_PATH}", app.base_path());
    pages::render(
        status,
        &EnterPage {
            base: app.base_path(),
            action: &action,
            user_code,
            error,
        },
        &pages::strict_csp(&[]),
    )
}

#[derive(Deserialize)]
pub struct EnterQuery {
    #[serde(default)]
    user_code: String,
}

/// `GET /device[?user_code=]`: the form for the code the device shows; `verification_uri_complete`
/// fills it in, and the user still presses Continue (RFC 8628 §3.3.1).
pub async fn enter_page(
    State(app): State<AppState>,
    query: Result<Query<EnterQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let code = query
        .map(|Query(q)| q.user_code)
        .unwrap_or_default()
        .chars()
        .take(16)
        .collect::<String>();
    enter_page_with(&app, StatusCode::OK, &code, None)
}

#[derive(Deserialize)]
pub struct EnterForm {
    user_code: String,
}

/// `POST /device`: finds the waiting device code and sends the browser through the ordinary
/// login (skipped when it has a session) to the confirmation page.
pub async fn enter_code(
    State(app): State<AppState>,
    form: Result<OAuthForm<EnterForm>, OAuthError>,
) -> Response {
    let typed = match form {
        Ok(OAuthForm(form)) => form.user_code,
        Err(_) => String::new(),
    };
    let unknown = "This code is not valid or has expired. Check the code on your device.";
    let now = app.now();
    // RFC 8628 §5.1: user codes are short, so guessing is throttled before any lookup.
    if !app.user_code_attempt_allowed(now) {
        let mut response = enter_page_with(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            "",
            Some("Too many wrong codes were tried. Wait a minute and try again."),
        );
        response.headers_mut().insert(
            axum::http::header::RETRY_AFTER,
            axum::http::HeaderValue::from_static("60"),
        );
        return response;
    }
    let Some(code) = normalize_user_code(&typed) else {
        app.note_user_code_miss(now);
        return enter_page_with(&app, StatusCode::BAD_REQUEST, "", Some(unknown));
    };
    let user_code_hash = token_hash(&code);
    let found = match app.store.find_device_code(&user_code_hash, now).await {
        Ok(found) => found,
        Err(e) => return AuthorizeError::from(e).into_response(&app),
    };
    let Some(device) = found else {
        app.note_user_code_miss(now);
        return enter_page_with(&app, StatusCode::BAD_REQUEST, "", Some(unknown));
    };
    let request = AuthorizationRequest {
        client_id: device.client_id.clone(),
        scope: device.scope.clone(),
        device_verification: Some(hex::encode(&user_code_hash)),
        ..Default::default()
    };
    let result = async {
        let req = new_token(TokenKind::PendingAuthorization);
        let json = serde_json::to_string(&request).map_err(OAuthError::server_error)?;
        app.store
            .create_pending(&PendingAuthorization {
                id_hash: token_hash(&req),
                client_id: device.client_id.clone(),
                request: json,
                created_at: now,
                expires_at: device.expires_at,
            })
            .await?;
        Ok::<_, OAuthError>(see_other(
            &app.url(&format!("/authorize/continue?req={req}")),
        ))
    }
    .await;
    result.unwrap_or_else(|e| AuthorizeError::from(e).into_response(&app))
}

/// HMAC keyed by the raw session id, which only this browser's cookie holds.
fn csrf_token(session_id: &str, req: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, session_id.as_bytes());
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, format!("device:{req}").as_bytes()).as_ref())
}

#[derive(Template)]
#[template(path = "device_confirm.html")]
struct ConfirmPage<'a> {
    base: &'a str,
    client_name: &'a str,
    user_name: &'a str,
    scopes: Vec<&'a str>,
    req: &'a str,
    csrf: &'a str,
    action: &'a str,
}

/// The device code a pending verification names, still waiting.
async fn waiting_device(
    app: &App,
    request: &AuthorizationRequest,
) -> Result<DeviceCodeRecord, AuthorizeError> {
    let expired = || AuthorizeError::Page {
        status: StatusCode::BAD_REQUEST,
        title: "This device sign-in has expired",
        message: "Start again on the device to get a new code.".into(),
    };
    let hash = request
        .device_verification
        .as_deref()
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(expired)?;
    app.store
        .find_device_code(&hash, app.now())
        .await?
        .ok_or_else(expired)
}

#[derive(Deserialize)]
pub struct ConfirmQuery {
    req: String,
}

/// `GET /device/confirm?req=`: names the app and the scopes, with Approve / Deny.
pub async fn confirm_page(
    State(app): State<AppState>,
    query: Result<Query<ConfirmQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Query(query)) = query else {
        return web::not_found().await;
    };
    let result = async {
        let (request, _, client) = load_pending(&app, &query.req).await?;
        let device = waiting_device(&app, &request).await?;
        let Some((session_id, session)) = web::current_session(&app, &headers).await? else {
            return Ok(see_other(&app.url(&format!("/login?req={}", query.req))));
        };
        let user_name = match app.store.get_user(session.user_id).await? {
            Some(u) => match u.username {
                Some(username) => format!("{} (@{username})", u.first_name),
                None => u.first_name,
            },
            None => session.user_id.to_string(),
        };
        let scope_words: Vec<&str> = device
            .scope
            .split(' ')
            .filter_map(scopes::describe)
            .collect();
        let csrf = csrf_token(&session_id, &query.req);
        let action = format!("{}{CONFIRM_PATH}", app.base_path());
        Ok(pages::render(
            StatusCode::OK,
            &ConfirmPage {
                base: app.base_path(),
                client_name: &client.settings.name,
                user_name: &user_name,
                scopes: scope_words,
                req: &query.req,
                csrf: &csrf,
                action: &action,
            },
            &pages::strict_csp(&[]),
        ))
    }
    .await;
    result.unwrap_or_else(|e: AuthorizeError| e.into_response(&app))
}

#[derive(Deserialize)]
pub struct ConfirmForm {
    req: String,
    csrf: String,
    decision: String,
}

/// `POST /device/confirm`: the signed-in user approves or denies; approval is the consent.
pub async fn confirm_decision(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<OAuthForm<ConfirmForm>, OAuthError>,
) -> Response {
    let Ok(OAuthForm(form)) = form else {
        return pages::error_page_at(
            app.base_path(),
            StatusCode::BAD_REQUEST,
            "The answer could not be read",
            "Choose Approve or Deny.",
        );
    };
    let result = async {
        let forbidden = || AuthorizeError::Page {
            status: StatusCode::FORBIDDEN,
            title: "This answer was not accepted",
            message: "It did not come from the confirmation page shown in this browser. Start again on the device.".into(),
        };
        let Some((session_id, session)) = web::current_session(&app, &headers).await? else {
            return Err(forbidden());
        };
        if !constant_time_eq(
            csrf_token(&session_id, &form.req).as_bytes(),
            form.csrf.as_bytes(),
        ) {
            return Err(forbidden());
        }
        let (request, _, client) = load_pending(&app, &form.req).await?;
        let device = waiting_device(&app, &request).await?;
        let now = app.now();
        let approval = match form.decision.as_str() {
            "approve" => Some(DeviceApproval {
                user_id: session.user_id,
                auth_time: session.auth_time,
                amr: session.amr.clone(),
            }),
            "deny" => None,
            _ => {
                return Err(AuthorizeError::Page {
                    status: StatusCode::BAD_REQUEST,
                    title: "The answer could not be read",
                    message: "Choose Approve or Deny.".into(),
                });
            }
        };
        let decided = app
            .store
            .decide_device_code(&device.device_code_hash, approval.as_ref(), now)
            .await?;
        app.store.delete_pending(&token_hash(&form.req)).await?;
        let Some(decided) = decided else {
            return Err(AuthorizeError::Page {
                status: StatusCode::BAD_REQUEST,
                title: "This device sign-in has expired",
                message: "It was answered already, or it ran out of time. Start again on the device.".into(),
            });
        };
        let (title, message) = if approval.is_some() {
            app.store
                .save_consent(session.user_id, &client.client_id, &decided.scope, now)
                .await?;
            (
                "Device signed in",
                format!(
                    "{} on your device is now signed in. You can close this page.",
                    client.settings.name
                ),
            )
        } else {
            (
                "Sign-in denied",
                format!(
                    "{} on your device was not signed in. You can close this page.",
                    client.settings.name
                ),
            )
        };
        Ok(pages::render(
            StatusCode::OK,
            &pages::MessagePage {
                base: app.base_path(),
                title,
                message: &message,
            },
            &pages::strict_csp(&[]),
        ))
    }
    .await;
    result.unwrap_or_else(|e| e.into_response(&app))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_short_unambiguous_and_forgiving() {
        let code = new_user_code();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
        let shown = display_user_code(&code);
        assert_eq!(shown.len(), 9);
        assert_eq!(normalize_user_code(&shown).as_deref(), Some(code.as_str()));
        assert_eq!(
            normalize_user_code(" bcdf-ghjk ").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalize_user_code("bcdf ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalize_user_code("BCDF-GHJA"),
            None,
            "A is not in the alphabet"
        );
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(normalize_user_code("BCDF-GHJKL"), None);
    }

    #[test]
    fn user_codes_differ() {
        let codes: std::collections::HashSet<String> = (0..100).map(|_| new_user_code()).collect();
        assert!(codes.len() > 95);
    }
}
