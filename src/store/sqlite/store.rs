//! [`Store`] on SQLite. Reads run on the caller's thread (`db.read`); writes are handed to the
//! writer thread (`db.write`) and answered once their group is committed. A write closure may
//! run twice (db.rs: a failed group is replayed write by write), so each one only reads what it
//! captured, and each one is all or nothing.

use async_trait::async_trait;
use rusqlite::{OptionalExtension, named_params};

use super::SqliteStore;
use super::rows::{self, insert_access_token, insert_grant, insert_refresh_token, insert_tokens};
use crate::store::sql;
use crate::store::*;

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> StoreResult<()> {
        self.db
            .read(|c| Ok(c.prepare_cached(sql::PING)?.query_row([], |_| Ok(()))?))
    }

    fn pool_stats(&self) -> crate::metrics::PoolStats {
        self.db.pool_stats()
    }

    async fn create_client(&self, client: &ClientRecord) -> StoreResult<()> {
        let settings = rows::settings_json(client)?;
        let (id, secret, created_at) = (
            client.client_id.clone(),
            client.secret_hash.clone(),
            client.created_at,
        );
        self.db
            .write(move |c| {
                c.prepare_cached(sql::INSERT_CLIENT)?
                    .execute(named_params! {
                        "$1": id, "$2": secret, "$3": settings, "$4": created_at,
                    })?;
                Ok(())
            })
            .await
    }

    async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let row = self.db.read(|c| {
            Ok(c.prepare_cached(sql::GET_CLIENT)?
                .query_row(named_params! {"$1": client_id}, rows::client)
                .optional()?)
        })?;
        row.map(rows::client_record).transpose()
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        let found = self.db.read(|c| {
            Ok(c.prepare_cached(sql::LIST_CLIENTS)?
                .query_map([], rows::client)?
                .collect::<Result<Vec<_>, _>>()?)
        })?;
        found.into_iter().map(rows::client_record).collect()
    }

    async fn update_client(&self, client: &ClientRecord) -> StoreResult<bool> {
        let settings = rows::settings_json(client)?;
        let (id, secret) = (client.client_id.clone(), client.secret_hash.clone());
        self.db
            .write(move |c| {
                let n = c
                    .prepare_cached(sql::UPDATE_CLIENT)?
                    .execute(named_params! {
                        "$1": id, "$2": secret, "$3": settings,
                    })?;
                Ok(n == 1)
            })
            .await
    }

    async fn update_client_unless_changed(
        &self,
        client: &ClientRecord,
        read: &ClientSettings,
    ) -> StoreResult<bool> {
        let settings = rows::settings_json(client)?;
        let (id, secret, read) = (
            client.client_id.clone(),
            client.secret_hash.clone(),
            read.clone(),
        );
        self.db
            .write(move |c| {
                if !settings_still(c, &id, &read)? {
                    return Ok(false);
                }
                let n = c
                    .prepare_cached(sql::UPDATE_CLIENT)?
                    .execute(named_params! {
                        "$1": id, "$2": secret, "$3": settings,
                    })?;
                Ok(n == 1)
            })
            .await
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        let id = client_id.to_owned();
        self.db
            .write(move |c| Ok(delete_client_rows(c, &id)?))
            .await
    }

    async fn delete_client_unless_changed(
        &self,
        client_id: &str,
        read: &ClientSettings,
    ) -> StoreResult<bool> {
        let (id, read) = (client_id.to_owned(), read.clone());
        self.db
            .write(move |c| {
                if !settings_still(c, &id, &read)? {
                    return Ok(false);
                }
                Ok(delete_client_rows(c, &id)?)
            })
            .await
    }

    async fn upsert_user(&self, user: &UserRecord) -> StoreResult<Option<i64>> {
        let u = user.clone();
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(sql::UPSERT_USER)?.query_row(
                    named_params! {
                        "$1": u.telegram_id, "$2": u.first_name, "$3": u.last_name, "$4": u.username,
                        "$5": u.photo_url, "$6": u.language_code, "$7": u.is_premium,
                        "$8": u.phone_number, "$9": u.created_at, "$10": u.updated_at,
                    },
                    |r| r.get::<_, Option<i64>>(0),
                )?)
            })
            .await
    }

    async fn get_user(&self, telegram_id: i64) -> StoreResult<Option<UserRecord>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::GET_USER)?
                .query_row(named_params! {"$1": telegram_id}, rows::user)
                .optional()?)
        })
    }

    async fn set_user_groups(&self, telegram_id: i64, groups: &[String]) -> StoreResult<()> {
        let json = groups_json(groups)?;
        self.db
            .write(move |c| {
                c.prepare_cached(sql::SET_USER_GROUPS)?
                    .execute(named_params! {"$1": telegram_id, "$2": json})?;
                Ok(())
            })
            .await
    }

    async fn consume_proof(&self, proof_hash: &[u8], expires_at: i64) -> StoreResult<bool> {
        let hash = proof_hash.to_vec();
        self.db
            .write(move |c| {
                let n = c
                    .prepare_cached(sql::CONSUME_PROOF)?
                    .execute(named_params! {"$1": hash, "$2": expires_at})?;
                Ok(n == 1)
            })
            .await
    }

    async fn create_session(&self, s: &SessionRecord) -> StoreResult<()> {
        let s = s.clone();
        self.db
            .write(move |c| {
                c.prepare_cached(sql::CREATE_SESSION)?
                    .execute(named_params! {
                        "$1": s.id_hash, "$2": s.user_id, "$3": s.auth_time, "$4": s.amr,
                        "$5": s.created_at, "$6": s.expires_at, "$7": s.device, "$8": s.place,
                        "$9": s.last_used_at,
                    })?;
                Ok(())
            })
            .await
    }

    async fn get_session(&self, id_hash: &[u8], now: i64) -> StoreResult<Option<SessionRecord>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::GET_SESSION)?
                .query_row(named_params! {"$1": id_hash, "$2": now}, rows::session)
                .optional()?)
        })
    }

    async fn delete_session(&self, id_hash: &[u8]) -> StoreResult<()> {
        let hash = id_hash.to_vec();
        self.db
            .write(move |c| {
                c.prepare_cached(sql::DELETE_SESSION)?
                    .execute(named_params! {"$1": hash})?;
                Ok(())
            })
            .await
    }

    async fn record_session_client(
        &self,
        session_hash: &[u8],
        client_id: &str,
        user_id: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        let (hash, client_id) = (session_hash.to_vec(), client_id.to_owned());
        self.db
            .write(move |c| {
                c.prepare_cached(sql::RECORD_SESSION_CLIENT)?
                    .execute(named_params! {
                        "$1": hash, "$2": client_id, "$3": user_id, "$4": expires_at,
                    })?;
                Ok(())
            })
            .await
    }

    async fn take_session_clients(&self, session_hash: &[u8]) -> StoreResult<Vec<(String, i64)>> {
        let hash = session_hash.to_vec();
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(sql::TAKE_SESSION_CLIENTS)?
                    .query_map(named_params! {"$1": hash}, |r| {
                        Ok((r.get("client_id")?, r.get("user_id")?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?)
            })
            .await
    }

    async fn create_pending(&self, p: &PendingAuthorization) -> StoreResult<()> {
        let p = p.clone();
        self.db
            .write(move |c| {
                c.prepare_cached(sql::CREATE_PENDING)?
                    .execute(named_params! {
                        "$1": p.id_hash, "$2": p.client_id, "$3": p.request,
                        "$4": p.created_at, "$5": p.expires_at,
                    })?;
                Ok(())
            })
            .await
    }

    async fn get_pending(
        &self,
        id_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<PendingAuthorization>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::GET_PENDING)?
                .query_row(named_params! {"$1": id_hash, "$2": now}, rows::pending)
                .optional()?)
        })
    }

    async fn update_pending(&self, id_hash: &[u8], request: &str) -> StoreResult<bool> {
        let (hash, request) = (id_hash.to_vec(), request.to_owned());
        self.db
            .write(move |c| {
                let n = c
                    .prepare_cached(sql::UPDATE_PENDING)?
                    .execute(named_params! {"$1": hash, "$2": request})?;
                Ok(n == 1)
            })
            .await
    }

    async fn delete_pending(&self, id_hash: &[u8]) -> StoreResult<()> {
        let hash = id_hash.to_vec();
        self.db
            .write(move |c| {
                c.prepare_cached(sql::DELETE_PENDING)?
                    .execute(named_params! {"$1": hash})?;
                Ok(())
            })
            .await
    }

    async fn get_consent(&self, user_id: i64, client_id: &str) -> StoreResult<Option<String>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::GET_CONSENT)?
                .query_row(named_params! {"$1": user_id, "$2": client_id}, |r| {
                    r.get("scope")
                })
                .optional()?)
        })
    }

    async fn save_consent(
        &self,
        user_id: i64,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<()> {
        let (client_id, scope) = (client_id.to_owned(), scope.to_owned());
        self.db
            .write(move |c| {
                c.prepare_cached(sql::SAVE_CONSENT)?
                    .execute(named_params! {
                        "$1": user_id, "$2": client_id, "$3": scope, "$4": now,
                    })?;
                Ok(())
            })
            .await
    }

    async fn create_grant_with_code(
        &self,
        grant: &GrantRecord,
        code: &CodeRecord,
    ) -> StoreResult<()> {
        let (g, code) = (grant.clone(), code.clone());
        self.db
            .write(move |c| {
                insert_grant(c, &g)?;
                c.prepare_cached(sql::INSERT_CODE)?.execute(named_params! {
                    "$1": code.code_hash, "$2": code.grant_id, "$3": code.redirect_uri,
                    "$4": code.code_challenge, "$5": code.expires_at,
                })?;
                Ok(())
            })
            .await
    }

    async fn create_grant(&self, grant: &GrantRecord) -> StoreResult<()> {
        let g = grant.clone();
        self.db.write(move |c| insert_grant(c, &g)).await
    }

    async fn create_grant_with_tokens(
        &self,
        grant: &GrantRecord,
        access: Option<&AccessTokenRecord>,
        refresh: Option<&RefreshTokenRecord>,
    ) -> StoreResult<()> {
        check_tokens_of(grant, access, refresh)?;
        let (g, access, refresh) = (grant.clone(), access.cloned(), refresh.cloned());
        self.db
            .write(move |c| {
                insert_grant(c, &g)?;
                insert_tokens(c, access.as_ref(), refresh.as_ref())
            })
            .await
    }

    async fn get_grant(&self, id: &str) -> StoreResult<Option<GrantRecord>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::GET_GRANT)?
                .query_row(named_params! {"$1": id}, rows::grant)
                .optional()?)
        })
    }

    async fn redeem_code(
        &self,
        code_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<RedeemOutcome> {
        let (hash, client_id) = (code_hash.to_vec(), client_id.to_owned());
        self.db
            .write(move |c| {
                let redeemed = c
                    .prepare_cached(sql::REDEEM_CODE)?
                    .query_row(
                        named_params! {"$1": hash, "$2": now, "$3": client_id},
                        rows::code,
                    )
                    .optional()?;
                if let Some(code) = redeemed {
                    return Ok(RedeemOutcome::Redeemed(code));
                }
                let used: Option<String> = c
                    .prepare_cached(sql::CODE_ALREADY_USED)?
                    .query_row(named_params! {"$1": hash, "$2": client_id}, |r| {
                        r.get("grant_id")
                    })
                    .optional()?;
                Ok(match used {
                    Some(grant_id) => RedeemOutcome::AlreadyUsed { grant_id },
                    None => RedeemOutcome::NotFound,
                })
            })
            .await
    }

    async fn revoke_grant(&self, grant_id: &str, now: i64) -> StoreResult<()> {
        let grant_id = grant_id.to_owned();
        self.db
            .write(move |c| {
                c.prepare_cached(sql::REVOKE_GRANT)?
                    .execute(named_params! {"$1": grant_id, "$2": now})?;
                Ok(())
            })
            .await
    }

    async fn store_tokens(
        &self,
        access: Option<&AccessTokenRecord>,
        refresh: Option<&RefreshTokenRecord>,
    ) -> StoreResult<()> {
        let (access, refresh) = (access.cloned(), refresh.cloned());
        self.db
            .write(move |c| insert_tokens(c, access.as_ref(), refresh.as_ref()))
            .await
    }

    async fn get_access_token(&self, token_hash: &[u8]) -> StoreResult<Option<AccessTokenState>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::GET_ACCESS_TOKEN)?
                .query_row(named_params! {"$1": token_hash}, rows::access_token)
                .optional()?)
        })
    }

    async fn revoke_access_token(
        &self,
        token_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let (hash, client_id) = (token_hash.to_vec(), client_id.to_owned());
        self.db
            .write(move |c| {
                let n = c
                    .prepare_cached(sql::REVOKE_ACCESS_TOKEN)?
                    .execute(named_params! {"$1": hash, "$2": client_id, "$3": now})?;
                Ok(n == 1)
            })
            .await
    }

    async fn get_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshTokenState>> {
        self.db.read(|c| {
            Ok(c.prepare_cached(sql::GET_REFRESH_TOKEN)?
                .query_row(named_params! {"$1": token_hash}, rows::refresh_token)
                .optional()?)
        })
    }

    async fn rotate_refresh_token_issuing(
        &self,
        old_hash: &[u8],
        client_id: &str,
        successor: &RefreshTokenRecord,
        access: Option<&AccessTokenRecord>,
        now: i64,
    ) -> StoreResult<RotateOutcome> {
        let (old, client_id) = (old_hash.to_vec(), client_id.to_owned());
        let (successor, access) = (successor.clone(), access.cloned());
        // One write, so one transaction: an error rolls back the use of the old token too.
        self.db
            .write(move |c| {
                let used: Option<String> = c
                    .prepare_cached(sql::USE_REFRESH_TOKEN)?
                    .query_row(named_params! {"$1": old, "$2": now, "$3": client_id}, |r| {
                        r.get("grant_id")
                    })
                    .optional()?;
                let Some(grant_id) = used else {
                    let seen: Option<(String, Option<i64>)> = c
                        .prepare_cached(sql::REFRESH_TOKEN_SEEN)?
                        .query_row(named_params! {"$1": old, "$2": client_id}, |r| {
                            Ok((r.get("grant_id")?, r.get("used_at")?))
                        })
                        .optional()?;
                    return Ok(match seen {
                        Some((grant_id, Some(_))) => RotateOutcome::Replayed { grant_id },
                        _ => RotateOutcome::Invalid,
                    });
                };
                let grant = c
                    .prepare_cached(sql::GET_LIVE_GRANT)?
                    .query_row(named_params! {"$1": grant_id}, rows::grant)
                    .optional()?;
                let Some(grant) = grant else {
                    return Ok(RotateOutcome::Invalid);
                };
                if let Some(a) = &access {
                    if a.grant_id != grant_id {
                        return Err(StoreError::Internal("access token of another grant".into()));
                    }
                    insert_access_token(c, a)?;
                }
                insert_refresh_token(c, &successor, &grant_id)?;
                Ok(RotateOutcome::Rotated(grant))
            })
            .await
    }

    async fn delete_expired(&self, now: i64) -> StoreResult<u64> {
        let mut total = 0;
        for (sweep, memory) in &sql::DELETE_EXPIRED {
            total += self.sweep(sweep.sqlite, now - memory).await?;
        }
        Ok(total)
    }

    async fn create_upstream_login(&self, login: &UpstreamLogin) -> StoreResult<()> {
        let l = login.clone();
        self.db
            .write(move |c| {
                c.prepare_cached(sql::INSERT_UPSTREAM_LOGIN)?
                    .execute(named_params! {
                        "$1": l.state_hash, "$2": l.binding_hash, "$3": l.created_at,
                        "$4": l.expires_at,
                    })?;
                Ok(())
            })
            .await
    }

    async fn take_upstream_login(
        &self,
        state_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<UpstreamLogin>> {
        let hash = state_hash.to_vec();
        self.db
            .write(move |c| {
                Ok(c.prepare_cached(sql::TAKE_UPSTREAM_LOGIN)?
                    .query_row(named_params! {"$1": hash, "$2": now}, rows::upstream_login)
                    .optional()?)
            })
            .await
    }

    async fn try_lock_job(&self, job: &str) -> StoreResult<Option<JobLock>> {
        Ok(self.lock_job(job))
    }
}

/// Whether the client exists with exactly these settings (inside the writer's transaction).
fn settings_still(
    c: &rusqlite::Connection,
    client_id: &str,
    read: &ClientSettings,
) -> rusqlite::Result<bool> {
    let stored: Option<String> = c
        .prepare_cached("SELECT settings FROM clients WHERE client_id = $1")?
        .query_row(named_params! {"$1": client_id}, |r| r.get(0))
        .optional()?;
    Ok(stored
        .and_then(|s| serde_json::from_str::<ClientSettings>(&s).ok())
        .is_some_and(|s| &s == read))
}

/// Removes a client, revokes its grants and forgets its consents; true when it existed.
fn delete_client_rows(c: &rusqlite::Connection, client_id: &str) -> rusqlite::Result<bool> {
    let n = c
        .prepare_cached(sql::DELETE_CLIENT)?
        .execute(named_params! {"$1": client_id})?;
    c.prepare_cached(sql::REVOKE_CLIENT_GRANTS)?
        .execute(named_params! {"$1": client_id})?;
    c.prepare_cached(sql::DELETE_CLIENT_CONSENTS)?
        .execute(named_params! {"$1": client_id})?;
    Ok(n == 1)
}
