//! `private_key_jwt` client authentication (RFC 7523): inline keys, keys at a `jwks_uri`, and
//! every way an assertion can be wrong.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use telegram_oidc::admin::{self, NewClient};
use telegram_oidc::secrets::new_id;
use telegram_oidc::store::ClientKind;

use crate::harness::*;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const VERIFIER: &str = "assertion-test-verifier-0123456789-abcdefghijklmnopqrstu";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

enum KeyMaterial {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A client's own signing key, as an app would hold it.
pub struct Signer {
    key: KeyMaterial,
    pub kid: String,
    pub alg: &'static str,
}

impl Signer {
    pub fn rs256(kid: &str) -> Signer {
        Signer {
            key: KeyMaterial::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap()),
            kid: kid.into(),
            alg: "RS256",
        }
    }

    pub fn es256(kid: &str) -> Signer {
        Signer {
            key: KeyMaterial::Ec(
                EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap(),
            ),
            kid: kid.into(),
            alg: "ES256",
        }
    }

    pub fn eddsa(kid: &str) -> Signer {
        Signer {
            key: KeyMaterial::Ed(Ed25519KeyPair::generate().unwrap()),
            kid: kid.into(),
            alg: "EdDSA",
        }
    }

    /// The same RSA key, signing with RSASSA-PSS.
    pub fn into_ps256(mut self) -> Signer {
        self.alg = "PS256";
        self
    }

    /// The public JWK, as the client registers it.
    pub fn jwk(&self) -> Value {
        match &self.key {
            KeyMaterial::Rsa(kp) => {
                let pk = kp.public_key();
                json!({"kty": "RSA", "kid": self.kid, "use": "sig",
                    "n": b64(pk.modulus().big_endian_without_leading_zero()),
                    "e": b64(pk.exponent().big_endian_without_leading_zero())})
            }
            KeyMaterial::Ec(kp) => {
                let point = kp.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "kid": self.kid,
                    "x": b64(&point[1..33]), "y": b64(&point[33..65])})
            }
            KeyMaterial::Ed(kp) => {
                json!({"kty": "OKP", "crv": "Ed25519", "kid": self.kid, "alg": "EdDSA",
                    "x": b64(kp.public_key().as_ref())})
            }
        }
    }

    fn raw_sign(&self, input: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.key {
            KeyMaterial::Rsa(kp) => {
                let mut sig = vec![0; kp.public_modulus_len()];
                let padding: &'static dyn signature::RsaEncoding = if self.alg == "PS256" {
                    &signature::RSA_PSS_SHA256
                } else {
                    &signature::RSA_PKCS1_SHA256
                };
                kp.sign(padding, &rng, input, &mut sig).unwrap();
                sig
            }
            KeyMaterial::Ec(kp) => kp.sign(&rng, input).unwrap().as_ref().to_vec(),
            KeyMaterial::Ed(kp) => kp.sign(input).as_ref().to_vec(),
        }
    }

    /// A compact JWS of `claims` under `header`, built by hand.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let sig = self.raw_sign(input.as_bytes());
        format!("{input}.{}", b64(&sig))
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(
            &json!({"alg": self.alg, "typ": "JWT", "kid": self.kid}),
            claims,
        )
    }
}

/// The claims of a good assertion by `client_id` for our token endpoint.
pub fn claims(app: &TestApp, client_id: &str) -> Value {
    let now = app.now();
    json!({
        "iss": client_id,
        "sub": client_id,
        "aud": app.url("/token"),
        "exp": now + 60,
        "iat": now,
        "jti": new_id(),
    })
}

pub fn jwks(signers: &[&Signer]) -> Value {
    json!({"keys": signers.iter().map(|s| s.jwk()).collect::<Vec<_>>()})
}

/// A client that authenticates with keys (inline `jwks` or a `jwks_uri`); it may also use the
/// client credentials grant.
pub async fn key_client(
    app: &TestApp,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
) -> TestClient {
    let redirect_uri = "https://app.example.test/callback".to_string();
    let (record, secret) = admin::add_client(
        app.store.as_ref(),
        NewClient {
            name: "Key app".into(),
            kind: ClientKind::Confidential,
            redirect_uris: vec![redirect_uri.clone()],
            scopes: vec!["openid".into(), "profile".into(), "offline_access".into()],
            service_account: true,
            jwks,
            jwks_uri,
            ..NewClient::default()
        },
        app.now(),
    )
    .await
    .unwrap();
    assert!(secret.is_none(), "a client with keys gets no secret");
    assert!(record.secret_hash.is_none());
    TestClient {
        record,
        secret: None,
        redirect_uri,
    }
}

pub async fn post_form(app: &TestApp, path: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(app.url(path))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// A client credentials request authenticated by `assertion`.
async fn cc(app: &TestApp, assertion: &str) -> (StatusCode, Value) {
    post_form(
        app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", assertion),
        ],
    )
    .await
}

fn assert_invalid_client(result: &(StatusCode, Value), case: &str) {
    assert_eq!(result.0, StatusCode::UNAUTHORIZED, "{case}: {}", result.1);
    assert_eq!(result.1["error"], "invalid_client", "{case}: {}", result.1);
}

#[tokio::test]
async fn code_flow_and_refresh_with_inline_rs256_es256_and_eddsa_keys() {
    let app = TestApp::start().await;
    let rsa = Signer::rs256("rsa-1");
    let ec = Signer::es256("ec-1");
    let ed = Signer::eddsa("ed-1");
    let client = key_client(&app, Some(jwks(&[&rsa, &ec, &ed])), None).await;

    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid%20offline_access&state=s&code_challenge={}&code_challenge_method=S256",
        app.url("/authorize"),
        client.id(),
        url::form_urlencoded::byte_serialize(client.redirect_uri.as_bytes()).collect::<String>(),
        telegram_oidc::oidc::pkce::s256(VERIFIER),
    );
    let back = authorize_through(&app, &Browser::new(), &url, &TgUser::new(4242)).await;
    let code = query_param(&back, "code").unwrap();
    let assertion = rsa.sign(&claims(&app, client.id()));
    let (status, body) = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", VERIFIER),
            ("client_id", client.id()),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &assertion),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body["id_token"].is_string());
    let refresh = body["refresh_token"].as_str().unwrap().to_string();

    // Refresh, signed with the EC key; the audience may be the issuer itself.
    let mut c = claims(&app, client.id());
    c["aud"] = json!(app.base);
    let (status, body) = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &ec.sign(&c)),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let access = body["access_token"].as_str().unwrap().to_string();

    // Introspection with an Ed25519 assertion naming the introspection endpoint (in a list).
    let mut c = claims(&app, client.id());
    c["aud"] = json!(["https://someone-else.example", app.url("/introspect")]);
    let (status, body) = post_form(
        &app,
        "/introspect",
        &[
            ("token", &access),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &ed.sign(&c)),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["active"], true, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn ps256_signatures_verify_against_the_rsa_key() {
    let app = TestApp::start().await;
    let rsa = Signer::rs256("rsa-pss").into_ps256();
    let client = key_client(&app, Some(jwks(&[&rsa])), None).await;
    let (status, body) = cc(&app, &rsa.sign(&claims(&app, client.id()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}

/// Spoils one thing about good claims.
type ClaimsChange = Box<dyn Fn(&mut Value)>;

/// A client's key server: serves the current set, counts the requests.
pub struct KeyServer {
    pub url: String,
    pub set: Arc<Mutex<Value>>,
    pub hits: Arc<AtomicUsize>,
}

pub async fn key_server(set: Value) -> KeyServer {
    let set = Arc::new(Mutex::new(set));
    let hits = Arc::new(AtomicUsize::new(0));
    let (s, h) = (set.clone(), hits.clone());
    let router = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (s, h) = (s.clone(), h.clone());
            async move {
                h.fetch_add(1, Ordering::SeqCst);
                axum::Json(s.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    KeyServer { url, set, hits }
}

#[tokio::test]
async fn jwks_uri_is_cached_and_refetched_for_a_new_key_at_most_every_few_seconds() {
    let app = TestApp::start().await;
    let old = Signer::es256("old");
    let new = Signer::rs256("new");
    let server = key_server(jwks(&[&old])).await;
    let client = key_client(&app, None, Some(server.url.clone())).await;

    let (status, body) = cc(&app, &old.sign(&claims(&app, client.id()))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, _) = cc(&app, &old.sign(&claims(&app, client.id()))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "the set is cached");

    // The client rotates its key. Right after a fetch, an unknown kid does not fetch again.
    *server.set.lock().unwrap() = jwks(&[&new]);
    assert_invalid_client(
        &cc(&app, &new.sign(&claims(&app, client.id()))).await,
        "new key within the refetch interval",
    );
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "rate limited");

    app.clock.advance(11);
    let (status, body) = cc(&app, &new.sign(&claims(&app, client.id()))).await;
    assert_eq!(status, StatusCode::OK, "unknown kid refetches: {body}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);

    // The removed key no longer works.
    assert_invalid_client(
        &cc(&app, &old.sign(&claims(&app, client.id()))).await,
        "removed key",
    );

    // After the cache lifetime the set is fetched again even for a known kid.
    app.clock.advance(301);
    let (status, _) = cc(&app, &new.sign(&claims(&app, client.id()))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_first_requests_share_one_fetch() {
    let app = TestApp::start().await;
    let signer = Signer::es256("k");
    let server = key_server(jwks(&[&signer])).await;
    let client = key_client(&app, None, Some(server.url.clone())).await;
    let assertions: Vec<String> = (0..6)
        .map(|_| signer.sign(&claims(&app, client.id())))
        .collect();
    let results = futures::future::join_all(assertions.iter().map(|a| cc(&app, a))).await;
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_jwks_uri_fails_closed() {
    let app = TestApp::start().await;
    let signer = Signer::es256("k");
    // Nothing listens on port 9 of loopback.
    let client = key_client(&app, None, Some("http://127.0.0.1:9/jwks.json".into())).await;
    assert_invalid_client(
        &cc(&app, &signer.sign(&claims(&app, client.id()))).await,
        "unreachable jwks_uri",
    );
    app.stop().await;
}

#[tokio::test]
async fn forged_replayed_and_malformed_assertions_are_refused() {
    refuses_bad_assertions(TestApp::start().await).await;
}

#[tokio::test]
async fn bad_assertions_are_refused_on_postgres() {
    let Some(url) = crate::store::postgres_url() else {
        return;
    };
    refuses_bad_assertions(TestApp::start_with(|c| c.database_url = url).await).await;
}

async fn refuses_bad_assertions(app: TestApp) {
    let rsa = Signer::rs256("rsa-1");
    let ec = Signer::es256("ec-1");
    let client = key_client(&app, Some(jwks(&[&rsa, &ec])), None).await;
    let id = client.id().to_string();

    // Replay: the same assertion twice, also at another endpoint.
    let once = rsa.sign(&claims(&app, &id));
    assert_eq!(cc(&app, &once).await.0, StatusCode::OK);
    assert_invalid_client(&cc(&app, &once).await, "replayed jti");
    let (status, body) = post_form(
        &app,
        "/introspect",
        &[
            ("token", "x"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &once),
        ],
    )
    .await;
    assert_invalid_client(&(status, body), "replayed at introspection");

    let variants: Vec<(&str, ClaimsChange)> = vec![
        (
            "wrong aud",
            Box::new(|c| c["aud"] = json!("https://other.example/token")),
        ),
        (
            "no aud",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("aud");
            }),
        ),
        (
            "expired",
            Box::new(|c| c["exp"] = json!(c["iat"].as_i64().unwrap() - 120)),
        ),
        (
            "lives too long",
            Box::new(|c| c["exp"] = json!(c["iat"].as_i64().unwrap() + 3600)),
        ),
        (
            "exp at the end of time",
            Box::new(|c| c["exp"] = json!(i64::MAX)),
        ),
        (
            "no exp",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("exp");
            }),
        ),
        (
            "iat in the future",
            Box::new(|c| c["iat"] = json!(c["iat"].as_i64().unwrap() + 600)),
        ),
        (
            "nbf in the future",
            Box::new(|c| c["nbf"] = json!(c["iat"].as_i64().unwrap() + 600)),
        ),
        (
            "iss differs from sub",
            Box::new(|c| c["sub"] = json!("someone-else")),
        ),
        (
            "no jti",
            Box::new(|c| {
                c.as_object_mut().unwrap().remove("jti");
            }),
        ),
        ("empty jti", Box::new(|c| c["jti"] = json!(""))),
        ("numeric jti", Box::new(|c| c["jti"] = json!(7))),
        (
            "unknown client",
            Box::new(|c| {
                c["iss"] = json!("no-such-client");
                c["sub"] = json!("no-such-client");
            }),
        ),
    ];
    for (case, change) in &variants {
        let mut c = claims(&app, &id);
        change(&mut c);
        assert_invalid_client(&cc(&app, &rsa.sign(&c)).await, case);
    }

    // A key the client never registered, even under a registered kid.
    let stranger = Signer::rs256("rsa-1");
    assert_invalid_client(
        &cc(&app, &stranger.sign(&claims(&app, &id))).await,
        "unregistered key",
    );
    // The right key under the wrong algorithm label.
    let header = json!({"alg": "ES256", "kid": "rsa-1"});
    assert_invalid_client(
        &cc(&app, &rsa.sign_with_header(&header, &claims(&app, &id))).await,
        "alg does not fit the key",
    );
    // A good signature over other claims.
    let good = rsa.sign(&claims(&app, &id));
    let parts: Vec<&str> = good.split('.').collect();
    let mut other = claims(&app, &id);
    other["sub"] = json!(id);
    other["aud"] = json!(app.base);
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(other.to_string().as_bytes()),
        parts[2]
    );
    assert_invalid_client(&cc(&app, &tampered).await, "tampered claims");

    // alg none, with and without a signature part.
    let unsigned = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(claims(&app, &id).to_string().as_bytes())
    );
    assert_invalid_client(&cc(&app, &unsigned).await, "alg none");
    assert_invalid_client(
        &cc(&app, &format!("{unsigned}AAAA")).await,
        "alg none with a signature",
    );

    // Algorithm confusion: HS256 keyed with the public key (as JSON, and as the raw modulus).
    for secret in [
        rsa.jwk().to_string().into_bytes(),
        URL_SAFE_NO_PAD
            .decode(rsa.jwk()["n"].as_str().unwrap())
            .unwrap(),
    ] {
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256","typ":"JWT","kid":"rsa-1"}"#),
            b64(claims(&app, &id).to_string().as_bytes())
        );
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, &secret);
        let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
        let forged = format!("{input}.{}", b64(tag.as_ref()));
        assert_invalid_client(&cc(&app, &forged).await, "HS256 with the public key");
    }

    // Garbage in every shape answers invalid_client, never a 500.
    for junk in [
        "",
        "a",
        "a.b",
        "a.b.c",
        "....",
        "%%%.%%%.%%%",
        &"x".repeat(20_000),
    ] {
        let result = cc(&app, junk).await;
        assert!(
            matches!(
                result.0,
                StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST | StatusCode::PAYLOAD_TOO_LARGE
            ),
            "junk {junk:.20}: {result:?}"
        );
    }

    // A forged assertion does not use up the jti of the real one.
    let c = claims(&app, &id);
    assert_invalid_client(&cc(&app, &stranger.sign(&c)).await, "forged first");
    assert_eq!(cc(&app, &rsa.sign(&c)).await.0, StatusCode::OK);

    // client_id, when sent, must be the assertion's client.
    let other_client = app.confidential_client().await;
    let (status, body) = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", other_client.id()),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &ec.sign(&claims(&app, &id))),
        ],
    )
    .await;
    assert_invalid_client(&(status, body), "client_id differs from iss");
    app.stop().await;
}

#[tokio::test]
async fn methods_cannot_be_mixed_or_swapped() {
    let app = TestApp::start().await;
    let ec = Signer::es256("ec-1");
    let key_app = key_client(&app, Some(jwks(&[&ec])), None).await;
    let secret_app = app.confidential_client().await;

    // A client registered for private_key_jwt cannot use a secret, not even an empty one.
    for secret in ["", "guess", secret_app.secret()] {
        let resp = reqwest::Client::new()
            .post(app.url("/token"))
            .basic_auth(key_app.id(), Some(secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "secret {secret:?}");
    }
    let result = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", key_app.id()),
            ("client_secret", "guess"),
        ],
    )
    .await;
    assert_invalid_client(&result, "client_secret_post for a key client");
    // Nor no authentication at all, as if it were public.
    let result = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", key_app.id()),
        ],
    )
    .await;
    assert_invalid_client(&result, "no authentication for a key client");

    // A secret client cannot switch to assertions, even signed with a key of the other client.
    let result = cc(&app, &ec.sign(&claims(&app, secret_app.id()))).await;
    assert_invalid_client(&result, "assertion for a secret client");

    // Two methods at once, or an assertion without its type, are malformed requests.
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(secret_app.id(), Some(secret_app.secret()))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", &ec.sign(&claims(&app, key_app.id()))),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let (status, body) = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_assertion", &ec.sign(&claims(&app, key_app.id()))),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_request");
    let result = post_form(
        &app,
        "/token",
        &[
            ("grant_type", "client_credentials"),
            (
                "client_assertion_type",
                "urn:ietf:params:oauth:client-assertion-type:saml2-bearer",
            ),
            ("client_assertion", &ec.sign(&claims(&app, key_app.id()))),
        ],
    )
    .await;
    assert_invalid_client(&result, "SAML assertion type");

    // The discovery document says what is accepted.
    let doc: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let methods = doc["token_endpoint_auth_methods_supported"]
        .as_array()
        .unwrap();
    assert!(methods.contains(&json!("private_key_jwt")));
    let algs = doc["token_endpoint_auth_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    for alg in ["RS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&json!(alg)), "{alg}");
    }
    assert!(!algs.contains(&json!("HS256")) && !algs.contains(&json!("none")));
    app.stop().await;
}

#[tokio::test]
async fn a_key_set_without_usable_keys_cannot_be_registered() {
    let app = TestApp::start().await;
    let result = admin::add_client(
        app.store.as_ref(),
        NewClient {
            name: "No keys".into(),
            redirect_uris: vec!["https://app.example.test/cb".into()],
            jwks: Some(json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})),
            ..NewClient::default()
        },
        app.now(),
    )
    .await;
    assert!(result.is_err());
    let result = admin::add_client(
        app.store.as_ref(),
        NewClient {
            name: "Plain http keys".into(),
            redirect_uris: vec!["https://app.example.test/cb".into()],
            jwks_uri: Some("http://keys.example.com/jwks.json".into()),
            ..NewClient::default()
        },
        app.now(),
    )
    .await;
    assert!(result.is_err());
    app.stop().await;
}

#[test]
fn the_cli_registers_clients_with_keys() {
    use crate::cli::{run, write_config};
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let keys = dir.path().join("jwks.json");
    std::fs::write(&keys, jwks(&[&Signer::es256("cli-key")]).to_string()).unwrap();
    let keys = keys.to_str().unwrap();
    let redirect = ["--redirect-uri", "https://app.example.test/cb"];

    let (ok, stdout, stderr) = run(
        &config,
        &[
            &[
                "client",
                "add",
                "--name",
                "Keys",
                "--json",
                "--jwks-file",
                keys,
            ],
            &redirect[..],
        ]
        .concat(),
    );
    assert!(ok, "{stderr}");
    let out: Value = serde_json::from_str(&stdout).unwrap();
    assert!(out["client_secret"].is_null(), "{out}");
    assert_eq!(
        out["settings"]["token_endpoint_auth_method"],
        "private_key_jwt"
    );
    assert_eq!(out["settings"]["jwks"]["keys"][0]["kid"], "cli-key");
    let id = out["client_id"].as_str().unwrap();
    let (ok, _, stderr) = run(&config, &["client", "rotate-secret", id]);
    assert!(!ok && stderr.contains("private_key_jwt"), "{stderr}");

    let (ok, stdout, stderr) = run(
        &config,
        &[
            &[
                "client",
                "add",
                "--name",
                "Remote keys",
                "--jwks-uri",
                "https://app.example.test/jwks.json",
            ],
            &redirect[..],
        ]
        .concat(),
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.contains("private_key_jwt, keys at https://app.example.test/jwks.json"),
        "{stdout}"
    );
    assert!(!stdout.contains("client_secret"), "{stdout}");

    for (case, args) in [
        (
            "plain http jwks_uri",
            vec!["--jwks-uri", "http://app.example.test/jwks.json"],
        ),
        ("public with keys", vec!["--public", "--jwks-file", keys]),
        (
            "both",
            vec![
                "--jwks-file",
                keys,
                "--jwks-uri",
                "https://app.example.test/jwks.json",
            ],
        ),
    ] {
        let (ok, _, stderr) = run(
            &config,
            &[
                &["client", "add", "--name", "Bad"],
                &redirect[..],
                &args[..],
            ]
            .concat(),
        );
        assert!(!ok, "{case}: {stderr}");
    }
}
