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

/// The statements that read entries, shared by both stores: the same placeholders, `NULL`
/// meaning "any". Newest first, or (with `$6`, following a tail) oldest first.
macro_rules! audit_select {
    ($order:literal) => {
        concat!(
            "SELECT id, at, event, result, user_id, client_id, actor, ip, user_agent, request_id, detail \
             FROM audit_log \
             WHERE ($1 IS NULL OR user_id = $1) \
               AND ($2 IS NULL OR client_id = $2) \
               AND ($3 IS NULL OR event = $3 OR event LIKE $4 ESCAPE '\\') \
               AND ($5 IS NULL OR id < $5) \
               AND ($6 IS NULL OR id > $6) \
             ORDER BY id ",
            $order,
            " LIMIT $7"
        )
    };
}
pub(crate) const QUERY_AUDIT_NEWEST: &str = audit_select!("DESC");
pub(crate) const QUERY_AUDIT_OLDEST: &str = audit_select!("ASC");
pub(crate) const INSERT_AUDIT: &str = "INSERT INTO audit_log (at, event, result, user_id, client_id, actor, ip, user_agent, request_id, detail) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
pub(crate) const DELETE_AUDIT_BEFORE: &str = "DELETE FROM audit_log WHERE at < $1";

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
