//! The device authorization grant's pages and endpoint (RFC 8628): `/device_authorization`
//! hands a device its codes, and the user confirms on the `/device` page (after an ordinary
//! Telegram login) or right in the bot chat through a `t.me/<bot>?start=` link.

use askama::Template;
use std::net::IpAddr;

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::error::{OAuthError, OAuthResult};
use crate::flow;
use crate::flow::bot_chat::Purpose;
use crate::flow::device::Decided;
use crate::flow::limits::Policy;
use crate::flow::login::Refused;
use crate::oidc::authorize::AuthorizationRequest;
use crate::oidc::device::{
    AUTHORIZATION_PATH, CONFIRM_PATH, VERIFICATION_PATH, normalize_user_code,
};
use crate::oidc::scopes;
use crate::secrets::{TokenKind, new_token, token_hash};
use crate::state::{App, AppState};
use crate::store::flows::{DeviceApproval, DeviceCodeRecord};
use crate::store::{ClientRecord, PendingAuthorization};
use crate::web::authorize::{load_pending, see_other};
use crate::web::browser_error::{BrowserError, Problem};
use crate::web::client_addr::{ClientAddr, limit_key};
use crate::web::csrf::{self, Form};
// The templates call these as `self::t(...)`.
use crate::web::i18n::{lang, t, tf};
use crate::web::rate_limit::Limits;
use crate::web::{self, OAuthForm, pages};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(AUTHORIZATION_PATH, post(device_authorization))
        .route(VERIFICATION_PATH, get(enter_page).post(enter_code))
        .route(CONFIRM_PATH, get(confirm_page).post(confirm_decision))
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
    ClientAddr(addr): ClientAddr,
    limits: Limits,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let result = async {
        let form = web::extract::FormParams::read(&app, &headers, body).await?;
        if let Some(claimed) = web::extract::claimed_client_id(&headers, &form) {
            limits
                .count(&app, Policy::DeviceAuthorizationClient, &claimed)
                .await?;
        }
        let client = web::token::authenticated_client(&app, &headers, &form).await?;
        if !client.settings.device_flow {
            return Err(OAuthError::new(
                crate::error::ErrorCode::UnauthorizedClient,
                "this client is not registered for the device authorization grant",
            ));
        }
        start(&app, &client, form.get("scope"), addr).await
    }
    .await;
    match result {
        Ok(body) => json_response(body),
        Err(e) => e.into_response(),
    }
}

/// The device's codes, and the bot link that confirms them in the chat when the bot listens.
async fn start(
    app: &App,
    client: &ClientRecord,
    asked: Option<&str>,
    addr: IpAddr,
) -> OAuthResult<Value> {
    let now = app.now();
    let (mut body, device_hash, expires_at) =
        crate::oidc::device::start(app, client, asked, now).await?;
    if web::deeplink::enabled(app) {
        // The chat names the device by the user code it shows.
        let requester = flow::bot_chat::Requester {
            user_code: body["user_code"].as_str().map(str::to_owned),
            place: app.geoip.as_ref().and_then(|g| g.place(addr)),
            ..Default::default()
        };
        let login = flow::bot_chat::create(
            app,
            &client.client_id,
            Purpose::Device { device_hash },
            &requester,
            expires_at,
        )
        .await?;
        // Extension parameters (RFC 8628 §3.2 allows them): confirm in the bot chat instead,
        // pressing there the number the device shows beside its code.
        body["verification_uri_telegram"] = json!(login.link);
        body["telegram_match_code"] = json!(login.match_code);
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
    ClientAddr(addr): ClientAddr,
    limits: Limits,
    headers: HeaderMap,
    form: Result<OAuthForm<EnterForm>, OAuthError>,
) -> Result<Response, BrowserError> {
    let typed = match form {
        Ok(OAuthForm(form)) => form.user_code,
        Err(_) => String::new(),
    };
    let unknown = "This code is not valid or has expired. Check the code on your device.";
    let now = app.now();
    // RFC 8628 §5.1: user codes are short, so guessing is limited: every try per address
    // (the middleware's `device-ip`), and wrong codes per signed-in user, or per address for
    // a browser without a session (`device-miss`). A user's misses never lock out another.
    let miss_key = match web::current_session(&app, &headers).await {
        Ok(Some((_, session))) => format!("user:{}", session.user_id),
        _ => format!("ip:{}", limit_key(addr)),
    };
    if !limits.may_fail(&app, Policy::DeviceMiss, &miss_key).await {
        // `Retry-After` and the rate limit headers come from the middleware.
        return Ok(enter_page_with(
            &app,
            StatusCode::TOO_MANY_REQUESTS,
            "",
            Some("Too many wrong codes were tried. Wait a few minutes and try again."),
        ));
    }
    let Some(code) = normalize_user_code(&typed) else {
        limits.failed(&app, Policy::DeviceMiss, &miss_key).await;
        return Ok(enter_page_with(
            &app,
            StatusCode::BAD_REQUEST,
            "",
            Some(unknown),
        ));
    };
    let user_code_hash = token_hash(&code);
    let found = app.store.find_device_code(&user_code_hash, now).await;
    let Some(device) = found.map_err(|e| Problem::from(e).at(&app))? else {
        limits.failed(&app, Policy::DeviceMiss, &miss_key).await;
        return Ok(enter_page_with(
            &app,
            StatusCode::BAD_REQUEST,
            "",
            Some(unknown),
        ));
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
    result.map_err(|e| Problem::from(e).at(&app))
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
) -> Result<DeviceCodeRecord, Problem> {
    let expired = || {
        Problem::page(
            StatusCode::BAD_REQUEST,
            "This device sign-in has expired",
            "Start again on the device to get a new code.",
        )
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
) -> Result<Response, BrowserError> {
    let Ok(Query(query)) = query else {
        return Ok(web::not_found().await);
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
        let csrf = csrf::token(&session_id, Form::Device(&query.req));
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
    result.map_err(|p: Problem| p.at(&app))
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
) -> Result<Response, BrowserError> {
    let unreadable = || {
        Problem::page(
            StatusCode::BAD_REQUEST,
            "The answer could not be read",
            "Choose Approve or Deny.",
        )
    };
    let Ok(OAuthForm(form)) = form else {
        return Err(unreadable().at(&app));
    };
    let result = async {
        let forbidden = || {
            Problem::page(
                StatusCode::FORBIDDEN,
                "This answer was not accepted",
                "It did not come from the confirmation page shown in this browser. Start again on the device.",
            )
        };
        let Some((session_id, session)) = web::current_session(&app, &headers).await? else {
            return Err(forbidden());
        };
        if !csrf::verify(&session_id, Form::Device(&form.req), &form.csrf) {
            return Err(forbidden());
        }
        let (request, _, client) = load_pending(&app, &form.req).await?;
        let device = waiting_device(&app, &request).await?;
        let now = app.now();
        let decided = match form.decision.as_str() {
            "approve" => {
                let approval = DeviceApproval {
                    user_id: session.user_id,
                    auth_time: session.auth_time,
                    amr: session.amr.clone(),
                };
                flow::device::approve(&app, &device.device_code_hash, &client, approval, None, now)
                    .await
            }
            "deny" => flow::device::deny(&app, &device.device_code_hash, now).await,
            _ => return Err(unreadable()),
        };
        app.store.delete_pending(&token_hash(&form.req)).await?;
        let (title, message) = match decided {
            Ok(Decided::Approved) => (
                "Device signed in",
                format!(
                    "{} on your device is now signed in. You can close this page.",
                    client.settings.name
                ),
            ),
            Ok(Decided::Denied) => (
                "Sign-in denied",
                format!(
                    "{} on your device was not signed in. You can close this page.",
                    client.settings.name
                ),
            ),
            Ok(Decided::Gone) | Err(Refused::AlreadyUsed) => {
                return Err(Problem::page(
                    StatusCode::BAD_REQUEST,
                    "This device sign-in has expired",
                    "It was answered already, or it ran out of time. Start again on the device.",
                ));
            }
            Err(e) => return Err(e.into()),
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
    result.map_err(|p: Problem| p.at(&app))
}
