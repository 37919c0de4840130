//! Who the user is to each app: the `sub` claim and the claims released with it.
//!
//! `public` subjects are the Telegram id. `pairwise` subjects (OpenID Connect Core §8.1) are an
//! HMAC of the sector and the Telegram id under a server secret: stable for one sector,
//! unlinkable across sectors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::oidc::{Provider, scopes};
use crate::secrets::hmac_sha256;
use crate::store::{ClientRecord, SubjectType, UserRecord};

/// The sector of a pairwise client: its registered sector identifier, else the host of its
/// first redirect URI (§8.1).
pub fn sector_of(client: &ClientRecord) -> String {
    if let Some(sector) = &client.settings.sector_identifier {
        return sector.clone();
    }
    client
        .settings
        .redirect_uris
        .first()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| client.client_id.clone())
}

pub fn subject_for(provider: &Provider, client: &ClientRecord, telegram_id: i64) -> String {
    match client.settings.subject_type {
        SubjectType::Public => telegram_id.to_string(),
        SubjectType::Pairwise => {
            let sector = sector_of(client);
            let mut message = Vec::with_capacity(sector.len() + 24);
            message.extend_from_slice(sector.as_bytes());
            message.push(0);
            message.extend_from_slice(telegram_id.to_string().as_bytes());
            URL_SAFE_NO_PAD.encode(hmac_sha256(provider.subject_secret(), &message))
        }
    }
}

/// `sub` plus the claims the scope releases to this client.
pub fn claims_for(
    provider: &Provider,
    client: &ClientRecord,
    scope: &str,
    user: &UserRecord,
) -> Map<String, Value> {
    let sub = subject_for(provider, client, user.telegram_id);
    let mut claims = scopes::user_claims(scope, user);
    // Apps that insist on an email (Grafana, oauth2-proxy) get a synthetic, unverified one
    // when their registration asks for it.
    if client.settings.synthetic_email && scopes::contains(scope, scopes::EMAIL) {
        claims.insert(
            "email".into(),
            json!(format!("{sub}@{}", provider.config.email_domain)),
        );
        claims.insert("email_verified".into(), json!(false));
    }
    claims.insert("sub".into(), json!(sub));
    claims
}
