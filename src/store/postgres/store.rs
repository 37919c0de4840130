//! [`Store`] on PostgreSQL. Single use is one conditional `UPDATE ... RETURNING`; what must be
//! stored together is one transaction. New grants, codes and tokens go to the group writer
//! (`batch.rs`), which commits what many requests wait to store in one transaction.

use async_trait::async_trait;
use sqlx::Row;

use super::batch::{SessionClient, Write};
use super::client_cache::{self, CHANNEL};
use super::lookups::{
    AccessTokenByHash, ConsentOf, PendingByHash, RefreshTokenByHash, SessionByHash, UserById,
};
use super::rows;
use super::single_use::{Consume, Redeem};
use super::updates::{SaveUser, UpdatePending};
use super::{PostgresStore, text};
use crate::store::sql;
use crate::store::*;

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query(sql::PING).execute(&self.pool).await?;
        Ok(())
    }

    fn pool_stats(&self) -> crate::metrics::PoolStats {
        let size = u64::from(self.pool.size()) + u64::from(self.grouped.size());
        let idle = (self.pool.num_idle() + self.grouped.num_idle()) as u64;
        crate::metrics::PoolStats {
            idle,
            used: size.saturating_sub(idle),
            write_queue: Some(self.writes.waiting()),
        }
    }

    async fn create_client(&self, client: &ClientRecord) -> StoreResult<()> {
        let client_id = text(&client.client_id);
        let mut tx = self.pool.begin().await?;
        sqlx::query(sql::INSERT_CLIENT)
            .bind(&client_id)
            .bind(&client.secret_hash)
            .bind(rows::settings_json(client)?)
            .bind(client.created_at)
            .execute(&mut *tx)
            .await?;
        announce_client_change(&mut tx, &client_id).await?;
        tx.commit().await?;
        self.forget_client(&client_id);
        Ok(())
    }

    async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let client_id = text(client_id);
        let Some(cache) = &self.clients else {
            return self.read_client(&client_id).await;
        };
        if let Some(held) = cache.get(&client_id) {
            return Ok(Some(held));
        }
        let ticket = cache.ticket();
        let found = self.read_client(&client_id).await?;
        if let (Some(ticket), Some(record)) = (ticket, &found) {
            cache.put(ticket, &client_id, record);
        }
        Ok(found)
    }

    async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
        let found = sqlx::query(sql::LIST_CLIENTS).fetch_all(&self.pool).await?;
        found.iter().map(rows::client).collect()
    }

    async fn update_client(&self, client: &ClientRecord) -> StoreResult<bool> {
        let client_id = text(&client.client_id);
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(sql::UPDATE_CLIENT)
            .bind(&client_id)
            .bind(&client.secret_hash)
            .bind(rows::settings_json(client)?)
            .execute(&mut *tx)
            .await?;
        announce_client_change(&mut tx, &client_id).await?;
        tx.commit().await?;
        self.forget_client(&client_id);
        Ok(done.rows_affected() == 1)
    }

    async fn update_client_unless_changed(
        &self,
        client: &ClientRecord,
        read: &ClientSettings,
    ) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await?;
        if !settings_still(&mut tx, &text(&client.client_id), read).await? {
            return Ok(false);
        }
        let client_id = text(&client.client_id);
        let done = sqlx::query(sql::UPDATE_CLIENT)
            .bind(&client_id)
            .bind(&client.secret_hash)
            .bind(rows::settings_json(client)?)
            .execute(&mut *tx)
            .await?;
        announce_client_change(&mut tx, &client_id).await?;
        tx.commit().await?;
        self.forget_client(&client_id);
        Ok(done.rows_affected() == 1)
    }

    async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        let client_id = text(client_id);
        let mut tx = self.pool.begin().await?;
        let deleted = delete_client_rows(&mut tx, &client_id).await?;
        tx.commit().await?;
        self.forget_client(&client_id);
        Ok(deleted)
    }

    async fn delete_client_unless_changed(
        &self,
        client_id: &str,
        read: &ClientSettings,
    ) -> StoreResult<bool> {
        let client_id = text(client_id);
        let mut tx = self.pool.begin().await?;
        if !settings_still(&mut tx, &client_id, read).await? {
            return Ok(false);
        }
        let deleted = delete_client_rows(&mut tx, &client_id).await?;
        tx.commit().await?;
        self.forget_client(&client_id);
        Ok(deleted)
    }

    async fn upsert_user(&self, u: &UserRecord) -> StoreResult<Option<i64>> {
        self.user_saves.run(SaveUser(u.clone())).await
    }

    async fn get_user(&self, telegram_id: i64) -> StoreResult<Option<UserRecord>> {
        self.users.run(UserById(telegram_id)).await
    }

    async fn set_user_groups(&self, telegram_id: i64, groups: &[String]) -> StoreResult<()> {
        sqlx::query(sql::SET_USER_GROUPS)
            .bind(telegram_id)
            .bind(groups_json(groups)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn consume_proof(&self, proof_hash: &[u8], expires_at: i64) -> StoreResult<bool> {
        let proof_hash = proof_hash.to_vec();
        let consume = Consume {
            proof_hash,
            expires_at,
        };
        self.consumptions.run(consume).await
    }

    async fn create_session(&self, s: &SessionRecord) -> StoreResult<()> {
        self.writes.write(Write::Session(s.clone())).await
    }

    async fn get_session(&self, id_hash: &[u8], now: i64) -> StoreResult<Option<SessionRecord>> {
        let id_hash = id_hash.to_vec();
        self.sessions.run(SessionByHash { id_hash, now }).await
    }

    async fn delete_session(&self, id_hash: &[u8]) -> StoreResult<()> {
        sqlx::query(sql::DELETE_SESSION)
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn record_session_client(
        &self,
        session_hash: &[u8],
        client_id: &str,
        user_id: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        let client = SessionClient {
            session_hash: session_hash.to_vec(),
            client_id: client_id.to_owned(),
            user_id,
            expires_at,
        };
        self.writes.write(Write::SessionClient(client)).await
    }

    async fn take_session_clients(&self, session_hash: &[u8]) -> StoreResult<Vec<(String, i64)>> {
        let taken = sqlx::query(sql::TAKE_SESSION_CLIENTS)
            .bind(session_hash)
            .fetch_all(&self.pool)
            .await?;
        taken
            .iter()
            .map(|r| Ok((r.try_get("client_id")?, r.try_get("user_id")?)))
            .collect()
    }

    async fn create_pending(&self, p: &PendingAuthorization) -> StoreResult<()> {
        self.writes.write(Write::Pending(p.clone())).await
    }

    async fn get_pending(
        &self,
        id_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<PendingAuthorization>> {
        let id_hash = id_hash.to_vec();
        self.pendings.run(PendingByHash { id_hash, now }).await
    }

    async fn update_pending(&self, id_hash: &[u8], request: &str) -> StoreResult<bool> {
        let update = UpdatePending {
            id_hash: id_hash.to_vec(),
            request: request.to_owned(),
        };
        self.pending_updates.run(update).await
    }

    async fn delete_pending(&self, id_hash: &[u8]) -> StoreResult<()> {
        self.writes
            .write(Write::PendingGone(id_hash.to_vec()))
            .await
    }

    async fn get_consent(&self, user_id: i64, client_id: &str) -> StoreResult<Option<String>> {
        let client_id = client_id.to_owned();
        self.consents.run(ConsentOf { user_id, client_id }).await
    }

    async fn save_consent(
        &self,
        user_id: i64,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<()> {
        sqlx::query(sql::SAVE_CONSENT)
            .bind(user_id)
            .bind(text(client_id))
            .bind(text(scope))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn create_grant_with_code(
        &self,
        grant: &GrantRecord,
        code: &CodeRecord,
    ) -> StoreResult<()> {
        self.writes
            .write(Write::GrantWithCode(grant.clone(), code.clone()))
            .await
    }

    async fn issue_code(
        &self,
        grant: &GrantRecord,
        code: &CodeRecord,
        session: &SessionRecord,
        pending_hash: &[u8],
    ) -> StoreResult<()> {
        let client = SessionClient {
            session_hash: session.id_hash.clone(),
            client_id: grant.client_id.clone(),
            user_id: session.user_id,
            expires_at: session.expires_at,
        };
        let (grant, code, pending) = (grant.clone(), code.clone(), pending_hash.to_vec());
        self.writes
            .write(Write::CodeIssued(grant, code, client, pending))
            .await
    }

    async fn create_grant(&self, grant: &GrantRecord) -> StoreResult<()> {
        self.writes.write(Write::Grant(grant.clone())).await
    }

    async fn create_grant_with_tokens(
        &self,
        grant: &GrantRecord,
        access: Option<&AccessTokenRecord>,
        refresh: Option<&RefreshTokenRecord>,
    ) -> StoreResult<()> {
        check_tokens_of(grant, access, refresh)?;
        self.writes
            .write(Write::GrantWithTokens(
                grant.clone(),
                access.cloned(),
                refresh.cloned(),
            ))
            .await
    }

    async fn get_grant(&self, id: &str) -> StoreResult<Option<GrantRecord>> {
        let row = sqlx::query(sql::GET_GRANT)
            .bind(text(id))
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::grant).transpose()
    }

    async fn redeem_code(
        &self,
        code_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<RedeemOutcome> {
        let redeem = Redeem {
            code_hash: code_hash.to_vec(),
            client_id: client_id.to_owned(),
            now,
        };
        if let Some(code) = self.redemptions.run(redeem).await? {
            return Ok(RedeemOutcome::Redeemed(code));
        }
        let client_id = text(client_id);
        let used = sqlx::query(sql::CODE_ALREADY_USED)
            .bind(code_hash)
            .bind(&client_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match used {
            Some(row) => RedeemOutcome::AlreadyUsed {
                grant_id: row.try_get("grant_id")?,
            },
            None => RedeemOutcome::NotFound,
        })
    }

    async fn revoke_grant(&self, grant_id: &str, now: i64) -> StoreResult<()> {
        sqlx::query(sql::REVOKE_GRANT)
            .bind(text(grant_id))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn store_tokens(
        &self,
        access: Option<&AccessTokenRecord>,
        refresh: Option<&RefreshTokenRecord>,
    ) -> StoreResult<()> {
        self.writes
            .write(Write::Tokens(access.cloned(), refresh.cloned()))
            .await
    }

    async fn get_access_token(&self, token_hash: &[u8]) -> StoreResult<Option<AccessTokenState>> {
        self.access_tokens
            .run(AccessTokenByHash(token_hash.to_vec()))
            .await
    }

    async fn revoke_access_token(
        &self,
        token_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<bool> {
        let done = sqlx::query(sql::REVOKE_ACCESS_TOKEN)
            .bind(token_hash)
            .bind(text(client_id))
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn get_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshTokenState>> {
        self.refresh_tokens
            .run(RefreshTokenByHash(token_hash.to_vec()))
            .await
    }

    async fn rotate_refresh_token_issuing(
        &self,
        old_hash: &[u8],
        client_id: &str,
        successor: &RefreshTokenRecord,
        access: Option<&AccessTokenRecord>,
        now: i64,
    ) -> StoreResult<RotateOutcome> {
        let client_id = text(client_id);
        let row = sqlx::query(rows::ROTATE_REFRESH_TOKEN)
            .bind(old_hash)
            .bind(now)
            .bind(&client_id)
            .bind(access.map(|a| text(&a.grant_id)))
            .bind(&successor.token_hash)
            .bind(successor.created_at)
            .bind(successor.expires_at)
            .bind(access.map(|a| &a.token_hash))
            .bind(access.map(|a| text(&a.client_id)))
            .bind(access.and_then(|a| a.user_id))
            .bind(access.map(|a| text(&a.scope)))
            .bind(access.map(|a| a.created_at))
            .bind(access.map(|a| a.expires_at))
            .fetch_optional(&self.pool)
            .await?;
        if let Some(row) = row {
            let live: Option<String> = row.try_get("id")?;
            return Ok(match live {
                Some(_) => RotateOutcome::Rotated(rows::grant(&row)?),
                // Used up, but its grant was revoked meanwhile.
                None => RotateOutcome::Invalid,
            });
        }
        let seen = sqlx::query(sql::REFRESH_TOKEN_SEEN)
            .bind(old_hash)
            .bind(&client_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(seen) = seen else {
            return Ok(RotateOutcome::Invalid);
        };
        let grant_id: String = seen.try_get("grant_id")?;
        let used_at: Option<i64> = seen.try_get("used_at")?;
        if used_at.is_some() {
            return Ok(RotateOutcome::Replayed { grant_id });
        }
        if access.is_some_and(|a| a.grant_id != grant_id) {
            // Nothing was written: the old token stays as it was.
            return Err(StoreError::Internal("access token of another grant".into()));
        }
        Ok(RotateOutcome::Invalid)
    }

    async fn delete_expired(&self, now: i64) -> StoreResult<u64> {
        let mut total = 0;
        for (sweep, memory) in &sql::DELETE_EXPIRED {
            total += self.sweep(sweep.postgres, now - memory).await?;
        }
        // Rate limit windows that have ended (PostgreSQL only: SQLite counts in memory).
        total += self.sweep(sql::SWEEP_RATE_COUNTERS.postgres, now).await?;
        Ok(total)
    }

    async fn create_upstream_login(&self, l: &UpstreamLogin) -> StoreResult<()> {
        sqlx::query(sql::INSERT_UPSTREAM_LOGIN)
            .bind(&l.state_hash)
            .bind(&l.binding_hash)
            .bind(l.created_at)
            .bind(l.expires_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn take_upstream_login(
        &self,
        state_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<UpstreamLogin>> {
        let row = sqlx::query(sql::TAKE_UPSTREAM_LOGIN)
            .bind(state_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::upstream_login).transpose()
    }

    async fn try_lock_job(&self, job: &str) -> StoreResult<Option<JobLock>> {
        self.lock_job(job).await
    }
}

impl PostgresStore {
    async fn read_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        let row = sqlx::query(sql::GET_CLIENT)
            .bind(client_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::client).transpose()
    }

    /// This node's own change, dropped at once rather than when its notification comes back.
    fn forget_client(&self, client_id: &str) {
        if let Some(cache) = &self.clients {
            cache.forget(client_cache::payload(client_id));
        }
    }
}

/// Tells every node that `client_id` changed, when (and only if) `tx` commits.
async fn announce_client_change(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    client_id: &str,
) -> StoreResult<()> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(client_cache::payload(client_id))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Whether the client exists with exactly these settings, its row locked until the
/// transaction ends.
async fn settings_still(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    client_id: &str,
    read: &ClientSettings,
) -> StoreResult<bool> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT settings FROM clients WHERE client_id = $1 FOR UPDATE")
            .bind(client_id)
            .fetch_optional(&mut **tx)
            .await?;
    Ok(stored
        .and_then(|s| serde_json::from_str::<ClientSettings>(&s).ok())
        .is_some_and(|s| &s == read))
}

/// Removes a client, revokes its grants, forgets its consents and tells the other nodes;
/// true when it existed.
async fn delete_client_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    client_id: &str,
) -> StoreResult<bool> {
    let done = sqlx::query(sql::DELETE_CLIENT)
        .bind(client_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(sql::REVOKE_CLIENT_GRANTS)
        .bind(client_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query(sql::DELETE_CLIENT_CONSENTS)
        .bind(client_id)
        .execute(&mut **tx)
        .await?;
    announce_client_change(tx, client_id).await?;
    Ok(done.rows_affected() == 1)
}
