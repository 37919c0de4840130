//! The browser's side of a login confirmed in the bot chat: the login page offers a
//! `t.me/<bot>?start=<payload>` link and its QR code, the page asks for the status while the
//! user answers in Telegram, and the browser that started the login, and only that browser
//! (a cookie whose hash the login keeps), collects the answer and continues the authorization.
//! Without JavaScript the "continue" button does the same.

use askama::Template;
use axum::Json;
use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use qrcode::QrCode;
use qrcode::render::svg;
use serde::Deserialize;
use serde_json::json;

use crate::error::ErrorCode;
use crate::flow::bot_chat::{self, Purpose};
use crate::secrets::{TokenKind, constant_time_eq, new_token, token_hash};
use crate::state::{App, AppState};
use crate::store::flows::{BotLoginRecord, BotLoginStatus};
use crate::store::{ClientRecord, StoreError};
use crate::telegram::TelegramIdentity;
use crate::telegram::deeplink::COLLECT_SECS;
use crate::web::authorize::{load_login_pending, see_other};
use crate::web::browser_error::{BrowserError, Problem};
use crate::web::client_addr::ClientAddr;
// The templates call these as `self::t(...)`.
use crate::web::i18n::{lang, t};
use crate::web::{self, OAuthForm, pages};

pub const STATUS_PATH: &str = "/login/bot/status";
pub const COMPLETE_PATH: &str = "/login/bot/complete";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(STATUS_PATH, get(status))
        .route(COMPLETE_PATH, post(complete))
}

/// Whether the login page offers the bot: it needs the bot's username and a way to hear it.
pub fn enabled(app: &App) -> bool {
    app.bot_logins_enabled()
}

/// What the login page shows of a bot login.
pub struct BotLoginView {
    pub id: String,
    pub req: String,
    pub link: String,
    /// An inline SVG of the link, made here from our own link, so it is safe to embed.
    pub qr_svg: String,
    pub status_url: String,
    pub action: String,
    /// The number to press in the chat (number matching).
    pub match_code: i64,
    /// A confirmation of a login already made (step-up) ...
    pub confirming: bool,
    /// ... whose question is in the user's chat already.
    pub pushed: bool,
}

/// The cookie binding a login to this browser; one per login, so two tabs do not collide.
fn binding_cookie_name(app: &App, id: &str) -> String {
    if app.config.secure_cookies() && app.config.cookie_path() == "/" {
        format!("__Host-tgoidc_bot_{id}")
    } else {
        format!("tgoidc_bot_{id}")
    }
}

fn binding_cookie(app: &App, id: &str, value: &str, max_age: i64) -> Option<HeaderValue> {
    let secure = if app.config.secure_cookies() {
        "; Secure"
    } else {
        ""
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path={}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        binding_cookie_name(app, id),
        app.config.cookie_path(),
    ))
    .ok()
}

/// The hash of this browser's binding for login `id`, if it has one.
fn binding_hash(app: &App, headers: &HeaderMap, id: &str) -> Option<Vec<u8>> {
    web::cookie_value(headers, &binding_cookie_name(app, id))
        .filter(|v| v.starts_with(TokenKind::BrowserBinding.prefix()) && v.len() < 128)
        .map(token_hash)
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 32
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

pub fn qr_svg(text: &str) -> String {
    match QrCode::new(text.as_bytes()) {
        Ok(code) => {
            let image = code
                .render::<svg::Color>()
                .min_dimensions(200, 200)
                .quiet_zone(true)
                .build();
            // The XML declaration has no place inside HTML.
            match image.find("<svg") {
                Some(start) => image[start..].to_owned(),
                None => String::new(),
            }
        }
        Err(_) => String::new(),
    }
}

/// Starts a bot login for the login page of `req`: stores it and returns what the page shows
/// and the `Set-Cookie` that binds it to this browser. With `confirming`, the login confirms
/// that user's login (step-up): only their answer counts, and the question goes straight to
/// their chat.
pub async fn for_login_page(
    app: &App,
    req: &str,
    client: &ClientRecord,
    requester: &bot_chat::Requester,
    confirming: Option<i64>,
) -> Result<(BotLoginView, HeaderValue), StoreError> {
    let browser_secret = new_token(TokenKind::BrowserBinding);
    let ttl = app.config.telegram.deep_link_ttl_secs;
    let purpose = Purpose::Browser {
        pending_hash: token_hash(req),
        browser_hash: token_hash(&browser_secret),
    };
    let expires_at = app.now() + ttl;
    let (login, pushed) = match confirming {
        Some(user_id) => {
            let (login, pushed) = bot_chat::create_for_user(
                app,
                &client.client_id,
                purpose,
                requester,
                expires_at,
                user_id,
            )
            .await?;
            (login, Some(pushed))
        }
        None => (
            bot_chat::create(app, &client.client_id, purpose, requester, expires_at).await?,
            None,
        ),
    };
    let cookie = binding_cookie(app, &login.id, &browser_secret, ttl + COLLECT_SECS)
        .ok_or_else(|| StoreError::Internal("binding cookie".into()))?;
    let view = BotLoginView {
        qr_svg: qr_svg(&login.link),
        status_url: format!("{}{STATUS_PATH}?id={}", app.base_path(), login.id),
        action: format!("{}{COMPLETE_PATH}", app.base_path()),
        req: req.to_owned(),
        link: login.link,
        id: login.id,
        match_code: login.match_code,
        confirming: pushed.is_some(),
        pushed: pushed == Some(bot_chat::Pushed::Sent),
    };
    Ok((view, cookie))
}

/// The login as this browser may see it: `None` unless it holds the binding.
async fn bound_login(
    app: &App,
    headers: &HeaderMap,
    id: &str,
) -> Result<Option<BotLoginRecord>, StoreError> {
    if !is_valid_id(id) {
        return Ok(None);
    }
    let Some(presented) = binding_hash(app, headers, id) else {
        return Ok(None);
    };
    Ok(app.store.get_bot_login(id).await?.filter(|login| {
        login
            .browser_hash
            .as_deref()
            .is_some_and(|stored| constant_time_eq(stored, &presented))
    }))
}

/// The word the waiting page polls for.
fn status_word(login: &BotLoginRecord, now: i64) -> &'static str {
    match login.status {
        BotLoginStatus::Consumed => "used",
        _ if login.expires_at <= now => "expired",
        BotLoginStatus::Pending => "waiting",
        BotLoginStatus::Started => "opened",
        BotLoginStatus::Approved => "approved",
        BotLoginStatus::Denied => "denied",
    }
}

#[derive(Deserialize)]
pub struct StatusQuery {
    id: String,
}

/// `GET /login/bot/status?id=`: what became of the login, for the browser bound to it.
pub async fn status(
    State(app): State<AppState>,
    query: Result<Query<StatusQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let no_store = [(header::CACHE_CONTROL, "no-store")];
    let Ok(Query(query)) = query else {
        return (
            StatusCode::BAD_REQUEST,
            no_store,
            Json(json!({"status": "unknown"})),
        )
            .into_response();
    };
    match bound_login(&app, &headers, &query.id).await {
        Ok(Some(login)) => (
            no_store,
            Json(json!({"status": status_word(&login, app.now())})),
        )
            .into_response(),
        Ok(None) => (
            StatusCode::NOT_FOUND,
            no_store,
            Json(json!({"status": "unknown"})),
        )
            .into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "bot login status unavailable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [
                    (header::CACHE_CONTROL, "no-store"),
                    (header::RETRY_AFTER, "5"),
                ],
                Json(json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

#[derive(Template)]
#[template(path = "bot_wait.html")]
struct WaitPage<'a> {
    base: &'a str,
    /// The number to press in the chat, for logins that have one.
    match_code: Option<i64>,
    id: &'a str,
    req: &'a str,
    action: &'a str,
    login_url: &'a str,
}

#[derive(Deserialize)]
pub struct CompleteForm {
    id: String,
    req: String,
}

/// `POST /login/bot/complete`: the bound browser collects the answer given in the chat, once.
pub async fn complete(
    State(app): State<AppState>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    form: Result<OAuthForm<CompleteForm>, crate::error::OAuthError>,
) -> Result<Response, BrowserError> {
    let result = match form {
        Ok(OAuthForm(form)) => collect(&app, &headers, addr, &form).await,
        Err(e) => Err(Problem::page(
            StatusCode::BAD_REQUEST,
            "The answer could not be read",
            e.description,
        )),
    };
    result.map_err(|p| p.at(&app))
}

async fn collect(
    app: &App,
    headers: &HeaderMap,
    addr: std::net::IpAddr,
    form: &CompleteForm,
) -> Result<Response, Problem> {
    let other_browser = || {
        Problem::page(
            StatusCode::FORBIDDEN,
            "This confirmation belongs to another browser",
            "Only the browser that showed the Telegram link can continue. Go back to the app and sign in again.",
        )
    };
    if !is_valid_id(&form.id) {
        return Err(other_browser());
    }
    let Some(browser_hash) = binding_hash(app, headers, &form.id) else {
        return Err(other_browser());
    };
    let (request, _, _) = load_login_pending(app, &form.req).await?;
    let now = app.now();
    let finished = app
        .store
        .finish_bot_login(&form.id, &browser_hash, &token_hash(&form.req), now)
        .await?;
    let login_url = app.url(&format!("/login?req={}", form.req));
    let Some(login) = finished else {
        // Not answered yet, expired, or not this browser's: tell which.
        let login = bound_login(app, headers, &form.id)
            .await?
            .filter(|l| l.pending_hash.as_deref() == Some(token_hash(&form.req).as_slice()))
            .ok_or_else(other_browser)?;
        return match login.status {
            BotLoginStatus::Consumed => Err(Problem::page(
                StatusCode::BAD_REQUEST,
                "This Telegram confirmation was already used",
                "Go back to the app and sign in again.",
            )),
            BotLoginStatus::Pending | BotLoginStatus::Started if login.expires_at > now => {
                let action = format!("{}{COMPLETE_PATH}", app.base_path());
                Ok(pages::render(
                    StatusCode::OK,
                    &WaitPage {
                        base: app.base_path(),
                        match_code: login.match_code,
                        id: &form.id,
                        req: &form.req,
                        action: &action,
                        login_url: &login_url,
                    },
                    &pages::strict_csp(&[]),
                ))
            }
            // Expired: a fresh link on the login page.
            _ => Ok(see_other(&login_url)),
        };
    };
    let clear = binding_cookie(app, &form.id, "", 0);
    let mut response = match &login.identity {
        Some(json) => {
            let identity: TelegramIdentity =
                serde_json::from_str(json).map_err(crate::error::OAuthError::server_error)?;
            // Single use is kept by the bot login itself, consumed above.
            web::login::finish_login(app, &identity, None, headers, addr, &form.req, request)
                .await?
        }
        None => {
            app.store.delete_pending(&token_hash(&form.req)).await?;
            if request.device_verification.is_some() || request.account || request.admin {
                pages::render(
                    StatusCode::OK,
                    &pages::MessagePage {
                        base: app.base_path(),
                        title: "Sign-in cancelled",
                        message: if request.account || request.admin {
                            "You pressed Deny in Telegram. You were not signed in."
                        } else {
                            "You pressed Deny in Telegram. The device was not signed in."
                        },
                    },
                    &pages::strict_csp(&[]),
                )
            } else {
                Problem::from(request.error(
                    ErrorCode::AccessDenied,
                    "the user denied the login in Telegram",
                ))
                .at(app)
                .into_response()
            }
        }
    };
    if let Some(clear) = clear {
        response.headers_mut().append(header::SET_COOKIE, clear);
    }
    Ok(response)
}
