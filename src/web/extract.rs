//! Strict request parsing: a malformed, oversized or repeated parameter is an OAuth
//! `invalid_request` (or a page, on browser endpoints), never axum's plain-text rejection.
//! Requests are parsed here once into the typed requests the protocol core takes.

use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use crate::error::OAuthError;
use crate::params::check_request_params;
pub use crate::params::parse_params;
use crate::state::App;

/// `axum::Form`, but a malformed or oversized body is an OAuth `invalid_request` in JSON,
/// never axum's plain-text rejection.
pub struct OAuthForm<T>(pub T);

impl<S, T> FromRequest<S> for OAuthForm<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.to_ascii_lowercase()
                    .starts_with("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(OAuthError::invalid_request(
                "the body must be application/x-www-form-urlencoded",
            ));
        }
        let bytes = match axum::body::Bytes::from_request(req, state).await {
            Ok(bytes) => bytes,
            Err(rejection) => return Err(bytes_rejection(rejection)),
        };
        let text = std::str::from_utf8(&bytes)
            .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
        crate::params::parse_request_params(text)?;
        serde_urlencoded::from_str::<T>(text)
            .map(OAuthForm)
            .map_err(|e| OAuthError::invalid_request(format!("the form could not be read: {e}")))
    }
}

fn bytes_rejection(rejection: axum::extract::rejection::BytesRejection) -> OAuthError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return OAuthError::new(
            crate::error::ErrorCode::PayloadTooLarge,
            "the request body is too large",
        );
    }
    body_error(&rejection)
}

/// Why a request body could not be read: too large (413), too slow (408), or broken.
pub fn body_error(e: &(dyn std::error::Error + 'static)) -> OAuthError {
    if crate::web::body_deadline::timed_out(e) {
        return OAuthError::new(
            crate::error::ErrorCode::RequestTimeout,
            "the request body did not arrive in time",
        );
    }
    let mut source = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return OAuthError::new(
                crate::error::ErrorCode::PayloadTooLarge,
                "the request body is too large",
            );
        }
        source = s.source();
    }
    OAuthError::invalid_request("the request body could not be read")
}

/// Reads a urlencoded body into parameters; `Err` is the response to send.
pub async fn read_form_params(
    app: &App,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<Vec<(String, String)>, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .to_ascii_lowercase()
        .starts_with("application/x-www-form-urlencoded")
    {
        return Err(OAuthError::invalid_request(
            "the body must be application/x-www-form-urlencoded",
        ));
    }
    let bytes = axum::body::to_bytes(body, app.config.max_body_bytes)
        .await
        .map_err(|e| body_error(&e))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| OAuthError::invalid_request("the body is not UTF-8"))?;
    parse_params(text)
}

// ---- the authorization request (RFC 6749 §4.1.1, OpenID Connect Core §3.1.2.1) ----

use crate::oidc::authorize::{AuthorizeParams, Param};
use crate::web::browser_error::{Problem, UNUSABLE_REQUEST};

/// The authorization request in a query; a malformed one is a page, since nothing in it can
/// be trusted yet.
pub fn authorize_query(raw: Option<&str>) -> Result<AuthorizeParams, Problem> {
    match crate::params::parse_request_params(raw.unwrap_or("")) {
        Ok(params) => Ok(authorize_params(&params)),
        Err(e) => Err(Problem::unusable(e.description)),
    }
}

/// The authorization request in a form body (OIDC Core §3.1.2.1 allows POST); an unreadable
/// or oversized body is a page.
pub async fn authorize_form(
    app: &App,
    headers: &HeaderMap,
    body: axum::body::Body,
) -> Result<AuthorizeParams, Problem> {
    match read_form_params(app, headers, body)
        .await
        .and_then(|params| check_request_params(&params).map(|()| params))
    {
        Ok(params) => Ok(authorize_params(&params)),
        Err(e) => {
            let status = e.code.status();
            Err(Problem::page(status, UNUSABLE_REQUEST, e.description))
        }
    }
}

/// The parameters, read once. An empty value counts as absent (RFC 6749 §3.1); a repeated
/// parameter has no value, and the first one repeated is named, so that `oidc::authorize` can
/// tell the person (a repeated `client_id` or `redirect_uri`) or the app (any other).
pub fn authorize_params(params: &[(String, String)]) -> AuthorizeParams {
    let single = |name: &str| {
        let mut found = params.iter().filter(|(k, _)| k == name).map(|(_, v)| v);
        match (found.next(), found.next()) {
            (Some(_), Some(_)) => Param::Repeated,
            (Some(v), None) if !v.is_empty() => Param::Once(v.clone()),
            _ => Param::Missing,
        }
    };
    let get = |name: &str| match single(name) {
        Param::Once(v) => Some(v),
        Param::Missing | Param::Repeated => None,
    };
    AuthorizeParams {
        client_id: single("client_id"),
        redirect_uri: single("redirect_uri"),
        repeated: first_repeated(params).map(str::to_owned),
        state: get("state"),
        response_type: get("response_type"),
        response_mode: get("response_mode"),
        scope: get("scope"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        prompt: get("prompt"),
        max_age: get("max_age"),
        nonce: get("nonce"),
        login_hint: get("login_hint"),
        id_token_hint: get("id_token_hint"),
        acr_values: get("acr_values"),
        request: get("request"),
        request_uri: get("request_uri"),
    }
}

/// The first parameter that appears more than once (RFC 6749 §3.1 forbids it), empty values
/// included.
pub fn first_repeated(params: &[(String, String)]) -> Option<&str> {
    params
        .iter()
        .enumerate()
        .find(|(i, (k, _))| params[..*i].iter().any(|(p, _)| p == k))
        .map(|(_, (k, _))| k.as_str())
}

// ---- typed OAuth requests: client credentials, token, introspection, revocation, bearer
// tokens, client metadata (their imports here, so this part stays in one block) ----

use axum::body::Body;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use crate::error::{ErrorCode, OAuthResult, Style};
use crate::oidc::ciba::BackchannelRequest;
use crate::oidc::client_assertion;
use crate::oidc::client_auth::{ClientCredentials, SecretCredentials};
use crate::oidc::grant_ciba::{self, CibaRequest};
use crate::oidc::grant_client_credentials::ClientCredentialsRequest;
use crate::oidc::grant_code::CodeRequest;
use crate::oidc::grant_device::{self, DeviceCodeRequest};
use crate::oidc::grant_refresh::RefreshRequest;
use crate::oidc::grant_token_exchange::{self, TokenExchangeParams};
use crate::oidc::introspect::IntrospectionRequest;
use crate::oidc::registration::{ClientMetadata, bad_metadata};
use crate::oidc::revoke::RevocationRequest;

/// The parameters of an OAuth request body, checked once: none repeats, and one sent without a
/// value counts as omitted (RFC 6749 §3.2).
pub struct FormParams(Vec<(String, String)>);

impl FormParams {
    /// Reads a urlencoded body and checks it.
    pub async fn read(app: &App, headers: &HeaderMap, body: Body) -> OAuthResult<FormParams> {
        FormParams::checked(read_form_params(app, headers, body).await?)
    }

    pub fn checked(params: Vec<(String, String)>) -> OAuthResult<FormParams> {
        check_request_params(&params)?;
        for (i, (name, _)) in params.iter().enumerate() {
            if params[..i].iter().any(|(earlier, _)| earlier == name) {
                return Err(OAuthError::invalid_request(format!(
                    "the parameter {name} appears more than once"
                )));
            }
        }
        Ok(FormParams(params))
    }

    /// The value of a parameter; one sent without a value is omitted.
    pub fn get(&self, name: &str) -> Option<&str> {
        first_value(&self.0, name)
    }

    fn owned(&self, name: &str) -> Option<String> {
        self.get(name).map(str::to_owned)
    }

    fn required(&self, name: &str) -> OAuthResult<String> {
        self.owned(name)
            .ok_or_else(|| OAuthError::invalid_request(format!("{name} is missing")))
    }
}

/// The first value of a parameter, an empty one counting as omitted (RFC 6749 §3.2).
fn first_value<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

/// `Authorization: Basic` credentials, each part form-urldecoded (RFC 6749 §2.3.1).
/// The client id a request names, before anything proves it: the Basic user, else the
/// `client_id` parameter. For per-client rate limits, which count claims as well as proofs.
pub fn claimed_client_id(headers: &HeaderMap, form: &FormParams) -> Option<String> {
    let id = match basic_credentials(headers) {
        Ok(Some((id, _))) => Some(id),
        _ => form.get("client_id").map(str::to_owned),
    };
    id.map(|id| id.chars().take(200).collect())
}

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
    let clean = |s: &str| !s.chars().any(char::is_control);
    match (unescape(id), unescape(secret)) {
        (Some(id), Some(secret)) if !id.is_empty() && clean(&id) && clean(&secret) => {
            Ok(Some((id, secret)))
        }
        _ => Err(malformed()),
    }
}

/// The one way the client authenticates (RFC 6749 §2.3, RFC 7523 §2.2): the Basic header, the
/// form's `client_id` and `client_secret`, or a `client_assertion`. Two ways at once, or none
/// with no `client_id` either, is refused here, before the store is asked.
pub fn client_credentials(
    headers: &HeaderMap,
    form: &FormParams,
) -> OAuthResult<ClientCredentials> {
    let basic = basic_credentials(headers)?;
    let post_id = form.get("client_id");
    let post_secret = form.get("client_secret");
    let assertion_type = form.get("client_assertion_type");
    let assertion = form.get("client_assertion");
    if assertion_type.is_some() || assertion.is_some() {
        if basic.is_some() || post_secret.is_some() {
            return Err(OAuthError::invalid_request(
                "use one client authentication method, not two",
            ));
        }
        return match (assertion_type, assertion) {
            (Some(client_assertion::JWT_BEARER), Some(jwt)) => Ok(ClientCredentials::Assertion {
                jwt: jwt.to_owned(),
                client_id: post_id.map(str::to_owned),
            }),
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
    let (client_id, secret, basic) = match (basic, post_secret) {
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
            (id, Some(secret), true)
        }
        (None, Some(secret)) => match post_id {
            Some(id) => (id.to_owned(), Some(secret.to_owned()), false),
            None => return Err(OAuthError::invalid_request("client_id is missing")),
        },
        (None, None) => match post_id {
            Some(id) => (id.to_owned(), None, false),
            None => {
                return Err(
                    OAuthError::invalid_client("client authentication is required")
                        .with_basic_challenge(true),
                );
            }
        },
    };
    Ok(ClientCredentials::Secret(SecretCredentials {
        client_id,
        secret,
        basic,
    }))
}

/// A token request (RFC 6749 §3.2), one variant per grant this server serves.
pub enum TokenRequest {
    AuthorizationCode(CodeRequest),
    RefreshToken(RefreshRequest),
    ClientCredentials(ClientCredentialsRequest),
    DeviceCode(DeviceCodeRequest),
    Ciba(CibaRequest),
    TokenExchange(TokenExchangeParams),
}

impl TokenRequest {
    /// The grant and its parameters. The token endpoint reports an error of this only after
    /// the client is authenticated, so an unauthenticated caller learns nothing of it.
    pub fn parse(form: &FormParams) -> OAuthResult<TokenRequest> {
        Ok(match form.get("grant_type") {
            Some("authorization_code") => TokenRequest::AuthorizationCode(CodeRequest {
                code: form.required("code")?,
                redirect_uri: form.owned("redirect_uri"),
                code_verifier: form.owned("code_verifier"),
            }),
            Some("refresh_token") => TokenRequest::RefreshToken(RefreshRequest {
                refresh_token: form.required("refresh_token")?,
                scope: form.owned("scope"),
            }),
            Some(grant_device::GRANT_TYPE) => TokenRequest::DeviceCode(DeviceCodeRequest {
                device_code: form.required("device_code")?,
            }),
            Some(grant_ciba::GRANT_TYPE) => TokenRequest::Ciba(CibaRequest {
                auth_req_id: form.required("auth_req_id")?,
            }),
            // Checked against the client in `grant_token_exchange::parse`, in RFC 8693's order.
            Some(grant_token_exchange::GRANT_TYPE) => {
                TokenRequest::TokenExchange(TokenExchangeParams {
                    subject_token: form.owned("subject_token"),
                    subject_token_type: form.owned("subject_token_type"),
                    actor_token: form.owned("actor_token"),
                    actor_token_type: form.owned("actor_token_type"),
                    audience: form.owned("audience"),
                    resource: form.owned("resource"),
                    requested_token_type: form.owned("requested_token_type"),
                    scope: form.owned("scope"),
                })
            }
            Some("client_credentials") => {
                TokenRequest::ClientCredentials(ClientCredentialsRequest {
                    scope: form.owned("scope"),
                })
            }
            Some(_) => {
                return Err(OAuthError::new(
                    ErrorCode::UnsupportedGrantType,
                    "this grant type is not supported",
                ));
            }
            None => return Err(OAuthError::invalid_request("grant_type is missing")),
        })
    }
}

/// A backchannel authentication request (CIBA Core 1.0 §7.1), read after client
/// authentication; `oidc::ciba::check` judges it.
pub fn backchannel_request(form: &FormParams) -> BackchannelRequest {
    BackchannelRequest {
        scope: form.owned("scope"),
        login_hint: form.owned("login_hint"),
        login_hint_token: form.owned("login_hint_token"),
        id_token_hint: form.owned("id_token_hint"),
        binding_message: form.owned("binding_message"),
        requested_expiry: form.owned("requested_expiry"),
        user_code: form.owned("user_code"),
        client_notification_token: form.owned("client_notification_token"),
        request: form.owned("request"),
        request_uri: form.owned("request_uri"),
    }
}

/// RFC 7662 §2.1; like the token request, reported after client authentication.
pub fn introspection_request(form: &FormParams) -> OAuthResult<IntrospectionRequest> {
    Ok(IntrospectionRequest {
        token: form.required("token")?,
    })
}

/// RFC 7009 §2.1; like the token request, reported after client authentication.
pub fn revocation_request(form: &FormParams) -> OAuthResult<RevocationRequest> {
    Ok(RevocationRequest {
        token: form.required("token")?,
    })
}

/// What an `Authorization` header says about a bearer token (RFC 6750 §2.1).
enum BearerHeader {
    Absent,
    /// Not visible ASCII.
    Malformed,
    /// Another scheme, or `Bearer` with nothing after it.
    NotBearer,
    Token(String),
}

fn bearer_header(headers: &HeaderMap) -> BearerHeader {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return BearerHeader::Absent;
    };
    let Ok(value) = value.to_str() else {
        return BearerHeader::Malformed;
    };
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            BearerHeader::Token(token.trim().to_owned())
        }
        _ => BearerHeader::NotBearer,
    }
}

fn malformed_authorization() -> OAuthError {
    OAuthError::invalid_request("malformed Authorization header").bearer()
}

/// The access token of a protected-resource request: the `Authorization: Bearer` header
/// (RFC 6750 §2.1) or, when `body` is given and form-encoded, its `access_token` (§2.2), never
/// both. `None` when neither is there. Errors carry the Bearer challenge (§3).
pub async fn access_token(
    app: &App,
    headers: &HeaderMap,
    body: Option<Body>,
) -> OAuthResult<Option<String>> {
    let from_header = match bearer_header(headers) {
        BearerHeader::Absent => None,
        BearerHeader::Malformed => return Err(malformed_authorization()),
        BearerHeader::NotBearer => {
            return Err(
                OAuthError::invalid_request("use the Bearer authorization scheme").bearer(),
            );
        }
        BearerHeader::Token(token) => Some(token),
    };
    let Some(body) = body else {
        return Ok(from_header);
    };
    let has_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let from_body = if has_form {
        // Read as before the typed requests: the first `access_token`, repeats not refused.
        let params = read_form_params(app, headers, body)
            .await
            .and_then(|params| check_request_params(&params).map(|()| params))
            .map_err(OAuthError::bearer)?;
        first_value(&params, "access_token").map(str::to_owned)
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => {
            Err(OAuthError::invalid_request("send the access token once, not twice").bearer())
        }
        (token, None) | (None, token) => Ok(token),
    }
}

/// The bearer token of a registration request (RFC 7591 §3, RFC 7592 §2): the initial or the
/// registration access token. 401 when there is none.
pub fn registration_token(headers: &HeaderMap) -> OAuthResult<String> {
    match bearer_header(headers) {
        BearerHeader::Absent => {
            let mut e = OAuthError::invalid_token("a bearer token is required");
            e.style = Style::BearerNoCredentials;
            Err(e)
        }
        BearerHeader::Malformed => Err(malformed_authorization()),
        BearerHeader::NotBearer => Err(OAuthError::invalid_token(
            "use the Bearer authorization scheme",
        )),
        BearerHeader::Token(token) => Ok(token),
    }
}

/// The client metadata of a registration request: a JSON object (RFC 7591 §3.1).
pub async fn client_metadata(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> OAuthResult<ClientMetadata> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !content_type.starts_with("application/json") {
        return Err(OAuthError::invalid_request(
            "the body must be application/json (RFC 7591 §3.1)",
        ));
    }
    let bytes = axum::body::to_bytes(body, app.config.max_body_bytes)
        .await
        .map_err(|e| body_error(&e))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|_| OAuthError::invalid_request("the body is not JSON"))?;
    if !value.is_object() {
        return Err(bad_metadata("the client metadata must be a JSON object"));
    }
    if let Some(problem) = control_characters(&value) {
        return Err(bad_metadata(problem));
    }
    serde_json::from_value(value)
        .map_err(|e| bad_metadata(format!("malformed client metadata: {e}")))
}

/// Where a JSON document holds text no metadata value can: a control character in a member
/// name, a NUL byte in a string, or a control character other than tab and line breaks.
fn control_characters(value: &serde_json::Value) -> Option<String> {
    use serde_json::Value;
    let bad = |s: &str| {
        s.chars()
            .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
    };
    match value {
        Value::String(s) if bad(s) => Some("a value holds a control character".into()),
        Value::Array(items) => items.iter().find_map(control_characters),
        Value::Object(members) => members.iter().find_map(|(name, v)| {
            if name.chars().any(char::is_control) {
                Some("a member name holds a control character".into())
            } else {
                control_characters(v)
            }
        }),
        _ => None,
    }
}

#[cfg(test)]
mod typed_request_tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> FormParams {
        let params = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match FormParams::checked(params) {
            Ok(form) => form,
            Err(e) => panic!("refused: {}", e.description),
        }
    }

    fn basic(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            axum::http::HeaderValue::from_str(value).unwrap(),
        );
        headers
    }

    fn refusal<T>(result: OAuthResult<T>) -> (&'static str, String) {
        match result {
            Ok(_) => panic!("accepted"),
            Err(e) => (e.code.as_str(), e.description),
        }
    }

    #[test]
    fn a_repeated_parameter_is_refused_and_an_empty_one_is_omitted() {
        let repeated = FormParams::checked(vec![
            ("scope".into(), "a".into()),
            ("scope".into(), "b".into()),
        ]);
        assert_eq!(
            refusal(repeated),
            (
                "invalid_request",
                "the parameter scope appears more than once".into()
            )
        );
        assert_eq!(form(&[("scope", "")]).get("scope"), None);
    }

    #[test]
    fn client_credentials_take_exactly_one_method() {
        let none = HeaderMap::new();
        // "app:s3cret"
        let header = basic("Basic YXBwOnMzY3JldA==");
        match client_credentials(&header, &form(&[])) {
            Ok(ClientCredentials::Secret(c)) => {
                assert_eq!(
                    (c.client_id.as_str(), c.secret.as_deref()),
                    ("app", Some("s3cret"))
                );
                assert!(c.basic);
            }
            _ => panic!("Basic credentials not read"),
        }
        let two = client_credentials(&header, &form(&[("client_secret", "x")]));
        assert_eq!(
            refusal(two).1,
            "use one client authentication method, not two"
        );
        let other_id = client_credentials(&header, &form(&[("client_id", "other")]));
        assert_eq!(
            refusal(other_id).1,
            "client_id differs from the authenticated client"
        );
        let nothing = client_credentials(&none, &form(&[]));
        assert_eq!(refusal(nothing).0, "invalid_client");
        let no_id = client_credentials(&none, &form(&[("client_secret", "x")]));
        assert_eq!(refusal(no_id).1, "client_id is missing");
        let assertion_and_secret = client_credentials(
            &none,
            &form(&[
                ("client_assertion_type", client_assertion::JWT_BEARER),
                ("client_assertion", "a.b.c"),
                ("client_secret", "x"),
            ]),
        );
        assert_eq!(refusal(assertion_and_secret).0, "invalid_request");
        let public = client_credentials(&none, &form(&[("client_id", "app")]));
        assert!(matches!(public, Ok(ClientCredentials::Secret(c)) if c.secret.is_none()));
    }

    #[test]
    fn a_token_request_names_a_served_grant_and_its_parameters() {
        assert_eq!(
            refusal(TokenRequest::parse(&form(&[]))).1,
            "grant_type is missing"
        );
        assert_eq!(
            refusal(TokenRequest::parse(&form(&[("grant_type", "password")]))).0,
            "unsupported_grant_type"
        );
        let no_code = TokenRequest::parse(&form(&[("grant_type", "authorization_code")]));
        assert_eq!(refusal(no_code).1, "code is missing");
        let refresh = TokenRequest::parse(&form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", "r"),
            ("scope", ""),
        ]));
        assert!(matches!(refresh, Ok(TokenRequest::RefreshToken(r)) if r.scope.is_none()));
    }
}
