//! Request rate limits: each policy's limit and window (README, "Rate limits").

use serde::{Deserialize, Serialize};

/// One rate limit: at most `limit` requests in each fixed window of `window_secs` seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limit {
    pub limit: u32,
    pub window_secs: i64,
}

impl Limit {
    pub const fn per(limit: u32, window_secs: i64) -> Limit {
        Limit { limit, window_secs }
    }
}

/// Request rate limits (README, "Rate limits"). Each policy counts requests in fixed windows
/// under one key: the client's address (an IPv6 client's /64) or the client id it names. On
/// PostgreSQL the counters are shared by every node; on SQLite they are per process.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// Off: nothing is counted and no rate limit header is sent.
    pub enabled: bool,
    /// The login callbacks (widget, Telegram's OIDC, the bot login's completion), per address.
    pub login_ip: Limit,
    /// `POST /token`, per address.
    pub token_ip: Limit,
    /// `POST /token`, per client id the request names (counted before authentication).
    pub token_client: Limit,
    /// `POST /device_authorization`, per address.
    pub device_authorization_ip: Limit,
    /// `POST /device_authorization`, per client id the request names.
    pub device_authorization_client: Limit,
    /// `POST /device` (entering a user code), per address.
    pub device_ip: Limit,
    /// Wrong user codes at `/device`, per signed-in user (a browser without a session: per
    /// address).
    pub device_miss: Limit,
    /// `POST /register` and the RFC 7592 management endpoints, per address.
    pub register_ip: Limit,
    /// The RFC 7592 management endpoints (`/register/{client_id}`), per client id.
    pub register_client: Limit,
    /// Webhook calls without the right secret token, per address (Telegram's own deliveries
    /// are never counted).
    pub webhook_ip: Limit,
    /// `POST /bc-authorize` (CIBA), per address.
    pub bc_authorize_ip: Limit,
    /// CIBA requests naming a user who cannot be asked (`unknown_user_id`), per client and
    /// address: a client cannot list who uses the bot.
    pub bc_authorize_miss: Limit,
    /// The admin API, per address, once that API is served.
    pub admin_ip: Limit,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: true,
            login_ip: Limit::per(60, 60),
            token_ip: Limit::per(600, 60),
            token_client: Limit::per(1200, 60),
            device_authorization_ip: Limit::per(60, 60),
            device_authorization_client: Limit::per(600, 60),
            device_ip: Limit::per(30, 60),
            device_miss: Limit::per(10, 600),
            register_ip: Limit::per(20, 60),
            register_client: Limit::per(60, 60),
            webhook_ip: Limit::per(30, 60),
            bc_authorize_ip: Limit::per(60, 60),
            bc_authorize_miss: Limit::per(30, 60),
            admin_ip: Limit::per(300, 60),
        }
    }
}

impl RateLimitConfig {
    /// Every policy by its setting's name.
    pub fn policies(&self) -> [(&'static str, Limit); 13] {
        [
            ("login_ip", self.login_ip),
            ("token_ip", self.token_ip),
            ("token_client", self.token_client),
            ("device_authorization_ip", self.device_authorization_ip),
            (
                "device_authorization_client",
                self.device_authorization_client,
            ),
            ("device_ip", self.device_ip),
            ("device_miss", self.device_miss),
            ("register_ip", self.register_ip),
            ("register_client", self.register_client),
            ("webhook_ip", self.webhook_ip),
            ("bc_authorize_ip", self.bc_authorize_ip),
            ("bc_authorize_miss", self.bc_authorize_miss),
            ("admin_ip", self.admin_ip),
        ]
    }
}
