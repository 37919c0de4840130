//! Token introspection (RFC 7662) for authenticated clients. A client learns about its own
//! tokens only: another client's token, like a revoked, expired or unknown one, is
//! `{"active": false}` and nothing more (§2.2).

use serde_json::{Value, json};

use crate::error::OAuthResult;
use crate::oidc::token_lookup::{self, Found};
use crate::oidc::{Provider, subject};
use crate::store::ClientRecord;

/// An introspection request (RFC 7662 §2.1). `token_type_hint` is optional and ignored: the
/// token's prefix or signature says what it is. No `Debug`: it holds a credential.
pub struct IntrospectionRequest {
    pub token: String,
}

/// The introspection response (§2.2) for the calling client.
pub async fn describe(
    provider: &Provider,
    client: &ClientRecord,
    request: &IntrospectionRequest,
    now: i64,
) -> OAuthResult<Value> {
    let inactive = json!({ "active": false });
    let sub = |user: Option<i64>| match user {
        Some(id) => subject::subject_for(provider, client, id),
        None => client.client_id.clone(),
    };
    Ok(
        match token_lookup::find(provider, &request.token, now).await? {
            Found::Access(state)
                if state.record.client_id == client.client_id
                    && !state.revoked
                    && state.record.expires_at > now =>
            {
                let r = &state.record;
                json!({
                    "active": true,
                    "token_type": "Bearer",
                    "scope": r.scope,
                    "client_id": r.client_id,
                    "sub": sub(r.user_id),
                    "aud": r.client_id,
                    "iss": provider.config.issuer,
                    "iat": r.created_at,
                    "exp": r.expires_at,
                })
            }
            Found::Refresh(state)
                if state.grant.client_id == client.client_id
                    && !state.used
                    && state.grant.revoked_at.is_none()
                    && state.record.expires_at > now =>
            {
                json!({
                    "active": true,
                    "token_type": "refresh_token",
                    "scope": state.grant.scope,
                    "client_id": state.grant.client_id,
                    "sub": sub(state.grant.user_id),
                    "iss": provider.config.issuer,
                    "iat": state.record.created_at,
                    "exp": state.record.expires_at,
                })
            }
            _ => inactive,
        },
    )
}
