//! [`FlowStore`] on PostgreSQL: every change of state is one conditional
//! `UPDATE ... RETURNING`, so of two nodes deciding at once only one wins.

use async_trait::async_trait;
use sqlx::Row;

use super::rows;
use super::{PostgresStore, opt_text, text};
use crate::store::StoreResult;
use crate::store::flows::*;
use crate::store::sql;

#[async_trait]
impl FlowStore for PostgresStore {
    async fn create_bot_login(&self, l: &BotLoginRecord) -> StoreResult<()> {
        sqlx::query(sql::INSERT_BOT_LOGIN)
            .bind(text(&l.id))
            .bind(&l.payload_hash)
            .bind(text(&l.client_id))
            .bind(&l.pending_hash)
            .bind(&l.browser_hash)
            .bind(&l.device_hash)
            .bind(l.status.as_str())
            .bind(l.telegram_id)
            .bind(opt_text(&l.identity))
            .bind(l.created_at)
            .bind(l.expires_at)
            .bind(l.match_code)
            .bind(opt_text(&l.requester))
            .bind(opt_text(&l.answer))
            .bind(&l.ciba_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn get_bot_login(&self, id: &str) -> StoreResult<Option<BotLoginRecord>> {
        let row = sqlx::query(sql::GET_BOT_LOGIN)
            .bind(text(id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::bot_login).transpose()
    }

    async fn start_bot_login(
        &self,
        payload_hash: &[u8],
        telegram_id: i64,
        now: i64,
    ) -> StoreResult<Option<BotLoginRecord>> {
        let row = sqlx::query(sql::START_BOT_LOGIN)
            .bind(payload_hash)
            .bind(telegram_id)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::bot_login).transpose()
    }

    async fn decide_bot_login(
        &self,
        id: &str,
        telegram_id: i64,
        identity: Option<&str>,
        answer: &str,
        now: i64,
        keep_until: i64,
    ) -> StoreResult<Option<BotLoginRecord>> {
        let status = if identity.is_some() {
            BotLoginStatus::Approved
        } else {
            BotLoginStatus::Denied
        };
        let row = sqlx::query(sql::DECIDE_BOT_LOGIN)
            .bind(text(id))
            .bind(telegram_id)
            .bind(status.as_str())
            .bind(identity.map(text))
            .bind(now)
            .bind(keep_until)
            .bind(text(answer))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::bot_login).transpose()
    }

    async fn finish_bot_login(
        &self,
        id: &str,
        browser_hash: &[u8],
        pending_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<BotLoginRecord>> {
        let row = sqlx::query(sql::FINISH_BOT_LOGIN)
            .bind(text(id))
            .bind(browser_hash)
            .bind(pending_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::bot_login).transpose()
    }

    async fn create_device_code(&self, d: &DeviceCodeRecord) -> StoreResult<()> {
        sqlx::query(sql::INSERT_DEVICE_CODE)
            .bind(&d.device_code_hash)
            .bind(&d.user_code_hash)
            .bind(text(&d.client_id))
            .bind(text(&d.scope))
            .bind(d.status.as_str())
            .bind(d.user_id)
            .bind(d.auth_time)
            .bind(opt_text(&d.amr))
            .bind(d.interval_secs)
            .bind(d.last_polled_at)
            .bind(d.created_at)
            .bind(d.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn find_device_code(
        &self,
        user_code_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<DeviceCodeRecord>> {
        let row = sqlx::query(sql::FIND_DEVICE_CODE)
            .bind(user_code_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::device_code).transpose()
    }

    async fn decide_device_code(
        &self,
        device_code_hash: &[u8],
        approval: Option<&DeviceApproval>,
        now: i64,
    ) -> StoreResult<Option<DeviceCodeRecord>> {
        let status = match approval {
            Some(_) => DeviceStatus::Approved,
            None => DeviceStatus::Denied,
        };
        let row = sqlx::query(sql::DECIDE_DEVICE_CODE)
            .bind(device_code_hash)
            .bind(status.as_str())
            .bind(approval.map(|a| a.user_id))
            .bind(approval.map(|a| a.auth_time))
            .bind(approval.map(|a| text(&a.amr)))
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::device_code).transpose()
    }

    async fn poll_device_code(
        &self,
        device_code_hash: &[u8],
        client_id: &str,
        now_millis: i64,
    ) -> StoreResult<DevicePoll> {
        let now = now_millis.div_euclid(1000);
        let row = sqlx::query(sql::GET_DEVICE_CODE)
            .bind(device_code_hash)
            .bind(text(client_id))
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(DevicePoll::Unknown);
        };
        let found = rows::device_code(&row)?;
        if found.status == DeviceStatus::Consumed {
            return Ok(DevicePoll::Polled(found));
        }
        if now >= found.expires_at {
            return Ok(DevicePoll::Expired);
        }
        let in_time = sqlx::query(sql::POLL_DEVICE_CODE)
            .bind(device_code_hash)
            .bind(now_millis)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = in_time {
            return Ok(DevicePoll::Polled(rows::device_code(&row)?));
        }
        let slowed = sqlx::query(sql::SLOW_DOWN_DEVICE_CODE)
            .bind(device_code_hash)
            .bind(now_millis)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match slowed {
            Some(row) => DevicePoll::SlowDown {
                interval_secs: row.try_get("interval_secs")?,
            },
            None => DevicePoll::Unknown,
        })
    }

    async fn consume_device_code(
        &self,
        device_code_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<DeviceCodeRecord>> {
        let row = sqlx::query(sql::CONSUME_DEVICE_CODE)
            .bind(device_code_hash)
            .bind(text(client_id))
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::device_code).transpose()
    }

    async fn create_ciba_request(&self, r: &CibaRequestRecord) -> StoreResult<()> {
        sqlx::query(sql::INSERT_CIBA_REQUEST)
            .bind(&r.request_hash)
            .bind(text(&r.client_id))
            .bind(r.user_id)
            .bind(text(&r.scope))
            .bind(opt_text(&r.binding_message))
            .bind(r.status.as_str())
            .bind(r.approved_user_id)
            .bind(r.auth_time)
            .bind(opt_text(&r.amr))
            .bind(r.interval_secs)
            .bind(r.last_polled_at)
            .bind(opt_text(&r.notification_token))
            .bind(&r.id_seed)
            .bind(r.created_at)
            .bind(r.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn decide_ciba_request(
        &self,
        request_hash: &[u8],
        approval: Option<&DeviceApproval>,
        now: i64,
    ) -> StoreResult<Option<CibaRequestRecord>> {
        let status = match approval {
            Some(_) => CibaStatus::Approved,
            None => CibaStatus::Denied,
        };
        let row = sqlx::query(sql::DECIDE_CIBA_REQUEST)
            .bind(request_hash)
            .bind(status.as_str())
            .bind(approval.map(|a| a.user_id))
            .bind(approval.map(|a| a.auth_time))
            .bind(approval.map(|a| text(&a.amr)))
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::ciba_request).transpose()
    }

    async fn poll_ciba_request(
        &self,
        request_hash: &[u8],
        client_id: &str,
        now_millis: i64,
    ) -> StoreResult<CibaPoll> {
        let now = now_millis.div_euclid(1000);
        let row = sqlx::query(sql::GET_CIBA_REQUEST)
            .bind(request_hash)
            .bind(text(client_id))
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(CibaPoll::Unknown);
        };
        let found = rows::ciba_request(&row)?;
        if found.status == CibaStatus::Consumed {
            return Ok(CibaPoll::Polled(Box::new(found)));
        }
        if now >= found.expires_at {
            return Ok(CibaPoll::Expired);
        }
        let in_time = sqlx::query(sql::POLL_CIBA_REQUEST)
            .bind(request_hash)
            .bind(now_millis)
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = in_time {
            return Ok(CibaPoll::Polled(Box::new(rows::ciba_request(&row)?)));
        }
        let slowed = sqlx::query(sql::SLOW_DOWN_CIBA_REQUEST)
            .bind(request_hash)
            .bind(now_millis)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match slowed {
            Some(row) => CibaPoll::SlowDown {
                interval_secs: row.try_get("interval_secs")?,
            },
            None => CibaPoll::Unknown,
        })
    }

    async fn consume_ciba_request(
        &self,
        request_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<CibaRequestRecord>> {
        let row = sqlx::query(sql::CONSUME_CIBA_REQUEST)
            .bind(request_hash)
            .bind(text(client_id))
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::ciba_request).transpose()
    }

    async fn client_user_ids(&self, client_id: &str, limit: i64) -> StoreResult<Vec<i64>> {
        let rows = sqlx::query(sql::CLIENT_USER_IDS)
            .bind(text(client_id))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|row| Ok(row.try_get("user_id")?)).collect()
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<i64>> {
        let row = sqlx::query(sql::FIND_USER_BY_USERNAME)
            .bind(text(username))
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(row) => Some(row.try_get("telegram_id")?),
            None => None,
        })
    }
}
