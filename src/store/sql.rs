//! The SQL both backends share. The statements use `$n` placeholders and only syntax that
//! SQLite (3.35+) and PostgreSQL both accept (`RETURNING`, `ON CONFLICT`), so one text serves
//! both; the macro stamps out the [`Store`](super::Store) implementation per pool type.

/// Code keeps its row this long past expiry so a late second use is still seen as reuse.
pub(crate) const CODE_REUSE_MEMORY_SECS: i64 = 3600;

/// The statements of every login and token request, shared by the sqlx implementation (both
/// databases) and the direct SQLite one (`sqlite_direct.rs`, where `$n` are named parameters).
pub(crate) mod q {
    pub const GET_CLIENT: &str =
        "SELECT client_id, secret_hash, settings, created_at FROM clients WHERE client_id = $1";
    pub const GET_USER: &str = "SELECT telegram_id, first_name, last_name, username, photo_url, language_code, is_premium, phone_number, created_at, updated_at \
         FROM users WHERE telegram_id = $1";
    pub const UPSERT_USER: &str = "INSERT INTO users (telegram_id, first_name, last_name, username, photo_url, language_code, is_premium, phone_number, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
         ON CONFLICT (telegram_id) DO UPDATE SET first_name = excluded.first_name, last_name = excluded.last_name, \
         username = excluded.username, photo_url = excluded.photo_url, \
         language_code = COALESCE(excluded.language_code, users.language_code), \
         is_premium = excluded.is_premium, \
         phone_number = COALESCE(excluded.phone_number, users.phone_number), \
         updated_at = excluded.updated_at";
    pub const CONSUME_PROOF: &str = "INSERT INTO used_proofs (proof_hash, expires_at) VALUES ($1, $2) ON CONFLICT (proof_hash) DO NOTHING";
    pub const CREATE_SESSION: &str = "INSERT INTO sessions (id_hash, user_id, auth_time, amr, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)";
    pub const GET_SESSION: &str = "SELECT id_hash, user_id, auth_time, amr, created_at, expires_at FROM sessions WHERE id_hash = $1 AND expires_at > $2";
    pub const RECORD_SESSION_CLIENT: &str = "INSERT INTO session_clients (session_hash, client_id, user_id, expires_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (session_hash, client_id) DO UPDATE SET expires_at = excluded.expires_at";
    pub const CREATE_PENDING: &str = "INSERT INTO pending_authorizations (id_hash, client_id, request, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)";
    pub const GET_PENDING: &str = "SELECT id_hash, client_id, request, created_at, expires_at FROM pending_authorizations WHERE id_hash = $1 AND expires_at > $2";
    pub const UPDATE_PENDING: &str =
        "UPDATE pending_authorizations SET request = $2 WHERE id_hash = $1";
    pub const DELETE_PENDING: &str = "DELETE FROM pending_authorizations WHERE id_hash = $1";
    pub const GET_CONSENT: &str =
        "SELECT scope FROM consents WHERE user_id = $1 AND client_id = $2";
    pub const INSERT_GRANT: &str = "INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";
    pub const GET_GRANT: &str = "SELECT id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at FROM grants WHERE id = $1";
    pub const GET_LIVE_GRANT: &str = "SELECT id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at FROM grants \
         WHERE id = $1 AND revoked_at IS NULL";
    pub const EXTEND_GRANT: &str =
        "UPDATE grants SET expires_at = $2 WHERE id = $1 AND expires_at < $2";
    pub const REVOKE_GRANT: &str =
        "UPDATE grants SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL";
    pub const INSERT_CODE: &str = "INSERT INTO codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at) VALUES ($1, $2, $3, $4, $5)";
    /// Single use: only the first update finds `used_at` empty.
    pub const REDEEM_CODE: &str = "UPDATE codes SET used_at = $2 WHERE code_hash = $1 AND used_at IS NULL \
         AND EXISTS (SELECT 1 FROM grants g WHERE g.id = codes.grant_id AND g.client_id = $3 AND g.revoked_at IS NULL) \
         RETURNING code_hash, grant_id, redirect_uri, code_challenge, expires_at";
    pub const CODE_ALREADY_USED: &str = "SELECT c.grant_id FROM codes c JOIN grants g ON g.id = c.grant_id \
         WHERE c.code_hash = $1 AND c.used_at IS NOT NULL AND g.client_id = $2";
    pub const INSERT_ACCESS_TOKEN: &str = "INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, scope, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)";
    pub const GET_ACCESS_TOKEN: &str = "SELECT a.token_hash, a.grant_id, a.client_id, a.user_id, a.scope, a.created_at, a.expires_at, \
         a.revoked_at AS token_revoked_at, g.id AS live_grant, g.revoked_at \
         FROM access_tokens a LEFT JOIN grants g ON g.id = a.grant_id WHERE a.token_hash = $1";
    pub const INSERT_REFRESH_TOKEN: &str = "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) VALUES ($1, $2, $3, $4)";
    pub const GET_REFRESH_TOKEN: &str = "SELECT r.token_hash, r.created_at AS token_created_at, r.expires_at AS token_expires_at, r.used_at, \
         g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.amr, g.nonce, g.created_at, g.revoked_at, g.expires_at \
         FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id WHERE r.token_hash = $1";
    pub const REFRESH_TOKEN_SCOPE: &str = "SELECT g.scope FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
         WHERE r.token_hash = $1 AND g.client_id = $2";
    /// Single use: only the first update finds `used_at` empty.
    pub const USE_REFRESH_TOKEN: &str = "UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
         AND EXISTS (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id AND g.client_id = $3) RETURNING grant_id";
    pub const REFRESH_TOKEN_SEEN: &str = "SELECT r.grant_id, r.used_at FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id \
         WHERE r.token_hash = $1 AND g.client_id = $2";
}

macro_rules! impl_sql_store {
    ($store:ty, $db:ty) => {
        use async_trait::async_trait;
        use sqlx::Row;

        use $crate::store::sql::{CODE_REUSE_MEMORY_SECS, q};
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
                if let Some(direct) = self.direct() {
                    return direct.get_client(client_id);
                }
                let row = sqlx::query(q::GET_CLIENT)
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
                if let Some(direct) = self.direct() {
                    return direct.upsert_user(user).await;
                }
                sqlx::query(q::UPSERT_USER)
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
                if let Some(direct) = self.direct() {
                    return direct.get_user(telegram_id);
                }
                let row = sqlx::query(q::GET_USER)
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
                if let Some(direct) = self.direct() {
                    return direct.consume_proof(proof_hash, expires_at).await;
                }
                let done = sqlx::query(q::CONSUME_PROOF)
                .bind(proof_hash)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn create_session(&self, s: &SessionRecord) -> StoreResult<()> {
                if let Some(direct) = self.direct() {
                    return direct.create_session(s).await;
                }
                sqlx::query(q::CREATE_SESSION)
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
                if let Some(direct) = self.direct() {
                    return direct.get_session(id_hash, now);
                }
                let row = sqlx::query(q::GET_SESSION)
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
                if let Some(direct) = self.direct() {
                    return direct.record_session_client(session_hash, client_id, user_id, expires_at).await;
                }
                sqlx::query(q::RECORD_SESSION_CLIENT)
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
                if let Some(direct) = self.direct() {
                    return direct.create_pending(p).await;
                }
                sqlx::query(q::CREATE_PENDING)
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
                if let Some(direct) = self.direct() {
                    return direct.get_pending(id_hash, now);
                }
                let row = sqlx::query(q::GET_PENDING)
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
                if let Some(direct) = self.direct() {
                    return direct.update_pending(id_hash, request).await;
                }
                let done = sqlx::query(q::UPDATE_PENDING)
                    .bind(id_hash)
                    .bind(request)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_pending(&self, id_hash: &[u8]) -> StoreResult<()> {
                if let Some(direct) = self.direct() {
                    return direct.delete_pending(id_hash).await;
                }
                sqlx::query(q::DELETE_PENDING)
                    .bind(id_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn get_consent(&self, user_id: i64, client_id: &str) -> StoreResult<Option<String>> {
                if let Some(direct) = self.direct() {
                    return direct.get_consent(user_id, client_id);
                }
                let row = sqlx::query(q::GET_CONSENT)
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
                if let Some(direct) = self.direct() {
                    return direct.create_grant_with_code(grant, code).await;
                }
                let mut tx = self.pool.begin().await?;
                insert_grant(&mut *tx, grant).await?;
                sqlx::query(q::INSERT_CODE)
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
                if let Some(direct) = self.direct() {
                    return direct.create_grant(grant).await;
                }
                let mut conn = self.pool.acquire().await?;
                insert_grant(&mut *conn, grant).await
            }

            async fn get_grant(&self, id: &str) -> StoreResult<Option<GrantRecord>> {
                if let Some(direct) = self.direct() {
                    return direct.get_grant(id);
                }
                let row = sqlx::query(q::GET_GRANT)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?;
                Ok(match row {
                    Some(row) => Some(grant_from_row(&row)?),
                    None => None,
                })
            }

            async fn redeem_code(&self, code_hash: &[u8], client_id: &str, now: i64) -> StoreResult<RedeemOutcome> {
                if let Some(direct) = self.direct() {
                    return direct.redeem_code(code_hash, client_id, now).await;
                }
                let row = sqlx::query(q::REDEEM_CODE)
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
                let used = sqlx::query(q::CODE_ALREADY_USED)
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
                if let Some(direct) = self.direct() {
                    return direct.revoke_grant(grant_id, now).await;
                }
                sqlx::query(q::REVOKE_GRANT)
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
                if let Some(direct) = self.direct() {
                    return direct.store_tokens(access, refresh).await;
                }
                let Some(r) = refresh else {
                    // One row needs no transaction: a single INSERT is atomic by itself, and
                    // BEGIN and COMMIT would cost two more round trips to the database.
                    if let Some(a) = access {
                        insert_access_token(&self.pool, a).await?;
                    }
                    return Ok(());
                };
                let mut tx = self.pool.begin().await?;
                if let Some(a) = access {
                    insert_access_token(&mut *tx, a).await?;
                }
                sqlx::query(q::INSERT_REFRESH_TOKEN)
                .bind(&r.token_hash)
                .bind(&r.grant_id)
                .bind(r.created_at)
                .bind(r.expires_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(q::EXTEND_GRANT)
                    .bind(&r.grant_id)
                    .bind(r.expires_at)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            }

            async fn get_access_token(&self, token_hash: &[u8]) -> StoreResult<Option<AccessTokenState>> {
                if let Some(direct) = self.direct() {
                    return direct.get_access_token(token_hash);
                }
                let row = sqlx::query(q::GET_ACCESS_TOKEN)
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
                if let Some(direct) = self.direct() {
                    return direct.get_refresh_token(token_hash);
                }
                let row = sqlx::query(q::GET_REFRESH_TOKEN)
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
                if let Some(direct) = self.direct() {
                    return direct.refresh_token_scope(token_hash, client_id);
                }
                let row = sqlx::query(q::REFRESH_TOKEN_SCOPE)
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
                if let Some(direct) = self.direct() {
                    return direct.rotate_refresh_token_issuing(old_hash, client_id, successor, access, now).await;
                }
                let mut tx = self.pool.begin().await?;
                let used = sqlx::query(q::USE_REFRESH_TOKEN)
                .bind(old_hash)
                .bind(now)
                .bind(client_id)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(used) = used else {
                    let seen = sqlx::query(q::REFRESH_TOKEN_SEEN)
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
                let grant = sqlx::query(q::GET_LIVE_GRANT)
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
                    insert_access_token(&mut *tx, a).await?;
                }
                sqlx::query(q::INSERT_REFRESH_TOKEN)
                .bind(&successor.token_hash)
                .bind(&grant_id)
                .bind(successor.created_at)
                .bind(successor.expires_at)
                .execute(&mut *tx)
                .await?;
                sqlx::query(q::EXTEND_GRANT)
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

        async fn insert_access_token<'c, E>(executor: E, a: &AccessTokenRecord) -> StoreResult<()>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            sqlx::query(q::INSERT_ACCESS_TOKEN)
            .bind(&a.token_hash)
            .bind(&a.grant_id)
            .bind(&a.client_id)
            .bind(a.user_id)
            .bind(&a.scope)
            .bind(a.created_at)
            .bind(a.expires_at)
            .execute(executor)
            .await?;
            Ok(())
        }

        async fn insert_grant<'c, E>(executor: E, g: &GrantRecord) -> StoreResult<()>
        where
            E: sqlx::Executor<'c, Database = $db>,
        {
            sqlx::query(q::INSERT_GRANT)
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
