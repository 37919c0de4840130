//! The login page and the Login Widget callback: the only place the widget's fields are read.

use std::net::IpAddr;

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use crate::flow;
use crate::flow::login::ProofKey;
use crate::oidc::authorize::AuthorizationRequest;
use crate::secrets::sha256;
use crate::state::{App, AppState};
use crate::store::ClientRecord;
use crate::telegram::TelegramIdentity;
use crate::telegram::widget::{self, Freshness, WidgetError};
use crate::web::authorize::{load_login_pending, see_other};
use crate::web::browser_error::{BrowserError, Problem};
use crate::web::client_addr::ClientAddr;
use crate::web::user_agent::browser_of;
// The templates call these as `self::t(...)`.
use crate::web::i18n::{lang, t, tf};
use crate::web::{self, pages};

/// How long the login page waits for telegram.org's widget script before it says the button did
/// not load and points at the other ways in (a script that fails says so at once).
const WIDGET_TIMEOUT_MS: u64 = 6000;

#[derive(Deserialize)]
pub struct LoginQuery {
    req: String,
}

pub async fn login_page(
    State(app): State<AppState>,
    query: Result<Query<LoginQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    ClientAddr(addr): ClientAddr,
) -> Result<Response, BrowserError> {
    let Ok(Query(query)) = query else {
        return Err(Problem::page(
            StatusCode::BAD_REQUEST,
            "This sign-in link is incomplete",
            "Go back to the app and start signing in again.",
        )
        .at(&app));
    };
    let (request, _, client) = load_login_pending(&app, &query.req)
        .await
        .map_err(|p| p.at(&app))?;
    if let Some(step_up) = &request.step_up {
        return confirm_page(
            &app,
            &query.req,
            &request,
            &client,
            step_up.user_id,
            &headers,
            addr,
        )
        .await
        .map_err(|p| p.at(&app));
    }
    let nonce = pages::csp_nonce();
    let callback_url = app.url(&format!("/login/telegram/{}", query.req));
    let emulator_url = app
        .config
        .dev_mode
        .then(|| format!("{}/dev/telegram?req={}", app.base_path(), query.req));
    let script_origin =
        pages::origin_of(&app.config.telegram.widget_script_url).unwrap_or_default();
    let app_origin = pages::origin_of(&request.redirect_uri).unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}' {script_origin}; frame-src https://oauth.telegram.org; \
         img-src 'self' data: https://telegram.org https://t.me; style-src 'self'; connect-src 'self'; \
         form-action 'self' {app_origin}; base-uri 'none'; frame-ancestors 'none'"
    );
    // The bot link is offered beside the widget; when it cannot be prepared, the rest still works.
    let (bot_login, bot_cookie) = if web::deeplink::enabled(&app) {
        // Named in the approval message, so the user can tell this browser from another.
        let browser = browser_of(&app, &headers, addr);
        let requester = flow::bot_chat::Requester {
            browser: browser.device,
            place: browser.place,
            user_code: None,
            app_domain: Some(pages::app_domain(&request.redirect_uri)).filter(|d| !d.is_empty()),
        };
        match web::deeplink::for_login_page(&app, &query.req, &client, &requester, None).await {
            Ok((view, cookie)) => (Some(view), Some(cookie)),
            Err(e) => {
                tracing::warn!(error = %e, "the bot login link could not be prepared");
                (None, None)
            }
        }
    } else {
        (None, None)
    };
    let mut response = pages::render(
        StatusCode::OK,
        &pages::LoginPage {
            bot_login,
            base: app.base_path(),
            client_name: &client.settings.name,
            bot_username: &app.config.telegram.bot_username,
            widget_script_url: &app.config.telegram.widget_script_url,
            callback_url: &callback_url,
            js_mode: app.config.telegram.widget_mode == crate::config::WidgetMode::Callback,
            nonce: &nonce,
            widget_timeout_ms: WIDGET_TIMEOUT_MS,
            emulator_url,
            telegram_oidc_url: app.telegram_oidc.as_ref().map(|_| {
                format!(
                    "{}{}?req={}",
                    app.base_path(),
                    web::upstream::START_PATH,
                    query.req
                )
            }),
            shares_phone: app
                .config
                .telegram_oidc
                .as_ref()
                .is_some_and(|u| u.scopes.iter().any(|s| s == "phone")),
        },
        &csp,
    );
    if let Some(cookie) = bot_cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    Ok(response)
}

#[derive(Template)]
#[template(path = "confirm.html")]
struct ConfirmPage<'a> {
    base: &'a str,
    client_name: &'a str,
    app_domain: &'a str,
    nonce: &'a str,
    bot_login: Option<crate::web::deeplink::BotLoginView>,
}

/// Step-up: the user has logged in, and the app asks for a confirmation in the bot chat too.
/// The question goes straight to their chat (or, if the bot may not write to them first, the
/// link opens it); the page shows the number to press and waits.
async fn confirm_page(
    app: &App,
    req: &str,
    request: &AuthorizationRequest,
    client: &ClientRecord,
    user_id: i64,
    headers: &HeaderMap,
    addr: IpAddr,
) -> Result<Response, Problem> {
    let browser = browser_of(app, headers, addr);
    let app_domain = pages::app_domain(&request.redirect_uri);
    let requester = flow::bot_chat::Requester {
        browser: browser.device,
        place: browser.place,
        user_code: None,
        app_domain: Some(app_domain.clone()).filter(|d| !d.is_empty()),
    };
    let (view, cookie) =
        web::deeplink::for_login_page(app, req, client, &requester, Some(user_id)).await?;
    let nonce = pages::csp_nonce();
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; \
         connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    );
    let mut response = pages::render(
        StatusCode::OK,
        &ConfirmPage {
            base: app.base_path(),
            client_name: &client.settings.name,
            app_domain: &app_domain,
            nonce: &nonce,
            bot_login: Some(view),
        },
        &csp,
    );
    response.headers_mut().append(header::SET_COOKIE, cookie);
    Ok(response)
}

/// Widget fields that could not be read at all.
fn unreadable(message: String) -> Problem {
    Problem::page(
        StatusCode::BAD_REQUEST,
        "The Telegram login could not be read",
        message,
    )
}

/// `data-auth-url` mode: Telegram redirects here with the signed fields in the query.
pub async fn widget_callback_get(
    State(app): State<AppState>,
    Path(req): Path<String>,
    RawQuery(query): RawQuery,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
) -> Result<Response, BrowserError> {
    let result = match web::parse_params(query.as_deref().unwrap_or("")) {
        Ok(fields) => widget_login(&app, &req, &fields, &headers, addr).await,
        Err(e) => Err(unreadable(e.description)),
    };
    result.map_err(|p| p.at(&app))
}

/// `data-onauth` mode: the page's script posts the fields it received.
pub async fn widget_callback_post(
    State(app): State<AppState>,
    Path(req): Path<String>,
    ClientAddr(addr): ClientAddr,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, BrowserError> {
    let result = match web::read_form_params(&app, &headers, body).await {
        Ok(fields) => widget_login(&app, &req, &fields, &headers, addr).await,
        Err(e) => Err(unreadable(e.description)),
    };
    result.map_err(|p| p.at(&app))
}

async fn widget_login(
    app: &App,
    req: &str,
    fields: &[(String, String)],
    headers: &HeaderMap,
    addr: IpAddr,
) -> Result<Response, Problem> {
    let (request, _, _) = load_login_pending(app, req).await?;
    let now = app.now();
    let t = &app.config.telegram;
    let freshness = Freshness {
        window_secs: t.auth_date_window_secs,
        skew_secs: t.clock_skew_secs,
    };
    let (identity, raw_hash) = match widget::verify(fields, t.bot_token.expose(), now, freshness) {
        Ok(found) => found,
        Err(e) => {
            tracing::info!(reason = %e, "refused Login Widget data");
            app.metrics.login("telegram_widget", "invalid");
            let status = match e {
                WidgetError::BadSignature => StatusCode::UNAUTHORIZED,
                _ => StatusCode::BAD_REQUEST,
            };
            return Err(Problem::page(
                status,
                "Telegram login refused",
                e.to_string(),
            ));
        }
    };
    let proof = ProofKey(sha256(&raw_hash));
    finish_login(app, &identity, Some(proof), headers, addr, req, request).await
}

/// Every browser login ends here: through the gate to a new session, then back to the
/// authorization, which asks the gate whether this user may enter the app. `addr` is where the
/// browser is, for the place beside its session when a GeoIP database is configured.
pub async fn finish_login(
    app: &App,
    identity: &TelegramIdentity,
    proof: Option<ProofKey>,
    headers: &HeaderMap,
    addr: IpAddr,
    req: &str,
    request: AuthorizationRequest,
) -> Result<Response, Problem> {
    let old_session = web::session_id(app, headers);
    let browser = browser_of(app, headers, addr);
    let session = flow::login::in_browser(
        app,
        identity,
        proof,
        flow::login::BrowserLogin {
            replaces: old_session.as_deref(),
            browser: &browser,
        },
        req,
        request,
        app.now(),
    )
    .await?;
    let mut response = see_other(&app.url(&format!("/authorize/continue?req={req}")));
    response
        .headers_mut()
        .append(header::SET_COOKIE, web::session_cookie(app, &session)?);
    Ok(response)
}
