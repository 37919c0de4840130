//! [`AuditStore`] on PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;

use super::{PostgresStore, opt_text, text};
use crate::store::audit::*;
use crate::store::{StoreResult, sql};

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
    async fn record_audit(&self, entries: &[AuditEntry]) -> StoreResult<()> {
        let mut tx = self.pool.begin().await?;
        for e in entries {
            let detail = (!e.detail.is_null()).then(|| e.detail.to_string());
            sqlx::query(INSERT_AUDIT)
                .bind(e.at)
                .bind(text(&e.event))
                .bind(text(&e.result))
                .bind(e.user_id)
                .bind(opt_text(&e.client_id))
                .bind(opt_text(&e.actor))
                .bind(opt_text(&e.ip))
                .bind(opt_text(&e.user_agent))
                .bind(opt_text(&e.request_id))
                .bind(opt_text(&detail))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
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
