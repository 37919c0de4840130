//! The desk's users: search, one user's page, and what an admin does to them (block, unblock,
//! end everything, one app's grant or one browser session).

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;

use super::pages::{
    AtDesk, DeskForm, DeskView, PAGE_ROWS, admin_problem, bad_form, query_field, show, view,
};
use crate::admin;
use crate::flow::account::when;
use crate::state::AppState;
use crate::web::authorize::see_other;
use crate::web::browser_error::{BrowserError, Problem};
// The templates call these as `self::t(...)`.
use crate::store::{UserQuery, UserSummary};
use crate::web::i18n::{lang, t};
use axum::http::StatusCode;

struct UserRow {
    id: i64,
    name: String,
    username: String,
    blocked: bool,
    first_seen: String,
    last_login: String,
}

fn user_row(u: &UserSummary) -> UserRow {
    UserRow {
        id: u.telegram_id,
        name: match &u.last_name {
            Some(last) => format!("{} {last}", u.first_name),
            None => u.first_name.clone(),
        },
        username: u
            .username
            .as_deref()
            .map(|n| format!("@{n}"))
            .unwrap_or_default(),
        blocked: u.blocked_at.is_some(),
        first_seen: when(u.created_at),
        last_login: when(u.updated_at),
    }
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    desk: DeskView,
    q: String,
    users: Vec<UserRow>,
    next: Option<String>,
}

/// `GET /admin/users?q=`: by Telegram id or `@username`, or every user by id.
pub async fn users(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    AtDesk(desk): AtDesk,
) -> Result<Response, BrowserError> {
    let q = query_field(query.as_deref(), "q").trim().to_owned();
    let mut search = UserQuery {
        limit: PAGE_ROWS,
        after: query_field(query.as_deref(), "after").parse().ok(),
        ..UserQuery::default()
    };
    if !q.is_empty() {
        match q.parse::<i64>() {
            Ok(id) => search.telegram_id = Some(id),
            Err(_) => search.username = Some(q.trim_start_matches('@').to_owned()),
        }
    }
    let (found, next) = admin::list_users(app.store.as_ref(), &search)
        .await
        .map_err(|e| admin_problem(e).at(&app))?;
    let next = next.map(|after| {
        let mut params = vec![("after", after.to_string())];
        if !q.is_empty() {
            params.push(("q", q.clone()));
        }
        serde_urlencoded::to_string(params).unwrap_or_default()
    });
    Ok(show(&UsersPage {
        desk: view(&app, &desk, "users", query.as_deref()),
        users: found.iter().map(user_row).collect(),
        q,
        next,
    }))
}

struct GrantRow {
    client_id: String,
    app_name: String,
    scopes: String,
    last_used: String,
}

struct SessionRow {
    handle: String,
    device: String,
    place: String,
    signed_in: String,
    last_used: String,
    methods: String,
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage {
    desk: DeskView,
    user: UserRow,
    blocked_since: String,
    is_self: bool,
    grants: Vec<GrantRow>,
    sessions: Vec<SessionRow>,
}

/// `GET /admin/users/{user_id}`.
pub async fn show_user(
    State(app): State<AppState>,
    Path(user_id): Path<String>,
    RawQuery(query): RawQuery,
    AtDesk(desk): AtDesk,
) -> Result<Response, BrowserError> {
    let user_id = parse_user_id(&user_id).map_err(|p| p.at(&app))?;
    let (user, apps, sessions) = admin::user_detail(app.store.as_ref(), user_id, app.now())
        .await
        .map_err(|e| admin_problem(e).at(&app))?;
    let mut grants = Vec::new();
    for a in apps {
        let app_name = match app.store.get_client(&a.client_id).await {
            Ok(Some(c)) => c.settings.name,
            _ => a.client_id.clone(),
        };
        grants.push(GrantRow {
            client_id: a.client_id,
            app_name,
            scopes: a.scope,
            last_used: when(a.last_used_at),
        });
    }
    Ok(show(&UserPage {
        desk: view(&app, &desk, "users", query.as_deref()),
        blocked_since: user.blocked_at.map(when).unwrap_or_default(),
        is_self: user.telegram_id == desk.user_id,
        user: user_row(&user),
        grants,
        sessions: sessions
            .iter()
            .map(|s| SessionRow {
                handle: admin::session_id(s),
                device: s
                    .device
                    .clone()
                    .unwrap_or_else(|| t("Unknown browser").to_owned()),
                place: s.place.clone().unwrap_or_default(),
                signed_in: when(s.created_at),
                last_used: when(s.last_used_at),
                methods: s.amr.clone(),
            })
            .collect(),
    }))
}

fn parse_user_id(text: &str) -> Result<i64, Problem> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            Problem::page(
                StatusCode::NOT_FOUND,
                "Not found",
                "A user is named by their Telegram id, a positive number.",
            )
        })
}

/// `POST /admin/users/{user_id}`: block, unblock, end everything, end one app's grant or one
/// browser session.
pub async fn change_user(
    State(app): State<AppState>,
    Path(user_id): Path<String>,
    DeskForm(desk, f): DeskForm,
) -> Result<Response, BrowserError> {
    let user_id = parse_user_id(&user_id).map_err(|p| p.at(&app))?;
    let store = app.store.as_ref();
    let now = app.now_millis();
    let actor = &desk.actor;
    let done = match f.get("action") {
        "block" if user_id == desk.user_id => {
            return Err(bad_form("You cannot block yourself.").at(&app));
        }
        "block" => admin::block_user(store, actor, user_id, now)
            .await
            .map(|_| "blocked"),
        "unblock" => admin::unblock_user(store, actor, user_id, now)
            .await
            .map(|_| "unblocked"),
        "revoke_all" => admin::revoke_user_everything(store, actor, user_id, now)
            .await
            .map(|_| "revoked"),
        "revoke_grant" => admin::revoke_user_grant(store, actor, user_id, f.get("target"), now)
            .await
            .map(|()| "revoked"),
        "revoke_session" => admin::revoke_user_session(store, actor, user_id, f.get("target"), now)
            .await
            .map(|()| "revoked"),
        _ => return Err(bad_form("Choose one of the page's buttons.").at(&app)),
    }
    .map_err(|e| admin_problem(e).at(&app))?;
    Ok(see_other(
        &app.url(&format!("/admin/users/{user_id}?done={done}")),
    ))
}
