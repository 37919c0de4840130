//! Settings of the endpoints served beside the provider's own: backchannel authentication
//! (CIBA), the metrics listener, OTLP traces, the admin API.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Addresses the admin API and the admin desk answer at all (CIDRs, e.g.
    /// `["10.0.0.0/8"]`), on top of each key's own allow-list; empty: any address.
    pub allow_ips: Vec<ipnet::IpNet>,
    /// Telegram ids of the admins who may sign in to the admin desk (`/admin`).
    pub telegram_ids: Vec<i64>,
    /// A chat whose creator and administrators are admins of the desk too (the bot must be in
    /// it; asked with `getChatMember`, as access policies are).
    pub chat_id: Option<i64>,
    /// A desk session ends after this long without a request.
    pub idle_timeout_secs: i64,
    /// ... and this long after its sign-in, whatever happened.
    pub session_max_secs: i64,
    /// Every sign-in to the desk is also confirmed in the bot chat (step-up, as an app's
    /// `--require-bot-confirmation`).
    pub require_bot_confirmation: bool,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            allow_ips: Vec::new(),
            telegram_ids: Vec::new(),
            chat_id: None,
            idle_timeout_secs: 900,
            session_max_secs: 8 * 3600,
            require_bot_confirmation: false,
        }
    }
}

impl AdminConfig {
    /// Whether anyone may sign in to the admin desk.
    pub fn desk_enabled(&self) -> bool {
        !self.telegram_ids.is_empty() || self.chat_id.is_some()
    }
}

/// Prometheus metrics (`GET /metrics`) on their own listener.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// Where to serve `/metrics`, e.g. `127.0.0.1:9464`; unset: no metrics listener. It has
    /// no authentication: bind it to a loopback or private address only.
    pub listen: Option<SocketAddr>,
}

/// OpenTelemetry traces, exported over OTLP/HTTP (protobuf): one server span per request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TracesConfig {
    /// The collector's traces URL, used as given (e.g. `http://127.0.0.1:4318/v1/traces`);
    /// unset: no traces. Only the admin chooses it, so it may be an internal address.
    pub otlp_endpoint: Option<String>,
    /// Headers sent with every export, e.g. a tracing vendor's API key. Their values are
    /// secrets: never logged, never shown by `check-config`.
    pub otlp_headers: BTreeMap<String, super::Secret>,
    /// `service.name` of the exported resource.
    pub service_name: String,
    /// Share of new traces recorded, 0.0 to 1.0. A request that carries a W3C `traceparent`
    /// (and `accept_traceparent` is on) follows its caller's sampling decision instead.
    pub sample_ratio: f64,
    /// Continue the caller's trace from an incoming `traceparent` header. Turn it off when the
    /// server faces the internet with no proxy in front that starts traces itself.
    pub accept_traceparent: bool,
    /// How long one export may take before it is given up.
    pub export_timeout_secs: u64,
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            otlp_endpoint: None,
            otlp_headers: BTreeMap::new(),
            service_name: "telegram-oidc".into(),
            sample_ratio: 1.0,
            accept_traceparent: true,
            export_timeout_secs: 10,
        }
    }
}

impl TracesConfig {
    pub fn enabled(&self) -> bool {
        self.otlp_endpoint.is_some()
    }
}

/// Backchannel authentication requests (CIBA Core 1.0).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CibaConfig {
    /// How long a request waits for the user when the app names no `requested_expiry`.
    pub default_expiry_secs: i64,
    /// The longest `requested_expiry` granted; a longer one is cut to this.
    pub max_expiry_secs: i64,
    /// The polling interval the app is told to keep (`interval`).
    pub interval_secs: i64,
}

impl Default for CibaConfig {
    fn default() -> Self {
        CibaConfig {
            default_expiry_secs: 300,
            max_expiry_secs: 600,
            interval_secs: 5,
        }
    }
}
