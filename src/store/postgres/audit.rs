//! [`AuditStore`] on PostgreSQL. A batch of entries is one multi-row statement.

use async_trait::async_trait;
use sqlx::Row;

use super::{PostgresStore, column, opt_text, text};
use crate::store::audit::*;
use crate::store::{StoreResult, sql};

/// Entries in the order given, so their ids ascend in that order (`WITH ORDINALITY`).
const INSERT_AUDIT_ENTRIES: &str = "INSERT INTO audit_log (at, event, result, user_id, client_id, actor, ip, user_agent, request_id, detail) \
     SELECT at, event, result, user_id, client_id, actor, ip, user_agent, request_id, detail \
     FROM unnest($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[]) \
     WITH ORDINALITY AS e(at, event, result, user_id, client_id, actor, ip, user_agent, request_id, detail, n) \
     ORDER BY n";

fn entry(r: &sqlx::postgres::PgRow) -> Result<AuditEntry, sqlx::Error> {
    let detail: Option<String> = r.try_get("detail")?;
    Ok(AuditEntry {
        id: r.try_get("id")?,
        at: r.try_get("at")?,
        event: r.try_get("event")?,
        result: r.try_get("result")?,
        user_id: r.try_get("user_id")?,
        client_id: r.try_get("client_id")?,
        actor: r.try_get("actor")?,
        ip: r.try_get("ip")?,
        user_agent: r.try_get("user_agent")?,
        request_id: r.try_get("request_id")?,
        detail: detail
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or_default(),
    })
}

#[async_trait]
impl AuditStore for PostgresStore {
    /// One statement for every entry: one round trip and one commit, however many.
    async fn record_audit(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let details: Vec<Option<String>> = entries
            .iter()
            .map(|e| (!e.detail.is_null()).then(|| e.detail.to_string()))
            .collect();
        let e = entries;
        sqlx::query(INSERT_AUDIT_ENTRIES)
            .bind(column(e, |e| e.at))
            .bind(column(e, |e| text(&e.event)))
            .bind(column(e, |e| text(&e.result)))
            .bind(column(e, |e| e.user_id))
            .bind(column(e, |e| opt_text(&e.client_id)))
            .bind(column(e, |e| opt_text(&e.actor)))
            .bind(column(e, |e| opt_text(&e.ip)))
            .bind(column(e, |e| opt_text(&e.user_agent)))
            .bind(column(e, |e| opt_text(&e.request_id)))
            .bind(column(&details, opt_text))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn query_audit(&self, q: &AuditQuery) -> StoreResult<Vec<AuditEntry>> {
        let (statement, params) = audit_select(q);
        let mut query = sqlx::query(&statement);
        for param in &params {
            query = match param {
                AuditParam::Int(v) => query.bind(*v),
                AuditParam::Text(v) => query.bind(text(v)),
            };
        }
        let found = query.fetch_all(&self.pool).await?;
        Ok(found.iter().map(entry).collect::<Result<Vec<_>, _>>()?)
    }

    async fn delete_audit_before(&self, at: i64) -> StoreResult<u64> {
        self.sweep(sql::SWEEP_AUDIT_LOG.postgres, at).await
    }
}
