//! [`AuditStore`] on SQLite: entries are written by the writer thread with whatever else
//! commits in the same group.

use async_trait::async_trait;
use rusqlite::named_params;

use super::SqliteStore;
use crate::store::audit::*;
use crate::store::{StoreResult, sql};

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

/// The statement's values in order: `$n` is SQLite's n-th parameter as they appear.
fn bound<'a>(
    params: &'a [AuditParam<'_>],
) -> rusqlite::ParamsFromIter<impl Iterator<Item = &'a dyn rusqlite::ToSql>> {
    rusqlite::params_from_iter(params.iter().map(|p| match p {
        AuditParam::Int(v) => v as &dyn rusqlite::ToSql,
        AuditParam::Text(v) => v as &dyn rusqlite::ToSql,
    }))
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
        let (statement, params) = audit_select(q);
        self.db.read(|c| {
            let mut found = c.prepare_cached(&statement)?;
            let rows = found.query_map(bound(&params), entry)?;
            Ok(rows.collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn delete_audit_before(&self, at: i64) -> StoreResult<u64> {
        self.sweep(sql::SWEEP_AUDIT_LOG.sqlite, at).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// SQLite's plan for the statement a query is read with.
    fn plan(c: &rusqlite::Connection, q: &AuditQuery) -> String {
        let (statement, params) = audit_select(q);
        let mut explain = c
            .prepare(&format!("EXPLAIN QUERY PLAN {statement}"))
            .unwrap();
        let steps = explain
            .query_map(bound(&params), |r| r.get::<_, String>(3))
            .unwrap();
        steps.collect::<Result<Vec<_>, _>>().unwrap().join("; ")
    }

    #[test]
    fn a_filtered_read_goes_through_its_index_and_sorts_nothing() {
        let c = rusqlite::Connection::open_in_memory().unwrap();
        c.execute_batch(include_str!(
            "../../../migrations/sqlite/0010_audit_log.sql"
        ))
        .unwrap();
        let query = |user_id, client_id: Option<&str>, before| AuditQuery {
            user_id,
            client_id: client_id.map(str::to_owned),
            before,
            limit: 50,
            ..AuditQuery::default()
        };
        for (q, index) in [
            (query(Some(7), None, None), "audit_log_user"),
            (query(Some(7), None, Some(1_000)), "audit_log_user"),
            (query(None, Some("grafana"), None), "audit_log_client"),
            (
                query(None, Some("grafana"), Some(1_000)),
                "audit_log_client",
            ),
        ] {
            let plan = plan(&c, &q);
            assert!(plan.contains(index), "{q:?}: {plan}");
            assert!(!plan.contains("TEMP B-TREE"), "{q:?} sorts: {plan}");
        }
        // Unfiltered, and by event (not indexed): the newest first straight off the key.
        for q in [
            query(None, None, None),
            AuditQuery {
                event: Some("token".into()),
                limit: 50,
                ..AuditQuery::default()
            },
        ] {
            let plan = plan(&c, &q);
            assert!(!plan.contains("TEMP B-TREE"), "{q:?} sorts: {plan}");
        }
    }
}
