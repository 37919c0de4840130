//! The client credentials grant (RFC 6749 §4.4) for service accounts: an access token for the
//! account's allowed scopes, no ID token, no refresh token (§4.4.3).

use serde_json::Value;

use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::oidc::{Provider, mint, scopes};
use crate::secrets::new_id;
use crate::store::{ClientKind, ClientRecord, GrantRecord};

/// `grant_type=client_credentials` (RFC 6749 §4.4.2).
#[derive(Debug)]
pub struct ClientCredentialsRequest {
    /// The scopes asked for, or `None` for every scope the account is allowed.
    pub scope: Option<String>,
}

pub async fn exchange(
    provider: &Provider,
    client: &ClientRecord,
    request: &ClientCredentialsRequest,
    now: i64,
) -> OAuthResult<Value> {
    if !client.settings.service_account || client.settings.kind != ClientKind::Confidential {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not registered as a service account",
        ));
    }
    let allowed = &client.settings.allowed_scopes;
    let scope = match request.scope.as_deref() {
        Some(asked) => {
            let asked = scopes::parse(asked);
            if let Some(bad) = asked.iter().find(|s| !allowed.contains(s)) {
                return Err(OAuthError::invalid_scope(format!(
                    "the scope {bad} is not allowed to this service account"
                )));
            }
            scopes::join(&asked)
        }
        None => scopes::join(allowed),
    };
    let ttl = provider.config.tokens.access_token_ttl_secs;
    let grant = GrantRecord {
        id: new_id(),
        client_id: client.client_id.clone(),
        user_id: None,
        scope: scope.clone(),
        auth_time: now,
        amr: "client_credentials".into(),
        nonce: None,
        created_at: now,
        revoked_at: None,
        expires_at: now + ttl,
        session_hash: None,
    };
    let access = mint::access_token(provider, client, &grant, &scope, now)?;
    // The grant and its token in one write.
    provider
        .store
        .create_grant_with_tokens(&grant, Some(&access.record), None)
        .await?;
    Ok(mint::token_response(
        provider,
        &access.token,
        &scope,
        None,
        None,
    ))
}
