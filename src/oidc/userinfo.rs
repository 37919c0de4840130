//! The UserInfo endpoint (OpenID Connect Core §5.3) and the access-token check it shares with
//! other protected resources (RFC 6750).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::error::{ErrorCode, OAuthError, OAuthResult};
use crate::oidc::client_auth::param;
use crate::oidc::mint::ACCESS_TOKEN_ALG;
use crate::oidc::{scopes, subject};
use crate::secrets::{sha256, token_hash};
use crate::state::{App, AppState};
use crate::store::AccessTokenRecord;
use crate::web;

/// The bearer token of an `Authorization: Bearer` header (RFC 6750 §2.1).
fn bearer_header(headers: &HeaderMap) -> OAuthResult<Option<String>> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| OAuthError::invalid_request("malformed Authorization header").bearer())?;
    match value.split_once(' ') {
        Some((scheme, token))
            if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
        {
            Ok(Some(token.trim().to_owned()))
        }
        _ => Err(OAuthError::invalid_request("use the Bearer authorization scheme").bearer()),
    }
}

/// Finds a live access token: a JWT must carry our signature, `typ: at+jwt`, our issuer and a
/// future `exp`, and its `jti` must be on record and its grant not revoked.
pub async fn check_access_token(
    app: &App,
    token: &str,
    now: i64,
) -> OAuthResult<AccessTokenRecord> {
    let invalid = || OAuthError::invalid_token("the access token is invalid, expired or revoked");
    if token.len() > 4096 {
        return Err(invalid());
    }
    let key = if token.matches('.').count() == 2 {
        let (header, claims) = app.verify_jwt(token, app.now()).map_err(|_| invalid())?;
        if header.get("typ").and_then(Value::as_str) != Some("at+jwt")
            || header.get("alg").and_then(Value::as_str) != Some(ACCESS_TOKEN_ALG.as_str())
            || claims.get("iss").and_then(Value::as_str) != Some(app.config.issuer.as_str())
            || claims
                .get("exp")
                .and_then(Value::as_i64)
                .is_none_or(|exp| exp <= now)
        {
            return Err(invalid());
        }
        let jti = claims
            .get("jti")
            .and_then(Value::as_str)
            .ok_or_else(invalid)?;
        sha256(jti.as_bytes())
    } else {
        token_hash(token)
    };
    let state = app
        .store
        .get_access_token(&key)
        .await?
        .ok_or_else(invalid)?;
    if state.revoked || state.record.expires_at <= now {
        return Err(invalid());
    }
    Ok(state.record)
}

async fn respond(app: &App, token: Option<String>) -> Response {
    let result: OAuthResult<Value> = async {
        let token = token.ok_or_else(|| {
            let mut e = OAuthError::new(ErrorCode::InvalidToken, "an access token is required");
            e.style = crate::error::Style::BearerNoCredentials;
            e
        })?;
        let now = app.now();
        let record = check_access_token(app, &token, now).await?;
        if !scopes::contains(&record.scope, scopes::OPENID) {
            return Err(OAuthError::new(
                ErrorCode::InsufficientScope,
                "the access token was not issued for the openid scope",
            )
            .bearer());
        }
        let user_id = record
            .user_id
            .ok_or_else(|| OAuthError::invalid_token("this token does not belong to a user"))?;
        let user = app
            .store
            .get_user(user_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_token("the user no longer exists"))?;
        let client = app
            .store
            .get_client(&record.client_id)
            .await?
            .ok_or_else(|| OAuthError::invalid_token("the app of this token no longer exists"))?;
        Ok(Value::Object(subject::claims_for(
            app,
            &client,
            &record.scope,
            &user,
        )))
    }
    .await;
    match result {
        Ok(claims) => {
            let mut response = Json(claims).into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(e) => e.bearer().into_response(),
    }
}

pub async fn userinfo_get(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match bearer_header(&headers) {
        Ok(token) => respond(&app, token).await,
        Err(e) => e.into_response(),
    }
}

/// POST accepts the header or a form-encoded `access_token` (RFC 6750 §2.2), never both.
pub async fn userinfo_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let from_header = match bearer_header(&headers) {
        Ok(token) => token,
        Err(e) => return e.into_response(),
    };
    let has_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });
    let from_body = if has_form {
        match web::read_form_params(&app, &headers, body).await {
            Ok(params) => param(&params, "access_token").map(str::to_owned),
            Err(e) => return e.bearer().into_response(),
        }
    } else {
        None
    };
    match (from_header, from_body) {
        (Some(_), Some(_)) => OAuthError::invalid_request("send the access token once, not twice")
            .bearer()
            .into_response(),
        (token, None) | (None, token) => respond(&app, token).await,
    }
}
