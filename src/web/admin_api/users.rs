//! `/admin/api/v1/users`: find users, see what they gave and where they are signed in, block
//! and unblock them, end their sessions and grants.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Problem, QueryParams, ReadAccess, WriteAccess, page_limit};
use crate::admin;
use crate::state::AppState;
use crate::store::{UserQuery, UserSummary};

/// A user as an admin sees them.
#[derive(Debug, Serialize, ToSchema)]
pub struct UserView {
    pub telegram_id: i64,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub updated_at: i64,
    /// When the user was blocked; `null`: not blocked.
    pub blocked_at: Option<i64>,
}

impl From<UserSummary> for UserView {
    fn from(u: UserSummary) -> UserView {
        UserView {
            telegram_id: u.telegram_id,
            first_name: u.first_name,
            last_name: u.last_name,
            username: u.username,
            created_at: u.created_at,
            updated_at: u.updated_at,
            blocked_at: u.blocked_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserPage {
    pub items: Vec<UserView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct UserParams {
    /// A Telegram id, or a username (with or without `@`, any case).
    pub q: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Users per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// An app the user gave something to (a consent, a live grant or token).
#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    pub client_id: String,
    pub scope: String,
    /// Unix seconds.
    pub last_used_at: i64,
}

/// A signed-in browser.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    /// The hex SHA-256 of the session cookie (not the cookie itself).
    pub id: String,
    pub auth_time: i64,
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub last_used_at: i64,
    pub device: Option<String>,
    pub place: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDetail {
    #[serde(flatten)]
    pub user: UserView,
    pub grants: Vec<GrantView>,
    pub sessions: Vec<SessionView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Revoked {
    /// How many grants, tokens, consents and sessions were live.
    pub ended: u64,
}

#[utoipa::path(get, path = "/admin/api/v1/users", tag = "users", params(UserParams),
    responses((status = 200, description = "Users by Telegram id", body = UserPage)))]
pub async fn list(
    State(app): State<AppState>,
    _: ReadAccess,
    QueryParams(p): QueryParams<UserParams>,
) -> Result<axum::Json<UserPage>, Problem> {
    let after = match p.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .map_err(|_| Problem::bad_request("cursor: not one this API gave"))?,
        ),
    };
    let q = p.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let (telegram_id, username) = match q {
        None => (None, None),
        Some(q) => match q.parse::<i64>() {
            Ok(id) => (Some(id), None),
            Err(_) => (None, Some(q.trim_start_matches('@').to_owned())),
        },
    };
    let query = UserQuery {
        telegram_id,
        username,
        after,
        limit: page_limit(p.limit)?,
    };
    let (users, next) = admin::list_users(app.store.as_ref(), &query).await?;
    Ok(axum::Json(UserPage {
        items: users.into_iter().map(UserView::from).collect(),
        next_cursor: next.map(|n| n.to_string()),
    }))
}

#[utoipa::path(get, path = "/admin/api/v1/users/{user_id}", tag = "users",
    params(("user_id" = i64, Path, description = "The Telegram id")),
    responses((status = 200, description = "The user, their grants and sessions", body = UserDetail)))]
pub async fn show(
    State(app): State<AppState>,
    _: ReadAccess,
    Path(user_id): Path<String>,
) -> Result<axum::Json<UserDetail>, Problem> {
    let user_id = user_id_of(&user_id)?;
    let (user, apps, sessions) = admin::user_detail(app.store.as_ref(), user_id, app.now()).await?;
    Ok(axum::Json(UserDetail {
        user: user.into(),
        grants: apps
            .into_iter()
            .map(|a| GrantView {
                client_id: a.client_id,
                scope: a.scope,
                last_used_at: a.last_used_at,
            })
            .collect(),
        sessions: sessions
            .iter()
            .map(|s| SessionView {
                id: admin::session_id(s),
                auth_time: s.auth_time,
                amr: s.amr.clone(),
                created_at: s.created_at,
                expires_at: s.expires_at,
                last_used_at: s.last_used_at,
                device: s.device.clone(),
                place: s.place.clone(),
            })
            .collect(),
    }))
}

/// The path's user id; a malformed one is a problem, not axum's plain text.
fn user_id_of(text: &str) -> Result<i64, Problem> {
    text.parse().map_err(|_| {
        Problem::new(
            StatusCode::NOT_FOUND,
            "a user id is a Telegram id (a number)",
        )
    })
}

#[utoipa::path(post, path = "/admin/api/v1/users/{user_id}/block", tag = "users",
    params(("user_id" = i64, Path, description = "The Telegram id")),
    responses((status = 200, description = "Blocked; every grant and session ended", body = UserView)))]
pub async fn block(
    State(app): State<AppState>,
    WriteAccess(actor): WriteAccess,
    Path(user_id): Path<String>,
) -> Result<axum::Json<UserView>, Problem> {
    let user_id = user_id_of(&user_id)?;
    let user = admin::block_user(app.store.as_ref(), &actor, user_id, app.now_millis()).await?;
    Ok(axum::Json(user.into()))
}

#[utoipa::path(post, path = "/admin/api/v1/users/{user_id}/unblock", tag = "users",
    params(("user_id" = i64, Path, description = "The Telegram id")),
    responses((status = 200, description = "May log in again", body = UserView)))]
pub async fn unblock(
    State(app): State<AppState>,
    WriteAccess(actor): WriteAccess,
    Path(user_id): Path<String>,
) -> Result<axum::Json<UserView>, Problem> {
    let user_id = user_id_of(&user_id)?;
    let user = admin::unblock_user(app.store.as_ref(), &actor, user_id, app.now_millis()).await?;
    Ok(axum::Json(user.into()))
}

#[utoipa::path(post, path = "/admin/api/v1/users/{user_id}/revoke", tag = "users",
    params(("user_id" = i64, Path, description = "The Telegram id")),
    responses((status = 200, description = "Every grant, token, consent and session ended", body = Revoked)))]
pub async fn revoke_everything(
    State(app): State<AppState>,
    WriteAccess(actor): WriteAccess,
    Path(user_id): Path<String>,
) -> Result<axum::Json<Revoked>, Problem> {
    let user_id = user_id_of(&user_id)?;
    let ended =
        admin::revoke_user_everything(app.store.as_ref(), &actor, user_id, app.now_millis())
            .await?;
    Ok(axum::Json(Revoked { ended }))
}

#[utoipa::path(delete, path = "/admin/api/v1/users/{user_id}/grants/{client_id}", tag = "users",
    params(("user_id" = i64, Path, description = "The Telegram id"),
        ("client_id" = String, Path, description = "The app")),
    responses((status = 204, description = "The app's consent, grants and tokens ended")))]
pub async fn revoke_grant(
    State(app): State<AppState>,
    WriteAccess(actor): WriteAccess,
    Path((user_id, client_id)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let user_id = user_id_of(&user_id)?;
    admin::revoke_user_grant(
        app.store.as_ref(),
        &actor,
        user_id,
        &client_id,
        app.now_millis(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(delete, path = "/admin/api/v1/users/{user_id}/sessions/{session_id}", tag = "users",
    params(("user_id" = i64, Path, description = "The Telegram id"),
        ("session_id" = String, Path, description = "The session's `id`")),
    responses((status = 204, description = "Signed out, with the grants made in the session")))]
pub async fn revoke_session(
    State(app): State<AppState>,
    WriteAccess(actor): WriteAccess,
    Path((user_id, session)): Path<(String, String)>,
) -> Result<Response, Problem> {
    let user_id = user_id_of(&user_id)?;
    admin::revoke_user_session(
        app.store.as_ref(),
        &actor,
        user_id,
        &session,
        app.now_millis(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
