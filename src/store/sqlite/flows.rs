//! [`FlowStore`] on SQLite: every change of state is one write on the writer thread, so two
//! parallel callers are ordered and at most one wins each conditional update.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, named_params};

use super::SqliteStore;
use super::rows;
use crate::store::StoreResult;
use crate::store::flows::*;
use crate::store::sql;

#[async_trait]
impl FlowStore for SqliteStore {
    async fn create_bot_login(&self, l: &BotLoginRecord) -> StoreResult<()> {
        let l = l.clone();
        self.db
            .write(move |c| {
                c.prepare_cached(sql::INSERT_BOT_LOGIN)?
                    .execute(named_params! {
                        "$1": l.id, "$2": l.payload_hash, "$3": l.client_id,
                        "$4": l.pending_hash, "$5": l.browser_hash, "$6": l.device_hash,
                        "$7": l.status.as_str(), "$8": l.telegram_id, "$9": l.identity,
                        "$10": l.created_at, "$11": l.expires_at, "$12": l.match_code,
                        "$13": l.requester, "$14": l.answer, "$15": l.ciba_hash,
                    })?;
                Ok(())
            })
            .await
    }

    async fn get_bot_login(&self, id: &str) -> StoreResult<Option<BotLoginRecord>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::GET_BOT_LOGIN)?
                .query_row(named_params! {"$1": id}, rows::bot_login)
                .optional()?)
        })
    }

    async fn start_bot_login(
        &self,
        payload_hash: &[u8],
        telegram_id: i64,
        now: i64,
    ) -> StoreResult<Option<BotLoginRecord>> {
        let hash = payload_hash.to_vec();
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(sql::START_BOT_LOGIN)?
                    .query_row(
                        named_params! {"$1": hash, "$2": telegram_id, "$3": now},
                        rows::bot_login,
                    )
                    .optional()?)
            })
            .await
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
        let (id, identity, answer) = (
            id.to_owned(),
            identity.map(str::to_owned),
            answer.to_owned(),
        );
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(sql::DECIDE_BOT_LOGIN)?
                    .query_row(
                        named_params! {
                            "$1": id, "$2": telegram_id, "$3": status.as_str(),
                            "$4": identity, "$5": now, "$6": keep_until, "$7": answer,
                        },
                        rows::bot_login,
                    )
                    .optional()?)
            })
            .await
    }

    async fn finish_bot_login(
        &self,
        id: &str,
        browser_hash: &[u8],
        pending_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<BotLoginRecord>> {
        let (id, browser, pending) = (id.to_owned(), browser_hash.to_vec(), pending_hash.to_vec());
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(sql::FINISH_BOT_LOGIN)?
                    .query_row(
                        named_params! {"$1": id, "$2": browser, "$3": pending, "$4": now},
                        rows::bot_login,
                    )
                    .optional()?)
            })
            .await
    }

    async fn create_device_code(&self, d: &DeviceCodeRecord) -> StoreResult<()> {
        let d = d.clone();
        self.db
            .write(move |c| {
                c.prepare_cached(sql::INSERT_DEVICE_CODE)?
                    .execute(named_params! {
                        "$1": d.device_code_hash, "$2": d.user_code_hash, "$3": d.client_id,
                        "$4": d.scope, "$5": d.status.as_str(), "$6": d.user_id,
                        "$7": d.auth_time, "$8": d.amr, "$9": d.interval_secs,
                        "$10": d.last_polled_at, "$11": d.created_at, "$12": d.expires_at,
                    })?;
                Ok(())
            })
            .await
    }

    async fn find_device_code(
        &self,
        user_code_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<DeviceCodeRecord>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::FIND_DEVICE_CODE)?
                .query_row(
                    named_params! {"$1": user_code_hash, "$2": now},
                    rows::device_code,
                )
                .optional()?)
        })
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
        let (hash, approval) = (device_code_hash.to_vec(), approval.cloned());
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(sql::DECIDE_DEVICE_CODE)?
                    .query_row(
                        named_params! {
                            "$1": hash, "$2": status.as_str(),
                            "$3": approval.as_ref().map(|a| a.user_id),
                            "$4": approval.as_ref().map(|a| a.auth_time),
                            "$5": approval.as_ref().map(|a| a.amr.as_str()),
                            "$6": now,
                        },
                        rows::device_code,
                    )
                    .optional()?)
            })
            .await
    }

    async fn poll_device_code(
        &self,
        device_code_hash: &[u8],
        client_id: &str,
        now_millis: i64,
    ) -> StoreResult<DevicePoll> {
        let now = now_millis.div_euclid(1000);
        let (hash, client_id) = (device_code_hash.to_vec(), client_id.to_owned());
        // The lookup and the update in one write: no other poll comes between them.
        self.db
            .write(move |c| {
                let found = c
                    .prepare_cached(sql::GET_DEVICE_CODE)?
                    .query_row(
                        named_params! {"$1": hash, "$2": client_id},
                        rows::device_code,
                    )
                    .optional()?;
                let Some(found) = found else {
                    return Ok(DevicePoll::Unknown);
                };
                if found.status == DeviceStatus::Consumed {
                    return Ok(DevicePoll::Polled(found));
                }
                if now >= found.expires_at {
                    return Ok(DevicePoll::Expired);
                }
                let in_time = c
                    .prepare_cached(sql::POLL_DEVICE_CODE)?
                    .query_row(
                        named_params! {"$1": hash, "$2": now_millis},
                        rows::device_code,
                    )
                    .optional()?;
                if let Some(polled) = in_time {
                    return Ok(DevicePoll::Polled(polled));
                }
                let slowed: Option<i64> = c
                    .prepare_cached(sql::SLOW_DOWN_DEVICE_CODE)?
                    .query_row(named_params! {"$1": hash, "$2": now_millis}, |r| {
                        r.get("interval_secs")
                    })
                    .optional()?;
                Ok(match slowed {
                    Some(interval_secs) => DevicePoll::SlowDown { interval_secs },
                    None => DevicePoll::Unknown,
                })
            })
            .await
    }

    async fn consume_device_code(
        &self,
        device_code_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<DeviceCodeRecord>> {
        let (hash, client_id) = (device_code_hash.to_vec(), client_id.to_owned());
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(sql::CONSUME_DEVICE_CODE)?
                    .query_row(
                        named_params! {"$1": hash, "$2": client_id, "$3": now},
                        rows::device_code,
                    )
                    .optional()?)
            })
            .await
    }

    async fn create_ciba_request(&self, r: &CibaRequestRecord) -> StoreResult<()> {
        let r = r.clone();
        self.db
            .write(move |c| {
                c.prepare_cached(sql::INSERT_CIBA_REQUEST)?
                    .execute(named_params! {
                        "$1": r.request_hash, "$2": r.client_id, "$3": r.user_id,
                        "$4": r.scope, "$5": r.binding_message, "$6": r.status.as_str(),
                        "$7": r.approved_user_id, "$8": r.auth_time, "$9": r.amr,
                        "$10": r.interval_secs, "$11": r.last_polled_at,
                        "$12": r.notification_token, "$13": r.id_seed, "$14": r.created_at,
                        "$15": r.expires_at,
                    })?;
                Ok(())
            })
            .await
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
        let (hash, approval) = (request_hash.to_vec(), approval.cloned());
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(sql::DECIDE_CIBA_REQUEST)?
                    .query_row(
                        named_params! {
                            "$1": hash, "$2": status.as_str(),
                            "$3": approval.as_ref().map(|a| a.user_id),
                            "$4": approval.as_ref().map(|a| a.auth_time),
                            "$5": approval.as_ref().map(|a| a.amr.as_str()),
                            "$6": now,
                        },
                        rows::ciba_request,
                    )
                    .optional()?)
            })
            .await
    }

    async fn poll_ciba_request(
        &self,
        request_hash: &[u8],
        client_id: &str,
        now_millis: i64,
    ) -> StoreResult<CibaPoll> {
        let now = now_millis.div_euclid(1000);
        let (hash, client_id) = (request_hash.to_vec(), client_id.to_owned());
        // The lookup and the update in one write: no other poll comes between them.
        self.db
            .write(move |c| {
                let found = c
                    .prepare_cached(sql::GET_CIBA_REQUEST)?
                    .query_row(
                        named_params! {"$1": hash, "$2": client_id},
                        rows::ciba_request,
                    )
                    .optional()?;
                let Some(found) = found else {
                    return Ok(CibaPoll::Unknown);
                };
                if found.status == CibaStatus::Consumed {
                    return Ok(CibaPoll::Polled(Box::new(found)));
                }
                if now >= found.expires_at {
                    return Ok(CibaPoll::Expired);
                }
                let in_time = c
                    .prepare_cached(sql::POLL_CIBA_REQUEST)?
                    .query_row(
                        named_params! {"$1": hash, "$2": now_millis},
                        rows::ciba_request,
                    )
                    .optional()?;
                if let Some(polled) = in_time {
                    return Ok(CibaPoll::Polled(Box::new(polled)));
                }
                let slowed: Option<i64> = c
                    .prepare_cached(sql::SLOW_DOWN_CIBA_REQUEST)?
                    .query_row(named_params! {"$1": hash, "$2": now_millis}, |r| {
                        r.get("interval_secs")
                    })
                    .optional()?;
                Ok(match slowed {
                    Some(interval_secs) => CibaPoll::SlowDown { interval_secs },
                    None => CibaPoll::Unknown,
                })
            })
            .await
    }

    async fn consume_ciba_request(
        &self,
        request_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<Option<CibaRequestRecord>> {
        let (hash, client_id) = (request_hash.to_vec(), client_id.to_owned());
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(sql::CONSUME_CIBA_REQUEST)?
                    .query_row(
                        named_params! {"$1": hash, "$2": client_id, "$3": now},
                        rows::ciba_request,
                    )
                    .optional()?)
            })
            .await
    }

    async fn client_user_ids(&self, client_id: &str, limit: i64) -> StoreResult<Vec<i64>> {
        self.db.read(|c| {
            let mut statement = c.prepare_cached(sql::CLIENT_USER_IDS)?;
            let ids = statement
                .query_map(named_params! {"$1": client_id, "$2": limit}, |r| {
                    r.get("user_id")
                })?
                .collect::<Result<Vec<i64>, _>>()?;
            Ok(ids)
        })
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<i64>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::FIND_USER_BY_USERNAME)?
                .query_row(named_params! {"$1": username}, |r| r.get("telegram_id"))
                .optional()?)
        })
    }
}
