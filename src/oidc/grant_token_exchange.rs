//! Token exchange (RFC 8693) for Mini Apps and native apps: Telegram login data the app holds
//! (a Mini App's `initData`, or Login Widget fields from a WebView) is the subject token, and
//! the answer is what the client is registered for: access token, ID token, refresh token.
//!
//! Only clients registered for it may exchange (`token_exchange` in their settings). Such a
//! client is the user's own app inside Telegram, so the exchange implies consent to the scopes
//! the client is registered for; no consent page can be shown without a browser anyway.

use serde_json::{Value, json};

use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::oidc::{Provider, mint, scopes};
use crate::secrets::new_id;
use crate::store::{ClientRecord, GrantRecord, TokenExchangeSettings, UserRecord};

pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// A Mini App's `Telegram.WebApp.initData`, exactly as the Mini App received it.
pub const INIT_DATA_TOKEN_TYPE: &str = "urn:telegram-oidc:params:token-type:telegram-init-data";
/// Login Widget fields (`id`, `first_name`, ..., `auth_date`, `hash`) as one URL-encoded query
/// string, from an app that ran the widget in a WebView.
pub const LOGIN_WIDGET_TOKEN_TYPE: &str =
    "urn:telegram-oidc:params:token-type:telegram-login-widget";
/// RFC 8693 §3.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    AccessToken,
    IdToken,
}

/// The parameters of a token exchange request (RFC 8693 §2.1) as sent, each `None` when
/// omitted; [`parse`] checks them against the client. No `Debug`: the subject token is a
/// credential.
#[derive(Default)]
pub struct TokenExchangeParams {
    pub subject_token: Option<String>,
    pub subject_token_type: Option<String>,
    pub actor_token: Option<String>,
    pub actor_token_type: Option<String>,
    pub audience: Option<String>,
    pub resource: Option<String>,
    pub requested_token_type: Option<String>,
    pub scope: Option<String>,
}

/// A token exchange request, checked except for its subject token (which the login adapters
/// verify, and the gate admits).
#[derive(Debug)]
pub struct TokenExchangeRequest<'a> {
    pub settings: &'a TokenExchangeSettings,
    pub subject_token: &'a str,
    pub subject_token_type: &'a str,
    requested: Requested,
    scope: String,
}

/// Checks everything of a token exchange but the subject token (RFC 8693 §2.1).
pub fn parse<'a>(
    client: &'a ClientRecord,
    params: &'a TokenExchangeParams,
) -> OAuthResult<TokenExchangeRequest<'a>> {
    let Some(settings) = &client.settings.token_exchange else {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for token exchange",
        ));
    };
    let subject_token = params
        .subject_token
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
    let subject_token_type = params
        .subject_token_type
        .as_deref()
        .ok_or_else(|| OAuthError::invalid_request("subject_token_type is missing"))?;
    if params.actor_token.is_some() || params.actor_token_type.is_some() {
        return Err(OAuthError::invalid_request(
            "delegation (actor_token) is not supported",
        ));
    }
    // The tokens are only ever for the client itself (RFC 8693 §2.2.2).
    if params
        .audience
        .as_deref()
        .is_some_and(|a| a != client.client_id)
        || params.resource.is_some()
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "tokens are issued only for the requesting client itself",
        ));
    }
    let requested = match params.requested_token_type.as_deref() {
        None | Some(ACCESS_TOKEN_TYPE) => Requested::AccessToken,
        Some(ID_TOKEN_TYPE) => Requested::IdToken,
        Some(_) => {
            return Err(OAuthError::invalid_request(format!(
                "requested_token_type must be {ACCESS_TOKEN_TYPE} or {ID_TOKEN_TYPE}"
            )));
        }
    };
    let scope = granted_scope(client, params.scope.as_deref())?;
    if requested == Requested::IdToken && !scopes::contains(&scope, scopes::OPENID) {
        return Err(OAuthError::invalid_scope(
            "an ID token needs the openid scope",
        ));
    }
    Ok(TokenExchangeRequest {
        settings,
        subject_token,
        subject_token_type,
        requested,
        scope,
    })
}

/// The answer to an exchange whose subject the gate let in: what the client asked for, for
/// `user`, proven by `amr` at `auth_time`.
pub async fn issue(
    provider: &Provider,
    client: &ClientRecord,
    request: TokenExchangeRequest<'_>,
    user: &UserRecord,
    amr: &str,
    auth_time: i64,
    now: i64,
) -> OAuthResult<Value> {
    let scope = request.scope;
    let tokens = &provider.config.tokens;
    let grant = GrantRecord {
        id: new_id(),
        client_id: client.client_id.clone(),
        user_id: Some(user.telegram_id),
        scope: scope.clone(),
        auth_time,
        amr: amr.to_owned(),
        nonce: None,
        created_at: now,
        revoked_at: None,
        expires_at: now + tokens.access_token_ttl_secs.max(tokens.id_token_ttl_secs),
        session_hash: None,
    };
    if request.requested == Requested::IdToken {
        let id_token = mint::id_token(
            provider,
            mint::IdTokenInput {
                client,
                grant: &grant,
                user,
                scope: &scope,
                access_token: "",
                include_nonce: false,
                now,
            },
        )?;
        // RFC 8693 §2.2.1: a token that is not an access token has the token_type N_A.
        return Ok(json!({
            "access_token": id_token,
            "issued_token_type": ID_TOKEN_TYPE,
            "token_type": "N_A",
            "expires_in": tokens.id_token_ttl_secs,
            "scope": scope,
        }));
    }
    // The grant is stored with its tokens, in one write.
    let mut body = mint::issue_for_new_grant(provider, client, &grant, user, now).await?;
    body["issued_token_type"] = json!(ACCESS_TOKEN_TYPE);
    Ok(body)
}

/// The asked scopes, all of which the client must be allowed; without `scope`, every scope the
/// client is registered for.
fn granted_scope(client: &ClientRecord, asked: Option<&str>) -> OAuthResult<String> {
    let allowed: Vec<String> = client
        .settings
        .allowed_scopes
        .iter()
        .filter(|s| scopes::SUPPORTED.contains(&s.as_str()))
        .cloned()
        .collect();
    let Some(asked) = asked else {
        return Ok(scopes::join(&allowed));
    };
    let asked = scopes::parse(asked);
    if let Some(bad) = asked.iter().find(|s| !allowed.contains(s)) {
        return Err(OAuthError::invalid_scope(format!(
            "the scope {bad} is not available to this client"
        )));
    }
    if asked.is_empty() {
        return Err(OAuthError::invalid_scope("the scope is empty"));
    }
    Ok(scopes::join(&asked))
}
