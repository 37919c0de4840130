//! Telegram's own OpenID Connect provider as an upstream (core.telegram.org/bots/telegram-login):
//! this server is the app towards Telegram (authorization code, PKCE S256, state, nonce) and
//! turns the verified ID token into a [`TelegramIdentity`].
//!
//! `openidconnect` reads the discovery document, builds the authorization URL and redeems the
//! code. The ID token comes back as text and is verified by [`crate::jose::IssuerKeys`]: Telegram
//! signs with RS256, ES256, EdDSA or ES256K (secp256k1), chosen per bot, and `openidconnect`
//! refuses the whole token response when the header says ES256K. Keys this server cannot use
//! are skipped, never fatal.
//!
//! The JWKS is a cache, not flow state: kept in memory; read again at the next login once it is
//! older than `jwks_refetch_interval_secs`, and at once when an ID token names a `kid` it does
//! not hold (one fetch at a time, and at most one every [`UNKNOWN_KID_REFETCH_SECS`]).

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use openidconnect::core::{
    CoreAuthDisplay, CoreAuthPrompt, CoreAuthenticationFlow, CoreErrorResponseType,
    CoreGenderClaim, CoreJsonWebKey, CoreJsonWebKeySet, CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm, CoreProviderMetadata, CoreRevocableToken, CoreRevocationErrorResponse,
    CoreTokenIntrospectionResponse, CoreTokenType,
};
use openidconnect::{
    AccessToken, AdditionalClaims, AuthUrl, AuthorizationCode, Client, ClientId, ClientSecret,
    CsrfToken, EndpointNotSet, ExtraTokenFields, IdToken, IdTokenClaims, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, RefreshToken,
    RequestTokenError, Scope, StandardErrorResponse, StandardTokenResponse, TokenUrl,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ProofMethod, TelegramIdentity};
use crate::config::UpstreamOidcConfig;
use crate::jose::{IssuerKeys, Reason};
use crate::secrets::constant_time_eq;

/// How long discovered endpoints are trusted before the discovery document is read again.
const METADATA_TTL_SECS: i64 = 24 * 3600;
/// Largest accepted `iat` in the future, in seconds (clock skew).
const IAT_SKEW_SECS: i64 = 60;
/// Shortest time between two fetches of Telegram's JWKS caused by an ID token whose `kid` is not
/// in the cached set: a rotation is followed within seconds, and a flood of tokens naming
/// made-up kids costs Telegram one request per this many seconds.
pub const UNKNOWN_KID_REFETCH_SECS: i64 = 5;
/// Largest discovery document or JWK set read from Telegram.
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
/// Largest ID token accepted.
const MAX_ID_TOKEN_LEN: usize = 16 * 1024;
/// Keys looked at in one JWK set.
const MAX_KEYS: usize = 32;

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

type TelegramIdTokenClaims = IdTokenClaims<TelegramClaims, CoreGenderClaim>;

/// The token response's own field: the ID token as text, for [`IssuerKeys`] to verify.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TelegramTokenFields {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    id_token: Option<String>,
}

impl ExtraTokenFields for TelegramTokenFields {}

/// Telegram's token response. `openidconnect`'s own type parses the ID token on arrival and
/// fails on an ES256K header; this one leaves the token as text, so [`id_token`] of
/// `openidconnect::TokenResponse` is always `None` and [`Self::raw_id_token`] has it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TelegramTokenResponse(StandardTokenResponse<TelegramTokenFields, CoreTokenType>);

impl TelegramTokenResponse {
    fn raw_id_token(&self) -> Option<&str> {
        self.0.extra_fields().id_token.as_deref()
    }
}

impl OAuth2TokenResponse for TelegramTokenResponse {
    type TokenType = CoreTokenType;
    fn access_token(&self) -> &AccessToken {
        self.0.access_token()
    }
    fn token_type(&self) -> &CoreTokenType {
        self.0.token_type()
    }
    fn expires_in(&self) -> Option<Duration> {
        self.0.expires_in()
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.0.refresh_token()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.0.scopes()
    }
}

impl
    openidconnect::TokenResponse<
        TelegramClaims,
        CoreGenderClaim,
        CoreJweContentEncryptionAlgorithm,
        CoreJwsSigningAlgorithm,
    > for TelegramTokenResponse
{
    fn id_token(
        &self,
    ) -> Option<
        &IdToken<
            TelegramClaims,
            CoreGenderClaim,
            CoreJweContentEncryptionAlgorithm,
            CoreJwsSigningAlgorithm,
        >,
    > {
        None
    }
}

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
    /// The ID token's header or signature is not Telegram's: a bad signature, `alg: none`, an
    /// HMAC algorithm, a key Telegram does not publish. Never from Telegram itself.
    #[error("Telegram's ID token is forged or corrupted: {0}")]
    Forged(Reason),
    /// The ID token is signed, but a claim fails: issuer, audience, nonce, expiry, `id`.
    #[error("Telegram's ID token is not acceptable: {0}")]
    InvalidIdToken(String),
}

/// What discovery found, with the keys.
struct Provider {
    auth_url: AuthUrl,
    token_url: TokenUrl,
    jwks_uri: String,
    keys: Arc<IssuerKeys>,
    metadata_fetched_at: i64,
    jwks_fetched_at: i64,
}

pub struct UpstreamOidc {
    issuer: IssuerUrl,
    client_id: ClientId,
    client_secret: ClientSecret,
    redirect_uri: RedirectUrl,
    scopes: Vec<String>,
    /// Age after which the JWKS is read again at the next login, whatever the `kid`.
    jwks_max_age_secs: i64,
    http: openidconnect::reqwest::Client,
    provider: RwLock<Option<Arc<Provider>>>,
    /// When the JWKS was last asked for, answered or not: the floor between two fetches.
    last_jwks_attempt: AtomicI64,
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

fn invalid(reason: &str) -> UpstreamError {
    UpstreamError::InvalidIdToken(reason.to_owned())
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
            jwks_max_age_secs: config.jwks_refetch_interval_secs,
            http,
            provider: RwLock::new(None),
            last_jwks_attempt: AtomicI64::new(i64::MIN),
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

    /// A JSON document from Telegram (discovery, JWKS), at most [`MAX_DOCUMENT_BYTES`].
    async fn get_json(&self, url: &str, what: &'static str) -> Result<Value, UpstreamError> {
        let failed = |e: &dyn std::fmt::Display| {
            tracing::warn!(error = %e, what, "a request to Telegram's login service failed");
            unavailable(format!("the {what} could not be fetched"))
        };
        let mut response = self
            .http
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| failed(&e))?;
        if !response.status().is_success() {
            return Err(failed(&format!("HTTP status {}", response.status())));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| failed(&e))? {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(failed(&"the document is too large"));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|_| failed(&"the document is not JSON"))
    }

    async fn fetch_keys(&self, jwks_uri: &str, now: i64) -> Result<IssuerKeys, UpstreamError> {
        self.last_jwks_attempt.store(now, Ordering::SeqCst);
        let set = self.get_json(jwks_uri, "key set").await?;
        IssuerKeys::parse(&set, MAX_KEYS).map_err(|reason| {
            tracing::warn!(reason, "Telegram's JWKS is not a JWK set");
            unavailable("the key set is malformed")
        })
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
        let url = self
            .issuer
            .join(".well-known/openid-configuration")
            .map_err(unavailable)?;
        let document = self.get_json(url.as_str(), "discovery document").await?;
        let metadata: CoreProviderMetadata = serde_json::from_value(document).map_err(|e| {
            tracing::warn!(error = %e, "Telegram's discovery document does not parse");
            unavailable("the discovery document is malformed")
        })?;
        if metadata.issuer() != &self.issuer {
            tracing::warn!(
                found = %metadata.issuer().as_str(),
                "Telegram's discovery document names another issuer"
            );
            return Err(unavailable("the discovery document names another issuer"));
        }
        let token_url = metadata
            .token_endpoint()
            .cloned()
            .ok_or_else(|| unavailable("the discovery document names no token endpoint"))?;
        let jwks_uri = metadata.jwks_uri().url().to_string();
        let keys = self.fetch_keys(&jwks_uri, now).await?;
        Ok(self.store(Provider {
            auth_url: metadata.authorization_endpoint().clone(),
            token_url,
            jwks_uri,
            keys: Arc::new(keys),
            metadata_fetched_at: now,
            jwks_fetched_at: now,
        }))
    }

    /// The provider with keys fit to verify a token naming `kid`: the JWKS is fetched again
    /// when it lacks `kid` (at most every [`UNKNOWN_KID_REFETCH_SECS`]) or is older than
    /// `jwks_refetch_interval_secs`. A stale set whose refresh fails still serves the kids it
    /// holds.
    async fn provider_with_key(
        &self,
        kid: Option<&str>,
        now: i64,
    ) -> Result<Arc<Provider>, UpstreamError> {
        let knows = |p: &Provider| kid.is_none_or(|kid| p.keys.has_kid(kid));
        let usable = |p: &Provider| knows(p) && now - p.jwks_fetched_at < self.jwks_max_age_secs;
        let floor_passed =
            || now - self.last_jwks_attempt.load(Ordering::SeqCst) >= UNKNOWN_KID_REFETCH_SECS;
        let provider = self.provider(now).await?;
        if usable(&provider) || (knows(&provider) && !floor_passed()) {
            return Ok(provider);
        }
        // An unknown kid waits for a fetch in flight and then looks at what it brought.
        let _guard = self.fetching.lock().await;
        let provider = self.cached().unwrap_or(provider);
        if usable(&provider) || !floor_passed() {
            return Ok(provider);
        }
        let stale_known = knows(&provider);
        let keys = match self.fetch_keys(&provider.jwks_uri, now).await {
            Ok(keys) => keys,
            Err(_) if stale_known => return Ok(provider),
            Err(e) => return Err(e),
        };
        tracing::info!(
            keys = keys.len(),
            unknown_kid = !stale_known,
            "Telegram's JWKS fetched again"
        );
        Ok(self.store(Provider {
            auth_url: provider.auth_url.clone(),
            token_url: provider.token_url.clone(),
            jwks_uri: provider.jwks_uri.clone(),
            keys: Arc::new(keys),
            metadata_fetched_at: provider.metadata_fetched_at,
            jwks_fetched_at: now,
        }))
    }

    fn client(
        &self,
        provider: &Provider,
    ) -> TelegramClient<openidconnect::EndpointSet, openidconnect::EndpointSet> {
        // The ID token is verified by `IssuerKeys`, not by `openidconnect`: no keys here.
        TelegramClient::new(
            self.client_id.clone(),
            self.issuer.clone(),
            CoreJsonWebKeySet::new(Vec::new()),
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
        let id_token = response
            .raw_id_token()
            .ok_or_else(|| invalid("the token response has no id_token"))?;
        let header = crate::jose::read_issuer_header(id_token, MAX_ID_TOKEN_LEN)
            .map_err(UpstreamError::Forged)?;
        let provider = self.provider_with_key(header.kid.as_deref(), now).await?;
        let (alg, claims) = provider
            .keys
            .verify(id_token, MAX_ID_TOKEN_LEN)
            .map_err(UpstreamError::Forged)?;
        let claims: TelegramIdTokenClaims = serde_json::from_value(Value::Object(claims))
            .map_err(|_| invalid("the ID token's claims are malformed"))?;
        self.check_claims(&claims, &secrets.nonce, now)?;
        tracing::debug!(alg = alg.as_str(), "Telegram's ID token verified");
        identity_from_claims(&claims, now)
    }

    /// OpenID Connect Core §3.1.3.7 for a token received from the token endpoint: issuer,
    /// audience (this bot alone), authorized party, expiry, issue time; the nonce when present
    /// (whether Telegram echoes it is reported both ways; state and PKCE bind the code to this
    /// login either way).
    fn check_claims(
        &self,
        claims: &TelegramIdTokenClaims,
        expected_nonce: &str,
        now: i64,
    ) -> Result<(), UpstreamError> {
        if claims.issuer() != &self.issuer {
            return Err(invalid("the issuer is not Telegram's"));
        }
        let client_id = self.client_id.as_str();
        let audiences = claims.audiences();
        if !audiences.iter().any(|a| a.as_str() == client_id) {
            return Err(invalid("the audience is not this bot"));
        }
        if audiences.iter().any(|a| a.as_str() != client_id) {
            return Err(invalid("the token is meant for another audience too"));
        }
        if claims
            .authorized_party()
            .is_some_and(|azp| azp.as_str() != client_id)
        {
            return Err(invalid("the authorized party is not this bot"));
        }
        if now >= claims.expiration().timestamp() {
            return Err(invalid("the ID token has expired"));
        }
        if claims.issue_time().timestamp() > now + IAT_SKEW_SECS {
            return Err(invalid("the ID token is issued in the future"));
        }
        match claims.nonce() {
            Some(n) if !constant_time_eq(n.secret().as_bytes(), expected_nonce.as_bytes()) => {
                Err(invalid("nonce mismatch"))
            }
            _ => Ok(()),
        }
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

/// The number in E.164 with its `+` (OpenID Connect Core §5.1), whichever way Telegram wrote
/// it: Telegram's tokens may carry the digits alone (`79991234567`). Spaces, dots, dashes and
/// brackets between digits are dropped, and a leading international `00` is read as `+`.
/// Anything else (letters, an extension, a number too short or longer than E.164's 15 digits,
/// a country code starting with 0) is no phone number: the claim is left out.
fn phone_number(raw: &str) -> Option<String> {
    let raw = raw.trim();
    let rest = raw
        .strip_prefix('+')
        .or_else(|| raw.strip_prefix("00"))
        .unwrap_or(raw);
    if rest.starts_with(|c: char| !c.is_ascii_digit() && c != '(') {
        return None;
    }
    let mut digits = String::with_capacity(15);
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '.' | '-' | '(' | ')' => {}
            _ => return None,
        }
    }
    ((7..=15).contains(&digits.len()) && !digits.starts_with('0')).then(|| format!("+{digits}"))
}

fn identity_from_claims(
    claims: &TelegramIdTokenClaims,
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
    fn phone_numbers_come_out_in_e164() {
        for (raw, e164) in [
            ("79991234567", "+79991234567"),
            ("+79991234567", "+79991234567"),
            ("+447700900123", "+447700900123"),
            ("447700900123", "+447700900123"),
            ("0079991234567", "+79991234567"),
            (" +7 (999) 123-45-67 ", "+79991234567"),
            ("1.555.010.9999", "+15550109999"),
        ] {
            assert_eq!(phone_number(raw).as_deref(), Some(e164), "{raw:?}");
        }
        for bad in [
            "",
            "+",
            "+1 555",
            "12345",
            "0999123456",
            "+0999123456",
            "1234567890123456",
            "+7999123456x7",
            "tel:+79991234567",
            "++79991234567",
            "+7\u{0}9991234567",
            "７９９９１２３４５６７",
        ] {
            assert_eq!(phone_number(bad), None, "{bad:?}");
        }
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
}
