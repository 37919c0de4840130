//! The account page, `/account`: the apps the user gave something to (Revoke each), the
//! browsers where they are signed in (Sign out each, or everywhere), after a Telegram login
//! through the same login pages and gate as every login. Every button is a POST form carrying
//! a token bound to this browser's session (`web::csrf`). The actions are `flow::account`'s,
//! the same the bot chat's buttons take.

use askama::Template;
use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;

use crate::flow::account::{self, AppEntry, SessionEntry};
use crate::oidc::authorize::{ACCOUNT_PAGE, AuthorizationRequest};
use crate::state::{App, AppState};
use crate::store::ClientRecord;
use crate::web::authorize::see_other;
use crate::web::browser_error::{BrowserError, Problem};
use crate::web::csrf::{self, Form};
// The templates call these as `self::t(...)`.
use crate::web::i18n::{lang, t, tf};
use crate::web::{self, pages};

pub const PATH: &str = "/account";

/// What the login pages show as the "app" of a login to this page.
pub fn page_client(app: &App) -> Result<ClientRecord, Problem> {
    let settings = serde_json::from_value(serde_json::json!({
        "name": t("your account"),
        "kind": "public",
        "redirect_uris": [app.url(PATH)],
        "allowed_scopes": [],
        "id_token_alg": "RS256",
    }))
    .map_err(crate::error::OAuthError::server_error)?;
    Ok(ClientRecord {
        client_id: ACCOUNT_PAGE.to_owned(),
        secret_hash: None,
        settings,
        created_at: 0,
    })
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage<'a> {
    base: &'a str,
    user_name: &'a str,
    action: &'a str,
    csrf: &'a str,
    notice: Option<&'a str>,
    apps: Vec<AppView>,
    sessions: Vec<SessionView>,
    alerts_on: bool,
    bot_username: &'a str,
}

struct AppView {
    handle: String,
    name: String,
    domain: String,
    scopes: Vec<String>,
    last_used: String,
}

struct SessionView {
    handle: String,
    device: String,
    place: Option<String>,
    signed_in: String,
    last_used: String,
    this_browser: bool,
}

/// The notices a finished action leaves in the query (`?done=`).
fn notice_of(query: Option<&str>) -> Option<&'static str> {
    web::done_notice(
        query,
        &[
            (
                "revoked",
                "The app's access was revoked: its sign-ins and tokens have ended.",
            ),
            ("signed_out", "That browser was signed out."),
            ("gone", "That was already gone."),
        ],
    )
}

/// `GET /account`: the page for a signed-in browser; otherwise a Telegram login first.
pub async fn page(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, BrowserError> {
    show(&app, query.as_deref(), &headers)
        .await
        .map_err(|p| p.at(&app))
}

async fn show(app: &App, query: Option<&str>, headers: &HeaderMap) -> Result<Response, Problem> {
    let Some((session_id, session)) = web::current_session(app, headers).await? else {
        return start_login(app).await;
    };
    let now = app.now();
    let user_name = match app.store.get_user(session.user_id).await? {
        Some(u) => match u.username {
            Some(username) => format!("{} (@{username})", u.first_name),
            None => u.first_name,
        },
        None => session.user_id.to_string(),
    };
    let apps = account::apps(app, session.user_id, now).await?;
    let sessions = account::sessions(app, session.user_id, now).await?;
    let this = account::session_handle(&session.id_hash);
    let csrf = csrf::token(&session_id, Form::Account);
    let action = format!("{}{PATH}", app.base_path());
    Ok(pages::render(
        StatusCode::OK,
        &AccountPage {
            base: app.base_path(),
            user_name: &user_name,
            action: &action,
            csrf: &csrf,
            notice: notice_of(query),
            apps: apps.into_iter().map(app_view).collect(),
            sessions: sessions
                .into_iter()
                .map(|s| session_view(s, &this))
                .collect(),
            alerts_on: account::alerts_on(app, session.user_id).await?,
            // The commands are worth naming only when the bot hears them.
            bot_username: if app.bot.is_some() {
                &app.config.telegram.bot_username
            } else {
                ""
            },
        },
        &pages::strict_csp(&[]),
    ))
}

fn app_view(a: AppEntry) -> AppView {
    AppView {
        handle: a.handle,
        name: a.name,
        domain: a.domain.unwrap_or_default(),
        scopes: a.scopes,
        last_used: account::when(a.last_used_at),
    }
}

fn session_view(s: SessionEntry, this: &str) -> SessionView {
    SessionView {
        this_browser: s.handle == this,
        handle: s.handle,
        device: s.device.unwrap_or_else(|| t("Unknown browser").to_owned()),
        place: s.place,
        signed_in: account::when(s.signed_in_at),
        last_used: account::when(s.last_used_at),
    }
}

/// No session: the ordinary login pages, for a pending login whose end is this page.
async fn start_login(app: &App) -> Result<Response, Problem> {
    web::authorize::start_page_login(
        app,
        AuthorizationRequest {
            client_id: ACCOUNT_PAGE.to_owned(),
            account: true,
            prompt_login: true,
            ..Default::default()
        },
    )
    .await
}

/// `POST /account`: Revoke, Sign out or Sign out everywhere, from the page this browser showed.
pub async fn act(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, BrowserError> {
    answer(&app, &headers, body).await.map_err(|p| p.at(&app))
}

async fn answer(app: &App, headers: &HeaderMap, body: Body) -> Result<Response, Problem> {
    let params = web::read_form_params(app, headers, body)
        .await
        .and_then(|params| crate::params::check_request_params(&params).map(|()| params))
        .map_err(|e| {
            Problem::page(
                StatusCode::BAD_REQUEST,
                "The answer could not be read",
                e.description,
            )
        })?;
    if web::extract::first_repeated(&params).is_some() {
        return Err(Problem::page(
            StatusCode::BAD_REQUEST,
            "The answer could not be read",
            "A field appears more than once.",
        ));
    }
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    };
    let forbidden = || {
        Problem::page(
            StatusCode::FORBIDDEN,
            "This answer was not accepted",
            "It did not come from the account page shown in this browser. Open the account page again.",
        )
    };
    let Some((session_id, session)) = web::current_session(app, headers).await? else {
        return Err(forbidden());
    };
    if !csrf::verify(&session_id, Form::Account, field("csrf")) {
        return Err(forbidden());
    }
    let now = app.now();
    let user_id = session.user_id;
    let target = field("target");
    let done = |what: &str| see_other(&app.url(&format!("{PATH}?done={what}")));
    match field("action") {
        "revoke" => Ok(
            match account::revoke_app(app, user_id, target, now).await? {
                Some(_) => done("revoked"),
                None => done("gone"),
            },
        ),
        "sign_out" if target == account::session_handle(&session.id_hash) => {
            account::end_session(app, &session.id_hash, now).await?;
            Ok(signed_out(app, "You are signed out in this browser."))
        }
        "sign_out" => Ok(if account::sign_out(app, user_id, target, now).await? {
            done("signed_out")
        } else {
            done("gone")
        }),
        "sign_out_all" => {
            account::sign_out_everywhere(app, user_id, now).await?;
            Ok(signed_out(
                app,
                "Every browser signed in with your Telegram account, this one included, is signed out.",
            ))
        }
        _ => Err(Problem::page(
            StatusCode::BAD_REQUEST,
            "The answer could not be read",
            "Choose one of the page's buttons.",
        )),
    }
}

/// The page after this browser's own session ended, with the cookie cleared.
fn signed_out(app: &App, message: &str) -> Response {
    let mut response = pages::render(
        StatusCode::OK,
        &pages::MessagePage {
            base: app.base_path(),
            title: "You are signed out",
            message,
        },
        &pages::strict_csp(&[]),
    );
    if let Some(cookie) = web::clear_session_cookie(app) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
