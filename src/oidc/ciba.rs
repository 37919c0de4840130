//! Client-Initiated Backchannel Authentication (CIBA Core 1.0): an app asks, without a
//! browser, that a known user be authenticated; the user answers on their authentication
//! device, which here is their chat with the bot. This module checks the backchannel
//! authentication request (§7.1) and stores it; asking the user is `flow::ciba`, the app's
//! polling is [`grant_ciba`](super::grant_ciba).

use serde_json::{Value, json};

use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::oidc::authorize::check_id_token_hint;
use crate::oidc::{Provider, scopes, subject};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::secrets::{
    TokenKind, constant_time_eq, hmac_sha256, new_token, random_bytes, token_hash,
};
use crate::store::flows::{CibaRequestRecord, CibaStatus};
use crate::store::{CibaDeliveryMode, ClientRecord, SubjectType};

pub const PATH: &str = "/bc-authorize";

/// A binding message is shown on the consumption device and in the chat (§7.1: "relatively
/// short"): at most this many characters.
pub const MAX_BINDING_MESSAGE_CHARS: usize = 64;
/// The longest `client_notification_token` accepted (§7.1 asks for at least 128 bits).
pub const MAX_NOTIFICATION_TOKEN_LEN: usize = 1024;
/// The longest `login_hint` looked up.
const MAX_LOGIN_HINT_LEN: usize = 64;
/// The longest ID token taken as a hint.
const MAX_ID_TOKEN_HINT_LEN: usize = 8192;
/// The most users a pairwise `sub` is matched against when the hint carries no `telegram_id`.
const MAX_PAIRWISE_CANDIDATES: i64 = 100_000;

/// The parameters of a backchannel authentication request (§7.1) as sent, read once from the
/// form. No `Debug`: it holds the client's notification token.
#[derive(Default)]
pub struct BackchannelRequest {
    pub scope: Option<String>,
    pub login_hint: Option<String>,
    pub login_hint_token: Option<String>,
    pub id_token_hint: Option<String>,
    pub binding_message: Option<String>,
    pub requested_expiry: Option<String>,
    pub user_code: Option<String>,
    pub client_notification_token: Option<String>,
    /// A signed authentication request (§7.1.1): not served.
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

/// A request that passed the checks: who is asked, for what, for how long.
pub struct Accepted {
    pub user_id: i64,
    pub scope: String,
    pub binding_message: Option<String>,
    pub expires_in: i64,
    pub notification_token: Option<String>,
}

/// The one answer for a hint that names nobody this server can ask, whichever the reason
/// (unknown, never started the bot, blocked it): the caller learns nothing more (§13).
pub fn unknown_user() -> OAuthError {
    OAuthError::new(
        ErrorCode::UnknownUserId,
        "the hint does not name a user who can be asked",
    )
}

/// Checks the request against §7.1 and this client's registration, and finds the user the
/// hint names. The client is authenticated and registered for CIBA already.
pub async fn check(
    provider: &Provider,
    client: &ClientRecord,
    request: &BackchannelRequest,
    now: i64,
) -> OAuthResult<Accepted> {
    let Some(ciba) = &client.settings.ciba else {
        return Err(unauthorized());
    };
    if request.request.is_some() || request.request_uri.is_some() {
        return Err(OAuthError::invalid_request(
            "signed authentication requests (request, request_uri) are not supported",
        ));
    }
    let asked = scopes::parse(request.scope.as_deref().unwrap_or(""));
    if !asked.iter().any(|s| s == scopes::OPENID) {
        return Err(OAuthError::invalid_request(
            "scope is required and must include openid",
        ));
    }
    let granted: Vec<String> = asked
        .into_iter()
        .filter(|s| scopes::SUPPORTED.contains(&s.as_str()))
        .filter(|s| client.settings.allowed_scopes.iter().any(|a| a == s))
        .collect();
    if !granted.iter().any(|s| s == scopes::OPENID) {
        return Err(OAuthError::invalid_scope(
            "the openid scope is not available to this app",
        ));
    }
    let hints = [
        request.login_hint.is_some(),
        request.id_token_hint.is_some(),
        request.login_hint_token.is_some(),
    ];
    match hints.iter().filter(|h| **h).count() {
        0 => {
            return Err(OAuthError::invalid_request(
                "name the user with login_hint or id_token_hint",
            ));
        }
        1 => {}
        _ => {
            return Err(OAuthError::invalid_request(
                "send exactly one of login_hint, id_token_hint and login_hint_token",
            ));
        }
    }
    if request.login_hint_token.is_some() {
        return Err(OAuthError::invalid_request(
            "login_hint_token is not supported; use login_hint or id_token_hint",
        ));
    }
    if request.user_code.is_some() {
        // backchannel_user_code_parameter_supported is false (§4).
        return Err(OAuthError::invalid_request("user_code is not supported"));
    }
    let binding_message = match &request.binding_message {
        Some(message) => Some(check_binding_message(message)?),
        None => None,
    };
    let limits = &provider.config.ciba;
    let expires_in = match &request.requested_expiry {
        None => limits.default_expiry_secs,
        Some(text) => parse_expiry(text)?.min(limits.max_expiry_secs),
    };
    let notification_token = match ciba.delivery_mode {
        CibaDeliveryMode::Ping => {
            let token = request
                .client_notification_token
                .as_deref()
                .ok_or_else(|| {
                    OAuthError::invalid_request(
                        "client_notification_token is required in ping mode",
                    )
                })?;
            if token.len() > MAX_NOTIFICATION_TOKEN_LEN || !is_b64token(token) {
                return Err(OAuthError::invalid_request(format!(
                    "client_notification_token must be a bearer token (RFC 6750 §2.1) of at most {MAX_NOTIFICATION_TOKEN_LEN} characters"
                )));
            }
            Some(token.to_owned())
        }
        // Poll mode is never notified: a token sent anyway is not kept.
        CibaDeliveryMode::Poll => None,
    };
    let user_id = match (&request.login_hint, &request.id_token_hint) {
        (Some(hint), _) => user_of_login_hint(provider, hint).await?,
        (None, Some(hint)) => user_of_id_token_hint(provider, client, hint, now).await?,
        (None, None) => return Err(unknown_user()),
    };
    Ok(Accepted {
        user_id,
        scope: scopes::join(&granted),
        binding_message,
        expires_in,
        notification_token,
    })
}

/// A client an admin (or its registration) did not register for CIBA (§13
/// `unauthorized_client`), at `/bc-authorize` and for the grant at `/token`.
pub fn unauthorized() -> OAuthError {
    OAuthError::new(
        ErrorCode::UnauthorizedClient,
        "this client is not registered for backchannel authentication (CIBA)",
    )
}

/// §7.1: shown to the user as it is, so only printable text, and short.
fn check_binding_message(message: &str) -> OAuthResult<String> {
    let message = message.trim();
    let bad = |d: &str| OAuthError::new(ErrorCode::InvalidBindingMessage, d);
    if message.is_empty() {
        return Err(bad("binding_message is empty"));
    }
    if message.chars().count() > MAX_BINDING_MESSAGE_CHARS {
        return Err(bad(&format!(
            "binding_message is longer than {MAX_BINDING_MESSAGE_CHARS} characters"
        )));
    }
    // Control characters (line breaks included), and the invisible ones that can reorder or
    // hide text in a chat (bidirectional overrides, zero-width, byte-order marks).
    let invisible = |c: char| {
        c.is_control()
            || matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
    };
    if message.chars().any(invisible) {
        return Err(bad(
            "binding_message holds a control or invisible character",
        ));
    }
    Ok(message.to_owned())
}

/// `requested_expiry`: a positive number of seconds (§7.1).
fn parse_expiry(text: &str) -> OAuthResult<i64> {
    let bad = || {
        OAuthError::invalid_request("requested_expiry must be a positive whole number of seconds")
    };
    if text.is_empty() || text.len() > 9 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match text.parse::<i64>() {
        Ok(secs) if secs > 0 => Ok(secs),
        _ => Err(bad()),
    }
}

/// RFC 6750 §2.1 `b64token`: what may follow `Bearer ` in a header.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

/// `login_hint`: a Telegram id, or a username (with or without `@`, any case), of a user this
/// server has seen.
async fn user_of_login_hint(provider: &Provider, hint: &str) -> OAuthResult<i64> {
    let hint = hint.trim();
    if hint.is_empty() || hint.len() > MAX_LOGIN_HINT_LEN {
        return Err(unknown_user());
    }
    if hint.bytes().all(|b| b.is_ascii_digit()) {
        let Ok(id) = hint.parse::<i64>() else {
            return Err(unknown_user());
        };
        return match provider.store.get_user(id).await? {
            Some(user) if id > 0 => Ok(user.telegram_id),
            _ => Err(unknown_user()),
        };
    }
    let username = hint.strip_prefix('@').unwrap_or(hint);
    // Telegram usernames: 5-32 of letters, digits and `_`.
    if !(5..=32).contains(&username.len())
        || !username
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(unknown_user());
    }
    provider
        .store
        .find_user_by_username(username)
        .await?
        .ok_or_else(unknown_user)
}

/// `id_token_hint`: an ID token this server issued to this client (expired ones too, as for
/// `/authorize`). A public `sub` is the Telegram id. A pairwise `sub` (an HMAC, OpenID Connect
/// Core §8.1) is matched forwards, as `/authorize` matches it: against the token's
/// `telegram_id` claim when the `telegram` scope put one there, else against the users this
/// client has served (at most [`MAX_PAIRWISE_CANDIDATES`]).
async fn user_of_id_token_hint(
    provider: &Provider,
    client: &ClientRecord,
    hint: &str,
    now: i64,
) -> OAuthResult<i64> {
    let sub = (hint.len() <= MAX_ID_TOKEN_HINT_LEN)
        .then(|| check_id_token_hint(provider, client, hint, now))
        .flatten()
        .ok_or_else(|| {
            OAuthError::invalid_request(
                "id_token_hint is not an ID token this server issued to this client",
            )
        })?;
    let id = match client.settings.subject_type {
        SubjectType::Public => sub.parse::<i64>().map_err(|_| unknown_user())?,
        SubjectType::Pairwise => {
            let is_sub = |id: i64| {
                constant_time_eq(
                    subject::subject_for(provider, client, id).as_bytes(),
                    sub.as_bytes(),
                )
            };
            let claimed = provider
                .verify_jwt(hint, now)
                .ok()
                .and_then(|(_, claims)| claims.get("telegram_id").and_then(Value::as_i64))
                .filter(|id| is_sub(*id));
            match claimed {
                Some(id) => id,
                None => provider
                    .store
                    .client_user_ids(&client.client_id, MAX_PAIRWISE_CANDIDATES)
                    .await?
                    .into_iter()
                    .find(|id| is_sub(*id))
                    .ok_or_else(unknown_user)?,
            }
        }
    };
    match provider.store.get_user(id).await? {
        Some(user) => Ok(user.telegram_id),
        None => Err(unknown_user()),
    }
}

/// A request stored and ready to be asked: the response body (§7.3), and the request's hash
/// and expiry for the question in the chat.
pub struct Started {
    pub body: Value,
    pub request_hash: Vec<u8>,
    pub expires_at: i64,
}

/// The `auth_req_id` of a ping-mode request, derived from its stored seed: HMAC-SHA-256 under
/// a key of its own, itself derived from the server's secret (the file in `keys/`), so the
/// database alone never yields a usable `auth_req_id`.
fn derived_id(provider: &Provider, seed: &[u8]) -> String {
    let key = hmac_sha256(
        provider.subject_secret(),
        b"telegram-oidc/ciba/auth_req_id/v1",
    );
    let mut id = TokenKind::BackchannelRequest.prefix().to_owned();
    URL_SAFE_NO_PAD.encode_string(hmac_sha256(&key, seed), &mut id);
    id
}

/// The `auth_req_id` of a stored request, for the ping notification (§10.2); `None` for a
/// poll-mode request, whose id exists only at the client.
pub fn auth_req_id_of(provider: &Provider, request: &CibaRequestRecord) -> Option<String> {
    request
        .id_seed
        .as_deref()
        .map(|seed| derived_id(provider, seed))
}

/// Stores the request under a new `auth_req_id` (only its SHA-256 is kept; in ping mode also
/// the seed it was derived from, see [`derived_id`]).
pub async fn start(
    provider: &Provider,
    client: &ClientRecord,
    accepted: Accepted,
    now: i64,
) -> OAuthResult<Started> {
    let (auth_req_id, id_seed) = if accepted.notification_token.is_some() {
        let seed = random_bytes::<32>().to_vec();
        (derived_id(provider, &seed), Some(seed))
    } else {
        (new_token(TokenKind::BackchannelRequest), None)
    };
    let request_hash = token_hash(&auth_req_id);
    let interval = provider.config.ciba.interval_secs;
    let expires_at = now + accepted.expires_in;
    provider
        .store
        .create_ciba_request(&CibaRequestRecord {
            request_hash: request_hash.clone(),
            client_id: client.client_id.clone(),
            user_id: accepted.user_id,
            scope: accepted.scope,
            binding_message: accepted.binding_message,
            status: CibaStatus::Pending,
            approved_user_id: None,
            auth_time: None,
            amr: None,
            interval_secs: interval,
            last_polled_at: None,
            notification_token: accepted.notification_token,
            id_seed,
            created_at: now,
            expires_at,
        })
        .await?;
    Ok(Started {
        body: json!({
            "auth_req_id": auth_req_id,
            "expires_in": accepted.expires_in,
            "interval": interval,
        }),
        request_hash,
        expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binding_messages_are_short_and_printable() {
        assert_eq!(check_binding_message(" Order 4711 ").unwrap(), "Order 4711");
        assert_eq!(
            check_binding_message("Платёж № 12 ✓").unwrap(),
            "Платёж № 12 ✓"
        );
        assert!(check_binding_message(&"x".repeat(64)).is_ok());
        for bad in [
            "x".repeat(65),
            "a\nb".into(),
            "a\u{202E}b".into(),
            "a\u{200B}b".into(),
            "   ".into(),
        ] {
            assert_eq!(
                check_binding_message(&bad).unwrap_err().code,
                ErrorCode::InvalidBindingMessage,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn requested_expiry_is_a_positive_number() {
        assert_eq!(parse_expiry("120").unwrap(), 120);
        for bad in ["0", "-5", "1.5", "abc", "9999999999", " 60", ""] {
            assert!(parse_expiry(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn notification_tokens_fit_a_bearer_header() {
        assert!(is_b64token("abc-DEF_123.~+/=="));
        for bad in ["", "===", "a b", "a\"b", "a,b", "тест"] {
            assert!(!is_b64token(bad), "{bad}");
        }
    }
}
