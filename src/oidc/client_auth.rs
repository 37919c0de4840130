//! Client authentication at the token endpoint (RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post`, `private_key_jwt` (RFC 7523, in [`client_assertion`]), or `none` for
//! public clients (which then must use PKCE).
//!
//! The web layer reads the credentials out of the request into a [`ClientCredentials`]; this
//! module checks a secret or a public client's id against the store.
//!
//! [`client_assertion`]: crate::oidc::client_assertion

use crate::error::{OAuthError, OAuthResult};
use crate::oidc::Provider;
use crate::secrets::{constant_time_eq, token_hash};
use crate::store::{ClientKind, ClientRecord};

/// How a client says who it is, as the request put it; not yet proven. A request that mixes
/// methods or lacks a client id never becomes one of these. No `Debug`: it holds secrets.
pub enum ClientCredentials {
    /// `client_secret_basic`, `client_secret_post`, or a public client's id alone (`none`).
    Secret(SecretCredentials),
    /// `private_key_jwt` (RFC 7523 §2.2): proven by `client_assertion::authenticate`.
    Assertion {
        jwt: String,
        /// The optional `client_id` parameter, which must then name the assertion's issuer.
        client_id: Option<String>,
    },
}

/// A client id with its secret, or without one for a public client.
pub struct SecretCredentials {
    pub client_id: String,
    pub secret: Option<String>,
    /// Sent in `Authorization: Basic`: a refusal then carries the Basic challenge (§2.3.1).
    pub basic: bool,
}

/// Who is calling, proven by its secret (or, for a public client, by nothing but its id).
/// Every failure is `invalid_client` (401) with no hint of which part was wrong.
pub async fn authenticate(
    provider: &Provider,
    credentials: &SecretCredentials,
) -> OAuthResult<ClientRecord> {
    let denied = || {
        OAuthError::invalid_client("client authentication failed")
            .with_basic_challenge(credentials.basic)
    };
    let client_id = credentials.client_id.as_str();
    if client_id.len() > 256 {
        return Err(denied());
    }
    let client = provider.store.get_client(client_id).await?;
    let presented = credentials.secret.as_deref().map(token_hash);
    let Some(client) = client else {
        return Err(denied());
    };
    if client.settings.uses_private_key_jwt() {
        // Registered keys, not a secret: anything else is refused (RFC 7591 §2).
        return Err(denied());
    }
    match (client.settings.kind, &client.secret_hash, presented) {
        (ClientKind::Confidential, Some(stored), Some(presented)) => {
            if constant_time_eq(stored, &presented) {
                Ok(client)
            } else {
                Err(denied())
            }
        }
        (ClientKind::Public, _, None) => Ok(client),
        _ => Err(denied()),
    }
}
