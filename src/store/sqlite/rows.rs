//! Rows to records, and the inserts that several writes share.

use rusqlite::{Connection, Row, named_params};

use crate::store::flows::{
    BotLoginRecord, BotLoginStatus, CibaRequestRecord, CibaStatus, DeviceCodeRecord, DeviceStatus,
};
use crate::store::sql;
use crate::store::*;

/// A column that holds one of our own words (a status) that does not parse.
fn bad_word(column: usize, e: StoreError) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(column, rusqlite::types::Type::Text, Box::new(e))
}

pub fn client(r: &Row<'_>) -> rusqlite::Result<(String, Option<Vec<u8>>, String, i64)> {
    Ok((
        r.get("client_id")?,
        r.get("secret_hash")?,
        r.get("settings")?,
        r.get("created_at")?,
    ))
}

/// The settings column is JSON, parsed outside the row callback so its error stays ours.
pub fn client_record(
    (client_id, secret_hash, settings, created_at): (String, Option<Vec<u8>>, String, i64),
) -> StoreResult<ClientRecord> {
    let settings: ClientSettings = serde_json::from_str(&settings)
        .map_err(|e| StoreError::Internal(format!("client settings: {e}")))?;
    Ok(ClientRecord {
        client_id,
        secret_hash,
        settings,
        created_at,
    })
}

pub fn settings_json(client: &ClientRecord) -> StoreResult<String> {
    serde_json::to_string(&client.settings)
        .map_err(|e| StoreError::Internal(format!("client settings: {e}")))
}

pub fn user(r: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        telegram_id: r.get("telegram_id")?,
        first_name: r.get("first_name")?,
        last_name: r.get("last_name")?,
        username: r.get("username")?,
        photo_url: r.get("photo_url")?,
        language_code: r.get("language_code")?,
        is_premium: r.get("is_premium")?,
        phone_number: r.get("phone_number")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
        groups: crate::store::groups_from_json(r.get("group_names")?),
    })
}

pub fn session(r: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    let created_at: i64 = r.get("created_at")?;
    let last_used_at: Option<i64> = r.get("last_used_at")?;
    Ok(SessionRecord {
        id_hash: r.get("id_hash")?,
        user_id: r.get("user_id")?,
        auth_time: r.get("auth_time")?,
        amr: r.get("amr")?,
        created_at,
        expires_at: r.get("expires_at")?,
        device: r.get("device")?,
        place: r.get("place")?,
        last_used_at: last_used_at.unwrap_or(created_at),
    })
}

pub fn pending(r: &Row<'_>) -> rusqlite::Result<PendingAuthorization> {
    Ok(PendingAuthorization {
        id_hash: r.get("id_hash")?,
        client_id: r.get("client_id")?,
        request: r.get("request")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
    })
}

pub fn grant(r: &Row<'_>) -> rusqlite::Result<GrantRecord> {
    Ok(GrantRecord {
        id: r.get("id")?,
        client_id: r.get("client_id")?,
        user_id: r.get("user_id")?,
        scope: r.get("scope")?,
        auth_time: r.get("auth_time")?,
        amr: r.get("amr")?,
        nonce: r.get("nonce")?,
        created_at: r.get("created_at")?,
        revoked_at: r.get("revoked_at")?,
        expires_at: r.get("expires_at")?,
        session_hash: r.get("session_hash")?,
    })
}

pub fn code(r: &Row<'_>) -> rusqlite::Result<CodeRecord> {
    Ok(CodeRecord {
        code_hash: r.get("code_hash")?,
        grant_id: r.get("grant_id")?,
        redirect_uri: r.get("redirect_uri")?,
        code_challenge: r.get("code_challenge")?,
        expires_at: r.get("expires_at")?,
    })
}

pub fn access_token(r: &Row<'_>) -> rusqlite::Result<AccessTokenState> {
    let live_grant: Option<String> = r.get("live_grant")?;
    let revoked_at: Option<i64> = r.get("revoked_at")?;
    let token_revoked_at: Option<i64> = r.get("token_revoked_at")?;
    Ok(AccessTokenState {
        record: AccessTokenRecord {
            token_hash: r.get("token_hash")?,
            grant_id: r.get("grant_id")?,
            client_id: r.get("client_id")?,
            user_id: r.get("user_id")?,
            scope: r.get("scope")?,
            created_at: r.get("created_at")?,
            expires_at: r.get("expires_at")?,
        },
        revoked: live_grant.is_none() || revoked_at.is_some() || token_revoked_at.is_some(),
    })
}

pub fn refresh_token(r: &Row<'_>) -> rusqlite::Result<RefreshTokenState> {
    let grant = grant(r)?;
    let used_at: Option<i64> = r.get("used_at")?;
    Ok(RefreshTokenState {
        record: RefreshTokenRecord {
            token_hash: r.get("token_hash")?,
            grant_id: grant.id.clone(),
            created_at: r.get("token_created_at")?,
            expires_at: r.get("token_expires_at")?,
        },
        used: used_at.is_some(),
        grant,
    })
}

pub fn upstream_login(r: &Row<'_>) -> rusqlite::Result<UpstreamLogin> {
    Ok(UpstreamLogin {
        state_hash: r.get("state_hash")?,
        binding_hash: r.get("binding_hash")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
    })
}

pub fn bot_login(r: &Row<'_>) -> rusqlite::Result<BotLoginRecord> {
    let status: String = r.get("status")?;
    Ok(BotLoginRecord {
        id: r.get("id")?,
        payload_hash: r.get("payload_hash")?,
        client_id: r.get("client_id")?,
        pending_hash: r.get("pending_hash")?,
        browser_hash: r.get("browser_hash")?,
        device_hash: r.get("device_hash")?,
        ciba_hash: r.get("ciba_hash")?,
        status: BotLoginStatus::parse(&status).map_err(|e| bad_word(6, e))?,
        telegram_id: r.get("telegram_id")?,
        identity: r.get("identity")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        match_code: r.get("match_code")?,
        requester: r.get("requester")?,
        answer: r.get("answer")?,
    })
}

pub fn device_code(r: &Row<'_>) -> rusqlite::Result<DeviceCodeRecord> {
    let status: String = r.get("status")?;
    Ok(DeviceCodeRecord {
        device_code_hash: r.get("device_code_hash")?,
        user_code_hash: r.get("user_code_hash")?,
        client_id: r.get("client_id")?,
        scope: r.get("scope")?,
        status: DeviceStatus::parse(&status).map_err(|e| bad_word(4, e))?,
        user_id: r.get("user_id")?,
        auth_time: r.get("auth_time")?,
        amr: r.get("amr")?,
        interval_secs: r.get("interval_secs")?,
        last_polled_at: r.get("last_polled_at")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
    })
}

pub fn ciba_request(r: &Row<'_>) -> rusqlite::Result<CibaRequestRecord> {
    let status: String = r.get("status")?;
    Ok(CibaRequestRecord {
        request_hash: r.get("request_hash")?,
        client_id: r.get("client_id")?,
        user_id: r.get("user_id")?,
        scope: r.get("scope")?,
        binding_message: r.get("binding_message")?,
        status: CibaStatus::parse(&status).map_err(|e| bad_word(5, e))?,
        approved_user_id: r.get("approved_user_id")?,
        auth_time: r.get("auth_time")?,
        amr: r.get("amr")?,
        interval_secs: r.get("interval_secs")?,
        last_polled_at: r.get("last_polled_at")?,
        notification_token: r.get("notification_token")?,
        id_seed: r.get("id_seed")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
    })
}

pub fn insert_grant(c: &Connection, g: &GrantRecord) -> StoreResult<()> {
    c.prepare_cached(sql::INSERT_GRANT)?
        .execute(named_params! {
            "$1": g.id, "$2": g.client_id, "$3": g.user_id, "$4": g.scope, "$5": g.auth_time,
            "$6": g.amr, "$7": g.nonce, "$8": g.created_at, "$9": g.revoked_at, "$10": g.expires_at,
            "$11": g.session_hash,
        })?;
    Ok(())
}

pub fn insert_access_token(c: &Connection, a: &AccessTokenRecord) -> StoreResult<()> {
    c.prepare_cached(sql::INSERT_ACCESS_TOKEN)?
        .execute(named_params! {
            "$1": a.token_hash, "$2": a.grant_id, "$3": a.client_id, "$4": a.user_id,
            "$5": a.scope, "$6": a.created_at, "$7": a.expires_at,
        })?;
    Ok(())
}

/// The refresh token, and its grant kept alive as long as the token.
pub fn insert_refresh_token(
    c: &Connection,
    r: &RefreshTokenRecord,
    grant_id: &str,
) -> StoreResult<()> {
    c.prepare_cached(sql::INSERT_REFRESH_TOKEN)?
        .execute(named_params! {
            "$1": r.token_hash, "$2": grant_id, "$3": r.created_at, "$4": r.expires_at,
        })?;
    c.prepare_cached(sql::EXTEND_GRANT)?
        .execute(named_params! {"$1": grant_id, "$2": r.expires_at})?;
    Ok(())
}

/// A grant's tokens, each one given (the refresh token extends its grant).
pub fn insert_tokens(
    c: &Connection,
    access: Option<&AccessTokenRecord>,
    refresh: Option<&RefreshTokenRecord>,
) -> StoreResult<()> {
    if let Some(a) = access {
        insert_access_token(c, a)?;
    }
    if let Some(r) = refresh {
        insert_refresh_token(c, r, &r.grant_id)?;
    }
    Ok(())
}
