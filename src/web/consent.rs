//! The consent page: which app, which scopes, approve or deny. The form carries a token bound
//! to this browser's session and this authorization, so no other site or browser can submit it.

use aws_lc_rs::hmac;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::error::ErrorCode;
use crate::oidc::authorize::AuthorizeError;
use crate::oidc::scopes;
use crate::secrets::{constant_time_eq, token_hash};
use crate::state::AppState;
use crate::web::authorize::{self, load_pending, see_other};
use crate::web::{self, OAuthForm, pages};

/// HMAC keyed by the raw session id, which only this browser's cookie holds.
fn csrf_token(session_id: &str, req: &str) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, session_id.as_bytes());
    URL_SAFE_NO_PAD.encode(hmac::sign(&key, format!("consent:{req}").as_bytes()).as_ref())
}

#[derive(Deserialize)]
pub struct ConsentQuery {
    req: String,
}

pub async fn consent_page(
    State(app): State<AppState>,
    query: Result<Query<ConsentQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Response {
    let Ok(Query(query)) = query else {
        return web::not_found().await;
    };
    let (request, _, client) = match load_pending(&app, &query.req).await {
        Ok(found) => found,
        Err(e) => return e.into_response(&app),
    };
    let (session_id, session) = match web::current_session(&app, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return see_other(&app.url(&format!("/login?req={}", query.req))),
        Err(e) => return AuthorizeError::from(e).into_response(&app),
    };
    let user_name = match app.store.get_user(session.user_id).await {
        Ok(Some(u)) => match u.username {
            Some(username) => format!("{} (@{username})", u.first_name),
            None => u.first_name,
        },
        Ok(None) => session.user_id.to_string(),
        Err(e) => return AuthorizeError::from(e).into_response(&app),
    };
    let scope_words: Vec<&str> = request
        .scope
        .split(' ')
        .filter_map(scopes::describe)
        .collect();
    let csrf = csrf_token(&session_id, &query.req);
    let action = format!("{}/consent", app.base_path());
    let app_origin = pages::origin_of(&request.redirect_uri).unwrap_or_default();
    pages::render(
        StatusCode::OK,
        &pages::ConsentPage {
            base: app.base_path(),
            client_name: &client.settings.name,
            user_name: &user_name,
            scopes: scope_words,
            req: &query.req,
            csrf: &csrf,
            action: &action,
        },
        &pages::strict_csp(&[app_origin]),
    )
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
    form: Result<OAuthForm<ConsentForm>, crate::error::OAuthError>,
) -> Response {
    let form = match form {
        Ok(OAuthForm(form)) => form,
        Err(e) => {
            return pages::error_page_at(
                app.base_path(),
                StatusCode::BAD_REQUEST,
                "The answer could not be read",
                &e.description,
            );
        }
    };
    let forbidden = || {
        pages::error_page_at(
            app.base_path(),
            StatusCode::FORBIDDEN,
            "This answer was not accepted",
            "It did not come from the consent page shown in this browser. Go back to the app and sign in again.",
        )
    };
    let (session_id, session) = match web::current_session(&app, &headers).await {
        Ok(Some(found)) => found,
        Ok(None) => return forbidden(),
        Err(e) => return AuthorizeError::from(e).into_response(&app),
    };
    if !constant_time_eq(
        csrf_token(&session_id, &form.req).as_bytes(),
        form.csrf.as_bytes(),
    ) {
        return forbidden();
    }
    let (request, _, client) = match load_pending(&app, &form.req).await {
        Ok(found) => found,
        Err(e) => return e.into_response(&app),
    };
    match form.decision.as_str() {
        "approve" => {
            let saved = app
                .store
                .save_consent(
                    session.user_id,
                    &client.client_id,
                    &request.scope,
                    app.now(),
                )
                .await;
            if let Err(e) = saved {
                return AuthorizeError::from(e).into_response(&app);
            }
            authorize::issue_code(&app, &form.req, &request, &session, Some(&client))
                .await
                .unwrap_or_else(|e| e.into_response(&app))
        }
        "deny" => {
            if let Err(e) = app.store.delete_pending(&token_hash(&form.req)).await {
                return AuthorizeError::from(e).into_response(&app);
            }
            AuthorizeError::Redirect {
                redirect_uri: request.redirect_uri,
                state: request.state,
                code: ErrorCode::AccessDenied,
                description: "the user denied the request".into(),
                form_post: request.form_post,
            }
            .into_response(&app)
        }
        _ => pages::error_page_at(
            app.base_path(),
            StatusCode::BAD_REQUEST,
            "The answer could not be read",
            "Choose Allow or Deny.",
        ),
    }
}
