//! The provider: what every protocol function needs (settings, store, keys and the caches
//! built from them), and nothing of HTTP or Telegram. Protocol functions take it, `now` and a
//! typed request.

use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use bytes::Bytes;

use crate::config::Config;
use crate::keys::{KeyError, KeyStore};
use crate::oidc::client_assertion::JwksCache;
use crate::outbound::Outbound;
use crate::store::Store;
use std::sync::Arc;

/// How long a rendered JWKS is served before it is rendered again.
const JWKS_CACHE_SECS: i64 = 5;

pub struct Provider {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyStore>,
    /// The discovery document never changes while the server runs: rendered once.
    pub discovery: Bytes,
    /// The JWKS, rendered again when the key set or the time window changes.
    jwks_cache: RwLock<Option<(i64, Bytes)>>,
    /// The server secret behind pairwise subjects; in keys/ so every node derives the same.
    subject_secret: [u8; 32],
    last_forced_reload: AtomicI64,
    /// Client JWK sets fetched from their `jwks_uri` (private_key_jwt).
    pub client_jwks: JwksCache,
    /// The one client for URLs that apps chose.
    pub outbound: Outbound,
    /// This server's Prometheus metrics.
    pub metrics: crate::metrics::Metrics,
}

impl Provider {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        keys: Arc<KeyStore>,
        subject_secret: [u8; 32],
    ) -> Result<Provider, crate::outbound::OutboundError> {
        let outbound = Outbound::new(config.outbound.allow_private || config.dev_mode)?;
        let discovery = Bytes::from(crate::oidc::discovery::document(&config).to_string());
        let metrics = crate::metrics::Metrics::under(match config.cookie_path().as_str() {
            "/" => "",
            base => base,
        });
        Ok(Provider {
            config,
            store,
            keys,
            discovery,
            jwks_cache: RwLock::new(None),
            subject_secret,
            last_forced_reload: AtomicI64::new(0),
            client_jwks: Default::default(),
            outbound,
            metrics,
        })
    }

    pub fn subject_secret(&self) -> &[u8] {
        &self.subject_secret
    }

    /// The issuer URL plus a path of ours.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.issuer, path)
    }

    pub fn jwks(&self, now: i64) -> Bytes {
        if let Ok(cache) = self.jwks_cache.read()
            && let Some((at, bytes)) = cache.as_ref()
            && now - at < JWKS_CACHE_SECS
            && now >= *at
        {
            return bytes.clone();
        }
        let bytes = Bytes::from(
            self.keys
                .jwks(now, self.config.key_retention_secs())
                .to_string(),
        );
        if let Ok(mut cache) = self.jwks_cache.write() {
            *cache = Some((now, bytes.clone()));
        }
        bytes
    }

    /// Verifies a JWT signed by one of our keys. A `kid` this node has not loaded yet may be a
    /// key another node just rotated in: the key directory is read again (at most once a
    /// second) before the token is refused.
    pub fn verify_jwt(
        &self,
        token: &str,
        now: i64,
    ) -> Result<(serde_json::Value, serde_json::Value), KeyError> {
        match self.keys.verify(token) {
            Err(KeyError::InvalidToken(reason)) if reason.contains("kid") => {
                let due = self
                    .last_forced_reload
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |last| {
                        (now > last).then_some(now)
                    })
                    .is_ok();
                if due && matches!(self.keys.reload_at(now), Ok(true)) {
                    self.invalidate_jwks();
                }
                self.keys.verify(token)
            }
            other => other,
        }
    }

    /// Forgets the rendered JWKS (after a key rotation or reload).
    pub fn invalidate_jwks(&self) {
        if let Ok(mut cache) = self.jwks_cache.write() {
            *cache = None;
        }
    }
}
