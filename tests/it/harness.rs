//! A real server on a loopback port, a real SQLite file, and a browser-like HTTP client.

use std::sync::Arc;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION};
use telegram_oidc::Seams;
use telegram_oidc::admin::{self, NewClient};
use telegram_oidc::clock::{Clock, ShiftedClock};
use telegram_oidc::config::{Config, Secret};
use telegram_oidc::flow::policy::LoginPolicy;
use telegram_oidc::keys::SigningAlg;
use telegram_oidc::store::{AccessTokenFormat, ClientKind, ClientRecord, RefreshPolicy, Store};
use telegram_oidc::telegram::widget;
use tokio::sync::oneshot;

pub const BOT_TOKEN: &str = "5550001111:TEST-bot-token_for-integration-tests";
pub const BOT_USERNAME: &str = "test_login_bot";

pub struct TestApp {
    pub base: String,
    pub store: Arc<dyn Store>,
    pub clock: Arc<ShiftedClock>,
    #[allow(dead_code)]
    pub config: Config,
    /// The access policy every client registered by [`TestApp::client`] gets.
    pub client_policy: std::sync::Mutex<Option<telegram_oidc::access::Rule>>,
    _dir: tempfile::TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
}

pub struct TestClient {
    pub record: ClientRecord,
    pub secret: Option<String>,
    pub redirect_uri: String,
}

impl TestClient {
    pub fn id(&self) -> &str {
        &self.record.client_id
    }
    pub fn secret(&self) -> &str {
        self.secret.as_deref().unwrap_or("")
    }
}

/// Options for registering a client in a test.
pub struct ClientSpec {
    pub kind: ClientKind,
    pub alg: SigningAlg,
    pub format: AccessTokenFormat,
    pub refresh: RefreshPolicy,
    pub skip_consent: bool,
    pub service_account: bool,
    pub device_flow: bool,
}

impl Default for ClientSpec {
    fn default() -> Self {
        ClientSpec {
            kind: ClientKind::Confidential,
            alg: SigningAlg::RS256,
            format: AccessTokenFormat::Jwt,
            refresh: RefreshPolicy::OfflineAccess,
            skip_consent: false,
            service_account: false,
            device_flow: false,
        }
    }
}

/// Per-address limits a hundred times the defaults.
pub fn roomy_address_limits(limits: &mut telegram_oidc::config::RateLimitConfig) {
    for limit in [
        &mut limits.login_ip,
        &mut limits.token_ip,
        &mut limits.device_authorization_ip,
        &mut limits.device_ip,
        // Keyed by address for browsers without a session; on a shared PostgreSQL the
        // counters of one test run are still there for the next.
        &mut limits.device_miss,
        &mut limits.register_ip,
        &mut limits.webhook_ip,
        &mut limits.bc_authorize_ip,
        &mut limits.admin_ip,
    ] {
        limit.limit = limit.limit.saturating_mul(100);
    }
}

impl TestApp {
    pub async fn start() -> TestApp {
        Self::start_with(|_| {}).await
    }

    /// Starts a server; `adjust` may change the config before launch.
    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
        Self::start_gated(adjust, None).await
    }

    /// As [`start_with`](Self::start_with), with an access policy in the login gate.
    pub async fn start_gated(
        adjust: impl FnOnce(&mut Config),
        policy: Option<Arc<dyn LoginPolicy>>,
    ) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut config = Config {
            issuer: format!("http://{addr}"),
            listen: addr,
            database_url: format!("sqlite://{}/test.db", dir.path().display()),
            keys_dir: dir.path().join("keys"),
            ..Config::default()
        };
        config.telegram.bot_token = Secret::new(BOT_TOKEN);
        config.telegram.bot_username = BOT_USERNAME.into();
        // There is no Bot API behind these tests: with the default (`auto`), the bot token
        // would start a poller against api.telegram.org. Tests of the bot use `fake_bot_api`,
        // which sets the mode (and `bot_login_is_on_by_default` leaves it at its default).
        config.telegram.updates = telegram_oidc::config::UpdateMode::None;
        config.max_body_bytes = 16 * 1024;
        // The fake apps of the tests listen on loopback; `tests/it/ssrf.rs` turns this off.
        config.outbound.allow_private = true;
        // Every test request comes from loopback: the per-address limits are raised so that
        // tests which hammer an endpoint (hostile.rs, abuse.rs) do not trip them. The limits
        // stay on; `tests/it/rate_limits.rs` sets its own.
        roomy_address_limits(&mut config.rate_limits);
        adjust(&mut config);
        let store = telegram_oidc::open_store(&config.database_url)
            .await
            .unwrap();
        let clock = Arc::new(ShiftedClock::default());
        let (tx, rx) = oneshot::channel::<()>();
        let mut seams = Seams {
            clock: clock.clone(),
            ..Seams::default()
        };
        if let Some(policy) = policy {
            seams.policy = Some(policy);
        }
        let server = tokio::spawn(telegram_oidc::launch_with(
            config.clone(),
            listener,
            async {
                let _ = rx.await;
            },
            seams,
        ));
        // An https issuer (a server behind a TLS proxy) is still reached here over loopback.
        let base = match config.issuer.strip_prefix("https://") {
            Some(rest) => format!("http://{addr}{}", rest.find('/').map_or("", |i| &rest[i..])),
            None => config.issuer.clone(),
        };
        let app = TestApp {
            base,
            store,
            clock,
            config,
            client_policy: std::sync::Mutex::new(None),
            _dir: dir,
            shutdown: Some(tx),
            server: Some(server),
        };
        // The listener is bound already; wait only until the app answers.
        let http = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = http.get(app.url("/healthz")).send().await
                && r.status().is_success()
            {
                return app;
            }
            tokio::task::yield_now().await;
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("server did not start");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub async fn client(&self, spec: ClientSpec) -> TestClient {
        let redirect_uri = "https://app.example.test/callback".to_string();
        let access_policy = self.client_policy.lock().unwrap().clone();
        let (record, secret) = admin::add_client(
            self.store.as_ref(),
            NewClient {
                name: "Test App".into(),
                kind: spec.kind,
                redirect_uris: vec![redirect_uri.clone(), "http://127.0.0.1:9/cb".into()],
                scopes: vec![
                    "openid".into(),
                    "profile".into(),
                    "telegram".into(),
                    "offline_access".into(),
                ],
                id_token_alg: spec.alg,
                access_token_format: spec.format,
                refresh_policy: spec.refresh,
                skip_consent: spec.skip_consent,
                service_account: spec.service_account,
                device_flow: spec.device_flow,
                access_policy,
                ..Default::default()
            },
            self.now(),
        )
        .await
        .unwrap();
        TestClient {
            record,
            secret,
            redirect_uri,
        }
    }

    pub async fn confidential_client(&self) -> TestClient {
        self.client(ClientSpec::default()).await
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

/// A Telegram user as the widget would describe them.
#[derive(Clone)]
pub struct TgUser {
    pub id: i64,
    pub first_name: String,
    pub username: Option<String>,
}

impl TgUser {
    pub fn new(id: i64) -> TgUser {
        TgUser {
            id,
            first_name: "Ada".into(),
            username: Some("ada_tg".into()),
        }
    }
}

/// Widget fields signed as Telegram signs them, with `auth_date` given.
pub fn widget_fields(user: &TgUser, auth_date: i64, bot_token: &str) -> Vec<(String, String)> {
    let mut fields = vec![
        ("id".to_string(), user.id.to_string()),
        ("first_name".to_string(), user.first_name.clone()),
    ];
    if let Some(u) = &user.username {
        fields.push(("username".into(), u.clone()));
    }
    fields.push(("auth_date".into(), auth_date.to_string()));
    let hash = widget::sign(&fields, bot_token);
    fields.push(("hash".into(), hash));
    fields
}

pub fn encode(fields: &[(String, String)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish()
}

/// A browser: keeps cookies, does not follow redirects (each hop is asserted).
pub struct Browser {
    pub http: reqwest::Client,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

impl Browser {
    pub fn new() -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .cookie_store(true)
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub async fn get(&self, url: &str) -> reqwest::Response {
        self.http.get(url).send().await.unwrap()
    }

    pub async fn post_form(&self, url: &str, fields: &[(String, String)]) -> reqwest::Response {
        self.http
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(fields))
            .send()
            .await
            .unwrap()
    }
}

pub fn location(headers: &HeaderMap) -> String {
    headers
        .get(LOCATION)
        .expect("a Location header")
        .to_str()
        .unwrap()
        .to_string()
}

/// Makes a relative Location absolute against the server.
pub fn absolute(app: &TestApp, location: &str) -> String {
    if location.starts_with("http") {
        location.to_string()
    } else {
        app.url(location)
    }
}

pub fn query_param(url: &str, name: &str) -> Option<String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The `req` handle from a /login or /consent location.
pub fn req_of(location: &str) -> String {
    let full = if location.starts_with("http") {
        location.to_string()
    } else {
        format!("http://x{location}")
    };
    query_param(&full, "req").expect("a req parameter")
}

/// Follows an authorization URL through login (signed widget data for `user`) and consent
/// (approved) to the app's redirect; returns that final redirect URL.
pub async fn authorize_through(
    app: &TestApp,
    browser: &Browser,
    authorize_url: &str,
    user: &TgUser,
) -> String {
    let mut url = authorize_url.to_string();
    for _ in 0..8 {
        let resp = browser.get(&url).await;
        let status = resp.status();
        assert!(
            status == StatusCode::FOUND || status == StatusCode::SEE_OTHER,
            "expected a redirect from {url}, got {status}: {}",
            resp.text().await.unwrap_or_default()
        );
        let next = absolute(app, &location(resp.headers()));
        if next.contains("/login?") {
            let req = req_of(&next);
            let page = browser.get(&next).await;
            assert_eq!(page.status(), StatusCode::OK);
            let fields = widget_fields(user, app.now(), BOT_TOKEN);
            url = format!(
                "{}?{}",
                app.url(&format!("/login/telegram/{req}")),
                encode(&fields)
            );
        } else if next.contains("/consent?") {
            url = approve_consent(app, browser, &next).await;
            return url;
        } else if next.starts_with(app.base.as_str()) {
            url = next;
        } else {
            return next;
        }
    }
    panic!("too many redirects");
}

/// Opens the consent page, reads its form, approves; returns the redirect to the app.
pub async fn approve_consent(app: &TestApp, browser: &Browser, consent_url: &str) -> String {
    let (req, csrf) = consent_form(browser, consent_url).await;
    let resp = browser
        .post_form(
            &app.url("/consent"),
            &[
                ("req".into(), req),
                ("csrf".into(), csrf),
                ("decision".into(), "approve".into()),
            ],
        )
        .await;
    assert_eq!(
        resp.status(),
        StatusCode::FOUND,
        "consent approval must redirect"
    );
    location(resp.headers())
}

/// The hidden `req` and `csrf` values of the consent page.
pub async fn consent_form(browser: &Browser, consent_url: &str) -> (String, String) {
    let page = browser.get(consent_url).await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    (hidden(&html, "req"), hidden(&html, "csrf"))
}

pub fn hidden(html: &str, name: &str) -> String {
    let marker = format!("name=\"{name}\" value=\"");
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no hidden {name} in page"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_string()
}
