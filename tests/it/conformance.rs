//! One test per module of the OpenID Foundation's `oidcc-basic-certification-test-plan` and
//! `oidcc-config-certification-test-plan`, named after the module and asserting what it
//! asserts. The suite itself cannot run here; these tests carry its checks.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;
use telegram_oidc::admin::NewClient;
use telegram_oidc::oidc::pkce;

use crate::harness::*;

const VERIFIER: &str = "conformance-verifier-0123456789-abcdefghijklmnopqrstuv";
const REDIRECT: &str = "https://rp.example.test/cb";

/// A relying party as the conformance suite plays it: one registered client, one browser.
struct Rp {
    app: TestApp,
    client: TestClient,
    browser: Browser,
    user: TgUser,
}

impl Rp {
    async fn new() -> Rp {
        Self::with(|_| {}).await
    }

    async fn with(adjust: impl FnOnce(&mut NewClient)) -> Rp {
        let app = TestApp::start().await;
        let mut new = NewClient {
            name: "Conformance RP".into(),
            redirect_uris: vec![REDIRECT.into()],
            scopes: [
                "openid",
                "profile",
                "email",
                "phone",
                "telegram",
                "offline_access",
            ]
            .map(String::from)
            .to_vec(),
            synthetic_email: true,
            ..Default::default()
        };
        adjust(&mut new);
        let (record, secret) = telegram_oidc::admin::add_client(app.store.as_ref(), new, app.now())
            .await
            .unwrap();
        Rp {
            app,
            client: TestClient {
                record,
                secret,
                redirect_uri: REDIRECT.into(),
            },
            browser: Browser::new(),
            user: TgUser::new(5_005_005),
        }
    }

    fn authorize_url(&self, params: &[(&str, &str)]) -> String {
        let mut pairs: Vec<(&str, String)> = vec![
            ("client_id", self.client.id().to_string()),
            ("redirect_uri", REDIRECT.to_string()),
        ];
        pairs.extend(params.iter().map(|(k, v)| (*k, v.to_string())));
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        self.app.url(&format!("/authorize?{query}"))
    }

    /// The usual code request plus `extra`.
    fn code_url(&self, scope: &str, extra: &[(&str, &str)]) -> String {
        let challenge = pkce::s256(VERIFIER);
        let mut params = vec![
            ("response_type", "code"),
            ("scope", scope),
            ("state", "st"),
            ("nonce", "nn"),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ];
        params.extend_from_slice(extra);
        self.authorize_url(&params)
    }

    /// Runs an authorization through login and consent as needed; returns the app redirect.
    async fn authorize(&self, url: &str) -> String {
        authorize_through(&self.app, &self.browser, url, &self.user).await
    }

    /// One hop: the first redirect the server answers with.
    async fn first_hop(&self, url: &str) -> String {
        let resp = self.browser.get(url).await;
        assert!(resp.status().is_redirection(), "{}", resp.status());
        absolute(&self.app, &location(resp.headers()))
    }

    async fn token(&self, form: &[(&str, &str)], post_auth: bool) -> (StatusCode, Value) {
        let mut req = reqwest::Client::new().post(self.app.url("/token"));
        let mut form: Vec<(&str, &str)> = form.to_vec();
        if post_auth {
            form.push(("client_id", self.client.id()));
            form.push(("client_secret", self.client.secret()));
        } else {
            req = req.basic_auth(self.client.id(), Some(self.client.secret()));
        }
        let resp = req.form(&form).send().await.unwrap();
        (resp.status(), resp.json().await.unwrap())
    }

    async fn exchange(&self, back: &str) -> Value {
        let code = query_param(back, "code").expect("a code");
        let (status, body) = self
            .token(
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ],
                false,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    async fn tokens(&self, scope: &str, extra: &[(&str, &str)]) -> Value {
        let back = self.authorize(&self.code_url(scope, extra)).await;
        assert_eq!(query_param(&back, "state").as_deref(), Some("st"));
        self.exchange(&back).await
    }

    async fn userinfo(&self, access: &str) -> Value {
        let resp = reqwest::Client::new()
            .get(self.app.url("/userinfo"))
            .bearer_auth(access)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        resp.json().await.unwrap()
    }
}

fn jwt_part(jwt: &str, i: usize) -> Value {
    serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(jwt.split('.').nth(i).unwrap())
            .unwrap(),
    )
    .unwrap()
}

fn id_claims(tokens: &Value) -> Value {
    jwt_part(tokens["id_token"].as_str().expect("an id_token"), 1)
}

/// The checks the suite's `IdToken.verify()` makes: iss, aud, sub, iat, exp, and the signature
/// against the published JWKS (by kid).
async fn verify_id_token(rp: &Rp, tokens: &Value) -> Value {
    let token = tokens["id_token"].as_str().unwrap();
    let header = jwt_part(token, 0);
    let claims = jwt_part(token, 1);
    assert_eq!(claims["iss"], rp.app.base);
    assert_eq!(claims["aud"], rp.client.id());
    assert!(claims["sub"].as_str().is_some_and(|s| !s.is_empty()));
    let now = rp.app.now();
    assert!(claims["iat"].as_i64().unwrap() <= now + 5);
    assert!(claims["exp"].as_i64().unwrap() > now);
    let jwks: Value = reqwest::get(rp.app.url("/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let kid = header["kid"].as_str().expect("a kid");
    let key = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["kid"] == kid)
        .expect("the kid is in the JWKS");
    assert_eq!(key["alg"], header["alg"]);
    let (signed, signature) = token.rsplit_once('.').unwrap();
    let signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
    let n = URL_SAFE_NO_PAD.decode(key["n"].as_str().unwrap()).unwrap();
    let e = URL_SAFE_NO_PAD.decode(key["e"].as_str().unwrap()).unwrap();
    aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .verify(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            signed.as_bytes(),
            &signature,
        )
        .expect("the ID token verifies with the published key");
    claims
}

#[tokio::test]
async fn oidcc_server() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid", &[]).await;
    let claims = verify_id_token(&rp, &tokens).await;
    assert_eq!(claims["nonce"], "nn");
    assert_eq!(tokens["token_type"], "Bearer");
    assert!(tokens["expires_in"].as_i64().unwrap() > 0);
}

#[tokio::test]
async fn oidcc_server_client_secret_post() {
    let rp = Rp::new().await;
    let back = rp.authorize(&rp.code_url("openid", &[])).await;
    let code = query_param(&back, "code").unwrap();
    let (status, body) = rp
        .token(
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            true,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    verify_id_token(&rp, &body).await;
}

#[tokio::test]
async fn oidcc_response_type_missing() {
    let rp = Rp::new().await;
    let back = rp
        .first_hop(&rp.authorize_url(&[("scope", "openid"), ("state", "st")]))
        .await;
    assert!(back.starts_with(REDIRECT));
    let error = query_param(&back, "error").unwrap();
    assert!(
        error == "invalid_request" || error == "unsupported_response_type",
        "{error}"
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("st"));
}

#[tokio::test]
async fn oidcc_id_token_signature() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid", &[]).await;
    let header = jwt_part(tokens["id_token"].as_str().unwrap(), 0);
    assert_eq!(header["alg"], "RS256");
    verify_id_token(&rp, &tokens).await;
}

#[tokio::test]
async fn oidcc_id_token_unsigned() {
    // Unsigned ID tokens are not offered: discovery must not list `none`, and tokens are signed.
    let rp = Rp::new().await;
    let doc: Value = reqwest::get(rp.app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let algs = doc["id_token_signing_alg_values_supported"]
        .as_array()
        .unwrap();
    assert!(!algs.iter().any(|a| a == "none"));
    let tokens = rp.tokens("openid", &[]).await;
    assert_ne!(
        jwt_part(tokens["id_token"].as_str().unwrap(), 0)["alg"],
        "none"
    );
}

#[tokio::test]
async fn oidcc_userinfo_get() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid", &[]).await;
    let info = rp.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["sub"], id_claims(&tokens)["sub"]);
}

#[tokio::test]
async fn oidcc_userinfo_post_header() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid", &[]).await;
    let info: Value = reqwest::Client::new()
        .post(rp.app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], id_claims(&tokens)["sub"]);
}

#[tokio::test]
async fn oidcc_userinfo_post_body() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid", &[]).await;
    let info: Value = reqwest::Client::new()
        .post(rp.app.url("/userinfo"))
        .form(&[("access_token", tokens["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], id_claims(&tokens)["sub"]);
}

#[tokio::test]
async fn oidcc_ensure_request_without_nonce_succeeds_for_code_flow() {
    let rp = Rp::new().await;
    let challenge = pkce::s256(VERIFIER);
    let url = rp.authorize_url(&[
        ("response_type", "code"),
        ("scope", "openid"),
        ("state", "st"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let tokens = rp.exchange(&rp.authorize(&url).await).await;
    assert!(id_claims(&tokens).get("nonce").is_none());
}

#[tokio::test]
async fn oidcc_scope_profile() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid profile", &[]).await;
    let info = rp.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["name"], "Ada");
    assert_eq!(info["given_name"], "Ada");
    assert_eq!(info["preferred_username"], "ada_tg");
    assert!(info["updated_at"].is_i64());
}

#[tokio::test]
async fn oidcc_scope_email() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid email", &[]).await;
    let info = rp.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["email"], "5005005@telegram.invalid");
    assert_eq!(info["email_verified"], false);
    assert_eq!(id_claims(&tokens)["email"], "5005005@telegram.invalid");
}

#[tokio::test]
async fn oidcc_scope_address() {
    // Telegram knows no address: the scope is not offered, and asking for it does not fail.
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid address", &[]).await;
    let info = rp.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert!(info.get("address").is_none());
    assert_eq!(tokens["scope"], "openid");
}

#[tokio::test]
async fn oidcc_scope_phone() {
    // A phone number is released only when Telegram shared one; the request succeeds either way.
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid phone", &[]).await;
    let info = rp.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["sub"], "5005005");
    assert!(info.get("phone_number").is_none());
}

#[tokio::test]
async fn oidcc_scope_all() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid profile email address phone", &[]).await;
    let info = rp.userinfo(tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(info["name"], "Ada");
    assert_eq!(info["email"], "5005005@telegram.invalid");
}

#[tokio::test]
async fn oidcc_ensure_other_scope_order_succeeds() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("email openid", &[]).await;
    verify_id_token(&rp, &tokens).await;
    assert_eq!(id_claims(&tokens)["email"], "5005005@telegram.invalid");
}

#[tokio::test]
async fn oidcc_display_page() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid", &[("display", "page")]).await;
    verify_id_token(&rp, &tokens).await;
}

#[tokio::test]
async fn oidcc_display_popup() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid", &[("display", "popup")]).await;
    verify_id_token(&rp, &tokens).await;
}

#[tokio::test]
async fn oidcc_prompt_login() {
    let rp = Rp::new().await;
    let first = id_claims(&rp.tokens("openid", &[]).await);
    rp.app.clock.advance(2);
    let hop = rp
        .first_hop(&rp.code_url("openid", &[("prompt", "login")]))
        .await;
    assert!(
        hop.contains("/login?"),
        "prompt=login must ask for a new login: {hop}"
    );
    let second = id_claims(&rp.tokens("openid", &[("prompt", "login")]).await);
    assert!(second["auth_time"].as_i64() > first["auth_time"].as_i64());
    assert_eq!(first["sub"], second["sub"]);
}

#[tokio::test]
async fn oidcc_prompt_none_not_logged_in() {
    let rp = Rp::new().await;
    let back = rp
        .first_hop(&rp.code_url("openid", &[("prompt", "none")]))
        .await;
    assert!(back.starts_with(REDIRECT));
    let error = query_param(&back, "error").unwrap();
    assert!(
        ["login_required", "interaction_required", "consent_required"].contains(&error.as_str()),
        "{error}"
    );
    assert_eq!(query_param(&back, "state").as_deref(), Some("st"));
}

#[tokio::test]
async fn oidcc_prompt_none_logged_in() {
    let rp = Rp::new().await;
    let first = id_claims(&rp.tokens("openid", &[]).await);
    let back = rp
        .first_hop(&rp.code_url("openid", &[("prompt", "none")]))
        .await;
    assert!(query_param(&back, "code").is_some(), "{back}");
    let second = id_claims(&rp.exchange(&back).await);
    assert_eq!(first["sub"], second["sub"]);
}

#[tokio::test]
async fn oidcc_max_age_1() {
    let rp = Rp::new().await;
    let first = id_claims(&rp.tokens("openid", &[]).await);
    rp.app.clock.advance(2);
    let hop = rp
        .first_hop(&rp.code_url("openid", &[("max_age", "1")]))
        .await;
    assert!(
        hop.contains("/login?"),
        "max_age=1 after 2 s needs a new login"
    );
    let second = id_claims(&rp.tokens("openid", &[("max_age", "1")]).await);
    assert!(second["auth_time"].as_i64() > first["auth_time"].as_i64());
}

#[tokio::test]
async fn oidcc_max_age_10000() {
    let rp = Rp::new().await;
    let first = id_claims(&rp.tokens("openid", &[]).await);
    rp.app.clock.advance(2);
    let back = rp
        .first_hop(&rp.code_url("openid", &[("max_age", "10000")]))
        .await;
    assert!(
        query_param(&back, "code").is_some(),
        "no new login within max_age"
    );
    let second = id_claims(&rp.exchange(&back).await);
    assert_eq!(second["auth_time"], first["auth_time"]);
}

#[tokio::test]
async fn oidcc_ensure_request_with_unknown_parameter_succeeds() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid", &[("extra", "foobar")]).await;
    verify_id_token(&rp, &tokens).await;
}

#[tokio::test]
async fn oidcc_id_token_hint() {
    let rp = Rp::new().await;
    let first = rp.tokens("openid", &[]).await;
    let hint = first["id_token"].as_str().unwrap();
    let back = rp
        .first_hop(&rp.code_url("openid", &[("prompt", "none"), ("id_token_hint", hint)]))
        .await;
    let second = id_claims(&rp.exchange(&back).await);
    assert_eq!(second["sub"], id_claims(&first)["sub"]);
    // A hint that is not ours is refused.
    let back = rp
        .first_hop(&rp.code_url("openid", &[("id_token_hint", "e30.e30.AAAA")]))
        .await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("invalid_request")
    );
}

#[tokio::test]
async fn oidcc_login_hint() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid", &[("login_hint", "5005005")]).await;
    verify_id_token(&rp, &tokens).await;
}

#[tokio::test]
async fn oidcc_ui_locales() {
    let rp = Rp::new().await;
    verify_id_token(&rp, &rp.tokens("openid", &[("ui_locales", "ru en")]).await).await;
}

#[tokio::test]
async fn oidcc_claims_locales() {
    let rp = Rp::new().await;
    verify_id_token(&rp, &rp.tokens("openid", &[("claims_locales", "ru")]).await).await;
}

#[tokio::test]
async fn oidcc_ensure_request_with_acr_values_succeeds() {
    let rp = Rp::new().await;
    verify_id_token(&rp, &rp.tokens("openid", &[("acr_values", "1 2")]).await).await;
}

#[tokio::test]
async fn oidcc_codereuse() {
    let rp = Rp::new().await;
    let back = rp.authorize(&rp.code_url("openid", &[])).await;
    rp.exchange(&back).await;
    let code = query_param(&back, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = rp.token(&form, false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_grant");
}

#[tokio::test]
async fn oidcc_codereuse_30seconds() {
    let rp = Rp::new().await;
    let back = rp.authorize(&rp.code_url("openid", &[])).await;
    let tokens = rp.exchange(&back).await;
    rp.app.clock.advance(30);
    let code = query_param(&back, "code").unwrap();
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", REDIRECT),
        ("code_verifier", VERIFIER),
    ];
    let (status, body) = rp.token(&form, false).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant"))
    );
    // The access token of the first use must stop working.
    let resp = reqwest::Client::new()
        .get(rp.app.url("/userinfo"))
        .bearer_auth(tokens["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn oidcc_ensure_registered_redirect_uri() {
    let rp = Rp::new().await;
    let url = rp
        .code_url("openid", &[])
        .replace("rp.example.test%2Fcb", "rp.example.test%2Fother");
    let resp = rp.browser.get(&url).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(
        resp.headers().get("location").is_none(),
        "never redirect to an unregistered URI"
    );
}

#[tokio::test]
async fn oidcc_ensure_redirect_uri_in_authorization_request() {
    let rp = Rp::new().await;
    let url = rp
        .code_url("openid", &[])
        .replace("redirect_uri=", "no_redirect_uri=");
    let resp = rp.browser.get(&url).await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.headers().get("location").is_none());
}

#[tokio::test]
async fn oidcc_ensure_post_request_succeeds() {
    let rp = Rp::new().await;
    let url = rp.code_url("openid", &[]);
    let (_, query) = url.split_once('?').unwrap();
    let resp = rp
        .browser
        .http
        .post(rp.app.url("/authorize"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(query.to_string())
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_redirection());
    let login = absolute(&rp.app, &location(resp.headers()));
    assert!(login.contains("/login?"), "{login}");
    let fields = widget_fields(&rp.user, rp.app.now(), BOT_TOKEN);
    let callback = format!(
        "{}?{}",
        rp.app.url(&format!("/login/telegram/{}", req_of(&login))),
        encode(&fields)
    );
    let back = rp.authorize(&callback).await;
    verify_id_token(&rp, &rp.exchange(&back).await).await;
}

#[tokio::test]
async fn oidcc_request_uri_unsigned_supported_correctly_or_rejected_as_unsupported() {
    let rp = Rp::new().await;
    let back = rp
        .first_hop(&rp.code_url(
            "openid",
            &[("request_uri", "https://rp.example.test/req.jwt")],
        ))
        .await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("request_uri_not_supported")
    );
}

#[tokio::test]
async fn oidcc_unsigned_request_object_supported_correctly_or_rejected_as_unsupported() {
    let rp = Rp::new().await;
    let back = rp
        .first_hop(&rp.code_url("openid", &[("request", "eyJhbGciOiJub25lIn0.e30.")]))
        .await;
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("request_not_supported")
    );
}

#[tokio::test]
async fn oidcc_ensure_request_object_with_redirect_uri() {
    // With request objects unsupported, a request object never overrides the redirect URI:
    // the error goes to the registered one.
    let rp = Rp::new().await;
    let back = rp
        .first_hop(&rp.code_url(
            "openid",
            &[(
                "request",
                "eyJhbGciOiJub25lIn0.eyJyZWRpcmVjdF91cmkiOiJodHRwczovL2V2aWwudGVzdC8ifQ.",
            )],
        ))
        .await;
    assert!(back.starts_with(REDIRECT));
    assert_eq!(
        query_param(&back, "error").as_deref(),
        Some("request_not_supported")
    );
}

#[tokio::test]
async fn oidcc_claims_essential() {
    // The claims parameter is not supported (discovery says so); the request still succeeds.
    let rp = Rp::new().await;
    let claims = r#"{"userinfo":{"name":{"essential":true}}}"#;
    let tokens = rp.tokens("openid", &[("claims", claims)]).await;
    verify_id_token(&rp, &tokens).await;
}

#[tokio::test]
async fn oidcc_refresh_token() {
    let rp = Rp::new().await;
    let tokens = rp
        .tokens("openid offline_access", &[("prompt", "consent")])
        .await;
    let first = id_claims(&tokens);
    let refresh = tokens["refresh_token"].as_str().expect("a refresh token");
    let (status, refreshed) = rp
        .token(
            &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
            false,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    let second = verify_id_token(&rp, &refreshed).await;
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["iss"], first["iss"]);
    assert_eq!(second["aud"], first["aud"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
    // Another client cannot use it.
    let other = rp.app.confidential_client().await;
    let resp = reqwest::Client::new()
        .post(rp.app.url("/token"))
        .basic_auth(other.id(), Some(other.secret()))
        .form(&[
            ("grant_type", "refresh_token"),
            (
                "refresh_token",
                refreshed["refresh_token"].as_str().unwrap(),
            ),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oidcc_ensure_request_with_valid_pkce_succeeds() {
    let rp = Rp::new().await;
    let tokens = rp.tokens("openid", &[]).await;
    verify_id_token(&rp, &tokens).await;
}

#[tokio::test]
async fn oidcc_discovery_endpoint_verification() {
    let rp = Rp::new().await;
    let doc: Value = reqwest::get(rp.app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["issuer"], rp.app.base);
    for endpoint in [
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
    ] {
        let url = doc[endpoint].as_str().unwrap();
        assert!(
            url.starts_with(&rp.app.base),
            "{endpoint} lives under the issuer"
        );
    }
    assert!(
        doc["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "openid")
    );
    assert!(
        doc["response_types_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "code")
    );
    let subject_types = doc["subject_types_supported"].as_array().unwrap();
    assert!(
        subject_types
            .iter()
            .all(|s| s == "public" || s == "pairwise")
    );
    assert!(
        doc["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "RS256")
    );
    assert_eq!(doc["claims_parameter_supported"], false);
    assert!(
        doc["claims_supported"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "sub")
    );
    let jwks: Value = reqwest::get(doc["jwks_uri"].as_str().unwrap())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for key in jwks["keys"].as_array().unwrap() {
        assert!(
            key.get("d").is_none() && key.get("p").is_none(),
            "no private parts in the JWKS"
        );
        assert!(key["kid"].is_string() && key["kty"].is_string());
    }
}
