//! Rows to records, and a refresh token's rotation as one statement (new grants, codes and
//! tokens are inserted many at a time by `batch.rs`).

use sqlx::Row;
use sqlx::postgres::PgRow;

use crate::store::flows::{
    BotLoginRecord, BotLoginStatus, CibaRequestRecord, CibaStatus, DeviceCodeRecord, DeviceStatus,
};
use crate::store::*;

pub fn client(row: &PgRow) -> StoreResult<ClientRecord> {
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

pub fn settings_json(client: &ClientRecord) -> StoreResult<String> {
    serde_json::to_string(&client.settings)
        .map_err(|e| StoreError::Internal(format!("client settings: {e}")))
}

pub fn user(row: &PgRow) -> StoreResult<UserRecord> {
    Ok(UserRecord {
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
        groups: crate::store::groups_from_json(row.try_get("group_names")?),
    })
}

pub fn session(row: &PgRow) -> StoreResult<SessionRecord> {
    let created_at: i64 = row.try_get("created_at")?;
    let last_used_at: Option<i64> = row.try_get("last_used_at")?;
    Ok(SessionRecord {
        id_hash: row.try_get("id_hash")?,
        user_id: row.try_get("user_id")?,
        auth_time: row.try_get("auth_time")?,
        amr: row.try_get("amr")?,
        created_at,
        expires_at: row.try_get("expires_at")?,
        device: row.try_get("device")?,
        place: row.try_get("place")?,
        last_used_at: last_used_at.unwrap_or(created_at),
    })
}

pub fn pending(row: &PgRow) -> StoreResult<PendingAuthorization> {
    Ok(PendingAuthorization {
        id_hash: row.try_get("id_hash")?,
        client_id: row.try_get("client_id")?,
        request: row.try_get("request")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

pub fn grant(row: &PgRow) -> StoreResult<GrantRecord> {
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
        session_hash: row.try_get("session_hash")?,
    })
}

pub fn code(row: &PgRow) -> StoreResult<CodeRecord> {
    Ok(CodeRecord {
        code_hash: row.try_get("code_hash")?,
        grant_id: row.try_get("grant_id")?,
        redirect_uri: row.try_get("redirect_uri")?,
        code_challenge: row.try_get("code_challenge")?,
        expires_at: row.try_get("expires_at")?,
    })
}

pub fn access_token(row: &PgRow) -> StoreResult<AccessTokenState> {
    let live_grant: Option<String> = row.try_get("live_grant")?;
    let revoked_at: Option<i64> = row.try_get("revoked_at")?;
    let token_revoked_at: Option<i64> = row.try_get("token_revoked_at")?;
    Ok(AccessTokenState {
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
    })
}

pub fn refresh_token(row: &PgRow) -> StoreResult<RefreshTokenState> {
    let grant = grant(row)?;
    let used_at: Option<i64> = row.try_get("used_at")?;
    Ok(RefreshTokenState {
        record: RefreshTokenRecord {
            token_hash: row.try_get("token_hash")?,
            grant_id: grant.id.clone(),
            created_at: row.try_get("token_created_at")?,
            expires_at: row.try_get("token_expires_at")?,
        },
        used: used_at.is_some(),
        grant,
    })
}

pub fn upstream_login(row: &PgRow) -> StoreResult<UpstreamLogin> {
    Ok(UpstreamLogin {
        state_hash: row.try_get("state_hash")?,
        binding_hash: row.try_get("binding_hash")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

pub fn bot_login(row: &PgRow) -> StoreResult<BotLoginRecord> {
    let status: String = row.try_get("status")?;
    Ok(BotLoginRecord {
        id: row.try_get("id")?,
        payload_hash: row.try_get("payload_hash")?,
        client_id: row.try_get("client_id")?,
        pending_hash: row.try_get("pending_hash")?,
        browser_hash: row.try_get("browser_hash")?,
        device_hash: row.try_get("device_hash")?,
        ciba_hash: row.try_get("ciba_hash")?,
        status: BotLoginStatus::parse(&status)?,
        telegram_id: row.try_get("telegram_id")?,
        identity: row.try_get("identity")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
        match_code: row.try_get("match_code")?,
        requester: row.try_get("requester")?,
        answer: row.try_get("answer")?,
    })
}

pub fn device_code(row: &PgRow) -> StoreResult<DeviceCodeRecord> {
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

pub fn ciba_request(row: &PgRow) -> StoreResult<CibaRequestRecord> {
    let status: String = row.try_get("status")?;
    Ok(CibaRequestRecord {
        request_hash: row.try_get("request_hash")?,
        client_id: row.try_get("client_id")?,
        user_id: row.try_get("user_id")?,
        scope: row.try_get("scope")?,
        binding_message: row.try_get("binding_message")?,
        status: CibaStatus::parse(&status)?,
        approved_user_id: row.try_get("approved_user_id")?,
        auth_time: row.try_get("auth_time")?,
        amr: row.try_get("amr")?,
        interval_secs: row.try_get("interval_secs")?,
        last_polled_at: row.try_get("last_polled_at")?,
        notification_token: row.try_get("notification_token")?,
        id_seed: row.try_get("id_seed")?,
        created_at: row.try_get("created_at")?,
        expires_at: row.try_get("expires_at")?,
    })
}

/// A refresh token's rotation in one statement (one round trip, one commit): the old token used
/// up (`sql::USE_REFRESH_TOKEN`, and only if it belongs to the access token's grant when one is
/// issued, `$4`), its grant read if it is live, the successor (`$5`-`$7`) and the access token
/// (`$8`-`$13`, none when `$8` is NULL) inserted on that grant, and the grant kept alive as long
/// as the successor. Its one row names the used token's grant (`used_grant`) and, if that grant
/// is live, its columns; no row: the token was not used up (the caller asks why).
pub const ROTATE_REFRESH_TOKEN: &str = "WITH used AS ( \
       UPDATE refresh_tokens SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 \
       AND ($4::text IS NULL OR grant_id = $4) \
       AND EXISTS (SELECT 1 FROM grants g WHERE g.id = refresh_tokens.grant_id AND g.client_id = $3) \
       RETURNING grant_id), \
     live AS (SELECT g.id, g.client_id, g.user_id, g.scope, g.auth_time, g.amr, g.nonce, g.created_at, \
       g.revoked_at, g.expires_at, g.session_hash FROM grants g JOIN used ON g.id = used.grant_id \
       WHERE g.revoked_at IS NULL), \
     successor AS (INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
       SELECT $5, id, $6, $7 FROM live), \
     access AS (INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, scope, created_at, expires_at) \
       SELECT $8, id, $9, $10, $11, $12, $13 FROM live WHERE $8::bytea IS NOT NULL), \
     extended AS (UPDATE grants SET expires_at = $7 FROM live \
       WHERE grants.id = live.id AND grants.expires_at < $7) \
     SELECT used.grant_id AS used_grant, live.* FROM used LEFT JOIN live ON true";
