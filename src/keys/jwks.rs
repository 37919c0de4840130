//! The JWKS document (RFC 7517 §5): the public keys apps verify our tokens with.

use serde_json::{Value, json};

use super::material::LoadedKey;
use super::{KeyInfo, KeyStore};

impl KeyStore {
    /// Public keys that must be published at `now`: every active key, plus each retired key
    /// while `now < retired_at + retention_secs`. Returns the JWKS document `{"keys":[...]}`,
    /// active keys first (RS256, ES256, EdDSA), then retired keys newest first.
    pub fn jwks(&self, now: i64, retention_secs: i64) -> serde_json::Value {
        let state = self.snapshot();
        let mut published: Vec<(&KeyInfo, &LoadedKey)> = state
            .infos
            .iter()
            .zip(state.keys.iter())
            .filter(|(info, _)| {
                // Active, waiting to sign (published ahead), or retired within retention.
                info.active
                    || info.retired_at.is_none()
                    || info
                        .retired_at
                        .is_some_and(|retired| now < retired.saturating_add(retention_secs))
            })
            .map(|(info, key)| (info, key.as_ref()))
            .collect();
        published.sort_by_key(|(info, _)| {
            let active_order = if info.active { info.alg.index() } else { 0 };
            (
                !info.active,
                active_order,
                std::cmp::Reverse(info.created_at),
                info.alg.index(),
            )
        });
        let keys: Vec<Value> = published.into_iter().map(|(_, k)| k.jwk.clone()).collect();
        json!({ "keys": keys })
    }
}
