//! JSON Web Signature (RFC 7515, compact serialization): the one place that signs and verifies
//! a JWS, on the `jsonwebtoken` crate with its aws-lc-rs backend. Tokens are encoded, parsed
//! and checked by `jsonwebtoken`; the one look inside a token here explains, for the log, a
//! header it refused. [`provider`] keeps our keys parsed between tokens.
//!
//! - Our own tokens (ID, access and logout tokens): [`SigningKey::sign`], then
//!   [`read_header`] to pick the key by `kid` and [`VerifyingKey::verify`] to check it.
//! - Tokens others sign, such as client assertions (RFC 7523): [`read_unverified`], then a
//!   [`PublicJwk`] from their JWK set (RFC 7517) that [`PublicJwk::fits`] the header.
//! - ID tokens of the provider we log in through (Telegram's): [`IssuerKeys`] from its JWK set,
//!   which verifies RS256, ES256, EdDSA and also ES256K (secp256k1, on `k256`), which
//!   `jsonwebtoken` does not know and which this server never signs with.
//!
//! Claims (`exp`, `iss`, `aud` ...) are left to the caller, checked against its own `now`:
//! `jsonwebtoken` would read the system clock, which this project reads only in `clock.rs`.

mod issuer;
mod jwk;
mod provider;

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::ThumbprintHash;
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Map, Value};

pub use issuer::{IssuerAlg, IssuerHeader, IssuerKeys, read_issuer_header};
pub use jsonwebtoken::Algorithm;
pub use jsonwebtoken::jwk::Jwk;
pub use jwk::PublicJwk;

/// Why a token was refused: fixed text for logs and tests. It never holds token content.
pub type Reason = &'static str;

/// Claims as a JSON object.
pub type Claims = Map<String, Value>;

/// A private key, parsed once, that signs under its `kid` with one algorithm.
pub struct SigningKey {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    /// Keeps the parsed key pair in [`provider`]'s table while this key lives.
    _parsed: provider::Registration<provider::KeyPair>,
}

impl SigningKey {
    /// `key` holds the private key as `jsonwebtoken` takes it: PKCS#1 DER for RSA, PKCS#8 DER
    /// for P-256 and Ed25519. Fails when the key does not parse for `alg`.
    pub fn new(alg: Algorithm, kid: String, key: EncodingKey) -> Result<SigningKey, Reason> {
        let parsed = provider::register_signer(alg, &key)?;
        Ok(SigningKey {
            alg,
            kid,
            key,
            _parsed: parsed,
        })
    }

    /// Signs `claims` as a compact JWS with the header `{"typ", "alg", "kid"}`; `typ` names the
    /// kind of token ("JWT", "at+jwt" per RFC 9068 §2.1, "logout+jwt").
    pub fn sign(&self, typ: &str, claims: &Value) -> Result<String, Reason> {
        provider::install();
        let mut header = Header::new(self.alg);
        header.typ = Some(typ.to_owned());
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.key).map_err(|_| "JWS signing failed")
    }

    /// Signs any header and claims, as a forger holding this key could: to build validly
    /// signed hostile tokens in tests.
    #[cfg(test)]
    pub(crate) fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        use base64::Engine as _;
        let b64 = |v: &Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string().as_bytes())
        };
        provider::install();
        let input = format!("{}.{}", b64(header), b64(claims));
        let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &self.key, self.alg).unwrap();
        format!("{input}.{sig}")
    }
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

/// A public key that verifies tokens of exactly one algorithm.
pub struct VerifyingKey {
    key: DecodingKey,
    validation: Validation,
    /// Keeps the parsed public key in [`provider`]'s table while this key lives.
    _parsed: provider::Registration<aws_lc_rs::signature::ParsedPublicKey>,
}

impl VerifyingKey {
    /// The public half of `jwk`, for `alg`.
    pub fn from_jwk(alg: Algorithm, jwk: &Jwk) -> Result<VerifyingKey, Reason> {
        let key = DecodingKey::from_jwk(jwk).map_err(|_| "JWK is not a usable public key")?;
        let parsed = provider::register_verifier(alg, &key)?;
        Ok(VerifyingKey {
            key,
            validation: signature_only(alg),
            _parsed: parsed,
        })
    }

    /// Checks the signature of `token` under this key's algorithm (a header naming another one
    /// is refused) and returns its claims, which must be a JSON object.
    pub fn verify(&self, token: &str) -> Result<Claims, Reason> {
        verify_with(token, &self.key, &self.validation)
    }
}

/// What `jsonwebtoken` checks: the signature, under `alg` only. The caller checks the claims,
/// against its own clock.
fn signature_only(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation
}

/// Verifies `token` with `key` as `validation` says, and returns the claims.
fn verify_with(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, Reason> {
    provider::install();
    match jsonwebtoken::decode::<Value>(token, key, validation) {
        // As in `read_header`, whether or not the caller used it.
        Ok(data) if data.header.crit.is_some() => Err("unsupported crit header"),
        Ok(data) => match data.claims {
            Value::Object(claims) => Ok(claims),
            _ => Err("claims are not a JSON object"),
        },
        Err(e) => Err(match e.kind() {
            ErrorKind::InvalidSignature => "signature verification failed",
            ErrorKind::InvalidAlgorithm => "header alg does not match the key's alg",
            // Headers that do not parse are refused by `read_header`, which callers use first;
            // past the signature check, a JSON error is the payload's.
            ErrorKind::Json(_) | ErrorKind::Utf8(_) => "claims are not a JSON object",
            ErrorKind::Base64(_) => "not base64url",
            _ => "token rejected",
        }),
    }
}

/// The header of a compact JWS, read before its signature is checked (to choose the key).
/// Refuses tokens longer than `max_len`, an `alg` that is missing, "none" or unknown to
/// `jsonwebtoken`, and any `crit` header: RFC 7515 §4.1.11 says extensions a recipient does
/// not understand make the JWS invalid, and we understand none.
pub fn read_header(token: &str, max_len: usize) -> Result<Header, Reason> {
    if token.len() > max_len {
        return Err("token is too long");
    }
    match jsonwebtoken::decode_header(token) {
        Ok(header) if header.crit.is_some() => Err("unsupported crit header"),
        Ok(header) => Ok(header),
        Err(_) => Err(explain_bad_header(token)),
    }
}

/// The header and the claims of a compact JWS whose signature is not checked yet: RFC 7523
/// needs the claims (`iss`) to find the client whose keys verify it.
pub fn read_unverified(token: &str, max_len: usize) -> Result<(Header, Claims), Reason> {
    let header = read_header(token, max_len)?;
    let claims = jsonwebtoken::dangerous::insecure_decode_claims::<Claims>(token)
        .map_err(|_| "claims are not a JSON object")?;
    Ok((header, claims))
}

/// Why `jsonwebtoken` could not read a header, for the log: it says only that the JSON did
/// not fit, and "no alg" or "alg none" are worth telling apart from noise.
fn explain_bad_header(token: &str) -> Reason {
    use base64::Engine as _;
    let header = token.split('.').next().and_then(|part| {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .ok()?;
        serde_json::from_slice::<Claims>(&bytes).ok()
    });
    let Some(header) = header else {
        return "header is not a base64url JSON object";
    };
    match header.get("alg") {
        None => "header has no alg",
        Some(Value::String(alg)) if alg.eq_ignore_ascii_case("none") => {
            "alg \"none\" is not accepted"
        }
        _ if header.contains_key("crit") => "unsupported crit header",
        _ => "unsupported alg or malformed header",
    }
}

/// A header as JSON, the members it was read with.
pub fn header_json(header: &Header) -> Value {
    serde_json::to_value(header).unwrap_or(Value::Null)
}

/// The RFC 7638 thumbprint of `jwk`: SHA-256, base64url.
pub fn thumbprint(jwk: &Jwk) -> Result<String, Reason> {
    provider::install();
    jwk.thumbprint(ThumbprintHash::SHA256)
        .map_err(|_| "JWK has no thumbprint")
}

#[cfg(test)]
mod tests;
