//! [`AccountStore`] on PostgreSQL.

use async_trait::async_trait;
use sqlx::Row;

use super::rows;
use super::{PostgresStore, text};
use crate::store::account::*;
use crate::store::sql;
use crate::store::{SessionRecord, StoreResult};

#[async_trait]
impl AccountStore for PostgresStore {
    async fn list_user_apps(&self, user_id: i64, now: i64) -> StoreResult<Vec<UserAppRecord>> {
        let found = sqlx::query(sql::LIST_USER_APPS)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        let rows = found
            .iter()
            .map(|r| {
                Ok(AppRow {
                    client_id: r.try_get("client_id")?,
                    scope: r.try_get("scope")?,
                    used_at: r.try_get("used_at")?,
                    consented: r.try_get::<i32, _>("consented")? == 1,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(merge_apps(rows))
    }

    async fn revoke_user_app(&self, user_id: i64, client_id: &str, now: i64) -> StoreResult<bool> {
        let client_id = text(client_id);
        let mut tx = self.pool.begin().await?;
        let mut n = sqlx::query(sql::DELETE_USER_CONSENT)
            .bind(user_id)
            .bind(&client_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for statement in [sql::REVOKE_USER_GRANTS, sql::REVOKE_USER_ACCESS_TOKENS] {
            n += sqlx::query(statement)
                .bind(user_id)
                .bind(&client_id)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        }
        tx.commit().await?;
        Ok(n > 0)
    }

    async fn list_user_sessions(&self, user_id: i64, now: i64) -> StoreResult<Vec<SessionRecord>> {
        let found = sqlx::query(sql::LIST_USER_SESSIONS)
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(rows::session).collect()
    }

    async fn touch_session(&self, id_hash: &[u8], now: i64) -> StoreResult<()> {
        sqlx::query(sql::TOUCH_SESSION)
            .bind(id_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn revoke_session_grants(
        &self,
        user_id: i64,
        session_hash: &[u8],
        now: i64,
    ) -> StoreResult<Vec<String>> {
        let found = sqlx::query(sql::REVOKE_SESSION_GRANTS)
            .bind(user_id)
            .bind(session_hash)
            .bind(now)
            .fetch_all(&self.pool)
            .await?;
        found.iter().map(|r| Ok(r.try_get("client_id")?)).collect()
    }

    async fn login_alerts(&self, user_id: i64) -> StoreResult<Option<LoginAlertsRecord>> {
        let row = sqlx::query(sql::GET_LOGIN_ALERTS)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(LoginAlertsRecord {
                chosen: r.try_get("login_alerts")?,
                bot_chat_since: r.try_get("bot_chat_since")?,
            }),
            None => None,
        })
    }

    async fn set_login_alerts(&self, user_id: i64, on: bool) -> StoreResult<bool> {
        let done = sqlx::query(sql::SET_LOGIN_ALERTS)
            .bind(user_id)
            .bind(on)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn note_bot_chat_login(&self, user_id: i64, now: i64) -> StoreResult<()> {
        sqlx::query(sql::NOTE_BOT_CHAT_LOGIN)
            .bind(user_id)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
