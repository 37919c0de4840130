//! The authorization endpoint's pages and redirects (RFC 6749 §4.1, OpenID Connect Core
//! §3.1.2): the request is checked by `oidc::authorize`, then taken through login and consent
//! to a code. Before a code is issued, the gate asks whether this user may enter this app.

use axum::body::Body;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::{ErrorCode, OAuthError};
use crate::flow;
use crate::flow::login::Refused;
use crate::oidc::authorize::{
    AuthorizationRequest, AuthorizeError, check_id_token_hint, client_id_param,
    login_is_fresh_enough, validate,
};
use crate::oidc::scopes;
use crate::oidc::subject;
use crate::secrets::{TokenKind, new_id, new_token, token_hash};
use crate::state::{App, AppState};
use crate::store::{ClientRecord, CodeRecord, GrantRecord, PendingAuthorization, SessionRecord};
use crate::web::{self, pages};

/// How a stopped authorization is shown: a page, or a report to the app.
impl AuthorizeError {
    pub fn into_response(self, app: &App) -> Response {
        match self {
            AuthorizeError::Page {
                status,
                title,
                message,
            } => {
                let mut page = pages::error_page_at(app.base_path(), status, title, &message);
                // A browser or a person retrying an outage is told when (RFC 9110 §10.2.3).
                if status == StatusCode::SERVICE_UNAVAILABLE {
                    page.headers_mut().insert(
                        header::RETRY_AFTER,
                        axum::http::HeaderValue::from_static("5"),
                    );
                }
                page
            }
            AuthorizeError::Redirect {
                redirect_uri,
                state,
                code,
                description,
                form_post,
            } => {
                let mut params = vec![("error", code.as_str().to_owned())];
                if !description.is_empty() {
                    params.push(("error_description", description));
                }
                respond_to_client(app, &redirect_uri, state.as_deref(), params, form_post)
            }
        }
    }
}

impl From<Refused> for AuthorizeError {
    fn from(refused: Refused) -> Self {
        match refused {
            Refused::Store(e) => e.into(),
            Refused::AlreadyUsed => AuthorizeError::Page {
                status: StatusCode::BAD_REQUEST,
                title: "Telegram login refused",
                message: "This Telegram login was already used. Please log in again.".into(),
            },
            Refused::NotAdmitted => AuthorizeError::Page {
                status: StatusCode::FORBIDDEN,
                title: "You cannot sign in to this app",
                message: "The app's administrator has not let this Telegram account in.".into(),
            },
        }
    }
}

/// The authorization response: `params`, `state` and `iss` for the app, as a 302 with a query
/// or, for `response_mode=form_post`, as a self-submitting form (OAuth 2.0 Form Post).
pub fn respond_to_client(
    app: &App,
    redirect_uri: &str,
    state: Option<&str>,
    params: Vec<(&str, String)>,
    form_post: bool,
) -> Response {
    if !form_post {
        return redirect_to_client(app, redirect_uri, state, params);
    }
    let mut fields: Vec<(String, String)> =
        params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    if let Some(state) = state {
        fields.push(("state".into(), state.to_owned()));
    }
    fields.push(("iss".into(), app.config.issuer.clone()));
    let nonce = pages::csp_nonce();
    let origin = pages::origin_of(redirect_uri).unwrap_or_default();
    let csp = format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; form-action {origin}; base-uri 'none'; frame-ancestors 'none'"
    );
    pages::render(
        StatusCode::OK,
        &pages::FormPostPage {
            action: redirect_uri,
            fields,
            nonce: &nonce,
        },
        &csp,
    )
}

/// A 302 to the app's redirect URI carrying `params`, `state` and `iss`.
pub fn redirect_to_client(
    app: &App,
    redirect_uri: &str,
    state: Option<&str>,
    params: Vec<(&str, String)>,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return pages::error_page_at(
            app.base_path(),
            StatusCode::BAD_REQUEST,
            "This sign-in request cannot be used",
            "The app's redirect address is not a valid URL.",
        );
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in &params {
            query.append_pair(k, v);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &app.config.issuer);
    }
    (
        StatusCode::FOUND,
        [
            (header::LOCATION, url.as_str().to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}

pub async fn authorize_get(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = match web::parse_params(query.as_deref().unwrap_or("")) {
        Ok(p) => p,
        Err(e) => return AuthorizeError::page(e.description).into_response(&app),
    };
    start(&app, &headers, &params)
        .await
        .unwrap_or_else(|e| e.into_response(&app))
}

pub async fn authorize_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let params = match web::read_form_params(&app, &headers, body).await {
        Ok(p) => p,
        Err(e) => {
            let status = if e.code == ErrorCode::PayloadTooLarge {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return pages::error_page_at(
                app.base_path(),
                status,
                "This sign-in request cannot be used",
                &e.description,
            );
        }
    };
    start(&app, &headers, &params)
        .await
        .unwrap_or_else(|e| e.into_response(&app))
}

async fn start(
    app: &App,
    headers: &HeaderMap,
    params: &[(String, String)],
) -> Result<Response, AuthorizeError> {
    let client_id = client_id_param(params)?;
    let Some(client) = app.store.get_client(client_id).await? else {
        return Err(AuthorizeError::page(
            "The app that sent you here is not registered.",
        ));
    };
    let mut request = validate(params, &client)?;
    if let Some(hint) = request.id_token_hint.take() {
        request.expected_sub = Some(check_id_token_hint(app, &client, &hint).ok_or_else(|| {
            AuthorizeError::Redirect {
                redirect_uri: request.redirect_uri.clone(),
                state: request.state.clone(),
                code: ErrorCode::InvalidRequest,
                description: "id_token_hint is not an ID token this server issued to this app"
                    .into(),
                form_post: request.form_post,
            }
        })?);
    }
    let now = app.now();
    let req_id = new_token(TokenKind::PendingAuthorization);
    let request_json = serde_json::to_string(&request).map_err(OAuthError::server_error)?;
    app.store
        .create_pending(&PendingAuthorization {
            id_hash: token_hash(&req_id),
            client_id: client.client_id.clone(),
            request: request_json,
            created_at: now,
            expires_at: now + app.config.tokens.pending_authorization_ttl_secs,
        })
        .await?;
    advance(app, headers, &req_id, &request, now, &client).await
}

#[derive(Deserialize)]
pub struct ResumeQuery {
    req: String,
}

/// Where the login page sends the browser back after a Telegram proof.
pub async fn resume(
    State(app): State<AppState>,
    query: Result<Query<ResumeQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Query(query)) = query else {
        return AuthorizeError::page("The link is incomplete.").into_response(&app);
    };
    let result = async {
        let (request, created_at, client) = load_pending(&app, &query.req).await?;
        advance(&app, &headers, &query.req, &request, created_at, &client).await
    }
    .await;
    result.unwrap_or_else(|e| e.into_response(&app))
}

/// The pending authorization behind a `req` handle, with its client.
pub async fn load_pending(
    app: &App,
    req_id: &str,
) -> Result<(AuthorizationRequest, i64, ClientRecord), AuthorizeError> {
    let expired = || AuthorizeError::Page {
        status: StatusCode::BAD_REQUEST,
        title: "This sign-in has expired",
        message: "Go back to the app and start signing in again.".into(),
    };
    if !req_id.starts_with(TokenKind::PendingAuthorization.prefix()) || req_id.len() > 128 {
        return Err(expired());
    }
    let Some(pending) = app
        .store
        .get_pending(&token_hash(req_id), app.now())
        .await?
    else {
        return Err(expired());
    };
    let request: AuthorizationRequest =
        serde_json::from_str(&pending.request).map_err(OAuthError::server_error)?;
    let Some(client) = app.store.get_client(&request.client_id).await? else {
        return Err(AuthorizeError::page(
            "The app that sent you here is no longer registered.",
        ));
    };
    Ok((request, pending.created_at, client))
}

/// Takes the authorization as far as it can go: to the login page, the consent page, or the
/// app with a code.
pub async fn advance(
    app: &App,
    headers: &HeaderMap,
    req_id: &str,
    request: &AuthorizationRequest,
    pending_created_at: i64,
    client: &ClientRecord,
) -> Result<Response, AuthorizeError> {
    let now = app.now();
    let session = web::current_session(app, headers).await?;
    let to_app = |code: ErrorCode, description: &str| AuthorizeError::Redirect {
        redirect_uri: request.redirect_uri.clone(),
        state: request.state.clone(),
        code,
        description: description.to_owned(),
        form_post: request.form_post,
    };
    let hinted_elsewhere = |s: &SessionRecord| {
        request
            .expected_sub
            .as_ref()
            .is_some_and(|sub| *sub != subject::subject_for(app, client, s.user_id))
    };
    let session = match session {
        Some((_, s)) if hinted_elsewhere(&s) && request.prompt_none => {
            return Err(to_app(
                ErrorCode::LoginRequired,
                "the logged-in user is not the one id_token_hint names",
            ));
        }
        Some((_, s))
            if login_is_fresh_enough(request, &s, pending_created_at, now)
                && !hinted_elsewhere(&s)
                || request.fresh_login_session.as_deref()
                    == Some(hex::encode(&s.id_hash).as_str()) =>
        {
            s
        }
        _ if request.prompt_none => {
            return Err(to_app(
                ErrorCode::LoginRequired,
                "the user is not logged in",
            ));
        }
        _ => return Ok(see_other(&app.url(&format!("/login?req={req_id}")))),
    };
    // A device confirmation asks the gate when the user approves (`flow::device`).
    if request.device_verification.is_some() {
        return Ok(see_other(&app.url(&format!(
            "{}?req={req_id}",
            crate::oidc::device::CONFIRM_PATH
        ))));
    }
    // The gate: may this user enter this app? Asked before consent, and again at the code.
    flow::login::admit(app, session.user_id, None, client).await?;
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
            return Err(to_app(
                ErrorCode::ConsentRequired,
                "the user has not consented",
            ));
        }
        return Ok(see_other(&app.url(&format!("/consent?req={req_id}"))));
    }
    issue_code(app, req_id, request, &session, None).await
}

/// Ends an authorization with a code: grant and code are stored together, the pending request
/// is gone, and the browser goes back to the app. `client`, when given, is asked of the gate
/// first (`advance` asked already).
pub async fn issue_code(
    app: &App,
    req_id: &str,
    request: &AuthorizationRequest,
    session: &SessionRecord,
    client: Option<&ClientRecord>,
) -> Result<Response, AuthorizeError> {
    let now = app.now();
    if let Some(client) = client {
        flow::login::admit(app, session.user_id, None, client).await?;
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
    };
    let record = CodeRecord {
        code_hash: token_hash(&code),
        grant_id: grant.id.clone(),
        redirect_uri: request.redirect_uri.clone(),
        code_challenge: request.code_challenge.clone(),
        expires_at: now + ttl,
    };
    app.store.create_grant_with_code(&grant, &record).await?;
    app.store
        .record_session_client(
            &session.id_hash,
            &request.client_id,
            session.user_id,
            session.expires_at,
        )
        .await?;
    app.store.delete_pending(&token_hash(req_id)).await?;
    Ok(respond_to_client(
        app,
        &request.redirect_uri,
        request.state.as_deref(),
        vec![("code", code)],
        request.form_post,
    ))
}

pub fn see_other(location: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, location.to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
    )
        .into_response()
}
