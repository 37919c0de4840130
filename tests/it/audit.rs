//! The audit log on both stores: a login, the consent, the code's redemption, a refused token
//! request, a revocation, a policy refusal and a webhook without its secret each leave an entry
//! with the user, the app, the address, the user agent and the request id; no entry holds a
//! secret; queries filter and page; old entries are swept; the command line reads the log and
//! records its own actions.

use std::process::Command;
use std::sync::Arc;

use async_trait::async_trait;
use reqwest::StatusCode;
use serde_json::Value;
use telegram_oidc::config::UpdateMode;
use telegram_oidc::flow::policy::{Admission, LoginPolicy};
use telegram_oidc::store::{AuditEntry, AuditQuery, ClientRecord, Store, UserRecord};

use crate::fake_bot_api::{FakeBotApi, app_with_bot_gated};
use crate::harness::*;

const BIN: &str = env!("CARGO_BIN_EXE_telegram-oidc");
const VERIFIER: &str = "audit-verifier-0123456789-abcdefghijklmnopqrstuvwxyz";
const REFUSED: i64 = 5_550_009;

struct RefuseOne;

#[async_trait]
impl LoginPolicy for RefuseOne {
    fn applies_to(&self, _client: &ClientRecord) -> bool {
        true
    }

    async fn admit(&self, user: &UserRecord, _client: &ClientRecord) -> Admission {
        if user.telegram_id == REFUSED {
            Admission::Refuse {
                rule: "test: audit refusal".into(),
            }
        } else {
            Admission::Admit
        }
    }
}

/// The entries matching `query`, waiting (boundedly) until `want` are there: the log is
/// written by a background task.
async fn entries(store: &dyn Store, query: AuditQuery, want: usize) -> Vec<AuditEntry> {
    for _ in 0..300 {
        let found = store.query_audit(&query).await.unwrap();
        if found.len() >= want {
            return found;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    store.query_audit(&query).await.unwrap()
}

fn event(name: &str) -> AuditQuery {
    AuditQuery {
        event: Some(name.into()),
        limit: 100,
        ..Default::default()
    }
}

fn authorize_url(app: &TestApp, client: &TestClient) -> String {
    format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile&state=s&code_challenge={}&code_challenge_method=S256",
        app.url("/authorize"),
        client.id(),
        url::form_urlencoded::byte_serialize(client.redirect_uri.as_bytes()).collect::<String>(),
        telegram_oidc::oidc::pkce::s256(VERIFIER)
    )
}

async fn suite(app: TestApp) {
    let client = app.confidential_client().await;
    let user = TgUser::new(5_550_001);
    let back = authorize_through(&app, &Browser::new(), &authorize_url(&app, &client), &user).await;
    let code = query_param(&back, "code").unwrap();
    let http = reqwest::Client::new();
    let redeem = |code: String| {
        http.post(app.url("/token"))
            .basic_auth(client.id(), Some(client.secret()))
            .header("user-agent", "audit-test/1.0")
            .form(&[
                ("grant_type", "authorization_code".to_string()),
                ("code", code),
                ("redirect_uri", client.redirect_uri.clone()),
                ("code_verifier", VERIFIER.to_string()),
            ])
            .send()
    };
    let tokens: Value = redeem(code.clone()).await.unwrap().json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap().to_string();
    // The same code again: refused, and recorded as refused.
    let again = redeem(code.clone()).await.unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    let resp = http
        .post(app.url("/revoke"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(&[("token", access.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // A user the policy refuses.
    let refused = TgUser::new(REFUSED);
    let browser = Browser::new();
    let resp = browser.get(&authorize_url(&app, &client)).await;
    let req = req_of(&location(resp.headers()));
    let fields = widget_fields(&refused, app.now(), BOT_TOKEN);
    let callback = format!(
        "{}?{}",
        app.url(&format!("/login/telegram/{req}")),
        encode(&fields)
    );
    let (status, _) = crate::gate::follow(&app, &browser, callback).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    // A webhook call without the secret.
    let resp = http
        .post(app.url("/telegram/webhook"))
        .json(&serde_json::json!({"update_id": 1}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);

    let store = app.store.as_ref();
    let logins = entries(
        store,
        AuditQuery {
            user_id: Some(user.id),
            event: Some("login".into()),
            limit: 10,
            ..Default::default()
        },
        1,
    )
    .await;
    assert_eq!(logins.len(), 1, "{logins:?}");
    let login = &logins[0];
    assert_eq!(login.result, "ok");
    assert_eq!(login.detail["method"], "telegram_widget");
    assert_eq!(login.ip.as_deref(), Some("127.0.0.1"));
    assert!(
        login.request_id.as_deref().is_some_and(|r| r.len() >= 16),
        "{login:?}"
    );
    let consent = entries(store, event("consent.granted"), 1).await;
    assert_eq!(consent[0].user_id, Some(user.id));
    assert_eq!(consent[0].client_id.as_deref(), Some(client.id()));

    let token = entries(
        store,
        AuditQuery {
            client_id: Some(client.id().into()),
            event: Some("token".into()),
            limit: 10,
            ..Default::default()
        },
        3,
    )
    .await;
    let kinds: Vec<(&str, &str)> = token
        .iter()
        .map(|e| (e.event.as_str(), e.result.as_str()))
        .collect();
    // Newest first: the revocation, the refused second redemption, the first one.
    assert_eq!(
        kinds,
        [
            ("token.revoked", "ok"),
            ("token.refused", "refused"),
            ("token.issued", "ok")
        ]
    );
    assert_eq!(token[1].detail["error"], "invalid_grant");
    assert_eq!(token[2].detail["grant_type"], "authorization_code");
    assert_eq!(token[2].user_agent.as_deref(), Some("audit-test/1.0"));

    let policy = entries(store, event("policy.refused"), 1).await;
    assert_eq!(policy[0].user_id, Some(REFUSED));
    assert_eq!(policy[0].detail["rule"], "test: audit refusal");
    let webhook = entries(store, event("webhook.refused"), 1).await;
    assert_eq!(webhook[0].detail["reason"], "no secret token");

    // Nothing secret is written: not the client secret, the code, or the tokens.
    let all = entries(
        store,
        AuditQuery {
            limit: 1000,
            ..Default::default()
        },
        8,
    )
    .await;
    let text = serde_json::to_string(&all).unwrap();
    for secret in [client.secret(), code.as_str(), access.as_str()] {
        assert!(!text.contains(secret), "an audit entry holds a secret");
    }
    if let Some(refresh) = tokens["refresh_token"].as_str() {
        assert!(!text.contains(refresh));
    }

    // Paging: each page below the last id of the one before, together the whole log.
    let mut paged = Vec::new();
    let mut before = None;
    loop {
        let page = store
            .query_audit(&AuditQuery {
                before,
                limit: 3,
                ..Default::default()
            })
            .await
            .unwrap();
        if page.is_empty() {
            break;
        }
        before = page.last().map(|e| e.id);
        paged.extend(page);
    }
    assert_eq!(
        paged,
        store
            .query_audit(&AuditQuery {
                limit: 1000,
                ..Default::default()
            })
            .await
            .unwrap()
    );

    // The sweep removes what is older than the retention.
    let newest = all.iter().map(|e| e.at).max().unwrap();
    assert_eq!(
        store.delete_audit_before(newest + 1).await.unwrap() as usize,
        all.len()
    );
    assert!(
        store
            .query_audit(&AuditQuery {
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap()
            .is_empty()
    );
}

async fn start(fake: &FakeBotApi, database_url: Option<String>) -> TestApp {
    app_with_bot_gated(
        fake,
        UpdateMode::Webhook,
        move |c| {
            if let Some(url) = database_url {
                c.database_url = url;
            }
        },
        Some(Arc::new(RefuseOne)),
    )
    .await
}

#[tokio::test]
async fn the_audit_log_on_sqlite() {
    let fake = FakeBotApi::start().await;
    suite(start(&fake, None).await).await;
}

#[tokio::test]
async fn the_audit_log_on_postgres() {
    let Some(url) = crate::store::postgres_url() else {
        return;
    };
    // A database of its own: the sweep at the end empties the table.
    let url = crate::store::fresh_postgres_database(&url, "audit").await;
    let fake = FakeBotApi::start().await;
    suite(start(&fake, Some(url)).await).await;
}

/// The command line records what it changes, and `audit tail` reads it back.
#[tokio::test]
async fn the_command_line_records_and_reads() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/cli.db", dir.path().display());
    let run = |args: &[&str]| {
        let out = Command::new(BIN)
            .args(args)
            .env("TGOIDC_DATABASE_URL", &db)
            .env("TGOIDC_KEYS_DIR", dir.path().join("keys"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let added = run(&[
        "client",
        "add",
        "--name",
        "Audited",
        "--redirect-uri",
        "https://a.example.test/cb",
        "--json",
    ]);
    let added: Value = serde_json::from_str(&added).unwrap();
    let id = added["client_id"].as_str().unwrap();
    let secret = added["client_secret"].as_str().unwrap();
    run(&["client", "rotate-secret", id]);
    let lines = run(&["audit", "tail", "--json", "--client", id]);
    let entries: Vec<Value> = lines
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = entries
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        events,
        ["admin.client.created", "admin.client.secret_rotated"]
    );
    assert!(entries.iter().all(|e| e["actor"] == "cli"));
    assert_eq!(entries[0]["detail"]["after"]["name"], "Audited");
    assert!(!lines.contains(secret), "the secret is not in the log");
    let text = run(&["audit", "tail", "--event", "admin"]);
    assert_eq!(text.lines().count(), 2, "{text}");
    assert!(
        text.lines()
            .all(|l| l.contains(&format!("client={id}")) && l.contains("actor=cli")),
        "{text}"
    );
}
