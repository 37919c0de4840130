//! OpenID Connect Discovery 1.0: the document, rendered once by the provider and served by
//! `web::discovery` with the JWKS.

use serde_json::{Value, json};

use crate::config::Config;
use crate::keys::SigningAlg;
use crate::oidc::{acr, client_assertion, scopes};

/// The discovery document: every value is one this server really honours.
pub fn document(config: &Config) -> Value {
    let issuer = &config.issuer;
    let algs: Vec<&str> = SigningAlg::ALL.iter().map(|a| a.as_str()).collect();
    let mut document = json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "device_authorization_endpoint": format!("{issuer}/device_authorization"),
        "userinfo_endpoint": format!("{issuer}/userinfo"),
        "jwks_uri": format!("{issuer}/jwks.json"),
        "revocation_endpoint": format!("{issuer}/revoke"),
        "end_session_endpoint": format!("{issuer}/logout"),
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": false,
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "revocation_endpoint_auth_signing_alg_values_supported": client_assertion::SIGNING_ALGS,
        "introspection_endpoint": format!("{issuer}/introspect"),
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        "introspection_endpoint_auth_signing_alg_values_supported": client_assertion::SIGNING_ALGS,
        "scopes_supported": scopes::SUPPORTED,
        "claims_supported": scopes::CLAIMS_SUPPORTED,
        "response_types_supported": ["code"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange", "urn:ietf:params:oauth:grant-type:device_code"],
        "subject_types_supported": ["public", "pairwise"],
        "response_modes_supported": ["query", "form_post"],
        "id_token_signing_alg_values_supported": algs,
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"],
        "token_endpoint_auth_signing_alg_values_supported": client_assertion::SIGNING_ALGS,
        "code_challenge_methods_supported": ["S256"],
        "prompt_values_supported": ["none", "login", "consent", "select_account"],
        "acr_values_supported": acr::SUPPORTED,
        "authorization_response_iss_parameter_supported": true,
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "require_request_uri_registration": false,
        "ui_locales_supported": ["en", "ru"],
    });
    if config.registration.enabled {
        document["registration_endpoint"] = json!(format!("{issuer}/register"));
    }
    // CIBA Core 1.0 §4, where the bot can ask users (push mode is not served).
    if config.telegram.update_mode() != crate::config::UpdateMode::None {
        document["backchannel_authentication_endpoint"] =
            json!(format!("{issuer}{}", super::ciba::PATH));
        document["backchannel_token_delivery_modes_supported"] = json!(["poll", "ping"]);
        document["backchannel_user_code_parameter_supported"] = json!(false);
        if let Some(grants) = document["grant_types_supported"].as_array_mut() {
            grants.push(json!(super::grant_ciba::GRANT_TYPE));
        }
    }
    document
}
