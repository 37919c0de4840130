//! Key material: generating private keys, parsing them from PKCS#8, and their public JWK
//! (RFC 7517) with its RFC 7638 thumbprint.

use aws_lc_rs::encoding::AsDer as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType,
};
use rsa::pkcs8::PrivateKeyInfo;
use serde_json::Value;

use super::{KeyError, SigningAlg};
use crate::jose::{self, SigningKey, VerifyingKey};

/// A parsed key: kept in memory so that signing does not re-parse anything.
pub(super) struct LoadedKey {
    pub(super) kid: String,
    pub(super) alg: SigningAlg,
    pub(super) created_at: i64,
    pub(super) not_before: Option<i64>,
    pub(super) signing: SigningKey,
    pub(super) verifying: VerifyingKey,
    /// Full public JWK (kid, kty, use, alg and the key members).
    pub(super) jwk: Value,
}

/// Parsed key material, before it has a kid and a creation time.
pub(super) struct KeyMaterial {
    alg: SigningAlg,
    /// The private key as `jsonwebtoken` takes it.
    encoding: EncodingKey,
    /// Public JWK members (kty, crv, n/e or x/y, use, alg), without kid.
    jwk: Jwk,
    /// RFC 7638 thumbprint (SHA-256, base64url): the kid of a generated key.
    pub(super) thumbprint: String,
}

impl KeyMaterial {
    /// Parses a PKCS#8 DER private key of the given algorithm. Errors are human-readable reasons.
    pub(super) fn from_pkcs8(alg: SigningAlg, der: &[u8]) -> Result<KeyMaterial, String> {
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (params, encoding) = match alg {
            SigningAlg::RS256 => {
                let kp = RsaKeyPair::from_pkcs8(der)
                    .map_err(|e| format!("private_key_pkcs8 is not an RSA PKCS#8 key ({e})"))?;
                if kp.public_modulus_len() < 256 {
                    return Err("RSA key is smaller than 2048 bits".to_owned());
                }
                let pk = kp.public_key();
                let params = AlgorithmParameters::RSA(RSAKeyParameters {
                    key_type: RSAKeyType::RSA,
                    n: b64(pk.modulus().big_endian_without_leading_zero()),
                    e: b64(pk.exponent().big_endian_without_leading_zero()),
                });
                (params, EncodingKey::from_rsa_der(rsa_private_key(der)?))
            }
            SigningAlg::ES256 => {
                let kp = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|e| format!("private_key_pkcs8 is not a P-256 PKCS#8 key ({e})"))?;
                let coords = match kp.public_key().as_ref() {
                    [0x04, rest @ ..] if rest.len() == 64 => rest,
                    _ => return Err("P-256 public key is not an uncompressed point".to_owned()),
                };
                let (x, y) = coords.split_at(32);
                let params = AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
                    key_type: EllipticCurveKeyType::EC,
                    curve: EllipticCurve::P256,
                    x: b64(x),
                    y: b64(y),
                });
                (params, EncodingKey::from_ec_der(der))
            }
            SigningAlg::EdDSA => {
                let kp = Ed25519KeyPair::from_pkcs8(der)
                    .map_err(|e| format!("private_key_pkcs8 is not an Ed25519 PKCS#8 key ({e})"))?;
                let params = AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
                    key_type: OctetKeyPairType::OctetKeyPair,
                    curve: EllipticCurve::Ed25519,
                    x: b64(kp.public_key().as_ref()),
                });
                (params, EncodingKey::from_ed_der(der))
            }
        };
        let jwk = Jwk {
            common: CommonParameters {
                public_key_use: Some(PublicKeyUse::Signature),
                key_algorithm: Some(key_algorithm(alg)),
                ..CommonParameters::default()
            },
            algorithm: params,
        };
        let thumbprint = jose::thumbprint(&jwk).map_err(str::to_owned)?;
        Ok(KeyMaterial {
            alg,
            encoding,
            jwk,
            thumbprint,
        })
    }

    pub(super) fn into_loaded(
        self,
        kid: String,
        created_at: i64,
        not_before: Option<i64>,
    ) -> Result<LoadedKey, String> {
        let KeyMaterial {
            alg,
            encoding,
            mut jwk,
            ..
        } = self;
        jwk.common.key_id = Some(kid.clone());
        let verifying = VerifyingKey::from_jwk(alg.jws(), &jwk).map_err(str::to_owned)?;
        let signing = SigningKey::new(alg.jws(), kid.clone(), encoding).map_err(str::to_owned)?;
        let jwk = serde_json::to_value(&jwk).map_err(|e| format!("JWK serialization ({e})"))?;
        Ok(LoadedKey {
            kid,
            alg,
            created_at,
            not_before,
            signing,
            verifying,
            jwk,
        })
    }
}

fn key_algorithm(alg: SigningAlg) -> KeyAlgorithm {
    match alg {
        SigningAlg::RS256 => KeyAlgorithm::RS256,
        SigningAlg::ES256 => KeyAlgorithm::ES256,
        SigningAlg::EdDSA => KeyAlgorithm::EdDSA,
    }
}

/// The PKCS#1 `RSAPrivateKey` inside a PKCS#8 wrapper (RFC 5208 §5), the form `jsonwebtoken`
/// signs with.
fn rsa_private_key(pkcs8: &[u8]) -> Result<&[u8], String> {
    let info = PrivateKeyInfo::try_from(pkcs8)
        .map_err(|e| format!("private_key_pkcs8 is not PKCS#8 ({e})"))?;
    if info.algorithm.oid != rsa::pkcs1::ALGORITHM_OID {
        return Err("private_key_pkcs8 is not an RSA key".to_owned());
    }
    Ok(info.private_key)
}

/// Generates a fresh private key as PKCS#8 DER.
///
/// With aws-lc-rs rather than the `rsa` crate: it writes PKCS#8, the key file format, directly,
/// and it is the faster generator (RSA-2048: 85 ms a key against 190 ms for `rsa` 0.9, mean of
/// 20 on one core).
pub(super) fn generate_pkcs8(alg: SigningAlg) -> Result<Vec<u8>, KeyError> {
    let rng = SystemRandom::new();
    let der = match alg {
        SigningAlg::RS256 => {
            let kp = RsaKeyPair::generate(KeySize::Rsa2048)
                .map_err(|_| KeyError::Crypto("RSA key generation failed"))?;
            let der = kp
                .as_der()
                .map_err(|_| KeyError::Crypto("RSA key serialization failed"))?;
            AsRef::<[u8]>::as_ref(&*der).to_vec()
        }
        SigningAlg::ES256 => {
            EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| KeyError::Crypto("P-256 key generation failed"))?
                .as_ref()
                .to_vec()
        }
        SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8v1(&rng)
            .map_err(|_| KeyError::Crypto("Ed25519 key generation failed"))?
            .as_ref()
            .to_vec(),
    };
    Ok(der)
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::jwk::ThumbprintHash;

    #[test]
    fn rfc7638_thumbprint_vector() {
        // RFC 7638 section 3.1 example.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let jwk = Jwk {
            common: CommonParameters {
                key_algorithm: Some(KeyAlgorithm::RS256),
                key_id: Some("2011-04-29".into()),
                ..CommonParameters::default()
            },
            algorithm: AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: n.into(),
                e: "AQAB".into(),
            }),
        };
        assert_eq!(
            jose::thumbprint(&jwk).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // The same as jsonwebtoken's own, which is what `jose::thumbprint` calls.
        assert_eq!(
            jose::thumbprint(&jwk).unwrap(),
            jwk.thumbprint(ThumbprintHash::SHA256).unwrap()
        );
    }

    #[test]
    fn the_signing_key_of_an_rsa_key_is_its_pkcs1_form() {
        let der = generate_pkcs8(SigningAlg::RS256).unwrap();
        let pkcs1 = rsa_private_key(&der).unwrap();
        assert!(RsaKeyPair::from_der(pkcs1).is_ok());
        let es = generate_pkcs8(SigningAlg::ES256).unwrap();
        assert!(rsa_private_key(&es).is_err());
        assert!(rsa_private_key(b"not a key").is_err());
    }
}
