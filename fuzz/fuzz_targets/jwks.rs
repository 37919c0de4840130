//! A client's JWK set (RFC 7517), registered inline or fetched from its `jwks_uri`: parsed
//! key by key (`jose::PublicJwk`), an unusable key skipped, never fatal; and every usable key
//! asked whether it fits each algorithm and made to check a token it did not sign.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use telegram_oidc::jose::{Algorithm, PublicJwk};
use telegram_oidc::oidc::client_assertion;

const ALGS: [Algorithm; 6] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
    Algorithm::HS256,
    Algorithm::RS512,
];
/// `{"alg":"EdDSA"}.{"iss":"c"}.` with a 64-byte signature of zeros.
const TOKEN: &str = "eyJhbGciOiJFZERTQSJ9.eyJpc3MiOiJjIn0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";

fuzz_target!(|data: &[u8]| {
    let Ok(set) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let checked = client_assertion::check_jwks(&set);
    let Ok(keys) = client_assertion::parse_jwks(&set) else {
        assert!(checked.is_err());
        return;
    };
    assert!(keys.len() <= 32);
    assert_eq!(
        checked.is_ok(),
        !keys.is_empty() && set.to_string().len() <= 64 * 1024
    );
    if let Some(list) = set.get("keys").and_then(Value::as_array) {
        for jwk in list {
            if PublicJwk::parse(jwk).is_some() {
                // A private key is never trusted as a public one.
                assert!(jwk.get("d").is_none());
            }
        }
    }
    for key in &keys {
        for alg in ALGS {
            if key.fits(alg, key.kid()) {
                assert!(!matches!(alg, Algorithm::HS256), "a public key fits HMAC");
                assert!(key.verify(TOKEN, alg).is_err(), "a forged token verified");
            }
        }
    }
});
