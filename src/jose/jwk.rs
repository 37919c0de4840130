//! Public keys from someone else's JWK set (RFC 7517), such as the keys a client registers
//! to sign its assertions with.

use jsonwebtoken::jwk::{
    AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, KeyOperations, PublicKeyUse,
};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use serde_json::Value;

use super::{Claims, Reason};

/// Length of a 32-byte coordinate in base64url without padding.
const COORDINATE_B64_LEN: usize = 43;

/// One public signing key of a JWK set that this server can use.
#[derive(Debug)]
pub struct PublicJwk {
    kid: Option<String>,
    /// The key's own `alg`, if it names one.
    alg: Option<KeyAlgorithm>,
    key: DecodingKey,
}

impl PublicJwk {
    /// One JWK as a verification key; `None` for anything this server cannot or must not use
    /// (another kty or curve, a symmetric or encryption key, a private key, an RSA modulus under
    /// 2048 bits). A set may hold keys meant for other parties, so such keys are skipped by
    /// the caller, never fatal.
    pub fn parse(value: &Value) -> Option<PublicJwk> {
        let object = value.as_object()?;
        // A private member means the owner published its secret key: refuse to trust it.
        // (`Jwk` has no private members, so this must be looked at before it parses.)
        if object.contains_key("d") {
            return None;
        }
        let jwk: Jwk = serde_json::from_value(value.clone()).ok()?;
        if jwk
            .common
            .public_key_use
            .as_ref()
            .is_some_and(|u| *u != PublicKeyUse::Signature)
        {
            return None;
        }
        if jwk
            .common
            .key_operations
            .as_ref()
            .is_some_and(|ops| !ops.contains(&KeyOperations::Verify))
        {
            return None;
        }
        let shape_ok = match &jwk.algorithm {
            AlgorithmParameters::RSA(_) => true,
            AlgorithmParameters::EllipticCurve(ec) => {
                ec.curve == EllipticCurve::P256
                    && ec.x.len() == COORDINATE_B64_LEN
                    && ec.y.len() == COORDINATE_B64_LEN
            }
            AlgorithmParameters::OctetKeyPair(okp) => {
                okp.curve == EllipticCurve::Ed25519 && okp.x.len() == COORDINATE_B64_LEN
            }
            // Symmetric keys above all: a JWK set is public, so an HMAC key in it is no secret.
            _ => false,
        };
        if !shape_ok {
            return None;
        }
        let key = DecodingKey::from_jwk(&jwk).ok()?;
        let size_ok = match key.kind() {
            // At least 2048 bits (RFC 7518 §3.3), at most 8192, without leading zero bytes.
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                (256..=1024).contains(&n.len())
                    && n.first() != Some(&0)
                    && (1..=8).contains(&e.len())
                    && e.first() != Some(&0)
            }
            // An uncompressed P-256 point (0x04 || x || y), or an Ed25519 public key.
            DecodingKeyKind::SecretOrDer(bytes) => match key.family() {
                AlgorithmFamily::Ec => bytes.len() == 65,
                AlgorithmFamily::Ed => bytes.len() == 32,
                _ => false,
            },
        };
        if !size_ok {
            return None;
        }
        Some(PublicJwk {
            kid: jwk.common.key_id,
            alg: jwk.common.key_algorithm,
            key,
        })
    }

    /// The usable keys of a JWK set, looking at no more than the first `max_keys`; `Err` only
    /// when it is not a JWK set at all (RFC 7517 §5).
    pub fn parse_set(set: &Value, max_keys: usize) -> Result<Vec<PublicJwk>, Reason> {
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("a JWK set is a JSON object with a `keys` array")?;
        Ok(keys
            .iter()
            .take(max_keys)
            .filter_map(PublicJwk::parse)
            .collect())
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Whether this key may verify a JWS whose header names `alg` and `kid`.
    pub fn fits(&self, alg: Algorithm, kid: Option<&str>) -> bool {
        if kid.is_some() && self.kid.as_deref() != kid {
            return false;
        }
        // A key that names its algorithm is used with that algorithm only (RFC 7517 §4.4).
        if self.alg.is_some_and(|own| own != KeyAlgorithm::from(alg)) {
            return false;
        }
        // Never a symmetric algorithm: the key is public.
        let asymmetric = !matches!(alg.family(), AlgorithmFamily::Hmac);
        asymmetric && self.key.family() == alg.family()
    }

    /// Checks the signature of `token` under `alg` and returns its claims.
    pub fn verify(&self, token: &str, alg: Algorithm) -> Result<Claims, Reason> {
        if !self.fits(alg, None) {
            return Err("header alg does not match the key's alg");
        }
        super::verify_with(token, &self.key, &super::signature_only(alg))
    }
}
