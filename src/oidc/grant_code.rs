//! The authorization code grant (RFC 6749 §4.1.3, RFC 7636 §4.6).

use serde_json::Value;

use crate::error::{OAuthError, OAuthResult};
use crate::oidc::{Provider, mint, pkce};
use crate::secrets::token_hash;
use crate::store::{ClientRecord, RedeemOutcome};

/// `grant_type=authorization_code` (RFC 6749 §4.1.3, RFC 7636 §4.5).
/// No `Debug`: it holds a credential.
pub struct CodeRequest {
    pub code: String,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
}

pub async fn exchange(
    provider: &Provider,
    client: &ClientRecord,
    request: &CodeRequest,
    now: i64,
) -> OAuthResult<Value> {
    let code = request.code.as_str();
    let redirect_uri = request.redirect_uri.as_deref();
    let verifier = request.code_verifier.as_deref();
    if code.len() > 256 {
        return Err(OAuthError::invalid_grant("the code is invalid"));
    }
    let record = match provider
        .store
        .redeem_code(&token_hash(code), &client.client_id, now)
        .await?
    {
        RedeemOutcome::Redeemed(record) => record,
        RedeemOutcome::AlreadyUsed { grant_id } => {
            // A second use means the code leaked: what the first use issued goes too
            // (RFC 6749 §4.1.2, RFC 9700 §4.5).
            provider.store.revoke_grant(&grant_id, now).await?;
            tracing::warn!(client_id = %client.client_id, "authorization code reused; its grant is revoked");
            return Err(OAuthError::invalid_grant("the code was already used"));
        }
        RedeemOutcome::NotFound => return Err(OAuthError::invalid_grant("the code is invalid")),
    };
    if now >= record.expires_at {
        return Err(OAuthError::invalid_grant("the code has expired"));
    }
    if redirect_uri != Some(record.redirect_uri.as_str()) {
        return Err(OAuthError::invalid_grant(
            "redirect_uri does not match the authorization request",
        ));
    }
    match (&record.code_challenge, verifier) {
        (Some(challenge), Some(verifier)) => {
            if !pkce::verify(challenge, verifier) {
                return Err(OAuthError::invalid_grant("code_verifier does not match"));
            }
        }
        (Some(_), None) => return Err(OAuthError::invalid_grant("code_verifier is missing")),
        // A verifier for a code issued without a challenge is a downgrade attempt (RFC 9700 §4.8.2).
        (None, Some(_)) => {
            return Err(OAuthError::invalid_grant(
                "code_verifier sent, but the authorization request had no code_challenge",
            ));
        }
        (None, None) => {}
    }
    // The grant was live when the code was redeemed (checked in the same statement). A replay
    // racing this request may revoke it now: the tokens below are then dead on arrival, as the
    // rule for a reused code demands, but this first redemption still answers.
    let grant = provider
        .store
        .get_grant(&record.grant_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the code is invalid"))?;
    let user_id = grant
        .user_id
        .ok_or_else(|| OAuthError::server_error("a code grant without a user"))?;
    let user = provider
        .store
        .get_user(user_id)
        .await?
        .ok_or_else(|| OAuthError::invalid_grant("the user no longer exists"))?;

    mint::issue_for_grant(provider, client, &grant, &user, true, now).await
}
