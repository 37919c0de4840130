//! Typed settings: defaults < TOML file < environment (`TGOIDC_` prefix, `__` for nesting).
//! Secrets may come from `*_file` settings so they never have to sit in the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

mod endpoints;
mod rate_limits;
mod validate;
pub use endpoints::{AdminConfig, CibaConfig, MetricsConfig, TracesConfig};
pub use rate_limits::{Limit, RateLimitConfig};
pub use validate::is_loopback_url;

/// A secret string whose `Debug` never shows the value.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The issuer URL apps see (`iss`); every endpoint is published under it.
    pub issuer: String,
    pub listen: SocketAddr,
    /// `sqlite://path` (created if missing) or `postgres://...`.
    pub database_url: String,
    pub keys_dir: PathBuf,
    pub telegram: TelegramConfig,
    /// Telegram's own OpenID Connect provider as a login method; absent: not offered.
    pub telegram_oidc: Option<UpstreamOidcConfig>,
    pub tokens: TokenConfig,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// How long a request body may take to arrive, in all (`408` after that).
    pub body_timeout_secs: u64,
    /// PostgreSQL: how long a node may hold a client (its settings and secret hash) in memory.
    /// Every change of a client drops it on every node at once (`LISTEN`/`NOTIFY`); this bound
    /// is the safety net. 0 reads every client from the database. SQLite never holds them.
    pub client_cache_secs: u64,
    /// How often expired rows (and audit entries past `audit.retention_days`) are swept
    /// away, in seconds; the first sweep runs at start-up. 0: never, for benchmarks and tests,
    /// or when a job outside the server sweeps.
    pub sweep_interval_secs: u64,
    /// The domain of synthetic email addresses (`<sub>@<domain>`), for apps that demand one.
    pub email_domain: String,
    /// Dynamic client registration (RFC 7591/7592); off unless enabled.
    pub registration: RegistrationConfig,
    /// Requests this server makes to URLs that apps chose (`jwks_uri`, `sector_identifier_uri`,
    /// `backchannel_logout_uri` of dynamically registered clients).
    pub outbound: OutboundConfig,
    /// Reverse proxies whose `X-Forwarded-For` says who the client is (CIDRs, e.g.
    /// `["10.0.0.0/8"]`); without them the TCP peer is the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// The audit log: what happened, who did it, from where.
    pub audit: AuditConfig,
    /// How per-app access policies ask Telegram about chat membership.
    pub policy: PolicyConfig,
    /// Named groups released in the `groups` claim: a name per chat, e.g.
    /// `team = "-1001234567890"`, `admins = "-1001234567890:administrator"`.
    pub groups: std::collections::BTreeMap<String, crate::access::GroupSpec>,
    /// What users manage themselves: login alerts, the places shown beside their sessions.
    pub account: AccountConfig,
    /// Backchannel authentication (CIBA Core 1.0): how long a request waits for the user and
    /// how often the app may poll.
    pub ciba: CibaConfig,
    /// Request rate limits per client address and per client (`[rate_limits]`).
    pub rate_limits: RateLimitConfig,
    /// Prometheus metrics on a listener of their own.
    pub metrics: MetricsConfig,
    /// OTLP traces (`[traces]`), off unless `otlp_endpoint` is set.
    pub traces: TracesConfig,
    /// The admin API (`/admin/api/v1`).
    pub admin: AdminConfig,
    /// Dev mode: replaces the Telegram widget with the built-in emulator. Only loopback issuers.
    #[serde(skip)]
    pub dev_mode: bool,
    /// Dev mode only: the demo client's secret, shown in the curl command of its callback page.
    #[serde(skip)]
    pub dev_client_secret: Option<Secret>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TelegramConfig {
    /// The bot token (from BotFather). Prefer `bot_token_file`.
    pub bot_token: Secret,
    /// Read the bot token from this file (trailing whitespace trimmed).
    pub bot_token_file: Option<PathBuf>,
    /// The bot's username, without the leading `@`.
    pub bot_username: String,
    /// Oldest accepted `auth_date`, in seconds.
    pub auth_date_window_secs: i64,
    /// Largest accepted `auth_date` in the future, in seconds (clock skew).
    pub clock_skew_secs: i64,
    /// The Telegram environment the bot lives in (`production` or `test`): it picks the Ed25519
    /// key that checks Mini App data of other bots. User ids of the two are unrelated.
    pub environment: TelegramEnvironment,
    /// Telegram's Ed25519 public key for Mini App data, production environment (hex).
    pub init_data_public_key: String,
    /// Telegram's Ed25519 public key for Mini App data, test environment (hex).
    pub init_data_test_public_key: String,
    /// Where the Login Widget script is loaded from.
    pub widget_script_url: String,
    /// How the widget hands over the login: `redirect` (`data-auth-url`) or `callback`
    /// (`data-onauth`, the page posts the fields).
    pub widget_mode: WidgetMode,
    /// The Bot API server; calls go to `{bot_api_url}/bot<token>/<method>`.
    pub bot_api_url: String,
    /// How the bot hears `/start` and button presses: `auto` (the default: `webhook` when a
    /// webhook secret is set, else `polling` when there is a bot token), `webhook`, `polling`
    /// (`getUpdates`) or `none` (no login through the bot chat, no device confirmation in the
    /// bot). Read it through [`TelegramConfig::update_mode`].
    pub updates: UpdateMode,
    /// What Telegram sends back in `X-Telegram-Bot-Api-Secret-Token` on every webhook call.
    /// Prefer `webhook_secret_file`.
    pub webhook_secret: Secret,
    pub webhook_secret_file: Option<PathBuf>,
    /// Call `setWebhook` at startup with `{issuer}/telegram/webhook` and the secret.
    pub register_webhook: bool,
    /// How long a `t.me/<bot>?start=` login link stays usable, in seconds.
    pub deep_link_ttl_secs: i64,
    /// How long one `getUpdates` call waits for news (long polling), in seconds.
    pub polling_timeout_secs: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UpdateMode {
    #[default]
    Auto,
    Webhook,
    Polling,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WidgetMode {
    #[default]
    Redirect,
    Callback,
}

/// Telegram's Ed25519 keys for Mini App `initData` (core.telegram.org/bots/webapps).
pub const TELEGRAM_PRODUCTION_PUBLIC_KEY: &str =
    "e7bf03a2fa4602af4580703d88dda5bb59f32ed8b02a56c187fe7d34caed242d";
pub const TELEGRAM_TEST_PUBLIC_KEY: &str =
    "40055058a4ee38156a06562e52eece92a771bcd8346a8c4615cb7376eddf72ec";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TelegramEnvironment {
    #[default]
    Production,
    Test,
}

impl TelegramConfig {
    /// How updates arrive, `auto` resolved: the bot login is on whenever there is a bot token,
    /// by webhook when a webhook secret is set and by polling otherwise. Never `Auto`.
    pub fn update_mode(&self) -> UpdateMode {
        match self.updates {
            UpdateMode::Auto if !self.webhook_secret.expose().is_empty() => UpdateMode::Webhook,
            UpdateMode::Auto if !self.bot_token.expose().is_empty() => UpdateMode::Polling,
            UpdateMode::Auto => UpdateMode::None,
            explicit => explicit,
        }
    }

    /// The Ed25519 key that checks Mini App data of the configured environment (32 bytes).
    pub fn init_data_public_key(&self) -> Option<Vec<u8>> {
        let hex_key = match self.environment {
            TelegramEnvironment::Production => &self.init_data_public_key,
            TelegramEnvironment::Test => &self.init_data_test_public_key,
        };
        hex::decode(hex_key).ok().filter(|k| k.len() == 32)
    }
}

/// Telegram's own OpenID Connect provider (core.telegram.org/bots/telegram-login), used as an
/// upstream: this server is the app towards Telegram.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamOidcConfig {
    /// The issuer; its discovery document names the endpoints and the JWKS.
    pub issuer: String,
    /// The bot's numeric id (BotFather, Bot Settings, Web Login).
    #[serde(deserialize_with = "string_or_number")]
    pub client_id: String,
    /// The secret BotFather shows. Prefer `client_secret_file`.
    pub client_secret: Secret,
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked of Telegram: `openid` and `profile`; add `phone` to offer the phone number.
    pub scopes: Vec<String>,
    /// Age after which Telegram's JWKS is fetched again at the next login, whatever `kid` the
    /// ID token names (a key Telegram withdrew stops being accepted then). An unknown `kid` is
    /// fetched at once, at most every 5 seconds, independently of this setting.
    pub jwks_refetch_interval_secs: i64,
    /// How long a call to Telegram may take, in seconds.
    pub http_timeout_secs: u64,
}

impl Default for UpstreamOidcConfig {
    fn default() -> Self {
        UpstreamOidcConfig {
            issuer: "https://oauth.telegram.org".into(),
            client_id: String::new(),
            client_secret: Secret::default(),
            client_secret_file: None,
            scopes: vec!["openid".into(), "profile".into()],
            jwks_refetch_interval_secs: 300,
            http_timeout_secs: 10,
        }
    }
}

/// A string that an environment variable may have turned into a number (`..._CLIENT_ID=123`).
fn string_or_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Either {
        S(String),
        N(u64),
    }
    Ok(match Either::deserialize(d)? {
        Either::S(s) => s,
        Either::N(n) => n.to_string(),
    })
}

/// The scopes Telegram's provider knows.
const UPSTREAM_SCOPES: [&str; 4] = ["openid", "profile", "phone", "telegram:bot_access"];

/// Dynamic client registration (RFC 7591) and its management API (RFC 7592).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RegistrationConfig {
    /// Serve `POST /register`; only callers holding the initial access token may register.
    pub enabled: bool,
    /// The bearer token registration requests must carry (RFC 7591 §3). Prefer
    /// `initial_access_token_file`.
    pub initial_access_token: Secret,
    pub initial_access_token_file: Option<PathBuf>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundConfig {
    /// Let the server connect to loopback, private, link-local and other internal addresses
    /// for URLs that apps chose. Off by default (server-side request forgery); dev mode implies
    /// it.
    pub allow_private: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Record logins, refusals, consents, token issuance and revocation, admin actions.
    pub enabled: bool,
    /// Entries older than this many days are deleted by the expired-row sweep.
    pub retention_days: i64,
    /// Also print every entry to stdout as one JSON line (for log shippers).
    pub stdout: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: true,
            retention_days: 90,
            stdout: false,
        }
    }
}

/// Chat membership for access policies and groups (Bot API `getChatMember`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    /// How long a membership answer is used before Telegram is asked again, in seconds; a
    /// member removed from a chat is refused at the next login or refresh after this time.
    pub cache_secs: i64,
    /// How long an older answer may stand in while the Bot API fails (outage, 429), in
    /// seconds; without one, the login is refused (fail closed).
    pub stale_secs: i64,
    /// How long one `getChatMember` call may take, in seconds.
    pub timeout_secs: u64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            cache_secs: 300,
            stale_secs: 24 * 3600,
            timeout_secs: 5,
        }
    }
}

/// Login alerts and the places shown in the user's lists (`/sessions`, `/account`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccountConfig {
    /// Who gets a login alert from the bot until they choose with `/alerts on|off`.
    pub login_alerts: AlertsDefault,
    /// A MaxMind DB file (GeoLite2-City or GeoIP2-City) that places addresses roughly; absent:
    /// no place is shown anywhere.
    pub geoip_database: Option<PathBuf>,
}

/// The login alert default, for users who have not chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AlertsDefault {
    /// Users who have logged in through the bot chat (they started the bot, so it may write).
    #[default]
    BotUsers,
    Everyone,
    Nobody,
}

/// Shortest initial access token accepted: it must not be guessable.
const MIN_INITIAL_ACCESS_TOKEN_LEN: usize = 32;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TokenConfig {
    pub code_ttl_secs: i64,
    pub access_token_ttl_secs: i64,
    pub id_token_ttl_secs: i64,
    pub refresh_token_ttl_secs: i64,
    pub session_ttl_secs: i64,
    /// How long a started authorization waits for the user to log in.
    pub pending_authorization_ttl_secs: i64,
    /// How long a device code waits for the user (RFC 8628 `expires_in`).
    pub device_code_ttl_secs: i64,
    /// The polling interval a device is told to keep (RFC 8628 `interval`).
    pub device_poll_interval_secs: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: "http://127.0.0.1:8080".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://data/telegram-oidc.db".into(),
            // Beside the default database, where `dev` keeps its keys too: the CLI run in the
            // folder where `dev` ran finds both.
            keys_dir: PathBuf::from("data/keys"),
            telegram: TelegramConfig::default(),
            telegram_oidc: None,
            tokens: TokenConfig::default(),
            max_body_bytes: 64 * 1024,
            body_timeout_secs: 10,
            client_cache_secs: 5,
            sweep_interval_secs: 300,
            email_domain: "telegram.invalid".into(),
            registration: RegistrationConfig::default(),
            outbound: OutboundConfig::default(),
            trusted_proxies: Vec::new(),
            audit: AuditConfig::default(),
            policy: PolicyConfig::default(),
            groups: std::collections::BTreeMap::new(),
            account: AccountConfig::default(),
            ciba: CibaConfig::default(),
            rate_limits: RateLimitConfig::default(),
            metrics: MetricsConfig::default(),
            traces: TracesConfig::default(),
            admin: AdminConfig::default(),
            dev_mode: false,
            dev_client_secret: None,
        }
    }
}

impl Default for TelegramConfig {
    fn default() -> Self {
        TelegramConfig {
            bot_token: Secret::default(),
            bot_token_file: None,
            bot_username: String::new(),
            auth_date_window_secs: 300,
            clock_skew_secs: 30,
            environment: TelegramEnvironment::Production,
            init_data_public_key: TELEGRAM_PRODUCTION_PUBLIC_KEY.into(),
            init_data_test_public_key: TELEGRAM_TEST_PUBLIC_KEY.into(),
            widget_script_url: "https://telegram.org/js/telegram-widget.js?22".into(),
            widget_mode: WidgetMode::Redirect,
            bot_api_url: "https://api.telegram.org".into(),
            updates: UpdateMode::Auto,
            webhook_secret: Secret::default(),
            webhook_secret_file: None,
            register_webhook: false,
            deep_link_ttl_secs: 300,
            polling_timeout_secs: 30,
        }
    }
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            code_ttl_secs: 60,
            access_token_ttl_secs: 3600,
            id_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 30 * 24 * 3600,
            session_ttl_secs: 7 * 24 * 3600,
            pending_authorization_ttl_secs: 15 * 60,
            device_code_ttl_secs: 600,
            device_poll_interval_secs: 5,
        }
    }
}

/// A setting that is wrong, with the words that say how to fix it.
#[derive(Debug, thiserror::Error)]
#[error("configuration error in `{setting}`: {message}")]
pub struct ConfigError {
    pub setting: String,
    pub message: String,
}

fn bad(setting: &str, message: impl Into<String>) -> ConfigError {
    ConfigError {
        setting: setting.into(),
        message: message.into(),
    }
}

impl Config {
    /// Loads defaults, then the TOML file (if given), then `TGOIDC_*` environment variables
    /// (`TGOIDC_TELEGRAM__BOT_USERNAME=...`), reads `*_file` secrets and validates the result.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        let config = Config::load_unvalidated(file)?;
        config.validate()?;
        Ok(config)
    }

    /// Loads the layers without the full check, for commands that need only the database and
    /// keys (client and key administration).
    pub fn load_unvalidated(file: Option<&Path>) -> Result<Config, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(bad(
                    "--config",
                    format!("the file {} does not exist", path.display()),
                ));
            }
            figment = figment.merge(Toml::file(path));
        }
        figment = figment.merge(Env::prefixed("TGOIDC_").split("__"));
        let mut config: Config = figment.extract().map_err(|e| {
            let mut setting = e.path.join(".");
            // A value from the environment is named by its variable (TGOIDC_TOKENS__CODE_TTL_SECS).
            if let Some(meta) = &e.metadata
                && meta.name.contains("environment")
                && !e.path.is_empty()
            {
                let var: Vec<String> = e.path.iter().map(|k| k.to_ascii_uppercase()).collect();
                setting = format!("{setting} (from TGOIDC_{})", var.join("__"));
            }
            bad(
                if setting.is_empty() {
                    "config"
                } else {
                    &setting
                },
                e.kind.to_string(),
            )
        })?;
        config.read_secret_files()?;
        Ok(config)
    }

    pub fn read_secret_files(&mut self) -> Result<(), ConfigError> {
        if let Some(path) = &self.telegram.bot_token_file {
            let token = std::fs::read_to_string(path).map_err(|e| {
                bad(
                    "telegram.bot_token_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            self.telegram.bot_token = Secret::new(token.trim());
        }
        if let Some(path) = &self.telegram.webhook_secret_file {
            let secret = std::fs::read_to_string(path).map_err(|e| {
                bad(
                    "telegram.webhook_secret_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            self.telegram.webhook_secret = Secret::new(secret.trim());
        }
        if let Some(upstream) = &mut self.telegram_oidc
            && let Some(path) = &upstream.client_secret_file
        {
            let secret = std::fs::read_to_string(path).map_err(|e| {
                bad(
                    "telegram_oidc.client_secret_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            upstream.client_secret = Secret::new(secret.trim());
        }
        if let Some(path) = &self.registration.initial_access_token_file {
            let token = std::fs::read_to_string(path).map_err(|e| {
                bad(
                    "registration.initial_access_token_file",
                    format!("cannot read {}: {e}", path.display()),
                )
            })?;
            self.registration.initial_access_token = Secret::new(token.trim());
        }
        Ok(())
    }

    /// Whether cookies must carry `Secure` (an https issuer).
    pub fn secure_cookies(&self) -> bool {
        self.issuer.starts_with("https://")
    }

    /// The path prefix of the issuer (`/` or `/oidc/`), for cookie paths.
    pub fn cookie_path(&self) -> String {
        match url::Url::parse(&self.issuer) {
            Ok(u) => {
                let p = u.path().trim_end_matches('/');
                if p.is_empty() { "/".into() } else { p.into() }
            }
            Err(_) => "/".into(),
        }
    }

    /// How often the expired-row sweep runs; `None`: never (`sweep_interval_secs = 0`).
    pub fn sweep_interval(&self) -> Option<std::time::Duration> {
        (self.sweep_interval_secs > 0)
            .then(|| std::time::Duration::from_secs(self.sweep_interval_secs))
    }

    /// How long a retired signing key must stay published: the longest-lived JWT it signed.
    pub fn key_retention_secs(&self) -> i64 {
        self.tokens
            .access_token_ttl_secs
            .max(self.tokens.id_token_ttl_secs)
            + 60
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid() -> Config {
        let mut c = Config::default();
        c.telegram.bot_token = Secret::new("123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ_-abc");
        c.telegram.bot_username = "example_bot".into();
        c
    }

    #[test]
    fn a_valid_config_passes() {
        valid().validate().unwrap();
    }

    #[test]
    fn errors_name_the_setting() {
        let mut c = valid();
        c.telegram.bot_token = Secret::default();
        assert_eq!(c.validate().unwrap_err().setting, "telegram.bot_token");
        let mut c = valid();
        c.issuer = "http://id.example.com".into();
        assert_eq!(c.validate().unwrap_err().setting, "issuer");
        let mut c = valid();
        c.issuer = "https://id.example.com".into();
        c.dev_mode = true;
        assert!(c.validate().unwrap_err().message.contains("loopback"));
        let mut c = valid();
        c.tokens.code_ttl_secs = 0;
        assert_eq!(c.validate().unwrap_err().setting, "tokens.code_ttl_secs");
    }

    #[test]
    fn the_metrics_listener_is_off_by_default_and_needs_a_port_of_its_own() {
        assert_eq!(valid().metrics.listen, None);
        let c: Config = toml::from_str(
            "[telegram]\nbot_token = \"123456:ABC\"\n[metrics]\nlisten = \"127.0.0.1:9464\"\n",
        )
        .unwrap();
        assert_eq!(
            c.metrics.listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        let mut c = valid();
        c.metrics.listen = Some(c.listen);
        assert_eq!(c.validate().unwrap_err().setting, "metrics.listen");
        c.metrics.listen = Some(SocketAddr::from(([127, 0, 0, 1], 9464)));
        c.validate().unwrap();
    }

    #[test]
    fn the_bot_login_is_on_by_default_whenever_there_is_a_bot_token() {
        let mut c = valid();
        assert_eq!(c.telegram.updates, UpdateMode::Auto);
        assert_eq!(c.telegram.update_mode(), UpdateMode::Polling);
        c.telegram.webhook_secret = Secret::new("s3cret_-token");
        assert_eq!(c.telegram.update_mode(), UpdateMode::Webhook);
        c.telegram.register_webhook = true;
        c.validate().unwrap();
        c.telegram.updates = UpdateMode::None;
        assert_eq!(c.telegram.update_mode(), UpdateMode::None);
        c.telegram.updates = UpdateMode::Polling;
        assert_eq!(c.telegram.update_mode(), UpdateMode::Polling);
        let mut c = valid();
        c.telegram.bot_token = Secret::default();
        assert_eq!(c.telegram.update_mode(), UpdateMode::None);
        // From a settings file: `none` still turns it off, `auto` may be written out.
        for (text, mode) in [("none", UpdateMode::None), ("auto", UpdateMode::Auto)] {
            let t: TelegramConfig = toml::from_str(&format!("updates = \"{text}\"")).unwrap();
            assert_eq!(t.updates, mode);
        }
    }

    #[test]
    fn bot_settings_are_checked() {
        let mut c = valid();
        c.telegram.updates = UpdateMode::Webhook;
        assert_eq!(c.validate().unwrap_err().setting, "telegram.webhook_secret");
        c.telegram.webhook_secret = Secret::new("has spaces");
        assert_eq!(c.validate().unwrap_err().setting, "telegram.webhook_secret");
        c.telegram.webhook_secret = Secret::new("s3cret_-token");
        c.validate().unwrap();
        c.telegram.bot_api_url = "http://api.example.com".into();
        assert_eq!(c.validate().unwrap_err().setting, "telegram.bot_api_url");
        let mut c = valid();
        c.telegram.register_webhook = true;
        assert_eq!(
            c.validate().unwrap_err().setting,
            "telegram.register_webhook"
        );
        let mut c = valid();
        c.tokens.device_poll_interval_secs = 0;
        assert_eq!(
            c.validate().unwrap_err().setting,
            "tokens.device_poll_interval_secs"
        );
        let mut c = valid();
        c.ciba.interval_secs = 0;
        assert_eq!(c.validate().unwrap_err().setting, "ciba.interval_secs");
        let mut c = valid();
        c.ciba.default_expiry_secs = 900;
        assert_eq!(
            c.validate().unwrap_err().setting,
            "ciba.default_expiry_secs"
        );
        c.ciba.max_expiry_secs = 900;
        c.validate().unwrap();
        // From a settings file.
        let ciba: CibaConfig = toml::from_str("interval_secs = 7").unwrap();
        assert_eq!(
            (
                ciba.interval_secs,
                ciba.default_expiry_secs,
                ciba.max_expiry_secs
            ),
            (7, 300, 600)
        );
    }

    #[test]
    fn miniapp_and_upstream_settings_are_checked() {
        let mut c = valid();
        assert_eq!(
            c.telegram
                .init_data_public_key()
                .map(hex::encode)
                .as_deref(),
            Some(TELEGRAM_PRODUCTION_PUBLIC_KEY)
        );
        c.telegram.environment = TelegramEnvironment::Test;
        assert_eq!(
            c.telegram
                .init_data_public_key()
                .map(hex::encode)
                .as_deref(),
            Some(TELEGRAM_TEST_PUBLIC_KEY)
        );
        c.telegram.init_data_test_public_key = "abcd".into();
        assert_eq!(
            c.validate().unwrap_err().setting,
            "telegram.init_data_test_public_key"
        );
        let mut c = valid();
        c.telegram_oidc = Some(UpstreamOidcConfig::default());
        assert_eq!(c.validate().unwrap_err().setting, "telegram_oidc.client_id");
        let u = c.telegram_oidc.as_mut().unwrap();
        u.client_id = "123456".into();
        u.client_secret = Secret::new("s");
        c.validate().unwrap();
        c.telegram_oidc.as_mut().unwrap().scopes = vec!["openid".into(), "email".into()];
        assert_eq!(c.validate().unwrap_err().setting, "telegram_oidc.scopes");
        c.telegram_oidc.as_mut().unwrap().scopes = vec!["profile".into()];
        assert_eq!(c.validate().unwrap_err().setting, "telegram_oidc.scopes");
        c.telegram_oidc.as_mut().unwrap().scopes = vec!["openid".into()];
        c.telegram_oidc.as_mut().unwrap().issuer = "http://oauth.example.com".into();
        assert_eq!(c.validate().unwrap_err().setting, "telegram_oidc.issuer");
        let shown = format!(
            "{:?}",
            Some(UpstreamOidcConfig {
                client_secret: Secret::new("TOPSECRETVALUE"),
                ..Default::default()
            })
        );
        assert!(!shown.contains("TOPSECRETVALUE"));
    }

    #[test]
    fn registration_needs_a_strong_initial_access_token() {
        let mut c = valid();
        c.registration.enabled = true;
        let err = c.validate().unwrap_err();
        assert_eq!(err.setting, "registration.initial_access_token");
        assert!(err.message.contains("anyone could register"), "{err}");
        c.registration.initial_access_token = Secret::new("short");
        assert_eq!(
            c.validate().unwrap_err().setting,
            "registration.initial_access_token"
        );
        c.registration.initial_access_token = Secret::new("a".repeat(31) + " ");
        assert!(c.validate().is_err());
        c.registration.initial_access_token = Secret::new("0123456789abcdef0123456789abcdef");
        c.validate().unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("0123456789abcdef"), "{shown}");
    }

    #[test]
    fn rate_limits_need_a_window_and_a_limit() {
        let mut c = valid();
        assert!(c.rate_limits.enabled);
        c.rate_limits.token_ip.window_secs = 0;
        assert_eq!(
            c.validate().unwrap_err().setting,
            "rate_limits.token_ip.window_secs"
        );
        let mut c = valid();
        c.rate_limits.device_miss.limit = 0;
        assert_eq!(
            c.validate().unwrap_err().setting,
            "rate_limits.device_miss.limit"
        );
    }

    #[test]
    fn one_rate_limit_is_overridden_and_the_others_keep_their_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "[rate_limits.token_ip]\nlimit = 5\n").unwrap();
        let c = Config::load_unvalidated(Some(&path)).unwrap();
        assert_eq!(c.rate_limits.token_ip, Limit::per(5, 60));
        assert_eq!(c.rate_limits.token_client, Limit::per(1200, 60));
    }

    #[test]
    fn the_sweep_interval_is_read_checked_and_zero_turns_the_sweep_off() {
        let c = valid();
        assert_eq!(c.sweep_interval_secs, 300);
        assert_eq!(
            c.sweep_interval(),
            Some(std::time::Duration::from_secs(300))
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, "sweep_interval_secs = 0\n").unwrap();
        let c = Config::load_unvalidated(Some(&path)).unwrap();
        assert_eq!(c.sweep_interval_secs, 0);
        assert_eq!(c.sweep_interval(), None);
        let mut c = valid();
        c.sweep_interval_secs = 0;
        c.validate().unwrap();
        for (secs, ok) in [
            (9, false),
            (10, true),
            (3600, true),
            (86_400, true),
            (86_401, false),
        ] {
            c.sweep_interval_secs = secs;
            match c.validate() {
                Ok(()) => assert!(ok, "{secs} accepted"),
                Err(e) => {
                    assert!(!ok, "{secs} refused: {e}");
                    assert_eq!(e.setting, "sweep_interval_secs");
                }
            }
        }
        std::fs::write(&path, "sweep_interval_secs = -5\n").unwrap();
        let err = Config::load_unvalidated(Some(&path)).unwrap_err();
        assert_eq!(err.setting, "sweep_interval_secs");
    }

    #[test]
    fn a_missing_geoip_database_is_named() {
        let mut c = valid();
        c.account.geoip_database = Some("/nonexistent/GeoLite2-City.mmdb".into());
        assert_eq!(c.validate().unwrap_err().setting, "account.geoip_database");
    }

    #[test]
    fn secret_debug_is_redacted() {
        let c = valid();
        let shown = format!("{c:?}");
        assert!(!shown.contains("ABCDEFGHIJ"), "{shown}");
    }
}
