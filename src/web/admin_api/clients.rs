//! `/admin/api/v1/clients`: register, list, show, change, remove apps, rotate their secrets.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{JsonBody, Problem, QueryParams, ReadAccess, WriteAccess, if_match, page_limit};
use crate::admin::{self, ClientUpdate, NewClient};
use crate::keys::SigningAlg;
use crate::state::AppState;
use crate::store::{AccessTokenFormat, ClientKind, ClientRecord, RefreshPolicy};

/// One registered app.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    /// Unix seconds.
    pub created_at: i64,
    /// Whether the client has a secret (its value is never shown again).
    pub has_secret: bool,
    /// Every setting, as `client show --json` prints them.
    #[schema(value_type = Object)]
    pub settings: serde_json::Value,
    /// The settings' version, as the `ETag` header gives it.
    pub etag: String,
}

impl ClientView {
    fn of(c: &ClientRecord) -> ClientView {
        ClientView {
            client_id: c.client_id.clone(),
            created_at: c.created_at,
            has_secret: c.secret_hash.is_some(),
            settings: serde_json::to_value(&c.settings).unwrap_or_default(),
            etag: admin::client_etag(c),
        }
    }
}

/// A page of clients, by client id.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientPage {
    pub items: Vec<ClientView>,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    /// Items per page, 1 to 100 (default 50).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A new app, as `client add` takes it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientCreate {
    /// Shown to users on the login and consent pages (1 to 100 characters).
    pub name: String,
    /// Exact redirect URIs (none for a service account).
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// A public client (no secret, PKCE required).
    #[serde(default)]
    pub public: bool,
    /// Allowed scopes (default: openid, profile, telegram, offline_access).
    pub scopes: Option<Vec<String>>,
    #[serde(default)]
    pub skip_consent: bool,
    /// A service account: the client credentials grant for its scopes.
    #[serde(default)]
    pub service_account: bool,
    /// May use the device authorization grant.
    #[serde(default)]
    pub device_flow: bool,
    /// `RS256` (default), `ES256` or `EdDSA`.
    pub id_token_alg: Option<String>,
    /// `jwt` (default) or `opaque`.
    pub access_token_format: Option<String>,
    /// When a refresh token is issued: `offline_access` (default), `always`, `never`.
    pub refresh: Option<String>,
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    /// Who may log in (see the README, "Who may enter"), e.g. `{"ids": [42]}`.
    #[schema(value_type = Option<Object>)]
    pub access_policy: Option<crate::access::Rule>,
    /// Every login is also confirmed in the bot chat.
    #[serde(default)]
    pub require_bot_confirmation: bool,
}

/// A registered app and, for a confidential client, its secret (shown this once).
#[derive(Debug, Serialize, ToSchema)]
pub struct ClientCreated {
    #[serde(flatten)]
    pub client: ClientView,
    pub client_secret: Option<String>,
}

/// What to change; absent members stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ClientPatch {
    /// A new access policy, or `null` to let every Telegram user in again.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<Object>)]
    pub access_policy: Option<Option<crate::access::Rule>>,
    /// The allowed scopes (add `groups` for the groups claim).
    pub scopes: Option<Vec<String>>,
    pub require_bot_confirmation: Option<bool>,
    /// Shown to users on the login and consent pages (1 to 100 characters).
    pub name: Option<String>,
    /// The exact redirect URIs, replacing the registered ones.
    pub redirect_uris: Option<Vec<String>>,
    pub skip_consent: Option<bool>,
}

/// A member that is present, `null` included (`Some(None)`); an absent one stays `None`.
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A new client secret, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretRotated {
    pub client_id: String,
    pub client_secret: String,
}

fn with_etag(status: StatusCode, client: &ClientRecord, body: impl Serialize) -> Response {
    let etag = admin::client_etag(client);
    let mut response = (status, axum::Json(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `If-Match` is required on changes, so that an admin who read an older version cannot
/// overwrite another's change unseen.
fn required_if_match(headers: &HeaderMap) -> Result<String, Problem> {
    if_match(headers).ok_or_else(|| {
        Problem::new(
            StatusCode::PRECONDITION_REQUIRED,
            "give If-Match with the ETag of the client as you read it (or `*`)",
        )
    })
}

#[utoipa::path(get, path = "/admin/api/v1/clients", tag = "clients", params(PageQuery),
    responses((status = 200, description = "A page of clients, by client id", body = ClientPage)))]
pub async fn list(
    State(app): State<AppState>,
    _: ReadAccess,
    QueryParams(q): QueryParams<PageQuery>,
) -> Result<Response, Problem> {
    let limit = page_limit(q.limit)? as usize;
    let mut clients = app
        .store
        .list_clients()
        .await
        .map_err(admin::AdminError::from)?;
    clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
    let after: Vec<&ClientRecord> = clients
        .iter()
        .filter(|c| {
            q.cursor
                .as_deref()
                .is_none_or(|cur| c.client_id.as_str() > cur)
        })
        .collect();
    let next_cursor = (after.len() > limit).then(|| after[limit - 1].client_id.clone());
    let page = ClientPage {
        items: after
            .iter()
            .take(limit)
            .map(|c| ClientView::of(c))
            .collect(),
        next_cursor,
    };
    Ok(axum::Json(page).into_response())
}

#[utoipa::path(post, path = "/admin/api/v1/clients", tag = "clients", request_body = ClientCreate,
    responses((status = 201, description = "Registered", body = ClientCreated,
        headers(("ETag" = String, description = "The client's version")))))]
pub async fn create(
    State(app): State<AppState>,
    WriteAccess(actor): WriteAccess,
    JsonBody(c): JsonBody<ClientCreate>,
) -> Result<Response, Problem> {
    let new = c
        .into_new_client()
        .map_err(|e| Problem::new(StatusCode::UNPROCESSABLE_ENTITY, e))?;
    let (client, secret) =
        admin::create_client(app.store.as_ref(), &actor, new, None, app.now_millis()).await?;
    let body = ClientCreated {
        client: ClientView::of(&client),
        client_secret: secret,
    };
    Ok(with_etag(StatusCode::CREATED, &client, body))
}

impl ClientCreate {
    /// The app to register, with the defaults `client add` has; shared by the admin API and
    /// the admin desk's form. `Err` names the setting with an unknown value.
    pub fn into_new_client(self) -> Result<NewClient, String> {
        let c = self;
        let invalid = |what: &str, v: &str| format!("{what}: unknown value `{v}`");
        Ok(NewClient {
            name: c.name,
            kind: if c.public {
                ClientKind::Public
            } else {
                ClientKind::Confidential
            },
            redirect_uris: c.redirect_uris,
            scopes: c.scopes.unwrap_or_else(|| {
                ["openid", "profile", "telegram", "offline_access"]
                    .map(String::from)
                    .to_vec()
            }),
            id_token_alg: match c.id_token_alg.as_deref() {
                None => SigningAlg::RS256,
                Some(a) => SigningAlg::parse(a).ok_or_else(|| invalid("id_token_alg", a))?,
            },
            access_token_format: match c.access_token_format.as_deref() {
                None | Some("jwt") => AccessTokenFormat::Jwt,
                Some("opaque") => AccessTokenFormat::Opaque,
                Some(f) => return Err(invalid("access_token_format", f)),
            },
            refresh_policy: match c.refresh.as_deref() {
                None | Some("offline_access") => RefreshPolicy::OfflineAccess,
                Some("always") => RefreshPolicy::Always,
                Some("never") => RefreshPolicy::Never,
                Some(r) => return Err(invalid("refresh", r)),
            },
            skip_consent: c.skip_consent,
            service_account: c.service_account,
            device_flow: c.device_flow,
            post_logout_redirect_uris: c.post_logout_redirect_uris,
            backchannel_logout_uri: c.backchannel_logout_uri,
            access_policy: c.access_policy,
            require_bot_confirmation: c.require_bot_confirmation,
            ..NewClient::default()
        })
    }
}

#[utoipa::path(get, path = "/admin/api/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client id")),
    responses((status = 200, description = "The client", body = ClientView,
        headers(("ETag" = String, description = "The client's version")))))]
pub async fn show(
    State(app): State<AppState>,
    _: ReadAccess,
    Path(client_id): Path<String>,
) -> Result<Response, Problem> {
    let client = admin::get_client(app.store.as_ref(), &client_id).await?;
    Ok(with_etag(StatusCode::OK, &client, ClientView::of(&client)))
}

#[utoipa::path(patch, path = "/admin/api/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client id"),
        ("If-Match" = String, Header, description = "The ETag of the client as read, or `*`")),
    request_body = ClientPatch,
    responses((status = 200, description = "The changed client", body = ClientView,
        headers(("ETag" = String, description = "The client's new version")))))]
pub async fn update(
    State(app): State<AppState>,
    WriteAccess(actor): WriteAccess,
    Path(client_id): Path<String>,
    headers: HeaderMap,
    JsonBody(patch): JsonBody<ClientPatch>,
) -> Result<Response, Problem> {
    let version = required_if_match(&headers)?;
    let update = ClientUpdate {
        access_policy: patch.access_policy,
        scopes: patch.scopes,
        require_bot_confirmation: patch.require_bot_confirmation,
        name: patch.name,
        redirect_uris: patch.redirect_uris,
        skip_consent: patch.skip_consent,
    };
    let client = admin::change_client(
        app.store.as_ref(),
        &actor,
        &client_id,
        update,
        Some(&version),
        app.now_millis(),
    )
    .await?;
    Ok(with_etag(StatusCode::OK, &client, ClientView::of(&client)))
}

#[utoipa::path(delete, path = "/admin/api/v1/clients/{client_id}", tag = "clients",
    params(("client_id" = String, Path, description = "The client id"),
        ("If-Match" = String, Header, description = "The ETag of the client as read, or `*`")),
    responses((status = 204, description = "Removed; its tokens no longer work")))]
pub async fn remove(
    State(app): State<AppState>,
    WriteAccess(actor): WriteAccess,
    Path(client_id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, Problem> {
    let version = required_if_match(&headers)?;
    admin::remove_client(
        app.store.as_ref(),
        &actor,
        &client_id,
        Some(&version),
        app.now_millis(),
    )
    .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[utoipa::path(post, path = "/admin/api/v1/clients/{client_id}/secret", tag = "clients",
    params(("client_id" = String, Path, description = "The client id")),
    responses((status = 200, description = "The new secret; the old one no longer works", body = SecretRotated)))]
pub async fn rotate_secret(
    State(app): State<AppState>,
    WriteAccess(actor): WriteAccess,
    Path(client_id): Path<String>,
) -> Result<Response, Problem> {
    let secret =
        admin::new_client_secret(app.store.as_ref(), &actor, &client_id, app.now_millis()).await?;
    let mut response = axum::Json(SecretRotated {
        client_id,
        client_secret: secret,
    })
    .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}
