//! The OpenAPI 3.1 document of the admin API, generated from the handlers' annotations and
//! served (without a key: it holds no data) at `/admin/api/v1/openapi.json`.

use std::sync::LazyLock;

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{ContentBuilder, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};

use super::{Problem, audit, clients, keys, users};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "telegram-oidc admin API",
        description = "Clients, signing keys and the audit log. Authenticate with an admin key \
                       (`telegram-oidc admin-key create`) as `Authorization: Bearer tgak_...`."
    ),
    paths(
        clients::list,
        clients::create,
        clients::show,
        clients::update,
        clients::remove,
        clients::rotate_secret,
        keys::list,
        keys::rotate,
        audit::query,
        users::list,
        users::show,
        users::block,
        users::unblock,
        users::revoke_everything,
        users::revoke_grant,
        users::revoke_session,
    ),
    components(schemas(Problem)),
    modifiers(&Common),
    security(("admin_key" = []))
)]
pub struct AdminApiDoc;

/// What every operation shares: the key's security scheme, and the problem responses any of
/// them may give.
struct Common;

impl Modify for Common {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
        let problem = |description: &str| {
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/problem+json",
                    ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("Problem")))
                        .build(),
                )
                .build()
        };
        let common: &[(&str, &str, bool)] = &[
            ("400", "The request is malformed", false),
            (
                "401",
                "No admin key, or an unknown, expired or revoked one",
                false,
            ),
            (
                "403",
                "The key may not do this, or not from this address",
                false,
            ),
            ("404", "No such resource", false),
            (
                "412",
                "If-Match names another version than the stored one",
                true,
            ),
            ("413", "The body is too large", false),
            (
                "422",
                "The request is well formed but its values are refused",
                true,
            ),
            ("428", "If-Match is missing", true),
            ("429", "Too many requests from this address", false),
            (
                "503",
                "The database is unavailable; try again shortly",
                false,
            ),
        ];
        for item in doc.paths.paths.values_mut() {
            for op in [
                item.get.as_mut(),
                item.post.as_mut(),
                item.patch.as_mut(),
                item.delete.as_mut(),
            ]
            .into_iter()
            .flatten()
            {
                for (status, description, writes_only) in common {
                    if *writes_only && item_is_read(op) {
                        continue;
                    }
                    op.responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| RefOr::T(problem(description)));
                }
            }
        }
    }
}

/// A read: an operation without a request body or `If-Match`.
fn item_is_read(op: &utoipa::openapi::path::Operation) -> bool {
    op.request_body.is_none()
        && op.parameters.as_ref().is_none_or(|ps| {
            !ps.iter()
                .any(|p| matches!(p, RefOr::T(p) if p.name == "If-Match"))
        })
}

static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    AdminApiDoc::openapi()
        .to_json()
        .unwrap_or_else(|_| "{}".to_owned())
});

/// The document as JSON.
pub fn json() -> &'static str {
    &DOCUMENT
}

pub async fn document() -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json(),
    )
        .into_response()
}
