//! The SQL of [`FlowStore`](super::FlowStore), shared by both backends like `sql.rs`: `$n`
//! placeholders, `RETURNING`, nothing either database lacks.

/// A device code's row outlives its expiry this long, so a late poll still hears
/// `expired_token` (RFC 8628 §3.5) rather than `invalid_grant`.
pub(crate) const DEVICE_CODE_MEMORY_SECS: i64 = 3600;

macro_rules! impl_flow_store {
    ($store:ty, $db:ty) => {
        mod flow_sql {
            use async_trait::async_trait;
            use sqlx::Row;

            use super::*;
            use $crate::store::flows::*;
            use $crate::store::StoreResult;

            const BOT_LOGIN_COLUMNS: &str = "id, payload_hash, client_id, pending_hash, browser_hash, device_hash, \
                 status, telegram_id, identity, created_at, expires_at";

            const DEVICE_COLUMNS: &str = "device_code_hash, user_code_hash, client_id, scope, status, user_id, \
                 auth_time, amr, interval_secs, last_polled_at, created_at, expires_at";

            fn bot_login_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> StoreResult<BotLoginRecord> {
                let status: String = row.try_get("status")?;
                Ok(BotLoginRecord {
                    id: row.try_get("id")?,
                    payload_hash: row.try_get("payload_hash")?,
                    client_id: row.try_get("client_id")?,
                    pending_hash: row.try_get("pending_hash")?,
                    browser_hash: row.try_get("browser_hash")?,
                    device_hash: row.try_get("device_hash")?,
                    status: BotLoginStatus::parse(&status)?,
                    telegram_id: row.try_get("telegram_id")?,
                    identity: row.try_get("identity")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            }

            fn device_from_row(
                row: &<$db as sqlx::Database>::Row,
            ) -> StoreResult<DeviceCodeRecord> {
                let status: String = row.try_get("status")?;
                Ok(DeviceCodeRecord {
                    device_code_hash: row.try_get("device_code_hash")?,
                    user_code_hash: row.try_get("user_code_hash")?,
                    client_id: row.try_get("client_id")?,
                    scope: row.try_get("scope")?,
                    status: DeviceStatus::parse(&status)?,
                    user_id: row.try_get("user_id")?,
                    auth_time: row.try_get("auth_time")?,
                    amr: row.try_get("amr")?,
                    interval_secs: row.try_get("interval_secs")?,
                    last_polled_at: row.try_get("last_polled_at")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                })
            }

            #[async_trait]
            impl FlowStore for $store {
                async fn create_bot_login(&self, l: &BotLoginRecord) -> StoreResult<()> {
                    sqlx::query(&format!(
                        "INSERT INTO bot_logins ({BOT_LOGIN_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
                    ))
                    .bind(&l.id)
                    .bind(&l.payload_hash)
                    .bind(&l.client_id)
                    .bind(&l.pending_hash)
                    .bind(&l.browser_hash)
                    .bind(&l.device_hash)
                    .bind(l.status.as_str())
                    .bind(l.telegram_id)
                    .bind(&l.identity)
                    .bind(l.created_at)
                    .bind(l.expires_at)
                    .execute(&self.pool)
                    .await?;
                    Ok(())
                }

                async fn get_bot_login(&self, id: &str) -> StoreResult<Option<BotLoginRecord>> {
                    let row = sqlx::query(&format!(
                        "SELECT {BOT_LOGIN_COLUMNS} FROM bot_logins WHERE id = $1"
                    ))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(bot_login_from_row).transpose()
                }

                async fn start_bot_login(
                    &self,
                    payload_hash: &[u8],
                    telegram_id: i64,
                    now: i64,
                ) -> StoreResult<Option<BotLoginRecord>> {
                    let row = sqlx::query(&format!(
                        "UPDATE bot_logins SET status = 'started', telegram_id = $2 \
                         WHERE payload_hash = $1 AND status = 'pending' AND expires_at > $3 \
                         RETURNING {BOT_LOGIN_COLUMNS}"
                    ))
                    .bind(payload_hash)
                    .bind(telegram_id)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(bot_login_from_row).transpose()
                }

                async fn decide_bot_login(
                    &self,
                    id: &str,
                    telegram_id: i64,
                    identity: Option<&str>,
                    now: i64,
                    keep_until: i64,
                ) -> StoreResult<Option<BotLoginRecord>> {
                    let status = if identity.is_some() {
                        BotLoginStatus::Approved
                    } else {
                        BotLoginStatus::Denied
                    };
                    let row = sqlx::query(&format!(
                        "UPDATE bot_logins SET status = $3, identity = $4, expires_at = $6 \
                         WHERE id = $1 AND telegram_id = $2 AND status = 'started' AND expires_at > $5 \
                         RETURNING {BOT_LOGIN_COLUMNS}"
                    ))
                    .bind(id)
                    .bind(telegram_id)
                    .bind(status.as_str())
                    .bind(identity)
                    .bind(now)
                    .bind(keep_until)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(bot_login_from_row).transpose()
                }

                async fn finish_bot_login(
                    &self,
                    id: &str,
                    browser_hash: &[u8],
                    pending_hash: &[u8],
                    now: i64,
                ) -> StoreResult<Option<BotLoginRecord>> {
                    // RETURNING shows the new status; the decision is read back from `identity`.
                    let row = sqlx::query(&format!(
                        "UPDATE bot_logins SET status = 'consumed' \
                         WHERE id = $1 AND browser_hash = $2 AND pending_hash = $3 \
                         AND status IN ('approved', 'denied') AND expires_at > $4 \
                         RETURNING {BOT_LOGIN_COLUMNS}"
                    ))
                    .bind(id)
                    .bind(browser_hash)
                    .bind(pending_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(bot_login_from_row).transpose()
                }

                async fn create_device_code(&self, d: &DeviceCodeRecord) -> StoreResult<()> {
                    sqlx::query(&format!(
                        "INSERT INTO device_codes ({DEVICE_COLUMNS}) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)"
                    ))
                    .bind(&d.device_code_hash)
                    .bind(&d.user_code_hash)
                    .bind(&d.client_id)
                    .bind(&d.scope)
                    .bind(d.status.as_str())
                    .bind(d.user_id)
                    .bind(d.auth_time)
                    .bind(&d.amr)
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
                    let row = sqlx::query(&format!(
                        "SELECT {DEVICE_COLUMNS} FROM device_codes \
                         WHERE user_code_hash = $1 AND status = 'pending' AND expires_at > $2"
                    ))
                    .bind(user_code_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(device_from_row).transpose()
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
                    let row = sqlx::query(&format!(
                        "UPDATE device_codes SET status = $2, user_id = $3, auth_time = $4, amr = $5 \
                         WHERE device_code_hash = $1 AND status = 'pending' AND expires_at > $6 \
                         RETURNING {DEVICE_COLUMNS}"
                    ))
                    .bind(device_code_hash)
                    .bind(status.as_str())
                    .bind(approval.map(|a| a.user_id))
                    .bind(approval.map(|a| a.auth_time))
                    .bind(approval.map(|a| a.amr.as_str()))
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(device_from_row).transpose()
                }

                async fn poll_device_code(
                    &self,
                    device_code_hash: &[u8],
                    client_id: &str,
                    now: i64,
                ) -> StoreResult<DevicePoll> {
                    let row = sqlx::query(&format!(
                        "SELECT {DEVICE_COLUMNS} FROM device_codes WHERE device_code_hash = $1 AND client_id = $2"
                    ))
                    .bind(device_code_hash)
                    .bind(client_id)
                    .fetch_optional(&self.pool)
                    .await?;
                    let Some(row) = row else {
                        return Ok(DevicePoll::Unknown);
                    };
                    let found = device_from_row(&row)?;
                    if found.status == DeviceStatus::Consumed {
                        return Ok(DevicePoll::Polled(found));
                    }
                    if now >= found.expires_at {
                        return Ok(DevicePoll::Expired);
                    }
                    let in_time = sqlx::query(&format!(
                        "UPDATE device_codes SET last_polled_at = $2 WHERE device_code_hash = $1 \
                         AND (last_polled_at IS NULL OR $2 - last_polled_at >= interval_secs) \
                         RETURNING {DEVICE_COLUMNS}"
                    ))
                    .bind(device_code_hash)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    if let Some(row) = in_time {
                        return Ok(DevicePoll::Polled(device_from_row(&row)?));
                    }
                    // Too soon: the interval grows by 5 seconds for this and every later poll
                    // (RFC 8628 §3.5), and the clock restarts from this poll.
                    let slowed = sqlx::query(
                        "UPDATE device_codes SET last_polled_at = $2, interval_secs = interval_secs + 5 \
                         WHERE device_code_hash = $1 RETURNING interval_secs",
                    )
                    .bind(device_code_hash)
                    .bind(now)
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
                    let row = sqlx::query(&format!(
                        "UPDATE device_codes SET status = 'consumed' \
                         WHERE device_code_hash = $1 AND client_id = $2 AND status = 'approved' AND expires_at > $3 \
                         RETURNING {DEVICE_COLUMNS}"
                    ))
                    .bind(device_code_hash)
                    .bind(client_id)
                    .bind(now)
                    .fetch_optional(&self.pool)
                    .await?;
                    row.as_ref().map(device_from_row).transpose()
                }
            }
        }
    };
}

pub(crate) use impl_flow_store;
