//! The authorization endpoint (RFC 6749 §4.1, OpenID Connect Core §3.1.2) and the path a
//! started authorization takes through login and consent to a code.
//!
//! Until the client and its redirect URI are known to be good, errors are pages: a redirect to
//! an unverified URI would make this server an open redirector (RFC 6749 §4.1.2.1). After that,
//! errors go back to the app with `state` and `iss` (RFC 9207).

use serde::{Deserialize, Serialize};

use crate::error::ErrorCode;
use crate::oidc::{Provider, acr, pkce, scopes};
use crate::store::{ClientKind, ClientRecord, SessionRecord};

const MAX_STATE_LEN: usize = 2048;
const MAX_NONCE_LEN: usize = 512;
const MAX_HINT_LEN: usize = 256;

/// A validated authorization request, kept in the database while the user logs in.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub redirect_uri: String,
    /// The scopes that will be granted: asked for, known here and allowed to the client.
    pub scope: String,
    pub state: Option<String>,
    pub nonce: Option<String>,
    pub code_challenge: Option<String>,
    pub prompt_none: bool,
    pub prompt_login: bool,
    pub prompt_consent: bool,
    pub max_age: Option<i64>,
    pub login_hint: Option<String>,
    /// `response_mode=form_post` (OAuth 2.0 Form Post Response Mode).
    #[serde(default)]
    pub form_post: bool,
    /// The `sub` of a valid `id_token_hint`: the user the app expects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_sub: Option<String>,
    /// The raw hint, checked against our keys before the request is stored.
    #[serde(skip)]
    pub id_token_hint: Option<String>,
    /// Hex SHA-256 of the session started by a login made for this very request: it satisfies
    /// `prompt=login` and `max_age` whatever the clock's resolution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fresh_login_session: Option<String>,
    /// Not an app's request but a device confirmation (RFC 8628 §3.3): hex SHA-256 of the user
    /// code. After login the browser goes to the device page instead of back to an app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_verification: Option<String>,
    /// Not an app's request but a login to the user's own account page (`/account`): after
    /// login the browser goes there. `client_id` is [`ACCOUNT_PAGE`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub account: bool,
    /// Not an app's request but a sign-in to the admin desk (`/admin`): after login the gate
    /// asks whether the user is an admin, and the browser goes there. `client_id` is
    /// [`ADMIN_DESK`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub admin: bool,
    /// The login must also be confirmed in the bot chat (step-up): `acr_values` asked for
    /// [`acr::ACR_BOT_CONFIRMED`], or the app requires it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bot_confirmation: bool,
    /// The confirmation under way: who logged in, and how. Only that Telegram account's answer
    /// in the bot chat completes the login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step_up: Option<StepUp>,
}

/// A login waiting for its confirmation in the bot chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepUp {
    pub user_id: i64,
    /// The methods of the first proof (`telegram_widget`, ...).
    pub amr: String,
}

/// The client id a login to the account page is filed under: no registered app can have it
/// (registered ids are base64url).
pub const ACCOUNT_PAGE: &str = "~account";

/// The client id a sign-in to the admin desk is filed under (as [`ACCOUNT_PAGE`]).
pub const ADMIN_DESK: &str = "~admin";

/// An authorization request's parameters as sent (RFC 6749 §4.1.1, OIDC Core §3.1.2.1), read
/// once from the query or the form. A value is `None` when the parameter is absent, empty, or
/// repeated; `repeated` names the first parameter that appears more than once (RFC 6749 §3.1).
#[derive(Debug, Clone, Default)]
pub struct AuthorizeParams {
    pub client_id: Param,
    pub redirect_uri: Param,
    pub repeated: Option<String>,
    pub state: Option<String>,
    pub response_type: Option<String>,
    pub response_mode: Option<String>,
    pub scope: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    pub nonce: Option<String>,
    pub login_hint: Option<String>,
    pub id_token_hint: Option<String>,
    pub acr_values: Option<String>,
    pub request: Option<String>,
    pub request_uri: Option<String>,
}

/// A parameter that decides where errors may go, so a repeat of it matters on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Param {
    /// Absent, or sent without a value (RFC 6749 §3.1: treated as omitted).
    #[default]
    Missing,
    Once(String),
    Repeated,
}

/// Why an authorization request stops.
#[derive(Debug)]
pub enum AuthorizeError {
    /// The app or its redirect URI cannot be trusted: the person is told on a page, never
    /// redirected (RFC 6749 §4.1.2.1).
    Unusable(String),
    /// Reported to the app at its registered redirect URI.
    ToApp(ErrorRedirect),
}

/// An error response to the app (RFC 6749 §4.1.2.1), sent only to a verified redirect URI.
#[derive(Debug, Clone)]
pub struct ErrorRedirect {
    pub redirect_uri: String,
    pub state: Option<String>,
    pub code: ErrorCode,
    pub description: String,
    pub form_post: bool,
}

impl AuthorizationRequest {
    /// The error response to this request's app.
    pub fn error(&self, code: ErrorCode, description: &str) -> ErrorRedirect {
        ErrorRedirect {
            redirect_uri: self.redirect_uri.clone(),
            state: self.state.clone(),
            code,
            description: description.to_owned(),
            form_post: self.form_post,
        }
    }
}

/// The `client_id`, which must be known before anything else can be checked.
pub fn client_id_param(params: &AuthorizeParams) -> Result<&str, AuthorizeError> {
    match &params.client_id {
        Param::Once(id) => Ok(id),
        Param::Missing => Err(AuthorizeError::Unusable(
            "The request does not name an app (client_id is missing).".into(),
        )),
        Param::Repeated => Err(AuthorizeError::Unusable(
            "The request names client_id more than once.".into(),
        )),
    }
}

/// Checks an authorization request for `client` (RFC 6749 §4.1.1, RFC 7636, OIDC Core §3.1.2.1).
pub fn validate(
    params: &AuthorizeParams,
    client: &ClientRecord,
) -> Result<AuthorizationRequest, AuthorizeError> {
    let redirect_uri = match &params.redirect_uri {
        Param::Once(uri) => uri.as_str(),
        Param::Missing => {
            return Err(AuthorizeError::Unusable(
                "The request has no redirect_uri.".into(),
            ));
        }
        Param::Repeated => {
            return Err(AuthorizeError::Unusable(
                "The request names redirect_uri more than once.".into(),
            ));
        }
    };
    if !redirect_uri_matches(client, redirect_uri) {
        return Err(AuthorizeError::Unusable(format!(
            "The address to return to is not registered for the app \u{201c}{}\u{201d}.",
            client.settings.name
        )));
    }
    let state = params.state.clone();
    let form_post = params.response_mode.as_deref() == Some("form_post");
    let fail = |code: ErrorCode, description: &str| {
        AuthorizeError::ToApp(ErrorRedirect {
            redirect_uri: redirect_uri.to_owned(),
            state: state.clone(),
            code,
            description: description.to_owned(),
            form_post,
        })
    };
    if let Some(name) = &params.repeated {
        return Err(fail(
            ErrorCode::InvalidRequest,
            &format!("the parameter {name} appears more than once"),
        ));
    }
    if state.as_ref().is_some_and(|s| s.len() > MAX_STATE_LEN) {
        // Not echoed back: the limit is there to keep redirect URLs bounded.
        return Err(AuthorizeError::ToApp(ErrorRedirect {
            redirect_uri: redirect_uri.to_owned(),
            state: None,
            code: ErrorCode::InvalidRequest,
            description: "state is too long".into(),
            form_post,
        }));
    }
    if params.request.is_some() {
        return Err(fail(
            ErrorCode::RequestNotSupported,
            "request objects are not supported",
        ));
    }
    if params.request_uri.is_some() {
        return Err(fail(
            ErrorCode::RequestUriNotSupported,
            "request_uri is not supported",
        ));
    }
    match params.response_type.as_deref() {
        Some("code") => {}
        Some(_) => {
            return Err(fail(
                ErrorCode::UnsupportedResponseType,
                "only response_type=code is supported",
            ));
        }
        None => return Err(fail(ErrorCode::InvalidRequest, "response_type is missing")),
    }
    match params.response_mode.as_deref() {
        None | Some("query") | Some("form_post") => {}
        Some(_) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "response_mode must be query or form_post",
            ));
        }
    }
    let requested = scopes::parse(params.scope.as_deref().unwrap_or(""));
    let granted: Vec<String> = requested
        .iter()
        .filter(|s| scopes::SUPPORTED.contains(&s.as_str()))
        .filter(|s| client.settings.allowed_scopes.iter().any(|a| a == *s))
        .cloned()
        .collect();
    if granted.is_empty() {
        return Err(fail(
            ErrorCode::InvalidScope,
            "none of the requested scopes is available to this app",
        ));
    }
    let challenge = params.code_challenge.as_deref();
    let method = params.code_challenge_method.as_deref();
    match (challenge, method) {
        (Some(c), Some("S256")) => {
            if !pkce::is_valid_s256_challenge(c) {
                return Err(fail(
                    ErrorCode::InvalidRequest,
                    "code_challenge is not a base64url SHA-256 value",
                ));
            }
        }
        (Some(_), Some(_)) | (Some(_), None) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge_method must be S256 (plain is not accepted)",
            ));
        }
        (None, Some(_)) => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "code_challenge_method without code_challenge",
            ));
        }
        (None, None) if client.settings.kind == ClientKind::Public => {
            return Err(fail(
                ErrorCode::InvalidRequest,
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            ));
        }
        (None, None) => {}
    }
    let (mut prompt_none, mut prompt_login, mut prompt_consent) = (false, false, false);
    let prompts: Vec<&str> = params
        .prompt
        .as_deref()
        .map(|p| p.split(' ').filter(|s| !s.is_empty()).collect())
        .unwrap_or_default();
    for p in &prompts {
        match *p {
            "none" => prompt_none = true,
            "login" => prompt_login = true,
            "consent" => prompt_consent = true,
            "select_account" => {}
            _ => return Err(fail(ErrorCode::InvalidRequest, "unknown prompt value")),
        }
    }
    if prompt_none && prompts.len() > 1 {
        return Err(fail(
            ErrorCode::InvalidRequest,
            "prompt=none cannot be combined with other values",
        ));
    }
    let max_age = match params.max_age.as_deref() {
        None => None,
        Some(v) => match v.parse::<i64>() {
            Ok(n) if n >= 0 => Some(n),
            _ => {
                return Err(fail(
                    ErrorCode::InvalidRequest,
                    "max_age must be a non-negative number of seconds",
                ));
            }
        },
    };
    let nonce = params.nonce.clone();
    if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_LEN) {
        return Err(fail(ErrorCode::InvalidRequest, "nonce is too long"));
    }
    let login_hint = params
        .login_hint
        .clone()
        .filter(|h| h.len() <= MAX_HINT_LEN);
    Ok(AuthorizationRequest {
        client_id: client.client_id.clone(),
        redirect_uri: redirect_uri.to_owned(),
        scope: scopes::join(&granted),
        state: state.clone(),
        nonce,
        code_challenge: challenge.map(str::to_owned),
        prompt_none,
        prompt_login,
        prompt_consent,
        max_age,
        login_hint,
        form_post,
        expected_sub: None,
        id_token_hint: params.id_token_hint.clone(),
        fresh_login_session: None,
        device_verification: None,
        account: false,
        admin: false,
        bot_confirmation: client.settings.require_bot_confirmation
            || params
                .acr_values
                .as_deref()
                .is_some_and(acr::asks_bot_confirmation),
        step_up: None,
    })
}

/// The `sub` of an ID token we signed for `client`. An expired one is still a good hint
/// (OpenID Connect Core §3.1.2.1).
pub fn check_id_token_hint(
    provider: &Provider,
    client: &ClientRecord,
    hint: &str,
    now: i64,
) -> Option<String> {
    let (header, claims) = provider.verify_jwt(hint, now).ok()?;
    if header.get("typ").and_then(serde_json::Value::as_str) == Some("at+jwt")
        || claims.get("iss").and_then(serde_json::Value::as_str)
            != Some(provider.config.issuer.as_str())
    {
        return None;
    }
    let aud_ok = match claims.get("aud") {
        Some(serde_json::Value::String(a)) => a == &client.client_id,
        Some(serde_json::Value::Array(list)) => {
            list.iter().any(|a| a.as_str() == Some(&client.client_id))
        }
        _ => false,
    };
    if !aud_ok {
        return None;
    }
    claims
        .get("sub")
        .and_then(serde_json::Value::as_str)
        .map(str::to_owned)
}

/// Whether the session satisfies the request's demands on the login itself.
pub fn login_is_fresh_enough(
    request: &AuthorizationRequest,
    session: &SessionRecord,
    pending_created_at: i64,
    now: i64,
) -> bool {
    if request
        .fresh_login_session
        .as_deref()
        .is_some_and(|h| h == hex::encode(&session.id_hash))
    {
        return true;
    }
    if request.prompt_login && session.auth_time <= pending_created_at {
        return false;
    }
    match request.max_age {
        Some(max_age) => now - session.auth_time <= max_age,
        None => true,
    }
}

/// Exact string comparison (RFC 9700 §4.1.3): no normalisation, no prefix matching. The one
/// allowance is RFC 8252 §7.3: a native (public) client registered with an IP loopback
/// redirect may come back on any port, since the OS picks it at run time.
pub fn redirect_uri_matches(client: &ClientRecord, requested: &str) -> bool {
    client.settings.redirect_uris.iter().any(|registered| {
        registered == requested
            || (client.settings.kind == ClientKind::Public
                && match (
                    without_loopback_port(registered),
                    without_loopback_port(requested),
                ) {
                    (Some(a), Some(b)) => a == b,
                    _ => false,
                })
    })
}

/// `http://127.0.0.1:PORT/rest` or `http://[::1]:PORT/rest` with the port taken out; None
/// for anything else.
fn without_loopback_port(uri: &str) -> Option<String> {
    let (host, rest) = ["http://127.0.0.1", "http://[::1]"]
        .iter()
        .find_map(|h| uri.strip_prefix(h).map(|rest| (*h, rest)))?;
    let rest = match rest.strip_prefix(':') {
        Some(after) => {
            let digits = after.bytes().take_while(u8::is_ascii_digit).count();
            if digits == 0 || digits > 5 {
                return None;
            }
            &after[digits..]
        }
        None => rest,
    };
    if !(rest.is_empty() || rest.starts_with('/') || rest.starts_with('?')) || rest.contains('#') {
        return None;
    }
    Some(format!("{host}{rest}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::clients::{NewClient, build_client};
    use proptest::collection::vec;
    use proptest::prelude::*;

    fn client(kind: ClientKind, redirect_uris: Vec<String>) -> Option<ClientRecord> {
        let new = NewClient {
            name: "Props".into(),
            kind,
            redirect_uris,
            ..NewClient::default()
        };
        build_client(new, 0).ok().map(|(record, _)| record)
    }

    /// URIs an admin may register, loopback ones with and without a port among them.
    fn registered() -> impl Strategy<Value = String> {
        let tail = "(/[a-z]{0,4}){0,2}(\\?[a-z=&]{0,6})?";
        let pattern = |head: &str| {
            proptest::string::string_regex(&format!("{head}{tail}")).expect("a valid pattern")
        };
        prop_oneof![
            pattern("https://(app|evil)\\.example\\.(com|net)(:[0-9]{1,4})?"),
            pattern("http://(127\\.0\\.0\\.1|\\[::1\\]|localhost)(:[0-9]{1,5})?"),
            pattern("com\\.example\\.app:"),
        ]
    }

    /// What an attacker might send instead: the registered URI changed a little, or anything.
    fn requested(registered: Vec<String>) -> impl Strategy<Value = String> {
        let pick = proptest::sample::select(registered);
        prop_oneof![
            pick.clone(),
            // Another port, or none, right after the host.
            (pick.clone(), "(:[0-9]{0,6})?").prop_map(|(r, port)| match r.split_once("://") {
                Some((scheme, rest)) => {
                    let end = rest.find(['/', '?']).unwrap_or(rest.len());
                    let (authority, tail) = rest.split_at(end);
                    let host = match authority.rfind(':') {
                        Some(c) if !authority[c..].contains(']') => &authority[..c],
                        _ => authority,
                    };
                    format!("{scheme}://{host}{port}{tail}")
                }
                None => format!("{r}{port}"),
            }),
            (pick.clone(), "[/?#@.:a-zA-Z0-9%]{1,6}").prop_map(|(r, s)| format!("{r}{s}")),
            (pick.clone(), 0usize..40, "[/?#@.:a-zA-Z0-9%\\\\]{0,4}").prop_map(|(r, at, s)| {
                let at = (0..=at.min(r.len()))
                    .rev()
                    .find(|&i| r.is_char_boundary(i))
                    .unwrap_or(0);
                format!("{}{s}{}", &r[..at], &r[(at + 1).min(r.len())..])
            }),
            pick.prop_map(|r| r.to_uppercase()),
            any::<String>(),
        ]
    }

    /// `uri` as a browser would go to it, if it is plain http to a loopback IP: the host and
    /// the path with the query. Independent of the code under test: the URL parser says it.
    fn loopback_target(uri: &str) -> Option<(String, String)> {
        let parsed = url::Url::parse(uri).ok()?;
        let loopback = match parsed.host()? {
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
            url::Host::Domain(_) => false,
        };
        (parsed.scheme() == "http"
            && loopback
            && parsed.username().is_empty()
            && parsed.password().is_none()
            && parsed.fragment().is_none())
        .then(|| {
            (
                parsed.host_str().unwrap_or("").to_owned(),
                format!("{}?{}", parsed.path(), parsed.query().unwrap_or("")),
            )
        })
    }

    fn case() -> impl Strategy<Value = (bool, Vec<String>, String)> {
        (any::<bool>(), vec(registered(), 1..4))
            .prop_flat_map(|(public, uris)| (Just(public), Just(uris.clone()), requested(uris)))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn only_a_registered_uri_matches(case in case()) {
            let (public, uris, requested) = case;
            let kind = if public { ClientKind::Public } else { ClientKind::Confidential };
            let Some(client) = client(kind, uris) else {
                return Ok(());
            };
            let exact = client.settings.redirect_uris.contains(&requested);
            let matched = redirect_uri_matches(&client, &requested);
            if exact {
                prop_assert!(matched);
            }
            if !matched || exact {
                return Ok(());
            }
            // Not registered, yet accepted: only a native client's loopback URI on another port.
            prop_assert!(public, "{} matched for a confidential client", requested);
            prop_assert!(
                requested.starts_with("http://127.0.0.1") || requested.starts_with("http://[::1]"),
                "{}",
                requested
            );
            match loopback_target(&requested) {
                Some(target) => prop_assert!(
                    client
                        .settings
                        .redirect_uris
                        .iter()
                        .any(|r| loopback_target(r).as_ref() == Some(&target)),
                    "{} goes elsewhere than {:?}",
                    requested,
                    client.settings.redirect_uris
                ),
                // A port above 65535: no browser follows it.
                None => prop_assert!(url::Url::parse(&requested).is_err(), "{}", requested),
            }
        }

        #[test]
        fn a_loopback_uri_matches_on_any_port_for_a_native_client_only(
            host in "(127\\.0\\.0\\.1|\\[::1\\])",
            path in "(/[a-z]{1,5}){0,2}",
            port in 1u16..,
        ) {
            let registered = format!("http://{host}{path}");
            let requested = format!("http://{host}:{port}{path}");
            let public = client(ClientKind::Public, vec![registered.clone()]).unwrap();
            let confidential = client(ClientKind::Confidential, vec![registered]).unwrap();
            prop_assert!(redirect_uri_matches(&public, &requested));
            prop_assert!(!redirect_uri_matches(&confidential, &requested));
            let with_fragment = format!("{requested}#f");
            let elsewhere = format!("http://{host}:{port}@evil.example{path}");
            let by_name = format!("http://localhost:{port}{path}");
            for other in [with_fragment, elsewhere, by_name] {
                prop_assert!(!redirect_uri_matches(&public, &other), "{}", other);
            }
        }
    }
}
