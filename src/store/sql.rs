//! The SQL both backends share. The statements use `$n` placeholders and only syntax that
//! SQLite (3.35+) and PostgreSQL both accept (`RETURNING`, `ON CONFLICT`), so one text serves
//! both; the macro stamps out the [`Store`](super::Store) implementation per pool type.

/// Code keeps its row this long past expiry so a late second use is still seen as reuse.
pub(crate) const CODE_REUSE_MEMORY_SECS: i64 = 3600;

macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        use async_trait::async_trait;
        use sqlx::Row;

        use $crate::store::sql::CODE_REUSE_MEMORY_SECS;
        use $crate::store::*;

        fn client_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<ClientRecord> {
            let settings: String = row.try_get("settings")?;
            let settings: ClientSettings = serde_json::from_str(&settings)
                .map_err(|e| StoreError::Internal(format!("client settings: {e}")))?;
            Ok(ClientRecord {
                client_id: row.try_get("client_id")?,
                secret_hash: row.try_get("secret_hash")?,
                settings,
                created_at: row.try_get("created_at")?,
            })
        }

        fn settings_json(client: &ClientRecord) -> StoreResult<String> {
            serde_json::to_string(&client.settings)
                .map_err(|e| StoreError::Internal(format!("client settings: {e}")))
        }

        const GRANT_COLUMNS: &str =
            "id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at";

        fn grant_from_row(row: &<$db as sqlx::Database>::Row) -> StoreResult<GrantRecord> {
            Ok(GrantRecord {
                id: row.try_get("id")?,
                client_id: row.try_get("client_id")?,
                user_id: row.try_get("user_id")?,
                scope: row.try_get("scope")?,
                auth_time: row.try_get("auth_time")?,
                amr: row.try_get("amr")?,
                nonce: row.try_get("nonce")?,
                created_at: row.try_get("created_at")?,
                revoked_at: row.try_get("revoked_at")?,
                expires_at: row.try_get("expires_at")?,
            })
        }

        #[async_trait]
        impl Store for $store {
            async fn ping(&self) -> StoreResult<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn create_client(&self, client: &ClientRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO clients (client_id, secret_hash, settings, created_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&client.client_id)
                .bind(&client.secret_hash)
                .bind(settings_json(client)?)
                .bind(client.created_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
                let row = sqlx::query(
                    "SELECT client_id, secret_hash, settings, created_at FROM clients WHERE client_id = $1",
                )
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(client_from_row).transpose()
            }

            async fn list_clients(&self) -> StoreResult<Vec<ClientRecord>> {
                let rows = sqlx::query(
                    "SELECT client_id, secret_hash, settings, created_at FROM clients ORDER BY created_at, client_id",
                )
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(client_from_row).collect()
            }

            async fn update_client(&self, client: &ClientRecord) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE clients SET secret_hash = $2, settings = $3 WHERE client_id = $1",
                )
                .bind(&client.client_id)
                .bind(&client.secret_hash)
                .bind(settings_json(client)?)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
                let mut tx = self.pool.begin().await?;
                let done = sqlx::query("DELETE FROM clients WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
                // Whatever the app was granted goes with it.
                sqlx::query("UPDATE grants SET revoked_at = created_at WHERE client_id = $1 AND revoked_at IS NULL")
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
                sqlx::query("DELETE FROM consents WHERE client_id = $1")
                    .bind(client_id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO users (telegram_id, first_name, last_name, username, photo_url, language_code, is_premium, phone_number, created_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
                     ON CONFLICT (telegram_id) DO UPDATE SET first_name = excluded.first_name, last_name = excluded.last_name, \
                     username = excluded.username, photo_url = excluded.photo_url, \
                     language_code = COALESCE(excluded.language_code, users.language_code), \
                     is_premium = excluded.is_premium, \
                     phone_number = COALESCE(excluded.phone_number, users.phone_number), \
                     updated_at = excluded.updated_at",
                )
                .bind(user.telegram_id)
                .bind(&user.first_name)
                .bind(&user.last_name)
                .bind(&user.username)
                .bind(&user.photo_url)
                .bind(&user.language_code)
                .bind(user.is_premium)
                .bind(&user.phone_number)
                .bind(user.created_at)
                .bind(user.updated_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_user(&self, telegram_id: i64) -> StoreResult<Option<UserRecord>> {
                let row = sqlx::query(
                    "SELECT telegram_id, first_name, last_name, username, photo_url, language_code, is_premium, phone_number, created_at, updated_at \
                     FROM users WHERE telegram_id = $1",
                )
                .bind(telegram_id)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(UserRecord {
                    telegram_id: row.try_get("telegram_id")?,
                    first_name: row.try_get("first_name")?,
                    last_name: row.try_get("last_name")?,
                    username: row.try_get("username")?,
                    photo_url: row.try_get("photo_url")?,
                    language_code: row.try_get("language_code")?,
                    is_premium: row.try_get("is_premium")?,
                    phone_number: row.try_get("phone_number")?,
                    created_at: row.try_get("created_at")?,
                    updated_at: row.try_get("updated_at")?,
                }))
            }

            async fn consume_proof(&self, proof_hash: &[u8], expires_at: i64) -> StoreResult<bool> {
                let done = sqlx::query(
                    "INSERT INTO used_proofs (proof_hash, expires_at) VALUES ($1, $2) ON CONFLICT (proof_hash) DO NOTHING",
                )
                .bind(proof_hash)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn create_session(&self, s: &SessionRecord) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO sessions (id_hash, user_id, auth_time, amr, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(&s.id_hash)
                .bind(s.user_id)
                .bind(s.auth_time)
                .bind(&s.amr)
                .bind(s.created_at)
                .bind(s.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_session(&self, id_hash: &[u8], now: i64) -> StoreResult<Option<SessionRecord>> {
                let row = sqlx::query(
                    "SELECT id_hash, user_id, auth_time, amr, created_at, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2",
                )
                .bind(id_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(SessionRecord {
                    id_hash: row.try_get("id_hash")?,
                    user_id: row.try_get("user_id")?,
                    auth_time: row.try_get("auth_time")?,
                    amr: row.try_get("amr")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                }))
            }

            async fn delete_session(&self, id_hash: &[u8]) -> StoreResult<()> {
                sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
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
                sqlx::query(
                    "INSERT INTO session_clients (session_hash, client_id, user_id, expires_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (session_hash, client_id) DO UPDATE SET expires_at = excluded.expires_at",
                )
                .bind(session_hash)
                .bind(client_id)
                .bind(user_id)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn take_session_clients(&self, session_hash: &[u8]) -> StoreResult<Vec<(String, i64)>> {
                let rows = sqlx::query(
                    "DELETE FROM session_clients WHERE session_hash = $1 RETURNING client_id, user_id",
                )
                .bind(session_hash)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok((r.try_get("client_id")?, r.try_get("user_id")?)))
                    .collect()
            }

            async fn create_pending(&self, p: &PendingAuthorization) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO pending_authorizations (id_hash, client_id, request, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&p.id_hash)
                .bind(&p.client_id)
                .bind(&p.request)
                .bind(p.created_at)
                .bind(p.expires_at)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn get_pending(&self, id_hash: &[u8], now: i64) -> StoreResult<Option<PendingAuthorization>> {
                let row = sqlx::query(
                    "SELECT id_hash, client_id, request, created_at, expires_at FROM pending_authorizations WHERE id_hash = $1 AND expires_at > $2",
                )
                .bind(id_hash)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                Ok(Some(PendingAuthorization {
                    id_hash: row.try_get("id_hash")?,
                    client_id: row.try_get("client_id")?,
                    request: row.try_get("request")?,
                    created_at: row.try_get("created_at")?,
                    expires_at: row.try_get("expires_at")?,
                }))
            }

            async fn update_pending(&self, id_hash: &[u8], request: &str) -> StoreResult<bool> {
                let done = sqlx::query("UPDATE pending_authorizations SET request = $2 WHERE id_hash = $1")
                    .bind(id_hash)
                    .bind(request)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_pending(&self, id_hash: &[u8]) -> StoreResult<()> {
                sqlx::query("DELETE FROM pending_authorizations WHERE id_hash = $1")
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_consent(&self, user_id: i64, client_id: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query("SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2")
                    .bind(user_id)
                    .bind(client_id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(r) => Some(r.try_get("scope")?),
                    None => None,
                })
            }

            async fn save_consent(&self, user_id: i64, client_id: &str, scope: &str, now: i64) -> StoreResult<()> {
                sqlx::query(
                    "INSERT INTO consents (user_id, client_id, scope, updated_at) VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (user_id, client_id) DO UPDATE SET scope = excluded.scope, updated_at = excluded.updated_at",
                )
                .bind(user_id)
                .bind(client_id)
                .bind(scope)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn create_grant_with_code(&self, grant: &GrantRecord, code: &CodeRecord) -> StoreResult<()> {
                let mut tx = self.pool.begin().await?;
                insert_grant(&mut *tx, grant).await?;
                sqlx::query(
                    "INSERT INTO codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&code.code_hash)
                .bind(&code.grant_id)
                .bind(&code.redirect_uri)
                .bind(&code.code_challenge)
                .bind(code.expires_at)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn create_grant(&self, grant: &GrantRecord) -> StoreResult<()> {
                let mut conn = self.pool.acquire().await?;
                insert_grant(&mut *conn, grant).await
            }

            async fn get_grant(&self, id: &str) -> StoreResult<Option<GrantRecord>> {
                let row = sqlx::query(&format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1"))
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some(grant_from_row(&row)?),
                    None => None,
                })
            }

            async fn redeem_code(&self, code_hash: &[u8], client_id: &str, now: i64) -> StoreResult<RedeemOutcome> {
                let row = sqlx::query(
                    "UPDATE codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL \
                     AND grant_id IN (SELECT id FROM grants WHERE client_id = $3 AND revoked_at IS NULL) \
                     RETURNING code_hash, grant_id, redirect_uri, code_challenge, expires_at",
                )
                .bind(code_hash)
                .bind(now)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
                if let Some(row) = row {
                    return Ok(RedeemOutcome::Redeemed(CodeRecord {
                        code_hash: row.try_get("code_hash")?,
                        grant_id: row.try_get("grant_id")?,
                        redirect_uri: row.try_get("redirect_uri")?,
                        code_challenge: row.try_get("code_challenge")?,
                        expires_at: row.try_get("expires_at")?,
                    }));
                }
                let used = sqlx::query(
                    "SELECT c.grant_id FROM codes c JOIN grants g ON g.id = c.grant_id \
                     WHERE c.code_hash = $1 AND c.used_at IS NOT NULL AND g.client_id = $2",
                )
                .bind(code_hash)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match used {
                    Some(row) => RedeemOutcome::AlreadyUsed { grant_id: row.try_get("grant_id")? },
                    None => RedeemOutcome::NotFound,
                })
            }

            async fn revoke_grant(&self, grant_id: &str, now: i64) -> StoreResult<()> {
                sqlx::query("UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
                    .bind(grant_id)
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
                let mut tx = self.pool.begin().await?;
                if let Some(a) = access {
                    sqlx::query(
                        "INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, scope, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&a.token_hash)
                    .bind(&a.grant_id)
                    .bind(&a.client_id)
                    .bind(a.user_id)
                    .bind(&a.scope)
                    .bind(a.created_at)
                    .bind(a.expires_at)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(r) = refresh {
                    sqlx::query(
                        "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                    )
                    .bind(&r.token_hash)
                    .bind(&r.grant_id)
                    .bind(r.created_at)
                    .bind(r.expires_at)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE grants SET expires_at = $2 WHERE id = $1 AND expires_at < $2")
                        .bind(&r.grant_id)
                        .bind(r.expires_at)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_access_token(&self, token_hash: &[u8]) -> StoreResult<Option<AccessTokenState>> {
                let row = sqlx::query(
                    "SELECT a.token_hash, a.grant_id, a.client_id, a.user_id, a.scope, a.created_at, a.expires_at, \
                     a.revoked_at AS token_revoked_at, g.id AS live_grant, g.revoked_at \
                     FROM access_tokens a LEFT JOIN grants g ON g.id = a.grant_id WHERE a.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let live_grant: Option<String> = row.try_get("live_grant")?;
                let revoked_at: Option<i64> = row.try_get("revoked_at")?;
                let token_revoked_at: Option<i64> = row.try_get("token_revoked_at")?;
                Ok(Some(AccessTokenState {
                    record: AccessTokenRecord {
                        token_hash: row.try_get("token_hash")?,
                        grant_id: row.try_get("grant_id")?,
                        client_id: row.try_get("client_id")?,
                        user_id: row.try_get("user_id")?,
                        scope: row.try_get("scope")?,
                        created_at: row.try_get("created_at")?,
                        expires_at: row.try_get("expires_at")?,
                    },
                    revoked: live_grant.is_none() || revoked_at.is_some() || token_revoked_at.is_some(),
                }))
            }

            async fn revoke_access_token(&self, token_hash: &[u8], client_id: &str, now: i64) -> StoreResult<bool> {
                let done = sqlx::query(
                    "UPDATE access_tokens SET revoked_at = $3 WHERE token_hash = $1 AND client_id = $2 AND revoked_at IS NULL",
                )
                .bind(token_hash)
                .bind(client_id)
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn get_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshTokenState>> {
                let row = sqlx::query(
                    "SELECT r.token_hash, r.created_at AS token_created_at, r.expires_at AS token_expires_at, r.used_at, \
                     g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.amr, g.nonce, g.created_at, g.revoked_at, g.expires_at \
                     FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                let Some(row) = row else { return Ok(None) };
                let grant = grant_from_row(&row)?;
                let used_at: Option<i64> = row.try_get("used_at")?;
                Ok(Some(RefreshTokenState {
                    record: RefreshTokenRecord {
                        token_hash: row.try_get("token_hash")?,
                        grant_id: grant.id.clone(),
                        created_at: row.try_get("token_created_at")?,
                        expires_at: row.try_get("token_expires_at")?,
                    },
                    used: used_at.is_some(),
                    grant,
                }))
            }

            async fn refresh_token_scope(&self, token_hash: &[u8], client_id: &str) -> StoreResult<Option<String>> {
                let row = sqlx::query(
                    "SELECT g.scope FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
                     WHERE r.token_hash = $1 AND g.client_id = $2",
                )
                .bind(token_hash)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(match row {
                    Some(row) => Some(row.try_get("scope")?),
                    None => None,
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
                let mut tx = self.pool.begin().await?;
                let used = sqlx::query(
                    "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                     AND grant_id IN (SELECT id FROM grants WHERE client_id = $3) RETURNING grant_id",
                )
                .bind(old_hash)
                .bind(now)
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(used) = used else {
                    let seen = sqlx::query(
                        "SELECT r.grant_id, r.used_at FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
                         WHERE r.token_hash = $1 AND g.client_id = $2",
                    )
                    .bind(old_hash)
                    .bind(client_id)
                    .fetch_optional(&mut *tx)
                    .await?;
                    tx.commit().await?;
                    return Ok(match seen {
                        Some(row) => {
                            let used_at: Option<i64> = row.try_get("used_at")?;
                            if used_at.is_some() {
                                RotateOutcome::Replayed { grant_id: row.try_get("grant_id")? }
                            } else {
                                RotateOutcome::Invalid
                            }
                        }
                        None => RotateOutcome::Invalid,
                    });
                };
                let grant_id: String = used.try_get("grant_id")?;
                let grant = sqlx::query(&format!(
                    "SELECT {GRANT_COLUMNS} FROM grants WHERE id = $1 AND revoked_at IS NULL"
                ))
                .bind(&grant_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(grant) = grant else {
                    tx.commit().await?;
                    return Ok(RotateOutcome::Invalid);
                };
                let grant = grant_from_row(&grant)?;
                if let Some(a) = access {
                    if a.grant_id != grant_id {
                        // Rolled back: the old token stays as it was.
                        return Err(StoreError::Internal("access token of another grant".into()));
                    }
                    sqlx::query(
                        "INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, scope, created_at, expires_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    )
                    .bind(&a.token_hash)
                    .bind(&a.grant_id)
                    .bind(&a.client_id)
                    .bind(a.user_id)
                    .bind(&a.scope)
                    .bind(a.created_at)
                    .bind(a.expires_at)
                    .execute(&mut *tx)
                    .await?;
                }
                sqlx::query(
                    "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
                )
                .bind(&successor.token_hash)
                .bind(&grant_id)
                .bind(successor.created_at)
                .bind(successor.expires_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE grants SET expires_at = $2 WHERE id = $1 AND expires_at < $2")
                    .bind(&grant_id)
                    .bind(successor.expires_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(RotateOutcome::Rotated(grant))
            }

            async fn create_upstream_login(&self, login: &UpstreamLogin) -> StoreResult<()> {
                insert_upstream_login(&self.pool, login).await
            }

            async fn take_upstream_login(&self, state_hash: &[u8], now: i64) -> StoreResult<Option<UpstreamLogin>> {
                use_upstream_login(&self.pool, state_hash, now).await
            }

            async fn delete_expired(&self, now: i64) -> StoreResult<u64> {
                let mut total = 0;
                for (sql, cutoff) in [
                    ("DELETE FROM used_proofs WHERE expires_at < $1", now),
                    ("DELETE FROM bot_logins WHERE expires_at < $1", now),
                    (
                        "DELETE FROM device_codes WHERE expires_at < $1",
                        now - $crate::store::sql_flows::DEVICE_CODE_MEMORY_SECS,
                    ),
                    ("DELETE FROM upstream_logins WHERE expires_at < $1", now),
                    ("DELETE FROM sessions WHERE expires_at < $1", now),
                    ("DELETE FROM session_clients WHERE expires_at < $1", now),
                    ("DELETE FROM pending_authorizations WHERE expires_at < $1", now),
                    ("DELETE FROM codes WHERE expires_at < $1", now - CODE_REUSE_MEMORY_SECS),
                    ("DELETE FROM access_tokens WHERE expires_at < $1", now),
                    ("DELETE FROM refresh_tokens WHERE expires_at < $1", now),
                    ("DELETE FROM grants WHERE expires_at < $1", now - CODE_REUSE_MEMORY_SECS),
                ] {
                    total += sqlx::query(sql).bind(cutoff).execute(&self.pool).await?.rows_affected();
                }
                Ok(total)
            }

            async fn try_lock_job(&self, job: &str) -> StoreResult<Option<JobLock>> {
                // The one place the backends differ: an advisory lock, or a lock in the process.
                self.lock_job(job).await
            }
        }

        async fn insert_upstream_login(pool: &sqlx::Pool<$db>, l: &UpstreamLogin) -> StoreResult<()> {
            sqlx::query(
                "INSERT INTO upstream_logins (state_hash, binding_hash, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(&l.state_hash)
            .bind(&l.binding_hash)
            .bind(l.created_at)
            .bind(l.expires_at)
            .execute(pool)
            .await?;
            Ok(())
        }

        async fn use_upstream_login(
            pool: &sqlx::Pool<$db>,
            state_hash: &[u8],
            now: i64,
        ) -> StoreResult<Option<UpstreamLogin>> {
            let row = sqlx::query(
                "UPDATE upstream_logins SET used_at = $2 WHERE state_hash = $1 AND used_at IS NULL AND expires_at > $2 \
                 RETURNING state_hash, binding_hash, created_at, expires_at",
            )
            .bind(state_hash)
            .bind(now)
            .fetch_optional(pool)
            .await?;
            let Some(row) = row else { return Ok(None) };
            Ok(Some(UpstreamLogin {
                state_hash: row.try_get("state_hash")?,
                binding_hash: row.try_get("binding_hash")?,
                created_at: row.try_get("created_at")?,
                expires_at: row.try_get("expires_at")?,
            }))
        }

        async fn insert_grant<'c, E>(executor: E, g: &GrantRecord) -> StoreResult<()>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            sqlx::query(
                "INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            )
            .bind(&g.id)
            .bind(&g.client_id)
            .bind(g.user_id)
            .bind(&g.scope)
            .bind(g.auth_time)
            .bind(&g.amr)
            .bind(&g.nonce)
            .bind(g.created_at)
            .bind(g.revoked_at)
            .bind(g.expires_at)
            .execute(executor)
            .await?;
            Ok(())
        }
    };
}

pub(crate) use impl_sql_store;
