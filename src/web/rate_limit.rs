//! Rate limits at the edge: which route counts against which policy (`flow::limits` counts),
//! the headers every limited response carries, and the 429.
//!
//! The middleware counts what is known from the request line and headers: the client's
//! address (`client_addr`, so behind a trusted proxy the forwarded address), and a client id
//! in the path (`/register/{client_id}`). A client id in a form body is counted by the handler
//! that reads the body (`/token`, `/device_authorization`) through the [`Limits`] extractor,
//! as are the failed device user codes; their usages join the same headers.
//!
//! Headers (draft-ietf-httpapi-ratelimit-headers-10, Structured Field lists of strings):
//! `RateLimit-Policy: "token-ip";q=600;w=60` and `RateLimit: "token-ip";r=597;t=42`, one item
//! per policy the request counted against; and the widely used `X-RateLimit-Limit`,
//! `X-RateLimit-Remaining`, `X-RateLimit-Reset` (seconds) of the tightest of them.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::flow::audit::{Event, Outcome};
use crate::flow::limits::{self, Policy, Usage};
use crate::state::{App, AppState};
use crate::web::browser_error::Problem;
use crate::web::client_addr::{client_addr, limit_key};

/// How a refusal is answered: an OAuth-style JSON error, or an error page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    Api,
    Page,
}

/// What a route counts against before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    ip: Policy,
    /// A policy keyed by the client id in the path (`/register/{client_id}`).
    path_client: Option<Policy>,
    answer: Answer,
}

const fn route(ip: Policy, answer: Answer) -> Option<Route> {
    Some(Route {
        ip,
        path_client: None,
        answer,
    })
}

/// The limited routes, by method and matched path (under the issuer's path). Adding a limited
/// endpoint is a line here.
fn classify(method: &Method, path: &str) -> Option<Route> {
    use Answer::*;
    let post = method == Method::POST;
    match path {
        "/login/telegram/{req}" => route(Policy::LoginIp, Page),
        crate::telegram::upstream_oidc::CALLBACK_PATH => route(Policy::LoginIp, Page),
        crate::web::deeplink::COMPLETE_PATH if post => route(Policy::LoginIp, Page),
        "/token" if post => route(Policy::TokenIp, Api),
        crate::oidc::device::AUTHORIZATION_PATH if post => {
            route(Policy::DeviceAuthorizationIp, Api)
        }
        crate::oidc::device::VERIFICATION_PATH if post => route(Policy::DeviceIp, Page),
        "/register" if post => route(Policy::RegisterIp, Api),
        "/register/{client_id}" => Some(Route {
            ip: Policy::RegisterIp,
            path_client: Some(Policy::RegisterClient),
            answer: Api,
        }),
        crate::flow::bot_updates::WEBHOOK_PATH if post => route(Policy::WebhookIp, Api),
        // The CIBA endpoint and the admin API, limited as soon as they are served.
        "/bc-authorize" if post => route(Policy::BcAuthorizeIp, Api),
        p if p == "/admin" || p.starts_with("/admin/") => route(Policy::AdminIp, Api),
        _ => None,
    }
}

/// The usages a request collected, for its response headers.
#[derive(Default)]
struct Scope {
    usages: Mutex<Vec<Usage>>,
}

impl Scope {
    fn record(&self, usage: Usage) {
        if let Ok(mut usages) = self.usages.lock() {
            usages.retain(|u| u.policy != usage.policy);
            usages.push(usage);
        }
    }

    fn usages(&self) -> Vec<Usage> {
        self.usages.lock().map(|u| u.clone()).unwrap_or_default()
    }
}

/// Extractor: the rate limits of this request, for handlers that count what only they know
/// (a client id in the body, a failed user code). Outside a limited route, or with the limits
/// off, it counts nothing and allows everything.
#[derive(Clone, Default)]
pub struct Limits(Option<Arc<Scope>>);

impl<S: Send + Sync> FromRequestParts<S> for Limits {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<Limits>()
            .cloned()
            .unwrap_or_default())
    }
}

impl Limits {
    /// Counts this request against `policy` for `key`; past the limit, the error to answer
    /// (429 `rate_limited`; the middleware adds `Retry-After`).
    pub async fn count(&self, app: &App, policy: Policy, key: &str) -> OAuthResult<()> {
        let Some(scope) = &self.0 else {
            return Ok(());
        };
        let usage = limits::hit(app, app.now(), &[(policy, key)])
            .await
            .remove(0);
        scope.record(usage);
        if usage.allowed {
            Ok(())
        } else {
            note_refusal(app, &usage);
            Err(refusal_error(&usage))
        }
    }

    /// Whether `key` may fail once more under `policy` (counted with [`Limits::failed`]).
    pub async fn may_fail(&self, app: &App, policy: Policy, key: &str) -> bool {
        let Some(scope) = &self.0 else {
            return true;
        };
        let usage = limits::peek(app, app.now(), policy, key).await;
        scope.record(usage);
        if !usage.allowed {
            note_refusal(app, &usage);
        }
        usage.allowed
    }

    /// Counts a failure of `key` under `policy`.
    pub async fn failed(&self, app: &App, policy: Policy, key: &str) {
        if let Some(scope) = &self.0 {
            let mut usage = limits::hit(app, app.now(), &[(policy, key)])
                .await
                .remove(0);
            // This request was let through; the refusals start with the next one.
            usage.allowed = true;
            if usage.used == usage.limit {
                // The last failure allowed: from here on this key is refused.
                note_refusal(
                    app,
                    &Usage {
                        used: usage.used.saturating_add(1),
                        allowed: false,
                        ..usage
                    },
                );
            }
            scope.record(usage);
        }
    }

    /// Seconds until the tightest refused policy of this request lets requests through again.
    pub fn retry_after(&self) -> Option<i64> {
        let scope = self.0.as_ref()?;
        retry_after(&scope.usages())
    }
}

fn refusal_error(usage: &Usage) -> OAuthError {
    OAuthError::new(
        ErrorCode::RateLimited,
        format!(
            "too many requests ({}): try again in {} seconds",
            usage.policy.name(),
            usage.reset_secs
        ),
    )
}

/// The first refusal of a window is logged and audited (the policy, never the key); the
/// rest of the window's refusals are only counted.
fn note_refusal(app: &App, usage: &Usage) {
    crate::metrics::rate_limited(usage.policy.name());
    if usage.first_refusal() {
        tracing::info!(policy = usage.policy.name(), "rate limit reached");
        app.audit(
            Event::new("rate_limit.reached", Outcome::Refused).with("policy", usage.policy.name()),
        );
    }
}

/// Middleware: counts a limited route's request, refuses it past a limit, and puts the rate
/// limit headers on the response.
pub async fn rate_limit(State(app): State<AppState>, mut request: Request, next: Next) -> Response {
    if !app.config.rate_limits.enabled {
        return next.run(request).await;
    }
    let Some(route) = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str())
        .map(|p| p.strip_prefix(app.base_path()).unwrap_or(p))
        .and_then(|p| classify(request.method(), p))
    else {
        return next.run(request).await;
    };
    if route.ip == Policy::WebhookIp && webhook_secret_matches(&app, request.headers()) {
        // Telegram's own deliveries are never counted or refused.
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let addr = limit_key(client_addr(
        peer,
        request.headers(),
        &app.config.trusted_proxies,
    ))
    .to_string();
    let path_client = route.path_client.and_then(|policy| {
        let id = request.uri().path().rsplit('/').next()?;
        (!id.is_empty()).then(|| (policy, id.chars().take(200).collect::<String>()))
    });
    let mut counted: Vec<(Policy, &str)> = vec![(route.ip, addr.as_str())];
    if let Some((policy, id)) = &path_client {
        counted.push((*policy, id.as_str()));
    }
    let usages = limits::hit(&app, app.now(), &counted).await;
    let scope = Arc::new(Scope::default());
    for usage in &usages {
        scope.record(*usage);
    }
    let mut response = match usages.iter().find(|u| !u.allowed) {
        Some(refused) => {
            note_refusal(&app, refused);
            match route.answer {
                Answer::Api => refusal_error(refused).into_response(),
                Answer::Page => Problem::page(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many requests",
                    format!(
                        "Too many requests came from your network. Wait {} seconds and try again.",
                        refused.reset_secs
                    ),
                )
                .at(&app)
                .into_response(),
            }
        }
        None => {
            request.extensions_mut().insert(Limits(Some(scope.clone())));
            next.run(request).await
        }
    };
    put_headers(response.headers_mut(), &scope.usages());
    response
}

fn webhook_secret_matches(app: &App, headers: &HeaderMap) -> bool {
    let expected = app.config.telegram.webhook_secret.expose().as_bytes();
    let presented = headers
        .get(crate::flow::bot_updates::SECRET_HEADER)
        .map(|v| v.as_bytes())
        .unwrap_or_default();
    !expected.is_empty() && crate::secrets::constant_time_eq(presented, expected)
}

/// `Retry-After` for the refused usages: when the last of them lets requests through again.
fn retry_after(usages: &[Usage]) -> Option<i64> {
    usages
        .iter()
        .filter(|u| !u.allowed)
        .map(|u| u.reset_secs)
        .max()
}

/// The rate limit header fields for `usages`, as (name, value).
pub fn header_fields(usages: &[Usage]) -> Vec<(HeaderName, String)> {
    let Some(tightest) = usages
        .iter()
        .min_by_key(|u| (u.allowed, u.remaining(), std::cmp::Reverse(u.reset_secs)))
    else {
        return Vec::new();
    };
    let policy = usages
        .iter()
        .map(|u| format!("\"{}\";q={};w={}", u.policy.name(), u.limit, u.window_secs))
        .collect::<Vec<_>>()
        .join(", ");
    let state = usages
        .iter()
        .map(|u| {
            format!(
                "\"{}\";r={};t={}",
                u.policy.name(),
                u.remaining(),
                u.reset_secs
            )
        })
        .collect::<Vec<_>>()
        .join(", ");
    let mut fields = vec![
        (HeaderName::from_static("ratelimit-policy"), policy),
        (HeaderName::from_static("ratelimit"), state),
        (
            HeaderName::from_static("x-ratelimit-limit"),
            tightest.limit.to_string(),
        ),
        (
            HeaderName::from_static("x-ratelimit-remaining"),
            tightest.remaining().to_string(),
        ),
        (
            HeaderName::from_static("x-ratelimit-reset"),
            tightest.reset_secs.to_string(),
        ),
    ];
    if let Some(secs) = retry_after(usages) {
        fields.push((header::RETRY_AFTER, secs.to_string()));
    }
    fields
}

fn put_headers(headers: &mut HeaderMap, usages: &[Usage]) {
    for (name, value) in header_fields(usages) {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(policy: Policy, limit: u32, window: i64, used: u32, reset: i64) -> Usage {
        Usage {
            policy,
            limit,
            window_secs: window,
            used,
            reset_secs: reset,
            allowed: used <= limit,
        }
    }

    fn field(fields: &[(HeaderName, String)], name: &str) -> Option<String> {
        fields
            .iter()
            .find(|(n, _)| n.as_str() == name)
            .map(|(_, v)| v.clone())
    }

    #[test]
    fn headers_follow_the_draft_and_the_x_convention() {
        let fields = header_fields(&[usage(Policy::TokenIp, 600, 60, 3, 42)]);
        assert_eq!(
            field(&fields, "ratelimit-policy").unwrap(),
            "\"token-ip\";q=600;w=60"
        );
        assert_eq!(
            field(&fields, "ratelimit").unwrap(),
            "\"token-ip\";r=597;t=42"
        );
        assert_eq!(field(&fields, "x-ratelimit-limit").unwrap(), "600");
        assert_eq!(field(&fields, "x-ratelimit-remaining").unwrap(), "597");
        assert_eq!(field(&fields, "x-ratelimit-reset").unwrap(), "42");
        assert_eq!(field(&fields, "retry-after"), None);
    }

    #[test]
    fn several_policies_are_listed_and_the_tightest_is_the_x_header() {
        let fields = header_fields(&[
            usage(Policy::TokenIp, 600, 60, 10, 42),
            usage(Policy::TokenClient, 20, 3600, 18, 1800),
        ]);
        assert_eq!(
            field(&fields, "ratelimit-policy").unwrap(),
            "\"token-ip\";q=600;w=60, \"token-client\";q=20;w=3600"
        );
        assert_eq!(
            field(&fields, "ratelimit").unwrap(),
            "\"token-ip\";r=590;t=42, \"token-client\";r=2;t=1800"
        );
        assert_eq!(field(&fields, "x-ratelimit-limit").unwrap(), "20");
        assert_eq!(field(&fields, "x-ratelimit-remaining").unwrap(), "2");
        assert_eq!(field(&fields, "x-ratelimit-reset").unwrap(), "1800");
    }

    #[test]
    fn a_refusal_says_when_to_come_back() {
        let fields = header_fields(&[
            usage(Policy::TokenIp, 600, 60, 601, 42),
            usage(Policy::TokenClient, 1200, 60, 700, 42),
        ]);
        assert_eq!(field(&fields, "x-ratelimit-remaining").unwrap(), "0");
        assert_eq!(field(&fields, "retry-after").unwrap(), "42");
        assert!(header_fields(&[]).is_empty());
    }

    #[test]
    fn routes_are_classified_by_method_and_matched_path() {
        let get = Method::GET;
        let post = Method::POST;
        assert_eq!(classify(&post, "/token").unwrap().ip, Policy::TokenIp);
        assert_eq!(classify(&get, "/token"), None);
        assert_eq!(classify(&get, "/device"), None);
        assert_eq!(classify(&post, "/device").unwrap().answer, Answer::Page);
        assert_eq!(
            classify(&get, "/register/{client_id}").unwrap().path_client,
            Some(Policy::RegisterClient)
        );
        assert_eq!(
            classify(&get, "/login/telegram-oidc/callback").unwrap().ip,
            Policy::LoginIp
        );
        assert_eq!(classify(&get, "/authorize"), None);
        assert_eq!(
            classify(&get, "/admin/clients").unwrap().ip,
            Policy::AdminIp
        );
        assert_eq!(classify(&get, "/administrator"), None);
    }
}
