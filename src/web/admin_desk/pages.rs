//! The desk's pages and forms. Each page is a GET that shows, each change a POST form with the
//! desk's CSRF token that ends in a redirect back (`?done=`), except where a secret is shown:
//! a new app's and a rotated secret appear once, on the answer itself (`no-store`).

use askama::Template;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::{Away, Desk, enter, start_sign_in};
use crate::access::Rule;
use crate::admin::{self, AdminError, ClientUpdate};
use crate::flow::account::when;
use crate::keys::{KeyInfo, SigningAlg};
use crate::state::{App, AppState};
use crate::store::{AuditQuery, ClientKind, ClientRecord, UserQuery, UserSummary};
use crate::web::admin_api::clients::ClientCreate;
use crate::web::authorize::see_other;
use crate::web::browser_error::{BrowserError, Problem};
// The templates call these as `self::t(...)`.
use crate::web::i18n::{lang, t};
use crate::web::{self, pages};

/// Rows on a page of users or audit entries.
const PAGE_ROWS: u32 = 50;

/// What every desk page shows around its content.
struct DeskView {
    base: String,
    section: &'static str,
    name: String,
    csrf: String,
    notice: Option<&'static str>,
    error: Option<String>,
}

fn view(app: &App, desk: &Desk, section: &'static str, query: Option<&str>) -> DeskView {
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

fn show(page: &impl Template) -> Response {
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
struct Fields(Vec<(String, String)>);

impl Fields {
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or("")
    }

    fn checked(&self, name: &str) -> bool {
        !self.get(name).is_empty()
    }

    /// The lines of a text area, trimmed, empty ones left out.
    fn lines(&self, name: &str) -> Vec<String> {
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
pub struct AtDesk(Desk);

impl FromRequestParts<AppState> for AtDesk {
    type Rejection = Response;
    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        desk_for_page(app, &parts.headers).await.map(AtDesk)
    }
}

/// A desk form's admin and fields, its CSRF token checked.
pub struct DeskForm(Desk, Fields);

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

fn bad_form(message: &str) -> Problem {
    Problem::page(
        StatusCode::BAD_REQUEST,
        "The form could not be read",
        message,
    )
}

/// An admin operation's refusal as the page shows it.
fn admin_problem(e: AdminError) -> Problem {
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

// ---- apps ----

struct AppRow {
    client_id: String,
    name: String,
    domains: String,
    kind: &'static str,
    policy: &'static str,
    created: String,
}

fn kind_of(c: &ClientRecord) -> &'static str {
    if c.settings.service_account {
        "Service account"
    } else if c.settings.kind == ClientKind::Public {
        "Public"
    } else {
        "Confidential"
    }
}

#[derive(Template)]
#[template(path = "admin_apps.html")]
struct AppsPage {
    desk: DeskView,
    apps: Vec<AppRow>,
}

/// `GET /admin/apps`.
pub async fn apps(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    AtDesk(desk): AtDesk,
) -> Result<Response, BrowserError> {
    let mut clients = app.store.list_clients().await.map_err(|e| {
        let p: Problem = e.into();
        p.at(&app)
    })?;
    clients.sort_by(|a, b| {
        a.settings
            .name
            .to_lowercase()
            .cmp(&b.settings.name.to_lowercase())
            .then_with(|| a.client_id.cmp(&b.client_id))
    });
    let apps = clients
        .iter()
        .map(|c| AppRow {
            client_id: c.client_id.clone(),
            name: c.settings.name.clone(),
            domains: domains(c),
            kind: kind_of(c),
            policy: if c.settings.access_policy.is_some() {
                "A policy"
            } else {
                "Everyone"
            },
            created: when(c.created_at),
        })
        .collect();
    Ok(show(&AppsPage {
        desk: view(&app, &desk, "apps", query.as_deref()),
        apps,
    }))
}

/// The hosts of an app's redirect URIs, for the list.
fn domains(c: &ClientRecord) -> String {
    let mut hosts: Vec<String> = c
        .settings
        .redirect_uris
        .iter()
        .map(|u| pages::app_domain(u))
        .filter(|h| !h.is_empty())
        .collect();
    hosts.dedup();
    hosts.join(", ")
}

/// What the new-app form holds, shown again with the refusal when it is not accepted.
struct AppForm {
    name: String,
    redirect_uris: String,
    kind: String,
    scopes: String,
    id_token_alg: String,
    access_token_format: String,
    skip_consent: bool,
    device_flow: bool,
    require_bot_confirmation: bool,
    policy: String,
}

impl Default for AppForm {
    fn default() -> Self {
        AppForm {
            name: String::new(),
            redirect_uris: String::new(),
            kind: "confidential".into(),
            scopes: "openid profile telegram offline_access".into(),
            id_token_alg: "RS256".into(),
            access_token_format: "jwt".into(),
            skip_consent: false,
            device_flow: false,
            require_bot_confirmation: false,
            policy: String::new(),
        }
    }
}

#[derive(Template)]
#[template(path = "admin_app_new.html")]
struct NewAppPage {
    desk: DeskView,
    form: AppForm,
}

/// `GET /admin/apps/new`.
pub async fn new_app(State(app): State<AppState>, AtDesk(desk): AtDesk) -> Response {
    show(&NewAppPage {
        desk: view(&app, &desk, "apps", None),
        form: AppForm::default(),
    })
}

/// A policy as an admin writes it: the `[policy]` TOML of `client add --policy-file`, or the
/// JSON the admin API takes; empty for none.
fn parse_policy(text: &str) -> Result<Option<Rule>, String> {
    let text = text.trim();
    if text.is_empty() {
        Ok(None)
    } else if text.starts_with('{') {
        Rule::from_json(text).map(Some)
    } else {
        Rule::from_toml(text).map(Some)
    }
}

/// A policy as the edit form shows it: its stored JSON, indented.
fn policy_text(rule: Option<&Rule>) -> String {
    rule.and_then(|r| serde_json::to_string_pretty(r).ok())
        .unwrap_or_default()
}

fn scopes_of(text: &str) -> Vec<String> {
    text.split([' ', ',', '\n', '\r', '\t'])
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `POST /admin/apps`: registers an app, and shows its secret this once.
pub async fn create_app(
    State(app): State<AppState>,
    DeskForm(desk, f): DeskForm,
) -> Result<Response, BrowserError> {
    let form = AppForm {
        name: f.get("name").to_owned(),
        redirect_uris: f.get("redirect_uris").to_owned(),
        kind: f.get("kind").to_owned(),
        scopes: f.get("scopes").to_owned(),
        id_token_alg: f.get("id_token_alg").to_owned(),
        access_token_format: f.get("access_token_format").to_owned(),
        skip_consent: f.checked("skip_consent"),
        device_flow: f.checked("device_flow"),
        require_bot_confirmation: f.checked("require_bot_confirmation"),
        policy: f.get("policy").to_owned(),
    };
    let refuse = |desk: &Desk, form: AppForm, error: String| {
        let mut v = view(&app, desk, "apps", None);
        v.error = Some(error);
        pages::render(
            StatusCode::UNPROCESSABLE_ENTITY,
            &NewAppPage { desk: v, form },
            &pages::strict_csp(&[]),
        )
    };
    let access_policy = match parse_policy(&form.policy) {
        Ok(p) => p,
        Err(e) => return Ok(refuse(&desk, form, e)),
    };
    let (public, service_account) = match form.kind.as_str() {
        "confidential" => (false, false),
        "public" => (true, false),
        "service" => (false, true),
        _ => return Err(bad_form("Choose the app's type.").at(&app)),
    };
    let create = ClientCreate {
        name: form.name.clone(),
        redirect_uris: f.lines("redirect_uris"),
        public,
        scopes: Some(scopes_of(&form.scopes)),
        skip_consent: form.skip_consent,
        service_account,
        device_flow: form.device_flow,
        id_token_alg: Some(form.id_token_alg.clone()),
        access_token_format: Some(form.access_token_format.clone()),
        refresh: None,
        post_logout_redirect_uris: Vec::new(),
        backchannel_logout_uri: None,
        access_policy,
        require_bot_confirmation: form.require_bot_confirmation,
    };
    let new = match create.into_new_client() {
        Ok(n) => n,
        Err(e) => return Ok(refuse(&desk, form, e)),
    };
    match admin::create_client(app.store.as_ref(), &desk.actor, new, None, app.now_millis()).await {
        Ok((client, secret)) => Ok(app_page(&app, &desk, &client, secret, None)),
        Err(AdminError::Invalid(e)) => Ok(refuse(&desk, form, e)),
        Err(e) => Err(admin_problem(e).at(&app)),
    }
}

#[derive(Template)]
#[template(path = "admin_app.html")]
struct AppPage {
    desk: DeskView,
    client_id: String,
    name: String,
    has_secret: bool,
    /// A secret made just now, shown this once.
    secret: Option<String>,
    version: String,
    redirect_uris: String,
    scopes: String,
    skip_consent: bool,
    require_bot_confirmation: bool,
    policy: String,
    details: Vec<(&'static str, String)>,
}

fn app_page(
    app: &App,
    desk: &Desk,
    c: &ClientRecord,
    secret: Option<String>,
    query: Option<&str>,
) -> Response {
    let s = &c.settings;
    let mut details = vec![
        ("Client id", c.client_id.clone()),
        ("Type", t(kind_of(c)).to_owned()),
        ("Registered", when(c.created_at)),
        ("ID token signed with", s.id_token_alg.to_string()),
        (
            "Access tokens",
            match s.access_token_format {
                crate::store::AccessTokenFormat::Jwt => "JWT".to_owned(),
                crate::store::AccessTokenFormat::Opaque => t("opaque").to_owned(),
            },
        ),
    ];
    if s.device_flow {
        details.push(("Device flow", t("allowed").to_owned()));
    }
    if s.ciba.is_some() {
        details.push(("Backchannel authentication (CIBA)", t("allowed").to_owned()));
    }
    if s.registration_token_hash.is_some() {
        details.push((
            "Registered by",
            t("the app itself (dynamic registration)").to_owned(),
        ));
    }
    let mut v = view(app, desk, "apps", query);
    if secret.is_some() {
        v.notice = Some("Copy the secret now: it is shown this once.");
    }
    show(&AppPage {
        desk: v,
        client_id: c.client_id.clone(),
        name: s.name.clone(),
        has_secret: c.secret_hash.is_some(),
        secret,
        // Without its quotes, which a form field need not carry.
        version: admin::client_etag(c).trim_matches('"').to_owned(),
        redirect_uris: s.redirect_uris.join("\n"),
        scopes: s.allowed_scopes.join(" "),
        skip_consent: s.skip_consent,
        require_bot_confirmation: s.require_bot_confirmation,
        policy: policy_text(s.access_policy.as_ref()),
        details,
    })
}

/// `GET /admin/apps/{client_id}`.
pub async fn show_app(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    RawQuery(query): RawQuery,
    AtDesk(desk): AtDesk,
) -> Result<Response, BrowserError> {
    let client = admin::get_client(app.store.as_ref(), &client_id)
        .await
        .map_err(|e| admin_problem(e).at(&app))?;
    Ok(app_page(&app, &desk, &client, None, query.as_deref()))
}

/// The version a form was shown with, as the entity tag `admin::change_client` compares; a form
/// without one matches no version (never `*`).
fn version_of(f: &Fields) -> String {
    let v = f.get("version");
    if v.is_empty() || v.contains('*') {
        "\"none\"".to_owned()
    } else {
        format!("\"{v}\"")
    }
}

/// `POST /admin/apps/{client_id}`: save the form (if nobody changed the app since the page was
/// shown), rotate the secret, or remove the app.
pub async fn change_app(
    State(app): State<AppState>,
    Path(client_id): Path<String>,
    DeskForm(desk, f): DeskForm,
) -> Result<Response, BrowserError> {
    let store = app.store.as_ref();
    let now = app.now_millis();
    let back = |done: &str| see_other(&app.url(&format!("/admin/apps/{client_id}?done={done}")));
    match f.get("action") {
        "update" => {
            let policy = parse_policy(f.get("policy")).map_err(|e| bad_form(&e).at(&app))?;
            let update = ClientUpdate {
                access_policy: Some(policy),
                scopes: Some(scopes_of(f.get("scopes"))),
                require_bot_confirmation: Some(f.checked("require_bot_confirmation")),
                name: Some(f.get("name").to_owned()),
                redirect_uris: Some(f.lines("redirect_uris")),
                skip_consent: Some(f.checked("skip_consent")),
            };
            admin::change_client(
                store,
                &desk.actor,
                &client_id,
                update,
                Some(&version_of(&f)),
                now,
            )
            .await
            .map_err(|e| admin_problem(e).at(&app))?;
            Ok(back("updated"))
        }
        "rotate" => {
            let secret = admin::new_client_secret(store, &desk.actor, &client_id, now)
                .await
                .map_err(|e| admin_problem(e).at(&app))?;
            let client = admin::get_client(store, &client_id)
                .await
                .map_err(|e| admin_problem(e).at(&app))?;
            Ok(app_page(&app, &desk, &client, Some(secret), None))
        }
        "remove" => {
            if f.get("confirm") != "yes" {
                return Err(bad_form("Tick the box to confirm the removal.").at(&app));
            }
            admin::remove_client(store, &desk.actor, &client_id, Some(&version_of(&f)), now)
                .await
                .map_err(|e| admin_problem(e).at(&app))?;
            Ok(see_other(&app.url("/admin/apps?done=removed")))
        }
        _ => Err(bad_form("Choose one of the page's buttons.").at(&app)),
    }
}

// ---- users ----

struct UserRow {
    id: i64,
    name: String,
    username: String,
    blocked: bool,
    first_seen: String,
    last_login: String,
}

fn user_row(u: &UserSummary) -> UserRow {
    UserRow {
        id: u.telegram_id,
        name: match &u.last_name {
            Some(last) => format!("{} {last}", u.first_name),
            None => u.first_name.clone(),
        },
        username: u
            .username
            .as_deref()
            .map(|n| format!("@{n}"))
            .unwrap_or_default(),
        blocked: u.blocked_at.is_some(),
        first_seen: when(u.created_at),
        last_login: when(u.updated_at),
    }
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage {
    desk: DeskView,
    q: String,
    users: Vec<UserRow>,
    next: Option<String>,
}

fn query_field(query: Option<&str>, name: &str) -> String {
    web::parse_params(query.unwrap_or(""))
        .ok()
        .and_then(|p| p.into_iter().find(|(k, _)| k == name).map(|(_, v)| v))
        .unwrap_or_default()
}

/// `GET /admin/users?q=`: by Telegram id or `@username`, or every user by id.
pub async fn users(
    State(app): State<AppState>,
    RawQuery(query): RawQuery,
    AtDesk(desk): AtDesk,
) -> Result<Response, BrowserError> {
    let q = query_field(query.as_deref(), "q").trim().to_owned();
    let mut search = UserQuery {
        limit: PAGE_ROWS,
        after: query_field(query.as_deref(), "after").parse().ok(),
        ..UserQuery::default()
    };
    if !q.is_empty() {
        match q.parse::<i64>() {
            Ok(id) => search.telegram_id = Some(id),
            Err(_) => search.username = Some(q.trim_start_matches('@').to_owned()),
        }
    }
    let (found, next) = admin::list_users(app.store.as_ref(), &search)
        .await
        .map_err(|e| admin_problem(e).at(&app))?;
    let next = next.map(|after| {
        let mut params = vec![("after", after.to_string())];
        if !q.is_empty() {
            params.push(("q", q.clone()));
        }
        serde_urlencoded::to_string(params).unwrap_or_default()
    });
    Ok(show(&UsersPage {
        desk: view(&app, &desk, "users", query.as_deref()),
        users: found.iter().map(user_row).collect(),
        q,
        next,
    }))
}

struct GrantRow {
    client_id: String,
    app_name: String,
    scopes: String,
    last_used: String,
}

struct SessionRow {
    handle: String,
    device: String,
    place: String,
    signed_in: String,
    last_used: String,
    methods: String,
}

#[derive(Template)]
#[template(path = "admin_user.html")]
struct UserPage {
    desk: DeskView,
    user: UserRow,
    blocked_since: String,
    is_self: bool,
    grants: Vec<GrantRow>,
    sessions: Vec<SessionRow>,
}

/// `GET /admin/users/{user_id}`.
pub async fn show_user(
    State(app): State<AppState>,
    Path(user_id): Path<String>,
    RawQuery(query): RawQuery,
    AtDesk(desk): AtDesk,
) -> Result<Response, BrowserError> {
    let user_id = parse_user_id(&user_id).map_err(|p| p.at(&app))?;
    let (user, apps, sessions) = admin::user_detail(app.store.as_ref(), user_id, app.now())
        .await
        .map_err(|e| admin_problem(e).at(&app))?;
    let mut grants = Vec::new();
    for a in apps {
        let app_name = match app.store.get_client(&a.client_id).await {
            Ok(Some(c)) => c.settings.name,
            _ => a.client_id.clone(),
        };
        grants.push(GrantRow {
            client_id: a.client_id,
            app_name,
            scopes: a.scope,
            last_used: when(a.last_used_at),
        });
    }
    Ok(show(&UserPage {
        desk: view(&app, &desk, "users", query.as_deref()),
        blocked_since: user.blocked_at.map(when).unwrap_or_default(),
        is_self: user.telegram_id == desk.user_id,
        user: user_row(&user),
        grants,
        sessions: sessions
            .iter()
            .map(|s| SessionRow {
                handle: admin::session_id(s),
                device: s
                    .device
                    .clone()
                    .unwrap_or_else(|| t("Unknown browser").to_owned()),
                place: s.place.clone().unwrap_or_default(),
                signed_in: when(s.created_at),
                last_used: when(s.last_used_at),
                methods: s.amr.clone(),
            })
            .collect(),
    }))
}

fn parse_user_id(text: &str) -> Result<i64, Problem> {
    text.parse::<i64>()
        .ok()
        .filter(|id| *id > 0)
        .ok_or_else(|| {
            Problem::page(
                StatusCode::NOT_FOUND,
                "Not found",
                "A user is named by their Telegram id, a positive number.",
            )
        })
}

/// `POST /admin/users/{user_id}`: block, unblock, end everything, end one app's grant or one
/// browser session.
pub async fn change_user(
    State(app): State<AppState>,
    Path(user_id): Path<String>,
    DeskForm(desk, f): DeskForm,
) -> Result<Response, BrowserError> {
    let user_id = parse_user_id(&user_id).map_err(|p| p.at(&app))?;
    let store = app.store.as_ref();
    let now = app.now_millis();
    let actor = &desk.actor;
    let done = match f.get("action") {
        "block" if user_id == desk.user_id => {
            return Err(bad_form("You cannot block yourself.").at(&app));
        }
        "block" => admin::block_user(store, actor, user_id, now)
            .await
            .map(|_| "blocked"),
        "unblock" => admin::unblock_user(store, actor, user_id, now)
            .await
            .map(|_| "unblocked"),
        "revoke_all" => admin::revoke_user_everything(store, actor, user_id, now)
            .await
            .map(|_| "revoked"),
        "revoke_grant" => admin::revoke_user_grant(store, actor, user_id, f.get("target"), now)
            .await
            .map(|()| "revoked"),
        "revoke_session" => admin::revoke_user_session(store, actor, user_id, f.get("target"), now)
            .await
            .map(|()| "revoked"),
        _ => return Err(bad_form("Choose one of the page's buttons.").at(&app)),
    }
    .map_err(|e| admin_problem(e).at(&app))?;
    Ok(see_other(
        &app.url(&format!("/admin/users/{user_id}?done={done}")),
    ))
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
