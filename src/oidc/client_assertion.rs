//! `private_key_jwt` client authentication (RFC 7523 §2.2 and §3, OpenID Connect Core §9): the
//! client proves itself with a short-lived JWT signed by a key it registered, inline (`jwks`)
//! or published at a URL (`jwks_uri`). Each assertion is accepted once (its `jti`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde_json::{Map, Value};

use crate::error::{OAuthError, OAuthResult};
use crate::jose::{self, Algorithm, PublicJwk};
use crate::oidc::Provider;
use crate::oidc::clients::chosen_by;
use crate::outbound::{Chosen, Outbound};
use crate::secrets::sha256;
use crate::store::{ClientKind, ClientRecord};

/// RFC 7523 §2.2 `client_assertion_type`.
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The JWS algorithms a client may sign its assertion with. `none` and the HMAC family are
/// never accepted: a key set is public, so "HS256 keyed with the public key" would be forgeable.
pub const SIGNING_ALGS: [&str; 4] = ["RS256", "PS256", "ES256", "EdDSA"];
/// [`SIGNING_ALGS`], as `jsonwebtoken` names them.
const ACCEPTED_ALGS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::PS256,
    Algorithm::ES256,
    Algorithm::EdDSA,
];

/// Our endpoints that authenticate clients; an assertion may name any of them, or the issuer,
/// as its audience (RFC 7523 §3 item 3).
const AUDIENCE_PATHS: [&str; 3] = ["/token", "/revoke", "/introspect"];

const MAX_ASSERTION_LEN: usize = 16 * 1024;
/// Tolerated difference between the client's clock and ours.
const SKEW_SECS: i64 = 60;
/// The furthest in the future an assertion's `exp` may be: it is a one-request credential.
const MAX_LIFETIME_SECS: i64 = 600;
const MAX_JTI_LEN: usize = 256;
/// Largest JWK set accepted, inline or fetched.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Keys beyond this many in one set are ignored.
const MAX_KEYS: usize = 32;
/// How long a fetched JWK set is used before it is fetched again.
const JWKS_TTL_SECS: i64 = 300;
/// A `jwks_uri` is fetched at most this often, however many unknown kids arrive.
const JWKS_MIN_REFETCH_SECS: i64 = 10;
/// How long a fetched set may still be used while its URL fails to answer.
const JWKS_MAX_STALE_SECS: i64 = 3600;
/// Bound on the cache: distinct `jwks_uri`s remembered at once.
const JWKS_CACHE_ENTRIES: usize = 1024;

/// One usable verification key of a client: a public signing key of its JWK set.
pub type ClientKey = PublicJwk;

/// The usable keys of a JWK set (RFC 7517 §5); `Err` only when it is not a JWK set at all.
/// Keys this server cannot or must not use (another kty or curve, an encryption key, a
/// private key, a short RSA modulus) are skipped, never fatal: a set may hold keys meant for
/// other parties.
pub fn parse_jwks(set: &Value) -> Result<Vec<ClientKey>, String> {
    PublicJwk::parse_set(set, MAX_KEYS).map_err(str::to_owned)
}

/// Checks a JWK set a client registers: small enough, and with at least one key it can sign
/// assertions with.
pub fn check_jwks(set: &Value) -> Result<(), String> {
    if set.to_string().len() > MAX_JWKS_BYTES {
        return Err(format!("the JWK set is larger than {MAX_JWKS_BYTES} bytes"));
    }
    if parse_jwks(set)?.is_empty() {
        return Err(format!(
            "the JWK set has no public signing key this server can use (RSA of 2048 bits or more, EC P-256 or Ed25519 for {})",
            SIGNING_ALGS.join(", ")
        ));
    }
    Ok(())
}

/// Checks a `jwks_uri` a client registers: https, or plain http on a loopback address.
pub fn check_jwks_uri(uri: &str) -> Result<(), String> {
    check_remote_url("jwks_uri", uri)
}

/// A URL this server may fetch for a client (`name` says which setting it is): https, or plain
/// http on a loopback address, without credentials or fragment.
pub fn check_remote_url(name: &str, uri: &str) -> Result<(), String> {
    let parsed =
        url::Url::parse(uri).map_err(|e| format!("{name} `{uri}` is not an absolute URL: {e}"))?;
    if uri.len() > 2000 || parsed.fragment().is_some() || !parsed.username().is_empty() {
        return Err(format!(
            "{name} `{uri}` must be a plain URL without credentials or #fragment"
        ));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if crate::config::is_loopback_url(&parsed) => Ok(()),
        _ => Err(format!(
            "{name} `{uri}` must use https (http only on a loopback address)"
        )),
    }
}

struct CachedSet {
    /// The last set fetched, and when.
    keys: Option<(Arc<Vec<ClientKey>>, i64)>,
    attempted_at: Option<i64>,
    /// Held while this URL is fetched: callers that need it wait for that fetch instead of
    /// starting their own, or failing for want of keys on a cold cache.
    fetching: Arc<tokio::sync::Mutex<()>>,
}

/// Fetched `jwks_uri` sets, kept in memory: a cache only, any node can fetch again.
#[derive(Default)]
pub struct JwksCache {
    entries: Mutex<HashMap<String, CachedSet>>,
}

/// Seconds from `then` to `now`; a clock that went backwards counts as long ago.
fn age(now: i64, then: i64) -> i64 {
    if now >= then {
        now.saturating_sub(then)
    } else {
        i64::MAX
    }
}

type Keys = Arc<Vec<ClientKey>>;

fn usable(cached: &Option<(Keys, i64)>, now: i64, max_age: i64) -> Option<Keys> {
    cached
        .as_ref()
        .filter(|(_, at)| age(now, *at) < max_age)
        .map(|(keys, _)| keys.clone())
}

impl JwksCache {
    /// The keys published at `uri`. Fetches when nothing fresh is cached, or when `refresh`
    /// asks for it (an unknown kid, a signature no cached key verifies), but never more than
    /// once per [`JWKS_MIN_REFETCH_SECS`] per URL, so forged assertions cannot make this
    /// server hammer a client's host. While the URL fails, the last set serves for a while.
    async fn keys(
        &self,
        outbound: &Outbound,
        (uri, chosen): (&str, Chosen),
        now: i64,
        refresh: bool,
    ) -> Option<Keys> {
        // Who chose the URL decides which addresses it may reach, so it is part of the key.
        let target = uri;
        let key = format!("{chosen:?} {uri}");
        let uri = key.as_str();
        let fetching = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            if entries.len() >= JWKS_CACHE_ENTRIES && !entries.contains_key(uri) {
                entries.clear();
            }
            let entry = entries.entry(uri.to_owned()).or_insert_with(|| CachedSet {
                keys: None,
                attempted_at: None,
                fetching: Arc::default(),
            });
            if let Some(fresh) = usable(&entry.keys, now, JWKS_TTL_SECS)
                && !refresh
            {
                return Some(fresh);
            }
            entry.fetching.clone()
        };
        let _one_fetch_at_a_time = fetching.lock().await;
        let stale = {
            let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
            match entries.get_mut(uri) {
                Some(entry) => {
                    // Another caller may have fetched while this one waited.
                    if let Some(fresh) = usable(&entry.keys, now, JWKS_TTL_SECS)
                        && !refresh
                    {
                        return Some(fresh);
                    }
                    if entry
                        .attempted_at
                        .is_some_and(|at| age(now, at) < JWKS_MIN_REFETCH_SECS)
                    {
                        return usable(&entry.keys, now, JWKS_MAX_STALE_SECS);
                    }
                    entry.attempted_at = Some(now);
                    usable(&entry.keys, now, JWKS_MAX_STALE_SECS)
                }
                None => None,
            }
        };
        match fetch_jwks(outbound, target, chosen).await {
            Ok(keys) => {
                let keys = Arc::new(keys);
                let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
                entries.insert(
                    uri.to_owned(),
                    CachedSet {
                        keys: Some((keys.clone(), now)),
                        attempted_at: Some(now),
                        fetching: fetching.clone(),
                    },
                );
                Some(keys)
            }
            Err(reason) => {
                tracing::warn!(jwks_uri = %target, %reason, "fetching a client's JWK set failed");
                stale
            }
        }
    }
}

async fn fetch_jwks(
    outbound: &Outbound,
    uri: &str,
    chosen: Chosen,
) -> Result<Vec<ClientKey>, String> {
    check_jwks_uri(uri)?;
    let set = outbound
        .get_json(uri, MAX_JWKS_BYTES, chosen)
        .await
        .map_err(|e| e.to_string())?;
    parse_jwks(&set)
}

/// A JSON number as whole seconds (RFC 7519 §2 NumericDate may carry a fraction).
fn numeric_date(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    v.as_i64()
        .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
}

/// An assertion, read but not yet trusted.
pub struct Jws {
    pub alg: Algorithm,
    pub kid: Option<String>,
    pub claims: Map<String, Value>,
}

/// Reads an assertion's header and claims without checking its signature, and refuses an
/// algorithm a client may not sign with.
pub fn decode(assertion: &str) -> Result<Jws, &'static str> {
    let (header, claims) = jose::read_unverified(assertion, MAX_ASSERTION_LEN)?;
    if !ACCEPTED_ALGS.contains(&header.alg) {
        return Err("alg not accepted");
    }
    Ok(Jws {
        alg: header.alg,
        kid: header.kid,
        claims,
    })
}

/// Checks the claims that need no key (RFC 7523 §3) for the server named `issuer`; returns the
/// client id and the expiry. Pure: it needs no store and no key.
pub fn check_claims(
    issuer: &str,
    claims: &Map<String, Value>,
    client_id_param: Option<&str>,
    now: i64,
) -> Result<(String, i64), &'static str> {
    let text = |name: &str| claims.get(name).and_then(Value::as_str);
    let iss = text("iss").ok_or("no iss")?;
    if text("sub") != Some(iss) {
        return Err("sub differs from iss");
    }
    if client_id_param.is_some_and(|id| id != iss) {
        return Err("client_id differs from iss");
    }
    if iss.is_empty() || iss.len() > 256 {
        return Err("iss is not a client id");
    }
    let ours = |aud: &str| {
        aud == issuer
            || aud
                .strip_prefix(issuer)
                .is_some_and(|path| AUDIENCE_PATHS.contains(&path))
    };
    let aud_ok = match claims.get("aud") {
        Some(Value::String(a)) => ours(a),
        Some(Value::Array(list)) => list.iter().filter_map(Value::as_str).any(ours),
        _ => false,
    };
    if !aud_ok {
        return Err("aud does not name this server");
    }
    let exp = numeric_date(claims.get("exp")).ok_or("no exp")?;
    if exp.saturating_add(SKEW_SECS) <= now {
        return Err("expired");
    }
    if exp > now + MAX_LIFETIME_SECS + SKEW_SECS {
        return Err("exp too far in the future");
    }
    for name in ["iat", "nbf"] {
        match claims.get(name) {
            None => {}
            Some(v) => match numeric_date(Some(v)) {
                Some(t) if t <= now + SKEW_SECS => {}
                _ => return Err("iat or nbf in the future"),
            },
        }
    }
    match text("jti") {
        Some(jti) if !jti.is_empty() && jti.len() <= MAX_JTI_LEN => {}
        _ => return Err("no usable jti"),
    }
    Ok((iss.to_owned(), exp))
}

/// Authenticates a client by its `client_assertion`. Every failure is the same
/// `invalid_client`; the reason goes to the log only.
pub async fn authenticate(
    provider: &Provider,
    assertion: &str,
    client_id_param: Option<&str>,
    now: i64,
) -> OAuthResult<ClientRecord> {
    match verify(provider, assertion, client_id_param, now).await {
        Ok(client) => Ok(client),
        Err(Refused::Store(e)) => Err(e.into()),
        Err(Refused::Reason(reason)) => {
            tracing::info!(reason, "client assertion refused");
            Err(OAuthError::invalid_client("client authentication failed"))
        }
    }
}

enum Refused {
    Reason(&'static str),
    Store(crate::store::StoreError),
}

impl From<&'static str> for Refused {
    fn from(reason: &'static str) -> Self {
        Refused::Reason(reason)
    }
}

impl From<crate::store::StoreError> for Refused {
    fn from(e: crate::store::StoreError) -> Self {
        Refused::Store(e)
    }
}

async fn verify(
    provider: &Provider,
    assertion: &str,
    client_id_param: Option<&str>,
    now: i64,
) -> Result<ClientRecord, Refused> {
    let jws = decode(assertion)?;
    let (client_id, exp) = check_claims(
        provider.config.issuer.as_str(),
        &jws.claims,
        client_id_param,
        now,
    )?;
    let client = provider
        .store
        .get_client(&client_id)
        .await?
        .ok_or("unknown client")?;
    if !client.settings.uses_private_key_jwt() || client.settings.kind != ClientKind::Confidential {
        return Err("client is not registered for private_key_jwt".into());
    }
    let kid = jws.kid.as_deref();
    let verified = |keys: &[ClientKey]| {
        keys.iter()
            .filter(|k| k.fits(jws.alg, kid))
            .take(MAX_KEYS)
            .any(|k| k.verify(assertion, jws.alg).is_ok())
    };
    let ok = match (&client.settings.jwks, &client.settings.jwks_uri) {
        (Some(set), _) => verified(&parse_jwks(set).map_err(|_| "registered jwks unusable")?),
        (None, Some(uri)) => {
            let cached = provider
                .client_jwks
                .keys(&provider.outbound, (uri, chosen_by(&client)), now, false)
                .await;
            if cached.as_deref().is_some_and(|keys| verified(keys)) {
                true
            } else {
                // A key the client added since we last looked (rotation).
                let fresh = provider
                    .client_jwks
                    .keys(&provider.outbound, (uri, chosen_by(&client)), now, true)
                    .await;
                fresh.as_deref().is_some_and(|keys| verified(keys))
            }
        }
        (None, None) => false,
    };
    if !ok {
        return Err("no registered key verifies the signature".into());
    }
    // Only now, with the signature good, is the jti spent: a forger cannot burn a client's ids.
    let jti = jws.claims.get("jti").and_then(Value::as_str).unwrap_or("");
    let proof = sha256(format!("client_assertion:{client_id}:{jti}").as_bytes());
    if !provider
        .store
        .consume_proof(&proof, exp + SKEW_SECS)
        .await?
    {
        return Err("jti replayed".into());
    }
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    /// The algorithm named `name`, if a client may sign its assertion with it.
    fn accepted_alg(name: &str) -> Option<Algorithm> {
        name.parse::<Algorithm>()
            .ok()
            .filter(|alg| ACCEPTED_ALGS.contains(alg))
    }

    #[test]
    fn unusable_keys_are_skipped_not_fatal() {
        let set = json!({"keys": [
            {"kty": "EC", "crv": "secp256k1", "x": b64(&[1; 32]), "y": b64(&[2; 32])},
            {"kty": "oct", "k": b64(b"shared")},
            {"kty": "RSA", "n": b64(&[0xC1; 128]), "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "use": "enc"},
            {"kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "d": b64(&[9; 32])},
            {"kty": "OKP", "crv": "Ed25519", "x": b64(&[7; 32]), "kid": "good"},
            "not an object",
        ]});
        let keys = parse_jwks(&set).unwrap();
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid(), Some("good"));
        assert!(check_jwks(&set).is_ok());
        assert!(check_jwks(&json!({"keys": [{"kty": "oct", "k": "AA"}]})).is_err());
        assert!(check_jwks(&json!({"no": "keys"})).is_err());
    }

    #[test]
    fn hmac_and_none_are_not_algorithms_here() {
        for alg in ["none", "None", "HS256", "HS512", "RS512", ""] {
            assert_eq!(accepted_alg(alg), None, "{alg}");
        }
        for alg in SIGNING_ALGS {
            assert!(accepted_alg(alg).is_some(), "{alg}");
        }
        let header = b64(br#"{"alg":"HS256","typ":"JWT"}"#);
        let claims = b64(br#"{"iss":"c"}"#);
        assert_eq!(
            decode(&format!("{header}.{claims}.c2ln")).err(),
            Some("alg not accepted")
        );
    }

    #[test]
    fn jwks_uri_must_be_https_or_loopback() {
        assert!(check_jwks_uri("https://app.example.com/jwks.json").is_ok());
        assert!(check_jwks_uri("http://127.0.0.1:9000/jwks").is_ok());
        assert!(check_jwks_uri("http://app.example.com/jwks.json").is_err());
        assert!(check_jwks_uri("https://user:pw@app.example.com/jwks.json").is_err());
        assert!(check_jwks_uri("file:///etc/passwd").is_err());
        assert!(check_jwks_uri("jwks.json").is_err());
    }

    #[test]
    fn numeric_dates_may_have_fractions() {
        assert_eq!(numeric_date(Some(&json!(1700000000))), Some(1_700_000_000));
        assert_eq!(
            numeric_date(Some(&json!(1700000000.7))),
            Some(1_700_000_000)
        );
        assert_eq!(numeric_date(Some(&json!("1700000000"))), None);
        assert_eq!(numeric_date(None), None);
    }
}
