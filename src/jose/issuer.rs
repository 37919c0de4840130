//! ID tokens from an OpenID provider this server logs in through (Telegram's), verified as its
//! relying party: the provider's JWK set ([`IssuerKeys`]) and the signature of a token under one
//! of the algorithms such a provider signs with. RS256, ES256 and EdDSA go through
//! `jsonwebtoken` like every other JWS here; ES256K (ECDSA on secp256k1), which Telegram offers
//! and `jsonwebtoken` does not know, through the `k256` crate.
//!
//! ES256K lives only on this receiving side: the server never signs with it and never publishes
//! such a key (`keys/` has no secp256k1 at all).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k256::ecdsa::signature::Verifier as _;
use serde_json::Value;

use super::{Algorithm, Claims, PublicJwk, Reason};

/// The algorithms an issuer's ID token may be signed with. Nothing symmetric (an HMAC "signature"
/// under a public key, or under the client secret, proves nothing about the issuer) and never
/// `none`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IssuerAlg {
    RS256,
    ES256,
    EdDSA,
    ES256K,
}

impl IssuerAlg {
    pub fn as_str(self) -> &'static str {
        match self {
            IssuerAlg::RS256 => "RS256",
            IssuerAlg::ES256 => "ES256",
            IssuerAlg::EdDSA => "EdDSA",
            IssuerAlg::ES256K => "ES256K",
        }
    }

    /// The `jsonwebtoken` algorithm, for all but ES256K.
    fn jws(self) -> Option<Algorithm> {
        match self {
            IssuerAlg::RS256 => Some(Algorithm::RS256),
            IssuerAlg::ES256 => Some(Algorithm::ES256),
            IssuerAlg::EdDSA => Some(Algorithm::EdDSA),
            IssuerAlg::ES256K => None,
        }
    }
}

/// The header of an issuer's token, read before anything in it is trusted: to pick the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerHeader {
    pub alg: IssuerAlg,
    pub kid: Option<String>,
}

/// The three parts of a compact JWS, and its signing input (`header.payload`).
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
    signing_input: &'a str,
}

fn split(token: &str, max_len: usize) -> Result<Parts<'_>, Reason> {
    if token.len() > max_len {
        return Err("token is too long");
    }
    let (signing_input, signature) = token.rsplit_once('.').ok_or("not a compact JWS")?;
    let (header, payload) = signing_input.split_once('.').ok_or("not a compact JWS")?;
    if payload.contains('.') {
        return Err("not a compact JWS");
    }
    Ok(Parts {
        header,
        payload,
        signature,
        signing_input,
    })
}

fn json_object(part: &str) -> Option<Claims> {
    let bytes = URL_SAFE_NO_PAD.decode(part).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Reads the header of an issuer's token. Refuses a token longer than `max_len`, a header that
/// is not a base64url JSON object, `alg: none`, a symmetric `alg` (the HS256 confusion), any
/// other algorithm than [`IssuerAlg`]'s, a `kid` that is not a string, and any `crit` header
/// (RFC 7515 §4.1.11: we understand no extension).
pub fn read_issuer_header(token: &str, max_len: usize) -> Result<IssuerHeader, Reason> {
    let parts = split(token, max_len)?;
    let header = json_object(parts.header).ok_or("header is not a base64url JSON object")?;
    if header.contains_key("crit") {
        return Err("unsupported crit header");
    }
    let alg = match header.get("alg") {
        None => return Err("header has no alg"),
        Some(Value::String(alg)) => match alg.as_str() {
            "RS256" => IssuerAlg::RS256,
            "ES256" => IssuerAlg::ES256,
            "EdDSA" => IssuerAlg::EdDSA,
            "ES256K" => IssuerAlg::ES256K,
            none if none.eq_ignore_ascii_case("none") => {
                return Err("alg \"none\" is not accepted");
            }
            hs if hs.len() >= 2 && hs[..2].eq_ignore_ascii_case("HS") => {
                return Err("a symmetric alg (HMAC) is not accepted from an issuer");
            }
            _ => return Err("unsupported alg"),
        },
        Some(_) => return Err("header alg is not a string"),
    };
    let kid = match header.get("kid") {
        None => None,
        Some(Value::String(kid)) => Some(kid.clone()),
        Some(_) => return Err("header kid is not a string"),
    };
    Ok(IssuerHeader { alg, kid })
}

/// A secp256k1 public key for ES256K.
#[derive(Debug)]
struct Es256kKey {
    kid: Option<String>,
    key: k256::ecdsa::VerifyingKey,
}

impl Es256kKey {
    /// An `EC` JWK on `secp256k1` (RFC 8812 §3.1), public and meant for signatures.
    fn parse(value: &Value) -> Option<Es256kKey> {
        let object = value.as_object()?;
        let text = |name: &str| object.get(name).and_then(Value::as_str);
        if object.contains_key("d")
            || text("kty") != Some("EC")
            || text("crv") != Some("secp256k1")
            || text("use").is_some_and(|u| u != "sig")
            || text("alg").is_some_and(|a| a != "ES256K")
        {
            return None;
        }
        if let Some(ops) = object.get("key_ops") {
            let ops = ops.as_array()?;
            if !ops.iter().any(|op| op.as_str() == Some("verify")) {
                return None;
            }
        }
        let coordinate = |name: &str| {
            let bytes = URL_SAFE_NO_PAD.decode(text(name)?).ok()?;
            (bytes.len() == 32).then_some(bytes)
        };
        let mut point = vec![0x04];
        point.extend(coordinate("x")?);
        point.extend(coordinate("y")?);
        // Refuses a point that is not on the curve.
        let key = k256::ecdsa::VerifyingKey::from_sec1_bytes(&point).ok()?;
        let kid = match object.get("kid") {
            None => None,
            Some(Value::String(kid)) => Some(kid.clone()),
            Some(_) => return None,
        };
        Some(Es256kKey { kid, key })
    }

    /// The JWS signature is `r || s`, 32 bytes each (RFC 8812 §3.2, as for ES256). ECDSA
    /// signatures come in two equally valid forms (`s` and `n - s`); `k256` accepts only the
    /// low one, as Bitcoin does, while RFC 8812 and other signers allow either, so a high `s` is
    /// folded to the low one before the check. Nothing here keys on the signature's bytes.
    fn verify(&self, parts: &Parts<'_>) -> Result<(), Reason> {
        let bytes = URL_SAFE_NO_PAD
            .decode(parts.signature)
            .map_err(|_| "not base64url")?;
        if bytes.len() != 64 {
            return Err("an ES256K signature is 64 bytes (r || s)");
        }
        let signature = k256::ecdsa::Signature::from_slice(&bytes)
            .map_err(|_| "signature verification failed")?;
        self.key
            .verify(parts.signing_input.as_bytes(), &signature.normalize_s())
            .map_err(|_| "signature verification failed")
    }
}

#[derive(Debug)]
enum IssuerKey {
    Jws(PublicJwk),
    Es256k(Es256kKey),
}

impl IssuerKey {
    fn kid(&self) -> Option<&str> {
        match self {
            IssuerKey::Jws(key) => key.kid(),
            IssuerKey::Es256k(key) => key.kid.as_deref(),
        }
    }

    fn fits(&self, header: &IssuerHeader) -> bool {
        if header.kid.is_some() && self.kid() != header.kid.as_deref() {
            return false;
        }
        match (self, header.alg.jws()) {
            (IssuerKey::Jws(key), Some(alg)) => key.fits(alg, None),
            (IssuerKey::Es256k(_), None) => true,
            _ => false,
        }
    }
}

/// The usable signing keys of an issuer's JWK set.
#[derive(Debug, Default)]
pub struct IssuerKeys {
    keys: Vec<IssuerKey>,
}

impl IssuerKeys {
    /// The keys of a JWK set this server can verify with, looking at no more than the first
    /// `max_keys`. Keys of other kinds are skipped, never fatal: a provider may publish keys
    /// for others. `Err` only when it is not a JWK set at all.
    pub fn parse(set: &Value, max_keys: usize) -> Result<IssuerKeys, Reason> {
        let keys = set
            .get("keys")
            .and_then(Value::as_array)
            .ok_or("a JWK set is a JSON object with a `keys` array")?;
        let keys = keys
            .iter()
            .take(max_keys)
            .filter_map(|key| match PublicJwk::parse(key) {
                Some(key) => Some(IssuerKey::Jws(key)),
                None => Es256kKey::parse(key).map(IssuerKey::Es256k),
            })
            .collect();
        Ok(IssuerKeys { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether a key of this set has the `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|key| key.kid() == Some(kid))
    }

    /// Checks the signature of `token` with the key its header names (or, without a `kid`, any
    /// key of its algorithm) and returns its claims, which must be a JSON object. Claims are the
    /// caller's to check.
    pub fn verify(&self, token: &str, max_len: usize) -> Result<(IssuerAlg, Claims), Reason> {
        let header = read_issuer_header(token, max_len)?;
        let parts = split(token, max_len)?;
        let mut candidates = self.keys.iter().filter(|key| key.fits(&header)).peekable();
        if candidates.peek().is_none() {
            return Err("no published key fits the token's kid and alg");
        }
        let mut refusal = "signature verification failed";
        for key in candidates {
            let verified = match (key, header.alg.jws()) {
                (IssuerKey::Jws(key), Some(alg)) => key.verify(token, alg),
                (IssuerKey::Es256k(key), None) => key.verify(&parts).and_then(|()| {
                    json_object(parts.payload).ok_or("claims are not a JSON object")
                }),
                _ => continue,
            };
            match verified {
                Ok(claims) => return Ok((header.alg, claims)),
                Err(reason) => refusal = reason,
            }
        }
        Err(refusal)
    }
}

#[cfg(test)]
mod tests {
    use k256::ecdsa::signature::Signer as _;
    use serde_json::json;

    use super::*;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn secp256k1(seed: u8) -> (k256::ecdsa::SigningKey, Value) {
        let key = k256::ecdsa::SigningKey::from_slice(&[seed; 32]).unwrap();
        let point = key.verifying_key().to_sec1_point(false);
        let point = point.as_bytes();
        let jwk = json!({"kty": "EC", "crv": "secp256k1", "alg": "ES256K", "use": "sig",
            "kid": format!("k{seed}"), "x": b64(&point[1..33]), "y": b64(&point[33..])});
        (key, jwk)
    }

    fn es256k_token(key: &k256::ecdsa::SigningKey, kid: &str, claims: &Value) -> String {
        let header = json!({"alg": "ES256K", "kid": kid, "typ": "JWT"});
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig: k256::ecdsa::Signature = key.sign(input.as_bytes());
        format!("{input}.{}", b64(&sig.to_bytes()))
    }

    #[test]
    fn es256k_tokens_verify_in_either_signature_form() {
        let (key, jwk) = secp256k1(7);
        let keys = IssuerKeys::parse(&json!({"keys": [jwk]}), 8).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys.has_kid("k7") && !keys.has_kid("k8"));
        let token = es256k_token(&key, "k7", &json!({"sub": "1"}));
        let (alg, claims) = keys.verify(&token, 4096).unwrap();
        assert_eq!(alg, IssuerAlg::ES256K);
        assert_eq!(claims["sub"], json!("1"));

        // The same signature with `s` replaced by `n - s` is just as valid.
        let (input, sig) = token.rsplit_once('.').unwrap();
        let sig =
            k256::ecdsa::Signature::from_slice(&URL_SAFE_NO_PAD.decode(sig).unwrap()).unwrap();
        let (r, s) = sig.split_scalars();
        let high = k256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert_ne!(high, sig);
        let high_token = format!("{input}.{}", b64(&high.to_bytes()));
        assert!(keys.verify(&high_token, 4096).is_ok());

        // A DER signature, a truncated one, another key's, another payload's.
        let der = format!("{input}.{}", b64(sig.to_der().as_bytes()));
        assert_eq!(
            keys.verify(&der, 4096).err(),
            Some("an ES256K signature is 64 bytes (r || s)")
        );
        let (other, _) = secp256k1(8);
        let forged = es256k_token(&other, "k7", &json!({"sub": "1"}));
        assert_eq!(
            keys.verify(&forged, 4096).err(),
            Some("signature verification failed")
        );
        let (_, payload_sig) = token.split_once('.').unwrap();
        let (_, sig_part) = payload_sig.split_once('.').unwrap();
        let swapped = format!(
            "{}.{}.{sig_part}",
            input.split('.').next().unwrap(),
            b64(br#"{"sub":"2"}"#)
        );
        assert_eq!(
            keys.verify(&swapped, 4096).err(),
            Some("signature verification failed")
        );
        // Unknown kid; no kid (any key of the algorithm).
        let unknown = es256k_token(&key, "k9", &json!({}));
        assert_eq!(
            keys.verify(&unknown, 4096).err(),
            Some("no published key fits the token's kid and alg")
        );
        let header = b64(br#"{"alg":"ES256K"}"#);
        let input = format!("{header}.{}", b64(b"{}"));
        let sig: k256::ecdsa::Signature = key.sign(input.as_bytes());
        assert!(
            keys.verify(&format!("{input}.{}", b64(&sig.to_bytes())), 4096)
                .is_ok()
        );
    }

    #[test]
    fn headers_name_an_asymmetric_algorithm_or_are_refused() {
        let token = |header: Value| format!("{}.e30.c2ln", b64(header.to_string().as_bytes()));
        let ok = read_issuer_header(&token(json!({"alg": "ES256K", "kid": "a"})), 1024).unwrap();
        assert_eq!(ok.alg, IssuerAlg::ES256K);
        assert_eq!(ok.kid.as_deref(), Some("a"));
        for (header, reason) in [
            (json!({"alg": "none"}), "alg \"none\" is not accepted"),
            (json!({"alg": "None"}), "alg \"none\" is not accepted"),
            (
                json!({"alg": "HS256"}),
                "a symmetric alg (HMAC) is not accepted from an issuer",
            ),
            (
                json!({"alg": "hs512"}),
                "a symmetric alg (HMAC) is not accepted from an issuer",
            ),
            (json!({"alg": "PS256"}), "unsupported alg"),
            (json!({"alg": "es256k"}), "unsupported alg"),
            (json!({"kid": "a"}), "header has no alg"),
            (json!({"alg": 1}), "header alg is not a string"),
            (
                json!({"alg": "RS256", "kid": 1}),
                "header kid is not a string",
            ),
            (
                json!({"alg": "RS256", "crit": ["b64"]}),
                "unsupported crit header",
            ),
            (json!("RS256"), "header is not a base64url JSON object"),
        ] {
            assert_eq!(
                read_issuer_header(&token(header.clone()), 1024).err(),
                Some(reason),
                "{header}"
            );
        }
        for garbage in ["", "a", "a.b", "a.b.c.d", "!!.e30.x"] {
            assert!(read_issuer_header(garbage, 1024).is_err(), "{garbage:?}");
        }
        assert_eq!(
            read_issuer_header(&token(json!({"alg": "RS256"})), 10).err(),
            Some("token is too long")
        );
    }

    #[test]
    fn secp256k1_keys_are_checked_and_other_keys_skipped() {
        let (_, good) = secp256k1(3);
        let mut off_curve = good.clone();
        off_curve["y"] = json!(b64(&[1; 32]));
        let mut private = good.clone();
        private["d"] = json!(b64(&[3; 32]));
        let mut for_encryption = good.clone();
        for_encryption["use"] = json!("enc");
        let mut other_alg = good.clone();
        other_alg["alg"] = json!("ES256");
        let mut short = good.clone();
        short["x"] = json!(b64(&[1; 31]));
        let set = json!({"keys": [off_curve, private, for_encryption, other_alg, short,
            {"kty": "oct", "k": "c2VjcmV0"}, good]});
        let keys = IssuerKeys::parse(&set, 16).unwrap();
        assert_eq!(keys.len(), 1);
        assert!(keys.has_kid("k3"));
        // Client keys are read by `PublicJwk`, which never takes a secp256k1 key.
        assert!(PublicJwk::parse(&secp256k1(3).1).is_none());
        assert!(IssuerKeys::parse(&json!({"keys": 1}), 16).is_err());
        assert!(
            IssuerKeys::parse(&json!({"keys": []}), 16)
                .unwrap()
                .is_empty()
        );
    }
}
