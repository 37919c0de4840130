//! A local stand-in for Telegram's OpenID Connect provider (oauth.telegram.org): discovery, a
//! JWKS with an RS256 key and an ES256K (secp256k1) key as Telegram publishes, `/auth` that
//! logs in the user a test chose, and `/token` that checks the client secret and PKCE and
//! returns an RS256 ID token with an opaque `sub` and the Telegram id in `id`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use aws_lc_rs::digest;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, KeyPair as _, RsaKeyPair};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use telegram_oidc::clock::{Clock, SystemClock};

pub const CLIENT_ID: &str = "5550001111";
pub const CLIENT_SECRET: &str = "fake-telegram-web-login-secret";

/// secp256k1's generator point: a valid public key, published as Telegram publishes its
/// ES256K key, to prove the server skips keys it cannot use.
const SECP256K1_X: &str = "79BE667EF9DCBBAC55A06295CE870B07029BFCDB2DCE28D959F2815B16F81798";
const SECP256K1_Y: &str = "483ADA7726A3C4655DA4FBFC0E1108A8FD17B448A68554199C47D08FFB10D4B8";

/// RSA key generation is slow: three keys serve every test.
fn rsa_key(index: usize) -> &'static RsaKeyPair {
    static KEYS: OnceLock<Vec<RsaKeyPair>> = OnceLock::new();
    &KEYS.get_or_init(|| {
        (0..3)
            .map(|_| RsaKeyPair::generate(KeySize::Rsa2048).unwrap())
            .collect()
    })[index]
}

fn rsa_jwk(index: usize, kid: &str) -> Value {
    let pk = rsa_key(index).public_key();
    json!({
        "kty": "RSA",
        "use": "sig",
        "alg": "RS256",
        "kid": kid,
        "n": URL_SAFE_NO_PAD.encode(pk.modulus().big_endian_without_leading_zero()),
        "e": URL_SAFE_NO_PAD.encode(pk.exponent().big_endian_without_leading_zero()),
    })
}

fn es256k_jwk() -> Value {
    json!({
        "kty": "EC",
        "crv": "secp256k1",
        "alg": "ES256K",
        "use": "sig",
        "kid": "es256k-1",
        "x": URL_SAFE_NO_PAD.encode(hex::decode(SECP256K1_X).unwrap()),
        "y": URL_SAFE_NO_PAD.encode(hex::decode(SECP256K1_Y).unwrap()),
    })
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

/// What the next ID tokens get wrong (or differently), for the abuse tests.
#[derive(Clone, Debug, Default)]
pub struct Tweaks {
    pub audience: Option<String>,
    pub nonce: Option<String>,
    pub omit_nonce: bool,
    /// Sign with this RSA key (index) while naming the published kid: a bad signature.
    pub forge_with_key: Option<usize>,
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
    /// (key index, kid) of the published RSA keys; the first one signs.
    rsa_keys: Mutex<Vec<(usize, String)>>,
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
            rsa_keys: Mutex::new(vec![(0, "rsa-1".into())]),
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

    /// Publishes and signs with another RSA key only (a key rotation at Telegram).
    pub fn rotate_to(&self, key_index: usize, kid: &str) {
        *self.inner.rsa_keys.lock().unwrap() = vec![(key_index, kid.to_string())];
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
    let mut keys: Vec<Value> = s
        .rsa_keys
        .lock()
        .unwrap()
        .iter()
        .map(|(index, kid)| rsa_jwk(*index, kid))
        .collect();
    // Telegram lists its ES256K key first; a client that gives up at the first key it cannot
    // parse never reaches the RSA one.
    keys.insert(0, es256k_jwk());
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
    let (signing_index, kid) = s.rsa_keys.lock().unwrap()[0].clone();
    let key_index = tweaks.forge_with_key.unwrap_or(signing_index);
    let id_token = sign_rs256(key_index, &kid, &claims);
    Json(json!({
        "access_token": "telegram-access-token",
        "token_type": "Bearer",
        "expires_in": 3600,
        "id_token": id_token,
    }))
    .into_response()
}

pub fn sign_rs256(key_index: usize, kid: &str, claims: &Value) -> String {
    let header = json!({ "alg": "RS256", "kid": kid, "typ": "JWT" });
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let key = rsa_key(key_index);
    let mut sig = vec![0u8; key.public_modulus_len()];
    key.sign(
        &signature::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut sig,
    )
    .unwrap();
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig))
}
