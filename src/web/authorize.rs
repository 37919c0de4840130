//! The authorization endpoint's pages and redirects (RFC 6749 §4.1, OpenID Connect Core
//! §3.1.2): the request is parsed once (`web::extract`) and checked by `oidc::authorize`,
//! `flow::authorize` says where it goes next, and this file shows it: the login page, the
//! consent page, the device confirmation, or the app with a code or an error.

use axum::body::Body;
use axum::extract::{Query, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use crate::error::{ErrorCode, OAuthError};
use crate::flow::authorize::{self as flow_authorize, Next};
use crate::flow::login::Refused;
use crate::oidc::authorize::{
    AuthorizationRequest, AuthorizeParams, check_id_token_hint, client_id_param, validate,
};
use crate::secrets::{TokenKind, new_token, token_hash};
use crate::state::{App, AppState};
use crate::store::{ClientRecord, PendingAuthorization};
use crate::web::browser_error::{BrowserError, Problem};
use crate::web::{self, extract, pages};

/// The authorization response: `params`, `state` and `iss` for the app, as a 302 with a query
/// or, for `response_mode=form_post`, as a self-submitting form (OAuth 2.0 Form Post).
/// `base` is the issuer's path, for the page shown when the redirect URI is not a URL.
pub fn respond_to_client(
    base: &str,
    issuer: &str,
    redirect_uri: &str,
    state: Option<&str>,
    params: Vec<(&str, String)>,
    form_post: bool,
) -> Response {
    if !form_post {
        return redirect_to_client(base, issuer, redirect_uri, state, params);
    }
    let mut fields: Vec<(String, String)> =
        params.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    if let Some(state) = state {
        fields.push(("state".into(), state.to_owned()));
    }
    fields.push(("iss".into(), issuer.to_owned()));
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
fn redirect_to_client(
    base: &str,
    issuer: &str,
    redirect_uri: &str,
    state: Option<&str>,
    params: Vec<(&str, String)>,
) -> Response {
    let Ok(mut url) = url::Url::parse(redirect_uri) else {
        return Problem::unusable("The app's redirect address is not a valid URL.")
            .at_site(base, issuer)
            .into_response();
    };
    {
        let mut query = url.query_pairs_mut();
        for (k, v) in &params {
            query.append_pair(k, v);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", issuer);
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

/// The code for the app, at its redirect URI.
fn code_to_client(app: &App, request: &AuthorizationRequest, code: String) -> Response {
    respond_to_client(
        app.base_path(),
        &app.config.issuer,
        &request.redirect_uri,
        request.state.as_deref(),
        vec![("code", code)],
        request.form_post,
    )
}

pub async fn authorize_get(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, BrowserError> {
    let result = match extract::authorize_query(query.as_deref()) {
        Ok(params) => start(&app, &headers, &params).await,
        Err(problem) => Err(problem),
    };
    result.map_err(|p| p.at(&app))
}

pub async fn authorize_post(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, BrowserError> {
    let result = match extract::authorize_form(&app, &headers, body).await {
        Ok(params) => start(&app, &headers, &params).await,
        Err(problem) => Err(problem),
    };
    result.map_err(|p| p.at(&app))
}

async fn start(
    app: &App,
    headers: &HeaderMap,
    params: &AuthorizeParams,
) -> Result<Response, Problem> {
    let client_id = client_id_param(params)?;
    let Some(client) = app.store.get_client(client_id).await? else {
        return Err(Problem::unusable(
            "The app that sent you here is not registered.",
        ));
    };
    let mut request = validate(params, &client)?;
    let now = app.now();
    if let Some(hint) = request.id_token_hint.take() {
        let Some(sub) = check_id_token_hint(app, &client, &hint, now) else {
            return Err(request
                .error(
                    ErrorCode::InvalidRequest,
                    "id_token_hint is not an ID token this server issued to this app",
                )
                .into());
        };
        request.expected_sub = Some(sub);
    }
    let req_id = store_pending(app, &request, now).await?;
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
) -> Result<Response, BrowserError> {
    let Ok(Query(query)) = query else {
        return Err(Problem::unusable("The link is incomplete.").at(&app));
    };
    let result = async {
        let (request, created_at, client) = load_login_pending(&app, &query.req).await?;
        advance(&app, &headers, &query.req, &request, created_at, &client).await
    }
    .await;
    result.map_err(|p| p.at(&app))
}

/// The pending authorization behind a `req` handle, with its client: an app's request or a
/// device confirmation, never a login to the account page (whose `req` means nothing to the
/// consent and device pages).
pub async fn load_pending(
    app: &App,
    req_id: &str,
) -> Result<(AuthorizationRequest, i64, ClientRecord), Problem> {
    let found = load_login_pending(app, req_id).await?;
    if found.0.account || found.0.admin {
        return Err(expired());
    }
    Ok(found)
}

fn expired() -> Problem {
    Problem::page(
        StatusCode::BAD_REQUEST,
        "This sign-in has expired",
        "Go back to the app and start signing in again.",
    )
}

/// [`load_pending`] for the login pages, which also serve a login to the account page: its
/// "client" is the account page itself, named in the request's language.
pub async fn load_login_pending(
    app: &App,
    req_id: &str,
) -> Result<(AuthorizationRequest, i64, ClientRecord), Problem> {
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
    if request.account {
        return Ok((request, pending.created_at, web::account::page_client(app)?));
    }
    if request.admin {
        return Ok((
            request,
            pending.created_at,
            web::admin_desk::page_client(app)?,
        ));
    }
    let Some(client) = app.store.get_client(&request.client_id).await? else {
        return Err(Problem::unusable(
            "The app that sent you here is no longer registered.",
        ));
    };
    Ok((request, pending.created_at, client))
}

/// Takes the authorization as far as it can go for this browser's session, and shows where it
/// went: the login page, the device confirmation, the consent page, or the app.
async fn advance(
    app: &App,
    headers: &HeaderMap,
    req_id: &str,
    request: &AuthorizationRequest,
    pending_created_at: i64,
    client: &ClientRecord,
) -> Result<Response, Problem> {
    let now = app.now();
    let session = web::current_session(app, headers).await?.map(|(_, s)| s);
    let next = flow_authorize::advance(
        app,
        session,
        req_id,
        request,
        pending_created_at,
        client,
        now,
    )
    .await
    .map_err(|refused| match refused {
        Refused::NotAdmitted if request.admin => web::admin_desk::not_an_admin(),
        refused => refused.into(),
    })?;
    Ok(match next {
        // The login page asks for the confirmation in the bot chat when the request holds a
        // step-up.
        Next::Login | Next::BotConfirm => see_other(&app.url(&format!("/login?req={req_id}"))),
        Next::DeviceConfirm => see_other(&app.url(&format!(
            "{}?req={req_id}",
            crate::oidc::device::CONFIRM_PATH
        ))),
        Next::Consent => see_other(&app.url(&format!("/consent?req={req_id}"))),
        Next::Account => {
            app.store.delete_pending(&token_hash(req_id)).await?;
            see_other(&app.url(web::account::PATH))
        }
        Next::Admin { user_id } => {
            app.store.delete_pending(&token_hash(req_id)).await?;
            web::admin_desk::signed_in(app, user_id).await?
        }
        Next::Code(code) => code_to_client(app, request, code),
        Next::ToApp(redirect) => return Err(redirect.into()),
    })
}

/// Ends an authorization with a code after the user's answer on the consent page; the gate is
/// asked first.
pub async fn issue_code(
    app: &App,
    req_id: &str,
    request: &AuthorizationRequest,
    session: &crate::store::SessionRecord,
    client: &ClientRecord,
) -> Result<Response, Problem> {
    let code =
        flow_authorize::issue_code(app, req_id, request, session, Some(client), app.now()).await?;
    Ok(code_to_client(app, request, code))
}

/// Stores `request` as a pending authorization under its `client_id`; returns its `req`
/// handle (the stored key is its SHA-256).
async fn store_pending(
    app: &App,
    request: &AuthorizationRequest,
    now: i64,
) -> Result<String, Problem> {
    let req = new_token(TokenKind::PendingAuthorization);
    let json = serde_json::to_string(request).map_err(OAuthError::server_error)?;
    app.store
        .create_pending(&PendingAuthorization {
            id_hash: token_hash(&req),
            client_id: request.client_id.clone(),
            request: json,
            created_at: now,
            expires_at: now + app.config.tokens.pending_authorization_ttl_secs,
        })
        .await?;
    Ok(req)
}

/// The ordinary login pages for a request whose end is one of the provider's own pages (the
/// account page, the admin desk): `request` is stored as a pending authorization, and the
/// browser goes to log in.
pub async fn start_page_login(
    app: &App,
    request: AuthorizationRequest,
) -> Result<Response, Problem> {
    let req = store_pending(app, &request, app.now()).await?;
    Ok(see_other(&app.url(&format!("/login?req={req}"))))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oidc::authorize::{AuthorizeError, ErrorRedirect};

    fn client() -> ClientRecord {
        ClientRecord {
            client_id: "app".into(),
            secret_hash: None,
            settings: serde_json::from_value(serde_json::json!({
                "name": "App",
                "kind": "confidential",
                "redirect_uris": ["https://rp.example.test/cb"],
                "allowed_scopes": ["openid", "profile"],
                "id_token_alg": "RS256",
            }))
            .unwrap(),
            created_at: 0,
        }
    }

    fn check(query: &str) -> Result<AuthorizationRequest, AuthorizeError> {
        let params = extract::authorize_query(Some(query)).unwrap();
        client_id_param(&params)?;
        validate(&params, &client())
    }

    fn to_app(query: &str) -> ErrorRedirect {
        match check(query) {
            Err(AuthorizeError::ToApp(redirect)) => redirect,
            other => panic!("expected a report to the app, got {other:?}"),
        }
    }

    fn page(query: &str) -> String {
        match check(query) {
            Err(AuthorizeError::Unusable(message)) => message,
            other => panic!("expected a page, got {other:?}"),
        }
    }

    const GOOD: &str = "client_id=app&redirect_uri=https%3A%2F%2Frp.example.test%2Fcb&response_type=code&scope=openid";

    #[test]
    fn a_good_request_passes() {
        let request = check(&format!("{GOOD}&state=s1&prompt=login")).unwrap();
        assert_eq!(request.scope, "openid");
        assert_eq!(request.state.as_deref(), Some("s1"));
        assert!(request.prompt_login);
    }

    #[test]
    fn a_repeated_client_id_or_redirect_uri_is_a_page() {
        assert_eq!(
            page(&format!("{GOOD}&client_id=app")),
            "The request names client_id more than once."
        );
        assert_eq!(
            page(&format!("{GOOD}&redirect_uri=x")),
            "The request names redirect_uri more than once."
        );
        assert_eq!(
            page("client_id=&redirect_uri=x"),
            "The request does not name an app (client_id is missing)."
        );
    }

    #[test]
    fn any_other_repeat_goes_to_the_app() {
        let r = to_app(&format!(
            "{GOOD}&state=s1&scope=profile&response_mode=form_post"
        ));
        assert_eq!(r.code, ErrorCode::InvalidRequest);
        assert_eq!(r.description, "the parameter scope appears more than once");
        assert_eq!(r.state.as_deref(), Some("s1"));
        assert!(r.form_post);
        // A repeated state is not echoed, a repeated response_mode is not followed.
        let r = to_app(&format!("{GOOD}&state=a&state=b"));
        assert_eq!(r.description, "the parameter state appears more than once");
        assert_eq!(r.state, None);
        let r = to_app(&format!(
            "{GOOD}&response_mode=form_post&response_mode=form_post"
        ));
        assert!(!r.form_post);
    }

    #[test]
    fn an_empty_value_counts_as_absent() {
        let r = to_app(&GOOD.replace("scope=openid", "scope="));
        assert_eq!(r.code, ErrorCode::InvalidScope);
    }
}
