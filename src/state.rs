//! The application state: the provider, the login adapters, and the per-process caches that
//! handlers share. No routes here (those are in `web::router`).

use std::ops::Deref;
use std::sync::Arc;

use crate::clock::Clock;
use crate::config::Config;
use crate::flow::policy::LoginPolicy;
use crate::keys::KeyStore;
use crate::oidc::Provider;
use crate::store::Store;
use crate::telegram::bot::BotApi;
use crate::telegram::upstream_oidc::UpstreamOidc;

pub struct App {
    pub provider: Provider,
    pub clock: Arc<dyn Clock>,
    base_path: String,
    /// Telegram's own OpenID Connect provider, when configured as a login method.
    pub telegram_oidc: Option<Arc<UpstreamOidc>>,
    /// The Bot API client, when the bot hears updates (`telegram.updates` does not resolve to `none`).
    pub bot: Option<Arc<BotApi>>,
    /// Who may log in to which app: asked on every login, whatever the way.
    pub policy: Arc<dyn LoginPolicy>,
    /// The audit log's writer.
    pub audit: crate::flow::audit::AuditLog,
    /// Bot updates acknowledged without being used (unreadable), counted per process.
    pub unusable_updates: std::sync::atomic::AtomicU64,
    /// Bot messages not sent because the user never started the bot or blocked it (Bot API
    /// 403), counted per process.
    pub bot_messages_skipped: Arc<std::sync::atomic::AtomicU64>,
    /// Places addresses roughly, when a GeoIP database is configured.
    pub geoip: Option<crate::geoip::GeoIp>,
    /// The per-process side of the rate limits (`flow::limits`).
    pub limits: crate::flow::limits::Limiter,
}

/// Handlers and pages read the provider's parts (`app.config`, `app.store`) directly.
impl Deref for App {
    type Target = Provider;
    fn deref(&self) -> &Provider {
        &self.provider
    }
}

pub type AppState = Arc<App>;

impl App {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        keys: Arc<KeyStore>,
        clock: Arc<dyn Clock>,
        policy: Arc<dyn LoginPolicy>,
    ) -> anyhow::Result<App> {
        let subject_secret =
            crate::secrets::load_or_create_secret(&config.keys_dir.join("subject-secret"))?;
        let base_path = match config.cookie_path().as_str() {
            "/" => String::new(),
            p => p.to_owned(),
        };
        let telegram_oidc = match &config.telegram_oidc {
            Some(upstream) => Some(Arc::new(UpstreamOidc::new(
                upstream,
                &format!(
                    "{}{}",
                    config.issuer,
                    crate::telegram::upstream_oidc::CALLBACK_PATH
                ),
            )?)),
            None => None,
        };
        let bot = match config.telegram.update_mode() {
            crate::config::UpdateMode::None => None,
            _ => Some(Arc::new(BotApi::new(
                &config.telegram.bot_api_url,
                config.telegram.bot_token.clone(),
            )?)),
        };
        let geoip = match &config.account.geoip_database {
            Some(path) => Some(crate::geoip::GeoIp::open(path).map_err(anyhow::Error::msg)?),
            None => None,
        };
        let config_audit = config.audit.clone();
        let audit_store = store.clone();
        Ok(App {
            geoip,
            bot_messages_skipped: Default::default(),
            provider: Provider::new(config, store, keys, subject_secret)?,
            clock,
            base_path,
            telegram_oidc,
            bot,
            policy,
            limits: Default::default(),
            unusable_updates: Default::default(),
            audit: if config_audit.enabled {
                crate::flow::audit::AuditLog::start(audit_store, config_audit.stdout)
            } else {
                crate::flow::audit::AuditLog::off()
            },
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    /// Whether logins can be confirmed in the bot chat: a bot that listens, and its username
    /// for the link.
    pub fn bot_logins_enabled(&self) -> bool {
        self.bot.is_some() && !self.config.telegram.bot_username.is_empty()
    }

    /// Records `event` in the audit log, stamped with now and the current request.
    pub fn audit(&self, event: crate::flow::audit::Event) {
        crate::flow::audit::count(&self.metrics, &event);
        self.audit.record(event, self.now_millis());
    }

    /// The issuer's path ("" at the root, "/oidc" under a prefix), for links in pages.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }
}
