//! Prometheus metrics on their own listener (`metrics.listen`): after a login, a code exchange,
//! a refresh, a refused code and a replayed refresh token, `/metrics` read by a Prometheus text
//! parser holds the expected series with the expected values; the main listener never serves
//! them, and without the setting nothing does. On SQLite, and on PostgreSQL when
//! `TEST_DATABASE_URL` is set (the pool series differ).

use std::net::SocketAddr;

use prometheus_parse::{Sample, Scrape, Value};
use reqwest::StatusCode;
use telegram_oidc::oidc::pkce;

use crate::harness::*;
use crate::store::postgres_url;

const VERIFIER: &str = "metrics-verifier_0123456789.abcdefghijklmnopqrstuvwxyz~ABC";

/// A loopback address no one listens on right now.
fn free_address() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn databases() -> Vec<Option<String>> {
    let mut out = vec![None];
    if let Some(url) = postgres_url() {
        out.push(Some(url));
    }
    out
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `/metrics` as Prometheus reads it: the text format, parsed.
async fn scrape(metrics: SocketAddr) -> Scrape {
    scrape_text(metrics).await.1
}

/// The text of `/metrics`, and the text parsed.
async fn scrape_text(metrics: SocketAddr) -> (String, Scrape) {
    let resp = http()
        .get(format!("http://{metrics}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    let parsed = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
    (text, parsed)
}

/// The samples of `metric` whose labels are exactly `labels`.
fn find<'a>(scrape: &'a Scrape, metric: &str, labels: &[(&str, &str)]) -> Vec<&'a Sample> {
    scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .collect()
}

/// The value of the one sample of `metric` with exactly `labels`.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let found = find(scrape, metric, labels);
    assert_eq!(
        found.len(),
        1,
        "one sample of {metric}{labels:?} expected, found {found:?}"
    );
    match &found[0].value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
        other => panic!("{metric}: not a single value: {other:?}"),
    }
}

async fn token(app: &TestApp, client: &TestClient, form: &[(&str, &str)]) -> reqwest::Response {
    http()
        .post(app.url("/token"))
        .basic_auth(client.id(), Some(client.secret()))
        .form(form)
        .send()
        .await
        .unwrap()
}

fn authorize_url(app: &TestApp, client: &TestClient) -> String {
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", client.id()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("scope", "openid profile offline_access"),
            ("state", "st-metrics"),
            ("nonce", "n-metrics"),
            ("code_challenge", pkce::s256(VERIFIER).as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();
    app.url(&format!("/authorize?{query}"))
}

/// Logs `user` in through the widget and consents; returns the code.
async fn code_for(app: &TestApp, client: &TestClient, user: &TgUser) -> String {
    let browser = Browser::new();
    let back = authorize_through(app, &browser, &authorize_url(app, client), user).await;
    query_param(&back, "code").unwrap_or_else(|| panic!("no code in {back}"))
}

/// Widget data whose signature does not check out, at a real login page's callback.
async fn forged_widget_login(app: &TestApp, client: &TestClient, user: &TgUser) {
    let browser = Browser::new();
    let resp = browser.get(&authorize_url(app, client)).await;
    let login = absolute(app, &location(resp.headers()));
    let req = req_of(&login);
    let mut fields = widget_fields(user, app.now(), BOT_TOKEN);
    for (name, value) in fields.iter_mut() {
        if name == "hash" {
            *value = "0".repeat(64);
        }
    }
    let resp = browser
        .get(&format!(
            "{}?{}",
            app.url(&format!("/login/telegram/{req}")),
            encode(&fields)
        ))
        .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_login_and_its_tokens_are_counted_on_the_metrics_listener() {
    for database in databases() {
        let on_postgres = database.is_some();
        let metrics = free_address();
        let app = TestApp::start_with(move |c| {
            c.metrics.listen = Some(metrics);
            if let Some(url) = database {
                c.database_url = url;
            }
        })
        .await;

        // Before anything happened: the series a dashboard sums over are there, at zero.
        let before = scrape(metrics).await;
        let widget_ok = [("method", "telegram_widget"), ("result", "ok")];
        assert_eq!(
            value(&before, "telegram_oidc_logins_total", &widget_ok),
            0.0
        );
        assert_eq!(
            value(&before, "telegram_oidc_refresh_reuse_detected_total", &[]),
            0.0
        );

        let client = app.confidential_client().await;
        let user = TgUser::new(7_700_001);
        forged_widget_login(&app, &client, &user).await;
        let code = code_for(&app, &client, &user).await;
        let exchange = [
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", client.redirect_uri.as_str()),
            ("code_verifier", VERIFIER),
        ];
        let resp = token(&app, &client, &exchange).await;
        assert_eq!(resp.status(), StatusCode::OK);
        let tokens: serde_json::Value = resp.json().await.unwrap();
        let refresh_token = tokens["refresh_token"].as_str().unwrap().to_owned();
        // A refresh, then the used refresh token again: refused, and its family revoked.
        let refresh = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token.as_str()),
        ];
        assert_eq!(
            token(&app, &client, &refresh).await.status(),
            StatusCode::OK
        );
        assert_eq!(
            token(&app, &client, &refresh).await.status(),
            StatusCode::BAD_REQUEST
        );
        // The same code again: refused (invalid_grant), a 400 under /token.
        let resp = token(&app, &client, &exchange).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        // The documents served from memory count too.
        for path in ["/.well-known/openid-configuration", "/jwks.json"] {
            let resp = http().get(app.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), StatusCode::OK);
        }
        // A path no route has.
        let secret_path = "/no/such/path-7f3a9c";
        let resp = http().get(app.url(secret_path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);

        let (after_text, after) = scrape_text(metrics).await;
        assert_eq!(value(&after, "telegram_oidc_logins_total", &widget_ok), 1.0);
        assert_eq!(
            value(
                &after,
                "telegram_oidc_logins_total",
                &[("method", "telegram_widget"), ("result", "refused")]
            ),
            0.0
        );
        assert_eq!(
            value(
                &after,
                "telegram_oidc_logins_total",
                &[("method", "telegram_widget"), ("result", "invalid")]
            ),
            1.0
        );
        for grant in ["authorization_code", "refresh_token"] {
            assert_eq!(
                value(
                    &after,
                    "telegram_oidc_tokens_issued_total",
                    &[("grant", grant), ("format", "jwt")]
                ),
                1.0,
                "{grant}"
            );
            assert_eq!(
                value(
                    &after,
                    "telegram_oidc_token_refusals_total",
                    &[("grant", grant), ("error", "invalid_grant")]
                ),
                1.0,
                "{grant}"
            );
        }
        assert_eq!(
            value(&after, "telegram_oidc_refresh_reuse_detected_total", &[]),
            1.0
        );
        assert_eq!(
            value(
                &after,
                "telegram_oidc_policy_refusals_total",
                &[("reason", "refused")]
            ),
            0.0
        );

        // Requests by route pattern, method and status; never by the raw path.
        let route = |route: &str, status: &str| {
            value(
                &after,
                "telegram_oidc_http_requests_total",
                &[("route", route), ("method", "POST"), ("status", status)],
            )
        };
        assert_eq!(route("/token", "200"), 2.0);
        assert_eq!(route("/token", "400"), 2.0);
        assert_eq!(
            value(
                &after,
                "telegram_oidc_http_requests_total",
                &[("route", "unmatched"), ("method", "GET"), ("status", "404")]
            ),
            1.0
        );
        for document in ["/.well-known/openid-configuration", "/jwks.json"] {
            assert_eq!(
                value(
                    &after,
                    "telegram_oidc_http_requests_total",
                    &[("route", document), ("method", "GET"), ("status", "200")]
                ),
                1.0,
                "{document}"
            );
        }
        // prometheus-parse cuts a label value at `}`, so the pattern with `{req}` is checked
        // in the text itself.
        let login_callbacks: Vec<&str> = after_text
            .lines()
            .filter(|l| {
                l.starts_with("telegram_oidc_http_requests_total{")
                    && l.contains("route=\"/login/telegram/{req}\",method=\"GET\"")
            })
            .collect();
        assert_eq!(login_callbacks.len(), 2, "{after_text}");
        assert!(
            login_callbacks
                .iter()
                .any(|l| l.contains("status=\"401\"") && l.ends_with(" 1")),
            "{login_callbacks:?}"
        );
        assert!(!after_text.contains("no/such"), "a raw path became a label");
        assert!(!after_text.contains(&code), "a code became a label");
        assert!(
            !after_text.contains(&refresh_token),
            "a token became a label"
        );
        let latency = find(
            &after,
            "telegram_oidc_http_request_duration_seconds",
            &[("route", "/token"), ("method", "POST")],
        );
        assert_eq!(latency.len(), 1, "{latency:?}");
        match &latency[0].value {
            Value::Histogram(buckets) => {
                let inf = buckets.iter().find(|b| b.less_than.is_infinite()).unwrap();
                assert_eq!(inf.count, 4.0);
            }
            other => panic!("not a histogram: {other:?}"),
        }
        assert_eq!(
            value(
                &after,
                "telegram_oidc_http_request_duration_seconds_count",
                &[("route", "/token"), ("method", "POST")]
            ),
            4.0
        );

        // Keys: one active key per algorithm, each with its age.
        for alg in ["RS256", "ES256", "EdDSA"] {
            assert_eq!(
                value(
                    &after,
                    "telegram_oidc_signing_keys",
                    &[("alg", alg), ("state", "active")]
                ),
                1.0,
                "{alg}"
            );
            let ages: Vec<_> = after
                .samples
                .iter()
                .filter(|s| {
                    s.metric == "telegram_oidc_signing_key_age_seconds"
                        && s.labels.get("alg") == Some(alg)
                        && s.labels.get("kid").is_some_and(|k| !k.is_empty())
                })
                .collect();
            assert_eq!(ages.len(), 1, "{alg}");
            assert!(matches!(ages[0].value, Value::Gauge(v) if v >= 0.0));
        }

        // The database: connections by state (PostgreSQL's pool has at least one open), and
        // SQLite's write queue, empty between requests.
        let idle = value(
            &after,
            "telegram_oidc_db_pool_connections",
            &[("state", "idle")],
        );
        let used = value(
            &after,
            "telegram_oidc_db_pool_connections",
            &[("state", "used")],
        );
        if on_postgres {
            assert!(idle + used >= 1.0, "idle {idle}, used {used}");
        } else {
            assert_eq!(idle + used, 4.0, "SQLite has four read connections");
        }
        // Writes made in the background after a response (the audit log's batches, a
        // session's last use) may still be queued at the first scrape: the gauge must drop back
        // to zero, within a bound, once they are written.
        let mut queued = value(&after, "telegram_oidc_db_write_queue", &[]);
        for _ in 0..50 {
            if queued == 0.0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            queued = value(&scrape(metrics).await, "telegram_oidc_db_write_queue", &[]);
        }
        assert_eq!(queued, 0.0, "the write queue never emptied");
        assert_eq!(
            value(&after, "telegram_oidc_build_info", &[("version", "0.1.0")]),
            1.0
        );
        // The main listener does not serve the metrics.
        let resp = http().get(app.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        assert!(!resp.text().await.unwrap().contains("telegram_oidc_"));
        // The metrics listener serves nothing else.
        let resp = http()
            .get(format!("http://{metrics}/token"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        let resp = http()
            .get(format!("http://{metrics}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::NOT_FOUND);
        // OpenMetrics text for a scraper that asks for it.
        let resp = http()
            .get(format!("http://{metrics}/metrics"))
            .header(
                "accept",
                "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
            )
            .send()
            .await
            .unwrap();
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text")
        );
        let text = resp.text().await.unwrap();
        assert!(text.ends_with("# EOF\n"));
        assert!(
            text.contains(
                "telegram_oidc_logins_total{method=\"telegram_widget\",result=\"ok\"} 1\n"
            )
        );

        // Stopped with the server.
        app.stop().await;
        assert!(
            tokio::net::TcpStream::connect(metrics).await.is_err(),
            "the metrics listener outlived the server"
        );
    }
}

#[tokio::test]
async fn without_the_setting_no_metrics_are_served() {
    let app = TestApp::start().await;
    assert!(app.config.metrics.listen.is_none());
    let resp = http().get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    assert!(!resp.text().await.unwrap().contains("telegram_oidc_"));
    app.stop().await;
}

#[tokio::test]
async fn a_metrics_port_in_use_stops_the_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = telegram_oidc::config::Config {
        issuer: format!("http://{addr}"),
        listen: addr,
        database_url: format!("sqlite://{}/test.db", dir.path().display()),
        keys_dir: dir.path().join("keys"),
        ..Default::default()
    };
    config.telegram.bot_token = telegram_oidc::config::Secret::new(BOT_TOKEN);
    config.telegram.bot_username = BOT_USERNAME.into();
    config.telegram.updates = telegram_oidc::config::UpdateMode::None;
    config.metrics.listen = Some(address);
    let started = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        telegram_oidc::launch(config, listener, std::future::pending()),
    )
    .await
    .expect("the start must fail, not serve");
    let error = format!("{:#}", started.unwrap_err());
    assert!(error.contains("metrics"), "{error}");
    drop(taken);
}

/// The metric names a PromQL expression uses.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("telegram_oidc_") {
        let name: String = rest[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        rest = &rest[i + name.len()..];
        names.push(name);
    }
    names
}

/// deploy/grafana/telegram-oidc.json is a dashboard Grafana can import: valid JSON, a
/// Prometheus datasource variable every panel uses, and queries that name only series this
/// server exposes (histograms by their `_bucket`, `_sum` and `_count`); every series is on it.
#[test]
fn the_grafana_dashboard_uses_the_series_the_server_exposes() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/grafana/telegram-oidc.json");
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert!(dashboard["title"].is_string());
    assert!(dashboard["uid"].is_string());
    let variables = dashboard["templating"]["list"].as_array().unwrap();
    assert!(
        variables.iter().any(|v| v["type"] == "datasource"
            && v["name"] == "datasource"
            && v["query"] == "prometheus"),
        "no Prometheus datasource variable"
    );
    let exposed = telegram_oidc::metrics::SERIES;
    let known = |name: &str| {
        exposed.contains(&name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|base| base.ends_with("_seconds") && exposed.contains(&base))
            })
    };
    let mut used = std::collections::BTreeSet::new();
    let mut ids = std::collections::BTreeSet::new();
    for variable in variables {
        for name in metric_names(&variable["definition"].to_string()) {
            assert!(
                known(&name),
                "variable {}: unknown {name}",
                variable["name"]
            );
        }
    }
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(!panels.is_empty());
    for panel in panels {
        assert!(
            ids.insert(panel["id"].as_u64().unwrap()),
            "duplicate panel id"
        );
        let grid = &panel["gridPos"];
        assert!(grid["x"].as_u64().unwrap() + grid["w"].as_u64().unwrap() <= 24);
        if panel["type"] == "row" {
            continue;
        }
        let title = panel["title"].as_str().unwrap();
        assert_eq!(panel["datasource"]["uid"], "${datasource}", "{title}");
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{title} has no query");
        for target in targets {
            let expr = target["expr"].as_str().unwrap();
            let names = metric_names(expr);
            assert!(!names.is_empty(), "{title}: {expr}");
            for name in names {
                assert!(
                    known(&name),
                    "{title}: {name} is not a series the server exposes"
                );
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s).filter(|b| exposed.contains(b)))
                    .unwrap_or(&name)
                    .to_owned();
                used.insert(base);
            }
        }
    }
    for series in exposed {
        assert!(used.contains(series), "{series} is on no panel");
    }
}
