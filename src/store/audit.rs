//! The audit log: one table of what happened (logins and refusals, consents, token issuance
//! and revocation, admin actions, webhook authentication failures), who did it and from
//! where. Entries hold ids and hash prefixes, never a secret.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::StoreResult;

/// One entry, as written and as read back (`id` is set by the store).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    #[serde(default)]
    pub id: i64,
    /// Unix milliseconds.
    pub at: i64,
    /// What happened, dotted: `login`, `token.issued`, `consent.granted`, `admin.client.created`.
    pub event: String,
    /// `ok`, `refused` or `failed`.
    pub result: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Who acted, for admin actions: `cli`, an admin key id, an admin's Telegram id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// A JSON object with what else matters (the login method, the refusing rule, ...).
    #[serde(skip_serializing_if = "serde_json::Value::is_null", default)]
    pub detail: serde_json::Value,
}

/// Which entries to read: newest first, older than `before` (an id, for paging).
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub user_id: Option<i64>,
    pub client_id: Option<String>,
    /// Entries whose event is this one or starts with it and a dot (`token` finds
    /// `token.issued` and `token.revoked`).
    pub event: Option<String>,
    /// Only entries with an id below this one (the cursor of the previous page).
    pub before: Option<i64>,
    /// Only entries with an id above this one (following a tail).
    pub after: Option<i64>,
    pub limit: u32,
}

#[async_trait]
pub trait AuditStore: Send + Sync {
    /// Writes entries, all in one transaction.
    async fn record_audit(&self, entries: &[AuditEntry]) -> StoreResult<()>;
    /// Reads entries, newest first (oldest first when `after` is given, for a tail).
    async fn query_audit(&self, query: &AuditQuery) -> StoreResult<Vec<AuditEntry>>;
    /// Deletes entries written before `at` (Unix milliseconds); returns how many.
    async fn delete_audit_before(&self, at: i64) -> StoreResult<u64>;
}

/// A value bound to the statement [`audit_select`] writes.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum AuditParam<'a> {
    Int(i64),
    Text(std::borrow::Cow<'a, str>),
}

/// The statement that reads entries, shared by both stores, and its values in the order of
/// their placeholders (`$1`, `$2`, ...). Only the filters given appear in it: a filter written
/// as `($1 IS NULL OR user_id = $1)` keeps SQLite (and PostgreSQL's generic plans) from using
/// the index on `(user_id, id)`, so one user's entries would be found by reading them all.
/// Newest first, or (following a tail, with `after`) oldest first.
pub(crate) fn audit_select(q: &AuditQuery) -> (String, Vec<AuditParam<'_>>) {
    let mut params = Vec::new();
    let mut clauses = Vec::new();
    if let Some(user) = q.user_id {
        params.push(AuditParam::Int(user));
        clauses.push(format!("user_id = ${}", params.len()));
    }
    if let Some(client) = &q.client_id {
        params.push(AuditParam::Text(client.into()));
        clauses.push(format!("client_id = ${}", params.len()));
    }
    if let Some(event) = &q.event {
        params.push(AuditParam::Text(event.into()));
        let exact = params.len();
        params.push(AuditParam::Text(event_prefix(event).into()));
        clauses.push(format!(
            "(event = ${exact} OR event LIKE ${} ESCAPE '\\')",
            params.len()
        ));
    }
    if let Some(before) = q.before {
        params.push(AuditParam::Int(before));
        clauses.push(format!("id < ${}", params.len()));
    }
    if let Some(after) = q.after {
        params.push(AuditParam::Int(after));
        clauses.push(format!("id > ${}", params.len()));
    }
    params.push(AuditParam::Int(i64::from(q.limit)));
    let mut sql = String::from(
        "SELECT id, at, event, result, user_id, client_id, actor, ip, user_agent, request_id, detail \
         FROM audit_log",
    );
    if !clauses.is_empty() {
        sql.push_str(" WHERE ");
        sql.push_str(&clauses.join(" AND "));
    }
    let order = if q.after.is_some() { "ASC" } else { "DESC" };
    sql.push_str(&format!(" ORDER BY id {order} LIMIT ${}", params.len()));
    (sql, params)
}

pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, event, result, user_id, client_id, actor, ip, user_agent, request_id, detail) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// The `LIKE` pattern for events under `event` (its `%` and `_` taken literally).
pub(crate) fn event_prefix(event: &str) -> String {
    let escaped: String = event
        .chars()
        .flat_map(|c| match c {
            '%' | '_' | '\\' => vec!['\\', c],
            c => vec![c],
        })
        .collect();
    format!("{escaped}.%")
}
