//! Mini Apps and native apps: token exchange (RFC 8693) with initData or Login Widget data as
//! the subject token, through the real token endpoint.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::{Value, json};
use telegram_oidc::admin;
use telegram_oidc::config::TelegramEnvironment;
use telegram_oidc::secrets::random_bytes;
use telegram_oidc::store::{ClientKind, RefreshPolicy};
use telegram_oidc::telegram::webapp;

use crate::harness::*;
use crate::upstream::jwt_claims;

pub(crate) const GRANT: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const INIT_DATA: &str = "urn:telegram-oidc:params:token-type:telegram-init-data";
pub(crate) const WIDGET: &str = "urn:telegram-oidc:params:token-type:telegram-login-widget";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const OTHER_BOT: i64 = 7_771_234_567;

fn unique_id() -> i64 {
    i64::from(u32::from_le_bytes(random_bytes::<4>())) + 3_000_000_000
}

/// The fields of a Mini App launch for user `id`, unsigned.
fn launch(id: i64, auth_date: i64) -> Vec<(String, String)> {
    let user = json!({
        "id": id,
        "first_name": "Ada",
        "last_name": "Lovelace",
        "username": "ada_miniapp",
        "language_code": "en",
        "is_premium": true,
        "allows_write_to_pm": true,
        "photo_url": "https://t.me/i/userpic/320/ada.svg",
    });
    vec![
        (
            "query_id".into(),
            URL_SAFE_NO_PAD.encode(random_bytes::<12>()),
        ),
        ("user".into(), user.to_string()),
        ("auth_date".into(), auth_date.to_string()),
        ("chat_type".into(), "private".into()),
    ]
}

/// Signs as Telegram does: the Ed25519 `signature` for `bot_id` (when a key is given), then the
/// `hash` under `bot_token` over every field including `signature`.
fn sign(
    mut fields: Vec<(String, String)>,
    bot_token: &str,
    ed25519: Option<(&Ed25519KeyPair, i64)>,
) -> String {
    if let Some((key, bot_id)) = ed25519 {
        let message = webapp::signature_message(&fields, bot_id);
        let signature = URL_SAFE_NO_PAD.encode(key.sign(message.as_bytes()).as_ref());
        fields.push(("signature".into(), signature));
    }
    let hash = webapp::hash_with_token(&fields, bot_token);
    fields.push(("hash".into(), hash));
    encode(&fields)
}

pub(crate) fn init_data(app: &TestApp, id: i64) -> String {
    sign(launch(id, app.now()), BOT_TOKEN, None)
}

pub(crate) async fn mini_app_client(
    app: &TestApp,
    bot_id: Option<i64>,
    spec: ClientSpec,
) -> TestClient {
    let mut tc = app.client(spec).await;
    tc.record = admin::allow_token_exchange(app.store.as_ref(), tc.id(), bot_id)
        .await
        .unwrap();
    tc
}

pub(crate) async fn exchange(
    app: &TestApp,
    tc: &TestClient,
    params: &[(&str, &str)],
) -> (StatusCode, Value) {
    let http = reqwest::Client::new();
    let mut request = http.post(app.url("/token"));
    let mut form: Vec<(&str, &str)> = params.to_vec();
    if tc.secret.is_some() {
        request = request.basic_auth(tc.id(), Some(tc.secret()));
    } else {
        form.push(("client_id", tc.id()));
    }
    let resp = request.form(&form).send().await.unwrap();
    let status = resp.status();
    if status == StatusCode::OK {
        assert_eq!(
            resp.headers().get("cache-control").unwrap(),
            "no-store",
            "token responses are not cached"
        );
    }
    (status, resp.json().await.unwrap())
}

pub(crate) async fn exchange_init_data(
    app: &TestApp,
    tc: &TestClient,
    data: &str,
) -> (StatusCode, Value) {
    exchange(
        app,
        tc,
        &[
            ("grant_type", GRANT),
            ("subject_token", data),
            ("subject_token_type", INIT_DATA),
        ],
    )
    .await
}

fn with_params<'a>(
    base: &[(&'a str, &'a str)],
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut p = base.to_vec();
    p.extend_from_slice(extra);
    p
}

fn assert_refused(result: &(StatusCode, Value), error: &str, about: &str) {
    assert_eq!(result.0, StatusCode::BAD_REQUEST, "{about}: {}", result.1);
    assert_eq!(result.1["error"], error, "{about}: {}", result.1);
}

async fn mini_app_gets_tokens(app: TestApp) {
    let tc = mini_app_client(
        &app,
        None,
        ClientSpec {
            refresh: RefreshPolicy::Always,
            ..Default::default()
        },
    )
    .await;
    let id = unique_id();
    let data = init_data(&app, id);
    let (status, body) = exchange_init_data(&app, &tc, &data).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued_token_type"], ACCESS_TOKEN);
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "openid profile telegram offline_access");
    let claims = jwt_claims(body["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["aud"], tc.id());
    assert_eq!(claims["amr"], json!(["telegram_miniapp"]));
    assert_eq!(claims["given_name"], "Ada");
    assert_eq!(claims["locale"], "en");
    assert!(claims.get("nonce").is_none());
    assert!(claims.get("at_hash").is_some());

    let info: Value = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["sub"], id.to_string());
    assert_eq!(info["telegram_username"], "ada_miniapp");
    let user = app.store.get_user(id).await.unwrap().unwrap();
    assert!(user.is_premium);

    // The refresh token works like any other.
    let (status, refreshed) = exchange(
        &app,
        &tc,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", body["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    assert_ne!(refreshed["refresh_token"], body["refresh_token"]);

    // initData is single-use.
    let again = exchange_init_data(&app, &tc, &data).await;
    assert_refused(&again, "invalid_request", "replay");
    assert!(
        again.1["error_description"]
            .as_str()
            .unwrap()
            .contains("already used")
    );
    app.stop().await;
}

#[tokio::test]
async fn mini_app_init_data_checked_with_the_bot_token_gives_tokens() {
    mini_app_gets_tokens(TestApp::start().await).await;
}

#[tokio::test]
async fn mini_app_token_exchange_on_postgres() {
    let Some(url) = crate::store::postgres_url() else {
        return;
    };
    mini_app_gets_tokens(TestApp::start_with(|c| c.database_url = url).await).await;
}

#[tokio::test]
async fn another_bots_mini_app_is_checked_with_telegrams_ed25519_key() {
    let telegram = Ed25519KeyPair::generate().unwrap();
    let impostor = Ed25519KeyPair::generate().unwrap();
    let public = hex::encode(telegram.public_key().as_ref());
    let app = TestApp::start_with(|c| c.telegram.init_data_public_key = public).await;
    let tc = mini_app_client(&app, Some(OTHER_BOT), ClientSpec::default()).await;
    let id = unique_id();
    // The other bot's token is unknown here: its `hash` cannot be and is not checked.
    let other_token = "7771234567:AAH-the_other_bots_token_unknown";

    let ok = sign(
        launch(id, app.now()),
        other_token,
        Some((&telegram, OTHER_BOT)),
    );
    let (status, body) = exchange_init_data(&app, &tc, &ok).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        jwt_claims(body["id_token"].as_str().unwrap())["sub"],
        id.to_string()
    );
    assert_refused(
        &exchange_init_data(&app, &tc, &ok).await,
        "invalid_request",
        "replay",
    );

    let wrong_key = sign(
        launch(id, app.now()),
        other_token,
        Some((&impostor, OTHER_BOT)),
    );
    assert_refused(
        &exchange_init_data(&app, &tc, &wrong_key).await,
        "invalid_request",
        "a signature from the wrong key",
    );
    let wrong_bot = sign(
        launch(id, app.now()),
        other_token,
        Some((&telegram, OTHER_BOT + 1)),
    );
    assert_refused(
        &exchange_init_data(&app, &tc, &wrong_bot).await,
        "invalid_request",
        "data given to a third bot",
    );
    // Data signed only with a bot token (even ours) is not enough for this client.
    assert_refused(
        &exchange_init_data(&app, &tc, &init_data(&app, id)).await,
        "invalid_request",
        "no signature",
    );
    // Changing `hash` does not make a used signature new again.
    let fresh = sign(
        launch(id, app.now()),
        other_token,
        Some((&telegram, OTHER_BOT)),
    );
    assert_eq!(
        exchange_init_data(&app, &tc, &fresh).await.0,
        StatusCode::OK
    );
    let rehashed = {
        let mut fields = telegram_oidc::web::parse_params(&fresh).unwrap();
        fields.last_mut().unwrap().1 = "00".repeat(32);
        encode(&fields)
    };
    assert_refused(
        &exchange_init_data(&app, &tc, &rehashed).await,
        "invalid_request",
        "replay with another hash",
    );
    app.stop().await;
}

#[tokio::test]
async fn the_test_environment_key_checks_only_when_the_bot_lives_there() {
    let production = Ed25519KeyPair::generate().unwrap();
    let test_env = Ed25519KeyPair::generate().unwrap();
    let (p, t) = (
        hex::encode(production.public_key().as_ref()),
        hex::encode(test_env.public_key().as_ref()),
    );
    let app = TestApp::start_with(|c| {
        c.telegram.environment = TelegramEnvironment::Test;
        c.telegram.init_data_public_key = p;
        c.telegram.init_data_test_public_key = t;
    })
    .await;
    let tc = mini_app_client(&app, Some(OTHER_BOT), ClientSpec::default()).await;
    let id = unique_id();
    let by_test = sign(
        launch(id, app.now()),
        BOT_TOKEN,
        Some((&test_env, OTHER_BOT)),
    );
    assert_eq!(
        exchange_init_data(&app, &tc, &by_test).await.0,
        StatusCode::OK
    );
    let by_production = sign(
        launch(id, app.now()),
        BOT_TOKEN,
        Some((&production, OTHER_BOT)),
    );
    assert_refused(
        &exchange_init_data(&app, &tc, &by_production).await,
        "invalid_request",
        "the production key in the test environment",
    );
    app.stop().await;
}

#[tokio::test]
async fn forged_stale_future_and_malformed_init_data_are_refused() {
    let app = TestApp::start().await;
    let tc = mini_app_client(&app, None, ClientSpec::default()).await;
    let id = unique_id();
    let now = app.now();

    let forged = init_data(&app, id).replace("Ada", "Eve");
    let stale = sign(launch(id, now - 301), BOT_TOKEN, None);
    let future = sign(launch(id, now + 40), BOT_TOKEN, None);
    let other_bot = sign(
        launch(id, now),
        "5550002222:TEST-another-bot-token_xxxxxxxx",
        None,
    );
    let unsigned = encode(&launch(id, now));
    let broken = format!("{}&x=%ZZ", init_data(&app, id));
    let huge = format!("{}&pad={}", init_data(&app, id), "a".repeat(9000));
    for (about, data) in [
        ("forged", forged.as_str()),
        ("stale", stale.as_str()),
        ("from the future", future.as_str()),
        ("signed by another bot", other_bot.as_str()),
        ("unsigned", unsigned.as_str()),
        ("broken percent-encoding", broken.as_str()),
        ("oversized", huge.as_str()),
        ("not initData at all", "hello"),
    ] {
        assert_refused(
            &exchange_init_data(&app, &tc, data).await,
            "invalid_request",
            about,
        );
    }
    // At the edge of the window it is still good.
    let edge = sign(launch(id, now - 290), BOT_TOKEN, None);
    assert_eq!(exchange_init_data(&app, &tc, &edge).await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn token_exchange_parameters_and_clients_are_checked() {
    let app = TestApp::start().await;
    let tc = mini_app_client(&app, None, ClientSpec::default()).await;
    let data = init_data(&app, unique_id());
    let base = [
        ("grant_type", GRANT),
        ("subject_token", data.as_str()),
        ("subject_token_type", INIT_DATA),
    ];
    let with = |extra: &[(&'static str, &'static str)]| with_params(&base, extra);
    for (about, params, error) in [
        (
            "no subject_token",
            vec![("grant_type", GRANT), ("subject_token_type", INIT_DATA)],
            "invalid_request",
        ),
        (
            "no subject_token_type",
            vec![("grant_type", GRANT), ("subject_token", data.as_str())],
            "invalid_request",
        ),
        (
            "an unsupported subject_token_type",
            vec![
                ("grant_type", GRANT),
                ("subject_token", data.as_str()),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
            ],
            "invalid_request",
        ),
        (
            "the wrong subject_token_type for the data",
            vec![
                ("grant_type", GRANT),
                ("subject_token", data.as_str()),
                ("subject_token_type", WIDGET),
            ],
            "invalid_request",
        ),
        (
            "delegation",
            with(&[("actor_token", "x"), ("actor_token_type", ACCESS_TOKEN)]),
            "invalid_request",
        ),
        (
            "a refresh token asked for",
            with(&[(
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:refresh_token",
            )]),
            "invalid_request",
        ),
        (
            "another audience",
            with(&[("audience", "https://api.example.com")]),
            "invalid_target",
        ),
        (
            "a resource",
            with(&[("resource", "https://api.example.com")]),
            "invalid_target",
        ),
        (
            "a scope not allowed",
            with(&[("scope", "openid phone")]),
            "invalid_scope",
        ),
        (
            "an ID token without openid",
            with(&[("scope", "profile"), ("requested_token_type", ID_TOKEN)]),
            "invalid_scope",
        ),
    ] {
        assert_refused(&exchange(&app, &tc, &params).await, error, about);
    }
    // None of the refusals above used the initData up.
    let (status, body) = exchange(&app, &tc, &base).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // A client not registered for token exchange.
    let plain = app.confidential_client().await;
    let data = init_data(&app, unique_id());
    let (status, body) = exchange_init_data(&app, &plain, &data).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "unauthorized_client");
    // A wrong client secret.
    let mut wrong = mini_app_client(&app, None, ClientSpec::default()).await;
    wrong.secret = Some("tgcs_wrong".into());
    let (status, body) = exchange_init_data(&app, &wrong, &data).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    // And the data is still good for the right client.
    assert_eq!(exchange_init_data(&app, &tc, &data).await.0, StatusCode::OK);
    app.stop().await;
}

#[tokio::test]
async fn an_id_token_alone_a_narrower_scope_and_a_public_client() {
    let app = TestApp::start().await;
    let tc = mini_app_client(
        &app,
        None,
        ClientSpec {
            kind: ClientKind::Public,
            ..Default::default()
        },
    )
    .await;
    assert!(tc.secret.is_none());
    let id = unique_id();
    let data = init_data(&app, id);
    let (status, body) = exchange(
        &app,
        &tc,
        &[
            ("grant_type", GRANT),
            ("subject_token", data.as_str()),
            ("subject_token_type", INIT_DATA),
            ("requested_token_type", ID_TOKEN),
            ("scope", "openid profile"),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued_token_type"], ID_TOKEN);
    // RFC 8693 §2.2.1: not an access token, so no token type.
    assert_eq!(body["token_type"], "N_A");
    assert!(body.get("refresh_token").is_none());
    assert!(body.get("id_token").is_none());
    let claims = jwt_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], id.to_string());
    assert_eq!(claims["name"], "Ada Lovelace");
    assert!(claims.get("at_hash").is_none());
    assert!(
        claims.get("telegram_id").is_none(),
        "telegram was not asked for"
    );
    // An ID token is not an access token.
    let resp = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(body["access_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let (status, body) = exchange(
        &app,
        &tc,
        &[
            ("grant_type", GRANT),
            ("subject_token", init_data(&app, id).as_str()),
            ("subject_token_type", INIT_DATA),
            ("scope", "openid"),
            ("audience", tc.id()),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "openid");
    assert!(
        body.get("refresh_token").is_none(),
        "offline_access was not asked for"
    );
    app.stop().await;
}

#[tokio::test]
async fn login_widget_data_from_a_webview_is_exchanged_once_in_all() {
    let app = TestApp::start().await;
    let tc = mini_app_client(&app, None, ClientSpec::default()).await;
    let user = TgUser::new(unique_id());
    let fields = widget_fields(&user, app.now(), BOT_TOKEN);
    let data = encode(&fields);
    let (status, body) = exchange(
        &app,
        &tc,
        &[
            ("grant_type", GRANT),
            ("subject_token", data.as_str()),
            ("subject_token_type", WIDGET),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = jwt_claims(body["id_token"].as_str().unwrap());
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["amr"], json!(["telegram_widget"]));

    // The same widget login cannot then sign a browser in.
    let browser = Browser::new();
    let authorize = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid",
        app.url("/authorize"),
        tc.id(),
        url::form_urlencoded::byte_serialize(tc.redirect_uri.as_bytes()).collect::<String>()
    );
    let resp = browser.get(&authorize).await;
    let req = req_of(&location(resp.headers()));
    let resp = browser
        .get(&format!(
            "{}?{}",
            app.url(&format!("/login/telegram/{req}")),
            data
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert!(resp.text().await.unwrap().contains("already used"));

    let forged = encode(&widget_fields(
        &user,
        app.now(),
        "1:forged-token-xxxxxxxxxxxxxxxxxxxx",
    ));
    let (status, body) = exchange(
        &app,
        &tc,
        &[
            ("grant_type", GRANT),
            ("subject_token", forged.as_str()),
            ("subject_token_type", WIDGET),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"], "invalid_request");
    app.stop().await;
}

#[tokio::test]
async fn discovery_announces_token_exchange_and_the_phone_scope() {
    let app = TestApp::start().await;
    let doc: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let grants = doc["grant_types_supported"].as_array().unwrap();
    assert!(grants.contains(&json!(GRANT)), "{grants:?}");
    let scopes = doc["scopes_supported"].as_array().unwrap();
    assert!(scopes.contains(&json!("phone")));
    let claims = doc["claims_supported"].as_array().unwrap();
    assert!(claims.contains(&json!("phone_number_verified")));
    app.stop().await;
}

#[test]
fn the_cli_registers_a_mini_app_client() {
    use crate::cli::{run, write_config};
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let (ok, stdout, stderr) = run(
        &config,
        &[
            "client",
            "add",
            "--name",
            "Shop Mini App",
            "--redirect-uri",
            "https://shop.example/cb",
            "--token-exchange",
            "--telegram-bot-id",
            "7771234567",
            "--json",
        ],
    );
    assert!(ok, "{stderr}");
    let added: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        added["settings"]["token_exchange"]["telegram_bot_id"],
        7771234567_i64
    );
    let id = added["client_id"].as_str().unwrap();
    let (ok, shown, _) = run(&config, &["client", "show", id]);
    assert!(ok);
    assert!(shown.contains("Mini App of bot 7771234567"), "{shown}");

    // A bot id without token exchange makes no sense, and a bot id is positive.
    let (ok, _, stderr) = run(
        &config,
        &[
            "client",
            "add",
            "--name",
            "x",
            "--redirect-uri",
            "https://x.example/cb",
            "--telegram-bot-id",
            "5",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("--token-exchange"), "{stderr}");
    let (ok, _, stderr) = run(
        &config,
        &[
            "client",
            "add",
            "--name",
            "x",
            "--redirect-uri",
            "https://x.example/cb",
            "--token-exchange",
            "--telegram-bot-id=-5",
        ],
    );
    assert!(!ok);
    assert!(stderr.contains("positive"), "{stderr}");
    let (_, list, _) = run(&config, &["client", "list"]);
    assert!(
        !list.contains("\tx\t"),
        "a refused client is not half registered: {list}"
    );
    // A plain client shows that it may not exchange.
    let (ok, stdout, _) = run(
        &config,
        &[
            "client",
            "add",
            "--name",
            "Web",
            "--redirect-uri",
            "https://w.example/cb",
        ],
    );
    assert!(ok);
    assert!(stdout.contains("token_exchange: no"), "{stdout}");
}
