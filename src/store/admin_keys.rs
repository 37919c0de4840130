//! Keys of the admin API: who may call it, with which scope, from where. Only the SHA-256 of
//! a key is stored; the key itself is shown once when it is made.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use super::{StoreError, StoreResult};

/// What a key may do: `read` lists and shows, `write` also changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AdminScope {
    Read,
    Write,
}

impl AdminScope {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminScope::Read => "read",
            AdminScope::Write => "write",
        }
    }

    pub fn parse(s: &str) -> Option<AdminScope> {
        match s {
            "read" => Some(AdminScope::Read),
            "write" => Some(AdminScope::Write),
            _ => None,
        }
    }
}

/// One admin key as stored (never the key itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminKeyRecord {
    pub id: String,
    pub name: String,
    pub scope: AdminScope,
    pub key_hash: Vec<u8>,
    /// The addresses the key may be used from; empty: any.
    pub allow_ips: Vec<ipnet::IpNet>,
    /// Unix seconds, as every other time here.
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
    pub last_used_at: Option<i64>,
}

#[async_trait]
pub trait AdminKeyStore: Send + Sync {
    async fn create_admin_key(&self, key: &AdminKeyRecord) -> StoreResult<()>;
    /// The key whose SHA-256 is `key_hash`, revoked or expired ones included.
    async fn admin_key_by_hash(&self, key_hash: &[u8]) -> StoreResult<Option<AdminKeyRecord>>;
    /// Every key, oldest first.
    async fn list_admin_keys(&self) -> StoreResult<Vec<AdminKeyRecord>>;
    /// Revokes a key at `now`; false when no live key has this id.
    async fn revoke_admin_key(&self, id: &str, now: i64) -> StoreResult<bool>;
    /// Notes that a key was used at `now`.
    async fn touch_admin_key(&self, id: &str, now: i64) -> StoreResult<()>;

    async fn create_admin_session(&self, session: &AdminSessionRecord) -> StoreResult<()>;
    /// The live admin session whose SHA-256 is `id_hash`, its `last_seen_at` moved to `now`: live
    /// means not past `expires_at` and seen within the last `idle_secs`. `None` otherwise.
    async fn touch_admin_session(
        &self,
        id_hash: &[u8],
        now: i64,
        idle_secs: i64,
    ) -> StoreResult<Option<AdminSessionRecord>>;
    async fn delete_admin_session(&self, id_hash: &[u8]) -> StoreResult<()>;
}

/// A signed-in admin of the admin desk (`/admin`), as stored (never the cookie's value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSessionRecord {
    pub id_hash: Vec<u8>,
    pub telegram_id: i64,
    /// Unix seconds.
    pub created_at: i64,
    pub last_seen_at: i64,
    pub expires_at: i64,
}

pub(crate) const INSERT_ADMIN_SESSION: &str = "INSERT INTO admin_sessions \
     (id_hash, telegram_id, created_at, last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
/// `$1` the hash, `$2` now, `$3` the idle timeout.
pub(crate) const TOUCH_ADMIN_SESSION: &str = "UPDATE admin_sessions SET last_seen_at = $2 \
     WHERE id_hash = $1 AND expires_at > $2 AND last_seen_at >= $2 - $3";
pub(crate) const ADMIN_SESSION_BY_HASH: &str = "SELECT telegram_id, created_at, last_seen_at, expires_at FROM admin_sessions WHERE id_hash = $1";
pub(crate) const DELETE_ADMIN_SESSION: &str = "DELETE FROM admin_sessions WHERE id_hash = $1";

const COLUMNS: &str =
    "id, name, scope, key_hash, allow_ips, created_at, expires_at, revoked_at, last_used_at";

pub(crate) const INSERT_ADMIN_KEY: &str = "INSERT INTO admin_keys (id, name, scope, key_hash, allow_ips, created_at, expires_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7)";
pub(crate) fn admin_key_by_hash_sql() -> String {
    format!("SELECT {COLUMNS} FROM admin_keys WHERE key_hash = $1")
}
pub(crate) fn list_admin_keys_sql() -> String {
    format!("SELECT {COLUMNS} FROM admin_keys ORDER BY created_at, id")
}
pub(crate) const REVOKE_ADMIN_KEY: &str =
    "UPDATE admin_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
pub(crate) const TOUCH_ADMIN_KEY: &str = "UPDATE admin_keys SET last_used_at = $2 WHERE id = $1";

/// The stored form of an allow-list: a JSON array of CIDRs.
pub(crate) fn allow_ips_json(nets: &[ipnet::IpNet]) -> String {
    serde_json::Value::from(nets.iter().map(|n| n.to_string()).collect::<Vec<_>>()).to_string()
}

/// The columns of one row, read by either store, made into a record.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    id: String,
    name: String,
    scope: String,
    key_hash: Vec<u8>,
    allow_ips: String,
    created_at: i64,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
) -> StoreResult<AdminKeyRecord> {
    let scope = AdminScope::parse(&scope)
        .ok_or_else(|| StoreError::Internal(format!("admin key {id}: unknown scope `{scope}`")))?;
    let allow_ips: Vec<String> = serde_json::from_str(&allow_ips)
        .map_err(|e| StoreError::Internal(format!("admin key {id}: allow_ips: {e}")))?;
    let allow_ips = allow_ips
        .iter()
        .map(|n| n.parse())
        .collect::<Result<Vec<ipnet::IpNet>, _>>()
        .map_err(|e| StoreError::Internal(format!("admin key {id}: allow_ips: {e}")))?;
    Ok(AdminKeyRecord {
        id,
        name,
        scope,
        key_hash,
        allow_ips,
        created_at,
        expires_at,
        revoked_at,
        last_used_at,
    })
}
