//! The yardstick for discovery and JWKS: a bare axum server, same runtime settings as
//! telegram-oidc (tokio's multi-threaded default), returning the very bytes telegram-oidc
//! served, with no middleware at all.

use std::net::SocketAddr;
use std::path::Path;

use axum::Router;
use axum::body::Bytes;
use axum::http::header;
use axum::routing::get;

pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";
pub const JWKS_PATH: &str = "/jwks.json";

pub fn serve(listen: SocketAddr, discovery: &Path, jwks: &Path) -> anyhow::Result<()> {
    let discovery = Bytes::from(std::fs::read(discovery)?);
    let jwks = Bytes::from(std::fs::read(jwks)?);
    const JSON: [(header::HeaderName, &str); 1] = [(header::CONTENT_TYPE, "application/json")];
    let router = Router::new()
        .route(
            DISCOVERY_PATH,
            get(move || async move { (JSON, discovery) }),
        )
        .route(JWKS_PATH, get(move || async move { (JSON, jwks) }))
        .route("/readyz", get(|| async { "ok" }));
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let listener = tokio::net::TcpListener::bind(listen).await?;
            axum::serve(listener, router).await?;
            Ok(())
        })
}
