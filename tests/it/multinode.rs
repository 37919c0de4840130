//! Two server processes on one PostgreSQL database, sharing one keys directory, as two replicas
//! behind a load balancer would: every step of a flow may land on either node.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use openidconnect::core::{CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet};
use openidconnect::{ClientId, ClientSecret, IssuerUrl, Nonce};
use reqwest::StatusCode;
use serde_json::Value;
use telegram_oidc::admin::{self, Actor, NewAdminKey, NewClient};
use telegram_oidc::clock::system_now;
use telegram_oidc::keys::SigningAlg;
use telegram_oidc::store::{AccessTokenFormat, AdminScope, ClientKind, RefreshPolicy, Store};

use crate::harness::{BOT_TOKEN, BOT_USERNAME, TgUser, encode, hidden, query_param, widget_fields};
use crate::store::postgres_url;

const BIN: &str = env!("CARGO_BIN_EXE_telegram-oidc");
/// The logical issuer both nodes share; requests go to each node's own port.
const ISSUER: &str = "http://127.0.0.1:9";
const REDIRECT_URI: &str = "https://app.example.test/callback";

fn write_config(dir: &Path, database_url: &str, keys: &Path) -> PathBuf {
    let token_file = dir.join("bot_token");
    std::fs::write(&token_file, format!("{BOT_TOKEN}\n")).unwrap();
    let path = dir.join("node.toml");
    std::fs::write(
        &path,
        format!(
            r#"issuer = "{ISSUER}"
listen = "127.0.0.1:0"
database_url = "{database_url}"
keys_dir = "{keys}"

# Long, so that within these tests only a notification can make a node see a changed client.
client_cache_secs = 60

[telegram]
bot_username = "{BOT_USERNAME}"
bot_token_file = "{token}"

# Per-address counters are shared by every server on the PostgreSQL of the tests, and every
# test comes from loopback: raised out of reach of the tests running beside this one.
[rate_limits]
login_ip = {{ limit = 6000, window_secs = 60 }}
token_ip = {{ limit = 6000, window_secs = 60 }}
admin_ip = {{ limit = 30000, window_secs = 60 }}
"#,
            keys = keys.display(),
            token = token_file.display(),
        ),
    )
    .unwrap();
    path
}

/// One `telegram-oidc serve` process. Its log is drained into memory (a full pipe would stall
/// it); dropping the node kills the process if the test did not stop it.
struct Node {
    name: &'static str,
    base: String,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Node {
    fn start(name: &'static str, config: &Path) -> Node {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env_remove("TGOIDC_CONFIG")
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let log = Arc::new(Mutex::new(String::new()));
        let address = loop {
            let mut line = String::new();
            let n = stderr.read_line(&mut line).unwrap();
            assert!(n > 0, "node {name} exited: {}", log.lock().unwrap());
            log.lock().unwrap().push_str(&line);
            if let Some(rest) = line.split("address=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Node {
            name,
            base: format!("http://{address}"),
            child,
            log,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A URL the server built under the shared issuer, sent to this node instead.
    fn here(&self, location: &str) -> String {
        match location.strip_prefix(ISSUER) {
            Some(path) => self.url(path),
            None if location.starts_with('/') => self.url(location),
            None => location.to_string(),
        }
    }

    fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGTERM, then a clean exit.
    fn stop(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        assert!(exit.success(), "node {} exited with {exit:?}", self.name);
        self.log()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn browser() -> reqwest::Client {
    // One cookie jar for both nodes: cookies are not bound to a port (RFC 6265 §8.5), as one
    // host name behind a load balancer would be.
    reqwest::Client::builder()
        .cookie_store(true)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

fn location(resp: &reqwest::Response) -> String {
    resp.headers()
        .get(reqwest::header::LOCATION)
        .unwrap_or_else(|| panic!("no Location in a {} answer", resp.status()))
        .to_str()
        .unwrap()
        .to_string()
}

struct App {
    client_id: String,
    secret: String,
}

/// The code in a redirect to the app, with the `state` and `iss` it must carry.
fn delivered(location: &str) -> Option<String> {
    if !location.starts_with(REDIRECT_URI) {
        return None;
    }
    assert_eq!(query_param(location, "iss").as_deref(), Some(ISSUER));
    assert_eq!(query_param(location, "state").as_deref(), Some("st"));
    Some(query_param(location, "code").expect("a code"))
}

/// Starts an authorization on `first` and follows every later step (login, consent) on
/// `rest`; returns the code delivered to the app.
async fn authorize(
    browser: &reqwest::Client,
    app: &App,
    first: &Node,
    rest: &Node,
    user: &TgUser,
    nonce: &str,
) -> String {
    let verifier = "v".repeat(50);
    let mut url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid%20profile%20offline_access&state=st&nonce={nonce}&code_challenge={}&code_challenge_method=S256",
        first.url("/authorize"),
        app.client_id,
        url::form_urlencoded::byte_serialize(REDIRECT_URI.as_bytes()).collect::<String>(),
        telegram_oidc::oidc::pkce::s256(&verifier),
    );
    for _ in 0..10 {
        let resp = browser.get(&url).send().await.unwrap();
        let status = resp.status();
        assert!(
            status == StatusCode::FOUND || status == StatusCode::SEE_OTHER,
            "expected a redirect from {url}, got {status}: {}",
            resp.text().await.unwrap_or_default()
        );
        let next = location(&resp);
        if let Some(code) = delivered(&next) {
            return code;
        }
        let next = rest.here(&next);
        if next.contains("/login?") {
            let page = browser.get(&next).send().await.unwrap();
            assert_eq!(page.status(), StatusCode::OK);
            let req = query_param(&next, "req").unwrap();
            let fields = widget_fields(user, system_now(), BOT_TOKEN);
            url = format!(
                "{}?{}",
                rest.url(&format!("/login/telegram/{req}")),
                encode(&fields)
            );
        } else if next.contains("/consent?") {
            let page = browser.get(&next).send().await.unwrap();
            assert_eq!(page.status(), StatusCode::OK);
            let html = page.text().await.unwrap();
            let form = [
                ("req", hidden(&html, "req")),
                ("csrf", hidden(&html, "csrf")),
                ("decision", "approve".to_string()),
            ];
            let resp = browser
                .post(rest.url("/consent"))
                .form(&form)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), StatusCode::FOUND);
            return delivered(&location(&resp)).expect("consent sends the code to the app");
        } else {
            url = next;
        }
    }
    panic!("too many redirects");
}

async fn token(
    http: &reqwest::Client,
    node: &Node,
    app: &App,
    form: &[(&str, &str)],
) -> (StatusCode, Value) {
    let resp = http
        .post(node.url("/token"))
        .basic_auth(&app.client_id, Some(&app.secret))
        .form(form)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    (status, resp.json().await.unwrap())
}

async fn redeem(http: &reqwest::Client, node: &Node, app: &App, code: &str) -> (StatusCode, Value) {
    let verifier = "v".repeat(50);
    token(
        http,
        node,
        app,
        &[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
            ("code_verifier", &verifier),
        ],
    )
    .await
}

async fn refresh(
    http: &reqwest::Client,
    node: &Node,
    app: &App,
    token_: &str,
) -> (StatusCode, Value) {
    token(
        http,
        node,
        app,
        &[("grant_type", "refresh_token"), ("refresh_token", token_)],
    )
    .await
}

async fn userinfo(http: &reqwest::Client, node: &Node, access: &str) -> (StatusCode, Value) {
    let resp = http
        .get(node.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body = if status == StatusCode::OK {
        resp.json().await.unwrap()
    } else {
        Value::Null
    };
    (status, body)
}

async fn jwks(http: &reqwest::Client, node: &Node) -> Value {
    http.get(node.url("/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_string())
        .collect()
}

/// Checks an ID token's signature and claims against the key set a node publishes.
fn verify_id_token(jwks: &Value, app: &App, id_token: &str, nonce: Option<&str>) -> Value {
    let keys: CoreJsonWebKeySet = serde_json::from_value(jwks.clone()).unwrap();
    let verifier = CoreIdTokenVerifier::new_confidential_client(
        ClientId::new(app.client_id.clone()),
        ClientSecret::new(app.secret.clone()),
        IssuerUrl::new(ISSUER.into()).unwrap(),
        keys,
    );
    let token = CoreIdToken::from_str(id_token).unwrap();
    match nonce {
        Some(n) => {
            token
                .claims(&verifier, &Nonce::new(n.to_string()))
                .expect("a valid ID token");
        }
        None => {
            token
                .claims(&verifier, |_: Option<&Nonce>| Ok(()))
                .expect("a valid ID token");
        }
    }
    jwt_part(id_token, 0)
}

fn jwt_part(jwt: &str, index: usize) -> Value {
    use base64::Engine;
    let part = jwt.split('.').nth(index).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part)
            .unwrap(),
    )
    .unwrap()
}

fn error_of(body: &Value) -> &str {
    body["error"].as_str().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_database_serve_one_provider() {
    let Some(url) = postgres_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    // The keys exist before either node starts, as a deployment's init step makes them: two
    // nodes starting at once on an empty directory would each make their own.
    telegram_oidc::keys::KeyStore::open(&keys_dir, system_now()).unwrap();
    let config = write_config(dir.path(), &url, &keys_dir);
    let (a, b) = (Node::start("A", &config), Node::start("B", &config));

    let store = telegram_oidc::open_store(&url).await.unwrap();
    let (record, secret) = admin::add_client(
        store.as_ref(),
        NewClient {
            name: "Multi-node app".into(),
            kind: ClientKind::Confidential,
            redirect_uris: vec![REDIRECT_URI.into()],
            scopes: vec!["openid".into(), "profile".into(), "offline_access".into()],
            id_token_alg: SigningAlg::RS256,
            access_token_format: AccessTokenFormat::Jwt,
            refresh_policy: RefreshPolicy::OfflineAccess,
            skip_consent: false,
            ..Default::default()
        },
        system_now(),
    )
    .await
    .unwrap();
    let app = App {
        client_id: record.client_id,
        secret: secret.unwrap(),
    };
    let user = TgUser::new(
        1_000_000
            + i64::from(u16::from_le_bytes(
                telegram_oidc::secrets::random_bytes::<2>(),
            )),
    );
    let browser = browser();
    let http = reqwest::Client::new();

    // Authorize on A, log in and consent on B, redeem on A, refresh on B, userinfo on A.
    let code = authorize(&browser, &app, &a, &b, &user, "n-1").await;
    let (status, tokens) = redeem(&http, &a, &app, &code).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    verify_id_token(
        &jwks(&http, &b).await,
        &app,
        tokens["id_token"].as_str().unwrap(),
        Some("n-1"),
    );
    let (status, refreshed) =
        refresh(&http, &b, &app, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK, "{refreshed}");
    verify_id_token(
        &jwks(&http, &a).await,
        &app,
        refreshed["id_token"].as_str().unwrap(),
        None,
    );
    let (status, info) = userinfo(&http, &a, refreshed["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["sub"], user.id.to_string());
    let (status, _) = userinfo(&http, &b, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "the first access token works on the other node"
    );

    // Ten redemptions of one code at once, over both nodes: exactly one wins, and the reuse
    // revokes what it issued (RFC 6749 §4.1.2).
    let code = authorize(&browser, &app, &b, &a, &user, "n-2").await;
    let attempts = (0..10).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        redeem(&http, node, &app, &code)
    });
    let outcomes = futures::future::join_all(attempts).await;
    let winners: Vec<&Value> = outcomes
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    for (status, body) in &outcomes {
        if *status != StatusCode::OK {
            assert_eq!(*status, StatusCode::BAD_REQUEST);
            assert_eq!(error_of(body), "invalid_grant", "{body}");
        }
    }
    let won = winners[0]["access_token"].as_str().unwrap();
    for node in [&a, &b] {
        assert_eq!(userinfo(&http, node, won).await.0, StatusCode::UNAUTHORIZED);
    }

    // Parallel refreshes of one token over both nodes: one successor; the others present a
    // used token, which revokes the whole family (RFC 9700 §4.14.2).
    let code = authorize(&browser, &app, &a, &b, &user, "n-3").await;
    let (status, tokens) = redeem(&http, &b, &app, &code).await;
    assert_eq!(status, StatusCode::OK);
    let shared = tokens["refresh_token"].as_str().unwrap().to_string();
    let attempts = (0..6).map(|i| {
        let node = if i % 2 == 0 { &a } else { &b };
        refresh(&http, node, &app, &shared)
    });
    let outcomes = futures::future::join_all(attempts).await;
    let successors: Vec<&Value> = outcomes
        .iter()
        .filter(|(s, _)| *s == StatusCode::OK)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(successors.len(), 1, "{outcomes:?}");
    for (status, body) in &outcomes {
        if *status != StatusCode::OK {
            assert_eq!(error_of(body), "invalid_grant", "{body}");
        }
    }
    let successor = successors[0]["refresh_token"].as_str().unwrap();
    assert_ne!(successor, shared);
    for node in [&a, &b] {
        let (status, body) = refresh(&http, node, &app, successor).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "the family is revoked");
        assert_eq!(error_of(&body), "invalid_grant");
        for access in [
            tokens["access_token"].as_str().unwrap(),
            successors[0]["access_token"].as_str().unwrap(),
        ] {
            assert_eq!(
                userinfo(&http, node, access).await.0,
                StatusCode::UNAUTHORIZED
            );
        }
    }
    // A family that saw no replay is untouched by the other's revocation.
    let (status, _) = refresh(
        &http,
        &a,
        &app,
        refreshed["refresh_token"].as_str().unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    // A key rotated on the shared directory (by the CLI, as an admin does on one node's host)
    // is served by both nodes within a bounded time, without a restart.
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args(["keys", "rotate", "--alg", "rs256"])
        .env_remove("TGOIDC_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    let new_kid = printed
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("no kid in `{printed}`"))
        .to_string();
    let rotated_at = Instant::now();
    let limit = Duration::from_secs(15);
    let mut seen = Vec::new();
    for node in [&b, &a] {
        // Polling another process's state, not waiting on our own clock.
        while !kids(&jwks(&http, node).await).contains(&new_kid) {
            assert!(
                rotated_at.elapsed() < limit,
                "node {} did not publish the new key {new_kid} within {limit:?}",
                node.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        seen.push((node.name, rotated_at.elapsed()));
    }
    eprintln!("multinode: new key published by {seen:?} after the rotation");
    // Both nodes now sign with it, and each one's key set verifies the other's tokens.
    let code = authorize(&browser, &app, &a, &a, &user, "n-4").await;
    let (status, tokens) = redeem(&http, &a, &app, &code).await;
    assert_eq!(status, StatusCode::OK);
    let id_token = tokens["id_token"].as_str().unwrap();
    let header = verify_id_token(&jwks(&http, &b).await, &app, id_token, Some("n-4"));
    assert_eq!(header["kid"], new_kid.as_str());
    let (status, info) = userinfo(&http, &b, tokens["access_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["sub"], user.id.to_string());
    let (status, from_b) =
        refresh(&http, &b, &app, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    let header = verify_id_token(
        &jwks(&http, &a).await,
        &app,
        from_b["id_token"].as_str().unwrap(),
        None,
    );
    assert_eq!(header["kid"], new_kid.as_str());

    let logs = [a.stop(), b.stop()];
    // The sweep of expired rows is a run-once job: never both nodes. (Neither, when a server
    // of another test on this database holds the lock.)
    let sweepers = logs
        .iter()
        .filter(|log| log.contains("this node now sweeps expired rows"))
        .count();
    assert!(sweepers <= 1, "both nodes took the cleanup lock");
    eprintln!("multinode: {sweepers} of 2 nodes swept expired rows");
    for log in &logs {
        assert!(!log.contains("panicked"), "{log}");
        assert!(!log.contains(BOT_TOKEN.split(':').nth(1).unwrap()));
    }
}

/// A confidential app registered through `store`, as the CLI registers one.
async fn add_app(store: &dyn Store, name: &str) -> App {
    let (record, secret) = admin::add_client(
        store,
        NewClient {
            name: name.into(),
            kind: ClientKind::Confidential,
            redirect_uris: vec![REDIRECT_URI.into()],
            scopes: vec!["openid".into()],
            id_token_alg: SigningAlg::RS256,
            access_token_format: AccessTokenFormat::Opaque,
            refresh_policy: RefreshPolicy::OfflineAccess,
            skip_consent: false,
            ..Default::default()
        },
        system_now(),
    )
    .await
    .unwrap();
    App {
        client_id: record.client_id,
        secret: secret.unwrap(),
    }
}

/// Authenticates `app` at a node (an introspection of nothing): 200 when the node accepts
/// the client id and secret, 401 when it does not.
async fn authenticates(
    http: &reqwest::Client,
    node: &Node,
    client_id: &str,
    secret: &str,
) -> StatusCode {
    http.post(node.url("/introspect"))
        .basic_auth(client_id, Some(secret))
        .form(&[("token", "nothing")])
        .send()
        .await
        .unwrap()
        .status()
}

/// Polls a node (another process) until it refuses the client id and secret, for at most a
/// second after `since`.
async fn refused_within_a_second(
    http: &reqwest::Client,
    node: &Node,
    client_id: &str,
    secret: &str,
    since: Instant,
    what: &str,
) {
    loop {
        let status = authenticates(http, node, client_id, secret).await;
        if status == StatusCode::UNAUTHORIZED {
            eprintln!(
                "multinode: node {} refused {what} after {:?}",
                node.name,
                since.elapsed()
            );
            return;
        }
        assert_eq!(status, StatusCode::OK);
        assert!(
            since.elapsed() < Duration::from_secs(1),
            "node {} still accepts {what} a second later",
            node.name
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Nodes hold clients in memory; a secret rotated or a client removed on one node is refused
/// by the other within a second, through the notification the change sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_changed_on_one_node_is_refused_by_the_other_within_a_second() {
    let Some(url) = postgres_url() else { return };
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    telegram_oidc::keys::KeyStore::open(&keys_dir, system_now()).unwrap();
    let config = write_config(dir.path(), &url, &keys_dir);
    let (a, b) = (Node::start("A", &config), Node::start("B", &config));
    let store = telegram_oidc::open_store(&url).await.unwrap();
    let rotated = add_app(store.as_ref(), "Rotated on A").await;
    let removed = add_app(store.as_ref(), "Removed on A").await;
    let (_, admin_key) = admin::create_admin_key(
        store.as_ref(),
        &Actor::cli(),
        NewAdminKey {
            name: "multinode".into(),
            scope: AdminScope::Write,
            expires_in: Some(3600),
            allow_ips: Vec::new(),
        },
        telegram_oidc::clock::system_now_millis(),
    )
    .await
    .unwrap();
    let http = reqwest::Client::new();

    // B reads both clients once, and from then on holds them: a change made behind the
    // store's back (no notification) is not seen by B, while A, which never read the client,
    // sees it at once.
    for app in [&rotated, &removed] {
        assert_eq!(
            authenticates(&http, &b, &app.client_id, &app.secret).await,
            StatusCode::OK
        );
    }
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let saved: Option<Vec<u8>> =
        sqlx::query_scalar("SELECT secret_hash FROM clients WHERE client_id = $1")
            .bind(&rotated.client_id)
            .fetch_one(&pool)
            .await
            .unwrap();
    sqlx::query("UPDATE clients SET secret_hash = $2 WHERE client_id = $1")
        .bind(&rotated.client_id)
        .bind(vec![0u8; 32])
        .execute(&pool)
        .await
        .unwrap();
    assert_eq!(
        authenticates(&http, &a, &rotated.client_id, &rotated.secret).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        authenticates(&http, &b, &rotated.client_id, &rotated.secret).await,
        StatusCode::OK,
        "B holds the client in memory"
    );
    sqlx::query("UPDATE clients SET secret_hash = $2 WHERE client_id = $1")
        .bind(&rotated.client_id)
        .bind(saved)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    // The secret rotated through A's admin API: B refuses the old one within a second and
    // takes the new one.
    let resp = http
        .post(a.url(&format!(
            "/admin/api/v1/clients/{}/secret",
            rotated.client_id
        )))
        .bearer_auth(&admin_key)
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    let changed = Instant::now();
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    let new_secret = body["client_secret"].as_str().unwrap().to_string();
    refused_within_a_second(
        &http,
        &b,
        &rotated.client_id,
        &rotated.secret,
        changed,
        "the old secret",
    )
    .await;
    assert_eq!(
        authenticates(&http, &b, &rotated.client_id, &new_secret).await,
        StatusCode::OK
    );

    // The other client removed through A's admin API: B refuses it within a second.
    let resp = http
        .delete(a.url(&format!("/admin/api/v1/clients/{}", removed.client_id)))
        .bearer_auth(&admin_key)
        .header("if-match", "*")
        .send()
        .await
        .unwrap();
    let changed = Instant::now();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    refused_within_a_second(
        &http,
        &b,
        &removed.client_id,
        &removed.secret,
        changed,
        "the removed client",
    )
    .await;

    for log in [a.stop(), b.stop()] {
        assert!(!log.contains("panicked"), "{log}");
        assert!(!log.contains(&new_secret));
    }
}

/// A node whose listening connection is gone cannot hear of changes, so it holds no client:
/// a secret rotated meanwhile (its notification lost) is refused at once. When it listens
/// again it holds clients again, and hears of the next change.
///
/// On a database of its own: refusing new connections to it is how the listener is kept from
/// coming back while the test looks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_cannot_hear_changes_holds_no_client() {
    let Some(url) = postgres_url() else { return };
    let (server, _) = url.rsplit_once('/').unwrap();
    let name = format!(
        "tgoidc_deaf_{}",
        u32::from_le_bytes(telegram_oidc::secrets::random_bytes::<4>())
    );
    let own_url = format!("{server}/{name}");
    let admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    telegram_oidc::keys::KeyStore::open(&keys_dir, system_now()).unwrap();
    let config = write_config(dir.path(), &own_url, &keys_dir);
    let b = Node::start("B", &config);
    let store = telegram_oidc::open_store(&own_url).await.unwrap();
    let app = add_app(store.as_ref(), "Rotated while B is deaf").await;
    let http = reqwest::Client::new();
    assert_eq!(
        authenticates(&http, &b, &app.client_id, &app.secret).await,
        StatusCode::OK
    );

    // Connections opened now stay in the pools (B's and this test's) while new ones are
    // refused: several, as a pool hands out another while one is on its way back.
    let warm = (0..8).map(|_| authenticates(&http, &b, &app.client_id, &app.secret));
    for status in futures::future::join_all(warm).await {
        assert_eq!(status, StatusCode::OK);
    }
    let warm = (0..8).map(|_| store.get_client(&app.client_id));
    for found in futures::future::join_all(warm).await {
        assert!(found.unwrap().is_some());
    }

    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS false"))
        .execute(&admin)
        .await
        .unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = $1 AND application_name = $2",
    )
    .bind(&name)
    .bind(telegram_oidc::store::postgres::LISTENER_APPLICATION_NAME)
    .fetch_all(&admin)
    .await
    .unwrap();
    assert_eq!(killed, [true], "one listening connection");
    let since = Instant::now();
    while !b.log().contains("not listening for client changes") {
        assert!(since.elapsed() < Duration::from_secs(10), "{}", b.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Rotated while B cannot hear it: B reads the client from the database.
    let new_secret = admin::new_client_secret(
        store.as_ref(),
        &Actor::cli(),
        &app.client_id,
        telegram_oidc::clock::system_now_millis(),
    )
    .await
    .unwrap();
    assert_eq!(
        authenticates(&http, &b, &app.client_id, &app.secret).await,
        StatusCode::UNAUTHORIZED,
        "a deaf node served a client from memory"
    );
    assert_eq!(
        authenticates(&http, &b, &app.client_id, &new_secret).await,
        StatusCode::OK
    );

    // Listening again: B holds clients again, and the next rotation reaches it.
    sqlx::query(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
        .execute(&admin)
        .await
        .unwrap();
    let since = Instant::now();
    while !b.log().contains("listening for client changes again") {
        assert!(since.elapsed() < Duration::from_secs(10), "{}", b.log());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        authenticates(&http, &b, &app.client_id, &new_secret).await,
        StatusCode::OK
    );
    let newer = admin::new_client_secret(
        store.as_ref(),
        &Actor::cli(),
        &app.client_id,
        telegram_oidc::clock::system_now_millis(),
    )
    .await
    .unwrap();
    let changed = Instant::now();
    refused_within_a_second(
        &http,
        &b,
        &app.client_id,
        &new_secret,
        changed,
        "the rotated secret",
    )
    .await;
    assert_eq!(
        authenticates(&http, &b, &app.client_id, &newer).await,
        StatusCode::OK
    );

    let log = b.stop();
    assert!(!log.contains("panicked"), "{log}");
    drop(store);
    sqlx::query(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&admin)
        .await
        .unwrap();
}
