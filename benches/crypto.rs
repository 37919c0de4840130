//! Micro-benchmarks of the per-login and per-token cryptography: the Login Widget check, the
//! Mini App initData checks (bot-token HMAC and Telegram's Ed25519 signature), and JWS signing
//! and verification with each algorithm.
//!
//! `cargo bench --bench crypto`; under `cargo test --all-targets` each runs once, as a test.

use std::hint::black_box;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use telegram_oidc::keys::{KeyStore, SigningAlg};
use telegram_oidc::telegram::webapp;
use telegram_oidc::telegram::widget::{self, Freshness};

const BOT_TOKEN: &str = "5550001111:BENCH-bot-token_for-the-benchmark";
const BOT_ID: i64 = 5550001111;
const NOW: i64 = 1_800_000_000;
const FRESHNESS: Freshness = Freshness {
    window_secs: 300,
    skew_secs: 30,
};

fn pairs(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Login Widget fields as Telegram sends them, all optional ones present.
fn widget_fields() -> Vec<(String, String)> {
    let auth_date = NOW.to_string();
    let mut fields = pairs(&[
        ("id", "123456789"),
        ("first_name", "Ada"),
        ("last_name", "Lovelace"),
        ("username", "ada_tg"),
        ("photo_url", "https://t.me/i/userpic/320/ada_tg.jpg"),
        ("auth_date", &auth_date),
    ]);
    let hash = widget::sign(&fields, BOT_TOKEN);
    fields.push(("hash".into(), hash));
    fields
}

fn widget_check(c: &mut Criterion) {
    let fields = widget_fields();
    assert!(widget::verify(&fields, BOT_TOKEN, NOW, FRESHNESS).is_ok());
    c.bench_function("widget::verify", |b| {
        b.iter(|| widget::verify(black_box(&fields), BOT_TOKEN, NOW, FRESHNESS))
    });
}

fn encode(fields: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// initData as a Mini App receives it, with both the bot-token `hash` and Telegram's Ed25519
/// `signature` (made here with a key of our own, whose public half the check is given).
fn init_data(key: &Ed25519KeyPair) -> String {
    let user = json!({
        "id": 123456789,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "username": "ada_tg",
        "language_code": "en",
        "is_premium": true,
        "allows_write_to_pm": true,
        "photo_url": "https://t.me/i/userpic/320/ada_tg.svg"
    })
    .to_string();
    let auth_date = NOW.to_string();
    let mut fields = pairs(&[
        ("query_id", "AAHdF6IQAAAAAN0XohDhrOrc"),
        ("user", &user),
        ("auth_date", &auth_date),
        ("chat_instance", "-8717362617328957041"),
        ("chat_type", "private"),
    ]);
    let signature = key.sign(webapp::signature_message(&fields, BOT_ID).as_bytes());
    fields.push((
        "signature".into(),
        URL_SAFE_NO_PAD.encode(signature.as_ref()),
    ));
    let hash = webapp::hash_with_token(&fields, BOT_TOKEN);
    fields.push(("hash".into(), hash));
    encode(&fields)
}

fn init_data_check(c: &mut Criterion) {
    let key = Ed25519KeyPair::generate().expect("an Ed25519 key");
    let public = key.public_key().as_ref().to_vec();
    let data = init_data(&key);
    assert!(webapp::verify_with_token(&data, BOT_TOKEN, NOW, FRESHNESS).is_ok());
    assert!(webapp::verify_with_signature(&data, BOT_ID, &public, NOW, FRESHNESS).is_ok());
    c.bench_function("webapp::verify_with_token (HMAC)", |b| {
        b.iter(|| webapp::verify_with_token(black_box(&data), BOT_TOKEN, NOW, FRESHNESS))
    });
    c.bench_function("webapp::verify_with_signature (Ed25519)", |b| {
        b.iter(|| webapp::verify_with_signature(black_box(&data), BOT_ID, &public, NOW, FRESHNESS))
    });
}

/// The claims of a typical ID token.
fn id_token_claims() -> serde_json::Value {
    json!({
        "iss": "https://id.example.com",
        "sub": "123456789",
        "aud": "Frs8L8qBRd06fe13Rbw7vg",
        "azp": "Frs8L8qBRd06fe13Rbw7vg",
        "iat": NOW,
        "exp": NOW + 3600,
        "auth_time": NOW,
        "amr": ["telegram_widget"],
        "nonce": "n-0S6_WzA2Mj",
        "at_hash": "77QmUPtjPfzWtF2AnpK9RQ",
        "name": "Ada Lovelace",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "preferred_username": "ada_tg",
        "picture": "https://t.me/i/userpic/320/ada_tg.jpg",
        "updated_at": NOW
    })
}

fn signing(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let keys = KeyStore::open(dir.path(), NOW).expect("a key store");
    let claims = id_token_claims();
    for alg in SigningAlg::ALL {
        let token = keys.sign(alg, "JWT", &claims).expect("a signed token");
        assert!(keys.verify(&token).is_ok());
        c.bench_function(&format!("KeyStore::sign {alg}"), |b| {
            b.iter(|| keys.sign(alg, "JWT", black_box(&claims)))
        });
        c.bench_function(&format!("KeyStore::verify {alg}"), |b| {
            b.iter(|| keys.verify(black_box(&token)))
        });
    }
}

criterion_group!(benches, widget_check, init_data_check, signing);
criterion_main!(benches);
