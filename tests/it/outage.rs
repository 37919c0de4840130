//! The database goes away mid-test and comes back: the server answers 503 with `Retry-After`
//! meanwhile, says it is not ready, never falls over, and serves again without a restart with
//! every token it issued before.
//!
//! The shared PostgreSQL serves other tests at the same time, so this test runs a private
//! instance of its own (initdb into a temporary directory) that it may stop and start.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{CACHE_CONTROL, CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;
use telegram_oidc::store::{
    AccessTokenRecord, GrantRecord, RefreshTokenRecord, Store, StoreError, StoreResult,
};

use crate::harness::*;

/// A PostgreSQL server of this test's own, on a free loopback port.
struct PrivatePostgres {
    bin: PathBuf,
    data: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    /// Run the server binaries as the `postgres` user: they refuse to run as root.
    as_postgres: bool,
    _dir: tempfile::TempDir,
}

fn postgres_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output().unwrap();
    assert!(out.status.success(), "id {args:?} failed");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

impl PrivatePostgres {
    /// Initialises and starts a private server, or `None` when PostgreSQL's server binaries
    /// are not installed (allowed only outside CI).
    fn start() -> Option<PrivatePostgres> {
        let Some(bin) = postgres_bin_dir() else {
            assert!(
                std::env::var("CI").is_err(),
                "CI must run the outage test: install PostgreSQL's server binaries"
            );
            eprintln!("SKIPPED: the outage test needs initdb and pg_ctl under /usr/lib/postgresql");
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = id(&["-u"]) == 0;
        if as_postgres {
            std::os::unix::fs::chown(
                dir.path(),
                Some(id(&["-u", "postgres"])),
                Some(id(&["-g", "postgres"])),
            )
            .unwrap();
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = PrivatePostgres {
            bin,
            data: dir.path().join("data"),
            socket_dir: dir.path().to_path_buf(),
            port,
            as_postgres,
            _dir: dir,
        };
        let data = pg.data.display().to_string();
        pg.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        pg.up();
        Some(pg)
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let out = command.args(args).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "{tool} {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let data = self.data.display().to_string();
        let mut all = vec!["-D", data.as_str()];
        all.extend_from_slice(args);
        self.run("pg_ctl", &all);
    }

    /// Starts the server and waits until it accepts connections.
    fn up(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.socket_dir.display()
        );
        let log = self.socket_dir.join("postgres.log").display().to_string();
        self.pg_ctl(&["-w", "-t", "60", "-l", &log, "-o", &options, "start"]);
    }

    /// Stops the server: `fast` ends every session at once, as a crash or failover would.
    fn down(&self) {
        self.pg_ctl(&["-w", "-t", "60", "-m", "fast", "stop"]);
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let pid_file: &Path = &self.data.join("postmaster.pid");
        if pid_file.exists() {
            let data = self.data.display().to_string();
            let mut command = if self.as_postgres {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"])
                    .arg(self.bin.join("pg_ctl"));
                c
            } else {
                Command::new(self.bin.join("pg_ctl"))
            };
            let _ = command
                .args(["-D", &data, "-m", "immediate", "stop"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn authorize_url(app: &TestApp, client: &TestClient) -> String {
    format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid%20offline_access&state=s&code_challenge={}&code_challenge_method=S256",
        app.url("/authorize"),
        client.id(),
        url::form_urlencoded::byte_serialize(client.redirect_uri.as_bytes()).collect::<String>(),
        telegram_oidc::oidc::pkce::s256(&"v".repeat(50)),
    )
}

async fn token(app: &TestApp, client: &TestClient, form: &[(&str, &str)]) -> reqwest::Response {
    reqwest::Client::new()
        .post(app.url("/token"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(form)
        .send()
        .await
        .unwrap()
}

async fn introspect(app: &TestApp, client: &TestClient, token: &str) -> Value {
    let resp = reqwest::Client::new()
        .post(app.url("/introspect"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn refresh(app: &TestApp, client: &TestClient, refresh_token: &str) -> reqwest::Response {
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

async fn userinfo(app: &TestApp, access: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(app.url("/userinfo"))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
}

fn assert_unavailable(what: &str, resp: &reqwest::Response) {
    assert_eq!(
        resp.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "{what} during the outage"
    );
    assert_eq!(
        resp.headers().get(RETRY_AFTER).map(|v| v.to_str().unwrap()),
        Some("5"),
        "{what} must say when to retry"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_a_503_and_nothing_issued_before_is_lost() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let app = TestApp::start_with(|c| c.database_url = pg.url()).await;
    let client = app.confidential_client().await;
    let browser = Browser::new();
    let user = TgUser::new(5150);
    let back = authorize_through(&app, &browser, &authorize_url(&app, &client), &user).await;
    let code = query_param(&back, "code").unwrap();
    let verifier = "v".repeat(50);
    let resp = token(
        &app,
        &client,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", &client.redirect_uri),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let issued: Value = resp.json().await.unwrap();
    let access = issued["access_token"].as_str().unwrap().to_string();
    let refresh_token = issued["refresh_token"].as_str().unwrap().to_string();
    // A service's token: its grant and token stored by one grouped write.
    let service = app
        .client(ClientSpec {
            service_account: true,
            ..Default::default()
        })
        .await;
    let credentials = [("grant_type", "client_credentials")];
    let resp = token(&app, &service, &credentials).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let issued: Value = resp.json().await.unwrap();
    let service_access = issued["access_token"].as_str().unwrap().to_string();
    // A login started before the outage, to be finished after it.
    let stranger = Browser::new();
    let resp = stranger.get(&authorize_url(&app, &client)).await;
    let login_url = absolute(&app, &location(resp.headers()));
    assert!(login_url.contains("/login?"), "{login_url}");

    pg.down();

    let started = std::time::Instant::now();
    let (readyz, healthz, authorize) = (
        app.url("/readyz"),
        app.url("/healthz"),
        authorize_url(&app, &client),
    );
    let (refreshed, info, ready, authorize, login, health) = tokio::join!(
        refresh(&app, &client, &refresh_token),
        userinfo(&app, &access),
        browser.get(&readyz),
        browser.get(&authorize),
        stranger.get(&login_url),
        browser.get(&healthz),
    );
    eprintln!(
        "outage: six requests answered in {:.1} s with the database down",
        started.elapsed().as_secs_f64()
    );
    assert_unavailable("the token endpoint", &refreshed);
    assert_eq!(refreshed.headers().get(CACHE_CONTROL).unwrap(), "no-store");
    let body: Value = refreshed.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert_unavailable("userinfo", &info);
    assert_unavailable("readyz", &ready);
    for (what, page) in [
        ("the authorization page", authorize),
        ("the login page", login),
    ] {
        assert_unavailable(what, &page);
        let content_type = page.headers().get(CONTENT_TYPE).unwrap().to_str().unwrap();
        assert!(
            content_type.starts_with("text/html"),
            "{what}: {content_type}"
        );
    }
    assert_eq!(
        health.status(),
        StatusCode::OK,
        "alive while the database is not"
    );

    pg.up();

    // Served again at once, by the same process, with everything issued before the outage.
    assert_eq!(
        browser.get(&app.url("/readyz")).await.status(),
        StatusCode::OK
    );
    let info = userinfo(&app, &access).await;
    assert_eq!(
        info.status(),
        StatusCode::OK,
        "the old access token still works"
    );
    let info: Value = info.json().await.unwrap();
    assert_eq!(info["sub"], "5150");
    assert_eq!(
        introspect(&app, &service, &service_access).await["active"],
        true,
        "the service's token issued before the outage is still there"
    );
    let resp = token(&app, &service, &credentials).await;
    assert_eq!(resp.status(), StatusCode::OK, "grouped writes again");
    let issued: Value = resp.json().await.unwrap();
    let fresh = issued["access_token"].as_str().unwrap();
    assert_eq!(introspect(&app, &service, fresh).await["active"], true);
    let resp = refresh(&app, &client, &refresh_token).await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "the old refresh token still works"
    );
    let rotated: Value = resp.json().await.unwrap();
    let resp = refresh(&app, &client, rotated["refresh_token"].as_str().unwrap()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(stranger.get(&login_url).await.status(), StatusCode::OK);
    app.stop().await;
}

/// While the database cannot count, rate limits are counted in the node's memory: requests
/// go on being answered (fail open) and the limit still holds on that node; once the
/// database is back, the shared counters count again.
#[tokio::test]
async fn rate_limits_fail_open_to_the_nodes_memory_while_the_database_is_down() {
    use telegram_oidc::config::{Limit, Secret, UpdateMode};
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let app = TestApp::start_with(|c| {
        c.database_url = pg.url();
        c.telegram.updates = UpdateMode::Webhook;
        c.telegram.webhook_secret = Secret::new("outage-test-secret");
        c.rate_limits.webhook_ip = Limit::per(3, 600);
    })
    .await;
    app.clock.advance(600 - app.now().rem_euclid(600));
    let http = reqwest::Client::new();
    let call = || {
        http.post(app.url("/telegram/webhook"))
            .header("x-telegram-bot-api-secret-token", "wrong")
            .body("{}")
            .send()
    };
    let remaining = |resp: &reqwest::Response| {
        resp.headers()
            .get("x-ratelimit-remaining")
            .map(|v| v.to_str().unwrap().to_owned())
    };
    let resp = call().await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        remaining(&resp).as_deref(),
        Some("2"),
        "counted in the database"
    );

    pg.down();
    // Each request waits for the pool's acquire timeout, then is counted in memory, afresh.
    for left in ["2", "1", "0"] {
        let resp = call().await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED, "let through");
        assert_eq!(remaining(&resp).as_deref(), Some(left), "counted in memory");
    }
    let resp = call().await.unwrap();
    assert_eq!(
        resp.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "the node's limit holds"
    );
    assert!(resp.headers().get(RETRY_AFTER).is_some());

    pg.up();
    let mut back = None;
    for _ in 0..100 {
        let resp = call().await.unwrap();
        if remaining(&resp).as_deref() == Some("1") {
            back = Some(resp);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let resp = back.expect("the database counts again: its counter had one request");
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    app.stop().await;
}

/// A burst of new grants with their tokens, each written as a token endpoint writes it (on
/// PostgreSQL they share grouped transactions): what each was answered.
async fn burst(
    store: &Arc<dyn Store>,
    n: i64,
) -> Vec<(
    GrantRecord,
    AccessTokenRecord,
    RefreshTokenRecord,
    StoreResult<()>,
)> {
    let now = telegram_oidc::clock::system_now();
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move {
                let g = crate::store::grant("outage-app", 7000 + i, now);
                let a = AccessTokenRecord {
                    token_hash: telegram_oidc::secrets::random_bytes::<32>().to_vec(),
                    grant_id: g.id.clone(),
                    client_id: g.client_id.clone(),
                    user_id: g.user_id,
                    scope: g.scope.clone(),
                    created_at: now,
                    expires_at: now + 600,
                };
                let r = crate::store::refresh(&g.id, now, 3600);
                let outcome = store.create_grant_with_tokens(&g, Some(&a), Some(&r)).await;
                (g, a, r, outcome)
            })
        })
        .collect();
    let mut answered = Vec::new();
    for task in tasks {
        answered.push(task.await.unwrap());
    }
    answered
}

/// Grouped writes while the database is down: every write of a burst is answered, as
/// unavailable, none as stored; every write answered before the outage is still there after
/// it, and a burst after it is stored again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grouped_writes_in_an_outage_are_refused_and_none_answered_is_lost() {
    let Some(pg) = PrivatePostgres::start() else {
        return;
    };
    let store = telegram_oidc::open_store(&pg.url()).await.unwrap();
    let before = burst(&store, 50).await;
    for (_, _, _, outcome) in &before {
        assert!(outcome.is_ok(), "{outcome:?}");
    }

    pg.down();
    let during = tokio::time::timeout(Duration::from_secs(60), burst(&store, 50))
        .await
        .expect("every write answered while the database is down");
    pg.up();

    for (_, _, _, outcome) in &during {
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "{outcome:?}"
        );
    }
    let mut back = false;
    for _ in 0..50 {
        if store.ping().await.is_ok() {
            back = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(back, "the database answers again");
    for (g, a, r, _) in &before {
        assert!(
            store.get_grant(&g.id).await.unwrap().is_some(),
            "grant lost"
        );
        let access = store.get_access_token(&a.token_hash).await.unwrap();
        assert!(access.is_some_and(|t| !t.revoked), "access token lost");
        let refresh = store.get_refresh_token(&r.token_hash).await.unwrap();
        assert!(refresh.is_some_and(|t| !t.used), "refresh token lost");
    }
    for (g, _, _, _) in &during {
        assert!(store.get_grant(&g.id).await.unwrap().is_none());
    }
    for (g, _, _, outcome) in burst(&store, 50).await {
        assert!(outcome.is_ok(), "{outcome:?}");
        assert!(store.get_grant(&g.id).await.unwrap().is_some());
    }
}
