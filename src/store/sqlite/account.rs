//! [`AccountStore`] on SQLite.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, named_params};

use super::SqliteStore;
use super::rows;
use crate::store::account::*;
use crate::store::sql;
use crate::store::{SessionRecord, StoreResult};

#[async_trait]
impl AccountStore for SqliteStore {
    async fn list_user_apps(&self, user_id: i64, now: i64) -> StoreResult<Vec<UserAppRecord>> {
        let found = self.db.read(|c| {
            Ok(c.prepare_cached(sql::LIST_USER_APPS)?
                .query_map(named_params! {"$1": user_id, "$2": now}, |r| {
                    Ok(AppRow {
                        client_id: r.get("client_id")?,
                        scope: r.get("scope")?,
                        used_at: r.get("used_at")?,
                        consented: r.get::<_, i64>("consented")? == 1,
                    })
                })?
                .collect::<Result<Vec<_>, _>>()?)
        })?;
        Ok(merge_apps(found))
    }

    async fn revoke_user_app(&self, user_id: i64, client_id: &str, now: i64) -> StoreResult<bool> {
        let client_id = client_id.to_owned();
        self.db
            .write(move |c| {
                let mut n = c
                    .prepare_cached(sql::DELETE_USER_CONSENT)?
                    .execute(named_params! {"$1": user_id, "$2": client_id})?;
                for statement in [sql::REVOKE_USER_GRANTS, sql::REVOKE_USER_ACCESS_TOKENS] {
                    n += c
                        .prepare_cached(statement)?
                        .execute(named_params! {"$1": user_id, "$2": client_id, "$3": now})?;
                }
                Ok(n > 0)
            })
            .await
    }

    async fn list_user_sessions(&self, user_id: i64, now: i64) -> StoreResult<Vec<SessionRecord>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::LIST_USER_SESSIONS)?
                .query_map(named_params! {"$1": user_id, "$2": now}, rows::session)?
                .collect::<Result<Vec<_>, _>>()?)
        })
    }

    async fn touch_session(&self, id_hash: &[u8], now: i64) -> StoreResult<()> {
        let hash = id_hash.to_vec();
        self.db
            .write(move |c| {
                c.prepare_cached(sql::TOUCH_SESSION)?
                    .execute(named_params! {"$1": hash, "$2": now})?;
                Ok(())
            })
            .await
    }

    async fn revoke_session_grants(
        &self,
        user_id: i64,
        session_hash: &[u8],
        now: i64,
    ) -> StoreResult<Vec<String>> {
        let hash = session_hash.to_vec();
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(sql::REVOKE_SESSION_GRANTS)?
                    .query_map(named_params! {"$1": user_id, "$2": hash, "$3": now}, |r| {
                        r.get("client_id")
                    })?
                    .collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    async fn login_alerts(&self, user_id: i64) -> StoreResult<Option<LoginAlertsRecord>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::GET_LOGIN_ALERTS)?
                .query_row(named_params! {"$1": user_id}, |r| {
                    Ok(LoginAlertsRecord {
                        chosen: r.get("login_alerts")?,
                        bot_chat_since: r.get("bot_chat_since")?,
                    })
                })
                .optional()?)
        })
    }

    async fn set_login_alerts(&self, user_id: i64, on: bool) -> StoreResult<bool> {
        self.db
            .write(move |c| {
                let n = c
                    .prepare_cached(sql::SET_LOGIN_ALERTS)?
                    .execute(named_params! {"$1": user_id, "$2": on})?;
                Ok(n == 1)
            })
            .await
    }

    async fn note_bot_chat_login(&self, user_id: i64, now: i64) -> StoreResult<()> {
        self.db
            .write(move |c| {
                c.prepare_cached(sql::NOTE_BOT_CHAT_LOGIN)?
                    .execute(named_params! {"$1": user_id, "$2": now})?;
                Ok(())
            })
            .await
    }
}
