//! How far a started authorization can go (OpenID Connect Core §3.1.2): to the login page, the
//! device confirmation, the consent page, a code, or an error the app must hear. Nothing here
//! reads a cookie or builds a response: the browser's session and `now` come in, a [`Next`]
//! goes out, and `web::authorize` shows it. Before a code is issued, the gate asks whether this
//! user may enter this app.

use crate::error::ErrorCode;
use crate::flow::login::{self, Refused};
use crate::oidc::authorize::{AuthorizationRequest, ErrorRedirect, StepUp, login_is_fresh_enough};
use crate::oidc::{acr, scopes, subject};
use crate::secrets::{TokenKind, new_id, new_token, token_hash};
use crate::state::App;
use crate::store::{ClientRecord, CodeRecord, GrantRecord, SessionRecord, StoreError};

/// Where an authorization goes next.
#[derive(Debug)]
pub enum Next {
    /// No session good enough for this request: the user logs in.
    Login,
    /// Logged in, but the app asked for the confirmation in the bot chat (step-up): the login
    /// page asks for it (the request now holds its `step_up`).
    BotConfirm,
    /// A device confirmation (RFC 8628 §3.3): the user approves on the device page, where the
    /// gate is asked (`flow::device`).
    DeviceConfirm,
    /// The user has not consented to these scopes for this app.
    Consent,
    /// A login to the account page is done: the browser goes there.
    Account,
    /// A sign-in to the admin desk is done and the gate found the user an admin: the browser
    /// gets a desk session and goes there.
    Admin { user_id: i64 },
    /// The authorization is done: this code goes back to the app (RFC 6749 §4.1.2).
    Code(String),
    /// `prompt=none` cannot be met: the app hears why (OIDC Core §3.1.2.6).
    ToApp(ErrorRedirect),
}

/// Takes the authorization `req_id` as far as it can go for the browser's `session`.
pub async fn advance(
    app: &App,
    session: Option<SessionRecord>,
    req_id: &str,
    request: &AuthorizationRequest,
    pending_created_at: i64,
    client: &ClientRecord,
    now: i64,
) -> Result<Next, Refused> {
    let hinted_elsewhere = |s: &SessionRecord| {
        request
            .expected_sub
            .as_ref()
            .is_some_and(|sub| *sub != subject::subject_for(app, client, s.user_id))
    };
    let session = match session {
        Some(s) if hinted_elsewhere(&s) && request.prompt_none => {
            return Ok(Next::ToApp(request.error(
                ErrorCode::LoginRequired,
                "the logged-in user is not the one id_token_hint names",
            )));
        }
        Some(s)
            if login_is_fresh_enough(request, &s, pending_created_at, now)
                && !hinted_elsewhere(&s)
                || request.fresh_login_session.as_deref()
                    == Some(hex::encode(&s.id_hash).as_str()) =>
        {
            s
        }
        _ if request.prompt_none => {
            return Ok(Next::ToApp(
                request.error(ErrorCode::LoginRequired, "the user is not logged in"),
            ));
        }
        _ => {
            if request.step_up.is_some() {
                // The login that was to be confirmed is gone: a new login starts over.
                let mut request = request.clone();
                request.step_up = None;
                save_pending(app, req_id, &request).await?;
            }
            return Ok(Next::Login);
        }
    };
    // Step-up: the login must also be confirmed in the bot chat (any first proof, then the
    // user's answer there). A login made in the chat is confirmed already.
    if (request.bot_confirmation || client.settings.require_bot_confirmation)
        && !acr::is_bot_confirmed(&session.amr)
    {
        if request.prompt_none {
            return Ok(Next::ToApp(request.error(
                ErrorCode::InteractionRequired,
                "the login must be confirmed in the Telegram bot chat",
            )));
        }
        if !app.bot_logins_enabled() {
            tracing::warn!(
                client_id = %client.client_id,
                "a login needs confirmation in the bot chat, but the bot is not configured"
            );
            return Ok(Next::ToApp(request.error(
                ErrorCode::AccessDenied,
                "this login needs a confirmation in the Telegram bot chat, which this provider cannot ask for",
            )));
        }
        let mut request = request.clone();
        request.step_up = Some(StepUp {
            user_id: session.user_id,
            amr: session.amr.clone(),
        });
        save_pending(app, req_id, &request).await?;
        return Ok(Next::BotConfirm);
    }
    // A device confirmation asks the gate when the user approves (`flow::device`).
    if request.device_verification.is_some() {
        return Ok(Next::DeviceConfirm);
    }
    // The account page is the user's own: no app to admit them to.
    if request.account {
        return Ok(Next::Account);
    }
    // The admin desk is entered like an app whose policy names the admins (its "client" is
    // made from `[admin]`, see `admin::desk_client`).
    if request.admin {
        login::admit(app, session.user_id, None, client).await?;
        return Ok(Next::Admin {
            user_id: session.user_id,
        });
    }
    // The gate: may this user enter this app? Asked before consent, and again at the code.
    login::admit(app, session.user_id, None, client).await?;
    let consented = match app
        .store
        .get_consent(session.user_id, &client.client_id)
        .await?
    {
        Some(granted) => scopes::is_subset(&request.scope, &granted),
        None => false,
    };
    if !client.settings.skip_consent && (request.prompt_consent || !consented) {
        if request.prompt_none {
            return Ok(Next::ToApp(
                request.error(ErrorCode::ConsentRequired, "the user has not consented"),
            ));
        }
        return Ok(Next::Consent);
    }
    let code = issue_code(app, req_id, request, &session, None, now).await?;
    Ok(Next::Code(code))
}

/// Stores the pending authorization `req_id` as it now is.
async fn save_pending(
    app: &App,
    req_id: &str,
    request: &AuthorizationRequest,
) -> Result<(), Refused> {
    let json = serde_json::to_string(request)
        .map_err(|e| StoreError::Internal(format!("pending authorization: {e}")))?;
    app.store.update_pending(&token_hash(req_id), &json).await?;
    Ok(())
}

/// Ends an authorization with a code: grant and code are stored together, and the pending
/// request is gone. `client`, when given, is asked of the gate first (`advance` asked
/// already).
pub async fn issue_code(
    app: &App,
    req_id: &str,
    request: &AuthorizationRequest,
    session: &SessionRecord,
    client: Option<&ClientRecord>,
    now: i64,
) -> Result<String, Refused> {
    if let Some(client) = client {
        login::admit(app, session.user_id, None, client).await?;
    }
    let code = new_token(TokenKind::Code);
    let ttl = app.config.tokens.code_ttl_secs;
    let grant = GrantRecord {
        id: new_id(),
        client_id: request.client_id.clone(),
        user_id: Some(session.user_id),
        scope: request.scope.clone(),
        auth_time: session.auth_time,
        amr: session.amr.clone(),
        nonce: request.nonce.clone(),
        created_at: now,
        revoked_at: None,
        expires_at: now + ttl,
        session_hash: Some(session.id_hash.clone()),
    };
    let record = CodeRecord {
        code_hash: token_hash(&code),
        grant_id: grant.id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        expires_at: now + ttl,
    };
    app.store
        .issue_code(&grant, &record, session, &token_hash(req_id))
        .await?;
    Ok(code)
}
