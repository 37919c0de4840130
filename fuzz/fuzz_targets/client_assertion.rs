//! A `private_key_jwt` client assertion (RFC 7523): read without trust
//! (`client_assertion::decode`), its claims checked (`check_claims`), and its signature checked
//! with the keys of a registered JWK set. The first byte picks the input's shape: a compact
//! JWS as sent, or a header and claims (JSON, one line each) that are encoded and signed here
//! with the registered Ed25519 key, so the claim checks see fuzzed claims on a good signature.
#![no_main]

use std::sync::LazyLock;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};
use telegram_oidc::jose::Algorithm;
use telegram_oidc::oidc::client_assertion::{self, ClientKey};

const ISSUER: &str = "https://id.example.com";
const NOW: i64 = 1_800_000_000;

static SIGNER: LazyLock<Ed25519KeyPair> =
    LazyLock::new(|| Ed25519KeyPair::from_seed_unchecked(&[7; 32]).expect("a seed"));
static KEYS: LazyLock<Vec<ClientKey>> = LazyLock::new(|| {
    let x = URL_SAFE_NO_PAD.encode(SIGNER.public_key().as_ref());
    let set = json!({"keys": [
        {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1"},
        {"kty": "OKP", "crv": "Ed25519", "x": x, "alg": "EdDSA"},
    ]});
    let keys = client_assertion::parse_jwks(&set).expect("a JWK set");
    assert_eq!(keys.len(), 2);
    keys
});

fn check(assertion: &str, client_id: Option<&str>) {
    let Ok(jws) = client_assertion::decode(assertion) else {
        return;
    };
    for key in KEYS.iter().filter(|k| k.fits(jws.alg, jws.kid.as_deref())) {
        let _ = key.verify(assertion, jws.alg);
    }
    if let Ok((id, exp)) = client_assertion::check_claims(ISSUER, &jws.claims, client_id, NOW) {
        assert_eq!(
            jws.claims.get("iss").and_then(Value::as_str),
            Some(id.as_str())
        );
        assert_eq!(
            jws.claims.get("sub").and_then(Value::as_str),
            Some(id.as_str())
        );
        assert!(client_id.is_none_or(|c| c == id));
        assert!(exp > NOW - 60 && exp <= NOW + 660, "exp {exp}");
        let jti = jws.claims.get("jti").and_then(Value::as_str);
        assert!(jti.is_some_and(|j| !j.is_empty() && j.len() <= 256));
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let client_id = (mode & 2 != 0).then_some("client-1");
    if mode & 1 == 0 {
        check(text, client_id);
        return;
    }
    let (header, claims) = text
        .split_once('\n')
        .unwrap_or((r#"{"alg":"EdDSA"}"#, text));
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = SIGNER.sign(signing_input.as_bytes());
    let jws = format!(
        "{signing_input}.{}",
        URL_SAFE_NO_PAD.encode(signature.as_ref())
    );
    check(&jws, client_id);
    // A signature the key made over the same input is never refused as a bad signature when
    // the header names EdDSA and no kid the set lacks. (Claims jsonwebtoken will not read,
    // such as a claim named twice, are refused after the signature check: RFC 7519 §4 allows
    // refusing duplicate claim names.)
    if let Ok(decoded) = client_assertion::decode(&jws)
        && decoded.alg == Algorithm::EdDSA
        && decoded.kid.as_deref().is_none_or(|k| k == "k1")
    {
        let results: Vec<_> = KEYS
            .iter()
            .filter(|k| k.fits(decoded.alg, decoded.kid.as_deref()))
            .map(|k| k.verify(&jws, decoded.alg))
            .collect();
        assert!(!results.is_empty());
        assert!(
            results
                .iter()
                .all(|r| r.as_ref().err() != Some(&"signature verification failed")),
            "a good signature was refused: {:?}",
            results.iter().map(|r| r.as_ref().err()).collect::<Vec<_>>()
        );
    }
});
