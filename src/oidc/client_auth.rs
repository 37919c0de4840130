//! Client authentication at the token endpoint (RFC 6749 §2.3): `client_secret_basic`,
//! `client_secret_post`, `private_key_jwt` (RFC 7523, in [`client_assertion`]), or `none` for
//! public clients (which then must use PKCE).

use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{OAuthError, OAuthResult};
use crate::oidc::client_assertion;
use crate::secrets::{constant_time_eq, token_hash};
use crate::state::App;
use crate::store::{ClientKind, ClientRecord};

pub fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// RFC 6749 §3.2: parameters sent without a value are treated as omitted, and none may repeat.
pub fn reject_duplicates(params: &[(String, String)]) -> OAuthResult<()> {
    for (i, (k, _)) in params.iter().enumerate() {
        if params[..i].iter().any(|(p, _)| p == k) {
            return Err(OAuthError::invalid_request(format!(
                "the parameter {k} appears more than once"
            )));
        }
    }
    Ok(())
}

/// `Authorization: Basic` credentials, each part form-urldecoded (RFC 6749 §2.3.1).
fn basic_credentials(headers: &HeaderMap) -> OAuthResult<Option<(String, String)>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| OAuthError::invalid_request("malformed Authorization header"))?;
    let Some((scheme, encoded)) = value.split_once(' ') else {
        return Err(OAuthError::invalid_request(
            "malformed Authorization header",
        ));
    };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(
            OAuthError::invalid_client("use HTTP Basic authentication").with_basic_challenge(true)
        );
    }
    let malformed =
        || OAuthError::invalid_client("malformed Basic credentials").with_basic_challenge(true);
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let unescape = |s: &str| -> Option<String> {
        url::form_urlencoded::parse(format!("v={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
    };
    match (unescape(id), unescape(secret)) {
        (Some(id), Some(secret)) if !id.is_empty() => Ok(Some((id, secret))),
        _ => Err(malformed()),
    }
}

/// Who is calling, proven. Every failure is `invalid_client` (401) with no hint of which part
/// was wrong.
pub async fn authenticate(
    app: &App,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> OAuthResult<ClientRecord> {
    let basic = basic_credentials(headers)?;
    let post_id = param(params, "client_id");
    let post_secret = param(params, "client_secret");
    let assertion_type = param(params, "client_assertion_type");
    let assertion = param(params, "client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        if basic.is_some() || post_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        return match (assertion_type, assertion) {
            (Some(client_assertion::JWT_BEARER), Some(jwt)) => {
                client_assertion::authenticate(app, jwt, post_id).await
            }
            (Some(client_assertion::JWT_BEARER), None) => {
                Err(OAuthError::invalid_request("client_assertion is missing"))
            }
            (None, _) => Err(OAuthError::invalid_request(
                "client_assertion_type is missing",
            )),
            (Some(_), _) => Err(OAuthError::invalid_client(
                "unsupported client_assertion_type",
            )),
        };
    }
    let (client_id, secret, used_basic) = match (&basic, post_secret) {
        (Some(_), Some(_)) => {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        (Some((id, secret)), None) => {
            if post_id.is_some_and(|p| p != id) {
                return Err(OAuthError::invalid_request(
                    "client_id differs from the authenticated client",
                ));
            }
            (id.as_str(), Some(secret.as_str()), true)
        }
        (None, Some(secret)) => match post_id {
            Some(id) => (id, Some(secret), false),
            None => return Err(OAuthError::invalid_request("client_id is missing")),
        },
        (None, None) => match post_id {
            Some(id) => (id, None, false),
            None => {
                return Err(
                    OAuthError::invalid_client("client authentication is required")
                        .with_basic_challenge(true),
                );
            }
        },
    };
    let denied = || {
        OAuthError::invalid_client("client authentication failed").with_basic_challenge(used_basic)
    };
    if client_id.len() > 256 {
        return Err(denied());
    }
    let client = app.store.get_client(client_id).await?;
    let presented = secret.map(token_hash);
    let Some(client) = client else {
        return Err(denied());
    };
    if client.settings.uses_private_key_jwt() {
        // Registered keys, not a secret: anything else is refused (RFC 7591 §2).
        return Err(denied());
    }
    match (client.settings.kind, &client.secret_hash, presented) {
        (ClientKind::Confidential, Some(stored), Some(presented)) => {
            if constant_time_eq(stored, &presented) {
                Ok(client)
            } else {
                Err(denied())
            }
        }
        (ClientKind::Public, _, None) => Ok(client),
        _ => Err(denied()),
    }
}
