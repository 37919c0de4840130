//! The admin desk, `/admin`: apps, users, signing keys and the audit log in the browser, for the
//! admins `[admin]` names. An admin signs in with Telegram through the ordinary login pages and
//! the same gate as every login: the desk is entered like an app whose access policy names the
//! admins (`admin::desk_client`), so a blocked user, a replayed proof or a lost chat
//! administrator right is refused there, once, for every way of logging in.
//!
//! A signed-in admin holds a desk session of its own (`__Host-tgoidc_admin` on an https
//! issuer; only its SHA-256 is stored) that ends after `admin.idle_timeout_secs` without a
//! request and `admin.session_max_secs` after the sign-in. Every request asks the gate again
//! (from the policy's cache), so an admin removed from the chat loses the desk at once. Every
//! form carries a token bound to the desk session (`web::csrf`). The actions are `admin`'s,
//! the same the CLI and the admin API take, audited there with the admin as the actor.

mod apps;
mod pages;
mod users;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use axum::routing::{get, post};

use crate::admin::{self, Actor};
use crate::flow::login::{self, Refused};
use crate::oidc::authorize::{ADMIN_DESK, AuthorizationRequest};
use crate::secrets::{TokenKind, new_token, token_hash};
use crate::state::{App, AppState};
use crate::store::{AdminSessionRecord, ClientRecord};
use crate::web::authorize::see_other;
use crate::web::browser_error::Problem;
use crate::web::csrf::{self, Form};
use crate::web::i18n::t;
use crate::web::{self, pages as web_pages};

pub const PATH: &str = "/admin";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(PATH, get(pages::home))
        .route("/admin/", get(pages::home))
        .route("/admin/sign-out", post(pages::sign_out))
        .route("/admin/apps", get(apps::apps).post(apps::create_app))
        .route("/admin/apps/new", get(apps::new_app))
        .route(
            "/admin/apps/{client_id}",
            get(apps::show_app).post(apps::change_app),
        )
        .route("/admin/users", get(users::users))
        .route(
            "/admin/users/{user_id}",
            get(users::show_user).post(users::change_user),
        )
        .route("/admin/keys", get(pages::keys).post(pages::rotate_key))
        .route("/admin/audit", get(pages::audit))
}

/// What the login pages show as the "app" of a sign-in to the desk, with the admins' policy.
pub fn page_client(app: &App) -> Result<ClientRecord, Problem> {
    admin::desk_client(&app.config, t("the admin desk"), &app.url(PATH))
        .map_err(|e| crate::error::OAuthError::server_error(e).into())
}

/// The refusal of a user the desk's policy does not name.
pub fn not_an_admin() -> Problem {
    Problem::page(
        StatusCode::FORBIDDEN,
        "Not an admin",
        "This Telegram account is not an admin of this login provider.",
    )
}

fn cookie_name(app: &App) -> &'static str {
    if app.config.secure_cookies() {
        "__Host-tgoidc_admin"
    } else {
        "tgoidc_admin"
    }
}

/// The desk cookie: `__Host-` (Secure, `Path=/`, no `Domain`) on an https issuer, so no other
/// host or path can set or read it.
fn cookie(app: &App, value: &str, max_age: i64) -> Option<HeaderValue> {
    let (path, secure) = if app.config.secure_cookies() {
        ("/".to_owned(), "; Secure")
    } else {
        (app.config.cookie_path(), "")
    };
    HeaderValue::from_str(&format!(
        "{}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}",
        cookie_name(app)
    ))
    .ok()
}

/// After the gate admitted `user_id` to the desk: a new desk session, its cookie, the desk.
pub async fn signed_in(app: &App, user_id: i64) -> Result<Response, Problem> {
    let now = app.now();
    let id = new_token(TokenKind::AdminSession);
    let max = app.config.admin.session_max_secs;
    app.store
        .create_admin_session(&AdminSessionRecord {
            id_hash: token_hash(&id),
            telegram_id: user_id,
            created_at: now,
            last_seen_at: now,
            expires_at: now + max,
        })
        .await?;
    let actor = actor_of(user_id);
    admin::record(
        app.store.as_ref(),
        &actor,
        "admin.signed_in",
        "ok",
        None,
        serde_json::Value::Null,
        app.now_millis(),
    )
    .await?;
    let mut response = see_other(&app.url("/admin/apps"));
    if let Some(c) = cookie(app, &id, max) {
        response.headers_mut().append(header::SET_COOKIE, c);
    }
    Ok(response)
}

/// The admin acting, as the audit log names them, with the request's address and id.
fn actor_of(user_id: i64) -> Actor {
    let meta = crate::flow::audit::REQUEST
        .try_with(Clone::clone)
        .unwrap_or_default();
    Actor {
        name: format!("admin:{user_id}"),
        ip: meta.ip,
        request_id: meta.request_id,
    }
}

/// A signed-in admin at the desk.
pub struct Desk {
    pub user_id: i64,
    /// How the page names them: first name and `@username`.
    pub name: String,
    /// The token every form of the page carries.
    pub csrf: String,
    pub actor: Actor,
    session_hash: Vec<u8>,
}

/// Why a request does not reach the desk.
pub enum Away {
    /// No live desk session: sign in (a page) or refuse (a form).
    SignIn,
    /// Refused with this page.
    Refused(Problem),
}

impl From<Problem> for Away {
    fn from(p: Problem) -> Self {
        Away::Refused(p)
    }
}

impl From<crate::store::StoreError> for Away {
    fn from(e: crate::store::StoreError) -> Self {
        Away::Refused(e.into())
    }
}

/// The desk for this request: the address allowed, a live desk session (its idle time
/// restarted), and the gate still admitting its admin.
pub async fn enter(app: &App, headers: &HeaderMap) -> Result<Desk, Away> {
    if !app.config.admin.desk_enabled() {
        return Err(Away::Refused(Problem::page(
            StatusCode::NOT_FOUND,
            "The admin desk is off",
            "Name the admins in the settings (admin.telegram_ids or admin.chat_id) to use it.",
        )));
    }
    let meta = crate::flow::audit::REQUEST
        .try_with(Clone::clone)
        .unwrap_or_default();
    let allowed = &app.config.admin.allow_ips;
    let ip: Option<std::net::IpAddr> = meta.ip.as_deref().and_then(|ip| ip.parse().ok());
    if !allowed.is_empty() && !ip.is_some_and(|ip| allowed.iter().any(|n| n.contains(&ip))) {
        let actor = Actor {
            name: "unknown".into(),
            ip: meta.ip.clone(),
            request_id: meta.request_id.clone(),
        };
        admin::record(
            app.store.as_ref(),
            &actor,
            "admin.refused",
            "refused",
            None,
            serde_json::json!({"reason": "address", "path": PATH}),
            app.now_millis(),
        )
        .await?;
        return Err(Away::Refused(Problem::page(
            StatusCode::FORBIDDEN,
            "Not from this address",
            "The admin desk is not served to this address.",
        )));
    }
    let Some(raw) = web::cookie_value(headers, cookie_name(app))
        .filter(|v| v.starts_with(TokenKind::AdminSession.prefix()) && v.len() < 128)
    else {
        return Err(Away::SignIn);
    };
    let hash = token_hash(raw);
    let now = app.now();
    let Some(session) = app
        .store
        .touch_admin_session(&hash, now, app.config.admin.idle_timeout_secs)
        .await?
    else {
        return Err(Away::SignIn);
    };
    let user_id = session.telegram_id;
    match login::admit(app, user_id, None, &page_client(app)?).await {
        Ok(_) => {}
        Err(Refused::NotAdmitted) => {
            app.store.delete_admin_session(&hash).await?;
            return Err(Away::Refused(not_an_admin()));
        }
        Err(e) => return Err(Away::Refused(e.into())),
    }
    let name = match app.store.get_user(user_id).await? {
        Some(u) => match u.username {
            Some(username) => format!("{} (@{username})", u.first_name),
            None => u.first_name,
        },
        None => user_id.to_string(),
    };
    Ok(Desk {
        user_id,
        name,
        csrf: csrf::token(raw, Form::Admin),
        actor: actor_of(user_id),
        session_hash: hash,
    })
}

impl Desk {
    /// Whether a form's token is this desk session's.
    pub fn verify(&self, headers: &HeaderMap, app: &App, presented: &str) -> bool {
        web::cookie_value(headers, cookie_name(app))
            .is_some_and(|raw| csrf::verify(raw, Form::Admin, presented))
    }

    /// Ends this desk session; the response clears the cookie.
    pub async fn sign_out(self, app: &App) -> Result<Response, Problem> {
        app.store.delete_admin_session(&self.session_hash).await?;
        admin::record(
            app.store.as_ref(),
            &self.actor,
            "admin.signed_out",
            "ok",
            None,
            serde_json::Value::Null,
            app.now_millis(),
        )
        .await?;
        let mut response = web_pages::render(
            StatusCode::OK,
            &web_pages::MessagePage {
                base: app.base_path(),
                title: "You are signed out",
                message: "You are signed out of the admin desk.",
            },
            &web_pages::strict_csp(&[]),
        );
        if let Some(c) = cookie(app, "", 0) {
            response.headers_mut().append(header::SET_COOKIE, c);
        }
        Ok(response)
    }
}

/// No desk session: the ordinary login pages, for a pending sign-in whose end is the desk.
pub async fn start_sign_in(app: &App) -> Result<Response, Problem> {
    crate::web::authorize::start_page_login(
        app,
        AuthorizationRequest {
            client_id: ADMIN_DESK.to_owned(),
            admin: true,
            prompt_login: true,
            ..Default::default()
        },
    )
    .await
}
