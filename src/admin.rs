//! Client administration: what `telegram-oidc client ...` does, as plain functions.

use crate::error::OAuthError;
use crate::keys::SigningAlg;
use crate::oidc::scopes;
use crate::secrets::{TokenKind, new_id, new_token, token_hash};
use crate::store::{
    AccessTokenFormat, ClientKind, ClientRecord, ClientSettings, RefreshPolicy, Store, StoreError,
};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("no client with id `{0}`")]
    NotFound(String),
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
    if new.name.trim().is_empty() || new.name.len() > 100 {
        return Err(AdminError::Invalid(
            "the name must be 1 to 100 characters".into(),
        ));
    }
    if new.redirect_uris.is_empty() && !new.service_account {
        return Err(AdminError::Invalid(
            "register at least one redirect URI".into(),
        ));
    }
    if new.service_account && new.kind != ClientKind::Confidential {
        return Err(AdminError::Invalid(
            "a service account must be confidential".into(),
        ));
    }
    for uri in &new.redirect_uris {
        check_redirect_uri(uri)?;
    }
    let mut allowed = Vec::new();
    for s in &new.scopes {
        // A service account may carry API scopes of its own (RFC 6749 §3.3 scope-token).
        let api_scope = new.service_account
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
    if !new.service_account && !allowed.iter().any(|s| s == scopes::OPENID) {
        allowed.insert(0, scopes::OPENID.to_owned());
    }
    let secret = (new.kind == ClientKind::Confidential).then(|| new_token(TokenKind::ClientSecret));
    let record = ClientRecord {
        client_id: new_id(),
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
        },
        created_at: now,
    };
    store.create_client(&record).await?;
    Ok((record, secret))
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
    let secret = new_token(TokenKind::ClientSecret);
    client.secret_hash = Some(token_hash(&secret));
    store.update_client(&client).await?;
    Ok(secret)
}
