//! The refresh token grant (RFC 6749 §6) with rotation: every use returns a successor, and a
//! used token presented again revokes its whole family (RFC 9700 §4.14.2).

use async_trait::async_trait;
use serde_json::Value;

use crate::error::{OAuthError, OAuthResult};
use crate::oidc::{Provider, mint, scopes};
use crate::secrets::token_hash;
use crate::store::{ClientRecord, RotateOutcome, UserRecord};

/// What the layer above checks before a refresh token is used: may this user still have
/// tokens for this app? It returns the record to mint from (with anything it brought up to
/// date), or the error to answer with; the refresh token is then left as it was.
#[async_trait]
pub trait RefreshCheck: Send + Sync {
    async fn recheck(&self, client: &ClientRecord, user: UserRecord) -> OAuthResult<UserRecord>;
}

/// `grant_type=refresh_token` (RFC 6749 §6).
/// No `Debug`: it holds a credential.
pub struct RefreshRequest {
    pub refresh_token: String,
    /// A narrower scope than the grant's, or `None` for the grant's own.
    pub scope: Option<String>,
}

pub async fn exchange(
    provider: &Provider,
    client: &ClientRecord,
    request: &RefreshRequest,
    check: &dyn RefreshCheck,
    now: i64,
) -> OAuthResult<Value> {
    let presented = request.refresh_token.as_str();
    if presented.len() > 256 {
        return Err(OAuthError::invalid_grant("the refresh token is invalid"));
    }
    let presented_hash = token_hash(presented);
    // Read first, so the access and ID tokens can be minted before the token is used and then
    // stored in the same transaction as the rotation: a failure in between loses nothing.
    let Some(found) = provider.store.get_refresh_token(&presented_hash).await? else {
        return Err(OAuthError::invalid_grant(
            "the refresh token is invalid or expired",
        ));
    };
    let grant = found.grant;
    if grant.client_id != client.client_id {
        return Err(OAuthError::invalid_grant(
            "the refresh token is invalid or expired",
        ));
    }
    // A narrower scope may be asked for, never a wider one (RFC 6749 §6). Checked before the
    // token is used, so a refused request leaves the token as it was.
    let scope = match request.scope.as_deref() {
        Some(asked) if scopes::is_subset(asked, &grant.scope) => {
            scopes::join(&scopes::parse(asked))
        }
        Some(_) => {
            return Err(OAuthError::invalid_scope(
                "the requested scope exceeds what was granted",
            ));
        }
        None => grant.scope.clone(),
    };
    let user_id = grant
        .user_id
        .ok_or_else(|| OAuthError::invalid_grant("the refresh token is invalid"))?;
    let user = provider
        .store
        .get_user(user_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;
    // A used token is a replay: the rotation below revokes its family, unchecked.
    let user = if found.used {
        user
    } else {
        check.recheck(client, user).await?
    };
    let access = mint::access_token(provider, client, &grant, &scope, now)?;
    let id_token = if scopes::contains(&scope, scopes::OPENID) {
        Some(mint::id_token(
            provider,
            mint::IdTokenInput {
                client,
                grant: &grant,
                user: &user,
                scope: &scope,
                access_token: &access.token,
                include_nonce: false,
                now,
            },
        )?)
    } else {
        None
    };
    let (successor, successor_record) = mint::refresh_token(provider, &grant.id, now);
    let outcome = provider
        .store
        .rotate_refresh_token_issuing(
            &presented_hash,
            &client.client_id,
            &successor_record,
            Some(&access.record),
            now,
        )
        .await?;
    match outcome {
        RotateOutcome::Rotated(_) => {}
        RotateOutcome::Replayed { grant_id } => {
            provider.metrics.refresh_reuse_detected();
            provider.store.revoke_grant(&grant_id, now).await?;
            tracing::warn!(client_id = %client.client_id, "refresh token replayed; its family is revoked");
            return Err(OAuthError::invalid_grant(
                "the refresh token was already used",
            ));
        }
        RotateOutcome::Invalid => {
            return Err(OAuthError::invalid_grant(
                "the refresh token is invalid or expired",
            ));
        }
    }
    Ok(mint::token_response(
        provider,
        &access.token,
        &scope,
        id_token,
        Some(successor),
    ))
}
