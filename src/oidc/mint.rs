//! Minting what a token response carries: the access token (an RFC 9068 JWT or an opaque
//! value), the ID token (OpenID Connect Core §2), and refresh tokens.

use serde_json::{Map, Value, json};

use crate::error::{OAuthError, OAuthResult};
use crate::keys::{SigningAlg, half_hash};
use crate::oidc::{Provider, acr, scopes, subject};
use crate::secrets::{TokenKind, new_id, new_token, sha256, token_hash};
use crate::store::{
    AccessTokenFormat, AccessTokenRecord, ClientRecord, GrantRecord, RefreshPolicy,
    RefreshTokenRecord, UserRecord,
};

/// Access tokens are always signed with the server's RS256 key, whatever the client's ID-token
/// algorithm: resource servers validate them without knowing the client.
pub const ACCESS_TOKEN_ALG: SigningAlg = SigningAlg::RS256;

pub struct MintedAccess {
    pub token: String,
    pub record: AccessTokenRecord,
}

pub fn access_token(
    provider: &Provider,
    client: &ClientRecord,
    grant: &GrantRecord,
    scope: &str,
    now: i64,
) -> OAuthResult<MintedAccess> {
    let ttl = provider.config.tokens.access_token_ttl_secs;
    let (token, token_hash) = match client.settings.access_token_format {
        AccessTokenFormat::Opaque => {
            let token = new_token(TokenKind::AccessToken);
            let hash = token_hash(&token);
            (token, hash)
        }
        AccessTokenFormat::Jwt => {
            let jti = new_id();
            let sub = match grant.user_id {
                Some(id) => subject::subject_for(provider, client, id),
                None => client.client_id.clone(),
            };
            let claims = json!({
                "iss": provider.config.issuer,
                "sub": sub,
                "aud": client.client_id,
                "client_id": client.client_id,
                "iat": now,
                "exp": now + ttl,
                "jti": jti,
                "scope": scope,
                "auth_time": grant.auth_time,
            });
            let token = provider
                .keys
                .sign(ACCESS_TOKEN_ALG, "at+jwt", &claims)
                .map_err(OAuthError::server_error)?;
            (token, sha256(jti.as_bytes()))
        }
    };
    Ok(MintedAccess {
        token,
        record: AccessTokenRecord {
            token_hash,
            grant_id: grant.id.clone(),
            client_id: client.client_id.clone(),
            user_id: grant.user_id,
            scope: scope.to_owned(),
            created_at: now,
            expires_at: now + ttl,
        },
    })
}

pub struct IdTokenInput<'a> {
    pub client: &'a ClientRecord,
    pub grant: &'a GrantRecord,
    pub user: &'a UserRecord,
    pub scope: &'a str,
    pub access_token: &'a str,
    /// The nonce belongs in the ID token of the code exchange only.
    pub include_nonce: bool,
    pub now: i64,
}

pub fn id_token(provider: &Provider, input: IdTokenInput<'_>) -> OAuthResult<String> {
    let alg = input.client.settings.id_token_alg;
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(provider.config.issuer));

    claims.insert("aud".into(), json!(input.client.client_id));
    claims.insert("azp".into(), json!(input.client.client_id));
    claims.insert("iat".into(), json!(input.now));
    claims.insert(
        "exp".into(),
        json!(input.now + provider.config.tokens.id_token_ttl_secs),
    );
    claims.insert("auth_time".into(), json!(input.grant.auth_time));
    // How the user proved who they are, and the context that reached (`oidc::acr`).
    claims.insert("amr".into(), json!(acr::methods(&input.grant.amr)));
    claims.insert("acr".into(), json!(acr::acr_of(&input.grant.amr)));
    // An ID token issued alone (RFC 8693 `requested_token_type` id_token) has no access token
    // to bind to.
    if !input.access_token.is_empty() {
        claims.insert("at_hash".into(), json!(half_hash(alg, input.access_token)));
    }
    if input.include_nonce
        && let Some(nonce) = &input.grant.nonce
    {
        claims.insert("nonce".into(), json!(nonce));
    }
    claims.extend(subject::claims_for(
        provider,
        input.client,
        input.scope,
        input.user,
    ));
    provider
        .keys
        .sign(alg, "JWT", &Value::Object(claims))
        .map_err(OAuthError::server_error)
}

/// Whether this exchange hands out a refresh token.
pub fn wants_refresh(client: &ClientRecord, scope: &str) -> bool {
    match client.settings.refresh_policy {
        RefreshPolicy::Always => true,
        RefreshPolicy::OfflineAccess => scopes::contains(scope, scopes::OFFLINE_ACCESS),
        RefreshPolicy::Never => false,
    }
}

pub fn refresh_token(
    provider: &Provider,
    grant_id: &str,
    now: i64,
) -> (String, RefreshTokenRecord) {
    let token = new_token(TokenKind::RefreshToken);
    let record = RefreshTokenRecord {
        token_hash: token_hash(&token),
        grant_id: grant_id.to_owned(),
        created_at: now,
        expires_at: now + provider.config.tokens.refresh_token_ttl_secs,
    };
    (token, record)
}

/// The JSON body of a successful token response (RFC 6749 §5.1).
pub fn token_response(
    provider: &Provider,
    access_token: &str,
    scope: &str,
    id_token: Option<String>,
    refresh_token: Option<String>,
) -> Value {
    let mut body = json!({
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": provider.config.tokens.access_token_ttl_secs,
        "scope": scope,
    });
    if let Some(id_token) = id_token {
        body["id_token"] = json!(id_token);
    }
    if let Some(refresh) = refresh_token {
        body["refresh_token"] = json!(refresh);
    }
    body
}

/// What a token response for a user's grant carries, minted but not stored yet.
struct Minted {
    access: MintedAccess,
    id_token: Option<String>,
    refresh: Option<(String, RefreshTokenRecord)>,
}

fn mint_for_grant(
    provider: &Provider,
    client: &ClientRecord,
    grant: &GrantRecord,
    user: &UserRecord,
    include_nonce: bool,
    now: i64,
) -> OAuthResult<Minted> {
    let access = access_token(provider, client, grant, &grant.scope, now)?;
    let id_token = if scopes::contains(&grant.scope, scopes::OPENID) {
        Some(id_token(
            provider,
            IdTokenInput {
                client,
                grant,
                user,
                scope: &grant.scope,
                access_token: &access.token,
                include_nonce,
                now,
            },
        )?)
    } else {
        None
    };
    let refresh =
        wants_refresh(client, &grant.scope).then(|| refresh_token(provider, &grant.id, now));
    Ok(Minted {
        access,
        id_token,
        refresh,
    })
}

impl Minted {
    fn refresh_record(&self) -> Option<&RefreshTokenRecord> {
        self.refresh.as_ref().map(|(_, r)| r)
    }

    fn response(self, provider: &Provider, scope: &str) -> Value {
        token_response(
            provider,
            &self.access.token,
            scope,
            self.id_token,
            self.refresh.map(|(t, _)| t),
        )
    }
}

/// The whole token response for a user's stored grant: access token, an ID token when `openid`
/// was granted, a refresh token when the client's policy gives one, all stored together.
pub async fn issue_for_grant(
    provider: &Provider,
    client: &ClientRecord,
    grant: &GrantRecord,
    user: &UserRecord,
    include_nonce: bool,
    now: i64,
) -> OAuthResult<Value> {
    let minted = mint_for_grant(provider, client, grant, user, include_nonce, now)?;
    provider
        .store
        .store_tokens(Some(&minted.access.record), minted.refresh_record())
        .await?;
    Ok(minted.response(provider, &grant.scope))
}

/// As [`issue_for_grant`], for a grant not stored yet: the grant is stored with its tokens, all
/// or nothing, so a failure leaves no grant without tokens behind (and costs one write, not
/// two).
pub async fn issue_for_new_grant(
    provider: &Provider,
    client: &ClientRecord,
    grant: &GrantRecord,
    user: &UserRecord,
    now: i64,
) -> OAuthResult<Value> {
    let minted = mint_for_grant(provider, client, grant, user, false, now)?;
    provider
        .store
        .create_grant_with_tokens(grant, Some(&minted.access.record), minted.refresh_record())
        .await?;
    Ok(minted.response(provider, &grant.scope))
}
