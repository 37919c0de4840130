//! RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0) and back-channel logout
//! notifications (OpenID Connect Back-Channel Logout 1.0): the protocol. The pages and the
//! confirmation form are in `web::logout`.
//!
//! A `post_logout_redirect_uri` is followed only when it is registered for the app, matched
//! exactly; anything else gets a page. Without an `id_token_hint` naming the signed-in user,
//! the user confirms on a page first, so a stray link cannot sign anyone out.

use serde_json::json;

use crate::keys::KeyError;
use crate::oidc::Provider;
use crate::oidc::authorize::check_id_token_hint;
use crate::oidc::clients::chosen_by;
use crate::outbound::Outbound;
use crate::secrets::new_id;
use crate::store::{ClientRecord, StoreError, StoreResult};

const BACKCHANNEL_EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// A logout request's parameters as sent (RP-Initiated Logout §2), each `None` when absent or
/// empty.
#[derive(Debug, Clone, Default)]
pub struct LogoutParams {
    pub id_token_hint: Option<String>,
    pub client_id: Option<String>,
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// What a logout request asks for, checked.
#[derive(Debug)]
pub struct LogoutRequest {
    pub client: Option<ClientRecord>,
    /// The `sub` of a valid `id_token_hint`.
    pub hinted_sub: Option<String>,
    /// Registered for `client`, matched exactly.
    pub post_logout_redirect_uri: Option<String>,
    pub state: Option<String>,
}

/// Why a logout request is refused.
#[derive(Debug, thiserror::Error)]
pub enum LogoutError {
    /// Told to the person on a page.
    #[error("{0}")]
    Refused(&'static str),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks a logout request: the app, the hint, and where to go afterwards.
pub async fn check(
    provider: &Provider,
    params: &LogoutParams,
    now: i64,
) -> Result<LogoutRequest, LogoutError> {
    let hint = params.id_token_hint.as_deref();
    let mut client_id = params.client_id.clone();
    // The hint's audience names the app when client_id is absent.
    if client_id.is_none()
        && let Some(hint) = hint
        && let Ok((_, claims)) = provider.verify_jwt(hint, now)
    {
        client_id = match claims.get("aud") {
            Some(serde_json::Value::String(a)) => Some(a.clone()),
            Some(serde_json::Value::Array(list)) if list.len() == 1 => {
                list[0].as_str().map(str::to_owned)
            }
            _ => None,
        };
    }
    let client = match &client_id {
        Some(id) => match provider.store.get_client(id).await? {
            Some(c) => Some(c),
            None => {
                return Err(LogoutError::Refused(
                    "The app that sent you here is not registered.",
                ));
            }
        },
        None => None,
    };
    let hinted_sub = match (hint, &client) {
        (Some(hint), Some(client)) => match check_id_token_hint(provider, client, hint, now) {
            Some(sub) => Some(sub),
            None => {
                return Err(LogoutError::Refused(
                    "id_token_hint is not an ID token this server issued to this app.",
                ));
            }
        },
        (Some(_), None) => {
            return Err(LogoutError::Refused(
                "id_token_hint is not an ID token this server issued.",
            ));
        }
        _ => None,
    };
    if let Some(uri) = &params.post_logout_redirect_uri {
        let registered = client.as_ref().is_some_and(|c| {
            c.settings
                .post_logout_redirect_uris
                .iter()
                .any(|r| r == uri)
        });
        if !registered {
            return Err(LogoutError::Refused(
                "The address to return to after signing out is not registered for this app.",
            ));
        }
    }
    Ok(LogoutRequest {
        client,
        hinted_sub,
        post_logout_redirect_uri: params.post_logout_redirect_uri.clone(),
        state: params.state.clone(),
    })
}

/// Where the browser goes after signing out: the registered URI with `state` added
/// (RP-Initiated Logout §3; no `iss`, which belongs to authorization responses). `None` when
/// the URI is not a URL.
pub fn post_logout_redirect(uri: &str, state: Option<&str>) -> Option<String> {
    let mut url = url::Url::parse(uri).ok()?;
    if let Some(state) = state {
        url.query_pairs_mut().append_pair("state", state);
    }
    Some(url.into())
}

/// Ends the session `session_hash` and returns the apps to notify on their back-channel
/// logout URI, each with the user they knew and that URI.
pub async fn end_session(
    provider: &Provider,
    session_hash: &[u8],
) -> StoreResult<Vec<(ClientRecord, i64, String)>> {
    let clients = provider.store.take_session_clients(session_hash).await?;
    provider.store.delete_session(session_hash).await?;
    let mut notify = Vec::new();
    for (client_id, user_id) in clients {
        // An app deleted since, or a lookup failing now, is not notified; the session is gone.
        if let Ok(Some(client)) = provider.store.get_client(&client_id).await
            && let Some(uri) = client.settings.backchannel_logout_uri.clone()
        {
            notify.push((client, user_id, uri));
        }
    }
    Ok(notify)
}

/// The logout token (Back-Channel Logout §2.4) for the user the app knows as `sub`, signed
/// like the client's ID tokens.
pub fn logout_token(
    provider: &Provider,
    client: &ClientRecord,
    sub: &str,
    now: i64,
) -> Result<String, KeyError> {
    let claims = json!({
        "iss": provider.config.issuer,
        "aud": client.client_id,
        "iat": now,
        "exp": now + 120,
        "jti": new_id(),
        "sub": sub,
        "events": { BACKCHANNEL_EVENT: {} },
    });
    provider
        .keys
        .sign(client.settings.id_token_alg, "logout+jwt", &claims)
}

/// Delivers a logout token (Back-Channel Logout §2.5); the outcome is only logged, since the
/// user's session is over whatever the app answers.
pub async fn send_logout_token(
    outbound: Outbound,
    uri: String,
    token: String,
    client: &ClientRecord,
) {
    let client_id = &client.client_id;
    match outbound
        .post_form(&uri, &[("logout_token", &token)], chosen_by(client))
        .await
    {
        Ok(status) if status.is_success() => {
            tracing::info!(client_id = %client_id, "back-channel logout delivered");
        }
        Ok(status) => {
            tracing::warn!(client_id = %client_id, %status, "back-channel logout refused")
        }
        Err(e) => {
            tracing::warn!(client_id = %client_id, error = %e, "back-channel logout failed")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_return_address_carries_state_and_never_iss() {
        assert_eq!(
            post_logout_redirect("https://rp.example.test/bye", Some("s 1")).as_deref(),
            Some("https://rp.example.test/bye?state=s+1")
        );
        assert_eq!(
            post_logout_redirect("https://rp.example.test/bye?x=1", None).as_deref(),
            Some("https://rp.example.test/bye?x=1")
        );
        assert_eq!(post_logout_redirect("not a url", None), None);
    }
}
