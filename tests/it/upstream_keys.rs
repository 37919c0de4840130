//! Telegram's ID tokens in every algorithm a bot may pick (RS256, ES256, EdDSA, ES256K), key
//! rotation followed within seconds, and forged tokens refused and logged at WARN.

use std::io::Write;
use std::sync::{Arc, Mutex};

use reqwest::StatusCode;

use crate::fake_telegram_oidc::{FakeAlg, FakeTelegramOidc, FakeUser, Forgery, Tweaks};
use crate::harness::*;
use crate::upstream::{
    authorize_url, come_back, go_to_telegram, jwt_claims, log_in_through_telegram, redeem,
    start_with_upstream, unique_id,
};

/// One login through Telegram's OIDC: the app's code, or the status and page shown instead.
async fn attempt(app: &TestApp, tc: &TestClient) -> Result<String, (StatusCode, String)> {
    let browser = Browser::new();
    let at = go_to_telegram(app, &browser, &authorize_url(app, tc, "openid")).await;
    come_back(app, &browser, &at.callback).await
}

#[tokio::test]
async fn every_algorithm_telegram_signs_with_logs_in() {
    let fake = FakeTelegramOidc::start().await;
    let app = start_with_upstream(&fake, |_| {}).await;
    let tc = app.confidential_client().await;
    for alg in FakeAlg::ALL {
        let id = unique_id();
        fake.log_in_as(FakeUser::new(id));
        fake.sign_with(alg);
        let back = log_in_through_telegram(&app, &tc, "openid profile").await;
        let claims = jwt_claims(redeem(&app, &tc, &back).await["id_token"].as_str().unwrap());
        assert_eq!(claims["sub"], id.to_string(), "{alg:?}");
        assert_eq!(claims["name"], "Grace Hopper", "{alg:?}");
    }
    // ECDSA's other valid signature form (high s), which k256 alone would refuse.
    fake.sign_with(FakeAlg::ES256K);
    fake.tweak(Tweaks {
        high_s: true,
        ..Default::default()
    });
    let back = log_in_through_telegram(&app, &tc, "openid").await;
    assert!(query_param(&back, "code").is_some());
    assert_eq!(fake.jwks_fetches(), 1, "one key set served all four");
    // Never our own: the server's JWKS has no secp256k1 key and discovery offers no ES256K.
    let ours: serde_json::Value = reqwest::get(app.url("/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(!ours.to_string().contains("secp256k1"), "{ours}");
    let discovery = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!discovery.contains("ES256K"), "{discovery}");
    app.stop().await;
}

#[tokio::test]
async fn a_rotated_key_is_followed_within_seconds() {
    let fake = FakeTelegramOidc::start().await;
    fake.sign_with(FakeAlg::ES256K);
    let app = start_with_upstream(&fake, |_| {}).await;
    let tc = app.confidential_client().await;
    fake.log_in_as(FakeUser::new(unique_id()));
    attempt(&app, &tc).await.unwrap();
    assert_eq!(fake.jwks_fetches(), 1, "discovery read the JWKS once");

    // Telegram rotates its key a few seconds later: the first token with the new kid is
    // accepted, after one fetch.
    app.clock.advance(6);
    fake.rotate_to(1, "es256k-2");
    attempt(&app, &tc).await.unwrap();
    assert_eq!(fake.jwks_fetches(), 2);
    attempt(&app, &tc).await.unwrap();
    assert_eq!(fake.jwks_fetches(), 2, "the new key is cached");

    // Another rotation within the floor between two fetches: refused, no fetch.
    fake.rotate_to(2, "es256k-3");
    let (status, _) = attempt(&app, &tc).await.unwrap_err();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(fake.jwks_fetches(), 2);

    // Once the floor has passed, logins that arrive together cause one fetch between them.
    app.clock.advance(5);
    let logins = futures::future::join_all((0..4).map(|_| attempt(&app, &tc))).await;
    assert!(logins.iter().all(Result::is_ok), "{logins:?}");
    assert_eq!(fake.jwks_fetches(), 3, "one fetch in flight, shared");
    app.stop().await;
}

#[tokio::test]
async fn the_key_set_is_read_again_once_older_than_the_interval() {
    let fake = FakeTelegramOidc::start().await;
    let app = start_with_upstream(&fake, |c| {
        c.telegram_oidc.as_mut().unwrap().jwks_refetch_interval_secs = 60;
    })
    .await;
    let tc = app.confidential_client().await;
    fake.log_in_as(FakeUser::new(unique_id()));
    attempt(&app, &tc).await.unwrap();
    app.clock.advance(59);
    attempt(&app, &tc).await.unwrap();
    assert_eq!(fake.jwks_fetches(), 1);
    app.clock.advance(1);
    attempt(&app, &tc).await.unwrap();
    assert_eq!(
        fake.jwks_fetches(),
        2,
        "a known kid, but the set is a minute old"
    );
    attempt(&app, &tc).await.unwrap();
    assert_eq!(fake.jwks_fetches(), 2);
    app.stop().await;
}

/// The log lines of this thread's tracing events, WARN and above.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

#[tokio::test]
async fn forged_id_tokens_are_refused_and_logged_at_warn() {
    // The test runtime runs the server on this thread: a thread-local subscriber sees its log.
    // tracing caches whether a call site is wanted; with a single scoped subscriber alive it
    // asks the thread that reaches a call site first, which may be another test's (wanting
    // nothing). A second scoped subscriber makes it ask every live subscriber instead.
    let _second = tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default());
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::WARN)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _log = tracing::subscriber::set_default(subscriber);

    let fake = FakeTelegramOidc::start().await;
    let app = start_with_upstream(&fake, |_| {}).await;
    let tc = app.confidential_client().await;
    fake.log_in_as(FakeUser::new(unique_id()));
    let mut cases = vec![
        (
            FakeAlg::RS256,
            Some(Forgery::AlgNone),
            "alg \"none\" is not accepted",
        ),
        (
            FakeAlg::RS256,
            Some(Forgery::Hs256WithClientSecret),
            "a symmetric alg (HMAC) is not accepted",
        ),
        (
            FakeAlg::ES256K,
            Some(Forgery::Hs256WithPublicKey),
            "a symmetric alg (HMAC) is not accepted",
        ),
    ];
    for alg in FakeAlg::ALL {
        cases.push((alg, None, "signature verification failed"));
    }
    for (alg, forgery, reason) in cases {
        fake.sign_with(alg);
        fake.tweak(Tweaks {
            forgery,
            // Without a named forgery: the right kid, another key's signature.
            forge_with_key: forgery.is_none().then_some(2),
            ..Default::default()
        });
        let (status, body) = attempt(&app, &tc).await.unwrap_err();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{alg:?} {forgery:?}");
        assert!(body.contains("could not be verified"), "{body}");
        let log = captured.take();
        let line = log
            .lines()
            .find(|l| l.contains("forged Telegram ID token"))
            .unwrap_or_else(|| panic!("{alg:?} {forgery:?}: no warning in {log:?}"));
        assert!(line.contains("WARN"), "{line}");
        // The reason is logged as a quoted string, its quotes escaped.
        let logged = reason.replace('"', "\\\"");
        assert!(line.contains(&logged), "{alg:?} {forgery:?}: {line}");
        // The token itself is not in the log.
        assert!(!line.contains("eyJ"), "{line}");
    }
    // Claims that do not fit are WARN too, told apart from a forgery.
    fake.sign_with(FakeAlg::EdDSA);
    fake.tweak(Tweaks {
        audience: Some("another-bot".into()),
        ..Default::default()
    });
    let (status, _) = attempt(&app, &tc).await.unwrap_err();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let log = captured.take();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("the audience is not this bot")),
        "{log}"
    );
    app.stop().await;
}
