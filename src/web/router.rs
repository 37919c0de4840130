//! The router: which path goes to which handler, which layers wrap them.

use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, OnResponse, TraceLayer};

use crate::state::AppState;
use crate::web;

pub fn router(app: AppState) -> Router {
    let config = &app.config;
    let spans = web::request_span::RequestSpans::new(&config.traces);
    let mut routes = Router::new()
        .route(
            "/authorize",
            get(web::authorize::authorize_get).post(web::authorize::authorize_post),
        )
        .route("/authorize/continue", get(web::authorize::resume))
        .route("/token", post(web::token::token))
        .route("/revoke", post(web::revoke::revoke))
        .route(
            "/logout",
            get(web::logout::end_session).post(web::logout::end_session),
        )
        .route("/logout/confirm", post(web::logout::confirm))
        .route(
            web::account::PATH,
            get(web::account::page).post(web::account::act),
        )
        .route("/introspect", post(web::introspect::introspect))
        .route(
            "/userinfo",
            get(web::userinfo::userinfo_get).post(web::userinfo::userinfo_post),
        )
        .route("/login", get(web::login::login_page))
        .route(web::upstream::START_PATH, get(web::upstream::start))
        .route(web::upstream::CALLBACK_PATH, get(web::upstream::callback))
        .route(
            "/login/telegram/{req}",
            get(web::login::widget_callback_get).post(web::login::widget_callback_post),
        )
        .route(
            "/consent",
            get(web::consent::consent_page).post(web::consent::consent_decision),
        )
        .route("/static/app.css", get(web::stylesheet))
        .route("/healthz", get(web::healthz))
        .route("/readyz", get(web::readyz));
    if config.registration.enabled {
        routes = routes
            .route("/register", post(web::registration::register))
            .route(
                "/register/{client_id}",
                get(web::registration::read)
                    .put(web::registration::update)
                    .delete(web::registration::delete),
            );
    }
    routes = routes
        .merge(web::deeplink::routes())
        .merge(web::device::routes())
        .merge(web::admin_api::routes())
        .merge(web::admin_desk::routes());
    // CIBA asks users in the bot chat: served only where the bot hears its answers.
    if config.telegram.update_mode() != crate::config::UpdateMode::None {
        routes = routes.route(crate::oidc::ciba::PATH, post(web::ciba::bc_authorize));
    }
    if config.telegram.update_mode() == crate::config::UpdateMode::Webhook {
        routes = routes.route(
            crate::flow::bot_updates::WEBHOOK_PATH,
            post(web::webhook::webhook),
        );
    }
    if config.dev_mode {
        routes = routes
            .route(
                "/dev/telegram",
                get(web::emulator::emulator_page).post(web::emulator::emulator_submit),
            )
            .route("/dev/callback", get(web::emulator::demo_callback));
    }
    let routes = routes
        .fallback(web::not_found)
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            web::body_deadline::deadline,
        ))
        // Inside `request_meta`, so that a refusal's audit entry says where it came from.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            web::rate_limit::rate_limit,
        ))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            web::client_addr::request_meta,
        ))
        .layer(axum::middleware::from_fn(web::i18n::negotiate))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(move |request: &Request<_>| spans.make(request))
                .on_response(
                    move |response: &axum::http::Response<_>, latency, span: &tracing::Span| {
                        spans.answered(response, span);
                        DefaultOnResponse::default().on_response(response, latency, span);
                    },
                ),
        )
        .layer(DefaultBodyLimit::max(config.max_body_bytes));

    // Served from memory, never failing and logging nothing: these two skip every layer
    // (span, request id, timeout, language, body limit), which cost them a third of their
    // throughput (bench/README.md); their handlers set the response headers themselves.
    let static_documents = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(web::discovery::openid_configuration),
        )
        .route("/jwks.json", get(web::discovery::jwks))
        .with_state(app.clone());

    let base_path = config.cookie_path();
    let (router, static_documents) = if base_path == "/" {
        (routes, static_documents)
    } else {
        (
            Router::new().nest(&base_path, routes),
            Router::new().nest(&base_path, static_documents),
        )
    };

    let request_id = HeaderName::from_static("x-request-id");
    router
        .with_state(app.clone())
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        // Outermost, so a timeout's 503 is counted too; the route is the pattern the request
        // matched. The static documents count themselves (one atomic add).
        .layer(axum::middleware::from_fn_with_state(
            app,
            web::metrics::track,
        ))
        .merge(static_documents)
}
