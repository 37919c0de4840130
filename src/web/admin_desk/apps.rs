//! The desk's apps: the list, registering one (its secret shown once), its page with the
//! settings form, rotating its secret, removing it.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;

use super::Desk;
use super::pages::{AtDesk, DeskForm, DeskView, Fields, admin_problem, bad_form, show, view};
use crate::admin::{self, AdminError};
use crate::flow::account::when;
use crate::state::{App, AppState};
use crate::web::authorize::see_other;
use crate::web::browser_error::{BrowserError, Problem};
// The templates call these as `self::t(...)`.
use crate::access::Rule;
use crate::admin::ClientUpdate;
use crate::store::{ClientKind, ClientRecord};
use crate::web::admin_api::clients::ClientCreate;
use crate::web::i18n::{lang, t};
use crate::web::pages;
use axum::http::StatusCode;

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
