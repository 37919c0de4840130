//! telegram-oidc: an OpenID Connect provider whose users prove who they are through Telegram.
//!
//! [`launch`] is the seam `main` and the tests share: it takes the settings, a bound listener
//! and a shutdown signal, and serves until the signal fires.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod access;
pub mod admin;
pub mod clock;
pub mod config;
pub mod error;
pub mod flow;
pub mod geoip;
pub mod jose;
pub mod keys;
pub mod metrics;
pub mod oidc;
pub mod outbound;
pub mod params;
pub mod secrets;
pub mod state;
pub mod store;
pub mod telegram;
pub mod web;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio::net::TcpListener;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::flow::policy::{LoginPolicy, TelegramPolicy};
use crate::keys::KeyStore;
use crate::state::App;
use crate::store::{JobLock, PostgresStore, SqliteStore, Store, StoreError};

/// How often keys/ is re-read, so a rotation by another process is served without a restart.
/// Short, because until a node has read a key another node rotated in, it cannot verify or
/// publish what that node signs; a reload that finds nothing new is one directory listing.
const KEY_RELOAD_INTERVAL: Duration = Duration::from_secs(1);
/// The job lock that makes one node of many sweep expired rows.
pub const CLEANUP_JOB: &str = "cleanup";

/// Opens the store a database URL names and brings its schema up to date.
pub async fn open_store(database_url: &str) -> Result<Arc<dyn Store>, StoreError> {
    open_store_caching(database_url, Duration::ZERO).await
}

/// As [`open_store`], for a server: on PostgreSQL it holds clients in memory for up to
/// `client_cache` (dropped on every node as soon as one changes them). SQLite reads every
/// client from its file: a lookup there costs microseconds, and the CLI changes clients from
/// another process, which an in-memory copy would not hear of.
pub async fn open_store_caching(
    database_url: &str,
    client_cache: Duration,
) -> Result<Arc<dyn Store>, StoreError> {
    if database_url.starts_with("sqlite:") {
        let store = SqliteStore::connect(database_url).await?;
        store.migrate().await?;
        Ok(Arc::new(store))
    } else if database_url.starts_with("postgres:") || database_url.starts_with("postgresql:") {
        let store = PostgresStore::connect(database_url).await?;
        store.migrate().await?;
        Ok(Arc::new(store.with_client_cache(client_cache)))
    } else {
        Err(StoreError::Internal(format!(
            "unsupported database URL scheme in `{}`: use sqlite:// or postgres://",
            database_url.split(':').next().unwrap_or("")
        )))
    }
}

/// Serves the provider on `listener` until `shutdown` completes, with the system clock.
pub async fn launch(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    launch_with(config, listener, shutdown, Seams::default()).await
}

/// What a test (or an embedding program) may put in place of the defaults.
pub struct Seams {
    /// The clock the protocol reads time from (tests move it forward).
    pub clock: Arc<dyn Clock>,
    /// Who may log in to which app; `None`: each app's own policy, with chat memberships
    /// from the Bot API (`flow::policy::TelegramPolicy`).
    pub policy: Option<Arc<dyn LoginPolicy>>,
}

impl Default for Seams {
    fn default() -> Self {
        Seams {
            clock: Arc::new(SystemClock),
            policy: None,
        }
    }
}

/// As [`launch`], with the clock the protocol reads time from (tests move it forward).
pub async fn launch_with_clock(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    clock: Arc<dyn Clock>,
) -> anyhow::Result<()> {
    let seams = Seams {
        clock,
        ..Seams::default()
    };
    launch_with(config, listener, shutdown, seams).await
}

/// As [`launch`], with [`Seams`] in place of the defaults.
pub async fn launch_with(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
    seams: Seams,
) -> anyhow::Result<()> {
    let Seams { clock, policy } = seams;
    config.validate()?;
    let store = open_store_caching(
        &config.database_url,
        Duration::from_secs(config.client_cache_secs),
    )
    .await?;
    let keys = Arc::new(KeyStore::open(&config.keys_dir, clock.now())?);
    let policy: Arc<dyn LoginPolicy> = match policy {
        Some(policy) => policy,
        None => Arc::new(TelegramPolicy::new(&config, clock.clone())?),
    };
    let app = Arc::new(App::new(config, store, keys, clock, policy)?);
    let router = web::router::router(app.clone());
    // Bound before anything else starts, so a port in use stops the start with its reason.
    let metrics_listener = match app.config.metrics.listen {
        Some(address) => Some(
            TcpListener::bind(address)
                .await
                .with_context(|| format!("cannot listen for metrics on {address}"))?,
        ),
        None => None,
    };
    if app.config.rate_limits.enabled {
        // Every policy shows at zero from the start, so a dashboard has a series to draw.
        let names: Vec<&'static str> = flow::limits::Policy::ALL.iter().map(|p| p.name()).collect();
        metrics::rate_limit_policies(&names);
    }

    let background = tokio::spawn(background_jobs(app.clone()));
    let chat_check = tokio::spawn(warn_about_chats(app.clone()));
    let bot_updates = flow::bot_updates::start(&app).await;
    tracing::info!(
        address = %listener.local_addr()?,
        issuer = %app.config.issuer,
        "telegram-oidc is serving"
    );
    // The metrics listener stops when the main one is told to.
    let (stopping, stop) = tokio::sync::watch::channel(false);
    let metrics_server = match metrics_listener {
        Some(metrics_listener) => {
            tracing::info!(
                address = %metrics_listener.local_addr()?,
                "serving Prometheus metrics at /metrics (no authentication: keep it private)"
            );
            let mut stop = stop.clone();
            Some(tokio::spawn(
                axum::serve(
                    metrics_listener,
                    web::metrics::router(app.clone()).into_make_service(),
                )
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|stopping| *stopping).await;
                })
                .into_future(),
            ))
        }
        None => None,
    };
    drop(stop);
    // Given the bare router, axum rebuilds every route's service stack for each connection
    // (about 30 KB each); made into a service once, a connection costs an `Arc` clone.
    let served = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        let _ = stopping.send(true);
    })
    .await;
    if let Some(mut metrics_server) = metrics_server {
        // A scrape takes milliseconds; a scraper that keeps its connection open is not waited
        // for long.
        if tokio::time::timeout(Duration::from_secs(5), &mut metrics_server)
            .await
            .is_err()
        {
            metrics_server.abort();
        }
    }
    served?;
    background.abort();
    chat_check.abort();
    if let Some(poller) = bot_updates {
        poller.abort();
    }
    Ok(())
}

/// Warns at startup when the bot cannot see a chat that an app's policy or a group names:
/// Telegram answers `getChatMember` only in chats the bot is in.
async fn warn_about_chats(app: Arc<App>) {
    let clients = match app.store.list_clients().await {
        Ok(clients) => clients,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the apps to check their policies' chats");
            return;
        }
    };
    let chats = flow::policy::named_chats(&app.config, &clients);
    if chats.is_empty() {
        return;
    }
    let bot = match telegram::bot::BotApi::new(
        &app.config.telegram.bot_api_url,
        app.config.telegram.bot_token.clone(),
    ) {
        Ok(bot) => bot,
        Err(e) => {
            tracing::warn!(error = %e, "cannot make a Bot API client");
            return;
        }
    };
    let timeout = Duration::from_secs(app.config.policy.timeout_secs);
    for problem in flow::policy::check_bot_in_chats(&bot, &chats, timeout).await {
        tracing::warn!(
            problem = %problem.message,
            "an access policy or group names a chat the bot cannot see: its members will be refused"
        );
    }
}

async fn background_jobs(app: Arc<App>) {
    // The first tick is at once: a node sweeps when it starts, then every interval.
    let mut cleanup = app.config.sweep_interval().map(|every| {
        let mut interval = tokio::time::interval(every);
        // A sweep longer than the interval is followed by one a whole interval later, not
        // at once by the ticks it missed.
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval
    });
    let mut reload = tokio::time::interval(KEY_RELOAD_INTERVAL);
    let mut cleanup_lock: Option<JobLock> = None;
    loop {
        tokio::select! {
            _ = next_tick(&mut cleanup) => cleanup_expired(&app, &mut cleanup_lock).await,
            _ = reload.tick() => {
                match app.keys.reload_at(app.now()) {
                    Ok(true) => {
                        app.invalidate_jwks();
                        tracing::info!("signing keys reloaded");
                    }
                    Ok(false) => {}
                    Err(e) => tracing::warn!(error = %e, "reading the keys directory failed"),
                }
            }
        }
    }
}

/// The next tick of `interval`; never, without one.
async fn next_tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Sweeps expired rows if this node holds the cleanup lock. The lock is kept from one run to
/// the next, so of N nodes on one PostgreSQL exactly one sweeps each interval; when its
/// database session ends (the node stops, the connection breaks), another node takes over.
async fn cleanup_expired(app: &App, lock: &mut Option<JobLock>) {
    if let Some(held) = lock.as_mut()
        && !held.is_held().await
    {
        tracing::warn!("lost the cleanup lock");
        *lock = None;
    }
    if lock.is_none() {
        match app.store.try_lock_job(CLEANUP_JOB).await {
            Ok(Some(taken)) => {
                tracing::info!("this node now sweeps expired rows");
                *lock = Some(taken);
            }
            Ok(None) => {
                tracing::debug!("another node sweeps expired rows");
                return;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot take the cleanup lock");
                return;
            }
        }
    }
    match app.store.delete_expired(app.now()).await {
        Ok(n) if n > 0 => tracing::info!(rows = n, "expired rows removed"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cleanup failed"),
    }
    let retention_ms = app.config.audit.retention_days.saturating_mul(86_400_000);
    match app
        .store
        .delete_audit_before(app.now_millis().saturating_sub(retention_ms))
        .await
    {
        Ok(n) if n > 0 => tracing::info!(rows = n, "audit entries past their retention removed"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "audit retention sweep failed"),
    }
}

/// A future that completes on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    // The handlers are installed here, when this is called, not when the future is first
    // polled: a SIGTERM that comes as soon as the server says it is serving must stop it
    // gracefully, not kill it. Needs the tokio runtime.
    #[cfg(unix)]
    let (terminate, interrupt) = {
        use tokio::signal::unix::{SignalKind, signal};
        (
            signal(SignalKind::terminate()).ok(),
            signal(SignalKind::interrupt()).ok(),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = wait(terminate) => {},
                _ = wait(interrupt) => {},
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
        tracing::info!("shutting down");
    }
}
