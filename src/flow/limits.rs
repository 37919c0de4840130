//! Rate limits: the rule and the counting. A policy allows `limit` requests in each fixed
//! window of `window_secs` seconds (aligned to the Unix epoch) for one key: a client's address
//! (an IPv6 client's /64) or a client id. On PostgreSQL the counters are rows every node
//! shares; on SQLite they live in this process's memory. If the database cannot count, the
//! request is counted in memory instead (fail open): a limiter must never take logins down.
//!
//! The HTTP side (which route counts against which policy, the headers, the 429) is
//! `web::rate_limit`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::config::{Limit, RateLimitConfig};
use crate::state::App;
use crate::store::RateWindow;

/// What a request is counted against. Names appear in the `RateLimit-Policy` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    LoginIp,
    TokenIp,
    TokenClient,
    DeviceAuthorizationIp,
    DeviceAuthorizationClient,
    DeviceIp,
    DeviceMiss,
    RegisterIp,
    RegisterClient,
    WebhookIp,
    BcAuthorizeIp,
    BcAuthorizeMiss,
    AdminIp,
}

impl Policy {
    pub const ALL: [Policy; 13] = [
        Policy::LoginIp,
        Policy::TokenIp,
        Policy::TokenClient,
        Policy::DeviceAuthorizationIp,
        Policy::DeviceAuthorizationClient,
        Policy::DeviceIp,
        Policy::DeviceMiss,
        Policy::RegisterIp,
        Policy::RegisterClient,
        Policy::WebhookIp,
        Policy::BcAuthorizeIp,
        Policy::BcAuthorizeMiss,
        Policy::AdminIp,
    ];

    /// The name clients see in the headers.
    pub fn name(self) -> &'static str {
        match self {
            Policy::LoginIp => "login-ip",
            Policy::TokenIp => "token-ip",
            Policy::TokenClient => "token-client",
            Policy::DeviceAuthorizationIp => "device-authorization-ip",
            Policy::DeviceAuthorizationClient => "device-authorization-client",
            Policy::DeviceIp => "device-ip",
            Policy::DeviceMiss => "device-miss",
            Policy::RegisterIp => "register-ip",
            Policy::RegisterClient => "register-client",
            Policy::WebhookIp => "webhook-ip",
            Policy::BcAuthorizeIp => "bc-authorize-ip",
            Policy::BcAuthorizeMiss => "bc-authorize-miss",
            Policy::AdminIp => "admin-ip",
        }
    }

    pub fn limit(self, c: &RateLimitConfig) -> Limit {
        match self {
            Policy::LoginIp => c.login_ip,
            Policy::TokenIp => c.token_ip,
            Policy::TokenClient => c.token_client,
            Policy::DeviceAuthorizationIp => c.device_authorization_ip,
            Policy::DeviceAuthorizationClient => c.device_authorization_client,
            Policy::DeviceIp => c.device_ip,
            Policy::DeviceMiss => c.device_miss,
            Policy::RegisterIp => c.register_ip,
            Policy::RegisterClient => c.register_client,
            Policy::WebhookIp => c.webhook_ip,
            Policy::BcAuthorizeIp => c.bc_authorize_ip,
            Policy::BcAuthorizeMiss => c.bc_authorize_miss,
            Policy::AdminIp => c.admin_ip,
        }
    }
}

/// Where one key of one policy stands in its current window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub policy: Policy,
    pub limit: u32,
    pub window_secs: i64,
    /// Requests counted in this window, this one included when it was counted.
    pub used: u32,
    /// Seconds until the window ends (at least 1).
    pub reset_secs: i64,
    pub allowed: bool,
}

impl Usage {
    pub fn remaining(&self) -> u32 {
        self.limit.saturating_sub(self.used)
    }

    /// The first refused request of its window (the one worth a log line and an audit entry).
    pub fn first_refusal(&self) -> bool {
        !self.allowed && self.used == self.limit.saturating_add(1)
    }
}

/// The fixed window `now` falls in: (start, end), end exclusive.
pub fn window_of(now: i64, window_secs: i64) -> (i64, i64) {
    let window_secs = window_secs.max(1);
    let start = now - now.rem_euclid(window_secs);
    (start, start + window_secs)
}

fn usage(policy: Policy, limit: Limit, now: i64, used: u32, allowed: bool) -> Usage {
    let (_, end) = window_of(now, limit.window_secs);
    Usage {
        policy,
        limit: limit.limit,
        window_secs: limit.window_secs,
        used,
        reset_secs: (end - now).max(1),
        allowed,
    }
}

/// The counter's name: the policy and the key, hashed (addresses are personal data).
fn key_hash(policy: Policy, key: &str) -> [u8; 32] {
    let mut data = Vec::with_capacity(policy.name().len() + 1 + key.len());
    data.extend_from_slice(policy.name().as_bytes());
    data.push(b'\n');
    data.extend_from_slice(key.as_bytes());
    let digest = crate::secrets::sha256(&data);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest[..32]);
    out
}

/// Keys counted in memory at most; past this, windows that ended are dropped, and if that is
/// not enough (a flood of distinct keys within one window) the map starts afresh.
const LOCAL_KEYS_KEPT: usize = 200_000;
/// How often a database that cannot count is reported.
const WARN_EVERY_SECS: i64 = 60;

#[derive(Debug, Clone, Copy)]
struct LocalWindow {
    start: i64,
    end: i64,
    hits: u32,
}

/// The per-process side of the limiter: the counters on SQLite, and the stand-in on
/// PostgreSQL while the database cannot count.
#[derive(Default)]
pub struct Limiter {
    local: Mutex<HashMap<[u8; 32], LocalWindow>>,
    last_warning: AtomicI64,
}

impl Limiter {
    fn add_local(&self, now: i64, windows: &[RateWindow]) -> Vec<u32> {
        let Ok(mut map) = self.local.lock() else {
            // A poisoned lock counts nothing: fail open.
            return vec![0; windows.len()];
        };
        if map.len() >= LOCAL_KEYS_KEPT {
            map.retain(|_, w| w.end > now);
            if map.len() >= LOCAL_KEYS_KEPT {
                tracing::warn!(
                    keys = map.len(),
                    "too many rate limit keys in one window: the in-memory counters start afresh"
                );
                map.clear();
            }
        }
        windows
            .iter()
            .map(|w| {
                let entry = map.entry(w.key_hash).or_insert(LocalWindow {
                    start: w.window_start,
                    end: w.expires_at,
                    hits: 0,
                });
                if entry.start != w.window_start {
                    *entry = LocalWindow {
                        start: w.window_start,
                        end: w.expires_at,
                        hits: 0,
                    };
                }
                entry.hits = entry.hits.saturating_add(1);
                entry.hits
            })
            .collect()
    }

    fn read_local(&self, window: &RateWindow) -> u32 {
        self.local
            .lock()
            .ok()
            .and_then(|map| map.get(&window.key_hash).copied())
            .filter(|w| w.start == window.window_start)
            .map_or(0, |w| w.hits)
    }

    /// Logs a database that cannot count, at most once a minute.
    fn warn_fail_open(&self, now: i64, error: &crate::store::StoreError) {
        let last = self.last_warning.load(Ordering::Relaxed);
        if now - last >= WARN_EVERY_SECS
            && self
                .last_warning
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(error = %error, "the database cannot count rate limits: counting in this process until it can");
        }
    }
}

fn windows(app: &App, now: i64, counted: &[(Policy, &str)]) -> Vec<RateWindow> {
    counted
        .iter()
        .map(|(policy, key)| {
            let (start, end) = window_of(now, policy.limit(&app.config.rate_limits).window_secs);
            RateWindow {
                key_hash: key_hash(*policy, key),
                window_start: start,
                expires_at: end,
            }
        })
        .collect()
}

/// Counts one request against each (policy, key) and says where each stands: allowed while
/// the count, this request included, is within the limit.
pub async fn hit(app: &App, now: i64, counted: &[(Policy, &str)]) -> Vec<Usage> {
    let windows = windows(app, now, counted);
    let hits = if app.store.shares_rate_counters() {
        match app.store.add_rate_hits(&windows).await {
            Ok(hits) => hits,
            Err(e) => {
                app.limits.warn_fail_open(now, &e);
                app.limits.add_local(now, &windows)
            }
        }
    } else {
        app.limits.add_local(now, &windows)
    };
    counted
        .iter()
        .zip(hits)
        .map(|((policy, _), used)| {
            let limit = policy.limit(&app.config.rate_limits);
            usage(*policy, limit, now, used, used <= limit.limit)
        })
        .collect()
}

/// Where `key` stands without counting: allowed while one more would still be within the
/// limit. For limits on failures, counted with [`hit`] only when the failure happens.
pub async fn peek(app: &App, now: i64, policy: Policy, key: &str) -> Usage {
    let window = windows(app, now, &[(policy, key)]).remove(0);
    let used = if app.store.shares_rate_counters() {
        match app.store.read_rate_hits(&window).await {
            Ok(used) => used,
            Err(e) => {
                app.limits.warn_fail_open(now, &e);
                app.limits.read_local(&window)
            }
        }
    } else {
        app.limits.read_local(&window)
    };
    let limit = policy.limit(&app.config.rate_limits);
    usage(policy, limit, now, used, used < limit.limit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_are_aligned_to_the_epoch() {
        assert_eq!(window_of(0, 60), (0, 60));
        assert_eq!(window_of(59, 60), (0, 60));
        assert_eq!(window_of(60, 60), (60, 120));
        assert_eq!(window_of(1_700_000_042, 60), (1_700_000_040, 1_700_000_100));
        assert_eq!(
            window_of(1_700_000_042, 600),
            (1_699_999_800, 1_700_000_400)
        );
        // Before the epoch (a test clock may go there) and a zero window still make sense.
        assert_eq!(window_of(-1, 60), (-60, 0));
        assert_eq!(window_of(5, 0), (5, 6));
    }

    #[test]
    fn usage_counts_down_and_resets_at_the_window_end() {
        let limit = Limit::per(3, 60);
        let u = usage(Policy::TokenIp, limit, 1_700_000_042, 1, true);
        assert_eq!((u.remaining(), u.reset_secs), (2, 58));
        let u = usage(Policy::TokenIp, limit, 1_700_000_099, 4, false);
        assert_eq!((u.remaining(), u.reset_secs), (0, 1));
        assert!(u.first_refusal());
        assert!(!usage(Policy::TokenIp, limit, 0, 5, false).first_refusal());
    }

    #[test]
    fn local_counters_start_afresh_each_window_and_keys_stay_apart() {
        let limiter = Limiter::default();
        let w = |key: &str, start: i64| RateWindow {
            key_hash: key_hash(Policy::TokenIp, key),
            window_start: start,
            expires_at: start + 60,
        };
        assert_eq!(limiter.add_local(0, &[w("a", 0), w("b", 0)]), vec![1, 1]);
        assert_eq!(limiter.add_local(1, &[w("a", 0)]), vec![2]);
        assert_eq!(limiter.read_local(&w("a", 0)), 2);
        assert_eq!(limiter.read_local(&w("a", 60)), 0);
        assert_eq!(limiter.add_local(61, &[w("a", 60)]), vec![1]);
        // The same key under another policy is another counter.
        assert_ne!(
            key_hash(Policy::TokenIp, "a"),
            key_hash(Policy::TokenClient, "a")
        );
    }
}
