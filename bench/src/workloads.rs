//! What each workload sends, and one run of it: a fresh database and server, apps registered
//! with the CLI, connections opened and primed, warm-up, measurement, the server's memory.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail, ensure};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::StatusCode;
use hyper::header::{AUTHORIZATION, COOKIE, SET_COOKIE};
use url::form_urlencoded;

use crate::bare::{DISCOVERY_PATH, JWKS_PATH};
use crate::crypto;
use crate::load::{self, Http, Phases, RunResult, Settings};
use crate::pgcount;
use crate::server::{self, AppCredentials, BOT_TOKEN, Server, ServerSpec, Store};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Workload {
    /// GET /.well-known/openid-configuration.
    Discovery,
    /// GET /jwks.json.
    Jwks,
    /// POST /token, client_credentials, opaque access token (stored as a hash).
    CcOpaque,
    /// POST /token, client_credentials, RS256 JWT access token (its jti stored).
    CcJwt,
    /// A complete login with an ES256 ID token.
    LoginEs256,
    /// A complete login with an RS256 ID token.
    LoginRs256,
    /// POST /token, refresh_token grant: rotation, new access token and ES256 ID token.
    Refresh,
    /// POST /introspect of an opaque access token.
    Introspect,
    /// GET /userinfo with an opaque access token.
    Userinfo,
}

impl Workload {
    pub const ALL: [Workload; 9] = [
        Workload::Discovery,
        Workload::Jwks,
        Workload::CcOpaque,
        Workload::CcJwt,
        Workload::LoginEs256,
        Workload::LoginRs256,
        Workload::Refresh,
        Workload::Introspect,
        Workload::Userinfo,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Discovery => "discovery",
            Workload::Jwks => "jwks",
            Workload::CcOpaque => "client_credentials opaque",
            Workload::CcJwt => "client_credentials RS256 JWT",
            Workload::LoginEs256 => "login ES256 (logins/s)",
            Workload::LoginRs256 => "login RS256 (logins/s)",
            Workload::Refresh => "refresh rotation",
            Workload::Introspect => "introspection",
            Workload::Userinfo => "userinfo",
        }
    }

    pub fn bare_name(self) -> Option<&'static str> {
        match self {
            Workload::Discovery => Some("bare axum, discovery bytes"),
            Workload::Jwks => Some("bare axum, JWKS bytes"),
            _ => None,
        }
    }

    /// Discovery and JWKS never touch the database: they run once, not per store.
    pub fn uses_store(self) -> bool {
        !matches!(self, Workload::Discovery | Workload::Jwks)
    }
}

/// The redirect URI of the benchmark's web apps; never fetched.
const REDIRECT_URI: &str = "https://app.bench.test/callback";

/// What every connection of a run shares.
struct Job {
    workload: Workload,
    /// A service account (client_credentials, introspection).
    service: Option<App>,
    /// A web app (logins, refresh, userinfo).
    web: Option<App>,
}

struct App {
    basic: String,
    client_id: String,
}

impl App {
    fn new(c: AppCredentials) -> App {
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        App {
            basic: format!(
                "Basic {}",
                STANDARD.encode(format!("{}:{}", enc(&c.client_id), enc(&c.client_secret)))
            ),
            client_id: c.client_id,
        }
    }
}

/// One connection's own state.
struct Worker {
    index: usize,
    logins: i64,
    /// The refresh token to rotate next, or the access token to present.
    token: Option<String>,
}

impl Worker {
    /// A Telegram user id no other login of this run uses, so every widget `hash` is new
    /// (the server refuses a replayed one).
    fn next_user(&mut self) -> i64 {
        self.logins += 1;
        (self.index as i64 + 1) * 1_000_000_000 + self.logins
    }
}

fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

fn query_param(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The path and query of an absolute URL on the server (or of a relative one).
fn path_of(location: &str) -> String {
    match location.strip_prefix("http://") {
        Some(rest) => match rest.find('/') {
            Some(i) => rest[i..].to_owned(),
            None => "/".into(),
        },
        None => location.to_owned(),
    }
}

pub fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A complete login as a browser and an app make it: authorization request with PKCE, the
/// Telegram Login Widget's signed redirect, back to the authorization (consent is not asked:
/// the app is registered with `--skip-consent`), the code redeemed at the token endpoint with
/// the verifier, and userinfo with the access token. Returns the token response.
async fn login(
    web: &App,
    w: &mut Worker,
    http: &mut Http,
    scope: &str,
) -> anyhow::Result<serde_json::Value> {
    let (verifier, challenge) = crypto::pkce_pair();
    let state = crypto::random_b64(12);
    let nonce = crypto::random_b64(12);
    let query = form(&[
        ("response_type", "code"),
        ("client_id", &web.client_id),
        ("redirect_uri", REDIRECT_URI),
        ("scope", scope),
        ("state", &state),
        ("nonce", &nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let reply = http
        .get(&format!("/authorize?{query}"), &[])
        .await?
        .expect(StatusCode::SEE_OTHER, "authorize")?;
    let req = query_param(reply.location()?, "req").context("no req in the login redirect")?;

    let id = w.next_user();
    let mut fields = vec![
        ("id", id.to_string()),
        ("first_name", "Bench".to_owned()),
        ("username", format!("bench{id}")),
        ("auth_date", now_secs().to_string()),
    ];
    let hash = crypto::widget_hash(&fields, BOT_TOKEN);
    fields.push(("hash", hash));
    let query = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields.iter().map(|(k, v)| (*k, v.as_str())))
        .finish();
    let reply = http
        .get(&format!("/login/telegram/{req}?{query}"), &[])
        .await?
        .expect(StatusCode::SEE_OTHER, "widget callback")?;
    let cookie = reply
        .header(SET_COOKIE)
        .and_then(|c| c.split(';').next())
        .context("no session cookie")?
        .to_owned();
    let next = path_of(reply.location()?);

    let reply = http
        .get(&next, &[(COOKIE, &cookie)])
        .await?
        .expect(StatusCode::FOUND, "authorize/continue")?;
    let back = reply.location()?;
    ensure!(back.starts_with(REDIRECT_URI), "redirected to {back}");
    ensure!(
        query_param(back, "state").as_deref() == Some(state.as_str()),
        "state was not returned"
    );
    let code = query_param(back, "code").with_context(|| format!("no code in {back}"))?;

    let reply = http
        .post_form(
            "/token",
            &[(AUTHORIZATION, &web.basic)],
            form(&[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT_URI),
                ("code_verifier", &verifier),
            ]),
        )
        .await?
        .expect(StatusCode::OK, "code redemption")?;
    let tokens = reply.json()?;
    let access = tokens["access_token"].as_str().context("no access_token")?;
    http.get("/userinfo", &[(AUTHORIZATION, &format!("Bearer {access}"))])
        .await?
        .expect(StatusCode::OK, "userinfo")?;
    Ok(tokens)
}

const LOGIN_SCOPE: &str = "openid profile";
const OFFLINE_SCOPE: &str = "openid profile offline_access";

async fn client_credentials(service: &App, http: &mut Http) -> anyhow::Result<String> {
    let reply = http
        .post_form(
            "/token",
            &[(AUTHORIZATION, &service.basic)],
            "grant_type=client_credentials".into(),
        )
        .await?
        .expect(StatusCode::OK, "client_credentials")?;
    let v = reply.json()?;
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("no access_token")
}

/// One operation of the workload: one request, or one complete login.
async fn op(job: &Job, w: &mut Worker, http: &mut Http) -> anyhow::Result<()> {
    let service = || {
        job.service
            .as_ref()
            .ok_or_else(|| anyhow!("no service account"))
    };
    let web = || job.web.as_ref().ok_or_else(|| anyhow!("no web app"));
    match job.workload {
        Workload::Discovery | Workload::Jwks => {
            let path = if job.workload == Workload::Discovery {
                DISCOVERY_PATH
            } else {
                JWKS_PATH
            };
            let reply = http.get(path, &[]).await?.expect(StatusCode::OK, path)?;
            ensure!(!reply.body.is_empty(), "empty body");
        }
        Workload::CcOpaque | Workload::CcJwt => {
            // The body is read but not parsed: the generator should spend its core on load.
            let reply = http
                .post_form(
                    "/token",
                    &[(AUTHORIZATION, &service()?.basic)],
                    "grant_type=client_credentials".into(),
                )
                .await?
                .expect(StatusCode::OK, "client_credentials")?;
            ensure!(
                reply.body.starts_with(b"{\"access_token\":\""),
                "no access token"
            );
        }
        Workload::LoginEs256 | Workload::LoginRs256 => {
            login(web()?, w, http, LOGIN_SCOPE).await?;
        }
        Workload::Refresh => {
            let web = web()?;
            let presented = match w.token.take() {
                Some(t) => t,
                // A broken chain (after an error) starts again from a login.
                None => refresh_token_of(&login(web, w, http, OFFLINE_SCOPE).await?)?,
            };
            let reply = http
                .post_form(
                    "/token",
                    &[(AUTHORIZATION, &web.basic)],
                    form(&[
                        ("grant_type", "refresh_token"),
                        ("refresh_token", &presented),
                    ]),
                )
                .await?
                .expect(StatusCode::OK, "refresh")?;
            w.token = Some(refresh_token_of(&reply.json()?)?);
        }
        Workload::Introspect => {
            let token = w.token.as_deref().context("no access token")?;
            let reply = http
                .post_form(
                    "/introspect",
                    &[(AUTHORIZATION, &service()?.basic)],
                    form(&[("token", token)]),
                )
                .await?
                .expect(StatusCode::OK, "introspection")?;
            ensure!(
                reply.body.starts_with(b"{\"active\":true"),
                "token not active: {}",
                String::from_utf8_lossy(&reply.body)
            );
        }
        Workload::Userinfo => {
            let token = w.token.as_deref().context("no access token")?;
            http.get("/userinfo", &[(AUTHORIZATION, &format!("Bearer {token}"))])
                .await?
                .expect(StatusCode::OK, "userinfo")?;
        }
    }
    Ok(())
}

fn refresh_token_of(tokens: &serde_json::Value) -> anyhow::Result<String> {
    tokens["refresh_token"]
        .as_str()
        .map(str::to_owned)
        .context("no refresh_token in the token response")
}

/// Gives a connection what its workload presents: a refresh token, or an access token.
async fn prime(job: &Job, w: &mut Worker, http: &mut Http) -> anyhow::Result<()> {
    match job.workload {
        Workload::Refresh => {
            let web = job.web.as_ref().context("no web app")?;
            w.token = Some(refresh_token_of(
                &login(web, w, http, OFFLINE_SCOPE).await?,
            )?);
        }
        Workload::Userinfo => {
            let web = job.web.as_ref().context("no web app")?;
            let tokens = login(web, w, http, LOGIN_SCOPE).await?;
            w.token = tokens["access_token"].as_str().map(str::to_owned);
        }
        Workload::Introspect => {
            let service = job.service.as_ref().context("no service account")?;
            w.token = Some(client_credentials(service, http).await?);
        }
        _ => {}
    }
    Ok(())
}

async fn worker_loop(
    job: Arc<Job>,
    mut w: Worker,
    mut http: Http,
    phases: Phases,
    measured: Duration,
) -> RunResult {
    let mut result = RunResult::new(measured);
    loop {
        let started = Instant::now();
        if started >= phases.end {
            break;
        }
        match op(&job, &mut w, &mut http).await {
            Ok(()) => result.record(started, Instant::now(), &phases),
            Err(e) => {
                result.error(&e);
                if http.reconnect().await.is_err() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    result
}

/// Opens `conns` connections, primes them, and drives the workload through warm-up and
/// measurement. Returns the merged result and the CPU seconds per second the server
/// and this process used while measuring.
async fn drive(
    job: Arc<Job>,
    server_pid: u32,
    addr: std::net::SocketAddr,
    conns: usize,
    settings: &Settings,
    perf_file: Option<PathBuf>,
    counters: Option<&pgcount::Counters>,
) -> anyhow::Result<(RunResult, Usage, Option<pgcount::Counts>)> {
    let mut workers = Vec::with_capacity(conns);
    for index in 0..conns {
        let mut http = Http::connect(addr).await?;
        let mut w = Worker {
            index,
            logins: 0,
            token: None,
        };
        prime(&job, &mut w, &mut http)
            .await
            .with_context(|| format!("preparing connection {index}"))?;
        workers.push((w, http));
    }
    let phases = Phases::starting_now(settings);
    let mut tasks = tokio::task::JoinSet::new();
    for (w, http) in workers {
        tasks.spawn(worker_loop(job.clone(), w, http, phases, settings.duration));
    }
    tokio::time::sleep_until(phases.measure_from.into()).await;
    let counted_0 = counters.map(pgcount::Counters::read);
    let server_cpu_0 = load::process_cpu_secs(server_pid).unwrap_or(0.0);
    let switches_0 = load::context_switches(server_pid);
    let machine_0 = load::machine_busy_secs();
    let own_cpu_0 = load::own_cpu_secs();
    let measure_started = Instant::now();
    let mut perf = match perf_file {
        Some(file) => Some(
            std::process::Command::new("perf")
                .args([
                    "record",
                    "-e",
                    "cpu-clock",
                    "-F",
                    "499",
                    "--call-graph",
                    "dwarf,32768",
                    "-p",
                ])
                .arg(server_pid.to_string())
                .arg("-o")
                .arg(&file)
                .args(["--", "sleep"])
                .arg(format!("{}", settings.duration.as_secs_f64()))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .context("cannot run perf")?,
        ),
        None => None,
    };
    tokio::time::sleep_until(phases.end.into()).await;
    let counted = counters
        .zip(counted_0)
        .map(|(c, before)| c.read().since(&before));
    let window = measure_started.elapsed().as_secs_f64();
    let server_cpu = (load::process_cpu_secs(server_pid).unwrap_or(0.0) - server_cpu_0) / window;
    let own_cpu = (load::own_cpu_secs() - own_cpu_0) / window;
    let switches = load::context_switches(server_pid).saturating_sub(switches_0);
    let machine = (load::machine_busy_secs() - machine_0) / window;
    let mut merged = RunResult::new(settings.duration);
    while let Some(done) = tasks.join_next().await {
        merged.merge(done?);
    }
    if let Some(perf) = perf.as_mut() {
        let _ = perf.wait();
    }
    Ok((
        merged,
        Usage {
            server_cpu,
            client_cpu: own_cpu,
            server_switches: switches,
            other_cpu: (machine - server_cpu - own_cpu).max(0.0),
        },
        counted,
    ))
}

/// What the measurement window cost: CPU cores used by the server and by the load generator,
/// the server's context switches, and the cores everything else on the machine used (other
/// work competing with the run, PostgreSQL's own processes included).
#[derive(Clone, Copy, Default)]
pub struct Usage {
    pub server_cpu: f64,
    pub client_cpu: f64,
    pub server_switches: u64,
    pub other_cpu: f64,
}

pub struct Outcome {
    pub result: RunResult,
    /// VmHWM of the server after the run: its peak since it started for this workload.
    pub peak_rss_kb: u64,
    pub usage: Usage,
    pub bare: Option<RunResult>,
    pub bare_rss_kb: u64,
    pub bare_usage: Usage,
    /// PostgreSQL: statements and round trips per operation, from a counting run.
    pub per_op: Option<pgcount::PerOp>,
    /// A sweeping run: expired rows still in the token tables after the measurement.
    pub expired_left: Option<u64>,
}

/// How a run's database and server differ from the plain run.
#[derive(Default)]
pub struct Variant<'a> {
    /// Appended to the run's directory name.
    pub tag: String,
    /// The database starts as a copy of this preloaded one.
    pub template: Option<&'a crate::preload::Template>,
    /// Environment of the server (its settings as `TGOIDC_...` variables).
    pub env: Vec<(&'static str, String)>,
    /// Count the expired rows left after the measurement.
    pub count_expired: bool,
}

pub async fn run(
    spec: &ServerSpec,
    workload: Workload,
    store: Store,
    conns: usize,
    settings: &Settings,
    variant: &Variant<'_>,
) -> anyhow::Result<Outcome> {
    let tag = format!(
        "{workload:?}-{}-{conns}{}",
        store.name(workload),
        variant.tag
    )
    .to_lowercase();
    let dir = spec.work_dir.join(&tag);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = match variant.template {
        Some(template) if workload.uses_store() => crate::preload::copy(spec, template, &dir)?,
        _ => server::fresh_database(spec, store, &dir)?,
    };
    let port = server::free_port()?;
    let config = server::write_config(&dir, port, &db, &spec.keys_dir)?;

    let service_format = match workload {
        Workload::CcOpaque | Workload::Introspect => Some("opaque"),
        Workload::CcJwt => Some("jwt"),
        _ => None,
    };
    let service = service_format
        .map(|format| {
            server::add_client(
                &spec.bin,
                &config,
                &[
                    "--name",
                    "bench service",
                    "--service-account",
                    "--scopes",
                    "api:read",
                    "--access-token-format",
                    format,
                ],
            )
        })
        .transpose()?;
    let id_token_alg = match workload {
        Workload::LoginRs256 => Some("rs256"),
        Workload::LoginEs256 | Workload::Refresh | Workload::Userinfo => Some("es256"),
        _ => None,
    };
    let web = match id_token_alg {
        Some(alg) => Some(server::add_client(
            &spec.bin,
            &config,
            &[
                "--name",
                "bench web app",
                "--redirect-uri",
                REDIRECT_URI,
                "--id-token-alg",
                alg,
                "--access-token-format",
                "opaque",
                "--skip-consent",
            ],
        )?),
        None => None,
    };
    let job = Arc::new(Job {
        workload,
        service: service.map(App::new),
        web: web.map(App::new),
    });

    let (mut server, _) = Server::start(
        &spec.bin,
        &config,
        port,
        &dir.join("server.log"),
        &variant.env,
    )
    .await?;
    let pid = server.pid();
    let addr = server.addr;

    // The web app's ID tokens must carry the algorithm the workload is named after.
    if let (Some(web), Some(alg)) = (&job.web, id_token_alg) {
        let mut http = Http::connect(addr).await?;
        let mut w = Worker {
            index: conns + 1,
            logins: 0,
            token: None,
        };
        let tokens = login(web, &mut w, &mut http, LOGIN_SCOPE).await?;
        let got = tokens["id_token"].as_str().and_then(crypto::jws_alg);
        if got.as_deref().map(str::to_ascii_lowercase).as_deref() != Some(alg) {
            server.stop().await;
            bail!("the ID token's alg is {got:?}, expected {alg}");
        }
    }
    let served = if workload.uses_store() {
        None
    } else {
        let mut http = Http::connect(addr).await?;
        let discovery = http.get(DISCOVERY_PATH, &[]).await?.body;
        let jwks = http.get(JWKS_PATH, &[]).await?.body;
        Some((discovery, jwks))
    };

    let perf = settings
        .perf_dir
        .as_ref()
        .map(|d| d.join(format!("{tag}.perf.data")));
    let driven = drive(job.clone(), pid, addr, conns, settings, perf, None).await;
    let peak_rss_kb = server.rss_kb().1;
    server.stop().await;
    let (result, usage, _) = driven?;
    // A sweeping run: whether the sweep was still at work when the measurement ended.
    let expired_left = if variant.count_expired && workload.uses_store() {
        Some(crate::preload::expired_left(spec, store, &dir)?)
    } else {
        None
    };
    let per_op = match (store, settings.count_secs) {
        (Store::Postgres, Some(seconds)) if workload.uses_store() => {
            Some(count_statements(spec, &job, &dir, conns, seconds, &variant.env).await?)
        }
        _ => None,
    };
    // A preloaded SQLite copy is gigabytes: gone once measured (the logs stay).
    if variant.template.is_some() && store == Store::Sqlite {
        for suffix in ["", "-wal", "-shm"] {
            let _ = std::fs::remove_file(dir.join(format!("bench.db{suffix}")));
        }
    }

    let (bare, bare_rss_kb, bare_usage) = match served {
        Some((discovery, jwks)) => {
            let d = dir.join("discovery.json");
            let j = dir.join("jwks.json");
            std::fs::write(&d, &discovery)?;
            std::fs::write(&j, &jwks)?;
            let port = server::free_port()?;
            let mut command = std::process::Command::new(std::env::current_exe()?);
            command
                .arg("bare-server")
                .arg("--listen")
                .arg(format!("127.0.0.1:{port}"))
                .arg("--discovery")
                .arg(&d)
                .arg("--jwks")
                .arg(&j);
            let (mut bare, _) = Server::start_command(command, port, &dir.join("bare.log")).await?;
            let bare_pid = bare.pid();
            let driven = drive(
                job.clone(),
                bare_pid,
                bare.addr,
                conns,
                settings,
                None,
                None,
            )
            .await;
            let rss = bare.rss_kb().1;
            bare.stop().await;
            let (result, usage, _) = driven?;
            (Some(result), rss, usage)
        }
        None => (None, 0, Usage::default()),
    };
    Ok(Outcome {
        result,
        peak_rss_kb,
        usage,
        bare,
        bare_rss_kb,
        bare_usage,
        per_op,
        expired_left,
    })
}

/// A second, shorter run of the workload on the same database, with the server connected to
/// PostgreSQL through the counting proxy (`pgcount.rs`): statements and round trips per
/// operation. Not the measured run: the proxy costs time of its own.
async fn count_statements(
    spec: &ServerSpec,
    job: &Arc<Job>,
    dir: &std::path::Path,
    conns: usize,
    seconds: f64,
    env: &[(&str, String)],
) -> anyhow::Result<pgcount::PerOp> {
    let pg = url::Url::parse(&spec.pg).context("the --pg URL")?;
    let host = pg.host_str().context("no host in the --pg URL")?;
    let upstream = std::net::ToSocketAddrs::to_socket_addrs(&(host, pg.port().unwrap_or(5432)))?
        .next()
        .context("the --pg host has no address")?;
    let (proxy, counters) = pgcount::start(upstream).await?;
    let mut proxied = pg.clone();
    proxied
        .set_host(Some("127.0.0.1"))
        .map_err(|e| anyhow!("{e}"))?;
    proxied
        .set_port(Some(proxy.port()))
        .map_err(|()| anyhow!("cannot set the port"))?;
    let db = format!(
        "{}/{}",
        proxied.as_str().trim_end_matches('/'),
        server::PG_DATABASE
    );
    let count_dir = dir.join("count");
    let port = server::free_port()?;
    let config = server::write_config(&count_dir, port, &db, &spec.keys_dir)?;
    let (mut server, _) =
        Server::start(&spec.bin, &config, port, &count_dir.join("server.log"), env).await?;
    let settings = Settings {
        duration: Duration::from_secs_f64(seconds),
        warmup: Duration::from_secs(1),
        perf_dir: None,
        count_secs: None,
    };
    let driven = drive(
        job.clone(),
        server.pid(),
        server.addr,
        conns,
        &settings,
        None,
        Some(&counters),
    )
    .await;
    server.stop().await;
    let (result, _, counted) = driven?;
    ensure!(result.ops > 0, "the counting run completed no operation");
    Ok(pgcount::PerOp::new(
        &counted.unwrap_or_default(),
        result.ops,
    ))
}
