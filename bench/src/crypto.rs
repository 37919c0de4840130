//! The machine's raw signing rates (the physical limit of the token endpoint), and the bits
//! of cryptography the load generator needs to act as Telegram and as an app.

use std::time::{Duration, Instant};

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use aws_lc_rs::{digest, hmac, rsa::KeySize};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Signatures per second on one thread.
#[derive(Clone, Copy, Debug)]
pub struct RawRates {
    pub rs256: f64,
    pub es256: f64,
    pub eddsa: f64,
    /// SQLite alone running one opaque client_credentials request's statements (see floor.rs).
    pub sqlite_cc: f64,
    pub sqlite_cc_batched: f64,
    /// PostgreSQL's own limits, measured with pgbench in the same run (see pgceiling.rs).
    pub pg: Option<crate::pgceiling::Ceilings>,
}

/// A JWT-sized message: what the server signs is a header and claims of about this length.
const MESSAGE: &[u8] = b"eyJhbGciOiJSUzI1NiIsInR5cCI6ImF0K2p3dCIsImtpZCI6Ikc4VlFLWENJMEZETmwyU256QWtHUFZfQ2VNNHd5TFhiVVJhSGRvRFF6VTQifQ.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjE4MDgwIiwic3ViIjoiRnJzOEw4cUJSZDA2ZmUxM1Jidzd2ZyIsImF1ZCI6IkZyczhMOHFCUmQwNmZlMTNSYnc3dmciLCJjbGllbnRfaWQiOiJGcnM4TDhxQlJkMDZmZTEzUmJ3N3ZnIiwiaWF0IjoxNzk1MjQzMjQ0LCJleHAiOjE3OTUyNDY4NDQsImp0aSI6ImFiY2RlZmdoaWprbG1ub3AiLCJzY29wZSI6ImFwaTpyZWFkIn0";

fn rate(budget: Duration, mut sign: impl FnMut()) -> f64 {
    // A short warm-up so caches and frequency settle before the clock starts.
    for _ in 0..20 {
        sign();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..10 {
            sign();
        }
        n += 10;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

/// aws-lc-rs (the server's crypto library) signing in a loop on this thread: RSA-2048
/// PKCS#1 v1.5 SHA-256, ECDSA P-256 SHA-256 (fixed r||s), Ed25519.
pub fn raw_signing_rates(budget: Duration) -> RawRates {
    let rng = SystemRandom::new();
    let rs256 = match RsaKeyPair::generate(KeySize::Rsa2048) {
        Ok(key) => {
            let mut sig = vec![0u8; key.public_modulus_len()];
            rate(budget, || {
                let _ = key.sign(&signature::RSA_PKCS1_SHA256, &rng, MESSAGE, &mut sig);
            })
        }
        Err(_) => 0.0,
    };
    let es256 = match EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING) {
        Ok(key) => rate(budget, || {
            let _ = key.sign(&rng, MESSAGE);
        }),
        Err(_) => 0.0,
    };
    let eddsa = match Ed25519KeyPair::generate() {
        Ok(key) => rate(budget, || {
            let _ = key.sign(MESSAGE);
        }),
        Err(_) => 0.0,
    };
    RawRates {
        rs256,
        es256,
        eddsa,
        sqlite_cc: 0.0,
        sqlite_cc_batched: 0.0,
        pg: None,
    }
}

/// Login Widget data signed as Telegram signs it (core.telegram.org/widgets/login): every
/// field sorted by key, `key=value` joined by `\n`, HMAC-SHA-256 under SHA-256(bot token).
/// Written here from the protocol, not taken from the server, so a broken check in the server
/// shows up as errors.
pub fn widget_hash(fields: &[(&str, String)], bot_token: &str) -> String {
    let mut sorted: Vec<&(&str, String)> = fields.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let dcs = sorted
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n");
    let secret = digest::digest(&digest::SHA256, bot_token.as_bytes());
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_ref());
    hex::encode(hmac::sign(&key, dcs.as_bytes()).as_ref())
}

/// `n` random bytes, base64url.
pub fn random_b64(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    let _ = SystemRandom::new().fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A PKCE verifier and its S256 challenge (RFC 7636 §4.1, §4.2).
pub fn pkce_pair() -> (String, String) {
    let verifier = random_b64(32);
    let challenge = URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()));
    (verifier, challenge)
}

/// The `alg` of a compact JWS header.
pub fn jws_alg(token: &str) -> Option<String> {
    let header = token.split('.').next()?;
    let bytes = URL_SAFE_NO_PAD.decode(header).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    v["alg"].as_str().map(str::to_owned)
}
