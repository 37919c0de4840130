//! Each request's `tracing` span. Without traces it is the short `request{method, route,
//! request_id}` every log line carries; with `[traces]` on, it also carries the OpenTelemetry
//! names (`otel.name` "METHOD /route", kind server, `http.route`, the status once answered) and
//! continues the caller's trace from a W3C `traceparent` header when that is accepted.
//!
//! Only the route pattern is recorded, never the path or the query: both can hold codes,
//! tokens and user ids.

use axum::extract::MatchedPath;
use axum::http::{Request, Response};
use tracing::Span;
use tracing::field::Empty;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::TracesConfig;

#[derive(Clone, Copy)]
pub struct RequestSpans {
    traced: bool,
    accept_traceparent: bool,
}

impl RequestSpans {
    pub fn new(config: &TracesConfig) -> Self {
        RequestSpans {
            traced: config.enabled(),
            accept_traceparent: config.accept_traceparent,
        }
    }

    pub fn make<B>(&self, request: &Request<B>) -> Span {
        let route = request
            .extensions()
            .get::<MatchedPath>()
            .map(|p| p.as_str())
            .unwrap_or("unmatched");
        let id = request
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let method = request.method();
        if !self.traced {
            return tracing::info_span!("request", %method, route, request_id = id);
        }
        let span = tracing::info_span!(
            "request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = Empty,
            http.request.method = %method,
            http.route = route,
            http.response.status_code = Empty,
            request_id = id,
        );
        if self.accept_traceparent && request.headers().contains_key("traceparent") {
            let parent = opentelemetry::global::get_text_map_propagator(|propagator| {
                propagator.extract(&opentelemetry_http::HeaderExtractor(request.headers()))
            });
            // Without the OpenTelemetry layer (an embedding that installed none) there is
            // nothing to continue.
            let _ = span.set_parent(parent);
        }
        span
    }

    /// Records the answer's status on a traced span; a 5xx marks the span an error, as the
    /// HTTP semantic conventions say for servers.
    pub fn answered<B>(&self, response: &Response<B>, span: &Span) {
        if !self.traced {
            return;
        }
        let status = response.status();
        span.record("http.response.status_code", i64::from(status.as_u16()));
        if status.is_server_error() {
            span.record("otel.status_code", "error");
        }
    }
}
