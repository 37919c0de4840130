//! Unit tests of the JWS layer: header reading, the parsed-key provider, client JWKs.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;

use super::*;

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn token_with_header(header: &Value) -> String {
    format!("{}.e30.c2ln", b64(header.to_string().as_bytes()))
}

/// An Ed25519 key as a signing key and as the JWK that verifies it.
fn ed25519(kid: &str) -> (SigningKey, Value) {
    let der = Ed25519KeyPair::generate_pkcs8v1(&SystemRandom::new()).unwrap();
    let public = Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap();
    let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
        "x": b64(public.public_key().as_ref())});
    let key = SigningKey::new(
        Algorithm::EdDSA,
        kid.into(),
        EncodingKey::from_ed_der(der.as_ref()),
    )
    .unwrap();
    (key, jwk)
}

#[test]
fn headers_are_read_with_a_reason_for_each_refusal() {
    let ok = token_with_header(&json!({"alg": "ES256", "kid": "k", "typ": "JWT"}));
    let header = read_header(&ok, 1024).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some("k"));
    assert_eq!(
        header_json(&header),
        json!({"alg": "ES256", "kid": "k", "typ": "JWT"})
    );
    assert_eq!(
        read_header(&ok, ok.len() - 1).err(),
        Some("token is too long")
    );
    let cases = [
        (json!({"kid": "k"}), "header has no alg"),
        (json!({"alg": "none"}), "alg \"none\" is not accepted"),
        (
            json!({"alg": "NONE", "kid": "k"}),
            "alg \"none\" is not accepted",
        ),
        (
            json!({"alg": "ES256", "crit": ["exp"]}),
            "unsupported crit header",
        ),
        (
            json!({"alg": "ES256", "crit": 7}),
            "unsupported crit header",
        ),
        (
            json!({"alg": "ES256K"}),
            "unsupported alg or malformed header",
        ),
        (
            json!({"alg": "ES256", "kid": 7}),
            "unsupported alg or malformed header",
        ),
        (
            json!(["alg", "ES256"]),
            "header is not a base64url JSON object",
        ),
    ];
    for (header, reason) in cases {
        assert_eq!(
            read_header(&token_with_header(&header), 1024).err(),
            Some(reason),
            "{header}"
        );
    }
    for garbage in ["", "a", "a.b", "!!!.e30.c2ln", "e30.e30.c2ln"] {
        assert!(read_header(garbage, 1024).is_err(), "{garbage:?}");
    }
}

#[test]
fn signed_tokens_verify_with_the_public_jwk_only() {
    let (key, jwk) = ed25519("ed-1");
    let claims = json!({"sub": "42", "exp": 1});
    let token = key.sign("at+jwt", &claims).unwrap();
    let header = read_header(&token, 4096).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    assert_eq!(header.kid.as_deref(), Some("ed-1"));
    let public = PublicJwk::parse(&jwk).unwrap();
    assert_eq!(
        Value::Object(public.verify(&token, Algorithm::EdDSA).unwrap()),
        claims
    );
    // The claims are the caller's to check: an `exp` long past is no refusal here.
    let (_, other) = ed25519("ed-1");
    let other = PublicJwk::parse(&other).unwrap();
    assert_eq!(
        other.verify(&token, Algorithm::EdDSA).err(),
        Some("signature verification failed")
    );
    assert_eq!(
        public.verify(&token, Algorithm::ES256).err(),
        Some("header alg does not match the key's alg")
    );
    let (_, claims) = read_unverified(&token, 4096).unwrap();
    assert_eq!(claims["sub"], json!("42"));
    let array = key.sign_with_header(&json!({"alg": "EdDSA"}), &json!([1, 2]));
    assert!(read_unverified(&array, 4096).is_err());
    assert_eq!(
        public.verify(&array, Algorithm::EdDSA).err(),
        Some("claims are not a JSON object")
    );
}

#[test]
fn a_key_signs_the_same_with_or_without_its_parsed_pair() {
    let der = EcdsaKeyPair::generate_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &SystemRandom::new(),
    )
    .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref())
        .unwrap();
    let point = pair.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])});
    let public = PublicJwk::parse(&jwk).unwrap();
    let key = SigningKey::new(
        Algorithm::ES256,
        "ec".into(),
        EncodingKey::from_ec_der(der.as_ref()),
    )
    .unwrap();
    let token = key.sign("JWT", &json!({"n": 1})).unwrap();
    assert!(public.verify(&token, Algorithm::ES256).is_ok());
    // Once the registered key is gone, the stock backend signs from the bytes.
    let unregistered = EncodingKey::from_ec_der(der.as_ref());
    assert!(provider::is_registered(Algorithm::ES256, &unregistered));
    drop(key);
    assert!(!provider::is_registered(Algorithm::ES256, &unregistered));
    let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
    header.kid = Some("ec".into());
    provider::install();
    let token = jsonwebtoken::encode(&header, &json!({"n": 2}), &unregistered).unwrap();
    assert!(public.verify(&token, Algorithm::ES256).is_ok());
    // A key that does not parse for its algorithm is refused when it is made.
    assert!(
        SigningKey::new(
            Algorithm::EdDSA,
            "x".into(),
            EncodingKey::from_ed_der(der.as_ref())
        )
        .is_err()
    );
    let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
    let pkcs8 = rsa.as_der().unwrap();
    assert!(
        SigningKey::new(
            Algorithm::RS256,
            "x".into(),
            EncodingKey::from_rsa_der(pkcs8.as_ref())
        )
        .is_err(),
        "RSA signs from PKCS#1, not PKCS#8"
    );
}

#[test]
fn a_key_is_used_only_with_its_algorithm_and_kid() {
    let key = PublicJwk::parse(&json!({"kty": "EC", "crv": "P-256", "x": b64(&[1; 32]),
        "y": b64(&[2; 32]), "kid": "k1", "alg": "ES256"}))
    .unwrap();
    assert!(key.fits(Algorithm::ES256, Some("k1")));
    assert!(key.fits(Algorithm::ES256, None));
    assert!(!key.fits(Algorithm::ES256, Some("k2")));
    assert!(!key.fits(Algorithm::RS256, Some("k1")));
    assert!(!key.fits(Algorithm::EdDSA, None));
    // An RSA key without `alg` serves both RSA signature schemes; one with an unknown `alg`
    // serves none.
    let n = b64(&[0xC1; 256]);
    let rsa = PublicJwk::parse(&json!({"kty": "RSA", "n": n, "e": "AQAB"})).unwrap();
    assert!(rsa.fits(Algorithm::RS256, None) && rsa.fits(Algorithm::PS256, None));
    assert!(!rsa.fits(Algorithm::HS256, None));
    let odd = PublicJwk::parse(&json!({"kty": "RSA", "n": n, "e": "AQAB", "alg": "XX1"})).unwrap();
    assert!(!odd.fits(Algorithm::RS256, None) && !odd.fits(Algorithm::PS256, None));
}

#[test]
fn unusable_jwks_are_skipped() {
    let set = json!({"keys": [
        {"kty": "EC", "crv": "secp256k1", "x": b64(&[1; 32]), "y": b64(&[2; 32])},
        {"kty": "EC", "crv": "P-384", "x": b64(&[1; 48]), "y": b64(&[2; 48])},
        {"kty": "EC", "crv": "P-256", "x": b64(&[1; 31]), "y": b64(&[2; 33])},
        {"kty": "oct", "k": b64(b"shared")},
        {"kty": "RSA", "n": b64(&[0xC1; 128]), "e": "AQAB"},
        {"kty": "RSA", "n": b64(&[0; 256]), "e": "AQAB"},
        {"kty": "OKP", "crv": "X25519", "x": b64(&[7; 32])},
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 31])},
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "use": "enc"},
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "key_ops": ["encrypt"]},
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "d": b64(&[9; 32])},
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "alg": 5},
        "not an object",
        {"kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "kid": "good",
            "key_ops": ["verify"], "use": "sig"},
    ]});
    let keys = PublicJwk::parse_set(&set, 32).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid(), Some("good"));
    assert!(PublicJwk::parse_set(&set, 13).unwrap().is_empty());
    assert!(PublicJwk::parse_set(&json!({"no": "keys"}), 32).is_err());
}
