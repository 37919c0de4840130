//! `/admin/api/v1/audit`: the audit log, newest first, with filters and cursor paging.

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Problem, QueryParams, ReadAccess, page_limit};
use crate::admin;
use crate::state::AppState;
use crate::store::AuditQuery;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct AuditParams {
    /// Only this Telegram user's entries.
    pub user: Option<i64>,
    /// Only this app's entries.
    pub client: Option<String>,
    /// Only this event, or the events under it (`admin` finds `admin.client.created`).
    pub event: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Entries per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
}

/// One entry of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditItem {
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    pub event: String,
    /// `ok`, `refused` or `failed`.
    pub result: String,
    pub user_id: Option<i64>,
    pub client_id: Option<String>,
    pub actor: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPage {
    pub items: Vec<AuditItem>,
    /// Pass as `cursor` for the next (older) page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[utoipa::path(get, path = "/admin/api/v1/audit", tag = "audit", params(AuditParams),
    responses((status = 200, description = "Entries, newest first", body = AuditPage)))]
pub async fn query(
    State(app): State<AppState>,
    _: ReadAccess,
    QueryParams(p): QueryParams<AuditParams>,
) -> Result<axum::Json<AuditPage>, Problem> {
    let before = match p.cursor.as_deref() {
        None => None,
        Some(c) => Some(
            c.parse::<i64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| Problem::bad_request("cursor: not one this API gave"))?,
        ),
    };
    let query = AuditQuery {
        user_id: p.user,
        client_id: p.client,
        event: p.event,
        before,
        after: None,
        limit: page_limit(p.limit)?,
    };
    let (entries, next) = admin::query_audit(app.store.as_ref(), &query).await?;
    Ok(axum::Json(AuditPage {
        items: entries
            .into_iter()
            .map(|e| AuditItem {
                id: e.id,
                at: e.at,
                event: e.event,
                result: e.result,
                user_id: e.user_id,
                client_id: e.client_id,
                actor: e.actor,
                ip: e.ip,
                user_agent: e.user_agent,
                request_id: e.request_id,
                detail: if e.detail.is_null() {
                    serde_json::json!({})
                } else {
                    e.detail
                },
            })
            .collect(),
        next_cursor: next.map(|n| n.to_string()),
    }))
}
