//! Dynamic client registration (RFC 7591) and its management API (RFC 7592). Served only when
//! `registration.enabled`; registering needs the configured initial access token, and each
//! registered client gets its own registration access token (only its SHA-256 is stored) to
//! read, replace or delete its registration.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::keys::SigningAlg;
use crate::oidc::clients::{self as admin, AdminError, NewClient};
use crate::oidc::{Provider, acr, client_assertion, scopes};
use crate::outbound::Chosen;
use crate::secrets::{TokenKind, constant_time_eq, new_token, sha256, token_hash};
use crate::store::{
    CibaDeliveryMode, CibaSettings, ClientKind, ClientRecord, RefreshPolicy, SubjectType,
    TokenEndpointAuthMethod,
};

const MAX_REDIRECT_URIS: usize = 20;
const MAX_URI_LEN: usize = 2000;
const MAX_SECTOR_DOCUMENT_BYTES: usize = 64 * 1024;
const DEFAULT_CLIENT_NAME: &str = "Unnamed app";

const AUTHORIZATION_CODE: &str = "authorization_code";
const REFRESH_TOKEN: &str = "refresh_token";
const CLIENT_CREDENTIALS: &str = "client_credentials";
const CIBA: &str = crate::oidc::grant_ciba::GRANT_TYPE;

/// The client metadata of RFC 7591 §2 (and OpenID Connect Registration §2) this server
/// honours. Anything else a client sends is ignored (§2: "the authorization server MUST
/// ignore any client metadata sent by the client that it does not understand"). The web layer
/// reads it from the request body.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ClientMetadata {
    redirect_uris: Option<Vec<String>>,
    client_name: Option<String>,
    token_endpoint_auth_method: Option<String>,
    grant_types: Option<Vec<String>>,
    response_types: Option<Vec<String>>,
    scope: Option<String>,
    id_token_signed_response_alg: Option<String>,
    jwks: Option<Value>,
    jwks_uri: Option<String>,
    post_logout_redirect_uris: Option<Vec<String>>,
    backchannel_logout_uri: Option<String>,
    subject_type: Option<String>,
    sector_identifier_uri: Option<String>,
    /// CIBA Core 1.0 §4: `poll` or `ping` (push is not served).
    backchannel_token_delivery_mode: Option<String>,
    backchannel_client_notification_endpoint: Option<String>,
    /// Signed authentication requests are not served: registering an algorithm is refused.
    backchannel_authentication_request_signing_alg: Option<String>,
    /// `user_code` is not served: `true` is refused.
    backchannel_user_code_parameter: Option<bool>,
    /// OpenID Connect Registration §2: with `urn:telegram-oidc:acr:bot-confirmed`, every login
    /// is also confirmed in the bot chat (step-up).
    default_acr_values: Option<Vec<String>>,
    /// RFC 7592 §2.2: a replacement names the client it replaces ...
    client_id: Option<String>,
    /// ... and may repeat its current secret, never choose a new one.
    client_secret: Option<String>,
}

pub fn bad_metadata(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidClientMetadata, description)
}

fn bad_redirect_uri(description: impl Into<String>) -> OAuthError {
    OAuthError::new(ErrorCode::InvalidRedirectUri, description)
}

/// A registration, checked and turned into what [`admin::build_client`] takes.
struct Registration {
    new: NewClient,
    method: TokenEndpointAuthMethod,
    sector_identifier_uri: Option<String>,
}

/// Checks the metadata against RFC 7591 §2 and this server's rules.
async fn check_metadata(provider: &Provider, meta: ClientMetadata) -> OAuthResult<Registration> {
    // URLs the server will fetch or post to: an internal address is refused up front where it
    // is literal (and again, after resolution, whenever the server connects).
    for (name, uri) in [
        ("jwks_uri", &meta.jwks_uri),
        ("sector_identifier_uri", &meta.sector_identifier_uri),
        ("backchannel_logout_uri", &meta.backchannel_logout_uri),
        (
            "backchannel_client_notification_endpoint",
            &meta.backchannel_client_notification_endpoint,
        ),
    ] {
        if let Some(uri) = uri {
            provider
                .outbound
                .check_url(uri, Chosen::ByClient)
                .map_err(|e| bad_metadata(format!("{name}: {e}")))?;
        }
    }
    let method = match meta.token_endpoint_auth_method.as_deref() {
        None => TokenEndpointAuthMethod::ClientSecretBasic,
        Some(m) => TokenEndpointAuthMethod::parse(m).ok_or_else(|| {
            bad_metadata(format!(
                "token_endpoint_auth_method `{m}` is not supported; use client_secret_basic, client_secret_post, private_key_jwt or none"
            ))
        })?,
    };
    let requested_scopes = meta.scope.as_deref().map(scopes::parse);
    let wants_offline = requested_scopes
        .as_ref()
        .is_some_and(|s| s.iter().any(|s| s == scopes::OFFLINE_ACCESS));

    let grant_types = meta
        .grant_types
        .unwrap_or_else(|| vec![AUTHORIZATION_CODE.to_owned()]);
    for g in &grant_types {
        if ![AUTHORIZATION_CODE, REFRESH_TOKEN, CLIENT_CREDENTIALS, CIBA].contains(&g.as_str()) {
            return Err(bad_metadata(format!(
                "grant type `{g}` cannot be registered; use authorization_code, refresh_token, client_credentials or {CIBA}"
            )));
        }
    }
    let has = |g: &str| grant_types.iter().any(|x| x == g);
    let code_flow = has(AUTHORIZATION_CODE);
    let service_account = has(CLIENT_CREDENTIALS);
    let ciba = check_ciba_metadata(
        provider,
        CibaMetadata {
            mode: meta.backchannel_token_delivery_mode.as_deref(),
            endpoint: meta.backchannel_client_notification_endpoint.as_deref(),
            signing_alg: meta
                .backchannel_authentication_request_signing_alg
                .is_some(),
            user_code: meta.backchannel_user_code_parameter == Some(true),
        },
        has(CIBA),
    )?;
    if !code_flow && !service_account && ciba.is_none() {
        return Err(bad_metadata(format!(
            "grant_types needs authorization_code, client_credentials or {CIBA}"
        )));
    }
    // §2.1: response_types and grant_types must agree; only the code flow is served here.
    let response_types = meta.response_types.unwrap_or_else(|| {
        if code_flow {
            vec!["code".to_owned()]
        } else {
            Vec::new()
        }
    });
    if response_types.iter().any(|r| r != "code") {
        return Err(bad_metadata("only the response type `code` is supported"));
    }
    if code_flow == response_types.is_empty() {
        return Err(bad_metadata(
            "response type `code` goes with the authorization_code grant, and only with it",
        ));
    }

    let redirect_uris = if code_flow {
        let uris = meta.redirect_uris.unwrap_or_default();
        if uris.is_empty() {
            return Err(bad_redirect_uri(
                "redirect_uris is required for the authorization_code grant",
            ));
        }
        if uris.len() > MAX_REDIRECT_URIS {
            return Err(bad_redirect_uri(format!(
                "at most {MAX_REDIRECT_URIS} redirect URIs"
            )));
        }
        for uri in &uris {
            if uri.len() > MAX_URI_LEN {
                return Err(bad_redirect_uri("a redirect URI is too long"));
            }
            admin::check_redirect_uri(uri).map_err(|e| bad_redirect_uri(e.to_string()))?;
        }
        uris
    } else {
        // Without the code flow there is nothing to redirect to.
        Vec::new()
    };

    let kind = match method {
        TokenEndpointAuthMethod::None => ClientKind::Public,
        _ => ClientKind::Confidential,
    };
    if service_account && kind == ClientKind::Public {
        return Err(bad_metadata(
            "the client_credentials grant needs an authenticating client, not `none`",
        ));
    }
    let (jwks, jwks_uri) = if method == TokenEndpointAuthMethod::PrivateKeyJwt {
        match (meta.jwks, meta.jwks_uri) {
            (Some(_), Some(_)) => {
                return Err(bad_metadata(
                    "send jwks or jwks_uri, not both (RFC 7591 §2)",
                ));
            }
            (None, None) => {
                return Err(bad_metadata("private_key_jwt needs jwks or jwks_uri"));
            }
            (Some(set), None) => {
                client_assertion::check_jwks(&set).map_err(bad_metadata)?;
                (Some(set), None)
            }
            (None, Some(uri)) => {
                client_assertion::check_jwks_uri(&uri).map_err(bad_metadata)?;
                (None, Some(uri))
            }
        }
    } else {
        // Keys serve only private_key_jwt here (no request objects, no encryption).
        (None, None)
    };

    let mut allowed = match requested_scopes {
        Some(list) => {
            for s in &list {
                if !scopes::SUPPORTED.contains(&s.as_str()) {
                    return Err(bad_metadata(format!(
                        "unknown scope `{s}`; known scopes: {}",
                        scopes::SUPPORTED.join(" ")
                    )));
                }
            }
            list
        }
        None if code_flow || ciba.is_some() => vec![
            scopes::OPENID.to_owned(),
            scopes::PROFILE.to_owned(),
            scopes::TELEGRAM.to_owned(),
        ],
        None => Vec::new(),
    };
    // Asking for offline_access is asking for refresh tokens.
    let refresh = (code_flow || ciba.is_some()) && (has(REFRESH_TOKEN) || wants_offline);
    if refresh && !allowed.iter().any(|s| s == scopes::OFFLINE_ACCESS) {
        allowed.push(scopes::OFFLINE_ACCESS.to_owned());
    }

    let id_token_alg = match meta.id_token_signed_response_alg.as_deref() {
        None => SigningAlg::RS256,
        Some(a) => SigningAlg::parse(a).ok_or_else(|| {
            bad_metadata(format!(
                "id_token_signed_response_alg `{a}` is not supported; use RS256, ES256 or EdDSA"
            ))
        })?,
    };
    let subject_type = match meta.subject_type.as_deref() {
        None | Some("public") => SubjectType::Public,
        Some("pairwise") => SubjectType::Pairwise,
        Some(other) => {
            return Err(bad_metadata(format!(
                "subject_type `{other}` is not supported; use public or pairwise"
            )));
        }
    };
    let sector_identifier = match &meta.sector_identifier_uri {
        Some(uri) => Some(check_sector_identifier(provider, uri, &redirect_uris).await?),
        None => None,
    };
    let name = meta
        .client_name
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| DEFAULT_CLIENT_NAME.to_owned());
    Ok(Registration {
        new: NewClient {
            name,
            kind,
            redirect_uris,
            scopes: allowed,
            id_token_alg,
            refresh_policy: if refresh {
                RefreshPolicy::OfflineAccess
            } else {
                RefreshPolicy::Never
            },
            skip_consent: false,
            service_account,
            subject_type,
            sector_identifier,
            post_logout_redirect_uris: meta.post_logout_redirect_uris.unwrap_or_default(),
            backchannel_logout_uri: meta.backchannel_logout_uri,
            jwks,
            jwks_uri,
            ciba,
            require_bot_confirmation: meta
                .default_acr_values
                .iter()
                .flatten()
                .any(|v| v == acr::ACR_BOT_CONFIRMED),
            ..NewClient::default()
        },
        method,
        sector_identifier_uri: meta.sector_identifier_uri,
    })
}

/// What a registration says of CIBA.
struct CibaMetadata<'a> {
    mode: Option<&'a str>,
    endpoint: Option<&'a str>,
    /// A signing algorithm for authentication requests was named.
    signing_alg: bool,
    /// `backchannel_user_code_parameter: true`.
    user_code: bool,
}

/// The CIBA metadata (CIBA Core 1.0 §4), present exactly when the CIBA grant is asked for.
/// The notification endpoint was checked as a URL the server will post to; it must also use
/// https, unless private addresses are allowed (dev mode, tests).
fn check_ciba_metadata(
    provider: &Provider,
    meta: CibaMetadata<'_>,
    wanted: bool,
) -> OAuthResult<Option<CibaSettings>> {
    let (mode, endpoint) = (meta.mode, meta.endpoint.map(str::to_owned));
    if !wanted {
        if mode.is_some() || endpoint.is_some() {
            return Err(bad_metadata(format!(
                "backchannel metadata needs the grant type {CIBA}"
            )));
        }
        return Ok(None);
    }
    if meta.signing_alg {
        return Err(bad_metadata(
            "signed backchannel authentication requests are not supported",
        ));
    }
    if meta.user_code {
        return Err(bad_metadata(
            "backchannel_user_code_parameter is not supported",
        ));
    }
    let delivery_mode = match mode {
        None => {
            return Err(bad_metadata(
                "backchannel_token_delivery_mode is required with the CIBA grant",
            ));
        }
        Some(m) => CibaDeliveryMode::parse(m).ok_or_else(|| {
            bad_metadata(format!(
                "backchannel_token_delivery_mode `{m}` is not supported; use poll or ping"
            ))
        })?,
    };
    if let Some(uri) = &endpoint {
        if uri.len() > MAX_URI_LEN {
            return Err(bad_metadata(
                "backchannel_client_notification_endpoint is too long",
            ));
        }
        let https = url::Url::parse(uri).is_ok_and(|u| u.scheme() == "https");
        if !https && !provider.outbound.allows_private() {
            return Err(bad_metadata(
                "backchannel_client_notification_endpoint must use https",
            ));
        }
    }
    Ok(Some(CibaSettings {
        delivery_mode,
        client_notification_endpoint: endpoint,
    }))
}

/// OpenID Connect Registration §5: the sector identifier document is a JSON array that must
/// list every redirect URI, so no client can borrow another's pairwise sector. The sector is
/// its host (Core §8.1).
async fn check_sector_identifier(
    provider: &Provider,
    uri: &str,
    redirect_uris: &[String],
) -> OAuthResult<String> {
    client_assertion::check_remote_url("sector_identifier_uri", uri).map_err(bad_metadata)?;
    let host = url::Url::parse(uri)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .ok_or_else(|| bad_metadata("sector_identifier_uri has no host"))?;
    let document = provider
        .outbound
        .get_json(uri, MAX_SECTOR_DOCUMENT_BYTES, Chosen::ByClient)
        .await
        .map_err(|e| bad_metadata(format!("sector_identifier_uri could not be read: {e}")))?;
    let listed: Vec<&str> = document
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if let Some(missing) = redirect_uris.iter().find(|u| !listed.contains(&u.as_str())) {
        return Err(bad_metadata(format!(
            "the sector_identifier_uri document does not list the redirect URI `{missing}`"
        )));
    }
    Ok(host)
}

/// RFC 7591 §3: only holders of the initial access token may register.
pub fn check_initial_access_token(provider: &Provider, presented: &str) -> OAuthResult<()> {
    let expected = provider.config.registration.initial_access_token.expose();
    // Both sides hashed: the comparison takes the same time whatever their lengths.
    if expected.is_empty()
        || !constant_time_eq(&sha256(presented.as_bytes()), &sha256(expected.as_bytes()))
    {
        return Err(OAuthError::invalid_token(
            "the initial access token is not valid",
        ));
    }
    Ok(())
}

/// RFC 7592 §2: the client the registration access token belongs to. An unknown client and a
/// wrong token look the same.
pub async fn registered_client(
    provider: &Provider,
    client_id: &str,
    presented: &str,
) -> OAuthResult<ClientRecord> {
    let denied = || OAuthError::invalid_token("the registration access token is not valid");
    if client_id.len() > 256 || client_id.chars().any(char::is_control) {
        return Err(denied());
    }
    let client = provider
        .store
        .get_client(client_id)
        .await?
        .ok_or_else(denied)?;
    let stored = client
        .settings
        .registration_token_hash
        .as_deref()
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(denied)?;
    if !constant_time_eq(&stored, &token_hash(presented)) {
        return Err(denied());
    }
    Ok(client)
}

fn admin_error(e: AdminError) -> OAuthError {
    match e {
        AdminError::Invalid(message) => bad_metadata(message),
        other => OAuthError::server_error(other),
    }
}

/// The effective authentication method of a client, stored or implied by its kind.
fn auth_method(client: &ClientRecord) -> TokenEndpointAuthMethod {
    match (
        client.settings.token_endpoint_auth_method,
        client.settings.kind,
    ) {
        (Some(m), _) => m,
        (None, ClientKind::Public) => TokenEndpointAuthMethod::None,
        (None, ClientKind::Confidential) => TokenEndpointAuthMethod::ClientSecretBasic,
    }
}

/// The client information response (RFC 7591 §3.2.1, RFC 7592 §3): the metadata as
/// registered, which may differ from what was asked.
pub fn client_information(
    provider: &Provider,
    client: &ClientRecord,
    secret: Option<&str>,
    registration_token: &str,
) -> Value {
    let s = &client.settings;
    let code_flow = !s.redirect_uris.is_empty();
    let mut grant_types = Vec::new();
    if code_flow {
        grant_types.push(AUTHORIZATION_CODE);
        if s.refresh_policy != RefreshPolicy::Never {
            grant_types.push(REFRESH_TOKEN);
        }
    }
    if s.service_account {
        grant_types.push(CLIENT_CREDENTIALS);
    }
    if s.ciba.is_some() {
        grant_types.push(CIBA);
        if !code_flow && s.refresh_policy != RefreshPolicy::Never {
            grant_types.push(REFRESH_TOKEN);
        }
    }
    let mut info: Map<String, Value> = match json!({
        "client_id": client.client_id,
        "client_id_issued_at": client.created_at,
        "client_name": s.name,
        "redirect_uris": s.redirect_uris,
        "grant_types": grant_types,
        "response_types": if code_flow { vec!["code"] } else { Vec::new() },
        "token_endpoint_auth_method": auth_method(client).as_str(),
        "scope": scopes::join(&s.allowed_scopes),
        "id_token_signed_response_alg": s.id_token_alg.as_str(),
        "subject_type": match s.subject_type {
            SubjectType::Public => "public",
            SubjectType::Pairwise => "pairwise",
        },
        "registration_access_token": registration_token,
        "registration_client_uri": provider.url(&format!("/register/{}", client.client_id)),
    }) {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    if let Some(secret) = secret {
        info.insert("client_secret".into(), json!(secret));
    }
    if client.secret_hash.is_some() {
        // §3.2.1: required with a secret; 0 = it does not expire.
        info.insert("client_secret_expires_at".into(), json!(0));
    }
    let optional = [
        ("jwks", s.jwks.clone()),
        ("jwks_uri", s.jwks_uri.clone().map(Value::from)),
        (
            "backchannel_logout_uri",
            s.backchannel_logout_uri.clone().map(Value::from),
        ),
        (
            "sector_identifier_uri",
            s.sector_identifier_uri.clone().map(Value::from),
        ),
        (
            "backchannel_token_delivery_mode",
            s.ciba.as_ref().map(|c| json!(c.delivery_mode.as_str())),
        ),
        (
            "backchannel_client_notification_endpoint",
            s.ciba
                .as_ref()
                .and_then(|c| c.client_notification_endpoint.clone())
                .map(Value::from),
        ),
        (
            "post_logout_redirect_uris",
            (!s.post_logout_redirect_uris.is_empty()).then(|| json!(s.post_logout_redirect_uris)),
        ),
        (
            "default_acr_values",
            s.require_bot_confirmation
                .then(|| json!([acr::ACR_BOT_CONFIRMED])),
        ),
    ];
    for (name, value) in optional {
        if let Some(value) = value {
            info.insert(name.into(), value);
        }
    }
    Value::Object(info)
}

fn kind_name(kind: ClientKind) -> &'static str {
    match kind {
        ClientKind::Public => "public",
        ClientKind::Confidential => "confidential",
    }
}

fn uses_secret(method: TokenEndpointAuthMethod) -> bool {
    matches!(
        method,
        TokenEndpointAuthMethod::ClientSecretBasic | TokenEndpointAuthMethod::ClientSecretPost
    )
}

/// Registers a client (RFC 7591 §3.2.1) whose caller holds the initial access token: the
/// client information response, with the secret and the registration access token shown once.
pub async fn register(provider: &Provider, meta: ClientMetadata, now: i64) -> OAuthResult<Value> {
    let registration = check_metadata(provider, meta).await?;
    let (mut client, secret) = admin::build_client(registration.new, now).map_err(admin_error)?;
    let registration_token = new_token(TokenKind::RegistrationAccessToken);
    client.settings.token_endpoint_auth_method = Some(registration.method);
    client.settings.sector_identifier_uri = registration.sector_identifier_uri;
    client.settings.registration_token_hash = Some(hex::encode(token_hash(&registration_token)));
    provider.store.create_client(&client).await?;
    tracing::info!(client_id = %client.client_id, method = registration.method.as_str(), "client registered");
    Ok(client_information(
        provider,
        &client,
        secret.as_deref(),
        &registration_token,
    ))
}

/// Replaces a registration as a whole (RFC 7592 §2.2). The secret stays unless the
/// authentication method stops or starts needing one. `token` is the registration access
/// token `old` was found by.
pub async fn update(
    provider: &Provider,
    old: ClientRecord,
    token: &str,
    meta: ClientMetadata,
) -> OAuthResult<Value> {
    if meta
        .client_id
        .as_deref()
        .is_some_and(|id| id != old.client_id)
    {
        return Err(bad_metadata("client_id must be this client's id"));
    }
    if let Some(presented) = &meta.client_secret {
        let matches = old
            .secret_hash
            .as_deref()
            .is_some_and(|stored| constant_time_eq(stored, &token_hash(presented)));
        if !matches {
            return Err(bad_metadata(
                "client_secret does not match the current secret; a client cannot choose its secret",
            ));
        }
    }
    let registration = check_metadata(provider, meta).await?;
    // A client cannot change its own type: a confidential client turning public would shed
    // the secret that guards its refresh tokens. The admin can still change it.
    let kind = match registration.method {
        TokenEndpointAuthMethod::None => ClientKind::Public,
        _ => ClientKind::Confidential,
    };
    if kind != old.settings.kind {
        return Err(bad_metadata(format!(
            "token_endpoint_auth_method `{}` would make this {} client {}; a registration cannot change its client type",
            registration.method.as_str(),
            kind_name(old.settings.kind),
            kind_name(kind),
        )));
    }
    let (mut client, new_secret) =
        admin::build_client(registration.new, old.created_at).map_err(admin_error)?;
    client.client_id = old.client_id.clone();
    let secret = if !uses_secret(registration.method) {
        client.secret_hash = None;
        None
    } else if old.secret_hash.is_some() && uses_secret(auth_method(&old)) {
        client.secret_hash = old.secret_hash.clone();
        None
    } else {
        new_secret
    };
    let s = &mut client.settings;
    s.token_endpoint_auth_method = Some(registration.method);
    s.sector_identifier_uri = registration.sector_identifier_uri;
    s.registration_token_hash = old.settings.registration_token_hash.clone();
    // What an admin set beyond the client's metadata stays as it was.
    s.access_token_format = old.settings.access_token_format;
    s.skip_consent = old.settings.skip_consent;
    s.token_exchange = old.settings.token_exchange.clone();
    s.synthetic_email = old.settings.synthetic_email;
    if !provider.store.update_client(&client).await? {
        return Err(OAuthError::invalid_token(
            "the registration access token is not valid",
        ));
    }
    tracing::info!(client_id = %client.client_id, "client registration replaced");
    Ok(client_information(
        provider,
        &client,
        secret.as_deref(),
        token,
    ))
}

/// Deletes a registration (RFC 7592 §2.3): the client, its grants and its tokens go.
pub async fn delete(provider: &Provider, client: &ClientRecord) -> OAuthResult<()> {
    provider.store.delete_client(&client.client_id).await?;
    tracing::info!(client_id = %client.client_id, "client registration deleted");
    Ok(())
}
