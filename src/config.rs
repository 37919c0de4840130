//! Typed settings: defaults < TOML file < environment (`TGOIDC_` prefix, `__` for nesting).
//! Secrets may come from `*_file` settings so they never have to sit in the environment.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

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
    pub tokens: TokenConfig,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Dev mode: replaces the Telegram widget with the built-in emulator. Only loopback issuers.
    #[serde(skip)]
    pub dev_mode: bool,
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
    /// Where the Login Widget script is loaded from.
    pub widget_script_url: String,
    /// How the widget hands over the login: `redirect` (`data-auth-url`) or `callback`
    /// (`data-onauth`, the page posts the fields).
    pub widget_mode: WidgetMode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum WidgetMode {
    #[default]
    Redirect,
    Callback,
}

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            issuer: "http://127.0.0.1:8080".into(),
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            database_url: "sqlite://data/telegram-oidc.db".into(),
            keys_dir: PathBuf::from("keys"),
            telegram: TelegramConfig::default(),
            tokens: TokenConfig::default(),
            max_body_bytes: 64 * 1024,
            dev_mode: false,
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
            widget_script_url: "https://telegram.org/js/telegram-widget.js?22".into(),
            widget_mode: WidgetMode::Redirect,
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
            let setting = e.path.join(".");
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
        Ok(())
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let issuer = url::Url::parse(&self.issuer).map_err(|e| {
            bad(
                "issuer",
                format!(
                    "`{}` is not a URL ({e}); set it to e.g. https://id.example.com",
                    self.issuer
                ),
            )
        })?;
        if issuer.query().is_some() || issuer.fragment().is_some() {
            return Err(bad(
                "issuer",
                "the issuer must not have a query or fragment",
            ));
        }
        if self.issuer.ends_with('/') {
            return Err(bad("issuer", "drop the trailing `/` from the issuer URL"));
        }
        let loopback = is_loopback_url(&issuer);
        if issuer.scheme() != "https" && !loopback {
            return Err(bad(
                "issuer",
                "the issuer must use https (plain http is allowed only on a loopback address)",
            ));
        }
        if self.dev_mode && !loopback {
            return Err(bad(
                "issuer",
                "dev mode runs the Telegram emulator and only accepts a loopback issuer such as http://127.0.0.1:8080",
            ));
        }
        if !(self.database_url.starts_with("sqlite:")
            || self.database_url.starts_with("postgres:")
            || self.database_url.starts_with("postgresql:"))
        {
            return Err(bad(
                "database_url",
                "use sqlite://path/to/file.db or postgres://user@host/db",
            ));
        }
        let token = self.telegram.bot_token.expose();
        if token.is_empty() {
            return Err(bad(
                "telegram.bot_token",
                "the bot token is missing: set telegram.bot_token_file (or TGOIDC_TELEGRAM__BOT_TOKEN) to the token BotFather gave you",
            ));
        }
        if !looks_like_bot_token(token) {
            return Err(bad(
                "telegram.bot_token",
                "this is not a bot token: it looks like `123456789:AA...` (digits, a colon, then letters, digits, `_` and `-`)",
            ));
        }
        let username = &self.telegram.bot_username;
        if username.len() < 5
            || username.len() > 32
            || !username
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(bad(
                "telegram.bot_username",
                "set the bot's username without `@` (5-32 characters of letters, digits and `_`)",
            ));
        }
        let t = &self.telegram;
        if t.auth_date_window_secs < 10 || t.auth_date_window_secs > 7 * 24 * 3600 {
            return Err(bad(
                "telegram.auth_date_window_secs",
                "must be between 10 seconds and 7 days",
            ));
        }
        if t.clock_skew_secs < 0 || t.clock_skew_secs > 600 {
            return Err(bad("telegram.clock_skew_secs", "must be between 0 and 600"));
        }
        let k = &self.tokens;
        for (name, value, min, max) in [
            ("tokens.code_ttl_secs", k.code_ttl_secs, 5, 600),
            (
                "tokens.access_token_ttl_secs",
                k.access_token_ttl_secs,
                30,
                86_400,
            ),
            ("tokens.id_token_ttl_secs", k.id_token_ttl_secs, 30, 86_400),
            (
                "tokens.refresh_token_ttl_secs",
                k.refresh_token_ttl_secs,
                60,
                365 * 86_400,
            ),
            (
                "tokens.session_ttl_secs",
                k.session_ttl_secs,
                60,
                365 * 86_400,
            ),
            (
                "tokens.pending_authorization_ttl_secs",
                k.pending_authorization_ttl_secs,
                30,
                86_400,
            ),
        ] {
            if value < min || value > max {
                return Err(bad(
                    name,
                    format!("must be between {min} and {max} seconds, not {value}"),
                ));
            }
        }
        if self.max_body_bytes < 1024 || self.max_body_bytes > 16 * 1024 * 1024 {
            return Err(bad("max_body_bytes", "must be between 1024 and 16777216"));
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

    /// How long a retired signing key must stay published: the longest-lived JWT it signed.
    pub fn key_retention_secs(&self) -> i64 {
        self.tokens
            .access_token_ttl_secs
            .max(self.tokens.id_token_ttl_secs)
            + 60
    }
}

pub fn is_loopback_url(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

fn looks_like_bot_token(token: &str) -> bool {
    match token.split_once(':') {
        Some((id, rest)) => {
            !id.is_empty()
                && id.chars().all(|c| c.is_ascii_digit())
                && rest.len() >= 20
                && rest
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        }
        None => false,
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
    fn secret_debug_is_redacted() {
        let c = valid();
        let shown = format!("{c:?}");
        assert!(!shown.contains("ABCDEFGHIJ"), "{shown}");
    }
}
