//! [`AuditStore`] on SQLite: entries are written by the writer thread with whatever else
//! commits in the same group.

use async_trait::async_trait;
use rusqlite::named_params;

use super::SqliteStore;
use crate::store::StoreResult;
use crate::store::audit::*;

fn entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<AuditEntry> {
    let detail: Option<String> = r.get("detail")?;
    Ok(AuditEntry {
        id: r.get("id")?,
        at: r.get("at")?,
        event: r.get("event")?,
        result: r.get("result")?,
        user_id: r.get("user_id")?,
        client_id: r.get("client_id")?,
        actor: r.get("actor")?,
        ip: r.get("ip")?,
        user_agent: r.get("user_agent")?,
        request_id: r.get("request_id")?,
        detail: detail
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or_default(),
    })
}

#[async_trait]
impl AuditStore for SqliteStore {
    async fn record_audit(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        let entries = entries.to_vec();
        self.db
            .write(move |c| {
                let mut insert = c.prepare_cached(INSERT_AUDIT)?;
                for e in &entries {
                    let detail = (!e.detail.is_null()).then(|| e.detail.to_string());
                    insert.execute(named_params! {
                        "$1": e.at, "$2": e.event, "$3": e.result, "$4": e.user_id,
                        "$5": e.client_id, "$6": e.actor, "$7": e.ip, "$8": e.user_agent,
                        "$9": e.request_id, "$10": detail,
                    })?;
                }
                Ok(())
            })
            .await
    }

    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let statement = if q.after.is_some() {
            QUERY_AUDIT_OLDEST
        } else {
            QUERY_AUDIT_NEWEST
        };
        let prefix = q.event.as_deref().map(event_prefix);
        self.db.read(|c| {
            let mut found = c.prepare_cached(statement)?;
            let rows = found.query_map(
                named_params! {
                    "$1": q.user_id, "$2": q.client_id, "$3": q.event, "$4": prefix,
                    "$5": q.before, "$6": q.after, "$7": q.limit,
                },
                entry,
            )?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn delete_audit_before(&self, at: i64) -> StoreResult<u64> {
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(DELETE_AUDIT_BEFORE)?
                    .execute(named_params! {"$1": at})? as u64)
            })
            .await
    }
}
