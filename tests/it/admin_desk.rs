//! The admin desk (`/admin`) over HTTP: admins sign in with Telegram through the ordinary login
//! pages and the same gate as every login (configured ids, or the administrators of a chat);
//! everyone else is refused. Apps are registered, edited, rotated and removed, users blocked,
//! keys rotated and the audit log read, each form behind the desk's CSRF token, each action in
//! the audit log with the admin as its actor. Desk sessions end when idle, at sign-out, when the
//! admin is blocked or loses the chat; on an https issuer the cookie is `__Host-`. On SQLite,
//! and on PostgreSQL when `TEST_DATABASE_URL` is set.

use std::collections::BTreeMap;

use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use telegram_oidc::admin::{self, Actor};
use telegram_oidc::secrets::token_hash;
use telegram_oidc::store::AuditQuery;

use crate::account::{
    CHROME_ANDROID, FIREFOX, account_app, assert_live, browser, databases, log_in, register,
};
use crate::fake_bot_api::FakeBotApi;
use crate::harness::*;

const CHAT: i64 = -1_007_100_000;

/// The Telegram ids of one test's people: new in every run, since a PostgreSQL database keeps
/// its users (and their blocks) from one run to the next.
#[derive(Clone, Copy)]
struct People {
    admin: i64,
    chat_admin: i64,
    nobody: i64,
    user: i64,
}

fn people() -> People {
    static NEXT: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(0);
    let seed = i64::from(u32::from_le_bytes(
        telegram_oidc::secrets::random_bytes::<4>(),
    )) % 1_000_000_000;
    let base = 8_000_000_000
        + seed * 10
        + NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) * 10_000_000_000;
    People {
        admin: base + 1,
        chat_admin: base + 2,
        nobody: base + 3,
        user: base + 4,
    }
}

fn admins(p: People) -> impl FnOnce(&mut telegram_oidc::config::Config) {
    move |c| {
        c.admin.telegram_ids = vec![p.admin];
        c.admin.chat_id = Some(CHAT);
    }
}

/// The audit entries of `event`, once the log has written them (it writes in batches).
async fn audit_until(
    app: &TestApp,
    event: &str,
    found: impl Fn(&telegram_oidc::store::AuditEntry) -> bool,
) -> Vec<telegram_oidc::store::AuditEntry> {
    for _ in 0..100 {
        let entries = audit(app, event).await;
        if entries.iter().any(&found) {
            return entries;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("no {event} entry came");
}

/// What a sign-in to the desk ended with: the last response's status, its page, and where it
/// was.
struct Ended {
    status: StatusCode,
    html: String,
    url: String,
}

/// Signs in to the desk as `user` through the widget: `/admin`, the login page, the widget's
/// callback, and on to wherever the gate sends the browser.
async fn desk_login(app: &TestApp, b: &Browser, user: i64) -> Ended {
    app.clock.advance(1);
    let resp = b.get(&app.url("/admin")).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    let login = absolute(app, &location(resp.headers()));
    assert!(login.contains("/login?req="), "{login}");
    let req = req_of(&login);
    let page = b.get(&login).await.text().await.unwrap();
    assert!(page.contains("the admin desk"), "{page}");
    let fields = widget_fields(&TgUser::new(user), app.now(), BOT_TOKEN);
    let mut url = format!(
        "{}?{}",
        app.url(&format!("/login/telegram/{req}")),
        encode(&fields)
    );
    for _ in 0..6 {
        let resp = b.get(&url).await;
        if resp.status() != StatusCode::SEE_OTHER {
            return Ended {
                status: resp.status(),
                html: resp.text().await.unwrap(),
                url,
            };
        }
        url = absolute(app, &location(resp.headers()));
    }
    panic!("the sign-in did not end");
}

async fn signed_in(app: &TestApp, user: i64) -> (Browser, String) {
    let b = browser(FIREFOX);
    let end = desk_login(app, &b, user).await;
    assert_eq!(end.status, StatusCode::OK, "{}", end.html);
    assert!(end.url.ends_with("/admin/apps"), "{}", end.url);
    assert!(end.html.contains("Admin desk"), "{}", end.html);
    let csrf = hidden(&end.html, "csrf");
    (b, csrf)
}

fn form(fields: &[(&str, &str)]) -> Vec<(String, String)> {
    fields
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

async fn audit(app: &TestApp, event: &str) -> Vec<telegram_oidc::store::AuditEntry> {
    app.store
        .query_audit(&AuditQuery {
            event: Some(event.into()),
            limit: 100,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn only_admins_pass_the_gate_to_the_desk() {
    for database in databases() {
        let p = people();
        let (admin, chat_admin_id, nobody) = (p.admin, p.chat_admin, p.nobody);
        let bot = FakeBotApi::start().await;
        let app = account_app(&bot, database, admins(p)).await;
        bot.set_member(CHAT, chat_admin_id, "administrator");
        bot.set_member(CHAT, nobody, "member");

        // A member of the chat who is not its administrator, and not named: refused.
        let b = browser(FIREFOX);
        let end = desk_login(&app, &b, nobody).await;
        assert_eq!(end.status, StatusCode::FORBIDDEN, "{}", end.html);
        assert!(end.html.contains("Not an admin"), "{}", end.html);
        audit_until(&app, "policy.refused", |e| {
            e.user_id == Some(nobody) && e.client_id.as_deref() == Some("~admin")
        })
        .await;
        // The refused browser got no desk: it is sent to sign in again.
        let resp = b.get(&app.url("/admin/apps")).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert!(location(resp.headers()).contains("/login?req="));

        // A named admin and the chat's administrator enter.
        let (named, _) = signed_in(&app, admin).await;
        let (chat_admin, _) = signed_in(&app, chat_admin_id).await;
        let actor = format!("admin:{chat_admin_id}");
        audit_until(&app, "admin.signed_in", |e| {
            e.actor.as_deref() == Some(&actor)
        })
        .await;

        // A blocked admin loses the desk at once and cannot sign in again.
        let resp = named.get(&app.url("/admin/users")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        admin::block_user(app.store.as_ref(), &Actor::cli(), admin, app.now() * 1000)
            .await
            .unwrap();
        let resp = named.get(&app.url("/admin/users")).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let end = desk_login(&app, &browser(FIREFOX), admin).await;
        assert_eq!(end.status, StatusCode::FORBIDDEN, "{}", end.html);

        // The chat's administrator is demoted: once the cached answer is stale, the desk is gone
        // (the wait stays under the desk's idle timeout).
        assert!(app.config.policy.cache_secs + 1 < app.config.admin.idle_timeout_secs);
        let resp = chat_admin.get(&app.url("/admin/users")).await;
        assert_eq!(resp.status(), StatusCode::OK);
        bot.set_member(CHAT, chat_admin_id, "member");
        app.clock.advance(app.config.policy.cache_secs + 1);
        let resp = chat_admin.get(&app.url("/admin/users")).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        // ... and its desk session was ended, not kept for later.
        bot.set_member(CHAT, chat_admin_id, "administrator");
        app.clock.advance(app.config.policy.cache_secs + 1);
        let resp = chat_admin.get(&app.url("/admin/users")).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    }
}

#[tokio::test]
async fn the_desk_registers_edits_rotates_and_removes_apps_behind_csrf() {
    for database in databases() {
        let p = people();
        let bot = FakeBotApi::start().await;
        let app = account_app(&bot, database, admins(p)).await;
        let (b, csrf) = signed_in(&app, p.admin).await;
        let page = b.get(&app.url("/admin/apps/new")).await;
        assert_eq!(page.status(), StatusCode::OK);
        let new_app = form(&[
            ("csrf", &csrf),
            ("name", "Desk CRM"),
            ("kind", "confidential"),
            (
                "redirect_uris",
                "https://crm.example.test/cb\r\nhttps://crm.example.test/cb2",
            ),
            ("scopes", "openid profile"),
            ("id_token_alg", "ES256"),
            ("access_token_format", "opaque"),
            ("policy", "[policy]\nids = [42, 43]"),
        ]);

        // A forged token, or no desk session, changes nothing.
        let mut forged = new_app.clone();
        forged[0].1 = "forged".into();
        let resp = b.post_form(&app.url("/admin/apps"), &forged).await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        let resp = Browser::new()
            .post_form(&app.url("/admin/apps"), &new_app)
            .await;
        assert_eq!(resp.status(), StatusCode::FORBIDDEN);
        assert!(
            !app.store
                .list_clients()
                .await
                .unwrap()
                .iter()
                .any(|c| c.settings.name == "Desk CRM")
        );

        // A bad URI is refused on the form, with what was typed kept.
        let mut bad = new_app.clone();
        bad[3].1 = "http://crm.example.test/cb".into();
        let resp = b.post_form(&app.url("/admin/apps"), &bad).await;
        assert_eq!(resp.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let html = resp.text().await.unwrap();
        assert!(
            html.contains("must use https") && html.contains("Desk CRM"),
            "{html}"
        );

        // Registered: the secret is shown this once, and it is the one stored.
        let resp = b.post_form(&app.url("/admin/apps"), &new_app).await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let html = resp.text().await.unwrap();
        let secret = between(&html, "<pre class=\"code\">", "</pre>");
        assert!(secret.starts_with("tgcs_"), "{html}");
        let client = app
            .store
            .list_clients()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.settings.name == "Desk CRM")
            .unwrap();
        assert_eq!(
            client.secret_hash.as_deref(),
            Some(&token_hash(&secret)[..])
        );
        assert_eq!(client.settings.redirect_uris.len(), 2);
        assert_eq!(client.settings.id_token_alg.to_string(), "ES256");
        assert!(client.settings.access_policy.is_some());
        let actor = format!("admin:{}", p.admin);
        audit_until(&app, "admin.client.created", |e| {
            e.client_id.as_deref() == Some(&client.client_id) && e.actor.as_deref() == Some(&actor)
        })
        .await;

        // The list shows it; its page holds the version the edit form sends back.
        let list = b.get(&app.url("/admin/apps")).await.text().await.unwrap();
        assert!(list.contains("Desk CRM") && list.contains("crm.example.test"));
        let url = app.url(&format!("/admin/apps/{}", client.client_id));
        let html = b.get(&url).await.text().await.unwrap();
        assert!(!html.contains(&secret), "the secret is shown only once");
        let version = hidden(&html, "version");
        let edit = |version: &str, name: &str| {
            form(&[
                ("csrf", &csrf),
                ("action", "update"),
                ("version", version),
                ("name", name),
                ("redirect_uris", "https://crm.example.test/cb"),
                ("scopes", "openid profile groups"),
                ("require_bot_confirmation", "on"),
                ("policy", ""),
            ])
        };
        let resp = b.post_form(&url, &edit(&version, "Desk CRM 2")).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert!(location(resp.headers()).ends_with("?done=updated"));
        let changed = admin::get_client(app.store.as_ref(), &client.client_id)
            .await
            .unwrap();
        assert_eq!(changed.settings.name, "Desk CRM 2");
        assert_eq!(
            changed.settings.redirect_uris,
            ["https://crm.example.test/cb"]
        );
        assert!(changed.settings.require_bot_confirmation);
        assert!(changed.settings.access_policy.is_none());
        assert!(
            changed
                .settings
                .allowed_scopes
                .contains(&"groups".to_owned())
        );
        // A second admin's save made on the old page is refused, not silently applied.
        let resp = b.post_form(&url, &edit(&version, "Stale")).await;
        assert_eq!(resp.status(), StatusCode::CONFLICT);
        assert_eq!(
            admin::get_client(app.store.as_ref(), &client.client_id)
                .await
                .unwrap()
                .settings
                .name,
            "Desk CRM 2"
        );

        // Rotation shows a new secret once; only it is stored.
        let resp = b
            .post_form(&url, &form(&[("csrf", &csrf), ("action", "rotate")]))
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        let html = resp.text().await.unwrap();
        let rotated = between(&html, "<pre class=\"code\">", "</pre>");
        assert!(rotated.starts_with("tgcs_") && rotated != secret);
        let now = admin::get_client(app.store.as_ref(), &client.client_id)
            .await
            .unwrap();
        assert_eq!(now.secret_hash.as_deref(), Some(&token_hash(&rotated)[..]));

        // Removal needs the box ticked, then the app is gone.
        let version = hidden(&b.get(&url).await.text().await.unwrap(), "version");
        let remove = |confirm: &str| {
            form(&[
                ("csrf", &csrf),
                ("action", "remove"),
                ("version", &version),
                ("confirm", confirm),
            ])
        };
        let resp = b.post_form(&url, &remove("")).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let resp = b.post_form(&url, &remove("yes")).await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert!(
            app.store
                .get_client(&client.client_id)
                .await
                .unwrap()
                .is_none()
        );
        let resp = b.get(&url).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        // Hostile bytes in a form or a path get a clear refusal, never a 5xx.
        let resp = b
            .post_form(
                &app.url("/admin/apps"),
                &form(&[("csrf", &csrf), ("name", "a\0b"), ("kind", "public")]),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        let resp = b.get(&app.url("/admin/apps/%00")).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let resp = b.get(&app.url("/admin/users/%00x")).await;
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let resp = b.get(&app.url("/admin/audit?client=%00")).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
}

#[tokio::test]
async fn the_desk_blocks_users_rotates_keys_and_reads_the_audit() {
    for database in databases() {
        let p = people();
        let bot = FakeBotApi::start().await;
        let app = account_app(&bot, database, admins(p)).await;
        let client = register(&app, "Grafana", "grafana.example.test", None).await;
        let user = p.user;
        let phone = browser(CHROME_ANDROID);
        let mut tokens = log_in(&app, &client, &phone, user).await;
        let (b, csrf) = signed_in(&app, p.admin).await;

        // Found by id; the page lists the app it gave something to and its browser.
        let html = b
            .get(&app.url(&format!("/admin/users?q={user}")))
            .await
            .text()
            .await
            .unwrap();
        assert!(html.contains(&format!("/admin/users/{user}")), "{html}");
        let url = app.url(&format!("/admin/users/{user}"));
        let html = b.get(&url).await.text().await.unwrap();
        assert!(
            html.contains("Grafana") && html.contains("Chrome on Android"),
            "{html}"
        );

        // Blocked: the tokens stop at once, the audit names the admin.
        let resp = b
            .post_form(&url, &form(&[("csrf", &csrf), ("action", "block")]))
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert_live(&app, &client, &mut tokens, false).await;
        let html = b.get(&url).await.text().await.unwrap();
        assert!(
            html.contains("blocked") && html.contains("Unblock"),
            "{html}"
        );
        let resp = b
            .post_form(&url, &form(&[("csrf", &csrf), ("action", "unblock")]))
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        assert!(
            admin::get_user(app.store.as_ref(), user)
                .await
                .unwrap()
                .blocked_at
                .is_none()
        );
        // An admin cannot lock themselves out.
        let resp = b
            .post_form(
                &app.url(&format!("/admin/users/{}", p.admin)),
                &form(&[("csrf", &csrf), ("action", "block")]),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

        // The audit page, filtered to the user, newest first.
        let html = b
            .get(&app.url(&format!("/admin/audit?user={user}")))
            .await
            .text()
            .await
            .unwrap();
        let unblocked = html.find("admin.user.unblocked").expect("the unblock");
        let blocked = html.find("admin.user.blocked").expect("the block");
        assert!(unblocked < blocked, "newest first");
        assert!(html.contains(&format!("admin:{}", p.admin)));
        assert!(!html.contains("admin.signed_in"), "filtered to the user");
        let html = b
            .get(&app.url("/admin/audit?event=admin.signed_in"))
            .await
            .text()
            .await
            .unwrap();
        assert!(html.contains("admin.signed_in") && !html.contains("admin.user.blocked"));

        // Keys: a rotation adds a published key that signs later.
        let html = b.get(&app.url("/admin/keys")).await.text().await.unwrap();
        assert!(html.contains("RS256"), "{html}");
        let before = html.matches("data-label=\"Key id\"").count();
        let resp = b
            .post_form(
                &app.url("/admin/keys"),
                &form(&[("csrf", &csrf), ("alg", "ES256"), ("activate_in", "600")]),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::SEE_OTHER);
        let html = b.get(&app.url("/admin/keys")).await.text().await.unwrap();
        assert_eq!(html.matches("data-label=\"Key id\"").count(), before + 1);
        assert!(html.contains("Published"), "{html}");
        let resp = b
            .post_form(
                &app.url("/admin/keys"),
                &form(&[("csrf", &csrf), ("alg", "HS256"), ("activate_in", "0")]),
            )
            .await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

        // In Russian for a Russian browser.
        let resp = b
            .http
            .get(app.url("/admin/users"))
            .header("accept-language", "ru-RU,ru;q=0.9")
            .send()
            .await
            .unwrap();
        let html = resp.text().await.unwrap();
        assert!(html.contains("Панель администратора") && html.contains("Пользователи"));
    }
}

#[tokio::test]
async fn desk_sessions_end_when_idle_and_at_sign_out() {
    let p = people();
    let bot = FakeBotApi::start().await;
    let app = account_app(&bot, None, admins(p)).await;
    let (b, csrf) = signed_in(&app, p.admin).await;
    // Each request restarts the idle time.
    for _ in 0..3 {
        app.clock.advance(app.config.admin.idle_timeout_secs - 60);
        let resp = b.get(&app.url("/admin/keys")).await;
        assert_eq!(resp.status(), StatusCode::OK);
    }
    app.clock.advance(app.config.admin.idle_timeout_secs + 1);
    let resp = b.get(&app.url("/admin/keys")).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(location(resp.headers()).contains("/login?req="));

    let (b, csrf2) = signed_in(&app, p.admin).await;
    assert_ne!(csrf, csrf2, "the token is bound to the desk session");
    let resp = b
        .post_form(&app.url("/admin/sign-out"), &form(&[("csrf", &csrf)]))
        .await;
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    let resp = b
        .post_form(&app.url("/admin/sign-out"), &form(&[("csrf", &csrf2)]))
        .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let cleared = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(cleared.starts_with("tgoidc_admin=;") && cleared.contains("Max-Age=0"));
    let resp = b.get(&app.url("/admin/keys")).await;
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);

    // With nobody named, the desk is off.
    let off = account_app(&bot, None, |_| {}).await;
    let resp = browser(FIREFOX).get(&off.url("/admin")).await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn on_an_https_issuer_the_desk_cookie_is_host_prefixed() {
    let p = people();
    let bot = FakeBotApi::start().await;
    let app = account_app(&bot, None, move |c| {
        admins(p)(c);
        c.issuer = "https://id.example.test".into();
    })
    .await;
    // The server is reached over loopback; its redirects name the https issuer. Cookies are
    // carried by hand, since a client's jar keeps Secure cookies to https.
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut jar: BTreeMap<String, String> = BTreeMap::new();
    let local = |url: &str| url.replace("https://id.example.test", &app.base);
    let mut admin_cookie = None;
    app.clock.advance(1);
    let mut url = app.url("/admin");
    let mut req = None;
    for _ in 0..10 {
        let cookies: Vec<String> = jar.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let resp = http
            .get(&url)
            .header(COOKIE, cookies.join("; "))
            .send()
            .await
            .unwrap();
        for c in resp.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            if c.starts_with("__Host-tgoidc_admin=") {
                admin_cookie = Some(c.to_owned());
            }
            let (pair, _) = c.split_once(';').unwrap();
            let (k, v) = pair.split_once('=').unwrap();
            jar.insert(k.into(), v.into());
        }
        if resp.status() != StatusCode::SEE_OTHER {
            assert_eq!(resp.status(), StatusCode::OK);
            break;
        }
        let next = local(resp.headers()[LOCATION].to_str().unwrap());
        if next.contains("/login?req=") && req.is_none() {
            let r = req_of(&next);
            let fields = widget_fields(&TgUser::new(p.admin), app.now(), BOT_TOKEN);
            url = format!(
                "{}?{}",
                app.url(&format!("/login/telegram/{r}")),
                encode(&fields)
            );
            req = Some(r);
        } else {
            url = next;
        }
    }
    let cookie = admin_cookie.expect("a desk cookie");
    assert!(cookie.starts_with("__Host-tgoidc_admin=tgas_"), "{cookie}");
    for part in ["Path=/;", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(cookie.contains(part), "{cookie} lacks {part}");
    }
    assert!(!cookie.contains("Domain"), "{cookie}");
    assert!(url.ends_with("/admin/apps"), "{url}");
}

fn between(html: &str, start: &str, end: &str) -> String {
    let at = html.find(start).expect("start") + start.len();
    let len = html[at..].find(end).expect("end");
    html[at..at + len].to_owned()
}
