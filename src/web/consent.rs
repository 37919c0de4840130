//! The consent page: which app (its name and the domain it lives at), who is signed in (with
//! "Not you? Sign out"), which scopes, approve or deny. The form carries a token bound
//! to this browser's session and this authorization (`web::csrf`), so no other site or browser
//! can submit it.

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use crate::error::{ErrorCode, OAuthError};
use crate::flow::audit::{Event, Outcome};
use crate::oidc::scopes;
use crate::secrets::token_hash;
use crate::state::{App, AppState};
use crate::web::authorize::{self, load_pending, see_other};
use crate::web::browser_error::{BrowserError, Problem};
use crate::web::csrf::{self, Form};
use crate::web::{self, OAuthForm, pages};

#[derive(Deserialize)]
pub struct ConsentQuery {
    req: String,
}

pub async fn consent_page(
    State(app): State<AppState>,
    query: Result<Query<ConsentQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, BrowserError> {
    let Ok(Query(query)) = query else {
        return Ok(web::not_found().await);
    };
    show(&app, &query.req, &headers)
        .await
        .map_err(|p| p.at(&app))
}

async fn show(app: &App, req: &str, headers: &HeaderMap) -> Result<Response, Problem> {
    let (request, _, client) = load_pending(app, req).await?;
    let Some((session_id, session)) = web::current_session(app, headers).await? else {
        return Ok(see_other(&app.url(&format!("/login?req={req}"))));
    };
    let (user_name, username) = match app.store.get_user(session.user_id).await? {
        Some(u) => {
            let full = match u.last_name.as_deref().map(str::trim) {
                Some(last) if !last.is_empty() => format!("{} {last}", u.first_name),
                _ => u.first_name,
            };
            (full, u.username)
        }
        None => (session.user_id.to_string(), None),
    };
    let scope_words: Vec<&str> = request
        .scope
        .split(' ')
        .filter_map(scopes::describe)
        .collect();
    let csrf = csrf::token(&session_id, Form::Consent(req));
    let action = format!("{}/consent", app.base_path());
    let app_origin = pages::origin_of(&request.redirect_uri).unwrap_or_default();
    Ok(pages::render(
        StatusCode::OK,
        &pages::ConsentPage {
            base: app.base_path(),
            client_name: &client.settings.name,
            app_domain: &pages::app_domain(&request.redirect_uri),
            user_name: &user_name,
            username: username.as_deref(),
            scopes: scope_words,
            req,
            csrf: &csrf,
            action: &action,
        },
        &pages::strict_csp(&[app_origin]),
    ))
}

#[derive(Deserialize)]
pub struct ConsentForm {
    req: String,
    csrf: String,
    decision: String,
}

pub async fn consent_decision(
    State(app): State<AppState>,
    headers: HeaderMap,
    form: Result<OAuthForm<ConsentForm>, OAuthError>,
) -> Result<Response, BrowserError> {
    let result = match form {
        Ok(OAuthForm(form)) => decide(&app, &headers, &form).await,
        Err(e) => Err(unreadable(e.description)),
    };
    result.map_err(|p| p.at(&app))
}

fn unreadable(message: impl Into<String>) -> Problem {
    Problem::page(
        StatusCode::BAD_REQUEST,
        "The answer could not be read",
        message,
    )
}

async fn decide(app: &App, headers: &HeaderMap, form: &ConsentForm) -> Result<Response, Problem> {
    let forbidden = || {
        Problem::page(
            StatusCode::FORBIDDEN,
            "This answer was not accepted",
            "It did not come from the consent page shown in this browser. Go back to the app and sign in again.",
        )
    };
    let Some((session_id, session)) = web::current_session(app, headers).await? else {
        return Err(forbidden());
    };
    if !csrf::verify(&session_id, Form::Consent(&form.req), &form.csrf) {
        return Err(forbidden());
    }
    let (request, _, client) = load_pending(app, &form.req).await?;
    match form.decision.as_str() {
        "approve" => {
            app.store
                .save_consent(
                    session.user_id,
                    &client.client_id,
                    &request.scope,
                    app.now(),
                )
                .await?;
            app.audit(
                Event::new("consent.granted", Outcome::Ok)
                    .user(session.user_id)
                    .client(&client.client_id)
                    .with("scope", request.scope.as_str()),
            );
            authorize::issue_code(app, &form.req, &request, &session, &client).await
        }
        "deny" => {
            app.store.delete_pending(&token_hash(&form.req)).await?;
            app.audit(
                Event::new("consent.denied", Outcome::Refused)
                    .user(session.user_id)
                    .client(&client.client_id),
            );
            Err(request
                .error(ErrorCode::AccessDenied, "the user denied the request")
                .into())
        }
        // "Not you? Sign out": this browser's session ends (the apps it signed in to are told)
        // and the same authorization starts again at the login page, for someone else.
        "switch" => {
            let cookie = web::logout::end_browser_session(app, &session_id).await?;
            let mut response = see_other(&app.url(&format!("/login?req={}", form.req)));
            if let Some(cookie) = cookie {
                response.headers_mut().append(header::SET_COOKIE, cookie);
            }
            Ok(response)
        }
        _ => Err(unreadable("Choose Allow or Deny.")),
    }
}
