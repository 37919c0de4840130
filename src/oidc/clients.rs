//! What a registered client is made of, and the rules it must meet: shared by the CLI, the admin
//! API and dynamic registration (RFC 7591).

use crate::error::OAuthError;
use crate::keys::SigningAlg;
use crate::oidc::{client_assertion, scopes};
use crate::outbound::Chosen;
use crate::secrets::{TokenKind, new_id, new_token, token_hash};
use crate::store::{
    AccessTokenFormat, CibaDeliveryMode, CibaSettings, ClientKind, ClientRecord, ClientSettings,
    RefreshPolicy, Store, StoreError, SubjectType, TokenEndpointAuthMethod,
};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("no client with id `{0}`")]
    NotFound(String),
    #[error("no admin key with id `{0}`")]
    NoAdminKey(String),
    #[error("no user with id {0}")]
    NoUser(i64),
    #[error("no live session `{0}` of this user")]
    NoSession(String),
    /// `If-Match` named another version than the stored one (which this holds).
    #[error("the client was changed since it was read (its version is now {0})")]
    VersionMismatch(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<AdminError> for OAuthError {
    fn from(e: AdminError) -> Self {
        OAuthError::server_error(e)
    }
}

pub struct NewClient {
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub scopes: Vec<String>,
    pub id_token_alg: SigningAlg,
    pub access_token_format: AccessTokenFormat,
    pub refresh_policy: RefreshPolicy,
    pub skip_consent: bool,
    /// A service account (client credentials grant); needs no redirect URI.
    pub service_account: bool,
    pub subject_type: SubjectType,
    pub sector_identifier: Option<String>,
    pub synthetic_email: bool,
    pub post_logout_redirect_uris: Vec<String>,
    pub backchannel_logout_uri: Option<String>,
    /// The client's public keys (a JWK set) for `private_key_jwt`; it then gets no secret.
    pub jwks: Option<serde_json::Value>,
    /// Where the client publishes its JWK set, for `private_key_jwt`.
    pub jwks_uri: Option<String>,
    /// May use the device authorization grant.
    pub device_flow: bool,
    /// Who may log in to the app; `None`: every Telegram user.
    pub access_policy: Option<crate::access::Rule>,
    /// Every login is also confirmed in the bot chat (step-up).
    pub require_bot_confirmation: bool,
    /// May start backchannel authentication (CIBA); needs no redirect URI.
    pub ciba: Option<CibaSettings>,
}

impl Default for NewClient {
    fn default() -> Self {
        NewClient {
            name: String::new(),
            kind: ClientKind::Confidential,
            redirect_uris: Vec::new(),
            scopes: vec![scopes::OPENID.to_owned()],
            id_token_alg: SigningAlg::RS256,
            access_token_format: AccessTokenFormat::Jwt,
            refresh_policy: RefreshPolicy::OfflineAccess,
            skip_consent: false,
            service_account: false,
            subject_type: SubjectType::Public,
            sector_identifier: None,
            synthetic_email: false,
            post_logout_redirect_uris: Vec::new(),
            backchannel_logout_uri: None,
            jwks: None,
            jwks_uri: None,
            device_flow: false,
            access_policy: None,
            require_bot_confirmation: false,
            ciba: None,
        }
    }
}

/// Checks a redirect URI an admin registers: absolute, no fragment (RFC 6749 §3.1.2), https
/// unless it is a loopback address or a private-use scheme of a native app (RFC 8252 §7.1).
pub fn check_redirect_uri(uri: &str) -> Result<(), AdminError> {
    let parsed = url::Url::parse(uri).map_err(|e| {
        AdminError::Invalid(format!("redirect URI `{uri}` is not an absolute URL: {e}"))
    })?;
    if parsed.fragment().is_some() {
        return Err(AdminError::Invalid(format!(
            "redirect URI `{uri}` must not have a #fragment"
        )));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if crate::config::is_loopback_url(&parsed) => Ok(()),
        "http" => Err(AdminError::Invalid(format!(
            "redirect URI `{uri}` must use https (http only on loopback addresses)"
        ))),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(AdminError::Invalid(format!(
            "redirect URI `{uri}`: use https, http on loopback, or a reverse-domain private scheme such as com.example.app:/callback"
        ))),
    }
}

/// Registers a client. Returns the record and, for a confidential client, the secret, which
/// is shown this once and stored only as a hash.
pub async fn add_client(
    store: &dyn Store,
    new: NewClient,
    now: i64,
) -> Result<(ClientRecord, Option<String>), AdminError> {
    let (record, secret) = build_client(new, now)?;
    store.create_client(&record).await?;
    Ok((record, secret))
}

/// Checks a new client and makes its record, with a new id and (for a confidential client
/// without keys) a new secret, without storing it.
pub fn build_client(
    new: NewClient,
    now: i64,
) -> Result<(ClientRecord, Option<String>), AdminError> {
    if new.name.trim().is_empty() || new.name.len() > 100 {
        return Err(AdminError::Invalid(
            "the name must be 1 to 100 characters".into(),
        ));
    }
    if new.redirect_uris.is_empty() && !new.service_account && new.ciba.is_none() {
        return Err(AdminError::Invalid(
            "register at least one redirect URI".into(),
        ));
    }
    if let Some(ciba) = &new.ciba {
        check_ciba(ciba, new.kind)?;
    }
    if new.service_account && new.kind != ClientKind::Confidential {
        return Err(AdminError::Invalid(
            "a service account must be confidential".into(),
        ));
    }
    for uri in new
        .redirect_uris
        .iter()
        .chain(&new.post_logout_redirect_uris)
    {
        check_redirect_uri(uri)?;
    }
    if let Some(uri) = &new.backchannel_logout_uri {
        check_redirect_uri(uri)?;
    }
    let allowed = allowed_scopes(&new.scopes, new.service_account)?;
    if let Some(rule) = &new.access_policy {
        rule.check().map_err(AdminError::Invalid)?;
    }
    let private_key_jwt = new.jwks.is_some() || new.jwks_uri.is_some();
    if private_key_jwt {
        if new.kind != ClientKind::Confidential {
            return Err(AdminError::Invalid(
                "a client with keys is confidential; drop --public".into(),
            ));
        }
        match (&new.jwks, &new.jwks_uri) {
            (Some(_), Some(_)) => {
                return Err(AdminError::Invalid(
                    "give the keys inline (jwks) or by URL (jwks_uri), not both".into(),
                ));
            }
            (Some(jwks), None) => {
                client_assertion::check_jwks(jwks).map_err(AdminError::Invalid)?
            }
            (None, Some(uri)) => {
                client_assertion::check_jwks_uri(uri).map_err(AdminError::Invalid)?
            }
            (None, None) => {}
        }
    }
    let secret = (new.kind == ClientKind::Confidential && !private_key_jwt)
        .then(|| new_token(TokenKind::ClientSecret));
    let record = ClientRecord {
        client_id: new_client_id(),
        secret_hash: secret.as_deref().map(token_hash),
        settings: ClientSettings {
            name: new.name.trim().to_owned(),
            kind: new.kind,
            redirect_uris: new.redirect_uris,
            allowed_scopes: allowed,
            id_token_alg: new.id_token_alg,
            access_token_format: new.access_token_format,
            refresh_policy: new.refresh_policy,
            skip_consent: new.skip_consent,
            service_account: new.service_account,
            token_exchange: None,
            subject_type: new.subject_type,
            sector_identifier: new.sector_identifier,
            synthetic_email: new.synthetic_email,
            post_logout_redirect_uris: new.post_logout_redirect_uris,
            backchannel_logout_uri: new.backchannel_logout_uri,
            token_endpoint_auth_method: private_key_jwt
                .then_some(TokenEndpointAuthMethod::PrivateKeyJwt),
            jwks: new.jwks,
            jwks_uri: new.jwks_uri,
            registration_token_hash: None,
            sector_identifier_uri: None,
            device_flow: new.device_flow,
            access_policy: new.access_policy,
            require_bot_confirmation: new.require_bot_confirmation,
            ciba: new.ciba,
        },
        created_at: now,
    };
    Ok((record, secret))
}

/// A CIBA registration (CIBA Core 1.0 §4): ping mode names where it is told, over https
/// (http only on loopback), poll mode names nothing; the client must authenticate, since the
/// request is made without the user (§7.1).
pub fn check_ciba(ciba: &CibaSettings, kind: ClientKind) -> Result<(), AdminError> {
    if kind != ClientKind::Confidential {
        return Err(AdminError::Invalid(
            "backchannel authentication (CIBA) needs a confidential client".into(),
        ));
    }
    match (ciba.delivery_mode, &ciba.client_notification_endpoint) {
        (CibaDeliveryMode::Ping, None) => Err(AdminError::Invalid(
            "CIBA ping mode needs a client notification endpoint".into(),
        )),
        (CibaDeliveryMode::Poll, Some(_)) => Err(AdminError::Invalid(
            "a client notification endpoint serves only CIBA ping mode".into(),
        )),
        (CibaDeliveryMode::Ping, Some(uri)) => {
            let parsed = url::Url::parse(uri).map_err(|e| {
                AdminError::Invalid(format!(
                    "client notification endpoint `{uri}` is not an absolute URL: {e}"
                ))
            })?;
            let loopback_http =
                parsed.scheme() == "http" && crate::config::is_loopback_url(&parsed);
            if (parsed.scheme() != "https" && !loopback_http) || parsed.fragment().is_some() {
                return Err(AdminError::Invalid(format!(
                    "client notification endpoint `{uri}` must be an https URL without a #fragment (http only on loopback)"
                )));
            }
            Ok(())
        }
        (CibaDeliveryMode::Poll, None) => Ok(()),
    }
}

/// The scopes a client may be registered with: known ones (a service account may carry API
/// scopes of its own), without repeats, `openid` first for a user-facing app.
fn allowed_scopes(scopes: &[String], service_account: bool) -> Result<Vec<String>, AdminError> {
    let mut allowed = Vec::new();
    for s in scopes {
        // A service account may carry API scopes of its own (RFC 6749 §3.3 scope-token).
        let api_scope = service_account
            && !s.is_empty()
            && s.bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !api_scope && !scopes::SUPPORTED.contains(&s.as_str()) {
            return Err(AdminError::Invalid(format!(
                "unknown scope `{s}`; known scopes: {}",
                scopes::SUPPORTED.join(", ")
            )));
        }
        if !allowed.contains(s) {
            allowed.push(s.clone());
        }
    }
    if !service_account && !allowed.iter().any(|s| s == scopes::OPENID) {
        allowed.insert(0, scopes::OPENID.to_owned());
    }
    Ok(allowed)
}

/// What `client update` changes; `None` leaves a setting as it is.
#[derive(Debug, Default)]
pub struct ClientUpdate {
    /// `Some(None)` removes the policy: every Telegram user may log in again.
    pub access_policy: Option<Option<crate::access::Rule>>,
    pub scopes: Option<Vec<String>>,
    /// Whether every login must also be confirmed in the bot chat.
    pub require_bot_confirmation: Option<bool>,
    /// The name shown on the login and consent pages.
    pub name: Option<String>,
    /// The exact redirect URIs (replacing the registered ones).
    pub redirect_uris: Option<Vec<String>>,
    pub skip_consent: Option<bool>,
}

/// Changes a registered client's access policy or scopes; effective at the next login or
/// refresh.
pub async fn update_client(
    store: &dyn Store,
    client_id: &str,
    update: ClientUpdate,
) -> Result<ClientRecord, AdminError> {
    let mut client = store
        .get_client(client_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(client_id.into()))?;
    apply_update(&mut client, update)?;
    if !store.update_client(&client).await? {
        return Err(AdminError::NotFound(client_id.into()));
    }
    Ok(client)
}

/// Applies `update` to a client's settings, checking what it sets.
pub fn apply_update(client: &mut ClientRecord, update: ClientUpdate) -> Result<(), AdminError> {
    if let Some(policy) = update.access_policy {
        if let Some(rule) = &policy {
            rule.check().map_err(AdminError::Invalid)?;
        }
        client.settings.access_policy = policy;
    }
    if let Some(scopes) = update.scopes {
        client.settings.allowed_scopes = allowed_scopes(&scopes, client.settings.service_account)?;
    }
    if let Some(required) = update.require_bot_confirmation {
        client.settings.require_bot_confirmation = required;
    }
    if let Some(name) = update.name {
        let name = name.trim();
        if name.is_empty() || name.len() > 100 {
            return Err(AdminError::Invalid(
                "the name must be 1 to 100 characters".into(),
            ));
        }
        client.settings.name = name.to_owned();
    }
    if let Some(uris) = update.redirect_uris {
        let s = &client.settings;
        if uris.is_empty() && !s.service_account && s.ciba.is_none() {
            return Err(AdminError::Invalid("keep at least one redirect URI".into()));
        }
        if uris.len() > 50 {
            return Err(AdminError::Invalid("at most 50 redirect URIs".into()));
        }
        for uri in &uris {
            check_redirect_uri(uri)?;
        }
        client.settings.redirect_uris = uris;
    }
    if let Some(skip) = update.skip_consent {
        client.settings.skip_consent = skip;
    }
    Ok(())
}

/// Replaces a confidential client's secret; the old one stops working at once.
pub async fn rotate_secret(store: &dyn Store, client_id: &str) -> Result<String, AdminError> {
    let mut client = store
        .get_client(client_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(client_id.into()))?;
    if client.settings.kind != ClientKind::Confidential {
        return Err(AdminError::Invalid("a public client has no secret".into()));
    }
    if client.settings.uses_private_key_jwt() {
        return Err(AdminError::Invalid(
            "this client authenticates with its keys (private_key_jwt), not a secret".into(),
        ));
    }
    let secret = new_token(TokenKind::ClientSecret);
    client.secret_hash = Some(token_hash(&secret));
    store.update_client(&client).await?;
    Ok(secret)
}

/// Lets a client trade Telegram login data for tokens (RFC 8693). With `telegram_bot_id`, the
/// client is another bot's Mini App and its initData is checked with Telegram's Ed25519 key.
pub async fn allow_token_exchange(
    store: &dyn Store,
    client_id: &str,
    telegram_bot_id: Option<i64>,
) -> Result<ClientRecord, AdminError> {
    if telegram_bot_id.is_some_and(|id| id <= 0) {
        return Err(AdminError::Invalid(
            "a bot id is the positive number before `:` in its token".into(),
        ));
    }
    let mut client = store
        .get_client(client_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(client_id.into()))?;
    client.settings.token_exchange = Some(crate::store::TokenExchangeSettings { telegram_bot_id });
    store.update_client(&client).await?;
    Ok(client)
}

/// A client id never starts with `-`, which a command line would take for an option
/// (`client rotate-secret -w...`); one id in 64 would.
fn new_client_id() -> String {
    loop {
        let id = new_id();
        if !id.starts_with('-') {
            return id;
        }
    }
}

/// Who chose the URLs a client registered: the admin (command line, admin API) or the app
/// itself through dynamic registration, whose URLs the server must not follow inward.
pub fn chosen_by(client: &ClientRecord) -> Chosen {
    if client.settings.registration_token_hash.is_some() {
        Chosen::ByClient
    } else {
        Chosen::ByAdmin
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn client_ids_never_look_like_options() {
        // One random id in 64 starts with `-`; of 2,000, some would.
        assert!((0..2000).all(|_| !super::new_client_id().starts_with('-')));
    }
}
