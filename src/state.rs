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
    /// The Bot API client, when the bot hears updates (`telegram.updates` is not `none`).
    pub bot: Option<Arc<BotApi>>,
    /// Who may log in to which app: asked on every login, whatever the way.
    pub policy: Arc<dyn LoginPolicy>,
    /// Wrong device user codes in the current minute: (minute, count).
    user_code_misses: std::sync::Mutex<(i64, u32)>,
}

/// Handlers and pages read the provider's parts (`app.config`, `app.store`) directly.
impl Deref for App {
    type Target = Provider;
    fn deref(&self) -> &Provider {
        &self.provider
    }
}

pub type AppState = Arc<App>;

/// Wrong device user codes accepted per minute per node before `/device` answers 429.
pub const USER_CODE_MISSES_PER_MINUTE: u32 = 30;

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
        let bot = match config.telegram.updates {
            crate::config::UpdateMode::None => None,
            _ => Some(Arc::new(BotApi::new(
                &config.telegram.bot_api_url,
                config.telegram.bot_token.clone(),
            )?)),
        };
        Ok(App {
            provider: Provider::new(config, store, keys, subject_secret),
            clock,
            base_path,
            telegram_oidc,
            bot,
            policy,
            user_code_misses: std::sync::Mutex::new((0, 0)),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The issuer's path ("" at the root, "/oidc" under a prefix), for links in pages.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// Whether another device user code may be tried now: at most
    /// `USER_CODE_MISSES_PER_MINUTE` wrong codes a minute on this node, whoever types them.
    /// 8 letters of 20 give 2.6e10 codes; at this rate a 10-minute code survives any guessing.
    pub fn user_code_attempt_allowed(&self, now: i64) -> bool {
        match self.user_code_misses.lock() {
            Ok(misses) => misses.0 != now / 60 || misses.1 < USER_CODE_MISSES_PER_MINUTE,
            Err(_) => false,
        }
    }

    pub fn note_user_code_miss(&self, now: i64) {
        if let Ok(mut misses) = self.user_code_misses.lock() {
            if misses.0 == now / 60 {
                misses.1 += 1;
            } else {
                *misses = (now / 60, 1);
            }
            if misses.1 == USER_CODE_MISSES_PER_MINUTE {
                tracing::warn!("device user code guessing throttled for this minute");
            }
        }
    }
}
