//! Telegram's own OpenID Connect provider as an upstream (core.telegram.org/bots/telegram-login):
//! this server is the app towards Telegram (authorization code, PKCE S256, state, nonce) and
//! turns the verified ID token into a [`TelegramIdentity`].
//!
//! Telegram publishes an ES256K (secp256k1) key in its JWKS; `openidconnect` skips keys it
//! cannot parse instead of failing on the whole set, which is the behaviour wanted here. The
//! JWKS is a cache, not flow state: kept in memory and fetched again when an ID token names a
//! `kid` it does not hold (at most once per `jwks_refetch_interval_secs`).

use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AdditionalClaims, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret, CsrfToken,
    EmptyExtraTokenFields, EndpointNotSet, IdTokenFields, IdTokenVerifier, IssuerUrl,
    JsonWebKey as _, JsonWebKeySetUrl, Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl,
    RequestTokenError, Scope, StandardErrorResponse, StandardTokenResponse, TokenResponse as _,
    TokenUrl,
};
use serde::{Deserialize, Serialize};

use super::{ProofMethod, TelegramIdentity};
use crate::config::UpstreamOidcConfig;
use crate::secrets::constant_time_eq;

/// How long discovered endpoints are trusted before the discovery document is read again.
const METADATA_TTL_SECS: i64 = 24 * 3600;
/// Largest accepted `iat` in the future, in seconds (clock skew).
const IAT_SKEW_SECS: i64 = 60;

/// Where Telegram sends the browser back to, under the issuer (registered with BotFather).
pub const CALLBACK_PATH: &str = "/login/telegram-oidc/callback";

/// The claims Telegram adds to the standard ones: `id` is the Telegram user id (a number, or in
/// some tokens a string), which `sub` is not.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TelegramClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<serde_json::Value>,
}

impl AdditionalClaims for TelegramClaims {}

type TelegramIdTokenFields = IdTokenFields<
    TelegramClaims,
    EmptyExtraTokenFields,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;
type TelegramTokenResponse = StandardTokenResponse<TelegramIdTokenFields, CoreTokenType>;
type TelegramClient<HasAuthUrl = EndpointNotSet, HasTokenUrl = EndpointNotSet> = Client<
    TelegramClaims,
    CoreAuthDisplay,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJsonWebKey,
    CoreAuthPrompt,
    StandardErrorResponse<CoreErrorResponseType>,
    TelegramTokenResponse,
    CoreTokenIntrospectionResponse,
    CoreRevocableToken,
    CoreRevocationErrorResponse,
    HasAuthUrl,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    HasTokenUrl,
    EndpointNotSet,
>;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Telegram could not be reached or answered with something that is not a protocol answer.
    #[error("Telegram's login service is unavailable: {0}")]
    Unavailable(String),
    /// Telegram refused the code (expired, used, not ours).
    #[error("Telegram refused the login: {0}")]
    Refused(String),
    /// The ID token failed a check: signature, issuer, audience, nonce, expiry, claims.
    #[error("Telegram's ID token is not acceptable: {0}")]
    InvalidIdToken(String),
}

/// What discovery found, with the keys.
struct Provider {
    auth_url: AuthUrl,
    token_url: TokenUrl,
    jwks_uri: JsonWebKeySetUrl,
    jwks: CoreJsonWebKeySet,
    metadata_fetched_at: i64,
    jwks_fetched_at: i64,
}

pub struct UpstreamOidc {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect_uri: RedirectUrl,
    scopes: Vec<String>,
    jwks_refetch_interval_secs: i64,
    http: openidconnect::reqwest::Client,
    provider: RwLock<Option<Arc<Provider>>>,
    /// One discovery or JWKS fetch at a time; the others wait and reuse its result.
    fetching: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for UpstreamOidc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamOidc")
            .field("issuer", &self.issuer.as_str())
            .field("client_id", &self.client_id.as_str())
            .finish_non_exhaustive()
    }
}

/// The PKCE verifier and the nonce of one login, derived from the browser's cookie secret so
/// that neither is stored anywhere on the server.
pub struct LoginSecrets {
    pub pkce_verifier: String,
    pub nonce: String,
}

impl LoginSecrets {
    pub fn derive(browser_secret: &str) -> LoginSecrets {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let derive = |label: &[u8]| {
            URL_SAFE_NO_PAD.encode(crate::secrets::hmac_sha256(
                browser_secret.as_bytes(),
                label,
            ))
        };
        LoginSecrets {
            // 43 characters of base64url: RFC 7636 §4.1 asks for 43 to 128 unreserved ones.
            pkce_verifier: derive(b"telegram-oidc pkce verifier"),
            nonce: derive(b"telegram-oidc nonce"),
        }
    }
}

fn unavailable(e: impl std::fmt::Display) -> UpstreamError {
    UpstreamError::Unavailable(e.to_string())
}

impl UpstreamOidc {
    pub fn new(config: &UpstreamOidcConfig, redirect_uri: &str) -> Result<Self, UpstreamError> {
        let http = openidconnect::reqwest::Client::builder()
            // A redirect from the token endpoint could carry the code and secret elsewhere.
            .redirect(openidconnect::reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(config.http_timeout_secs))
            .build()
            .map_err(unavailable)?;
        Ok(UpstreamOidc {
            issuer: IssuerUrl::new(config.issuer.clone()).map_err(unavailable)?,
            client_id: ClientId::new(config.client_id.clone()),
            client_secret: ClientSecret::new(config.client_secret.expose().to_owned()),
            redirect_uri: RedirectUrl::new(redirect_uri.to_owned()).map_err(unavailable)?,
            scopes: config.scopes.clone(),
            jwks_refetch_interval_secs: config.jwks_refetch_interval_secs,
            http,
            provider: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    fn cached(&self) -> Option<Arc<Provider>> {
        self.provider.read().ok().and_then(|p| p.clone())
    }

    fn store(&self, provider: Provider) -> Arc<Provider> {
        let provider = Arc::new(provider);
        if let Ok(mut slot) = self.provider.write() {
            *slot = Some(provider.clone());
        }
        provider
    }

    /// The discovered provider, read again when it is older than a day.
    async fn provider(&self, now: i64) -> Result<Arc<Provider>, UpstreamError> {
        let fresh = |p: &Provider| now - p.metadata_fetched_at < METADATA_TTL_SECS;
        if let Some(p) = self.cached().filter(|p| fresh(p)) {
            return Ok(p);
        }
        let _guard = self.fetching.lock().await;
        if let Some(p) = self.cached().filter(|p| fresh(p)) {
            return Ok(p);
        }
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, issuer = %self.issuer.as_str(), "Telegram OIDC discovery failed");
                unavailable("discovery failed")
            })?;
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .ok_or_else(|| unavailable("the discovery document names no token endpoint"))?;
        Ok(self.store(Provider {
            auth_url: metadata.authorization_endpoint().clone(),
            token_url,
            jwks_uri: metadata.jwks_uri().clone(),
            jwks: metadata.jwks().clone(),
            metadata_fetched_at: now,
            jwks_fetched_at: now,
        }))
    }

    /// The provider with keys that include `kid`, fetching the JWKS again if the cached one
    /// lacks it and the last fetch is old enough.
    async fn provider_with_key(
        &self,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Arc<Provider>, UpstreamError> {
        let provider = self.provider(now).await?;
        let has_kid = |p: &Provider| match kid {
            Some(kid) => p
                .jwks
                .keys()
                .iter()
                .any(|k| k.key_id().is_some_and(|id| id.as_str() == kid)),
            None => true,
        };
        let may_refetch = |p: &Provider| now - p.jwks_fetched_at >= self.jwks_refetch_interval_secs;
        if has_kid(&provider) || !may_refetch(&provider) {
            return Ok(provider);
        }
        let _guard = self.fetching.lock().await;
        let provider = self.cached().unwrap_or(provider);
        if has_kid(&provider) || !may_refetch(&provider) {
            return Ok(provider);
        }
        let jwks = CoreJsonWebKeySet::fetch_async(&provider.jwks_uri, &self.http)
            .await
            .map_err(|e| {
                tracing::warn!(error = %e, "fetching Telegram's JWKS failed");
                unavailable("the key set could not be fetched")
            })?;
        tracing::info!(
            keys = jwks.keys().len(),
            "Telegram's JWKS fetched again for an unknown kid"
        );
        Ok(self.store(Provider {
            auth_url: provider.auth_url.clone(),
            token_url: provider.token_url.clone(),
            jwks_uri: provider.jwks_uri.clone(),
            jwks,
            metadata_fetched_at: provider.metadata_fetched_at,
            jwks_fetched_at: now,
        }))
    }

    fn client(
        &self,
        provider: &Provider,
    ) -> TelegramClient<openidconnect::EndpointSet, openidconnect::EndpointSet> {
        TelegramClient::new(
            self.client_id.clone(),
            self.issuer.clone(),
            provider.jwks.clone(),
        )
        .set_client_secret(self.client_secret.clone())
        .set_auth_uri(provider.auth_url.clone())
        .set_token_uri(provider.token_url.clone())
        .set_redirect_uri(self.redirect_uri.clone())
    }

    /// Where to send the browser: Telegram's authorization endpoint with state, nonce and the
    /// PKCE challenge (S256) of this login.
    pub async fn authorization_url(
        &self,
        state: &str,
        secrets: &LoginSecrets,
        now: i64,
    ) -> Result<String, UpstreamError> {
        let provider = self.provider(now).await?;
        let client = self.client(&provider);
        let challenge = PkceCodeChallenge::from_code_verifier_sha256(&PkceCodeVerifier::new(
            secrets.pkce_verifier.clone(),
        ));
        let state = state.to_owned();
        let nonce = secrets.nonce.clone();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                move || CsrfToken::new(state),
                move || Nonce::new(nonce),
            )
            .set_pkce_challenge(challenge);
        for scope in self.scopes.iter().filter(|s| *s != "openid") {
            request = request.add_scope(Scope::new(scope.clone()));
        }
        let (url, _, _) = request.url();
        Ok(url.to_string())
    }

    /// Redeems `code` at Telegram's token endpoint and verifies the ID token it returns.
    pub async fn redeem(
        &self,
        code: &str,
        secrets: &LoginSecrets,
        now: i64,
    ) -> Result<TelegramIdentity, UpstreamError> {
        let provider = self.provider(now).await?;
        let response = self
            .client(&provider)
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .set_pkce_verifier(PkceCodeVerifier::new(secrets.pkce_verifier.clone()))
            .request_async(&self.http)
            .await
            .map_err(|e| match e {
                RequestTokenError::ServerResponse(r) => {
                    UpstreamError::Refused(r.error().as_ref().to_owned())
                }
                RequestTokenError::Request(e) => {
                    tracing::warn!(error = %e, "Telegram's token endpoint could not be reached");
                    unavailable("the token endpoint could not be reached")
                }
                RequestTokenError::Parse(e, _) => {
                    UpstreamError::InvalidIdToken(format!("the token response is malformed: {e}"))
                }
                RequestTokenError::Other(e) => unavailable(e),
            })?;
        let id_token = response.id_token().ok_or_else(|| {
            UpstreamError::InvalidIdToken("the token response has no id_token".into())
        })?;
        let kid = crate::jose::header_kid(&id_token.to_string());
        let provider = self.provider_with_key(kid.as_deref(), now).await?;
        let verifier = IdTokenVerifier::<CoreJsonWebKey>::new_public_client(
            self.client_id.clone(),
            self.issuer.clone(),
            provider.jwks.clone(),
        )
        // Telegram picks one of these per bot; ES256K is not among what can be checked here,
        // and the HMAC algorithms would make the client secret a signing key.
        .set_allowed_algs([
            CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256,
            CoreJwsSigningAlgorithm::EcdsaP256Sha256,
            CoreJwsSigningAlgorithm::EdDsa,
        ])
        .set_time_fn(move || {
            DateTime::<Utc>::from_timestamp(now, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
        })
        .set_issue_time_verifier_fn(move |iat| {
            if iat.timestamp() > now + IAT_SKEW_SECS {
                Err("the ID token is issued in the future".into())
            } else {
                Ok(())
            }
        });
        let expected_nonce = secrets.nonce.clone();
        // Whether Telegram echoes the nonce is reported both ways: checked when present; state
        // and PKCE bind the code to this login either way.
        let claims = id_token
            .claims(&verifier, move |nonce: Option<&Nonce>| match nonce {
                Some(n) if constant_time_eq(n.secret().as_bytes(), expected_nonce.as_bytes()) => {
                    Ok(())
                }
                Some(_) => Err("nonce mismatch".to_owned()),
                None => Ok(()),
            })
            .map_err(|e| UpstreamError::InvalidIdToken(e.to_string()))?;
        identity_from_claims(claims, now)
    }
}

/// The Telegram user id of the `id` claim: a positive number, or a string of digits.
pub fn telegram_id(claim: Option<&serde_json::Value>) -> Option<i64> {
    let id = match claim? {
        serde_json::Value::Number(n) => n.as_i64()?,
        serde_json::Value::String(s)
            if !s.is_empty() && s.len() <= 19 && s.bytes().all(|b| b.is_ascii_digit()) =>
        {
            s.parse().ok()?
        }
        _ => return None,
    };
    (id > 0).then_some(id)
}

/// E.164 with its `+` (OpenID Connect Core §5.1), whichever way Telegram wrote it.
fn phone_number(raw: &str) -> Option<String> {
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    (!digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("+{digits}"))
}

fn identity_from_claims(
    claims: &openidconnect::IdTokenClaims<TelegramClaims, CoreGenderClaim>,
    now: i64,
) -> Result<TelegramIdentity, UpstreamError> {
    let id = telegram_id(claims.additional_claims().id.as_ref()).ok_or_else(|| {
        UpstreamError::InvalidIdToken("the ID token has no usable `id` claim".into())
    })?;
    let text = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
    let name = text(
        claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
    );
    let given = text(
        claims
            .given_name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
    );
    let family = text(
        claims
            .family_name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
    );
    let username = text(claims.preferred_username().map(|u| u.to_string()));
    let first_name = given
        .clone()
        .or_else(|| name.clone())
        .or_else(|| username.clone())
        .unwrap_or_default();
    let photo_url = claims
        .picture()
        .and_then(|p| p.get(None))
        .map(|p| p.to_string())
        .filter(|u| u.starts_with("https://"));
    let language_code = claims
        .locale()
        .map(|l| l.to_string())
        .filter(|l| l.len() <= 35 && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    let proven_at = claims
        .auth_time()
        .unwrap_or_else(|| claims.issue_time())
        .timestamp()
        .min(now);
    Ok(TelegramIdentity {
        id,
        first_name,
        last_name: if given.is_some() { family } else { None },
        username,
        photo_url,
        language_code,
        is_premium: false,
        phone_number: claims.phone_number().and_then(|p| phone_number(p.as_str())),
        method: ProofMethod::TelegramOidc,
        proven_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_id_claim_is_a_number_or_a_string_of_digits() {
        assert_eq!(telegram_id(Some(&json!(987654321))), Some(987654321));
        assert_eq!(telegram_id(Some(&json!("987654321"))), Some(987654321));
        for bad in [
            json!(-5),
            json!(0),
            json!("12a"),
            json!(""),
            json!("-5"),
            json!(1.5),
            json!("99999999999999999999"),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(telegram_id(Some(&bad)), None, "{bad}");
        }
        assert_eq!(telegram_id(None), None);
    }

    #[test]
    fn phone_numbers_get_their_plus() {
        assert_eq!(phone_number("79991234567").as_deref(), Some("+79991234567"));
        assert_eq!(
            phone_number("+447700900123").as_deref(),
            Some("+447700900123")
        );
        assert_eq!(phone_number("+1 555"), None);
        assert_eq!(phone_number(""), None);
    }

    #[test]
    fn login_secrets_are_derived_and_fit_pkce() {
        let a = LoginSecrets::derive("browser-secret-a");
        let b = LoginSecrets::derive("browser-secret-b");
        assert_eq!(a.pkce_verifier.len(), 43);
        assert_ne!(a.pkce_verifier, a.nonce);
        assert_ne!(a.pkce_verifier, b.pkce_verifier);
        assert_eq!(
            a.pkce_verifier,
            LoginSecrets::derive("browser-secret-a").pkce_verifier
        );
        assert!(
            a.pkce_verifier
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
    }

    #[test]
    fn header_kid_reads_the_header_only() {
        use base64::Engine;
        let h = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(br#"{"alg":"RS256","kid":"k1"}"#);
        assert_eq!(
            crate::jose::header_kid(&format!("{h}.e30.sig")).as_deref(),
            Some("k1")
        );
        assert_eq!(crate::jose::header_kid("not a jwt"), None);
    }
}
