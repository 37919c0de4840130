//! The device authorization grant (RFC 8628): the codes a device is handed, and how a user
//! code is written and read. The pages are in `web::device`; the device's polling is in
//! [`grant_device`](super::grant_device).

use serde_json::{Value, json};

use crate::error::{OAuthError, OAuthResult};
use crate::oidc::{Provider, scopes};
use crate::secrets::{TokenKind, new_token, random_bytes, token_hash};
use crate::store::flows::{DeviceCodeRecord, DeviceStatus};
use crate::store::{ClientRecord, StoreError};

pub const AUTHORIZATION_PATH: &str = "/device_authorization";
pub const VERIFICATION_PATH: &str = "/device";
pub const CONFIRM_PATH: &str = "/device/confirm";

/// Consonants only: no vowels to spell words, none that read alike (RFC 8628 §6.1).
const USER_CODE_ALPHABET: &[u8; 20] = b"BCDFGHJKLMNPQRSTVWXZ";
const USER_CODE_LEN: usize = 8;

/// A new user code: 8 letters, about 34.6 bits, drawn without modulo bias.
pub fn new_user_code() -> String {
    let mut code = String::with_capacity(USER_CODE_LEN);
    while code.len() < USER_CODE_LEN {
        for b in random_bytes::<16>() {
            // 240 is the largest multiple of 20 that fits a byte.
            if b < 240 && code.len() < USER_CODE_LEN {
                code.push(char::from(USER_CODE_ALPHABET[usize::from(b % 20)]));
            }
        }
    }
    code
}

/// `BCDFGHJK` as people read it: `BCDF-GHJK`.
pub fn display_user_code(code: &str) -> String {
    match code.split_at_checked(USER_CODE_LEN / 2) {
        Some((a, b)) => format!("{a}-{b}"),
        None => code.to_owned(),
    }
}

/// What the user typed, as stored: case, dashes and spaces do not matter (RFC 8628 §6.1).
pub fn normalize_user_code(input: &str) -> Option<String> {
    if input.len() > 64 {
        return None;
    }
    let code: String = input
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect();
    (code.len() == USER_CODE_LEN && code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)))
        .then_some(code)
}

/// The scopes a device asks for that it may have; omitted means `openid`.
fn granted_scope(client: &ClientRecord, asked: Option<&str>) -> OAuthResult<String> {
    let asked = scopes::parse(asked.unwrap_or(scopes::OPENID));
    let granted: Vec<String> = asked
        .into_iter()
        .filter(|s| scopes::SUPPORTED.contains(&s.as_str()))
        .filter(|s| client.settings.allowed_scopes.iter().any(|a| a == s))
        .collect();
    if granted.is_empty() {
        return Err(OAuthError::invalid_scope(
            "none of the requested scopes is available to this app",
        ));
    }
    Ok(scopes::join(&granted))
}

/// A device code and a user code for `client` (RFC 8628 §3.2): the response body, and the
/// device code's hash and expiry for a confirmation in the bot chat.
pub async fn start(
    provider: &Provider,
    client: &ClientRecord,
    asked: Option<&str>,
    now: i64,
) -> OAuthResult<(Value, Vec<u8>, i64)> {
    let scope = granted_scope(client, asked)?;
    let ttl = provider.config.tokens.device_code_ttl_secs;
    let interval = provider.config.tokens.device_poll_interval_secs;
    let device_code = new_token(TokenKind::DeviceCode);
    let device_hash = token_hash(&device_code);
    let mut user_code = String::new();
    // A user code is short, so it can collide with a live one: draw again.
    for attempt in 0..5 {
        user_code = new_user_code();
        let created = provider
            .store
            .create_device_code(&DeviceCodeRecord {
                device_code_hash: device_hash.clone(),
                user_code_hash: token_hash(&user_code),
                client_id: client.client_id.clone(),
                scope: scope.clone(),
                status: DeviceStatus::Pending,
                user_id: None,
                auth_time: None,
                amr: None,
                interval_secs: interval,
                last_polled_at: None,
                created_at: now,
                expires_at: now + ttl,
            })
            .await;
        match created {
            Ok(()) => break,
            Err(StoreError::Conflict(_)) if attempt < 4 => continue,
            Err(e) => return Err(e.into()),
        }
    }
    let display = display_user_code(&user_code);
    let verification_uri = provider.url(VERIFICATION_PATH);
    let complete = format!("{verification_uri}?user_code={display}");
    let body = json!({
        "device_code": device_code,
        "user_code": display,
        "verification_uri": verification_uri,
        "verification_uri_complete": complete,
        "expires_in": ttl,
        "interval": interval,
    });
    Ok((body, device_hash, now + ttl))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_are_short_unambiguous_and_forgiving() {
        let code = new_user_code();
        assert_eq!(code.len(), 8);
        assert!(code.bytes().all(|b| USER_CODE_ALPHABET.contains(&b)));
        let shown = display_user_code(&code);
        assert_eq!(shown.len(), 9);
        assert_eq!(normalize_user_code(&shown).as_deref(), Some(code.as_str()));
        assert_eq!(
            normalize_user_code(" bcdf-ghjk ").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalize_user_code("bcdf ghjk").as_deref(),
            Some("BCDFGHJK")
        );
        assert_eq!(
            normalize_user_code("BCDF-GHJA"),
            None,
            "A is not in the alphabet"
        );
        assert_eq!(normalize_user_code("BCDF-GHJ"), None);
        assert_eq!(normalize_user_code("BCDF-GHJKL"), None);
    }

    #[test]
    fn user_codes_differ() {
        let codes: std::collections::HashSet<String> = (0..100).map(|_| new_user_code()).collect();
        assert!(codes.len() > 95);
    }
}
