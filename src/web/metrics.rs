//! The metrics' web side: the middleware that counts every request by its route, and the
//! router of the separate metrics listener, which answers `GET /metrics` and nothing else.

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::metrics::{KeySample, OPENMETRICS_TEXT, PROMETHEUS_TEXT, Snapshot};
use crate::state::AppState;

/// Middleware: counts the request under its route pattern (`unmatched` when no route took it,
/// so a scan of random paths adds one series, not one per path), method and status, and
/// observes how long the answer took.
pub async fn track(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = crate::metrics::http_method(request.method().as_str());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned());
    let response = next.run(request).await;
    app.metrics.http_request(
        route.as_deref().unwrap_or("unmatched"),
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// The metrics listener's router: `GET /metrics`, 404 for anything else.
pub fn router(app: AppState) -> Router {
    Router::new()
        .route("/metrics", get(scrape))
        .fallback(|| async { StatusCode::NOT_FOUND })
        .with_state(app)
}

/// `GET /metrics`: Prometheus text, or OpenMetrics text when the scraper asks for it.
async fn scrape(State(app): State<AppState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let snapshot = snapshot(&app);
    let text = app.metrics.render(&snapshot, openmetrics);
    let content_type = if openmetrics {
        OPENMETRICS_TEXT
    } else {
        PROMETHEUS_TEXT
    };
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        text,
    )
        .into_response()
}

/// What is read at scrape time: connections, keys, the app's own counters.
fn snapshot(app: &AppState) -> Snapshot {
    let now = app.now();
    let keys = app
        .keys
        .list()
        .into_iter()
        .map(|key| KeySample {
            state: if key.active {
                "active"
            } else if key.retired_at.is_some_and(|at| at <= now) {
                "retired"
            } else {
                "pending"
            },
            alg: key.alg.as_str(),
            age_seconds: now.saturating_sub(key.created_at),
            kid: key.kid,
        })
        .collect();
    Snapshot {
        pool: app.store.pool_stats(),
        keys,
        audit_dropped: app.audit.dropped(),
        bot_updates_unusable: app
            .unusable_updates
            .load(std::sync::atomic::Ordering::Relaxed),
        bot_messages_skipped: app
            .bot_messages_skipped
            .load(std::sync::atomic::Ordering::Relaxed),
    }
}
