//! The sign-out pages (OpenID Connect RP-Initiated Logout 1.0): `end_session_endpoint`, the
//! confirmation asked when the request does not prove who is signing out, and the answer to
//! it. The protocol (the hint, the return address, the logout tokens) is `oidc::logout`.

use axum::body::Body;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::oidc::logout::{self, LogoutError, LogoutParams, LogoutRequest};
use crate::oidc::subject;
use crate::secrets::token_hash;
use crate::state::{App, AppState};
use crate::web::browser_error::{BrowserError, Problem};
use crate::web::csrf::{self, Form};
use crate::web::{self, extract, pages};

const UNUSABLE: &str = "This sign-out request cannot be used";

/// A refusal shown on the plain message page the sign-out pages use.
fn notice(status: StatusCode, title: &'static str, message: impl Into<String>) -> Problem {
    Problem::Notice {
        status,
        title,
        message: message.into(),
    }
}

fn message_page(app: &App, title: &str, message: &str) -> Response {
    pages::render(
        StatusCode::OK,
        &pages::MessagePage {
            base: app.base_path(),
            title,
            message,
        },
        &pages::strict_csp(&[]),
    )
}

/// The logout parameters; a repeated one makes the request unusable (RFC 6749 §3.1 applies to
/// these endpoints too).
fn logout_params(params: &[(String, String)]) -> Result<LogoutParams, Problem> {
    if extract::first_repeated(params).is_some() {
        return Err(notice(
            StatusCode::BAD_REQUEST,
            UNUSABLE,
            "A parameter appears more than once.",
        ));
    }
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    Ok(LogoutParams {
        id_token_hint: get("id_token_hint"),
        client_id: get("client_id"),
        post_logout_redirect_uri: get("post_logout_redirect_uri"),
        state: get("state"),
    })
}

async fn check(app: &App, params: &[(String, String)]) -> Result<LogoutRequest, Problem> {
    let params = logout_params(params)?;
    logout::check(app, &params, app.now())
        .await
        .map_err(|e| match e {
            LogoutError::Refused(message) => notice(StatusCode::BAD_REQUEST, UNUSABLE, message),
            LogoutError::Store(e) => e.into(),
        })
}

/// `end_session_endpoint`, GET or POST.
pub async fn end_session(
    State(app): State<AppState>,
    method: Method,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, BrowserError> {
    end_session_page(&app, method, query, &headers, body)
        .await
        .map_err(|p| p.at(&app))
}

async fn end_session_page(
    app: &App,
    method: Method,
    query: Option<String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, Problem> {
    let params = if method == Method::POST {
        web::read_form_params(app, headers, body).await
    } else {
        web::parse_params(query.as_deref().unwrap_or(""))
    }
    .and_then(|params| crate::params::check_request_params(&params).map(|()| params));
    let params = params.map_err(|e| notice(StatusCode::BAD_REQUEST, UNUSABLE, e.description))?;
    let request = check(app, &params).await?;
    let Some((session_id, session)) = web::current_session(app, headers).await? else {
        return Ok(finish(app, &request, None));
    };
    let hint_matches = match (&request.hinted_sub, &request.client) {
        (Some(sub), Some(client)) => *sub == subject::subject_for(app, client, session.user_id),
        _ => false,
    };
    if hint_matches {
        return sign_out(app, &session_id, &request).await;
    }
    Ok(pages::render(
        StatusCode::OK,
        &pages::LogoutPage {
            base: app.base_path(),
            client_name: request.client.as_ref().map(|c| c.settings.name.as_str()),
            action: &format!("{}/logout/confirm", app.base_path()),
            csrf: &csrf::token(&session_id, Form::Logout),
            client_id: request
                .client
                .as_ref()
                .map(|c| c.client_id.as_str())
                .unwrap_or(""),
            post_logout_redirect_uri: request.post_logout_redirect_uri.as_deref().unwrap_or(""),
            state: request.state.as_deref().unwrap_or(""),
        },
        &pages::strict_csp(
            &request
                .post_logout_redirect_uri
                .iter()
                .filter_map(|u| pages::origin_of(u))
                .collect::<Vec<_>>(),
        ),
    ))
}

/// The confirmation form's answer.
pub async fn confirm(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, BrowserError> {
    confirm_answer(&app, &headers, body)
        .await
        .map_err(|p| p.at(&app))
}

async fn confirm_answer(app: &App, headers: &HeaderMap, body: Body) -> Result<Response, Problem> {
    let params = web::read_form_params(app, headers, body)
        .await
        .and_then(|params| crate::params::check_request_params(&params).map(|()| params))
        .map_err(|e| {
            notice(
                StatusCode::BAD_REQUEST,
                "The answer could not be read",
                e.description,
            )
        })?;
    let session = web::current_session(app, headers).await?;
    // The form carries the request again; only its own fields are taken from it.
    let mut forwarded: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| {
            matches!(
                k.as_str(),
                "client_id" | "post_logout_redirect_uri" | "state"
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .cloned()
        .collect();
    forwarded.dedup_by(|a, b| a.0 == b.0);
    let request = check(app, &forwarded).await?;
    let Some((session_id, _)) = session else {
        return Ok(finish(app, &request, None));
    };
    let field = |name: &str| {
        params
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    if !csrf::verify(&session_id, Form::Logout, field("csrf").unwrap_or("")) {
        return Err(notice(
            StatusCode::FORBIDDEN,
            "This answer was not accepted",
            "It did not come from the sign-out page shown in this browser.",
        ));
    }
    match field("decision") {
        Some("logout") => sign_out(app, &session_id, &request).await,
        _ => Ok(message_page(
            app,
            "You are still signed in",
            "Nothing was changed. You can close this page.",
        )),
    }
}

/// Ends the session, tells the apps that asked to be told, and sends the browser on.
async fn sign_out(
    app: &App,
    session_id: &str,
    request: &LogoutRequest,
) -> Result<Response, Problem> {
    let cookie = end_browser_session(app, session_id).await?;
    Ok(finish(app, request, cookie))
}

/// Ends the browser session `session_id` (with back-channel logout to every app of it that asked
/// for one); returns the cookie header that clears the session cookie.
pub(crate) async fn end_browser_session(
    app: &App,
    session_id: &str,
) -> Result<Option<HeaderValue>, Problem> {
    crate::flow::account::end_session(app, &token_hash(session_id), app.now()).await?;
    Ok(web::clear_session_cookie(app))
}

/// Where the browser goes once signed out (or already signed out): the app's registered
/// return address, or a page. The cookie that ends the session goes with either.
fn finish(app: &App, request: &LogoutRequest, cookie: Option<HeaderValue>) -> Response {
    let mut response = match &request.post_logout_redirect_uri {
        Some(uri) => match logout::post_logout_redirect(uri, request.state.as_deref()) {
            Some(location) => (
                StatusCode::FOUND,
                [
                    (header::LOCATION, location),
                    (header::CACHE_CONTROL, "no-store".to_owned()),
                ],
            )
                .into_response(),
            None => Problem::unusable("The app's redirect address is not a valid URL.")
                .at(app)
                .into_response(),
        },
        None => message_page(
            app,
            "You are signed out",
            "Your Telegram sign-in on this device has ended.",
        ),
    };
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}
