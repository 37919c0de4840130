//! The authorization request (`GET /authorize?...`): the strict query parser, the parameters
//! read once (`web::extract::authorize_params`) and `oidc::authorize::validate` against a
//! confidential and a public client.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use telegram_oidc::oidc::authorize::{self, AuthorizeError, Param};
use telegram_oidc::oidc::clients::{NewClient, build_client};
use telegram_oidc::oidc::pkce;
use telegram_oidc::store::{ClientKind, ClientRecord};
use telegram_oidc::web::extract::{authorize_params, parse_params};

fn client(kind: ClientKind) -> ClientRecord {
    let new = NewClient {
        name: "Fuzz".into(),
        kind,
        redirect_uris: vec![
            "https://app.example.com/cb".into(),
            "http://127.0.0.1/cb".into(),
            "com.example.app:/callback".into(),
        ],
        scopes: vec!["openid".into(), "profile".into(), "offline_access".into()],
        ..NewClient::default()
    };
    build_client(new, 0).expect("a valid client").0
}

static CLIENTS: LazyLock<[ClientRecord; 2]> =
    LazyLock::new(|| [client(ClientKind::Confidential), client(ClientKind::Public)]);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(pairs) = parse_params(text) else {
        return;
    };
    let params = authorize_params(&pairs);
    // client_id counts only when it is sent once, with a value (RFC 6749 §3.1).
    let sent: Vec<&str> = pairs
        .iter()
        .filter(|(k, _)| k == "client_id")
        .map(|(_, v)| v.as_str())
        .collect();
    let once = matches!(sent.as_slice(), [id] if !id.is_empty());
    assert_eq!(authorize::client_id_param(&params).is_ok(), once);
    for client in CLIENTS.iter() {
        match authorize::validate(&params, client) {
            Ok(request) => {
                // Nothing reaches the app but at a registered address, with a code
                // challenge that is S256 (or none, for a confidential client).
                assert!(authorize::redirect_uri_matches(
                    client,
                    &request.redirect_uri
                ));
                assert_eq!(
                    params.redirect_uri,
                    Param::Once(request.redirect_uri.clone())
                );
                assert!(params.repeated.is_none());
                assert!(!request.scope.is_empty());
                match &request.code_challenge {
                    Some(c) => assert!(pkce::is_valid_s256_challenge(c)),
                    None => assert_eq!(client.settings.kind, ClientKind::Confidential),
                }
            }
            Err(AuthorizeError::ToApp(error)) => {
                assert!(authorize::redirect_uri_matches(client, &error.redirect_uri));
            }
            Err(AuthorizeError::Unusable(_)) => {}
        }
    }
});
