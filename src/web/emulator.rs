//! Dev mode only: stands in for Telegram's widget. It signs what the developer types with the
//! dev bot token exactly as Telegram signs widget data and sends it to the real callback, so
//! everything after it runs as in production.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use serde::Deserialize;

use crate::state::AppState;
use crate::telegram::widget;
use crate::web::authorize::{load_login_pending, see_other};
use crate::web::browser_error::{BrowserError, Problem};
use crate::web::{OAuthForm, pages};

#[derive(Deserialize)]
pub struct EmulatorQuery {
    req: String,
}

pub async fn emulator_page(
    State(app): State<AppState>,
    query: Result<Query<EmulatorQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, BrowserError> {
    let Ok(Query(query)) = query else {
        return Ok(crate::web::not_found().await);
    };
    let (request, _, _) = load_login_pending(&app, &query.req)
        .await
        .map_err(|p| p.at(&app))?;
    let action = format!("{}/dev/telegram", app.base_path());
    let app_origin = pages::origin_of(&request.redirect_uri).unwrap_or_default();
    Ok(pages::render(
        StatusCode::OK,
        &pages::EmulatorPage {
            base: app.base_path(),
            req: &query.req,
            action: &action,
            default_id: "100000001",
        },
        &pages::strict_csp(&[app_origin]),
    ))
}

#[derive(Deserialize)]
pub struct EmulatorForm {
    req: String,
    id: String,
    first_name: String,
    #[serde(default)]
    last_name: String,
    #[serde(default)]
    username: String,
}

pub async fn emulator_submit(
    State(app): State<AppState>,
    form: Result<OAuthForm<EmulatorForm>, crate::error::OAuthError>,
) -> Result<Response, BrowserError> {
    let bad = |message: &str| Problem::page(StatusCode::BAD_REQUEST, "Emulator", message).at(&app);
    let Ok(OAuthForm(form)) = form else {
        return Err(bad("The form could not be read."));
    };
    if form.id.parse::<i64>().map(|id| id <= 0).unwrap_or(true) {
        return Err(bad("The Telegram id must be a positive number."));
    }
    if form.first_name.trim().is_empty() {
        return Err(bad("Telegram always sends a first name."));
    }
    let mut fields = vec![
        ("id".to_string(), form.id.clone()),
        ("first_name".to_string(), form.first_name.trim().to_string()),
    ];
    if !form.last_name.trim().is_empty() {
        fields.push(("last_name".into(), form.last_name.trim().to_string()));
    }
    if !form.username.trim().is_empty() {
        fields.push(("username".into(), form.username.trim().to_string()));
    }
    let auth_date = fresh_auth_date(&form.id, app.now(), app.config.telegram.clock_skew_secs);
    fields.push(("auth_date".into(), auth_date.to_string()));
    let hash = widget::sign(&fields, app.config.telegram.bot_token.expose());
    fields.push(("hash".into(), hash));
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&fields)
        .finish();
    if load_login_pending(&app, &form.req).await.is_err() {
        return Err(bad(
            "This sign-in has expired. Go back to the app and start again.",
        ));
    }
    Ok(see_other(&format!(
        "{}/login/telegram/{}?{query}",
        app.base_path(),
        form.req
    )))
}

/// The `auth_date` of an emulated login: now, or a second after the last one this emulator
/// signed for the same user if that was this second already. Telegram never confirms one login
/// twice, but two submissions in one second would otherwise sign identical fields, and the
/// second would be refused as a replay. Stays within the accepted clock skew.
fn fresh_auth_date(user: &str, now: i64, skew_secs: i64) -> i64 {
    static LAST: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<String, i64>>> =
        std::sync::LazyLock::new(Default::default);
    let mut last = LAST.lock().unwrap_or_else(|e| e.into_inner());
    if last.len() > 10_000 {
        last.retain(|_, at| *at >= now);
    }
    let at = match last.get(user) {
        Some(&previous) if previous >= now => (previous + 1).min(now + skew_secs.max(1) - 1),
        _ => now,
    };
    last.insert(user.to_owned(), at);
    at
}

#[derive(Deserialize)]
pub struct DemoCallbackQuery {
    #[serde(default)]
    code: String,
    error: Option<String>,
}

/// The demo client's redirect URI in dev mode: shows what an app would receive.
pub async fn demo_callback(
    State(app): State<AppState>,
    query: Result<Query<DemoCallbackQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return crate::web::not_found().await;
    };
    let redirect_uri = app.url("/dev/callback");
    let token_endpoint = app.url("/token");
    let client_id = match app.store.list_clients().await {
        Ok(clients) => clients
            .into_iter()
            .find(|c| c.settings.redirect_uris.contains(&redirect_uri))
            .map(|c| c.client_id)
            .unwrap_or_default(),
        Err(_) => String::new(),
    };
    // Dev mode only (this route exists only there): the secret the terminal printed.
    let client_secret = match &app.config.dev_client_secret {
        Some(secret) if app.config.dev_mode => secret.expose(),
        _ => "CLIENT_SECRET",
    };
    let nonce = pages::csp_nonce();
    pages::render(
        StatusCode::OK,
        &pages::DemoCallbackPage {
            base: app.base_path(),
            code: &query.code,
            error: query.error.as_deref(),
            client_id: &client_id,
            redirect_uri: &redirect_uri,
            token_endpoint: &token_endpoint,
            client_secret,
            code_ttl_secs: app.config.tokens.code_ttl_secs,
            nonce: &nonce,
        },
        &format!(
            "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::fresh_auth_date;

    #[test]
    fn logins_of_one_user_in_one_second_get_distinct_dates_within_the_skew() {
        let now = 1_800_000_000;
        let user = "emulated-user-1";
        assert_eq!(fresh_auth_date(user, now, 30), now);
        assert_eq!(fresh_auth_date(user, now, 30), now + 1);
        assert_eq!(fresh_auth_date(user, now, 30), now + 2);
        // Another user is not moved.
        assert_eq!(fresh_auth_date("emulated-user-2", now, 30), now);
        // Never past the skew: after 29 bumps the date stays put.
        let dates: Vec<i64> = (0..40).map(|_| fresh_auth_date(user, now, 30)).collect();
        assert!(dates.iter().all(|d| *d <= now + 29), "{dates:?}");
        // A later second starts from now again.
        assert_eq!(fresh_auth_date(user, now + 100, 30), now + 100);
    }
}
