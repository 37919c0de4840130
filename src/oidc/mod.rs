//! The provider: everything an app sees. Nothing here knows how Telegram proved the user.

pub mod acr;
pub mod authorize;
pub mod ciba;
pub mod client_assertion;
pub mod client_auth;
pub mod clients;
pub mod device;
pub mod discovery;
pub mod grant_ciba;
pub mod grant_client_credentials;
pub mod grant_code;
pub mod grant_device;
pub mod grant_refresh;
pub mod grant_token_exchange;
pub mod introspect;
pub mod logout;
pub mod mint;
pub mod pkce;
pub mod provider;
pub mod registration;
pub mod revoke;
pub mod scopes;
pub mod subject;
pub mod token_lookup;
pub mod userinfo;
pub use provider::Provider;
