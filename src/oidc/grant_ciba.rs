//! The CIBA grant (CIBA Core 1.0 §10.1, §11): the client polls with its `auth_req_id` (in
//! ping mode, once told) until the user has answered in the bot chat, and gets its tokens
//! exactly once.

use serde_json::Value;

use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::oidc::{Provider, ciba, mint};
use crate::secrets::{TokenKind, new_id, token_hash};
use crate::store::flows::{CibaPoll, CibaStatus};
use crate::store::{ClientRecord, GrantRecord};

pub const GRANT_TYPE: &str = "urn:openid:params:grant-type:ciba";

/// `grant_type=urn:openid:params:grant-type:ciba` (§10.1). No `Debug`: it holds a credential.
pub struct CibaRequest {
    pub auth_req_id: String,
}

pub async fn exchange(
    provider: &Provider,
    client: &ClientRecord,
    request: &CibaRequest,
    now_millis: i64,
) -> OAuthResult<Value> {
    if client.settings.ciba.is_none() {
        return Err(ciba::unauthorized());
    }
    let now = now_millis.div_euclid(1000);
    let id = request.auth_req_id.as_str();
    let invalid = || OAuthError::invalid_grant("the auth_req_id is invalid");
    if id.len() > 128 || !id.starts_with(TokenKind::BackchannelRequest.prefix()) {
        return Err(invalid());
    }
    let hash = token_hash(id);
    // Another client's request is unknown to this one.
    let found = match provider
        .store
        .poll_ciba_request(&hash, &client.client_id, now_millis)
        .await?
    {
        CibaPoll::Unknown => return Err(invalid()),
        CibaPoll::Expired => {
            return Err(OAuthError::new(
                ErrorCode::ExpiredToken,
                "the authentication request has expired; start again",
            ));
        }
        CibaPoll::SlowDown { interval_secs } => {
            return Err(OAuthError::new(
                ErrorCode::SlowDown,
                format!("polling too fast: wait {interval_secs} seconds between requests"),
            ));
        }
        CibaPoll::Polled(found) => found,
    };
    match found.status {
        CibaStatus::Pending => {
            return Err(OAuthError::new(
                ErrorCode::AuthorizationPending,
                "the user has not answered yet",
            ));
        }
        CibaStatus::Denied => {
            return Err(OAuthError::new(
                ErrorCode::AccessDenied,
                "the user denied the request",
            ));
        }
        CibaStatus::Consumed => {
            return Err(OAuthError::invalid_grant(
                "the auth_req_id was already used",
            ));
        }
        CibaStatus::Approved => {}
    }
    // Of parallel polls, exactly one turns the approval into tokens.
    let Some(found) = provider
        .store
        .consume_ciba_request(&hash, &client.client_id, now)
        .await?
    else {
        return Err(OAuthError::invalid_grant(
            "the auth_req_id was already used",
        ));
    };
    let (Some(user_id), Some(auth_time), Some(amr)) =
        (found.approved_user_id, found.auth_time, found.amr)
    else {
        return Err(OAuthError::server_error(
            "an approved CIBA request without its user",
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
        scope: found.scope.clone(),
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
