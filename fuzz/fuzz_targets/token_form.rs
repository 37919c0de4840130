//! The token endpoint's body and `Authorization` header: the strict form parser, the
//! one-value-per-parameter check, client credentials (Basic, post, assertion), the grant's
//! typed request, and a token exchange checked against a client registered for it.
#![no_main]

use std::sync::LazyLock;

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;
use telegram_oidc::oidc::client_auth::ClientCredentials;
use telegram_oidc::oidc::clients::{NewClient, build_client};
use telegram_oidc::oidc::grant_token_exchange;
use telegram_oidc::store::{ClientRecord, TokenExchangeSettings};
use telegram_oidc::web::extract::{
    FormParams, TokenRequest, client_credentials, introspection_request, parse_params,
    revocation_request,
};

static CLIENT: LazyLock<ClientRecord> = LazyLock::new(|| {
    let new = NewClient {
        name: "Fuzz".into(),
        redirect_uris: vec!["https://app.example.com/cb".into()],
        scopes: vec!["openid".into(), "profile".into()],
        ..NewClient::default()
    };
    let mut client = build_client(new, 0).expect("a valid client").0;
    client.settings.token_exchange = Some(TokenExchangeSettings::default());
    client
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // The first line is the Authorization header (if it is a valid header value), the rest the
    // body.
    let (authorization, body) = text.split_once('\n').unwrap_or(("", text));
    let mut headers = HeaderMap::new();
    if !authorization.is_empty()
        && let Ok(value) = HeaderValue::from_str(authorization)
    {
        headers.insert(header::AUTHORIZATION, value);
    }
    let Ok(pairs) = parse_params(body) else {
        return;
    };
    let Ok(form) = FormParams::checked(pairs) else {
        return;
    };
    match client_credentials(&headers, &form) {
        Ok(ClientCredentials::Secret(credentials)) => {
            assert!(!credentials.client_id.is_empty());
        }
        Ok(ClientCredentials::Assertion { jwt, .. }) => assert!(!jwt.is_empty()),
        Err(_) => {}
    }
    let _ = introspection_request(&form);
    let _ = revocation_request(&form);
    if let Ok(TokenRequest::TokenExchange(params)) = TokenRequest::parse(&form)
        && let Ok(request) = grant_token_exchange::parse(&CLIENT, &params)
    {
        assert_eq!(Some(request.subject_token), params.subject_token.as_deref());
    }
});
