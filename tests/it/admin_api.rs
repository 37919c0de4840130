//! The admin API over HTTP, on SQLite and on PostgreSQL when `TEST_DATABASE_URL` is set: keys
//! of each scope, and expired, revoked and out-of-range ones; every operation; the audit
//! entries; `If-Match` conflicts; errors as problem details; the OpenAPI document.

use reqwest::StatusCode;
use serde_json::{Value, json};
use telegram_oidc::admin::{self, Actor, NewAdminKey};
use telegram_oidc::clock::Clock;
use telegram_oidc::store::{AdminScope, AuditQuery};

use crate::account::databases;
use crate::harness::*;

const API: &str = "/admin/api/v1";

async fn key(
    app: &TestApp,
    scope: AdminScope,
    expires_in: Option<i64>,
    allow: &[&str],
) -> (String, String) {
    let (record, key) = admin::create_admin_key(
        app.store.as_ref(),
        &Actor::cli(),
        NewAdminKey {
            name: format!("test {scope:?}"),
            scope,
            expires_in,
            allow_ips: allow
                .iter()
                .map(|a| admin::parse_cidr(a).unwrap())
                .collect(),
        },
        app.clock.now_millis(),
    )
    .await
    .unwrap();
    (record.id, key)
}

struct Caller<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    key: String,
    from: &'static str,
}

impl Caller<'_> {
    fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, self.app.url(&format!("{API}{path}")))
            .bearer_auth(&self.key)
            .header("x-forwarded-for", self.from)
    }
    async fn get(&self, path: &str) -> reqwest::Response {
        self.req(reqwest::Method::GET, path).send().await.unwrap()
    }
}

fn caller<'a>(app: &'a TestApp, key: &str, from: &'static str) -> Caller<'a> {
    Caller {
        app,
        http: reqwest::Client::new(),
        key: key.to_owned(),
        from,
    }
}

/// A problem response: its status, its content type, and the RFC 9457 members.
async fn problem(r: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(r.status(), status);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "application/problem+json"
    );
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    assert!(
        body["type"].is_string() && body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    body
}

async fn audit(
    app: &TestApp,
    event: &str,
    client: Option<&str>,
) -> Vec<telegram_oidc::store::AuditEntry> {
    app.store
        .query_audit(&AuditQuery {
            event: Some(event.into()),
            client_id: client.map(str::to_owned),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap()
}

async fn start(database: Option<String>) -> TestApp {
    TestApp::start_with(move |c| {
        if let Some(url) = database {
            c.database_url = url;
        }
        // Requests say where they come from in X-Forwarded-For, as behind a proxy.
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.admin.allow_ips = vec![
            "127.0.0.0/8".parse().unwrap(),
            "192.0.2.0/24".parse().unwrap(),
            "198.51.100.0/24".parse().unwrap(),
        ];
    })
    .await
}

#[tokio::test]
async fn keys_are_checked_scope_address_expiry_and_revocation() {
    for database in databases() {
        let app = start(database).await;
        let (_, read) = key(&app, AdminScope::Read, None, &[]).await;
        let (write_id, write) = key(&app, AdminScope::Write, Some(3600), &["192.0.2.0/24"]).await;
        let (revoked_id, revoked) = key(&app, AdminScope::Write, None, &[]).await;
        admin::revoke_admin_key(
            app.store.as_ref(),
            &Actor::cli(),
            &revoked_id,
            app.clock.now_millis(),
        )
        .await
        .unwrap();

        // No key, an unknown key, a revoked key: 401 with a Bearer challenge.
        let r = reqwest::Client::new()
            .get(app.url(&format!("{API}/clients")))
            .send()
            .await
            .unwrap();
        assert!(
            r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
        problem(r, StatusCode::UNAUTHORIZED).await;
        let r = caller(&app, "tgak_not-a-key", "192.0.2.5")
            .get("/clients")
            .await;
        assert!(r.headers().contains_key("www-authenticate"));
        problem(r, StatusCode::UNAUTHORIZED).await;
        let body = problem(
            caller(&app, &revoked, "192.0.2.5").get("/clients").await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert!(body["detail"].as_str().unwrap().contains("revoked"));

        // A read key reads and may not write: 403, audited.
        assert_eq!(
            caller(&app, &read, "192.0.2.5")
                .get("/clients")
                .await
                .status(),
            StatusCode::OK
        );
        let r = caller(&app, &read, "192.0.2.5")
            .req(reqwest::Method::POST, "/clients")
            .json(&json!({"name": "x", "redirect_uris": ["https://x.example/cb"]}))
            .send()
            .await
            .unwrap();
        problem(r, StatusCode::FORBIDDEN).await;
        let refused = audit(&app, "admin.refused", None).await;
        assert!(
            refused.iter().any(|e| e.detail["reason"] == "scope"
                && e.result == "refused"
                && e.ip.as_deref() == Some("192.0.2.5")),
            "{refused:?}"
        );

        // The write key works from its range, not from another allowed by the server: 403, audited.
        assert_eq!(
            caller(&app, &write, "192.0.2.77")
                .get("/keys")
                .await
                .status(),
            StatusCode::OK
        );
        problem(
            caller(&app, &write, "198.51.100.7").get("/keys").await,
            StatusCode::FORBIDDEN,
        )
        .await;
        let refused = audit(&app, "admin.refused", None).await;
        assert!(
            refused
                .iter()
                .any(|e| e.actor.as_deref() == Some(&format!("key:{write_id}"))
                    && e.detail["reason"] == "address"
                    && e.ip.as_deref() == Some("198.51.100.7")),
            "{refused:?}"
        );
        // Outside the server's own list, even a key for any address is refused.
        problem(
            caller(&app, &read, "203.0.113.9").get("/keys").await,
            StatusCode::FORBIDDEN,
        )
        .await;

        // Keys never reach the audit log.
        let everything = app
            .store
            .query_audit(&AuditQuery {
                limit: 10_000,
                ..Default::default()
            })
            .await
            .unwrap();
        let text = serde_json::to_string(&everything).unwrap();
        assert!(!text.contains(&write) && !text.contains(&read) && !text.contains(&revoked));

        // Past its expiry the key no longer works.
        app.clock.advance(3601);
        let body = problem(
            caller(&app, &write, "192.0.2.5").get("/keys").await,
            StatusCode::UNAUTHORIZED,
        )
        .await;
        assert!(body["detail"].as_str().unwrap().contains("expired"));
        app.stop().await;
    }
}

#[tokio::test]
async fn clients_are_managed_with_versions_and_audited() {
    for database in databases() {
        let app = start(database).await;
        let (write_id, write) = key(&app, AdminScope::Write, None, &[]).await;
        let (_, read) = key(&app, AdminScope::Read, None, &[]).await;
        let w = caller(&app, &write, "127.0.0.1");
        let r = caller(&app, &read, "127.0.0.1");
        let actor = format!("key:{write_id}");

        // Create: 201, the secret once, an ETag.
        let created = w
            .req(reqwest::Method::POST, "/clients")
            .json(&json!({"name": "Grafana", "redirect_uris": ["https://grafana.example/cb"], "scopes": ["openid", "profile"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let etag = created.headers()["etag"].to_str().unwrap().to_owned();
        let body: Value = created.json().await.unwrap();
        let id = body["client_id"].as_str().unwrap().to_owned();
        let secret = body["client_secret"].as_str().unwrap().to_owned();
        assert!(secret.starts_with("tgcs_"));
        assert_eq!(body["settings"]["name"], "Grafana");
        let stored = app.store.get_client(&id).await.unwrap().unwrap();
        assert_eq!(
            stored.secret_hash.unwrap(),
            telegram_oidc::secrets::token_hash(&secret)
        );
        let entry = &audit(&app, "admin.client.created", Some(&id)).await[0];
        assert_eq!(entry.actor.as_deref(), Some(actor.as_str()));
        assert_eq!(entry.detail["after"]["name"], "Grafana");
        assert!(!serde_json::to_string(entry).unwrap().contains(&secret));

        // Invalid values: 422 problem; malformed JSON: 400 problem.
        problem(
            w.req(reqwest::Method::POST, "/clients")
                .json(&json!({"name": "x", "redirect_uris": ["http://evil.example/cb"]}))
                .send()
                .await
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        problem(
            w.req(reqwest::Method::POST, "/clients")
                .body("{not json")
                .send()
                .await
                .unwrap(),
            StatusCode::BAD_REQUEST,
        )
        .await;

        // Show: the same ETag; list: pages by cursor.
        let shown = r.get(&format!("/clients/{id}")).await;
        assert_eq!(shown.status(), StatusCode::OK);
        assert_eq!(shown.headers()["etag"].to_str().unwrap(), etag);
        problem(
            r.get("/clients/no-such-client").await,
            StatusCode::NOT_FOUND,
        )
        .await;
        let mut created = vec![id.clone()];
        for n in 0..3 {
            let made: Value = w
                .req(reqwest::Method::POST, "/clients")
                .json(&json!({"name": format!("App {n}"), "service_account": true, "scopes": ["api.read"]}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            created.push(made["client_id"].as_str().unwrap().to_owned());
        }
        // Other tests add and remove clients in the same database meanwhile: the pages are
        // checked against what exists before and after, not against one count.
        let before = app.store.list_clients().await.unwrap();
        let mut seen = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/clients?limit=2&cursor={c}"),
                None => "/clients?limit=2".to_owned(),
            };
            let page: Value = r.get(&path).await.json().await.unwrap();
            let items = page["items"].as_array().unwrap();
            assert!(items.len() <= 2);
            seen.extend(
                items
                    .iter()
                    .map(|c| c["client_id"].as_str().unwrap().to_owned()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => break,
            }
        }
        let after = app.store.list_clients().await.unwrap();
        for c in &created {
            assert!(seen.contains(c), "{c} missing from the pages");
        }
        // Every client that existed throughout is on a page, and only existing ones are.
        for c in before
            .iter()
            .filter(|b| after.iter().any(|a| a.client_id == b.client_id))
        {
            assert!(seen.contains(&c.client_id), "{} missing", c.client_id);
        }
        for s in &seen {
            assert!(
                before.iter().chain(after.iter()).any(|c| &c.client_id == s),
                "{s} is no client"
            );
        }
        assert!(
            seen.windows(2).all(|w| w[0] < w[1]),
            "pages overlap or are out of order"
        );
        problem(r.get("/clients?limit=0").await, StatusCode::BAD_REQUEST).await;

        // Update: If-Match required (428), a stale one refused (412), the current one works.
        let patch = json!({"scopes": ["openid", "groups"], "access_policy": {"ids": [42]}});
        problem(
            w.req(reqwest::Method::PATCH, &format!("/clients/{id}"))
                .json(&patch)
                .send()
                .await
                .unwrap(),
            StatusCode::PRECONDITION_REQUIRED,
        )
        .await;
        let changed = w
            .req(reqwest::Method::PATCH, &format!("/clients/{id}"))
            .header("if-match", &etag)
            .json(&patch)
            .send()
            .await
            .unwrap();
        assert_eq!(changed.status(), StatusCode::OK);
        let new_etag = changed.headers()["etag"].to_str().unwrap().to_owned();
        assert_ne!(new_etag, etag);
        let body: Value = changed.json().await.unwrap();
        assert_eq!(
            body["settings"]["allowed_scopes"],
            json!(["openid", "groups"])
        );
        let stored = app.store.get_client(&id).await.unwrap().unwrap();
        assert_eq!(
            stored.settings.access_policy,
            Some(telegram_oidc::access::Rule::Ids(vec![42]))
        );
        // A second admin still holding the first version is refused, and nothing changes.
        let stale = w
            .req(reqwest::Method::PATCH, &format!("/clients/{id}"))
            .header("if-match", &etag)
            .json(&json!({"access_policy": null}))
            .send()
            .await
            .unwrap();
        problem(stale, StatusCode::PRECONDITION_FAILED).await;
        assert!(
            app.store
                .get_client(&id)
                .await
                .unwrap()
                .unwrap()
                .settings
                .access_policy
                .is_some()
        );
        let entry = &audit(&app, "admin.client.updated", Some(&id)).await;
        assert_eq!(entry.len(), 1);
        assert_eq!(
            entry[0].detail["before"]["allowed_scopes"],
            json!(["openid", "profile"])
        );
        assert_eq!(
            entry[0].detail["after"]["allowed_scopes"],
            json!(["openid", "groups"])
        );
        // `null` clears the policy.
        let cleared = w
            .req(reqwest::Method::PATCH, &format!("/clients/{id}"))
            .header("if-match", &new_etag)
            .json(&json!({"access_policy": null}))
            .send()
            .await
            .unwrap();
        assert_eq!(cleared.status(), StatusCode::OK);
        let new_etag = cleared.headers()["etag"].to_str().unwrap().to_owned();
        assert!(
            app.store
                .get_client(&id)
                .await
                .unwrap()
                .unwrap()
                .settings
                .access_policy
                .is_none()
        );

        // Rotate the secret: a new one, the old one's hash gone, audited without it.
        let rotated: Value = w
            .req(reqwest::Method::POST, &format!("/clients/{id}/secret"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let new_secret = rotated["client_secret"].as_str().unwrap();
        assert!(new_secret.starts_with("tgcs_") && new_secret != secret);
        assert_eq!(
            app.store
                .get_client(&id)
                .await
                .unwrap()
                .unwrap()
                .secret_hash
                .unwrap(),
            telegram_oidc::secrets::token_hash(new_secret)
        );
        let entry = &audit(&app, "admin.client.secret_rotated", Some(&id)).await[0];
        assert!(!serde_json::to_string(entry).unwrap().contains(new_secret));

        // Remove: a stale version refused, then gone.
        problem(
            w.req(reqwest::Method::DELETE, &format!("/clients/{id}"))
                .header("if-match", &etag)
                .send()
                .await
                .unwrap(),
            StatusCode::PRECONDITION_FAILED,
        )
        .await;
        let removed = w
            .req(reqwest::Method::DELETE, &format!("/clients/{id}"))
            .header("if-match", &new_etag)
            .send()
            .await
            .unwrap();
        assert_eq!(removed.status(), StatusCode::NO_CONTENT);
        assert!(app.store.get_client(&id).await.unwrap().is_none());
        assert_eq!(
            audit(&app, "admin.client.removed", Some(&id)).await[0].detail["before"]["name"],
            "Grafana"
        );
        problem(
            w.req(reqwest::Method::DELETE, &format!("/clients/{id}"))
                .header("if-match", "*")
                .send()
                .await
                .unwrap(),
            StatusCode::NOT_FOUND,
        )
        .await;
        app.stop().await;
    }
}

#[tokio::test]
async fn keys_rotate_and_the_audit_log_pages() {
    for database in databases() {
        let app = start(database).await;
        let (write_id, write) = key(&app, AdminScope::Write, None, &[]).await;
        let w = caller(&app, &write, "127.0.0.1");

        let before: Value = w.get("/keys").await.json().await.unwrap();
        let rotated = w
            .req(reqwest::Method::POST, "/keys/rotate")
            .json(&json!({"alg": "ES256", "activate_in": 60}))
            .send()
            .await
            .unwrap();
        assert_eq!(rotated.status(), StatusCode::CREATED);
        let new: Value = rotated.json().await.unwrap();
        assert_eq!(new["alg"], "ES256");
        assert_eq!(new["state"], "published");
        let after: Value = w.get("/keys").await.json().await.unwrap();
        assert_eq!(
            after["items"].as_array().unwrap().len(),
            before["items"].as_array().unwrap().len() + 1
        );
        assert!(
            after["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|k| k["kid"] == new["kid"])
        );
        let entry = &audit(&app, "admin.key.rotated", None).await[0];
        assert_eq!(entry.detail["kid"], new["kid"]);
        assert_eq!(
            entry.actor.as_deref(),
            Some(format!("key:{write_id}").as_str())
        );
        problem(
            w.req(reqwest::Method::POST, "/keys/rotate")
                .json(&json!({"alg": "HS256"}))
                .send()
                .await
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;
        problem(
            w.req(reqwest::Method::POST, "/keys/rotate")
                .json(&json!({"activate_in": 86401}))
                .send()
                .await
                .unwrap(),
            StatusCode::UNPROCESSABLE_ENTITY,
        )
        .await;

        // Five entries of one client, read two at a time, newest first, none twice.
        let client = format!("audit-{}", telegram_oidc::secrets::new_id());
        for n in 0..5 {
            admin::record_action(
                app.store.as_ref(),
                "cli",
                "admin.test",
                Some(&client),
                json!({"n": n}),
                app.clock.now_millis(),
            )
            .await
            .unwrap();
        }
        let mut ns = Vec::new();
        let mut cursor = String::new();
        loop {
            let page: Value = w
                .get(&format!(
                    "/audit?client={client}&event=admin&limit=2{cursor}"
                ))
                .await
                .json()
                .await
                .unwrap();
            ns.extend(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["detail"]["n"].as_i64().unwrap()),
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        assert_eq!(ns, vec![4, 3, 2, 1, 0]);
        let none: Value = w
            .get(&format!("/audit?client={client}&event=login"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(none["items"], json!([]));
        problem(w.get("/audit?cursor=abc").await, StatusCode::BAD_REQUEST).await;
        problem(w.get("/audit?unknown=1").await, StatusCode::BAD_REQUEST).await;
        problem(w.get("/no-such-route").await, StatusCode::NOT_FOUND).await;
        app.stop().await;
    }
}

#[tokio::test]
async fn the_openapi_document_lists_every_route() {
    let app = TestApp::start().await;
    let r = reqwest::get(app.url(&format!("{API}/openapi.json")))
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let mut routes: Vec<String> = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "post", "patch", "delete"].contains(&m.as_str()))
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    routes.sort();
    assert_eq!(
        routes,
        [
            "DELETE /admin/api/v1/clients/{client_id}",
            "DELETE /admin/api/v1/users/{user_id}/grants/{client_id}",
            "DELETE /admin/api/v1/users/{user_id}/sessions/{session_id}",
            "GET /admin/api/v1/audit",
            "GET /admin/api/v1/clients",
            "GET /admin/api/v1/clients/{client_id}",
            "GET /admin/api/v1/keys",
            "GET /admin/api/v1/users",
            "GET /admin/api/v1/users/{user_id}",
            "PATCH /admin/api/v1/clients/{client_id}",
            "POST /admin/api/v1/clients",
            "POST /admin/api/v1/clients/{client_id}/secret",
            "POST /admin/api/v1/keys/rotate",
            "POST /admin/api/v1/users/{user_id}/block",
            "POST /admin/api/v1/users/{user_id}/revoke",
            "POST /admin/api/v1/users/{user_id}/unblock",
        ]
    );
    // Every route it lists is served (not the catch-all's 404) and asks for a key.
    for route in &routes {
        let (method, path) = route.split_once(' ').unwrap();
        let r = reqwest::Client::new()
            .request(
                method.parse().unwrap(),
                app.url(
                    &path
                        .replace("{client_id}", "x")
                        .replace("{user_id}", "1")
                        .replace("{session_id}", "x"),
                ),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{route}");
    }
    assert!(doc["components"]["securitySchemes"]["admin_key"].is_object());
    assert!(doc["components"]["schemas"]["Problem"].is_object());
    app.stop().await;
}

/// A blocked user's widget login: the audit says it was refused for the block, and no code
/// reaches the app.
async fn login_refused_for_block(app: &TestApp, client: &TestClient, user: i64) {
    let browser = crate::account::browser(crate::account::FIREFOX);
    let url = format!(
        "{}?response_type=code&client_id={}&redirect_uri={}&scope=openid&state=s&code_challenge={}&code_challenge_method=S256",
        app.url("/authorize"),
        client.id(),
        url::form_urlencoded::byte_serialize(client.redirect_uri.as_bytes()).collect::<String>(),
        telegram_oidc::oidc::pkce::s256("admin-api-test-verifier-0123456789-abcdefghijklmn"),
    );
    app.clock.advance(1);
    let login = absolute(app, &location(browser.get(&url).await.headers()));
    let req = req_of(&login);
    let fields = widget_fields(&TgUser::new(user), app.now(), BOT_TOKEN);
    let r = browser
        .get(&format!(
            "{}?{}",
            app.url(&format!("/login/telegram/{req}")),
            encode(&fields)
        ))
        .await;
    let to = r
        .headers()
        .get("location")
        .map(|l| l.to_str().unwrap().to_owned())
        .unwrap_or_default();
    assert!(!to.contains("code="), "a blocked user got a code: {to}");
    // Login entries are written in batches: wait for this one.
    for _ in 0..300 {
        let entries = app
            .store
            .query_audit(&AuditQuery {
                user_id: Some(user),
                event: Some("login".into()),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        if entries
            .iter()
            .any(|e| e.result == "refused" && e.detail["reason"] == "the user is blocked")
        {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("no audit entry of the refused login");
}

#[tokio::test]
async fn users_are_found_shown_blocked_and_their_grants_ended() {
    for database in databases() {
        let app = start(database).await;
        let (write_id, write) = key(&app, AdminScope::Write, None, &[]).await;
        let (_, read) = key(&app, AdminScope::Read, None, &[]).await;
        let w = caller(&app, &write, "127.0.0.1");
        let r = caller(&app, &read, "127.0.0.1");
        let actor = format!("key:{write_id}");
        let client =
            crate::account::register(&app, "Blockable app", "blockable.example", None).await;
        // Unique per run: a shared PostgreSQL keeps users of earlier runs.
        let user = 7_000_000_000 + (app.now() % 1_000_000) * 100 + rand_small();
        let browser = crate::account::browser(crate::account::FIREFOX);
        let mut tokens = crate::account::log_in(&app, &client, &browser, user).await;

        // Found by id and by username (any case, with @), paging through the latter.
        let page: Value = r
            .get(&format!("/users?q={user}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(page["items"][0]["telegram_id"], user);
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        let mut found = false;
        let mut cursor = String::new();
        for _ in 0..1000 {
            let page: Value = r
                .get(&format!("/users?q=%40ADA_TG&limit=100{cursor}"))
                .await
                .json()
                .await
                .unwrap();
            found |= page["items"]
                .as_array()
                .unwrap()
                .iter()
                .any(|u| u["telegram_id"] == user);
            assert!(
                page["items"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|u| u["username"] == "ada_tg")
            );
            match page["next_cursor"].as_str() {
                Some(c) => cursor = format!("&cursor={c}"),
                None => break,
            }
        }
        assert!(found);

        // Shown with the app it gave something to and its browser session.
        let detail: Value = r.get(&format!("/users/{user}")).await.json().await.unwrap();
        assert_eq!(detail["blocked_at"], Value::Null);
        assert!(
            detail["grants"]
                .as_array()
                .unwrap()
                .iter()
                .any(|g| g["client_id"] == client.id())
        );
        assert_eq!(detail["sessions"].as_array().unwrap().len(), 1);
        problem(r.get("/users/1").await, StatusCode::NOT_FOUND).await;
        problem(r.get("/users/not-a-number").await, StatusCode::NOT_FOUND).await;
        problem(
            r.req(reqwest::Method::POST, &format!("/users/{user}/block"))
                .send()
                .await
                .unwrap(),
            StatusCode::FORBIDDEN,
        )
        .await;

        // Blocking ends every grant and session at once, and the gate refuses the user.
        let blocked = w
            .req(reqwest::Method::POST, &format!("/users/{user}/block"))
            .send()
            .await
            .unwrap();
        assert_eq!(blocked.status(), StatusCode::OK);
        let blocked: Value = blocked.json().await.unwrap();
        assert!(blocked["blocked_at"].is_i64());
        crate::account::assert_live(&app, &client, &mut tokens, false).await;
        assert!(!crate::account::signed_in(&app, &browser).await);
        let detail: Value = r.get(&format!("/users/{user}")).await.json().await.unwrap();
        assert_eq!(detail["sessions"], json!([]));
        assert_eq!(detail["grants"], json!([]));
        login_refused_for_block(&app, &client, user).await;
        let entry = &audit(&app, "admin.user.blocked", None).await;
        assert!(
            entry
                .iter()
                .any(|e| e.user_id == Some(user) && e.actor.as_deref() == Some(actor.as_str()))
        );

        // Unblocked, the user logs in again; then a session, a grant, everything are ended.
        let unblocked: Value = w
            .req(reqwest::Method::POST, &format!("/users/{user}/unblock"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(unblocked["blocked_at"], Value::Null);
        assert!(
            audit(&app, "admin.user.unblocked", None)
                .await
                .iter()
                .any(|e| e.user_id == Some(user))
        );
        let browser = crate::account::browser(crate::account::FIREFOX);
        let mut tokens = crate::account::log_in(&app, &client, &browser, user).await;
        crate::account::assert_live(&app, &client, &mut tokens, true).await;
        let detail: Value = r.get(&format!("/users/{user}")).await.json().await.unwrap();
        let session = detail["sessions"][0]["id"].as_str().unwrap().to_owned();
        problem(
            w.req(
                reqwest::Method::DELETE,
                &format!("/users/{user}/sessions/{}", "00".repeat(32)),
            )
            .send()
            .await
            .unwrap(),
            StatusCode::NOT_FOUND,
        )
        .await;
        let ended = w
            .req(
                reqwest::Method::DELETE,
                &format!("/users/{user}/sessions/{session}"),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(ended.status(), StatusCode::NO_CONTENT);
        assert!(!crate::account::signed_in(&app, &browser).await);
        crate::account::assert_live(&app, &client, &mut tokens, false).await;
        assert!(
            audit(&app, "admin.session.revoked", None)
                .await
                .iter()
                .any(|e| e.user_id == Some(user))
        );

        let browser = crate::account::browser(crate::account::FIREFOX);
        let mut tokens = crate::account::log_in(&app, &client, &browser, user).await;
        let ended = w
            .req(
                reqwest::Method::DELETE,
                &format!("/users/{user}/grants/{}", client.id()),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(ended.status(), StatusCode::NO_CONTENT);
        crate::account::assert_live(&app, &client, &mut tokens, false).await;
        assert!(
            audit(&app, "admin.grant.revoked", Some(client.id()))
                .await
                .iter()
                .any(|e| e.user_id == Some(user))
        );

        let mut tokens = crate::account::log_in(&app, &client, &browser, user).await;
        let ended: Value = w
            .req(reqwest::Method::POST, &format!("/users/{user}/revoke"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(ended["ended"].as_u64().unwrap() >= 2, "{ended}");
        crate::account::assert_live(&app, &client, &mut tokens, false).await;
        assert!(!crate::account::signed_in(&app, &browser).await);
        assert!(
            audit(&app, "admin.user.revoked", None)
                .await
                .iter()
                .any(|e| e.user_id == Some(user))
        );
        app.stop().await;
    }
}

fn rand_small() -> i64 {
    i64::from(telegram_oidc::secrets::random_bytes::<1>()[0] % 100)
}

#[tokio::test]
async fn a_client_changed_since_it_was_read_is_not_overwritten() {
    for database in databases() {
        let app = start(database).await;
        let client = app.confidential_client().await;
        let read = client.record.settings.clone();
        // Another admin changes the client after this one read it.
        let mut theirs = client.record.clone();
        theirs.settings.require_bot_confirmation = true;
        assert!(app.store.update_client(&theirs).await.unwrap());
        let mut mine = client.record.clone();
        mine.settings.skip_consent = true;
        assert!(
            !app.store
                .update_client_unless_changed(&mine, &read)
                .await
                .unwrap()
        );
        let stored = app.store.get_client(client.id()).await.unwrap().unwrap();
        assert!(stored.settings.require_bot_confirmation && !stored.settings.skip_consent);
        // Read again, the change goes through; an unknown client is never written.
        let mut mine = stored.clone();
        mine.settings.skip_consent = true;
        assert!(
            app.store
                .update_client_unless_changed(&mine, &stored.settings)
                .await
                .unwrap()
        );
        assert!(
            app.store
                .get_client(client.id())
                .await
                .unwrap()
                .unwrap()
                .settings
                .skip_consent
        );
        mine.client_id = "no-such-client".into();
        assert!(
            !app.store
                .update_client_unless_changed(&mine, &stored.settings)
                .await
                .unwrap()
        );
        app.stop().await;
    }
}
