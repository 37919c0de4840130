//! The key store: signing keys stored as one JSON file per key in a keys directory
//! ([`files`]), published as a JWKS ([`jwks`]), and used to sign and verify compact JWS tokens
//! through [`crate::jose`].
//!
//! Supported algorithms: RS256 (RSA 2048, PKCS#1 v1.5 with SHA-256), ES256 (P-256, fixed-length
//! `r||s` signatures) and EdDSA (Ed25519). Keys are generated and parsed with `aws-lc-rs`
//! ([`material`]); the kid of a generated key is its RFC 7638 JWK thumbprint (SHA-256,
//! base64url).
//!
//! Exactly one key per algorithm is active: the newest one (largest `created_at`, ties broken by
//! kid so that every process sharing a directory agrees). A key is retired at the `created_at` of
//! the next newer key of the same algorithm.

mod files;
mod jwks;
mod material;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use aws_lc_rs::digest;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::jose;
use files::{FileStamp, create_key, ensure_dir, list_dir, load_keys};
use material::LoadedKey;

/// Longest compact JWS `verify` accepts, in bytes. Our own tokens are a few KiB at most.
const MAX_TOKEN_LEN: usize = 64 * 1024;

/// A JWS signing algorithm supported by the provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SigningAlg {
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
    /// ECDSA on P-256 with SHA-256, fixed-length `r||s` signatures.
    ES256,
    /// EdDSA with Ed25519.
    EdDSA,
}

impl SigningAlg {
    /// Every supported algorithm, in the order used for listing.
    pub const ALL: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

    /// The JOSE `alg` name.
    pub fn as_str(&self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    /// Parses a JOSE `alg` name (exact, case-sensitive).
    pub fn parse(s: &str) -> Option<SigningAlg> {
        match s {
            "RS256" => Some(SigningAlg::RS256),
            "ES256" => Some(SigningAlg::ES256),
            "EdDSA" => Some(SigningAlg::EdDSA),
            _ => None,
        }
    }

    /// The same algorithm, as `jsonwebtoken` names it.
    pub fn jws(self) -> jose::Algorithm {
        match self {
            SigningAlg::RS256 => jose::Algorithm::RS256,
            SigningAlg::ES256 => jose::Algorithm::ES256,
            SigningAlg::EdDSA => jose::Algorithm::EdDSA,
        }
    }

    /// Position in [`SigningAlg::ALL`].
    const fn index(self) -> usize {
        match self {
            SigningAlg::RS256 => 0,
            SigningAlg::ES256 => 1,
            SigningAlg::EdDSA => 2,
        }
    }
}

impl fmt::Display for SigningAlg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Public description of one signing key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyInfo {
    pub kid: String,
    pub alg: SigningAlg,
    /// Unix seconds.
    pub created_at: i64,
    /// True for the newest key of its algorithm, the one `sign` uses.
    pub active: bool,
    /// Unix seconds: the `created_at` of the next newer key of the same algorithm.
    pub retired_at: Option<i64>,
    /// Unix seconds: a rotated key published before it signs starts signing then. Until
    /// then it is in the JWKS, so apps that cache the key set already hold it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<i64>,
}

/// Errors from the key store.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing the keys directory failed.
    #[error("I/O error on {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A `.json` file in the keys directory is not a valid key file.
    #[error(
        "malformed key file {}: {reason} (fix or remove the file; only *.json files are read)",
        path.display()
    )]
    MalformedKeyFile { path: PathBuf, reason: String },
    /// The keys directory lost every key of an algorithm since it was last loaded.
    #[error(
        "keys directory {} has no {alg} key file; restore it or rotate a new {alg} key (the keys already loaded stay in use)",
        dir.display()
    )]
    MissingKey { dir: PathBuf, alg: SigningAlg },
    /// Key generation, parsing or signing failed inside the crypto library.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// `sign` was given claims that are not a JSON object.
    #[error("JWT claims must be a JSON object")]
    ClaimsNotObject,
    /// `verify` rejected the token.
    #[error("invalid token: {0}")]
    InvalidToken(&'static str),
}

/// An immutable snapshot of the loaded keys.
struct State {
    /// Sorted by (alg, created_at, kid).
    keys: Vec<Arc<LoadedKey>>,
    /// Parallel to `keys`.
    infos: Vec<KeyInfo>,
    by_kid: HashMap<String, Arc<LoadedKey>>,
    /// Active key per alg, indexed by `SigningAlg::index`.
    active: [Arc<LoadedKey>; 3],
    /// Directory listing the keys were loaded from.
    listing: Vec<FileStamp>,
    /// The earliest `not_before` still in the future when the snapshot was built: at that
    /// time the snapshot must be built again, even if no file changed.
    next_activation: Option<i64>,
}

impl State {
    /// Builds a snapshot; `Err(alg)` if some algorithm has no key.
    fn build(
        mut keys: Vec<Arc<LoadedKey>>,
        listing: Vec<FileStamp>,
        now: i64,
    ) -> Result<State, SigningAlg> {
        keys.sort_by(|a, b| {
            (a.alg.index(), a.created_at, &a.kid).cmp(&(b.alg.index(), b.created_at, &b.kid))
        });
        let signs = |k: &LoadedKey| k.not_before.is_none_or(|t| t <= now);
        let newest = |alg: SigningAlg| {
            keys.iter()
                .rev()
                .find(|k| k.alg == alg && signs(k))
                .or_else(|| keys.iter().find(|k| k.alg == alg))
                .map(Arc::clone)
                .ok_or(alg)
        };
        let active = [
            newest(SigningAlg::RS256)?,
            newest(SigningAlg::ES256)?,
            newest(SigningAlg::EdDSA)?,
        ];
        let infos = keys
            .iter()
            .enumerate()
            .map(|(i, key)| {
                let active = Arc::ptr_eq(key, &active[key.alg.index()]);
                // Retired when the next newer key of its algorithm took over signing.
                let successor = keys[i + 1..]
                    .iter()
                    .filter(|next| next.alg == key.alg && signs(next))
                    .map(|next| next.not_before.unwrap_or(next.created_at))
                    .next();
                KeyInfo {
                    kid: key.kid.clone(),
                    alg: key.alg,
                    created_at: key.created_at,
                    active,
                    retired_at: if active || !signs(key) {
                        None
                    } else {
                        successor
                    },
                    not_before: key.not_before,
                }
            })
            .collect();
        let next_activation = keys
            .iter()
            .filter_map(|k| k.not_before)
            .filter(|t| *t > now)
            .min();
        let by_kid = keys
            .iter()
            .map(|k| (k.kid.clone(), Arc::clone(k)))
            .collect();
        Ok(State {
            keys,
            infos,
            by_kid,
            active,
            listing,
            next_activation,
        })
    }
}

/// The signing keys of the provider, loaded from a keys directory.
///
/// Cheap to share: wrap it in an `Arc`. Readers (`sign`, `verify`, `jwks`, `list`) never wait for
/// key generation or disk I/O; `rotate` and `reload` swap in a new snapshot atomically.
pub struct KeyStore {
    dir: PathBuf,
    state: RwLock<Arc<State>>,
    /// Serializes `rotate` and `reload` so that neither loses the other's update.
    update: Mutex<()>,
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyStore")
            .field("dir", &self.dir)
            .field("keys", &self.snapshot().infos)
            .finish_non_exhaustive()
    }
}

impl KeyStore {
    /// Opens (creating with mode 0700 if missing) the directory; loads every key file; if an alg
    /// has no key, generates one (so RS256, ES256 and EdDSA each always have an active key).
    /// `now` is unix seconds.
    pub fn open(dir: &Path, now: i64) -> Result<KeyStore, KeyError> {
        ensure_dir(dir)?;
        let listing = list_dir(dir)?;
        let mut keys = load_keys(dir, &listing, None)?;
        for alg in SigningAlg::ALL {
            if !keys.iter().any(|k| k.alg == alg) {
                keys.push(Arc::new(create_key(dir, alg, now, None)?));
            }
        }
        // `listing` predates the generated files: the first `reload` re-reads the directory once
        // and finds nothing new.
        let state = State::build(keys, listing, now).map_err(|alg| KeyError::MissingKey {
            dir: dir.to_path_buf(),
            alg,
        })?;
        tracing::info!(dir = %dir.display(), keys = state.keys.len(), "loaded signing keys");
        Ok(KeyStore {
            dir: dir.to_path_buf(),
            state: RwLock::new(Arc::new(state)),
            update: Mutex::new(()),
        })
    }

    /// Generates a new key for `alg`, writes it (atomically: temp file + rename, file mode
    /// 0600), makes it active.
    ///
    /// The new key's `created_at` is `now`, or one second after the newest known key of `alg` if
    /// that is not earlier than `now`, so that the new key is always the newest.
    pub fn rotate(&self, alg: SigningAlg, now: i64) -> Result<KeyInfo, KeyError> {
        self.rotate_after(alg, now, 0)
    }

    /// As [`KeyStore::rotate`], but the new key is published at once and signs only
    /// `activate_in` seconds later, when every node has read it and every app that caches the
    /// JWKS holds it. 0 means at once.
    pub fn rotate_after(
        &self,
        alg: SigningAlg,
        now: i64,
        activate_in: i64,
    ) -> Result<KeyInfo, KeyError> {
        let _update = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let current = self.snapshot();
        let newest = current.active[alg.index()].created_at;
        let created_at = if now > newest {
            now
        } else {
            newest.saturating_add(1)
        };
        let not_before = (activate_in > 0).then(|| created_at.saturating_add(activate_in));
        let key = Arc::new(create_key(&self.dir, alg, created_at, not_before)?);
        let kid = key.kid.clone();
        let mut keys = current.keys.clone();
        keys.push(key);
        let state = State::build(keys, current.listing.clone(), now).map_err(|alg| {
            KeyError::MissingKey {
                dir: self.dir.clone(),
                alg,
            }
        })?;
        let info = state
            .infos
            .iter()
            .find(|i| i.kid == kid)
            .cloned()
            .ok_or(KeyError::Crypto("rotated key missing from key set"))?;
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
        tracing::info!(%kid, %alg, created_at, "rotated signing key");
        Ok(info)
    }

    /// Every key, sorted by alg (RS256, ES256, EdDSA) then `created_at`.
    pub fn list(&self) -> Vec<KeyInfo> {
        self.snapshot().infos.clone()
    }

    /// Re-reads the directory, so that a rotation done by another process is picked up without
    /// a restart. Cheap when nothing changed (one directory listing plus a `stat` per key file);
    /// unchanged key files are not re-parsed. Returns true if the set of keys changed.
    ///
    /// On error (unreadable directory, malformed key file, or an algorithm left without any key)
    /// the keys already loaded stay in use.
    pub fn reload(&self) -> Result<bool, KeyError> {
        self.reload_at(crate::clock::system_now())
    }

    /// As [`KeyStore::reload`] at `now`; also makes a published key sign once its
    /// `not_before` has come.
    pub fn reload_at(&self, now: i64) -> Result<bool, KeyError> {
        let _update = self.update.lock().unwrap_or_else(PoisonError::into_inner);
        let listing = list_dir(&self.dir)?;
        let current = self.snapshot();
        let activation_due = current.next_activation.is_some_and(|t| t <= now);
        if listing == current.listing && !activation_due {
            return Ok(false);
        }
        let keys = load_keys(&self.dir, &listing, Some(&current))?;
        let state = State::build(keys, listing, now).map_err(|alg| KeyError::MissingKey {
            dir: self.dir.clone(),
            alg,
        })?;
        let changed = state.infos != current.infos;
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(state);
        if changed {
            tracing::info!(dir = %self.dir.display(), "signing keys changed on disk; reloaded");
        }
        Ok(changed)
    }

    /// Signs `claims` (a JSON object) with the active key of `alg`. Header:
    /// `{"typ","alg","kid"}` with `typ` as given (e.g. "JWT", "at+jwt", "logout+jwt").
    pub fn sign(
        &self,
        alg: SigningAlg,
        typ: &str,
        claims: &serde_json::Value,
    ) -> Result<String, KeyError> {
        if !claims.is_object() {
            return Err(KeyError::ClaimsNotObject);
        }
        let key = Arc::clone(&self.snapshot().active[alg.index()]);
        key.signing.sign(typ, claims).map_err(KeyError::Crypto)
    }

    /// Verifies a compact JWS signed by one of our keys (looked up by the header kid; the header
    /// alg must equal that key's alg). Returns the header and the claims. Does NOT check
    /// exp/iss/aud.
    ///
    /// Rejects: anything that is not three base64url parts; a header or payload that is not a
    /// JSON object; a missing, unknown or mismatched `alg` (including "none"); a missing or
    /// unknown `kid`; a `crit` header; tokens longer than 64 KiB; bad signatures.
    pub fn verify(&self, token: &str) -> Result<(serde_json::Value, serde_json::Value), KeyError> {
        use KeyError::InvalidToken as Invalid;
        let header = jose::read_header(token, MAX_TOKEN_LEN).map_err(Invalid)?;
        let kid = header.kid.as_deref().ok_or(Invalid("header has no kid"))?;
        let key = self
            .snapshot()
            .by_kid
            .get(kid)
            .map(Arc::clone)
            .ok_or(Invalid("unknown kid"))?;
        if header.alg != key.alg.jws() {
            return Err(Invalid("header alg does not match the key's alg"));
        }
        let claims = key.verifying.verify(token).map_err(Invalid)?;
        Ok((
            jose::header_json(&header),
            serde_json::Value::Object(claims),
        ))
    }

    fn snapshot(&self) -> Arc<State> {
        Arc::clone(&self.state.read().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The OIDC `at_hash` / `c_hash`: left half of the hash of the ASCII value, base64url without
/// padding. SHA-256 for RS256 and ES256, SHA-512 for EdDSA (Ed25519).
pub fn half_hash(alg: SigningAlg, value: &str) -> String {
    let algorithm = match alg {
        SigningAlg::RS256 | SigningAlg::ES256 => &digest::SHA256,
        SigningAlg::EdDSA => &digest::SHA512,
    };
    let hash = digest::digest(algorithm, value.as_bytes());
    let bytes = hash.as_ref();
    let (left, _) = bytes.split_at(bytes.len() / 2);
    URL_SAFE_NO_PAD.encode(left)
}

#[cfg(test)]
mod tests;
