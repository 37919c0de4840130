//! Token exchange (RFC 8693) for Mini Apps and native apps: Telegram login data the app holds
//! (a Mini App's `initData`, or Login Widget fields from a WebView) is the subject token, and
//! the answer is what the client is registered for: access token, ID token, refresh token.
//!
//! Only clients registered for it may exchange (`token_exchange` in their settings). Such a
//! client is the user's own app inside Telegram, so the exchange implies consent to the scopes
//! the client is registered for; no consent page can be shown without a browser anyway.

use serde_json::{Value, json};

use crate::app::App;
use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::oidc::client_auth::param;
use crate::oidc::{mint, scopes};
use crate::secrets::{new_id, sha256};
use crate::store::{ClientRecord, GrantRecord, TokenExchangeSettings};
use crate::telegram::widget::{self, Freshness};
use crate::telegram::{TelegramIdentity, webapp};

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

/// Widget data is a few hundred bytes; initData has its own limit in `webapp`.
const MAX_WIDGET_DATA_LEN: usize = 4096;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Requested {
    AccessToken,
    IdToken,
}

pub async fn exchange(
    app: &App,
    client: &ClientRecord,
    params: &[(String, String)],
    now: i64,
) -> OAuthResult<Value> {
    let Some(settings) = &client.settings.token_exchange else {
        return Err(OAuthError::new(
            ErrorCode::UnauthorizedClient,
            "this client is not registered for token exchange",
        ));
    };
    let subject_token = param(params, "subject_token")
        .ok_or_else(|| OAuthError::invalid_request("subject_token is missing"))?;
    let subject_token_type = param(params, "subject_token_type")
        .ok_or_else(|| OAuthError::invalid_request("subject_token_type is missing"))?;
    if param(params, "actor_token").is_some() || param(params, "actor_token_type").is_some() {
        return Err(OAuthError::invalid_request(
            "delegation (actor_token) is not supported",
        ));
    }
    // The tokens are only ever for the client itself (RFC 8693 §2.2.2).
    if param(params, "audience").is_some_and(|a| a != client.client_id)
        || param(params, "resource").is_some()
    {
        return Err(OAuthError::new(
            ErrorCode::InvalidTarget,
            "tokens are issued only for the requesting client itself",
        ));
    }
    let requested = match param(params, "requested_token_type") {
        None | Some(ACCESS_TOKEN_TYPE) => Requested::AccessToken,
        Some(ID_TOKEN_TYPE) => Requested::IdToken,
        Some(_) => {
            return Err(OAuthError::invalid_request(format!(
                "requested_token_type must be {ACCESS_TOKEN_TYPE} or {ID_TOKEN_TYPE}"
            )));
        }
    };
    let scope = granted_scope(client, param(params, "scope"))?;
    if requested == Requested::IdToken && !scopes::contains(&scope, scopes::OPENID) {
        return Err(OAuthError::invalid_scope(
            "an ID token needs the openid scope",
        ));
    }
    let (identity, proof) = verify_subject(app, settings, subject_token, subject_token_type, now)?;
    let t = &app.config.telegram;
    // Remembered until it could no longer pass the freshness check anyway.
    let remember_until = identity.proven_at + t.auth_date_window_secs + t.clock_skew_secs + 1;
    if !app.store.consume_proof(&proof, remember_until).await? {
        return Err(OAuthError::invalid_request(
            "the subject_token was already used",
        ));
    }
    crate::web::login::save_user(app, &identity).await?;
    let user = app
        .store
        .get_user(identity.id)
        .await?
        .ok_or_else(|| OAuthError::server_error("the user just saved is missing"))?;
    let tokens = &app.config.tokens;
    let grant = GrantRecord {
        id: new_id(),
        client_id: client.client_id.clone(),
        user_id: Some(identity.id),
        scope: scope.clone(),
        auth_time: identity.proven_at,
        amr: identity.method.amr().to_owned(),
        nonce: None,
        created_at: now,
        revoked_at: None,
        expires_at: now + tokens.access_token_ttl_secs.max(tokens.id_token_ttl_secs),
    };
    let id_token_input = |access_token| mint::IdTokenInput {
        client,
        grant: &grant,
        user: &user,
        scope: &scope,
        access_token,
        include_nonce: false,
        now,
    };
    if requested == Requested::IdToken {
        let id_token = mint::id_token(app, id_token_input(""))?;
        // RFC 8693 §2.2.1: a token that is not an access token has the token_type N_A.
        return Ok(json!({
            "access_token": id_token,
            "issued_token_type": ID_TOKEN_TYPE,
            "token_type": "N_A",
            "expires_in": tokens.id_token_ttl_secs,
            "scope": scope,
        }));
    }
    app.store.create_grant(&grant).await?;
    let access = mint::access_token(app, client, &grant, &scope, now)?;
    let id_token = if scopes::contains(&scope, scopes::OPENID) {
        Some(mint::id_token(app, id_token_input(&access.token))?)
    } else {
        None
    };
    let refresh =
        mint::wants_refresh(client, &scope).then(|| mint::refresh_token(app, &grant.id, now));
    app.store
        .store_tokens(Some(&access.record), refresh.as_ref().map(|(_, r)| r))
        .await?;
    let mut body = mint::token_response(
        app,
        &access.token,
        &scope,
        id_token,
        refresh.map(|(t, _)| t),
    );
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

/// Checks the subject token and returns the identity and the key under which its single use is
/// recorded. RFC 8693 §2.2.2: an unsupported, invalid or unacceptable subject token is
/// `invalid_request`.
fn verify_subject(
    app: &App,
    settings: &TokenExchangeSettings,
    subject_token: &str,
    subject_token_type: &str,
    now: i64,
) -> OAuthResult<(TelegramIdentity, Vec<u8>)> {
    let t = &app.config.telegram;
    let freshness = Freshness {
        window_secs: t.auth_date_window_secs,
        skew_secs: t.clock_skew_secs,
    };
    let refused = |reason: &dyn std::fmt::Display| {
        tracing::info!(reason = %reason, subject_token_type, "refused a token exchange");
        OAuthError::invalid_request(format!("the subject_token is not acceptable: {reason}"))
    };
    match subject_token_type {
        INIT_DATA_TOKEN_TYPE => {
            let (identity, raw) = match settings.telegram_bot_id {
                Some(bot_id) => {
                    let key = t.init_data_public_key().ok_or_else(|| {
                        OAuthError::server_error("the Mini App public key is not configured")
                    })?;
                    let (identity, signature) =
                        webapp::verify_with_signature(subject_token, bot_id, &key, now, freshness)
                            .map_err(|e| refused(&e))?;
                    (
                        identity,
                        [b"initdata-signature:".as_slice(), &signature].concat(),
                    )
                }
                None => {
                    let (identity, hash) = webapp::verify_with_token(
                        subject_token,
                        t.bot_token.expose(),
                        now,
                        freshness,
                    )
                    .map_err(|e| refused(&e))?;
                    (identity, hash)
                }
            };
            Ok((identity, sha256(&raw)))
        }
        LOGIN_WIDGET_TOKEN_TYPE => {
            if subject_token.len() > MAX_WIDGET_DATA_LEN {
                return Err(refused(&"it is too long"));
            }
            let fields = crate::web::parse_params(subject_token)
                .map_err(|_| refused(&"it is not a valid URL-encoded string"))?;
            let (identity, hash) = widget::verify(&fields, t.bot_token.expose(), now, freshness)
                .map_err(|e| refused(&e))?;
            // The same key as the browser login's, so one widget login is used once in all.
            Ok((identity, sha256(&hash)))
        }
        _ => Err(OAuthError::invalid_request(format!(
            "unsupported subject_token_type; use {INIT_DATA_TOKEN_TYPE} or {LOGIN_WIDGET_TOKEN_TYPE}"
        ))),
    }
}
