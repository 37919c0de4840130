//! A local stand-in for Telegram's OpenID Connect provider (oauth.telegram.org): discovery, a
//! JWKS with an ES256K (secp256k1) key first, as Telegram publishes, then RS256, ES256 and EdDSA
//! keys; `/auth` that logs in the user a test chose, and `/token` that checks the client secret
//! and PKCE and returns an ID token with an opaque `sub` and the Telegram id in `id`, signed with
//! the algorithm the test chose (RS256 unless told), as Telegram does per bot.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    self, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair,
};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use k256::ecdsa::signature::Signer as _;
use serde_json::{Value, json};
use telegram_oidc::clock::{Clock, SystemClock};
use telegram_oidc::secrets::random_bytes;

pub const CLIENT_ID: &str = "5550001111";
pub const CLIENT_SECRET: &str = "fake-telegram-web-login-secret";

/// The algorithms a bot may pick in BotFather for its ID tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FakeAlg {
    RS256,
    ES256,
    EdDSA,
    ES256K,
}

impl FakeAlg {
    pub const ALL: [FakeAlg; 4] = [
        FakeAlg::RS256,
        FakeAlg::ES256,
        FakeAlg::EdDSA,
        FakeAlg::ES256K,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FakeAlg::RS256 => "RS256",
            FakeAlg::ES256 => "ES256",
            FakeAlg::EdDSA => "EdDSA",
            FakeAlg::ES256K => "ES256K",
        }
    }
}

/// Three key pairs per algorithm, made once for every test (RSA key generation is slow).
struct KeyMaterial {
    rsa: Vec<RsaKeyPair>,
    p256: Vec<EcdsaKeyPair>,
    ed25519: Vec<Ed25519KeyPair>,
    secp256k1: Vec<k256::ecdsa::SigningKey>,
}

fn material() -> &'static KeyMaterial {
    static KEYS: OnceLock<KeyMaterial> = OnceLock::new();
    KEYS.get_or_init(|| {
        let rng = SystemRandom::new();
        KeyMaterial {
            rsa: (0..3)
                .map(|_| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
                .collect(),
            p256: (0..3)
                .map(|_| {
                    let der = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                        .unwrap();
                    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der.as_ref())
                        .unwrap()
                })
                .collect(),
            ed25519: (0..3)
                .map(|_| {
                    let der = Ed25519KeyPair::generate_pkcs8v1(&rng).unwrap();
                    Ed25519KeyPair::from_pkcs8(der.as_ref()).unwrap()
                })
                .collect(),
            secp256k1: (0..3)
                .map(|_| k256::ecdsa::SigningKey::from_slice(&random_bytes::<32>()).unwrap())
                .collect(),
        }
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The public JWK of key `index` of `alg`, as Telegram publishes it.
fn public_jwk(alg: FakeAlg, index: usize, kid: &str) -> Value {
    let keys = material();
    let mut jwk = match alg {
        FakeAlg::RS256 => {
            let pk = keys.rsa[index].public_key();
            json!({
                "kty": "RSA",
                "n": b64(pk.modulus().big_endian_without_leading_zero()),
                "e": b64(pk.exponent().big_endian_without_leading_zero()),
            })
        }
        FakeAlg::ES256 => {
            let point = keys.p256[index].public_key().as_ref().to_vec();
            json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
        }
        FakeAlg::EdDSA => {
            let x = keys.ed25519[index].public_key().as_ref().to_vec();
            json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&x)})
        }
        FakeAlg::ES256K => {
            let point = keys.secp256k1[index].verifying_key().to_sec1_point(false);
            let point = point.as_bytes();
            json!({"kty": "EC", "crv": "secp256k1", "x": b64(&point[1..33]), "y": b64(&point[33..])})
        }
    };
    jwk["use"] = json!("sig");
    jwk["alg"] = json!(alg.name());
    jwk["kid"] = json!(kid);
    jwk
}

/// `header.claims` signed with key `index` of `alg`; `high_s` turns an ES256K signature into
/// its other valid form (`n - s`), which some signers produce.
pub fn sign(alg: FakeAlg, index: usize, header: &Value, claims: &Value, high_s: bool) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let keys = material();
    let rng = SystemRandom::new();
    let sig = match alg {
        FakeAlg::RS256 => {
            let key = &keys.rsa[index];
            let mut sig = vec![0u8; key.public_modulus_len()];
            key.sign(
                &signature::RSA_PKCS1_SHA256,
                &rng,
                input.as_bytes(),
                &mut sig,
            )
            .unwrap();
            sig
        }
        FakeAlg::ES256 => keys.p256[index]
            .sign(&rng, input.as_bytes())
            .unwrap()
            .as_ref()
            .to_vec(),
        FakeAlg::EdDSA => keys.ed25519[index].sign(input.as_bytes()).as_ref().to_vec(),
        FakeAlg::ES256K => {
            let sig: k256::ecdsa::Signature = keys.secp256k1[index].sign(input.as_bytes());
            let sig = if high_s {
                let (r, s) = sig.split_scalars();
                k256::ecdsa::Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap()
            } else {
                sig
            };
            sig.to_bytes().to_vec()
        }
    };
    format!("{input}.{}", b64(&sig))
}

/// HS256 over `header.claims` under `key`: the algorithm-confusion forgery.
fn sign_hs256(key: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

/// The Telegram user the next `/auth` logs in.
#[derive(Clone, Debug)]
pub struct FakeUser {
    pub id: i64,
    /// Put `id` in the ID token as a string instead of a number.
    pub id_as_string: bool,
    pub name: String,
    pub username: Option<String>,
    pub phone: Option<String>,
}

impl FakeUser {
    pub fn new(id: i64) -> FakeUser {
        FakeUser {
            id,
            id_as_string: false,
            name: "Grace Hopper".into(),
            username: Some("grace_tg".into()),
            phone: None,
        }
    }
}

/// Ways to forge an ID token, as an attacker without Telegram's private key would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Forgery {
    /// `alg: none` and no signature.
    AlgNone,
    /// HS256 keyed with the client secret, which the attacker may know (the bot's owner).
    Hs256WithClientSecret,
    /// HS256 keyed with the published public key's bytes (the classic RS256/HS256 confusion).
    Hs256WithPublicKey,
}

/// What the next ID tokens get wrong (or differently), for the abuse tests.
#[derive(Clone, Debug, Default)]
pub struct Tweaks {
    pub audience: Option<String>,
    pub nonce: Option<String>,
    pub omit_nonce: bool,
    /// Sign with this key (index, of the signing algorithm) while naming the published kid: a
    /// bad signature.
    pub forge_with_key: Option<usize>,
    pub forgery: Option<Forgery>,
    /// Give ES256K signatures their high-`s` form.
    pub high_s: bool,
    pub issuer: Option<String>,
}

struct AuthRequest {
    user: FakeUser,
    redirect_uri: String,
    challenge: String,
    nonce: Option<String>,
    scope: String,
}

struct Inner {
    issuer: String,
    user: Mutex<FakeUser>,
    codes: Mutex<HashMap<String, AuthRequest>>,
    /// (algorithm, key index, kid) of the published keys; the first of the signing algorithm
    /// signs.
    published: Mutex<Vec<(FakeAlg, usize, String)>>,
    signing_alg: Mutex<FakeAlg>,
    tweaks: Mutex<Tweaks>,
    clock: Mutex<Arc<dyn Clock>>,
    pub jwks_fetches: AtomicUsize,
    pub token_calls: AtomicUsize,
}

#[derive(Clone)]
pub struct FakeTelegramOidc {
    pub issuer: String,
    inner: Arc<Inner>,
}

impl FakeTelegramOidc {
    pub async fn start() -> FakeTelegramOidc {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let issuer = format!("http://{}", listener.local_addr().unwrap());
        let inner = Arc::new(Inner {
            issuer: issuer.clone(),
            user: Mutex::new(FakeUser::new(987654321)),
            codes: Mutex::new(HashMap::new()),
            // Telegram lists its ES256K key first; a client that gives up at the first key it
            // cannot parse never reaches the others.
            published: Mutex::new(vec![
                (FakeAlg::ES256K, 0, "es256k-1".into()),
                (FakeAlg::RS256, 0, "rsa-1".into()),
                (FakeAlg::ES256, 0, "es256-1".into()),
                (FakeAlg::EdDSA, 0, "ed25519-1".into()),
            ]),
            signing_alg: Mutex::new(FakeAlg::RS256),
            tweaks: Mutex::new(Tweaks::default()),
            clock: Mutex::new(Arc::new(SystemClock)),
            jwks_fetches: AtomicUsize::new(0),
            token_calls: AtomicUsize::new(0),
        });
        let router = Router::new()
            .route("/.well-known/openid-configuration", get(discovery))
            .route("/.well-known/jwks.json", get(jwks))
            .route("/auth", get(auth))
            .route("/token", post(token))
            .with_state(inner.clone());
        tokio::spawn(async move {
            axum::serve(listener, router).await.unwrap();
        });
        FakeTelegramOidc { issuer, inner }
    }

    /// Issue tokens on the app's clock, which tests move forward.
    pub fn use_clock(&self, clock: Arc<dyn Clock>) {
        *self.inner.clock.lock().unwrap() = clock;
    }

    pub fn log_in_as(&self, user: FakeUser) {
        *self.inner.user.lock().unwrap() = user;
    }

    pub fn tweak(&self, tweaks: Tweaks) {
        *self.inner.tweaks.lock().unwrap() = tweaks;
    }

    /// Signs the next ID tokens with `alg` (BotFather's setting for the bot).
    pub fn sign_with(&self, alg: FakeAlg) {
        *self.inner.signing_alg.lock().unwrap() = alg;
    }

    /// Publishes and signs with another key of the signing algorithm only (a key rotation at
    /// Telegram).
    pub fn rotate_to(&self, key_index: usize, kid: &str) {
        let alg = *self.inner.signing_alg.lock().unwrap();
        let mut published = self.inner.published.lock().unwrap();
        published.retain(|(a, _, _)| *a != alg);
        published.push((alg, key_index, kid.to_string()));
    }

    pub fn jwks_fetches(&self) -> usize {
        self.inner.jwks_fetches.load(Ordering::SeqCst)
    }

    pub fn token_calls(&self) -> usize {
        self.inner.token_calls.load(Ordering::SeqCst)
    }
}

async fn discovery(State(s): State<Arc<Inner>>) -> Json<Value> {
    let i = &s.issuer;
    Json(json!({
        "issuer": i,
        "authorization_endpoint": format!("{i}/auth"),
        "token_endpoint": format!("{i}/token"),
        "jwks_uri": format!("{i}/.well-known/jwks.json"),
        "response_types_supported": ["code"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": ["RS256", "ES256", "EdDSA", "ES256K"],
        "scopes_supported": ["openid", "profile", "phone", "telegram:bot_access"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": ["sub", "id", "name", "preferred_username", "picture", "phone_number"],
    }))
}

async fn jwks(State(s): State<Arc<Inner>>) -> Json<Value> {
    s.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let keys: Vec<Value> = s
        .published
        .lock()
        .unwrap()
        .iter()
        .map(|(alg, index, kid)| public_jwk(*alg, *index, kid))
        .collect();
    Json(json!({ "keys": keys }))
}

async fn auth(State(s): State<Arc<Inner>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let get = |k: &str| q.get(k).cloned();
    if get("client_id").as_deref() != Some(CLIENT_ID)
        || get("response_type").as_deref() != Some("code")
        || get("code_challenge_method").as_deref() != Some("S256")
    {
        return (StatusCode::BAD_REQUEST, "bad authorization request").into_response();
    }
    let (Some(redirect_uri), Some(challenge), Some(state)) =
        (get("redirect_uri"), get("code_challenge"), get("state"))
    else {
        return (StatusCode::BAD_REQUEST, "incomplete authorization request").into_response();
    };
    let code = URL_SAFE_NO_PAD.encode(telegram_oidc::secrets::random_bytes::<24>());
    s.codes.lock().unwrap().insert(
        code.clone(),
        AuthRequest {
            user: s.user.lock().unwrap().clone(),
            redirect_uri: redirect_uri.clone(),
            challenge,
            nonce: get("nonce"),
            scope: get("scope").unwrap_or_default(),
        },
    );
    let mut url = url::Url::parse(&redirect_uri).unwrap();
    url.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", &state);
    (StatusCode::FOUND, [(header::LOCATION, url.to_string())]).into_response()
}

fn token_error(status: StatusCode, error: &str) -> Response {
    (status, Json(json!({ "error": error }))).into_response()
}

async fn token(
    State(s): State<Arc<Inner>>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    s.token_calls.fetch_add(1, Ordering::SeqCst);
    let basic = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let expected = format!("{CLIENT_ID}:{CLIENT_SECRET}");
    let posted = (form.get("client_id"), form.get("client_secret"));
    let authenticated = basic.as_deref() == Some(expected.as_str())
        || posted
            == (
                Some(&CLIENT_ID.to_string()),
                Some(&CLIENT_SECRET.to_string()),
            );
    if !authenticated {
        return token_error(StatusCode::UNAUTHORIZED, "invalid_client");
    }
    if form.get("grant_type").map(String::as_str) != Some("authorization_code") {
        return token_error(StatusCode::BAD_REQUEST, "unsupported_grant_type");
    }
    let Some(request) = form
        .get("code")
        .and_then(|c| s.codes.lock().unwrap().remove(c))
    else {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
    };
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let computed =
        URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, verifier.as_bytes()).as_ref());
    if computed != request.challenge || form.get("redirect_uri") != Some(&request.redirect_uri) {
        return token_error(StatusCode::BAD_REQUEST, "invalid_grant");
    }
    let now = s.clock.lock().unwrap().now();
    let tweaks = s.tweaks.lock().unwrap().clone();
    let user = &request.user;
    let mut claims = json!({
        "iss": tweaks.issuer.clone().unwrap_or_else(|| s.issuer.clone()),
        "aud": tweaks.audience.clone().unwrap_or_else(|| CLIENT_ID.to_string()),
        // Opaque, and deliberately not the Telegram id.
        "sub": format!("1234{}", user.id.wrapping_mul(7919)),
        "iat": now,
        "exp": now + 3600,
        "auth_time": now,
        "id": if user.id_as_string { json!(user.id.to_string()) } else { json!(user.id) },
    });
    if !tweaks.omit_nonce
        && let Some(nonce) = tweaks.nonce.clone().or(request.nonce.clone())
    {
        claims["nonce"] = json!(nonce);
    }
    if request.scope.split(' ').any(|s| s == "profile") {
        claims["name"] = json!(user.name);
        if let Some(u) = &user.username {
            claims["preferred_username"] = json!(u);
        }
        claims["picture"] = json!("https://t.me/i/userpic/320/grace.jpg");
    }
    if request.scope.split(' ').any(|s| s == "phone")
        && let Some(phone) = &user.phone
    {
        claims["phone_number"] = json!(phone);
    }
    let alg = *s.signing_alg.lock().unwrap();
    let (signing_index, kid) = s
        .published
        .lock()
        .unwrap()
        .iter()
        .find(|(a, _, _)| *a == alg)
        .map(|(_, index, kid)| (*index, kid.clone()))
        .expect("a published key of the signing algorithm");
    let id_token = match tweaks.forgery {
        None => {
            let header = json!({ "alg": alg.name(), "kid": kid, "typ": "JWT" });
            let index = tweaks.forge_with_key.unwrap_or(signing_index);
            sign(alg, index, &header, &claims, tweaks.high_s)
        }
        Some(Forgery::AlgNone) => {
            let header = json!({ "alg": "none", "kid": kid, "typ": "JWT" });
            let signed = sign(alg, signing_index, &header, &claims, false);
            format!("{}.", signed.rsplit_once('.').unwrap().0)
        }
        Some(Forgery::Hs256WithClientSecret) => {
            let header = json!({ "alg": "HS256", "kid": kid, "typ": "JWT" });
            sign_hs256(CLIENT_SECRET.as_bytes(), &header, &claims)
        }
        Some(Forgery::Hs256WithPublicKey) => {
            let header = json!({ "alg": "HS256", "kid": kid, "typ": "JWT" });
            let public = public_jwk(alg, signing_index, &kid).to_string();
            sign_hs256(public.as_bytes(), &header, &claims)
        }
    };
    Json(json!({
        "access_token": "telegram-access-token",
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": id_token,
    }))
    .into_response()
}
