//! The checks a configuration must pass before the server starts: each error names the setting
//! and says how to fix it.

use super::*;

impl Config {
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
        if let Some(metrics) = self.metrics.listen
            && metrics.port() != 0
            && metrics == self.listen
        {
            return Err(bad(
                "metrics.listen",
                format!(
                    "{metrics} is also `listen`: give the metrics a port of their own (e.g. 127.0.0.1:9464)"
                ),
            ));
        }
        self.validate_traces()?;
        let admin = &self.admin;
        if !(60..=86_400).contains(&admin.idle_timeout_secs) {
            return Err(bad(
                "admin.idle_timeout_secs",
                "give 60 to 86400 seconds (default 900)",
            ));
        }
        if admin.session_max_secs < admin.idle_timeout_secs || admin.session_max_secs > 7 * 86_400 {
            return Err(bad(
                "admin.session_max_secs",
                "give at least admin.idle_timeout_secs and at most 604800 seconds (default 28800)",
            ));
        }
        if let Some(id) = admin.telegram_ids.iter().find(|id| **id <= 0) {
            return Err(bad(
                "admin.telegram_ids",
                format!("{id} is not a Telegram user id (a positive number)"),
            ));
        }
        if admin.chat_id.is_some() && self.telegram.bot_token.is_empty() {
            return Err(bad(
                "admin.chat_id",
                "the chat's administrators are learned through the bot: set telegram.bot_token",
            ));
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
        self.validate_bot()?;
        self.validate_registration()?;
        self.validate_policy()?;
        if let Some(path) = &self.account.geoip_database
            && !path.is_file()
        {
            return Err(bad(
                "account.geoip_database",
                format!(
                    "{} is not a file; point it at a MaxMind DB file such as GeoLite2-City.mmdb, or remove the setting",
                    path.display()
                ),
            ));
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
            (
                "tokens.device_code_ttl_secs",
                k.device_code_ttl_secs,
                60,
                3600,
            ),
            (
                "tokens.device_poll_interval_secs",
                k.device_poll_interval_secs,
                1,
                60,
            ),
            (
                "ciba.default_expiry_secs",
                self.ciba.default_expiry_secs,
                30,
                3600,
            ),
            ("ciba.max_expiry_secs", self.ciba.max_expiry_secs, 30, 3600),
            ("ciba.interval_secs", self.ciba.interval_secs, 1, 60),
        ] {
            if value < min || value > max {
                return Err(bad(
                    name,
                    format!("must be between {min} and {max} seconds, not {value}"),
                ));
            }
        }
        if self.ciba.default_expiry_secs > self.ciba.max_expiry_secs {
            return Err(bad(
                "ciba.default_expiry_secs",
                "must not be longer than ciba.max_expiry_secs",
            ));
        }
        self.validate_miniapp_and_upstream()?;
        if self.max_body_bytes < 1024 || self.max_body_bytes > 16 * 1024 * 1024 {
            return Err(bad("max_body_bytes", "must be between 1024 and 16777216"));
        }
        if !(1..=3650).contains(&self.audit.retention_days) {
            return Err(bad("audit.retention_days", "must be between 1 and 3650"));
        }
        for (name, limit) in self.rate_limits.policies() {
            if !(1..=86_400).contains(&limit.window_secs) {
                return Err(bad(
                    &format!("rate_limits.{name}.window_secs"),
                    "must be between 1 and 86400 seconds",
                ));
            }
            if limit.limit == 0 {
                return Err(bad(
                    &format!("rate_limits.{name}.limit"),
                    "must be at least 1 (set rate_limits.enabled = false to turn the limits off)",
                ));
            }
        }
        if self.client_cache_secs > 300 {
            return Err(bad(
                "client_cache_secs",
                "must be between 0 (no cache) and 300 seconds",
            ));
        }
        if self.sweep_interval_secs != 0 && !(10..=86_400).contains(&self.sweep_interval_secs) {
            return Err(bad(
                "sweep_interval_secs",
                format!(
                    "give 10 to 86400 seconds (default 300), or 0 to never sweep, not {}",
                    self.sweep_interval_secs
                ),
            ));
        }
        if !(1..=25).contains(&self.body_timeout_secs) {
            return Err(bad(
                "body_timeout_secs",
                "must be between 1 and 25 (a request takes at most 30 seconds in all)",
            ));
        }
        Ok(())
    }

    /// Membership caching stays within sane bounds; group names are what a claim can carry.
    fn validate_policy(&self) -> Result<(), ConfigError> {
        let p = &self.policy;
        if !(0..=86_400).contains(&p.cache_secs) {
            return Err(bad(
                "policy.cache_secs",
                "must be between 0 and 86400 seconds",
            ));
        }
        if !(0..=30 * 86_400).contains(&p.stale_secs) {
            return Err(bad(
                "policy.stale_secs",
                "must be between 0 and 2592000 seconds (30 days)",
            ));
        }
        if !(1..=60).contains(&p.timeout_secs) {
            return Err(bad(
                "policy.timeout_secs",
                "must be between 1 and 60 seconds",
            ));
        }
        for name in self.groups.keys() {
            let ok = !name.is_empty()
                && name.len() <= 64
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.:/".contains(c));
            if !ok {
                return Err(bad(
                    &format!("groups.{name}"),
                    "a group name is 1 to 64 letters, digits or - _ . : /",
                ));
            }
        }
        Ok(())
    }

    /// Registration is open only to holders of a long enough initial access token.
    fn validate_registration(&self) -> Result<(), ConfigError> {
        let r = &self.registration;
        let token = r.initial_access_token.expose();
        if r.enabled && token.is_empty() {
            return Err(bad(
                "registration.initial_access_token",
                "registration.enabled needs an initial access token (registration.initial_access_token_file or TGOIDC_REGISTRATION__INITIAL_ACCESS_TOKEN): without it anyone could register apps",
            ));
        }
        if !token.is_empty()
            && (token.len() < MIN_INITIAL_ACCESS_TOKEN_LEN
                || !token.chars().all(|c| c.is_ascii_graphic()))
        {
            return Err(bad(
                "registration.initial_access_token",
                format!(
                    "use at least {MIN_INITIAL_ACCESS_TOKEN_LEN} printable characters without spaces, e.g. the output of `openssl rand -hex 32`"
                ),
            ));
        }
        Ok(())
    }

    /// The Bot API settings: where it is, how updates arrive, and the webhook's secret.
    fn validate_bot(&self) -> Result<(), ConfigError> {
        let t = &self.telegram;
        let api = url::Url::parse(&t.bot_api_url).map_err(|e| {
            bad(
                "telegram.bot_api_url",
                format!("not a URL ({e}); the default is https://api.telegram.org"),
            )
        })?;
        if api.query().is_some() || t.bot_api_url.ends_with('/') {
            return Err(bad(
                "telegram.bot_api_url",
                "give the server only, without a trailing `/` or query, e.g. https://api.telegram.org",
            ));
        }
        // The URL of every call carries the bot token.
        if api.scheme() != "https" && !is_loopback_url(&api) {
            return Err(bad(
                "telegram.bot_api_url",
                "the Bot API must be reached over https (plain http only on a loopback address)",
            ));
        }
        let secret = t.webhook_secret.expose();
        if !secret.is_empty()
            && (secret.len() > 256
                || !secret
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'))
        {
            return Err(bad(
                "telegram.webhook_secret",
                "Telegram accepts 1-256 characters of A-Z, a-z, 0-9, `_` and `-`",
            ));
        }
        if t.updates == UpdateMode::Webhook && secret.is_empty() {
            return Err(bad(
                "telegram.webhook_secret",
                "updates = \"webhook\" needs a secret (telegram.webhook_secret_file or TGOIDC_TELEGRAM__WEBHOOK_SECRET): without it anyone could post updates",
            ));
        }
        if t.register_webhook && t.update_mode() != UpdateMode::Webhook {
            return Err(bad(
                "telegram.register_webhook",
                "registering the webhook only makes sense with updates = \"webhook\"",
            ));
        }
        if t.deep_link_ttl_secs < 30 || t.deep_link_ttl_secs > 3600 {
            return Err(bad(
                "telegram.deep_link_ttl_secs",
                "must be between 30 and 3600 seconds",
            ));
        }
        if t.polling_timeout_secs < 1 || t.polling_timeout_secs > 60 {
            return Err(bad(
                "telegram.polling_timeout_secs",
                "must be between 1 and 60 seconds",
            ));
        }
        Ok(())
    }

    /// The Mini App keys and Telegram's OpenID Connect provider.
    fn validate_miniapp_and_upstream(&self) -> Result<(), ConfigError> {
        for (name, value) in [
            (
                "telegram.init_data_public_key",
                &self.telegram.init_data_public_key,
            ),
            (
                "telegram.init_data_test_public_key",
                &self.telegram.init_data_test_public_key,
            ),
        ] {
            if hex::decode(value).map(|k| k.len()) != Ok(32) {
                return Err(bad(
                    name,
                    "an Ed25519 public key is 64 hex digits (32 bytes)",
                ));
            }
        }
        let Some(u) = &self.telegram_oidc else {
            return Ok(());
        };
        let issuer = url::Url::parse(&u.issuer).map_err(|e| {
            bad(
                "telegram_oidc.issuer",
                format!("not a URL ({e}); Telegram's is https://oauth.telegram.org"),
            )
        })?;
        if issuer.scheme() != "https" && !is_loopback_url(&issuer) {
            return Err(bad(
                "telegram_oidc.issuer",
                "the issuer must use https (plain http only on a loopback address)",
            ));
        }
        if u.client_id.is_empty() || !u.client_id.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad(
                "telegram_oidc.client_id",
                "set it to the bot's numeric id (the digits before `:` in the bot token)",
            ));
        }
        if u.client_secret.is_empty() {
            return Err(bad(
                "telegram_oidc.client_secret",
                "the client secret is missing: set telegram_oidc.client_secret_file to a file holding the secret BotFather shows under Bot Settings > Web Login",
            ));
        }
        if !u.scopes.iter().any(|s| s == "openid") {
            return Err(bad("telegram_oidc.scopes", "`openid` is required"));
        }
        if let Some(s) = u
            .scopes
            .iter()
            .find(|s| !UPSTREAM_SCOPES.contains(&s.as_str()))
        {
            return Err(bad(
                "telegram_oidc.scopes",
                format!(
                    "Telegram does not know the scope `{s}`; use {}",
                    UPSTREAM_SCOPES.join(", ")
                ),
            ));
        }
        if u.jwks_refetch_interval_secs < 1 || u.jwks_refetch_interval_secs > 86_400 {
            return Err(bad(
                "telegram_oidc.jwks_refetch_interval_secs",
                "must be between 1 and 86400 seconds",
            ));
        }
        if u.http_timeout_secs < 1 || u.http_timeout_secs > 120 {
            return Err(bad(
                "telegram_oidc.http_timeout_secs",
                "must be between 1 and 120 seconds",
            ));
        }
        Ok(())
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

impl Config {
    fn validate_traces(&self) -> Result<(), ConfigError> {
        let traces = &self.traces;
        if let Some(endpoint) = &traces.otlp_endpoint {
            let url = url::Url::parse(endpoint).map_err(|e| {
                bad(
                    "traces.otlp_endpoint",
                    format!(
                        "`{endpoint}` is not a URL ({e}); give the collector's traces URL, e.g. http://127.0.0.1:4318/v1/traces"
                    ),
                )
            })?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(bad(
                    "traces.otlp_endpoint",
                    "give an http:// or https:// URL of an OTLP/HTTP collector (gRPC is not spoken)",
                ));
            }
            if !url.username().is_empty() || url.password().is_some() {
                return Err(bad(
                    "traces.otlp_endpoint",
                    "put the collector's credentials in `traces.otlp_headers`, not in the URL",
                ));
            }
        }
        for (name, value) in &traces.otlp_headers {
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(bad(
                    "traces.otlp_headers",
                    format!("`{name}` is not a valid header name"),
                ));
            }
            if http::HeaderValue::from_str(value.expose()).is_err() {
                return Err(bad(
                    "traces.otlp_headers",
                    format!(
                        "the value of `{name}` is not a valid header value (printable ASCII only)"
                    ),
                ));
            }
        }
        if !(0.0..=1.0).contains(&traces.sample_ratio) {
            return Err(bad("traces.sample_ratio", "give a share from 0.0 to 1.0"));
        }
        if traces.service_name.trim().is_empty() || traces.service_name.len() > 128 {
            return Err(bad(
                "traces.service_name",
                "give a name of 1 to 128 characters",
            ));
        }
        if !(1..=120).contains(&traces.export_timeout_secs) {
            return Err(bad(
                "traces.export_timeout_secs",
                "give 1 to 120 seconds (default 10)",
            ));
        }
        Ok(())
    }
}
