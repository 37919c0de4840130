//! Per-app access policies and the `groups` claim, with the fake Bot API answering
//! `getChatMember`: every login way admits a member of the team chat and refuses anyone else;
//! a member removed from the chat is refused at the refresh after the cache time; Bot API
//! outages and 429s fail closed unless an answer is cached. On SQLite, and on PostgreSQL when
//! `TEST_DATABASE_URL` is set.

use reqwest::StatusCode;
use serde_json::Value;
use telegram_oidc::access::{GroupSpec, Rule};
use telegram_oidc::admin::{self, ClientUpdate, NewClient};
use telegram_oidc::config::UpdateMode;

use crate::fake_bot_api::{FakeBotApi, MemberFailure, app_with_bot, jwt_claims};
use crate::fake_telegram_oidc::FakeTelegramOidc;
use crate::gate::{self, ADMITTED, REFUSED};
use crate::harness::*;
use crate::store::postgres_url;
use crate::upstream::upstream_config;

/// The team chat the policies and groups name.
const TEAM: i64 = -1_001_234_567_890;

fn team_policy() -> Rule {
    Rule::from_toml(&format!("[policy]\nmember_of = {TEAM}\n")).unwrap()
}

/// A server whose bot is `bot`, on SQLite or on the PostgreSQL at `database`, with the groups
/// `team` (members of TEAM) and `admins` (its administrators).
async fn policy_app(bot: &FakeBotApi, database: Option<String>) -> TestApp {
    app_with_bot(bot, UpdateMode::Webhook, move |c| {
        if let Some(url) = database {
            c.database_url = url;
        }
        c.groups
            .insert("team".into(), GroupSpec::parse(&TEAM.to_string()).unwrap());
        c.groups.insert(
            "admins".into(),
            GroupSpec::parse(&format!("{TEAM}:administrator")).unwrap(),
        );
        c.policy.timeout_secs = 1;
    })
    .await
}

/// The stores to run on: SQLite, and PostgreSQL when it is configured.
fn databases() -> Vec<Option<String>> {
    let mut out = vec![None];
    if let Some(url) = postgres_url() {
        out.push(Some(url));
    }
    out
}

#[tokio::test]
async fn every_login_way_admits_chat_members_only() {
    for database in databases() {
        let bot = FakeBotApi::start().await;
        let upstream = FakeTelegramOidc::start().await;
        let config = upstream_config(&upstream);
        let app = app_with_bot(&bot, UpdateMode::Webhook, move |c| {
            if let Some(url) = database {
                c.database_url = url;
            }
            c.telegram_oidc = Some(config);
        })
        .await;
        upstream.use_clock(app.clock.clone());
        *app.client_policy.lock().unwrap() = Some(team_policy());
        bot.set_member(TEAM, ADMITTED, "member");
        bot.set_member(TEAM, REFUSED, "kicked");

        gate::widget_way(&app).await;
        gate::telegram_oidc_way(&app, &upstream).await;
        gate::bot_way(&app, &bot).await;
        gate::token_exchange_way(&app).await;
        gate::device_page_way(&app).await;
        gate::device_bot_way(&app, &bot).await;
        crate::ciba::ciba_way(&app, &bot, REFUSED, ADMITTED).await;

        let asked = bot.calls("getChatMember");
        assert!(
            asked
                .iter()
                .any(|c| c.body["chat_id"] == TEAM && c.body["user_id"] == REFUSED),
            "the Bot API was asked about the refused user"
        );
        app.stop().await;
    }
}

/// A client of `app` restricted to TEAM, that may ask for the groups.
async fn team_client(app: &TestApp) -> TestClient {
    let mut client = app.confidential_client().await;
    client.record = admin::update_client(
        app.store.as_ref(),
        client.id(),
        ClientUpdate {
            access_policy: Some(Some(team_policy())),
            scopes: Some(
                ["openid", "profile", "groups", "offline_access"]
                    .map(String::from)
                    .to_vec(),
            ),
            require_bot_confirmation: None,
            ..ClientUpdate::default()
        },
    )
    .await
    .unwrap();
    client
}

fn authorize_url(app: &TestApp, client: &TestClient, scope: &str) -> String {
    let mut url = url::Url::parse(&app.url("/authorize")).unwrap();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client.id())
        .append_pair("redirect_uri", &client.redirect_uri)
        .append_pair("scope", scope)
        .append_pair("state", "policy-state");
    url.to_string()
}

async fn token(app: &TestApp, client: &TestClient, form: &[(&str, &str)]) -> (StatusCode, Value) {
    let resp = reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(form)
        .send()
        .await
        .unwrap();
    (resp.status(), resp.json().await.unwrap())
}

/// Logs `user` in through the widget and redeems the code: the token response.
async fn log_in(app: &TestApp, client: &TestClient, user: i64) -> Value {
    log_in_with(app, client, user, "openid profile groups offline_access").await
}

/// [`log_in`] asking for `scope`.
async fn log_in_with(app: &TestApp, client: &TestClient, user: i64, scope: &str) -> Value {
    let back = authorize_through(
        app,
        &Browser::new(),
        &authorize_url(app, client, scope),
        &TgUser::new(user),
    )
    .await;
    let code = query_param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
    let (status, body) = token(
        app,
        client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &client.redirect_uri),
        ],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn refresh(app: &TestApp, client: &TestClient, refresh_token: &str) -> (StatusCode, Value) {
    token(
        app,
        client,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ],
    )
    .await
}

async fn userinfo(app: &TestApp, access: &str) -> Value {
    let resp = reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

/// The widget login of `user` to `client` as far as it goes: the final status and page, or
/// the redirect to consent.
async fn try_login(app: &TestApp, client: &TestClient, user: i64) -> (StatusCode, String) {
    let browser = Browser::new();
    let resp = browser.get(&authorize_url(app, client, "openid")).await;
    let req = req_of(&location(resp.headers()));
    let fields = widget_fields(&TgUser::new(user), app.now(), BOT_TOKEN);
    let callback = format!(
        "{}?{}",
        app.url(&format!("/login/telegram/{req}")),
        encode(&fields)
    );
    gate::follow(app, &browser, callback).await
}

#[tokio::test]
async fn a_removed_member_is_refused_at_the_refresh_after_the_cache_time() {
    for (i, database) in databases().into_iter().enumerate() {
        let bot = FakeBotApi::start().await;
        let app = policy_app(&bot, database).await;
        let client = team_client(&app).await;
        let user = 6_670_001 + i as i64;
        bot.set_member(TEAM, user, "member");

        let tokens = log_in(&app, &client, user).await;
        let id_token = jwt_claims(tokens["id_token"].as_str().unwrap());
        assert_eq!(id_token["groups"], serde_json::json!(["team"]));
        let access = tokens["access_token"].as_str().unwrap();
        assert_eq!(
            userinfo(&app, access).await["groups"],
            serde_json::json!(["team"])
        );
        let discovery: Value = reqwest::get(app.url("/.well-known/openid-configuration"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(
            discovery["scopes_supported"]
                .as_array()
                .unwrap()
                .contains(&"groups".into())
        );
        assert!(
            discovery["claims_supported"]
                .as_array()
                .unwrap()
                .contains(&"groups".into())
        );

        // Removed from the chat: the cached answer still stands for the cache time ...
        bot.set_member(TEAM, user, "left");
        app.clock.advance(60);
        let (status, body) =
            refresh(&app, &client, tokens["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let refresh_token = body["refresh_token"].as_str().unwrap().to_owned();

        // ... and no longer after it.
        app.clock.advance(300);
        let (status, body) = refresh(&app, &client, &refresh_token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["error"], "invalid_grant");
        // The access token issued before is not revoked by the refusal.
        assert!(userinfo(&app, body_access(&tokens)).await["sub"].is_string());

        // Let back in as an administrator: the same refresh token works, and the groups follow.
        bot.set_member(TEAM, user, "administrator");
        app.clock.advance(301);
        let (status, body) = refresh(&app, &client, &refresh_token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let id_token = jwt_claims(body["id_token"].as_str().unwrap());
        assert_eq!(id_token["groups"], serde_json::json!(["admins", "team"]));
        assert_eq!(
            userinfo(&app, body["access_token"].as_str().unwrap()).await["groups"],
            serde_json::json!(["admins", "team"])
        );
        app.stop().await;
    }
}

fn body_access(tokens: &Value) -> &str {
    tokens["access_token"].as_str().unwrap()
}

#[tokio::test]
async fn bot_api_failures_fail_closed_unless_an_answer_is_cached() {
    for (i, database) in databases().into_iter().enumerate() {
        let bot = FakeBotApi::start().await;
        let app = policy_app(&bot, database).await;
        let client = team_client(&app).await;
        let cached = 6_680_001 + 10 * i as i64;
        let fresh = cached + 1;
        bot.set_member(TEAM, cached, "member");
        bot.set_member(TEAM, fresh, "member");
        let tokens = log_in(&app, &client, cached).await;

        // An outage: the cached member keeps refreshing, past the cache time ...
        bot.fail_members(Some(MemberFailure::ServerError));
        app.clock.advance(400);
        let (status, body) =
            refresh(&app, &client, tokens["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // ... while a user Telegram was never asked about is refused, with a page that says so.
        let (status, page) = try_login(&app, &client, fresh).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{page}");
        assert!(page.contains("Telegram could not be asked"), "{page}");

        // A 429: the server waits as told, asking nothing until then.
        bot.fail_members(Some(MemberFailure::TooManyRequests { retry_after: 30 }));
        app.clock.advance(2);
        let (status, _) = try_login(&app, &client, fresh).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        let asked = bot.calls("getChatMember").len();
        app.clock.advance(2);
        let (status, _) = try_login(&app, &client, fresh).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(bot.calls("getChatMember").len(), asked, "quiet after a 429");

        // A Bot API that does not answer in time is an outage too.
        bot.fail_members(Some(MemberFailure::Hang { secs: 3 }));
        app.clock.advance(30);
        let (status, _) = try_login(&app, &client, fresh).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

        // Telegram answers again: in.
        bot.fail_members(None);
        app.clock.advance(2);
        let (status, next) = try_login(&app, &client, fresh).await;
        assert!(next.contains("/consent?req="), "{status} {next}");

        app.stop().await;
    }
}

#[tokio::test]
async fn a_refused_user_sees_the_page_in_their_language() {
    let bot = FakeBotApi::start().await;
    let app = policy_app(&bot, None).await;
    let client = team_client(&app).await;
    let browser = Browser::new();
    let resp = browser.get(&authorize_url(&app, &client, "openid")).await;
    let req = req_of(&location(resp.headers()));
    let fields = widget_fields(&TgUser::new(6_690_001), app.now(), BOT_TOKEN);
    let mut url = format!(
        "{}?{}",
        app.url(&format!("/login/telegram/{req}")),
        encode(&fields)
    );
    let mut resp;
    loop {
        resp = browser
            .http
            .get(&url)
            .header("accept-language", "ru")
            .send()
            .await
            .unwrap();
        if !resp.status().is_redirection() {
            break;
        }
        url = absolute(&app, &location(resp.headers()));
    }
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let page = resp.text().await.unwrap();
    assert!(
        page.contains("Администратор приложения не разрешил вход"),
        "{page}"
    );
    assert!(!page.contains(&TEAM.to_string()), "never which rule");
    app.stop().await;
}

/// The claims the README's recipes map, as a client registered the way they say
/// (`--scopes openid,profile,email,telegram,groups,offline_access --synthetic-email`) gets
/// them, in the ID token and at userinfo alike: `groups` a JSON array of strings (Grafana's
/// `groups_attribute_path` and `role_attribute_path`, oauth2-proxy's `--oidc-groups-claim`,
/// Keycloak's and Gitea's group mappers), the synthetic `email` (Grafana, oauth2-proxy,
/// Keycloak's first broker login), `preferred_username` (Grafana's login, Gitea's username) and
/// `telegram_id` a number (Keycloak's attribute mapper).
#[tokio::test]
async fn the_recipes_find_the_claims_they_map() {
    let bot = FakeBotApi::start().await;
    let app = policy_app(&bot, None).await;
    let redirect_uri = "https://app.example.test/callback".to_string();
    let (record, secret) = admin::add_client(
        app.store.as_ref(),
        NewClient {
            name: "Recipes".into(),
            redirect_uris: vec![redirect_uri.clone()],
            scopes: [
                "openid",
                "profile",
                "email",
                "telegram",
                "groups",
                "offline_access",
            ]
            .map(String::from)
            .to_vec(),
            synthetic_email: true,
            ..Default::default()
        },
        app.now(),
    )
    .await
    .unwrap();
    let client = TestClient {
        record,
        secret,
        redirect_uri,
    };
    let admin_user = 6_710_001;
    let outsider = 6_710_002;
    bot.set_member(TEAM, admin_user, "administrator");
    bot.set_member(TEAM, outsider, "left");

    for (user, groups) in [
        (admin_user, serde_json::json!(["admins", "team"])),
        (outsider, serde_json::json!([])),
    ] {
        app.clock.advance(1);
        let tokens = log_in_with(
            &app,
            &client,
            user,
            "openid profile email telegram groups offline_access",
        )
        .await;
        let id_token = jwt_claims(tokens["id_token"].as_str().unwrap());
        let info = userinfo(&app, body_access(&tokens)).await;
        for claims in [&id_token, &info] {
            let sub = claims["sub"].as_str().expect("sub is a string");
            assert_eq!(claims["groups"], groups, "{claims}");
            assert!(
                claims["groups"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(Value::is_string)
            );
            assert_eq!(
                claims["email"],
                format!("{sub}@telegram.invalid"),
                "{claims}"
            );
            assert_eq!(claims["email_verified"], false);
            assert_eq!(claims["preferred_username"], "ada_tg");
            assert_eq!(claims["telegram_id"], user, "a JSON number: {claims}");
            assert_eq!(claims["telegram_username"], "ada_tg");
            assert!(claims["name"].is_string());
        }
        assert_eq!(id_token["sub"], info["sub"]);
    }
    app.stop().await;
}
