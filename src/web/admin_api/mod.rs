//! The admin API under `/admin/api/v1`: clients, users, signing keys and the audit log, for scripts
//! and dashboards. Every operation is one of `admin`'s functions, the same the command line
//! calls. Callers present an admin key (`Authorization: Bearer tgak_...`, made with
//! `telegram-oidc admin-key create`); errors are RFC 9457 problem details; the OpenAPI
//! document is generated from the handlers and served at `/admin/api/v1/openapi.json`.

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use utoipa::ToSchema;

use crate::admin::{self, Actor, AdminError, KeyRefusal};
use crate::state::AppState;
use crate::store::{AdminKeyRecord, AdminScope};

mod audit;
pub mod clients;
mod keys;
pub mod openapi;
mod users;

pub const BASE: &str = "/admin/api/v1";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route(
            "/admin/api/v1/clients",
            get(clients::list).post(clients::create),
        )
        .route(
            "/admin/api/v1/clients/{client_id}",
            get(clients::show)
                .patch(clients::update)
                .delete(clients::remove),
        )
        .route(
            "/admin/api/v1/clients/{client_id}/secret",
            post(clients::rotate_secret),
        )
        .route("/admin/api/v1/keys", get(keys::list))
        .route("/admin/api/v1/keys/rotate", post(keys::rotate))
        .route("/admin/api/v1/audit", get(audit::query))
        .route("/admin/api/v1/users", get(users::list))
        .route("/admin/api/v1/users/{user_id}", get(users::show))
        .route("/admin/api/v1/users/{user_id}/block", post(users::block))
        .route(
            "/admin/api/v1/users/{user_id}/unblock",
            post(users::unblock),
        )
        .route(
            "/admin/api/v1/users/{user_id}/revoke",
            post(users::revoke_everything),
        )
        .route(
            "/admin/api/v1/users/{user_id}/grants/{client_id}",
            axum::routing::delete(users::revoke_grant),
        )
        .route(
            "/admin/api/v1/users/{user_id}/sessions/{session_id}",
            axum::routing::delete(users::revoke_session),
        )
        .route("/admin/api/v1/openapi.json", get(openapi::document))
        .route("/admin/api/v1/{*rest}", axum::routing::any(not_found))
}

/// Paths under the API that match no route answer in the API's error shape too.
async fn not_found() -> Problem {
    Problem::new(StatusCode::NOT_FOUND, "no such resource")
}

/// An error as RFC 9457 problem details (`application/problem+json`).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank`: the status says it all.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: String,
    pub status: u16,
    /// What went wrong with this request, for people.
    pub detail: String,
    #[serde(skip)]
    headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            headers: Vec::new(),
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Problem {
        self.headers.push((name, HeaderValue::from_static(value)));
        self
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut response = (
            status,
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/problem+json"),
                ),
                (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ],
            body,
        )
            .into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

impl From<AdminError> for Problem {
    fn from(e: AdminError) -> Problem {
        match e {
            AdminError::Invalid(msg) => Problem::new(StatusCode::UNPROCESSABLE_ENTITY, msg),
            e @ (AdminError::NotFound(_)
            | AdminError::NoAdminKey(_)
            | AdminError::NoUser(_)
            | AdminError::NoSession(_)) => Problem::new(StatusCode::NOT_FOUND, e.to_string()),
            e @ AdminError::VersionMismatch(_) => {
                Problem::new(StatusCode::PRECONDITION_FAILED, e.to_string())
            }
            AdminError::Store(crate::store::StoreError::Unavailable(msg)) => {
                tracing::warn!(error = %msg, "database unavailable");
                Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the database is unavailable; try again shortly",
                )
            }
            AdminError::Store(e) => {
                tracing::error!(error = %e, "admin API");
                Problem::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
            }
        }
    }
}

/// A caller holding a live admin key allowed here, with at least read scope.
pub struct ReadAccess(pub Actor);
/// A caller holding a live admin key allowed here, with write scope.
pub struct WriteAccess(pub Actor);

impl FromRequestParts<AppState> for ReadAccess {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Problem> {
        authorize(parts, app, AdminScope::Read)
            .await
            .map(ReadAccess)
    }
}

impl FromRequestParts<AppState> for WriteAccess {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Problem> {
        authorize(parts, app, AdminScope::Write)
            .await
            .map(WriteAccess)
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(StatusCode::UNAUTHORIZED, detail).with_header(
        header::WWW_AUTHENTICATE,
        "Bearer realm=\"admin\", error=\"invalid_token\"",
    )
}

/// Checks the request's admin key: the global allow-list, the key itself (by its SHA-256, in
/// constant time; not revoked, not expired), the key's allow-list, then its scope. A refusal
/// after the key is known (address, scope) is audited as `admin.refused`.
async fn authorize(parts: &Parts, app: &AppState, needed: AdminScope) -> Result<Actor, Problem> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<std::net::SocketAddr>>()
        .map(|c| c.0.ip())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    let ip = super::client_addr::client_addr(peer, &parts.headers, &app.config.trusted_proxies);
    let mut actor = Actor {
        name: "unknown".into(),
        ip: Some(ip.to_string()),
        request_id: text(&parts.headers, "x-request-id"),
    };
    let now_millis = app.now_millis();
    let refuse = |actor: Actor, reason: &'static str, detail: &str| {
        let store = app.store.clone();
        let what = serde_json::json!({
            "reason": reason,
            "method": parts.method.as_str(),
            "path": parts.uri.path(),
        });
        let detail = detail.to_owned();
        async move {
            if let Err(e) = admin::record(
                store.as_ref(),
                &actor,
                "admin.refused",
                "refused",
                None,
                what,
                now_millis,
            )
            .await
            {
                tracing::error!(error = %e, "the audit log could not record a refusal");
            }
            Problem::new(StatusCode::FORBIDDEN, detail)
        }
    };
    let allowed = |nets: &[ipnet::IpNet]| nets.is_empty() || nets.iter().any(|n| n.contains(&ip));
    if !allowed(&app.config.admin.allow_ips) {
        return Err(refuse(
            actor,
            "address",
            "the admin API is not served to this address",
        )
        .await);
    }
    let Some(presented) = bearer(&parts.headers) else {
        return Err(Problem::new(
            StatusCode::UNAUTHORIZED,
            "give an admin key: Authorization: Bearer tgak_...",
        )
        .with_header(header::WWW_AUTHENTICATE, "Bearer realm=\"admin\""));
    };
    let key: AdminKeyRecord =
        match admin::authenticate_key(app.store.as_ref(), presented, now_millis / 1000).await {
            Ok(Ok(key)) => key,
            Ok(Err(KeyRefusal::Unknown)) => return Err(unauthorized("unknown admin key")),
            Ok(Err(KeyRefusal::Revoked)) => return Err(unauthorized("the admin key was revoked")),
            Ok(Err(KeyRefusal::Expired)) => return Err(unauthorized("the admin key has expired")),
            Err(e) => return Err(e.into()),
        };
    actor.name = format!("key:{}", key.id);
    if !allowed(&key.allow_ips) {
        return Err(refuse(
            actor,
            "address",
            "this admin key may not be used from this address",
        )
        .await);
    }
    if key.scope < needed {
        return Err(refuse(
            actor,
            "scope",
            "this admin key may only read (scope `read`)",
        )
        .await);
    }
    Ok(actor)
}

fn text(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.chars().take(200).collect())
}

/// The credentials of `Authorization: Bearer <key>` (RFC 6750 §2.1; the scheme is
/// case-insensitive).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, credentials) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| credentials.trim())
        .filter(|c| !c.is_empty())
}

/// A JSON request body, parsed strictly: a malformed one is a problem, not axum's plain text.
pub struct JsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for JsonBody<T> {
    type Rejection = Problem;
    async fn from_request(req: axum::extract::Request, app: &AppState) -> Result<Self, Problem> {
        let bytes = axum::body::Bytes::from_request(req, app)
            .await
            .map_err(|e| Problem::new(e.status(), e.body_text()))?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| Problem::bad_request(format!("the body is not the expected JSON: {e}")))
    }
}

/// The query string, parsed strictly into `T`.
pub struct QueryParams<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequestParts<AppState> for QueryParams<T> {
    type Rejection = Problem;
    async fn from_request_parts(parts: &mut Parts, _: &AppState) -> Result<Self, Problem> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|q| QueryParams(q.0))
            .map_err(|e| Problem::bad_request(e.body_text()))
    }
}

/// The `If-Match` header's value, if any.
pub fn if_match(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::IF_MATCH)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
}

/// How many items a page holds: `limit`, 1 to 100 (default 50).
pub fn page_limit(limit: Option<u32>) -> Result<u32, Problem> {
    match limit {
        None => Ok(50),
        Some(n @ 1..=100) => Ok(n),
        Some(_) => Err(Problem::bad_request("limit is 1 to 100")),
    }
}
