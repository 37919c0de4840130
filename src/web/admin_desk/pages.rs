//! The desk's pages and forms. Each page is a GET that shows, each change a POST form with the
//! desk's CSRF token that ends in a redirect back (`?done=`), except where a secret is shown:
//! a new app's and a rotated secret appear once, on the answer itself (`no-store`).

use askama::Template;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Away, Desk, enter, start_sign_in};
use crate::admin::{self, AdminError};
use crate::flow::account::when;
use crate::keys::{KeyInfo, SigningAlg};
use crate::state::{App, AppState};
use crate::store::AuditQuery;
use crate::web::authorize::see_other;
use crate::web::browser_error::{BrowserError, Problem};
// The templates call these as `self::t(...)`.
use crate::web::i18n::{lang, t};
use crate::web::{self, pages};

/// Rows on a page of users or audit entries.
pub(super) const PAGE_ROWS: u32 = 50;

/// What every desk page shows around its content.
pub(super) struct DeskView {
    pub(super) base: String,
    pub(super) section: &'static str,
    pub(super) name: String,
    pub(super) csrf: String,
    pub(super) notice: Option<&'static str>,
    pub(super) error: Option<String>,
}

pub(super) fn view(app: &App, desk: &Desk, section: &'static str, query: Option<&str>) -> DeskView {
    DeskView {
        base: app.base_path().to_owned(),
        section,
        name: desk.name.clone(),
        csrf: desk.csrf.clone(),
        notice: notice_of(query),
        error: None,
    }
}

/// The notices a finished action leaves in the query (`?done=`).
fn notice_of(query: Option<&str>) -> Option<&'static str> {
    web::done_notice(
        query,
        &[
            ("updated", "Saved."),
            ("removed", "The app was removed; its tokens no longer work."),
            (
                "blocked",
                "The user is blocked: they pass no login, and everything they held has ended.",
            ),
            ("unblocked", "The user may log in again."),
            ("revoked", "Revoked."),
            ("rotated", "A new signing key was made."),
        ],
    )
}

pub(super) fn show(page: &impl Template) -> Response {
    pages::render(StatusCode::OK, page, &pages::strict_csp(&[]))
}

/// The desk for a page: signed in, or off to the login pages.
async fn desk_for_page(app: &App, headers: &HeaderMap) -> Result<Desk, Response> {
    match enter(app, headers).await {
        Ok(desk) => Ok(desk),
        Err(Away::SignIn) => Err(match start_sign_in(app).await {
            Ok(r) => r,
            Err(p) => p.at(app).into_response(),
        }),
        Err(Away::Refused(p)) => Err(p.at(app).into_response()),
    }
}

/// The fields of a desk form, its token checked.
pub(super) struct Fields(Vec<(String, String)>);

impl Fields {
    pub(super) fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    pub(super) fn checked(&self, name: &str) -> bool {
        !self.get(name).is_empty()
    }

    /// The lines of a text area, trimmed, empty ones left out.
    pub(super) fn lines(&self, name: &str) -> Vec<String> {
        self.get(name)
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// The desk and the fields of a form posted from one of its pages.
async fn desk_for_form(
    app: &App,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Desk, Fields), Problem> {
    let desk = match enter(app, headers).await {
        Ok(desk) => desk,
        Err(Away::SignIn) => {
            return Err(Problem::page(
                StatusCode::FORBIDDEN,
                "Signed out of the admin desk",
                "Your admin desk session has ended. Open the admin desk again to sign in.",
            ));
        }
        Err(Away::Refused(p)) => return Err(p),
    };
    let params = web::read_form_params(app, headers, body)
        .await
        .and_then(|params| crate::params::check_request_params(&params).map(|()| params))
        .map_err(|e| {
            Problem::page(
                StatusCode::BAD_REQUEST,
                "The form could not be read",
                e.description,
            )
        })?;
    if web::extract::first_repeated(&params).is_some_and(|name| name != "scopes") {
        return Err(Problem::page(
            StatusCode::BAD_REQUEST,
            "The form could not be read",
            "A field appears more than once.",
        ));
    }
    let fields = Fields(params);
    if !desk.verify(headers, app, fields.get("csrf")) {
        return Err(Problem::page(
            StatusCode::FORBIDDEN,
            "This form was not accepted",
            "It did not come from the admin desk shown in this browser. Open the page again.",
        ));
    }
    Ok((desk, fields))
}

/// A desk page's admin: signed in, or the response that sends them to sign in (or refuses).
pub struct AtDesk(pub(super) Desk);

impl FromRequestParts<AppState> for AtDesk {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        desk_for_page(app, &parts.headers).await.map(AtDesk)
    }
}

/// A desk form's admin and fields, its CSRF token checked.
pub struct DeskForm(pub(super) Desk, pub(super) Fields);

impl FromRequest<AppState> for DeskForm {
    type Rejection = BrowserError;
    async fn from_request(req: Request, app: &AppState) -> Result<Self, BrowserError> {
        let (parts, body) = req.into_parts();
        desk_for_form(app, &parts.headers, body)
            .await
            .map(|(desk, fields)| DeskForm(desk, fields))
            .map_err(|p| p.at(app))
    }
}

pub(super) fn bad_form(message: &str) -> Problem {
    Problem::page(
        StatusCode::BAD_REQUEST,
        "The form could not be read",
        message,
    )
}

/// An admin operation's refusal as the page shows it.
pub(super) fn admin_problem(e: AdminError) -> Problem {
    match e {
        AdminError::Store(e) => e.into(),
        AdminError::NotFound(_) | AdminError::NoUser(_) | AdminError::NoSession(_) => {
            Problem::page(
                StatusCode::NOT_FOUND,
                "Not found",
                "It is not there (any more). Go back and reload the list.",
            )
        }
        AdminError::VersionMismatch(_) => Problem::page(
            StatusCode::CONFLICT,
            "Changed by someone else",
            "Another admin changed this app since you opened the page. Open it again to see the change, then make yours.",
        ),
        e => Problem::page(StatusCode::BAD_REQUEST, "Not accepted", e.to_string()),
    }
}

// ---- home and sign-out ----

/// `GET /admin`: the apps, or a sign-in first.
pub async fn home(State(app): State<AppState>, headers: HeaderMap) -> Response {
    match desk_for_page(&app, &headers).await {
        Ok(_) => see_other(&app.url("/admin/apps")),
        Err(r) => r,
    }
}

/// `POST /admin/sign-out`.
pub async fn sign_out(
    State(app): State<AppState>,
    DeskForm(desk, _): DeskForm,
) -> Result<Response, BrowserError> {
    desk.sign_out(&app).await.map_err(|p| p.at(&app))
}

pub(super) fn query_field(query: Option<&str>, name: &str) -> String {
    web::parse_params(query.unwrap_or(""))
        .ok()
        .and_then(|p| p.into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
        .unwrap_or_default()
}

// ---- keys ----

struct KeyRow {
    kid: String,
    alg: String,
    state: &'static str,
    created: String,
    note: String,
}

#[derive(Template)]
#[template(path = "admin_keys.html")]
struct KeysPage {
    desk: DeskView,
    keys: Vec<KeyRow>,
}

fn key_row(k: &KeyInfo, now: i64) -> KeyRow {
    let (state, note) = if k.active {
        ("Signs", String::new())
    } else if k.retired_at.is_none() && k.not_before.is_some() {
        (
            "Published",
            k.not_before
                .map(|at| format!("{} {}", t("signs from"), when(at)))
                .unwrap_or_default(),
        )
    } else {
        (
            "Retired",
            k.retired_at
                .map(|at| format!("{} {}", t("since"), when(at)))
                .unwrap_or_default(),
        )
    };
    let days = (now - k.created_at).max(0) / 86_400;
    KeyRow {
        kid: k.kid.clone(),
        alg: k.alg.to_string(),
        state,
        created: format!("{} ({days} d)", when(k.created_at)),
        note,
    }
}

/// `GET /admin/keys`.
pub async fn keys(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    AtDesk(desk): AtDesk,
) -> Response {
    let now = app.now();
    show(&KeysPage {
        desk: view(&app, &desk, "keys", query.as_deref()),
        keys: app.keys.list().iter().map(|k| key_row(k, now)).collect(),
    })
}

/// `POST /admin/keys`: a new signing key, published now and signing after `activate_in`.
pub async fn rotate_key(
    State(app): State<AppState>,
    DeskForm(desk, f): DeskForm,
) -> Result<Response, BrowserError> {
    let alg = SigningAlg::parse(f.get("alg"))
        .ok_or_else(|| bad_form("Choose RS256, ES256 or EdDSA.").at(&app))?;
    let activate_in = match f.get("activate_in").trim() {
        "" => 0,
        n => n
            .parse::<i64>()
            .map_err(|_| bad_form("Give the delay in seconds (0 to 86400).").at(&app))?,
    };
    admin::rotate_signing_key(
        &app.keys,
        app.store.as_ref(),
        &desk.actor,
        alg,
        activate_in,
        app.now_millis(),
    )
    .await
    .map_err(|e| admin_problem(e).at(&app))?;
    Ok(see_other(&app.url("/admin/keys?done=rotated")))
}

// ---- audit ----

struct AuditRow {
    at: String,
    event: String,
    result: String,
    user: String,
    client: String,
    actor: String,
    ip: String,
    detail: String,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage {
    desk: DeskView,
    user: String,
    client: String,
    event: String,
    rows: Vec<AuditRow>,
    older: Option<String>,
}

/// `GET /admin/audit?user=&client=&event=&before=`: newest first, a page at a time.
pub async fn audit(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    AtDesk(desk): AtDesk,
) -> Result<Response, BrowserError> {
    let q = query.as_deref();
    let user = query_field(q, "user").trim().to_owned();
    let client = query_field(q, "client").trim().to_owned();
    let event = query_field(q, "event").trim().to_owned();
    if user.len() > 32 || client.len() > 200 || event.len() > 100 {
        return Err(bad_form("A filter is too long.").at(&app));
    }
    if [&client, &event].iter().any(|v| v.contains('\0')) {
        return Err(bad_form("A filter holds a NUL byte.").at(&app));
    }
    let user_id = match user.as_str() {
        "" => None,
        u => Some(
            u.parse::<i64>()
                .map_err(|_| bad_form("A user is named by their Telegram id.").at(&app))?,
        ),
    };
    let search = AuditQuery {
        user_id,
        client_id: (!client.is_empty()).then(|| client.clone()),
        event: (!event.is_empty()).then(|| event.clone()),
        before: query_field(q, "before").parse().ok(),
        after: None,
        limit: PAGE_ROWS,
    };
    let (entries, next) = admin::query_audit(app.store.as_ref(), &search)
        .await
        .map_err(|e| admin_problem(e).at(&app))?;
    let older = next.map(|before| {
        let mut params = vec![("before", before.to_string())];
        for (k, v) in [("user", &user), ("client", &client), ("event", &event)] {
            if !v.is_empty() {
                params.push((k, v.clone()));
            }
        }
        serde_urlencoded::to_string(params).unwrap_or_default()
    });
    let rows = entries
        .into_iter()
        .map(|e| AuditRow {
            at: time_of(e.at),
            event: e.event,
            result: e.result,
            user: e.user_id.map(|u| u.to_string()).unwrap_or_default(),
            client: e.client_id.unwrap_or_default(),
            actor: e.actor.unwrap_or_default(),
            ip: e.ip.unwrap_or_default(),
            detail: if e.detail.is_null() {
                String::new()
            } else {
                e.detail.to_string().chars().take(300).collect()
            },
        })
        .collect();
    Ok(show(&AuditPage {
        desk: view(&app, &desk, "audit", q),
        user,
        client,
        event,
        rows,
        older,
    }))
}

/// An entry's time (Unix milliseconds) to the second.
fn time_of(millis: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    time::OffsetDateTime::from_unix_timestamp(millis.div_euclid(1000))
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| millis.to_string())
}
