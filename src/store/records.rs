//! The records the stores keep. Bearer secrets appear only as SHA-256 digests (`*_hash`).

use serde::{Deserialize, Serialize};

use crate::keys::SigningAlg;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AccessTokenFormat {
    #[default]
    Jwt,
    Opaque,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ClientKind {
    /// Holds a secret (RFC 6749 §2.1).
    #[default]
    Confidential,
    /// Cannot keep a secret: must use PKCE.
    Public,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum RefreshPolicy {
    /// A refresh token only when the app asks for `offline_access`.
    #[default]
    OfflineAccess,
    /// A refresh token with every code exchange.
    Always,
    Never,
}

/// What an admin registers about an app; stored as JSON beside the client id so new
/// settings do not need a migration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientSettings {
    pub name: String,
    pub kind: ClientKind,
    pub redirect_uris: Vec<String>,
    pub allowed_scopes: Vec<String>,
    pub id_token_alg: SigningAlg,
    #[serde(default)]
    pub access_token_format: AccessTokenFormat,
    #[serde(default)]
    pub refresh_policy: RefreshPolicy,
    /// Skip the consent page (first-party apps).
    #[serde(default)]
    pub skip_consent: bool,
    /// May trade Telegram login data (Mini App initData, widget data) for tokens at the token
    /// endpoint (RFC 8693); `None`: may not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_exchange: Option<TokenExchangeSettings>,
    /// A service account: may use the client credentials grant for its allowed scopes.
    #[serde(default)]
    pub service_account: bool,
    #[serde(default)]
    pub subject_type: SubjectType,
    /// The pairwise sector (OpenID Connect Core §8.1); by default the redirect URI's host.
    #[serde(default)]
    pub sector_identifier: Option<String>,
    /// Release a synthetic `<sub>@<email_domain>` address under the `email` scope.
    #[serde(default)]
    pub synthetic_email: bool,
    /// Where RP-initiated logout may send the browser back to (exact match).
    #[serde(default)]
    pub post_logout_redirect_uris: Vec<String>,
    /// OpenID Connect Back-Channel Logout 1.0: where logout tokens are posted.
    #[serde(default)]
    pub backchannel_logout_uri: Option<String>,
    /// How the client proves itself at the token endpoint; `None` (clients registered before
    /// this setting existed): with its secret if confidential, with nothing if public.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<TokenEndpointAuthMethod>,
    /// The public keys behind `private_key_jwt` (RFC 7523): an inline JWK set ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// ... or where the client publishes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// SHA-256 (hex) of the registration access token of a dynamically registered client
    /// (RFC 7592); `None` for clients an admin registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_token_hash: Option<String>,
    /// The registered `sector_identifier_uri` (OpenID Connect Registration §2), whose host
    /// became `sector_identifier` once the document listed every redirect URI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector_identifier_uri: Option<String>,
    /// May start the device authorization grant (RFC 8628). Off unless registered: a known
    /// client id would otherwise let anyone phish users with its name on the approval page.
    #[serde(default)]
    pub device_flow: bool,
    /// Who may log in to this app (see `access`); `None`: every Telegram user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_policy: Option<crate::access::Rule>,
    /// Every login must also be confirmed in the bot chat (step-up), as if each request asked
    /// for `acr_values=urn:telegram-oidc:acr:bot-confirmed`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub require_bot_confirmation: bool,
    /// May start backchannel authentication (CIBA Core 1.0) and how it learns the answer;
    /// `None`: may not (a known client id would otherwise let anyone push questions with its
    /// name into users' chats).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciba: Option<CibaSettings>,
}

/// A client's registration for CIBA (CIBA Core 1.0 §4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CibaSettings {
    /// `backchannel_token_delivery_mode`.
    pub delivery_mode: CibaDeliveryMode,
    /// `backchannel_client_notification_endpoint`: where ping mode posts (CIBA §10.2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_notification_endpoint: Option<String>,
}

/// How the client learns of the answer. Push mode (§10.3) is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CibaDeliveryMode {
    /// The client polls the token endpoint (§7.3).
    Poll,
    /// The client is told at its notification endpoint, then fetches the tokens (§10.2).
    Ping,
}

impl CibaDeliveryMode {
    pub fn as_str(self) -> &'static str {
        match self {
            CibaDeliveryMode::Poll => "poll",
            CibaDeliveryMode::Ping => "ping",
        }
    }

    pub fn parse(s: &str) -> Option<CibaDeliveryMode> {
        match s {
            "poll" => Some(CibaDeliveryMode::Poll),
            "ping" => Some(CibaDeliveryMode::Ping),
            _ => None,
        }
    }
}

/// RFC 7591 §2 `token_endpoint_auth_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenEndpointAuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A JWT signed with one of the client's registered keys (RFC 7523 §2.2).
    PrivateKeyJwt,
    /// A public client.
    None,
}

impl TokenEndpointAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            TokenEndpointAuthMethod::ClientSecretBasic => "client_secret_basic",
            TokenEndpointAuthMethod::ClientSecretPost => "client_secret_post",
            TokenEndpointAuthMethod::PrivateKeyJwt => "private_key_jwt",
            TokenEndpointAuthMethod::None => "none",
        }
    }

    pub fn parse(s: &str) -> Option<TokenEndpointAuthMethod> {
        [
            TokenEndpointAuthMethod::ClientSecretBasic,
            TokenEndpointAuthMethod::ClientSecretPost,
            TokenEndpointAuthMethod::PrivateKeyJwt,
            TokenEndpointAuthMethod::None,
        ]
        .into_iter()
        .find(|m| m.as_str() == s)
    }
}

impl ClientSettings {
    /// Whether this client must authenticate with a signed JWT instead of a secret.
    pub fn uses_private_key_jwt(&self) -> bool {
        self.token_endpoint_auth_method == Some(TokenEndpointAuthMethod::PrivateKeyJwt)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SubjectType {
    /// `sub` is the Telegram id.
    #[default]
    Public,
    /// `sub` differs per sector and cannot be linked across sectors.
    Pairwise,
}

/// How a client's token exchanges are checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenExchangeSettings {
    /// The numeric id of another bot whose Mini App this client is: its initData is checked
    /// with Telegram's Ed25519 key and `signature`. `None`: this server's bot, checked with the
    /// bot token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub telegram_bot_id: Option<i64>,
}

#[derive(Clone)]
pub struct ClientRecord {
    pub client_id: String,
    pub secret_hash: Option<Vec<u8>>,
    pub settings: ClientSettings,
    pub created_at: i64,
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("client_id", &self.client_id)
            .field("has_secret", &self.secret_hash.is_some())
            .field("settings", &self.settings)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserRecord {
    pub telegram_id: i64,
    pub first_name: String,
    pub last_name: Option<String>,
    pub username: Option<String>,
    pub photo_url: Option<String>,
    pub language_code: Option<String>,
    pub is_premium: bool,
    pub phone_number: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    /// The configured groups the user was last found in (`groups` claim); `None`: never
    /// computed. Saving a user leaves them as they are: see `Store::set_user_groups`.
    pub groups: Option<Vec<String>>,
}

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id_hash: Vec<u8>,
    pub user_id: i64,
    pub auth_time: i64,
    pub amr: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// What the browser is, as its user agent says (e.g. "Firefox on Linux").
    pub device: Option<String>,
    /// Where it was when it signed in, roughly (a GeoIP database's city and country).
    pub place: Option<String>,
    /// When the session was last used (coarse: see `flow::session::find`).
    pub last_used_at: i64,
}

#[derive(Debug, Clone)]
pub struct PendingAuthorization {
    pub id_hash: Vec<u8>,
    pub client_id: String,
    /// The validated authorization request, as JSON.
    pub request: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// One user's authorization of one app, from which codes and tokens descend; revoking it
/// revokes all of them.
#[derive(Debug, Clone)]
pub struct GrantRecord {
    pub id: String,
    pub client_id: String,
    pub user_id: Option<i64>,
    pub scope: String,
    pub auth_time: i64,
    pub amr: String,
    pub nonce: Option<String>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    /// When the last token this grant can issue expires; extended by refresh rotation.
    pub expires_at: i64,
    /// SHA-256 of the browser session the grant was issued in, if any.
    pub session_hash: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
pub struct CodeRecord {
    pub code_hash: Vec<u8>,
    pub grant_id: String,
    pub redirect_uri: String,
    pub code_challenge: Option<String>,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct AccessTokenRecord {
    /// SHA-256 of the opaque token, or of the JWT's `jti`.
    pub token_hash: Vec<u8>,
    pub grant_id: String,
    pub client_id: String,
    pub user_id: Option<i64>,
    pub scope: String,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub struct RefreshTokenRecord {
    pub token_hash: Vec<u8>,
    pub grant_id: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// An access token as found, with the state of its grant.
#[derive(Debug, Clone)]
pub struct AccessTokenState {
    pub record: AccessTokenRecord,
    pub revoked: bool,
}

/// A refresh token as found, with its grant.
#[derive(Debug, Clone)]
pub struct RefreshTokenState {
    pub record: RefreshTokenRecord,
    pub used: bool,
    pub grant: GrantRecord,
}

/// A login started towards Telegram's OpenID Connect provider, waiting for its callback. The
/// secrets of the flow (PKCE verifier, nonce, the pending authorization handle) stay in the
/// browser's cookie; this row makes `state` single-use and binds it to that cookie.
#[derive(Debug, Clone)]
pub struct UpstreamLogin {
    /// SHA-256 of the `state` sent to Telegram.
    pub state_hash: Vec<u8>,
    /// SHA-256 of the browser cookie the callback must carry.
    pub binding_hash: Vec<u8>,
    pub created_at: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone)]
pub enum RedeemOutcome {
    Redeemed(CodeRecord),
    /// The code was used before: a sign of theft (RFC 6749 §4.1.2).
    AlreadyUsed {
        grant_id: String,
    },
    NotFound,
}

#[derive(Debug, Clone)]
pub enum RotateOutcome {
    Rotated(GrantRecord),
    /// A used refresh token came back: its whole family must go.
    Replayed {
        grant_id: String,
    },
    /// Unknown, expired, or its grant is revoked.
    Invalid,
}
