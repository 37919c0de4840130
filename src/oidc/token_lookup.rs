//! Finding what a presented token is, for revocation (RFC 7009) and introspection (RFC 7662).

use serde_json::Value;

use crate::error::OAuthResult;
use crate::oidc::Provider;
use crate::oidc::mint::ACCESS_TOKEN_ALG;
use crate::secrets::{TokenKind, sha256, token_hash};
use crate::store::{AccessTokenState, RefreshTokenState};

pub enum Found {
    Access(AccessTokenState),
    Refresh(RefreshTokenState),
    Unknown,
}

/// A JWT access token is ours only if our key signed it as `at+jwt`; its row is found by
/// `jti`. Opaque values are found by their digest. Expiry is the caller's business.
pub async fn find(provider: &Provider, token: &str, now: i64) -> OAuthResult<Found> {
    if token.is_empty() || token.len() > 4096 {
        return Ok(Found::Unknown);
    }
    if token.starts_with(TokenKind::RefreshToken.prefix()) {
        return Ok(
            match provider.store.get_refresh_token(&token_hash(token)).await? {
                Some(state) => Found::Refresh(state),
                None => Found::Unknown,
            },
        );
    }
    let key = if token.matches('.').count() == 2 {
        let Ok((header, claims)) = provider.verify_jwt(token, now) else {
            return Ok(Found::Unknown);
        };
        if header.get("typ").and_then(Value::as_str) != Some("at+jwt")
            || header.get("alg").and_then(Value::as_str) != Some(ACCESS_TOKEN_ALG.as_str())
            || claims.get("iss").and_then(Value::as_str) != Some(provider.config.issuer.as_str())
        {
            return Ok(Found::Unknown);
        }
        match claims.get("jti").and_then(Value::as_str) {
            Some(jti) => sha256(jti.as_bytes()),
            None => return Ok(Found::Unknown),
        }
    } else if token.starts_with(TokenKind::AccessToken.prefix()) {
        token_hash(token)
    } else {
        return Ok(Found::Unknown);
    };
    Ok(match provider.store.get_access_token(&key).await? {
        Some(state) => Found::Access(state),
        None => Found::Unknown,
    })
}
