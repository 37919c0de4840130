//! The `jsonwebtoken` crypto provider this crate installs: the crate's own aws-lc-rs backend,
//! except that it signs with key pairs parsed once, when a [`super::SigningKey`] is made.
//!
//! The stock backend keeps only the key bytes in a signer and parses them again for every
//! signature: for RSA a DER parse and key check, for P-256 and Ed25519 a scalar multiplication
//! that costs as much as the signature itself. Here a key pair registered by
//! [`Registration::new`] is found by the SHA-256 of those bytes instead. A key that is not
//! registered is signed by the stock backend: the same signature, only slower.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Once, PoisonError, RwLock};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, aws_lc};
use jsonwebtoken::{Algorithm, EncodingKey};

use super::Reason;

/// An aws-lc-rs key pair, parsed once.
enum KeyPair {
    Rsa(RsaKeyPair),
    P256(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl KeyPair {
    /// Parses the bytes of an `EncodingKey` as `jsonwebtoken`'s aws-lc-rs backend does.
    fn parse(alg: Algorithm, der: &[u8]) -> Result<KeyPair, Reason> {
        match alg {
            Algorithm::RS256 => RsaKeyPair::from_der(der)
                .map(KeyPair::Rsa)
                .map_err(|_| "not an RSA private key (PKCS#1 DER)"),
            Algorithm::ES256 => {
                EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map(KeyPair::P256)
                    .map_err(|_| "not a P-256 private key (PKCS#8 DER)")
            }
            Algorithm::EdDSA => Ed25519KeyPair::from_pkcs8(der)
                .map(KeyPair::Ed25519)
                .map_err(|_| "not an Ed25519 private key (PKCS#8 DER)"),
            _ => Err("algorithm not supported for signing"),
        }
    }

    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, aws_lc_rs::error::Unspecified> {
        match self {
            KeyPair::Rsa(kp) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(
                    &signature::RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    msg,
                    &mut sig,
                )?;
                Ok(sig)
            }
            KeyPair::P256(kp) => Ok(kp.sign(&SystemRandom::new(), msg)?.as_ref().to_vec()),
            KeyPair::Ed25519(kp) => Ok(kp.try_sign(msg)?.as_ref().to_vec()),
        }
    }
}

/// The algorithm and the SHA-256 of the key bytes. The hash, not the bytes, so that this
/// table holds no second copy of a private key.
type Fingerprint = (Algorithm, [u8; 32]);

fn fingerprint(alg: Algorithm, der: &[u8]) -> Fingerprint {
    let mut hash = [0u8; 32];
    hash.copy_from_slice(digest::digest(&digest::SHA256, der).as_ref());
    (alg, hash)
}

struct Entry {
    /// How many live registrations share this key (two key stores may load the same file).
    users: usize,
    pair: Arc<KeyPair>,
}

static PARSED: LazyLock<RwLock<HashMap<Fingerprint, Entry>>> = LazyLock::new(Default::default);

/// Keeps a parsed key pair available to the provider while it lives.
pub(super) struct Registration {
    id: Fingerprint,
}

impl Registration {
    pub(super) fn new(alg: Algorithm, der: &[u8]) -> Result<Registration, Reason> {
        let pair = KeyPair::parse(alg, der)?;
        let id = fingerprint(alg, der);
        let mut table = PARSED.write().unwrap_or_else(PoisonError::into_inner);
        table
            .entry(id)
            .or_insert_with(|| Entry {
                users: 0,
                pair: Arc::new(pair),
            })
            .users += 1;
        Ok(Registration { id })
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut table = PARSED.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = table.get_mut(&self.id) {
            entry.users = entry.users.saturating_sub(1);
            if entry.users == 0 {
                table.remove(&self.id);
            }
        }
    }
}

/// Whether a key pair with this algorithm and SHA-256 of its bytes is registered.
#[cfg(test)]
pub(super) fn is_registered(alg: Algorithm, sha256: [u8; 32]) -> bool {
    PARSED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .contains_key(&(alg, sha256))
}

struct ParsedSigner {
    alg: Algorithm,
    pair: Arc<KeyPair>,
}

impl jsonwebtoken::signature::Signer<Vec<u8>> for ParsedSigner {
    fn try_sign(&self, msg: &[u8]) -> Result<Vec<u8>, jsonwebtoken::signature::Error> {
        self.pair
            .sign(msg)
            .map_err(jsonwebtoken::signature::Error::from_source)
    }
}

impl JwtSigner for ParsedSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
}

fn signer(alg: &Algorithm, key: &EncodingKey) -> jsonwebtoken::errors::Result<Box<dyn JwtSigner>> {
    let id = fingerprint(*alg, key.as_bytes());
    let parsed = PARSED
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&id)
        .map(|entry| Arc::clone(&entry.pair));
    match parsed {
        Some(pair) => Ok(Box::new(ParsedSigner { alg: *alg, pair })),
        None => (aws_lc::DEFAULT_PROVIDER.signer_factory)(alg, key),
    }
}

static PROVIDER: LazyLock<CryptoProvider> = LazyLock::new(|| CryptoProvider {
    signer_factory: signer,
    ..aws_lc::DEFAULT_PROVIDER.clone()
});

/// Installs the provider for the process, before `jsonwebtoken` picks its default on first
/// use; every entry point of [`super`] calls this first.
pub(super) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        if CryptoProvider::install_default(LazyLock::force(&PROVIDER)).is_err() {
            tracing::warn!(
                "a jsonwebtoken crypto provider was installed before ours; signing parses the key for every token"
            );
        }
    });
}
