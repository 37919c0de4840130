//! Client administration: what `telegram-oidc client ...` does, as plain functions. The rules
//! a client must meet live in `oidc::clients`, shared with dynamic registration.

pub use crate::oidc::clients::*;

use crate::store::{AuditEntry, Store, StoreResult};

/// Records an admin action in the audit log: what (`event`, e.g. `admin.client.created`), on
/// which client, by whom (`actor`: `cli`, an admin key id), with `detail` (before and after).
/// Written at once, not batched: admin actions are rare and must not be lost.
pub async fn record_action(
    store: &dyn Store,
    actor: &str,
    event: &str,
    client_id: Option<&str>,
    detail: serde_json::Value,
    now_millis: i64,
) -> StoreResult<()> {
    store
        .record_audit(&[AuditEntry {
            at: now_millis,
            event: event.to_owned(),
            result: "ok".to_owned(),
            client_id: client_id.map(str::to_owned),
            actor: Some(actor.to_owned()),
            detail,
            ..AuditEntry::default()
        }])
        .await
}
