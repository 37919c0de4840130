//! The device code grant (RFC 8628 §3.4, §3.5): the device polls until the user has answered,
//! and gets its tokens exactly once.

use serde_json::Value;

use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::oidc::{Provider, mint};
use crate::secrets::{TokenKind, new_id, token_hash};
use crate::store::flows::{DevicePoll, DeviceStatus};
use crate::store::{ClientRecord, GrantRecord};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// `grant_type=urn:ietf:params:oauth:grant-type:device_code` (RFC 8628 §3.4).
/// No `Debug`: it holds a credential.
pub struct DeviceCodeRequest {
    pub device_code: String,
}

pub async fn exchange(
    provider: &Provider,
    client: &ClientRecord,
    request: &DeviceCodeRequest,
    now_millis: i64,
) -> OAuthResult<Value> {
    let now = now_millis.div_euclid(1000);
    let device_code = request.device_code.as_str();
    if device_code.len() > 128 || !device_code.starts_with(TokenKind::DeviceCode.prefix()) {
        return Err(OAuthError::invalid_grant("the device code is invalid"));
    }
    let hash = token_hash(device_code);
    let code = match provider
        .store
        .poll_device_code(&hash, &client.client_id, now_millis)
        .await?
    {
        DevicePoll::Unknown => {
            return Err(OAuthError::invalid_grant("the device code is invalid"));
        }
        DevicePoll::Expired => {
            return Err(OAuthError::new(
                ErrorCode::ExpiredToken,
                "the device code has expired; start again",
            ));
        }
        DevicePoll::SlowDown { interval_secs } => {
            return Err(OAuthError::new(
                ErrorCode::SlowDown,
                format!("polling too fast: wait {interval_secs} seconds between requests"),
            ));
        }
        DevicePoll::Polled(code) => code,
    };
    match code.status {
        DeviceStatus::Pending => {
            return Err(OAuthError::new(
                ErrorCode::AuthorizationPending,
                "the user has not answered yet",
            ));
        }
        DeviceStatus::Denied => {
            return Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "the user denied the request",
            ));
        }
        DeviceStatus::Consumed => {
            return Err(OAuthError::invalid_grant(
                "the device code was already used",
            ));
        }
        DeviceStatus::Approved => {}
    }
    // Of parallel polls, exactly one turns the approval into tokens.
    let Some(code) = provider
        .store
        .consume_device_code(&hash, &client.client_id, now)
        .await?
    else {
        return Err(OAuthError::invalid_grant(
            "the device code was already used",
        ));
    };
    let (Some(user_id), Some(auth_time), Some(amr)) = (code.user_id, code.auth_time, code.amr)
    else {
        return Err(OAuthError::server_error(
            "an approved device code without its user",
        ));
    };
    let user = provider
        .store
        .get_user(user_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
    let grant = GrantRecord {
        id: new_id(),
        client_id: client.client_id.clone(),
        user_id: Some(user_id),
        scope: code.scope.clone(),
        auth_time,
        amr,
        nonce: None,
        created_at: now,
        revoked_at: None,
        expires_at: now + provider.config.tokens.access_token_ttl_secs,
        session_hash: None,
    };
    mint::issue_for_new_grant(provider, client, &grant, &user, now).await
}
