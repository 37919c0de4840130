//! OpenID Connect Discovery 1.0 and the JWKS, served from memory (the provider renders them).

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::metrics::Document;
use crate::state::AppState;

pub async fn openid_configuration(State(app): State<AppState>) -> Response {
    app.metrics.document_served(Document::Discovery);
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            // What the router's layers add to every other response.
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        app.discovery.clone(),
    )
        .into_response()
}

pub async fn jwks(State(app): State<AppState>) -> Response {
    app.metrics.document_served(Document::Jwks);
    (
        [
            (header::CONTENT_TYPE, "application/jwk-set+json"),
            // Short, so a rotated key reaches the apps quickly.
            (header::CACHE_CONTROL, "public, max-age=60"),
            (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        app.jwks(app.now()),
    )
        .into_response()
}
