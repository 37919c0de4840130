//! Token revocation (RFC 7009). A refresh token takes its whole family with it; an access
//! token goes alone. Unknown, foreign and already revoked tokens answer 200 all the same
//! (§2.2), so the endpoint tells an attacker nothing.

use crate::error::OAuthResult;
use crate::oidc::Provider;
use crate::oidc::token_lookup::{self, Found};
use crate::store::ClientRecord;

/// A revocation request (RFC 7009 §2.1). `token_type_hint` is optional and ignored: the token's
/// prefix or signature says what it is.
/// No `Debug`: it holds a credential.
pub struct RevocationRequest {
    pub token: String,
}

/// Revokes the token if it is the client's own; says nothing either way.
pub async fn revoke(
    provider: &Provider,
    client: &ClientRecord,
    request: &RevocationRequest,
    now: i64,
) -> OAuthResult<()> {
    match token_lookup::find(provider, &request.token, now).await? {
        Found::Refresh(state) if state.grant.client_id == client.client_id => {
            provider.store.revoke_grant(&state.grant.id, now).await?;
        }
        Found::Access(state) if state.record.client_id == client.client_id => {
            provider
                .store
                .revoke_access_token(&state.record.token_hash, &client.client_id, now)
                .await?;
        }
        // Another client's token is not this client's to revoke (§2.1); say nothing.
        _ => {}
    }
    Ok(())
}
