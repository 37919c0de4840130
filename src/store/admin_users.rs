//! What the admin API reads and changes about users: listing and searching them, blocking
//! them, and ending everything a user holds at once.

use async_trait::async_trait;

use super::StoreResult;

/// A user as an admin sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub telegram_id: i64,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// When an admin blocked the user; a blocked user passes no login gate.
    pub blocked_at: Option<i64>,
}

/// Which users to list: by id, by username (case-insensitive, without `@`), after a cursor.
#[derive(Debug, Clone, Default)]
pub struct UserQuery {
    pub telegram_id: Option<i64>,
    pub username: Option<String>,
    /// Only users with an id above this one (the cursor of the previous page).
    pub after: Option<i64>,
    pub limit: u32,
}

#[async_trait]
pub trait AdminUserStore: Send + Sync {
    /// Users by id, ascending.
    async fn list_users(&self, query: &UserQuery) -> StoreResult<Vec<UserSummary>>;
    async fn user_summary(&self, telegram_id: i64) -> StoreResult<Option<UserSummary>>;
    /// Blocks a user and, in the same transaction, ends everything they hold (as
    /// [`revoke_user_everything`](Self::revoke_user_everything)); false for an unknown user.
    async fn block_user(&self, telegram_id: i64, now: i64) -> StoreResult<bool>;
    /// False for an unknown user.
    async fn unblock_user(&self, telegram_id: i64) -> StoreResult<bool>;
    /// Ends every grant (codes and refresh tokens with it), access token, consent and browser
    /// session of a user, in one transaction; returns how many things were live.
    async fn revoke_user_everything(&self, telegram_id: i64, now: i64) -> StoreResult<u64>;
}

const COLUMNS: &str =
    "telegram_id, first_name, last_name, username, created_at, updated_at, blocked_at";

pub(crate) fn list_users_sql() -> String {
    format!(
        "SELECT {COLUMNS} FROM users \
         WHERE ($1 IS NULL OR telegram_id = $1) \
           AND ($2 IS NULL OR lower(username) = lower($2)) \
           AND telegram_id > $3 \
         ORDER BY telegram_id LIMIT $4"
    )
}
pub(crate) fn user_summary_sql() -> String {
    format!("SELECT {COLUMNS} FROM users WHERE telegram_id = $1")
}
pub(crate) const BLOCK_USER: &str =
    "UPDATE users SET blocked_at = COALESCE(blocked_at, $2) WHERE telegram_id = $1";
pub(crate) const UNBLOCK_USER: &str = "UPDATE users SET blocked_at = NULL WHERE telegram_id = $1";
/// Statements taking the user id (`$1`) and now (`$2`).
pub(crate) const REVOKE_ALL_TIMED: [&str; 2] = [
    "UPDATE grants SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
    "UPDATE access_tokens SET revoked_at = $2 WHERE user_id = $1 AND revoked_at IS NULL",
];
/// Statements taking the user id (`$1`) only.
pub(crate) const REVOKE_ALL_UNTIMED: [&str; 3] = [
    "DELETE FROM consents WHERE user_id = $1",
    "DELETE FROM sessions WHERE user_id = $1",
    "DELETE FROM admin_sessions WHERE telegram_id = $1",
];
