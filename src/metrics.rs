//! Prometheus metrics: the series this server exposes at `/metrics` on its own listener
//! (`metrics.listen`), named `telegram_oidc_*`.
//!
//! Counting costs an atomic add (a short lock for a histogram), and a lookup of the label set
//! in its family. Every label value is bounded: routes are the router's patterns, never raw
//! paths; methods, grants, errors and results come from fixed lists (`&'static str`); no label
//! holds a user, a client or a token.
//!
//! Most series belong to one [`Metrics`] (one server; held by the provider). A few are counted
//! where no server is at hand (the Bot API client, the database drivers, the rate limits) and
//! are process-wide: every [`Metrics`] in the process shows the same values (one server per
//! process in production).

use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// The prefix of every series.
pub const PREFIX: &str = "telegram_oidc";

/// `Content-Type` of the Prometheus text format (0.0.4).
pub const PROMETHEUS_TEXT: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
/// `Content-Type` of the OpenMetrics text format (1.0.0).
pub const OPENMETRICS_TEXT: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Request latency buckets, seconds: a token request on SQLite takes about a millisecond.
const HTTP_BUCKETS: [f64; 13] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Bot API latency buckets, seconds: `getUpdates` waits up to its long-poll timeout.
const BOT_API_BUCKETS: [f64; 11] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 40.0, 60.0];

/// Every series family this server exposes, as its samples are named in the Prometheus text
/// format (a histogram by its base name). A family without any labelled series yet (no Bot API
/// call, no database error, no rate-limit refusal) is left out of a scrape until its first one.
pub const SERIES: [&str; 19] = [
    "telegram_oidc_http_requests_total",
    "telegram_oidc_http_request_duration_seconds",
    "telegram_oidc_logins_total",
    "telegram_oidc_tokens_issued_total",
    "telegram_oidc_token_refusals_total",
    "telegram_oidc_refresh_reuse_detected_total",
    "telegram_oidc_policy_refusals_total",
    "telegram_oidc_rate_limited_total",
    "telegram_oidc_bot_api_calls_total",
    "telegram_oidc_bot_api_call_duration_seconds",
    "telegram_oidc_db_errors_total",
    "telegram_oidc_db_pool_connections",
    "telegram_oidc_db_write_queue",
    "telegram_oidc_signing_keys",
    "telegram_oidc_signing_key_age_seconds",
    "telegram_oidc_audit_entries_dropped_total",
    "telegram_oidc_bot_updates_unusable_total",
    "telegram_oidc_bot_messages_skipped_total",
    "telegram_oidc_build_info",
];

/// Login methods as the audit log names them (`amr` values).
pub const LOGIN_METHODS: [&str; 4] = [
    "telegram_widget",
    "telegram_miniapp",
    "telegram_oidc",
    "telegram_bot",
];
/// Grant types, shortened: the URN grants by their last word.
pub const GRANTS: [&str; 5] = [
    "authorization_code",
    "refresh_token",
    "client_credentials",
    "device_code",
    "token_exchange",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoginLabels {
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    grant: &'static str,
    format: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    grant: &'static str,
    error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    policy: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BotCallLabels {
    method: &'static str,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BotMethodLabels {
    method: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyStateLabels {
    alg: &'static str,
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KeyLabels {
    kid: String,
    alg: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VersionLabels {
    version: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// What is counted outside any one server: by the Bot API client, the database drivers and
/// the rate limits.
struct ProcessWide {
    bot_api_calls: Family<BotCallLabels, Counter>,
    bot_api_duration: HistogramFamily<BotMethodLabels>,
    db_errors: Family<KindLabels, Counter>,
    rate_limited: Family<PolicyLabels, Counter>,
}

static PROCESS: LazyLock<ProcessWide> = LazyLock::new(|| ProcessWide {
    bot_api_calls: Family::default(),
    bot_api_duration: Family::new_with_constructor(|| Histogram::new(BOT_API_BUCKETS)),
    db_errors: Family::default(),
    rate_limited: Family::default(),
});

/// Shows the rate limits named in `policies` at zero until their first refusal (a series
/// appears with its first value otherwise).
pub fn rate_limit_policies(policies: &[&'static str]) {
    for &policy in policies {
        let _ = PROCESS.rate_limited.get_or_create(&PolicyLabels { policy });
    }
}

/// A request refused by the rate limit named `policy` (process-wide).
pub fn rate_limited(policy: &'static str) {
    PROCESS
        .rate_limited
        .get_or_create(&PolicyLabels { policy })
        .inc();
}

/// One Bot API call of `method` that ended in `result` (`ok`, `refused`, `rate_limited`,
/// `unreachable`, `malformed`) after `seconds` (process-wide).
pub fn bot_api_call(method: &'static str, result: &'static str, seconds: f64) {
    PROCESS
        .bot_api_calls
        .get_or_create(&BotCallLabels { method, result })
        .inc();
    PROCESS
        .bot_api_duration
        .get_or_create(&BotMethodLabels { method })
        .observe(seconds);
}

/// A database error of `kind` (`unavailable` or `internal`) (process-wide).
pub fn db_error(kind: &'static str) {
    PROCESS.db_errors.get_or_create(&KindLabels { kind }).inc();
}

/// How a store's connections are used right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open and waiting for work (PostgreSQL), or read connections free (SQLite).
    pub idle: u64,
    /// Connections running a statement (PostgreSQL), or read connections in use (SQLite).
    pub used: u64,
    /// Writes waiting for (or in) the writer's transaction: SQLite's writer thread, PostgreSQL's
    /// group writer of grants, codes and tokens.
    pub write_queue: Option<u64>,
}

/// One signing key, as the key store describes it at scrape time.
#[derive(Debug, Clone)]
pub struct KeySample {
    pub kid: String,
    pub alg: &'static str,
    /// `active`, `pending` (published, not signing yet) or `retired`.
    pub state: &'static str,
    pub age_seconds: i64,
}

/// What is read at scrape time rather than counted.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub pool: PoolStats,
    pub keys: Vec<KeySample>,
    /// Audit entries dropped because the writer could not keep up.
    pub audit_dropped: u64,
    /// Bot updates acknowledged without being used.
    pub bot_updates_unusable: u64,
    /// Bot messages not sent because the user never started the bot or blocked it.
    pub bot_messages_skipped: u64,
}

/// One server's metrics and the registry that shows them.
pub struct Metrics {
    registry: Registry,
    http_requests: Family<HttpLabels, Counter>,
    http_duration: HistogramFamily<RouteLabels>,
    logins: Family<LoginLabels, Counter>,
    tokens_issued: Family<TokenLabels, Counter>,
    token_refusals: Family<RefusalLabels, Counter>,
    refresh_reuse: Counter,
    policy_refusals: Family<ReasonLabels, Counter>,
    db_pool: Family<StateLabels, Gauge>,
    db_write_queue: Gauge,
    signing_keys: Family<KeyStateLabels, Gauge>,
    signing_key_age: Family<KeyLabels, Gauge>,
    audit_dropped: Counter,
    bot_updates_unusable: Counter,
    bot_messages_skipped: Counter,
    /// `http_requests_total` of the discovery document and the JWKS, which are served without
    /// the middleware that counts every other request: one atomic add each.
    documents: [Counter; 2],
    /// One scrape at a time sets the scrape-time gauges and encodes them.
    scrape: Mutex<()>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The documents served from memory, before every middleware.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// `/.well-known/openid-configuration`
    Discovery = 0,
    /// `/jwks.json`
    Jwks = 1,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Metrics of a server whose routes are at the root.
    pub fn new() -> Metrics {
        Metrics::under("")
    }

    /// Metrics of a server whose routes are under `base_path` (`""` at the root, `/oidc`).
    pub fn under(base_path: &str) -> Metrics {
        let mut registry = Registry::with_prefix(PREFIX);
        let http_requests = Family::<HttpLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern (or `unmatched`), method and status",
            http_requests.clone(),
        );
        let http_duration: HistogramFamily<RouteLabels> =
            Family::new_with_constructor(|| Histogram::new(HTTP_BUCKETS));
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request (until the response head), by route and method",
            http_duration.clone(),
        );
        let logins = Family::<LoginLabels, Counter>::default();
        registry.register(
            "logins",
            "Telegram logins by method and result (ok; refused at the gate; invalid: the proof did not check out)",
            logins.clone(),
        );
        let tokens_issued = Family::<TokenLabels, Counter>::default();
        registry.register(
            "tokens_issued",
            "Token responses issued at /token, by grant and access token format",
            tokens_issued.clone(),
        );
        let token_refusals = Family::<RefusalLabels, Counter>::default();
        registry.register(
            "token_refusals",
            "Requests refused at /token, by grant and OAuth error code",
            token_refusals.clone(),
        );
        let refresh_reuse = Counter::default();
        registry.register(
            "refresh_reuse_detected",
            "Used refresh tokens presented again; each revoked its token family",
            refresh_reuse.clone(),
        );
        let policy_refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "policy_refusals",
            "Logins the access policy refused (refused) or could not decide (unavailable)",
            policy_refusals.clone(),
        );
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit, by policy (process-wide)",
            PROCESS.rate_limited.clone(),
        );
        registry.register(
            "bot_api_calls",
            "Telegram Bot API calls by method and result (ok, refused, rate_limited, unreachable, malformed) (process-wide)",
            PROCESS.bot_api_calls.clone(),
        );
        registry.register(
            "bot_api_call_duration_seconds",
            "Time a Bot API call took, by method (getUpdates includes its long poll) (process-wide)",
            PROCESS.bot_api_duration.clone(),
        );
        registry.register(
            "db_errors",
            "Database errors by kind (unavailable, internal); conflicts are not errors (process-wide)",
            PROCESS.db_errors.clone(),
        );
        let db_pool = Family::<StateLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Database connections by state (idle, used); SQLite: its read connections",
            db_pool.clone(),
        );
        let db_write_queue = Gauge::default();
        registry.register(
            "db_write_queue",
            "Writes waiting for the writer (SQLite: all writes; PostgreSQL: grants, codes, tokens)",
            db_write_queue.clone(),
        );
        let signing_keys = Family::<KeyStateLabels, Gauge>::default();
        registry.register(
            "signing_keys",
            "Signing keys by algorithm and state (active, pending, retired)",
            signing_keys.clone(),
        );
        let signing_key_age = Family::<KeyLabels, Gauge>::default();
        registry.register(
            "signing_key_age_seconds",
            "Age of each signing key, by kid and algorithm",
            signing_key_age.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_entries_dropped",
            "Audit entries dropped because the audit writer could not keep up",
            audit_dropped.clone(),
        );
        let bot_updates_unusable = Counter::default();
        registry.register(
            "bot_updates_unusable",
            "Bot updates acknowledged without being used (unreadable)",
            bot_updates_unusable.clone(),
        );
        let bot_messages_skipped = Counter::default();
        registry.register(
            "bot_messages_skipped",
            "Bot messages not sent because the user never started the bot or blocked it",
            bot_messages_skipped.clone(),
        );
        let build_info = Family::<VersionLabels, Gauge>::default();
        build_info
            .get_or_create(&VersionLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        registry.register(
            "build_info",
            "Always 1; the version label says which build this is",
            build_info,
        );

        // The series a dashboard sums over start at zero rather than appearing with the first
        // event.
        for method in LOGIN_METHODS {
            for result in ["ok", "refused", "invalid"] {
                let _ = logins.get_or_create(&LoginLabels { method, result });
            }
        }
        for grant in GRANTS {
            for format in ["jwt", "opaque"] {
                let _ = tokens_issued.get_or_create(&TokenLabels { grant, format });
            }
        }
        for reason in ["refused", "unavailable"] {
            let _ = policy_refusals.get_or_create(&ReasonLabels { reason });
        }
        let documents = ["/.well-known/openid-configuration", "/jwks.json"].map(|path| {
            http_requests.get_or_create_owned(&HttpLabels {
                route: format!("{base_path}{path}"),
                method: "GET",
                status: 200,
            })
        });
        Metrics {
            documents,
            registry,
            http_requests,
            http_duration,
            logins,
            tokens_issued,
            token_refusals,
            refresh_reuse,
            policy_refusals,
            db_pool,
            db_write_queue,
            signing_keys,
            signing_key_age,
            audit_dropped,
            bot_updates_unusable,
            bot_messages_skipped,
            scrape: Mutex::new(()),
        }
    }

    /// One HTTP request answered: `route` is the router's pattern (or `unmatched`), `method`
    /// one of [`http_method`]'s names.
    pub fn http_request(&self, route: &str, method: &'static str, status: u16, seconds: f64) {
        self.http_requests
            .get_or_create(&HttpLabels {
                route: route.to_owned(),
                method,
                status,
            })
            .inc();
        self.http_duration
            .get_or_create(&RouteLabels {
                route: route.to_owned(),
                method,
            })
            .observe(seconds);
    }

    /// The discovery document or the JWKS served (always 200, from memory; no latency).
    pub fn document_served(&self, document: Document) {
        self.documents[document as usize].inc();
    }

    pub fn login(&self, method: &'static str, result: &'static str) {
        self.logins
            .get_or_create(&LoginLabels { method, result })
            .inc();
    }

    pub fn token_issued(&self, grant: &'static str, format: &'static str) {
        self.tokens_issued
            .get_or_create(&TokenLabels { grant, format })
            .inc();
    }

    pub fn token_refused(&self, grant: &'static str, error: &'static str) {
        self.token_refusals
            .get_or_create(&RefusalLabels { grant, error })
            .inc();
    }

    pub fn refresh_reuse_detected(&self) {
        self.refresh_reuse.inc();
    }

    /// `reason`: `refused` (a rule said no) or `unavailable` (the policy could not decide).
    pub fn policy_refusal(&self, reason: &'static str) {
        self.policy_refusals
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    /// The registry as Prometheus text (0.0.4), or OpenMetrics text with `openmetrics`, after
    /// setting the scrape-time series from `snapshot`.
    pub fn render(&self, snapshot: &Snapshot, openmetrics: bool) -> String {
        let _one_at_a_time = self.scrape.lock().unwrap_or_else(|e| e.into_inner());
        self.db_pool
            .get_or_create(&StateLabels { state: "idle" })
            .set(gauge_value(snapshot.pool.idle));
        self.db_pool
            .get_or_create(&StateLabels { state: "used" })
            .set(gauge_value(snapshot.pool.used));
        self.db_write_queue
            .set(gauge_value(snapshot.pool.write_queue.unwrap_or(0)));
        self.signing_keys.clear();
        self.signing_key_age.clear();
        for key in &snapshot.keys {
            self.signing_keys
                .get_or_create(&KeyStateLabels {
                    alg: key.alg,
                    state: key.state,
                })
                .inc();
            self.signing_key_age
                .get_or_create(&KeyLabels {
                    kid: key.kid.clone(),
                    alg: key.alg,
                })
                .set(key.age_seconds.max(0));
        }
        set_counter(&self.audit_dropped, snapshot.audit_dropped);
        set_counter(&self.bot_updates_unusable, snapshot.bot_updates_unusable);
        set_counter(&self.bot_messages_skipped, snapshot.bot_messages_skipped);
        let mut text = String::with_capacity(16 * 1024);
        let encoded = if openmetrics {
            prometheus_client::encoding::text::encode(&mut text, &self.registry)
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
        };
        if let Err(e) = encoded {
            // Writing to a String cannot fail; say so in the text if it ever does.
            let _ = writeln!(text, "# encoding failed: {e}");
        }
        text
    }
}

fn gauge_value(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A counter kept elsewhere (an atomic of the app) shown as it stands.
fn set_counter(counter: &Counter, value: u64) {
    counter
        .inner()
        .store(value, std::sync::atomic::Ordering::Relaxed);
}

/// An HTTP method as a label: the standard ones by name, anything else `other` (a client may
/// send any token as a method).
pub fn http_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    }
}

/// A `grant_type` as a label: one of [`GRANTS`] (URN grants by their last word), `none` when
/// absent, `other` for anything else.
pub fn grant_label(grant_type: &str) -> &'static str {
    match grant_type {
        "" => "none",
        "authorization_code" => "authorization_code",
        "refresh_token" => "refresh_token",
        "client_credentials" => "client_credentials",
        "urn:ietf:params:oauth:grant-type:device_code" => "device_code",
        "urn:ietf:params:oauth:grant-type:token-exchange" => "token_exchange",
        _ => "other",
    }
}

/// A login method as a label: one of [`LOGIN_METHODS`], or `other`.
pub fn login_method_label(method: &str) -> &'static str {
    LOGIN_METHODS
        .iter()
        .find(|m| **m == method)
        .copied()
        .unwrap_or("other")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(http_method("GET"), "GET");
        assert_eq!(http_method("BREW"), "other");
        assert_eq!(grant_label("authorization_code"), "authorization_code");
        assert_eq!(
            grant_label("urn:ietf:params:oauth:grant-type:device_code"),
            "device_code"
        );
        assert_eq!(grant_label("x".repeat(100).as_str()), "other");
        assert_eq!(grant_label(""), "none");
        assert_eq!(login_method_label("telegram_widget"), "telegram_widget");
        assert_eq!(login_method_label("password"), "other");
    }

    #[test]
    fn counts_and_scrape_time_values_are_rendered() {
        let metrics = Metrics::new();
        metrics.http_request("/token", "POST", 400, 0.002);
        metrics.login("telegram_widget", "ok");
        metrics.refresh_reuse_detected();
        let snapshot = Snapshot {
            pool: PoolStats {
                idle: 3,
                used: 1,
                write_queue: Some(2),
            },
            keys: vec![KeySample {
                kid: "k1".into(),
                alg: "RS256",
                state: "active",
                age_seconds: 60,
            }],
            audit_dropped: 5,
            ..Snapshot::default()
        };
        let text = metrics.render(&snapshot, false);
        for line in [
            "telegram_oidc_http_requests_total{route=\"/token\",method=\"POST\",status=\"400\"} 1",
            "telegram_oidc_http_request_duration_seconds_bucket{route=\"/token\",method=\"POST\",le=\"0.0025\"} 1",
            "telegram_oidc_logins_total{method=\"telegram_widget\",result=\"ok\"} 1",
            "telegram_oidc_logins_total{method=\"telegram_bot\",result=\"refused\"} 0",
            "telegram_oidc_refresh_reuse_detected_total 1",
            "telegram_oidc_db_pool_connections{state=\"idle\"} 3",
            "telegram_oidc_db_write_queue 2",
            "telegram_oidc_signing_keys{alg=\"RS256\",state=\"active\"} 1",
            "telegram_oidc_signing_key_age_seconds{kid=\"k1\",alg=\"RS256\"} 60",
            "telegram_oidc_audit_entries_dropped_total 5",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} missing in\n{text}");
        }
        // A key gone from the store is gone from the next scrape.
        let text = metrics.render(&Snapshot::default(), true);
        assert!(!text.contains("kid=\"k1\""));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn documents_are_counted_under_the_base_path() {
        let metrics = Metrics::under("/oidc");
        metrics.document_served(Document::Jwks);
        metrics.document_served(Document::Jwks);
        let text = metrics.render(&Snapshot::default(), false);
        assert!(text.contains(
            "telegram_oidc_http_requests_total{route=\"/oidc/jwks.json\",method=\"GET\",status=\"200\"} 2\n"
        ));
        assert!(text.contains(
            "telegram_oidc_http_requests_total{route=\"/oidc/.well-known/openid-configuration\",method=\"GET\",status=\"200\"} 0\n"
        ));
    }

    /// [`SERIES`] names exactly the families a scrape shows once each has a value.
    #[test]
    fn the_series_list_is_what_a_scrape_shows() {
        let metrics = Metrics::new();
        metrics.http_request("/token", "POST", 200, 0.001);
        metrics.token_refused("refresh_token", "invalid_grant");
        rate_limit_policies(&["test"]);
        bot_api_call("sendMessage", "ok", 0.1);
        db_error("internal");
        let snapshot = Snapshot {
            keys: vec![KeySample {
                kid: "k".into(),
                alg: "ES256",
                state: "active",
                age_seconds: 1,
            }],
            ..Snapshot::default()
        };
        let text = metrics.render(&snapshot, false);
        let mut shown: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        shown.sort_unstable();
        let mut listed = SERIES.to_vec();
        listed.sort_unstable();
        assert_eq!(shown, listed);
    }
}
