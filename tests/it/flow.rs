//! The standard flows, driven by the `openidconnect` crate acting as the app.

use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};
use reqwest::StatusCode;
use serde_json::Value;
use telegram_oidc::keys::SigningAlg;
use telegram_oidc::store::{AccessTokenFormat, ClientKind};

use crate::harness::*;

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn oidc_client(app: &TestApp, client: &TestClient) -> (CoreProviderMetadata, String) {
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(app.base.clone()).unwrap(), &http())
            .await
            .expect("discovery");
    (metadata, client.redirect_uri.clone())
}

/// The whole code flow for one client and algorithm, checked at each step by a real client library.
async fn full_flow(alg: SigningAlg, format: AccessTokenFormat) {
    full_flow_on(TestApp::start().await, alg, format).await;
}

async fn full_flow_on(app: TestApp, alg: SigningAlg, format: AccessTokenFormat) {
    let tc = app
        .client(ClientSpec {
            alg,
            format,
            ..Default::default()
        })
        .await;
    let (metadata, redirect) = oidc_client(&app, &tc).await;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(tc.id().to_string()),
        Some(ClientSecret::new(tc.secret().to_string())),
    )
    .set_redirect_uri(RedirectUrl::new(redirect).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (auth_url, csrf, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("profile".into()))
        .add_scope(Scope::new("telegram".into()))
        .add_scope(Scope::new("offline_access".into()))
        .set_pkce_challenge(challenge)
        .url();

    let browser = Browser::new();
    let user = TgUser::new(424242);
    let back = authorize_through(&app, &browser, auth_url.as_str(), &user).await;
    assert!(back.starts_with(&tc.redirect_uri), "{back}");
    assert_eq!(
        query_param(&back, "state").as_deref(),
        Some(csrf.secret().as_str())
    );
    assert_eq!(
        query_param(&back, "iss").as_deref(),
        Some(app.base.as_str())
    );
    let code = query_param(&back, "code").expect("a code");

    let http = http();
    let tokens = client
        .exchange_code(AuthorizationCode::new(code))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("code exchange");
    let id_token = tokens.id_token().expect("an ID token");
    let id_verifier = client.id_token_verifier();
    let claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("a valid ID token");
    assert_eq!(claims.subject().as_str(), "424242");
    assert_eq!(claims.issuer().as_str(), app.base);
    assert_eq!(claims.audiences()[0].as_str(), tc.id());
    assert_eq!(
        claims.preferred_username().map(|u| u.as_str().to_string()),
        Some("ada_tg".into())
    );
    assert!(claims.auth_time().is_some());
    let at_hash = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(claims.access_token_hash(), Some(&at_hash));
    let header = decode_jwt_part(&id_token.to_string(), 0);
    assert_eq!(header["alg"], alg.as_str());
    let access = tokens.access_token().secret().clone();
    match format {
        AccessTokenFormat::Jwt => {
            let h = decode_jwt_part(&access, 0);
            assert_eq!(h["typ"], "at+jwt");
            let c = decode_jwt_part(&access, 1);
            assert_eq!(c["client_id"], tc.id());
            assert_eq!(c["sub"], "424242");
            assert!(c["jti"].as_str().is_some());
        }
        AccessTokenFormat::Opaque => assert!(access.starts_with("tgat_")),
    }

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), "424242");
    assert_eq!(
        info.given_name()
            .and_then(|n| n.get(None))
            .map(|n| n.as_str().to_string()),
        Some("Ada".into())
    );
    let raw: Value = http
        .get(app.url("/userinfo"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(raw["telegram_id"], 424242);
    assert_eq!(raw["telegram_username"], "ada_tg");

    // Refresh rotates: a new refresh token every time, and the new access token works.
    let first_refresh = tokens.refresh_token().expect("a refresh token").clone();
    let refreshed = client
        .exchange_refresh_token(&first_refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("refresh");
    let second_refresh = refreshed.refresh_token().expect("a successor").clone();
    assert_ne!(second_refresh.secret(), first_refresh.secret());
    let refreshed_id = refreshed.id_token().expect("a fresh ID token");
    let refreshed_claims = refreshed_id
        .claims(&id_verifier, |_: Option<&Nonce>| Ok(()))
        .expect("valid refreshed ID token");
    assert_eq!(refreshed_claims.subject().as_str(), "424242");
    let info: CoreUserInfoClaims = client
        .user_info(refreshed.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo with the refreshed token");
    assert_eq!(info.subject().as_str(), "424242");
    let again = client
        .exchange_refresh_token(&second_refresh)
        .unwrap()
        .request_async(&http)
        .await
        .expect("the successor works");
    assert!(again.refresh_token().is_some());
    app.stop().await;
}

fn decode_jwt_part(jwt: &str, index: usize) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(index).unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn code_flow_rs256_with_jwt_access_tokens() {
    full_flow(SigningAlg::RS256, AccessTokenFormat::Jwt).await;
}

#[tokio::test]
async fn code_flow_es256_with_opaque_access_tokens() {
    full_flow(SigningAlg::ES256, AccessTokenFormat::Opaque).await;
}

#[tokio::test]
async fn code_flow_on_postgres() {
    let Some(url) = crate::store::postgres_url() else {
        return;
    };
    let app = TestApp::start_with(|c| c.database_url = url).await;
    full_flow_on(app, SigningAlg::RS256, AccessTokenFormat::Opaque).await;
}

#[tokio::test]
async fn code_flow_eddsa() {
    full_flow(SigningAlg::EdDSA, AccessTokenFormat::Jwt).await;
}

#[tokio::test]
async fn discovery_is_complete_and_jwks_is_usable() {
    let app = TestApp::start().await;
    let doc: Value = http()
        .get(app.url("/.well-known/openid-configuration"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], app.base);
    for key in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "scopes_supported",
        "claims_supported",
        "response_types_supported",
        "grant_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
        "token_endpoint_auth_methods_supported",
    ] {
        assert!(doc.get(key).is_some(), "discovery lacks {key}");
    }
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert_eq!(doc["authorization_response_iss_parameter_supported"], true);
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    let jwks: Value = http()
        .get(doc["jwks_uri"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    let algs: Vec<&str> = keys.iter().map(|k| k["alg"].as_str().unwrap()).collect();
    for alg in ["RS256", "ES256", "EdDSA"] {
        assert!(algs.contains(&alg), "JWKS lacks {alg}: {algs:?}");
    }
    for k in keys {
        assert_eq!(k["use"], "sig");
        assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()));
    }
    app.stop().await;
}

fn authorize_url(app: &TestApp, client: &TestClient, scope: &str, extra: &str) -> String {
    let verifier = "v".repeat(50);
    format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope={}&state=s1&code_challenge={}&code_challenge_method=S256{}",
        app.url("/authorize"),
        client.id(),
        url::form_urlencoded::byte_serialize(client.redirect_uri.as_bytes()).collect::<String>(),
        url::form_urlencoded::byte_serialize(scope.as_bytes()).collect::<String>(),
        telegram_oidc::oidc::pkce::s256(&verifier),
        extra
    )
}

#[tokio::test]
async fn a_second_app_needs_no_second_telegram_login_and_consent_is_remembered() {
    let app = TestApp::start().await;
    let a = app.confidential_client().await;
    let b = app.confidential_client().await;
    let browser = Browser::new();
    let user = TgUser::new(777);
    let back = authorize_through(
        &app,
        &browser,
        &authorize_url(&app, &a, "openid profile", ""),
        &user,
    )
    .await;
    assert!(query_param(&back, "code").is_some());

    // Client B: the session is reused, only consent is asked.
    let resp = browser.get(&authorize_url(&app, &b, "openid", "")).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let next = location(resp.headers());
    assert!(next.contains("/consent?"), "expected consent, got {next}");
    let back = approve_consent(&app, &browser, &absolute(&app, &next)).await;
    assert!(query_param(&back, "code").is_some());

    // Client A again with the same scopes: straight back with a code.
    let resp = browser
        .get(&authorize_url(&app, &a, "openid profile", ""))
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    assert!(query_param(&location(resp.headers()), "code").is_some());

    // More scopes than consented: asked again.
    let resp = browser
        .get(&authorize_url(&app, &a, "openid profile telegram", ""))
        .await;
    assert!(location(resp.headers()).contains("/consent?"));

    // prompt=consent asks even when remembered.
    let resp = browser
        .get(&authorize_url(
            &app,
            &a,
            "openid profile",
            "&prompt=consent",
        ))
        .await;
    assert!(location(resp.headers()).contains("/consent?"));

    // prompt=login sends the user back to Telegram.
    let resp = browser
        .get(&authorize_url(&app, &a, "openid profile", "&prompt=login"))
        .await;
    assert!(location(resp.headers()).contains("/login?"));
    app.stop().await;
}

#[tokio::test]
async fn prompt_none_without_a_session_answers_login_required() {
    let app = TestApp::start().await;
    let a = app.confidential_client().await;
    let resp = Browser::new()
        .get(&authorize_url(&app, &a, "openid", "&prompt=none"))
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let back = location(resp.headers());
    assert!(back.starts_with(&a.redirect_uri));
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("login_required")
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("s1"));
    assert_eq!(
        query_param(&back, "iss").as_deref(),
        Some(app.base.as_str())
    );
    app.stop().await;
}

#[tokio::test]
async fn max_age_forces_a_new_telegram_login() {
    let app = TestApp::start().await;
    let a = app.confidential_client().await;
    let browser = Browser::new();
    let user = TgUser::new(31337);
    authorize_through(
        &app,
        &browser,
        &authorize_url(&app, &a, "openid", ""),
        &user,
    )
    .await;
    app.clock.advance(120);
    let resp = browser
        .get(&authorize_url(&app, &a, "openid", "&max_age=60"))
        .await;
    assert!(location(resp.headers()).contains("/login?"));
    let resp = browser
        .get(&authorize_url(&app, &a, "openid", "&max_age=600"))
        .await;
    assert!(query_param(&location(resp.headers()), "code").is_some());
    app.stop().await;
}

#[tokio::test]
async fn a_public_client_uses_pkce_without_a_secret_and_client_secret_post_works() {
    let app = TestApp::start().await;
    let public = app
        .client(ClientSpec {
            kind: ClientKind::Public,
            ..Default::default()
        })
        .await;
    assert!(public.secret.is_none());
    let metadata = oidc_client(&app, &public).await.0;
    let client = CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(public.id().to_string()),
        None,
    )
    .set_redirect_uri(RedirectUrl::new(public.redirect_uri.clone()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let back = authorize_through(&app, &Browser::new(), url.as_str(), &TgUser::new(5)).await;
    let tokens = client
        .exchange_code(AuthorizationCode::new(query_param(&back, "code").unwrap()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .expect("public client exchange");
    tokens
        .id_token()
        .unwrap()
        .claims(&client.id_token_verifier(), &nonce)
        .unwrap();

    let confidential = app.confidential_client().await;
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(confidential.id().to_string()),
        Some(ClientSecret::new(confidential.secret().to_string())),
    )
    .set_auth_type(AuthType::RequestBody)
    .set_redirect_uri(RedirectUrl::new(confidential.redirect_uri.clone()).unwrap());
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, _, _) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .set_pkce_challenge(challenge)
        .url();
    let back = authorize_through(&app, &Browser::new(), url.as_str(), &TgUser::new(6)).await;
    client
        .exchange_code(AuthorizationCode::new(query_param(&back, "code").unwrap()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http())
        .await
        .expect("client_secret_post exchange");
    app.stop().await;
}

#[tokio::test]
async fn userinfo_accepts_the_token_in_a_post_body_and_profile_updates_on_login() {
    let app = TestApp::start().await;
    let a = app
        .client(ClientSpec {
            skip_consent: true,
            ..Default::default()
        })
        .await;
    let verifier = "v".repeat(50);
    let mut user = TgUser::new(99);
    let back = authorize_through(
        &app,
        &Browser::new(),
        &authorize_url(&app, &a, "openid profile", ""),
        &user,
    )
    .await;
    let token: Value = http()
        .post(app.url("/token"))
        .basic_auth(a.id(), Some(a.secret()))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &query_param(&back, "code").unwrap()),
            ("redirect_uri", &a.redirect_uri),
            ("code_verifier", &verifier),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = token["access_token"].as_str().unwrap();
    let info: Value = http()
        .post(app.url("/userinfo"))
        .form(&[("access_token", access)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], "99");
    assert_eq!(info["name"], "Ada");

    // A new login with a changed Telegram profile refreshes the stored user.
    user.first_name = "Augusta".into();
    authorize_through(
        &app,
        &Browser::new(),
        &authorize_url(&app, &a, "openid profile", ""),
        &user,
    )
    .await;
    let info: Value = http()
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["given_name"], "Augusta");
    app.stop().await;
}

#[tokio::test]
async fn consent_denied_returns_access_denied_to_the_app() {
    let app = TestApp::start().await;
    let a = app.confidential_client().await;
    let browser = Browser::new();
    let resp = browser.get(&authorize_url(&app, &a, "openid", "")).await;
    let login = absolute(&app, &location(resp.headers()));
    let req = req_of(&login);
    let fields = widget_fields(&TgUser::new(12), app.now(), BOT_TOKEN);
    let resp = browser
        .get(&format!(
            "{}?{}",
            app.url(&format!("/login/telegram/{req}")),
            encode(&fields)
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = browser
        .get(&absolute(&app, &location(resp.headers())))
        .await;
    let consent = absolute(&app, &location(resp.headers()));
    let (req, csrf) = consent_form(&browser, &consent).await;
    let resp = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("req".into(), req),
                ("csrf".into(), csrf),
                ("decision".into(), "deny".into()),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::FOUND);
    let back = location(resp.headers());
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("access_denied")
    );
    assert_eq!(
        query_param(&back, "iss").as_deref(),
        Some(app.base.as_str())
    );
    app.stop().await;
}

#[tokio::test]
async fn the_login_page_carries_the_widget_and_a_strict_policy() {
    let app = TestApp::start().await;
    let a = app.confidential_client().await;
    let browser = Browser::new();
    let resp = browser.get(&authorize_url(&app, &a, "openid", "")).await;
    let login = absolute(&app, &location(resp.headers()));
    let page = browser.get(&login).await;
    let csp = page
        .headers()
        .get("content-security-policy")
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("script-src 'nonce-"), "{csp}");
    assert!(csp.contains("https://telegram.org"), "{csp}");
    assert!(
        csp.contains("frame-src https://oauth.telegram.org"),
        "{csp}"
    );
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("telegram-widget.js"));
    assert!(html.contains(&format!("data-telegram-login=\"{BOT_USERNAME}\"")));
    assert!(html.contains("data-auth-url="));
    app.stop().await;
}

#[tokio::test]
async fn dev_mode_emulator_signs_like_telegram_and_exists_only_in_dev_mode() {
    let app = TestApp::start_with(|c| c.dev_mode = true).await;
    let a = app.confidential_client().await;
    let browser = Browser::new();
    let resp = browser
        .get(&authorize_url(&app, &a, "openid profile", ""))
        .await;
    let login = absolute(&app, &location(resp.headers()));
    let req = req_of(&login);
    let html = browser.get(&login).await.text().await.unwrap();
    assert!(html.contains(&format!("/dev/telegram?req={req}")), "{html}");
    let page = browser
        .get(&app.url(&format!("/dev/telegram?req={req}")))
        .await;
    assert_eq!(page.status(), StatusCode::OK);
    let resp = browser
        .post_form(
            &app.url("/dev/telegram"),
            &[
                ("req".into(), req.clone()),
                ("id".into(), "1234567".into()),
                ("first_name".into(), "Emu".into()),
                ("last_name".into(), String::new()),
                ("username".into(), "emu_user".into()),
            ],
        )
        .await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let callback = absolute(&app, &location(resp.headers()));
    assert!(callback.contains(&format!("/login/telegram/{req}?")));
    assert!(query_param(&callback, "hash").is_some());
    // The same callback the real widget uses verifies the emulator's signature.
    let resp = browser.get(&callback).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let resp = browser
        .get(&absolute(&app, &location(resp.headers())))
        .await;
    let back = approve_consent(&app, &browser, &absolute(&app, &location(resp.headers()))).await;
    assert!(query_param(&back, "code").is_some());
    app.stop().await;

    let prod = TestApp::start().await;
    let resp = Browser::new()
        .get(&prod.url("/dev/telegram?req=tgp_x"))
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    prod.stop().await;
}
