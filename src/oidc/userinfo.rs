//! The UserInfo endpoint (OpenID Connect Core §5.3) and the access-token check it shares with
//! other protected resources (RFC 6750). The web layer finds the bearer token in the request.

use serde_json::Value;

use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::oidc::mint::ACCESS_TOKEN_ALG;
use crate::oidc::{Provider, scopes, subject};
use crate::secrets::{sha256, token_hash};
use crate::store::AccessTokenRecord;

/// Finds a live access token: a JWT must carry our signature, `typ: at+jwt`, our issuer and a
/// future `exp`, and its `jti` must be on record and its grant not revoked.
pub async fn check_access_token(
    provider: &Provider,
    token: &str,
    now: i64,
) -> OAuthResult<AccessTokenRecord> {
    let invalid = || OAuthError::invalid_token("the access token is invalid, expired or revoked");
    if token.len() > 4096 {
        return Err(invalid());
    }
    let key = if token.matches('.').count() == 2 {
        let (header, claims) = provider.verify_jwt(token, now).map_err(|_| invalid())?;
        if header.get("typ").and_then(Value::as_str) != Some("at+jwt")
            || header.get("alg").and_then(Value::as_str) != Some(ACCESS_TOKEN_ALG.as_str())
            || claims.get("iss").and_then(Value::as_str) != Some(provider.config.issuer.as_str())
            || claims
                .get("exp")
                .and_then(Value::as_i64)
                .is_none_or(|exp| exp <= now)
        {
            return Err(invalid());
        }
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        sha256(jti.as_bytes())
    } else {
        token_hash(token)
    };
    let state = provider
        .store
        .get_access_token(&key)
        .await?
        .ok_or_else(invalid)?;
    if state.revoked || state.record.expires_at <= now {
        return Err(invalid());
    }
    Ok(state.record)
}

/// The claims about the token's user that its scope releases to its client (Core §5.3.2).
pub async fn claims(provider: &Provider, access_token: &str, now: i64) -> OAuthResult<Value> {
    let record = check_access_token(provider, access_token, now).await?;
    if !scopes::contains(&record.scope, scopes::OPENID) {
        return Err(OAuthError::new(
            ErrorCode::InsufficientScope,
            "the access token was not issued for the openid scope",
        )
        .bearer());
    }
    let user_id = record
        .user_id
        .ok_or_else(|| OAuthError::invalid_token("this token does not belong to a user"))?;
    let user = provider
        .store
        .get_user(user_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_token("the user no longer exists"))?;
    let client = provider
        .store
        .get_client(&record.client_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_token("the app of this token no longer exists"))?;
    Ok(Value::Object(subject::claims_for(
        provider,
        &client,
        &record.scope,
        &user,
    )))
}
