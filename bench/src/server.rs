//! Running `telegram-oidc serve` as its own process: settings, database, apps registered with
//! the CLI, readiness, memory, a graceful stop, and the cold-start measurement.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::load::Http;

/// The bot token the server checks Login Widget data with; the benchmark signs with it the way
/// Telegram does.
pub const BOT_TOKEN: &str = "5550001111:BENCH-bot-token_for-the-benchmark";
/// The benchmark's PostgreSQL database, dropped and created again for every server.
pub const PG_DATABASE: &str = "telegram_oidc_bench";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, clap::ValueEnum)]
pub enum Store {
    Sqlite,
    Postgres,
}

impl Store {
    pub fn name(self, workload: crate::workloads::Workload) -> &'static str {
        if !workload.uses_store() {
            return "-";
        }
        match self {
            Store::Sqlite => "sqlite",
            Store::Postgres => "postgres",
        }
    }
}

pub struct ServerSpec {
    pub bin: PathBuf,
    pub work_dir: PathBuf,
    /// Shared by every server of a run, so key generation happens once.
    pub keys_dir: PathBuf,
    /// PostgreSQL server URL without a database name.
    pub pg: String,
}

pub fn postgres_reachable(pg: &str) -> bool {
    Command::new("psql")
        .arg(format!("{pg}/postgres"))
        .args(["-qtAc", "SELECT 1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn psql(pg: &str, sql: &str) -> anyhow::Result<()> {
    psql_in(pg, "postgres", sql)
}

/// Runs `sql` in the database `database` of the PostgreSQL at `pg`.
pub fn psql_in(pg: &str, database: &str, sql: &str) -> anyhow::Result<()> {
    psql_output(pg, database, sql).map(drop)
}

/// What `sql` printed (unaligned, tuples only), run in `database` of the PostgreSQL at `pg`.
pub fn psql_output(pg: &str, database: &str, sql: &str) -> anyhow::Result<String> {
    let out = Command::new("psql")
        .arg(format!("{pg}/{database}"))
        .args(["-qtAc", sql])
        .output()
        .context("cannot run psql")?;
    if !out.status.success() {
        bail!("psql failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An empty database for one server: a new SQLite file, or the PostgreSQL database dropped and
/// created again.
pub fn fresh_database(spec: &ServerSpec, store: Store, dir: &Path) -> anyhow::Result<String> {
    match store {
        Store::Sqlite => Ok(format!("sqlite://{}/bench.db", dir.display())),
        Store::Postgres => {
            psql(
                &spec.pg,
                &format!("DROP DATABASE IF EXISTS {PG_DATABASE} WITH (FORCE)"),
            )?;
            psql(&spec.pg, &format!("CREATE DATABASE {PG_DATABASE}"))?;
            Ok(format!("{}/{PG_DATABASE}", spec.pg))
        }
    }
}

/// A free loopback port (bound, read, released).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Writes a settings file for a server on `port` in `dir`.
pub fn write_config(
    dir: &Path,
    port: u16,
    database_url: &str,
    keys_dir: &Path,
) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(dir)?;
    let token = dir.join("bot_token");
    std::fs::write(&token, format!("{BOT_TOKEN}\n"))?;
    let path = dir.join("telegram-oidc.toml");
    std::fs::write(
        &path,
        format!(
            r#"issuer = "http://127.0.0.1:{port}"
listen = "127.0.0.1:{port}"
database_url = "{database_url}"
keys_dir = "{keys}"

[telegram]
bot_username = "bench_login_bot"
bot_token_file = "{token}"

# Every request of the benchmark comes from loopback, and a few clients make them all: the
# limits are raised out of reach, so requests are still counted (that cost is measured) but
# never refused.
[rate_limits.login_ip]
limit = 1000000000
window_secs = 60

[rate_limits.token_ip]
limit = 1000000000
window_secs = 60

[rate_limits.token_client]
limit = 1000000000
window_secs = 60
"#,
            keys = keys_dir.display(),
            token = token.display(),
        ),
    )?;
    Ok(path)
}

/// Generates the signing keys once (`keys list` opens the key store, which creates what is
/// missing in an existing directory), so that every server of the run starts with the same
/// keys.
pub fn prepare_keys(bin: &Path, work_dir: &Path, keys_dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(keys_dir)?;
    let dir = work_dir.join("keys-setup");
    let config = write_config(
        &dir,
        1,
        &format!("sqlite://{}/unused.db", dir.display()),
        keys_dir,
    )?;
    let out = Command::new(bin)
        .arg("--config")
        .arg(&config)
        .args(["keys", "list"])
        .env_remove("TGOIDC_CONFIG")
        .output()?;
    if !out.status.success() {
        bail!("keys list failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A registered app: its id and secret.
#[derive(Clone, Debug)]
pub struct AppCredentials {
    pub client_id: String,
    pub client_secret: String,
}

/// Registers an app with `telegram-oidc client add ... --json`.
pub fn add_client(bin: &Path, config: &Path, args: &[&str]) -> anyhow::Result<AppCredentials> {
    let out = Command::new(bin)
        .arg("--config")
        .arg(config)
        .args(["client", "add", "--json"])
        .args(args)
        .env_remove("TGOIDC_CONFIG")
        .output()?;
    if !out.status.success() {
        bail!(
            "client add failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    Ok(AppCredentials {
        client_id: v["client_id"].as_str().context("no client_id")?.to_owned(),
        client_secret: v["client_secret"].as_str().unwrap_or_default().to_owned(),
    })
}

pub struct Server {
    child: Child,
    pub addr: SocketAddr,
}

impl Server {
    /// Spawns `telegram-oidc serve` and waits for the first 200 from /readyz (its database
    /// answers); returns the server and the time that took.
    pub async fn start(
        bin: &Path,
        config: &Path,
        port: u16,
        log: &Path,
        env: &[(&str, String)],
    ) -> anyhow::Result<(Server, Duration)> {
        let mut command = Command::new(bin);
        command
            .arg("--config")
            .arg(config)
            .arg("serve")
            .env_remove("TGOIDC_CONFIG")
            .env_remove("RUST_LOG");
        for (name, value) in env {
            command.env(name, value);
        }
        // `BENCH_SERVER_LOG=sqlx::query=debug` shows every statement in the server's log.
        if let Ok(filter) = std::env::var("BENCH_SERVER_LOG") {
            command.env("RUST_LOG", filter);
        }
        Server::start_command(command, port, log).await
    }

    /// Spawns `command`, a server on `port`, and waits for the first 200 from its /readyz.
    pub async fn start_command(
        mut command: Command,
        port: u16,
        log: &Path,
    ) -> anyhow::Result<(Server, Duration)> {
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let log = std::fs::File::create(log)?;
        let started = Instant::now();
        let child = command
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("cannot start the server")?;
        let mut server = Server { child, addr };
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                bail!("the server exited during startup ({status}); see its log");
            }
            if started.elapsed() > Duration::from_secs(30) {
                server.stop().await;
                bail!("the server did not become ready within 30 s");
            }
            if let Ok(mut http) = Http::connect(addr).await
                && let Ok(reply) = http.get("/readyz", &[]).await
                && reply.status == hyper::StatusCode::OK
            {
                return Ok((server, started.elapsed()));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// (VmRSS, VmHWM) in KiB.
    pub fn rss_kb(&self) -> (u64, u64) {
        crate::load::rss_kb(self.pid()).unwrap_or((0, 0))
    }

    /// SIGTERM (the server's graceful stop), then SIGKILL if it lingers.
    pub async fn stop(&mut self) {
        // SAFETY: kill with a pid this process spawned and has not reaped yet.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Cold start: from spawning `telegram-oidc serve` on an empty database (migrations run at
/// startup) to the first 200 from /readyz.
pub struct ColdStart {
    pub label: String,
    pub times: Vec<Duration>,
}

pub const COLD_START_TARGET: Duration = Duration::from_millis(300);

impl ColdStart {
    pub fn median(&self) -> Duration {
        let mut t = self.times.clone();
        t.sort();
        t.get(t.len() / 2).copied().unwrap_or_default()
    }
    pub fn max(&self) -> Duration {
        self.times.iter().max().copied().unwrap_or_default()
    }
    pub fn pass(&self) -> bool {
        self.median() < COLD_START_TARGET
    }
}

const COLD_START_RUNS: usize = 5;

pub fn cold_starts(
    spec: &ServerSpec,
    store: Store,
    runtime: &tokio::runtime::Runtime,
) -> anyhow::Result<Vec<ColdStart>> {
    let store_name = match store {
        Store::Sqlite => "SQLite",
        Store::Postgres => "PostgreSQL",
    };
    let mut results = Vec::new();
    for new_keys in [false, true] {
        let mut times = Vec::new();
        for i in 0..COLD_START_RUNS {
            let dir = spec
                .work_dir
                .join(format!("cold-{store_name}-{new_keys}-{i}"));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir)?;
            let keys = if new_keys {
                dir.join("keys")
            } else {
                spec.keys_dir.clone()
            };
            let db = fresh_database(spec, store, &dir)?;
            let port = free_port()?;
            let config = write_config(&dir, port, &db, &keys)?;
            let (mut server, took) = runtime.block_on(Server::start(
                &spec.bin,
                &config,
                port,
                &dir.join("server.log"),
                &[],
            ))?;
            runtime.block_on(server.stop());
            times.push(took);
            let _ = std::fs::remove_dir_all(&dir);
        }
        let label = if new_keys {
            format!(
                "cold start, {store_name}, empty database, no keys yet (generates RS256, ES256, EdDSA)"
            )
        } else {
            format!("cold start, {store_name}, empty database, existing keys")
        };
        eprintln!(
            "{label}: median {} ms",
            (ColdStart {
                label: String::new(),
                times: times.clone()
            })
            .median()
            .as_millis()
        );
        results.push(ColdStart { label, times });
    }
    Ok(results)
}
