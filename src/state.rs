//! The application state: the provider, the login adapters, and the per-process caches that
//! handlers share. No routes here (those are in `web::router`).

use std::collections::HashMap;
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
    /// Bot updates acknowledged without being used (unreadable), counted per process.
    pub unusable_updates: std::sync::atomic::AtomicU64,
    /// Wrong device user codes per address and per browser session: (minute, count).
    user_code_misses: std::sync::Mutex<HashMap<MissKey, (i64, u32)>>,
}

/// Handlers and pages read the provider's parts (`app.config`, `app.store`) directly.
impl Deref for App {
    type Target = Provider;
    fn deref(&self) -> &Provider {
        &self.provider
    }
}

pub type AppState = Arc<App>;

/// Wrong device user codes accepted per minute from one address (or one browser session)
/// before `/device` answers it 429.
pub const USER_CODE_MISSES_PER_MINUTE: u32 = 30;
/// Bound on the throttle's memory: past this many keys, those of earlier minutes go.
const MISS_KEYS_KEPT: usize = 100_000;

/// Who a wrong user code is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MissKey {
    /// The client's address (IPv6: its /64).
    Addr(std::net::IpAddr),
    /// A browser session, by the SHA-256 of its id.
    Session(Vec<u8>),
}

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
        Ok(App {
            provider: Provider::new(config, store, keys, subject_secret)?,
            clock,
            base_path,
            telegram_oidc,
            bot,
            policy,
            user_code_misses: std::sync::Mutex::new(HashMap::new()),
            unusable_updates: Default::default(),
        })
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn now_millis(&self) -> i64 {
        self.clock.now_millis()
    }

    /// The issuer's path ("" at the root, "/oidc" under a prefix), for links in pages.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// Whether another device user code may be tried now by whoever `keys` names (the
    /// client's address, and its browser session when it has one): at most
    /// [`USER_CODE_MISSES_PER_MINUTE`] wrong codes a minute for each. 8 letters of 20 give
    /// 2.6e10 codes; at this rate a 10-minute code survives any guessing, and one visitor's
    /// misses never lock out another. Counted per node.
    pub fn user_code_attempt_allowed(&self, now: i64, keys: &[MissKey]) -> bool {
        match self.user_code_misses.lock() {
            Ok(misses) => keys.iter().all(|key| {
                misses.get(key).is_none_or(|(minute, count)| {
                    *minute != now / 60 || *count < USER_CODE_MISSES_PER_MINUTE
                })
            }),
            Err(_) => false,
        }
    }

    pub fn note_user_code_miss(&self, now: i64, keys: &[MissKey]) {
        if let Ok(mut misses) = self.user_code_misses.lock() {
            let minute = now / 60;
            if misses.len() >= MISS_KEYS_KEPT {
                misses.retain(|_, (m, _)| *m == minute);
            }
            for key in keys {
                let entry = misses.entry(key.clone()).or_insert((minute, 0));
                if entry.0 != minute {
                    *entry = (minute, 0);
                }
                entry.1 += 1;
                if entry.1 == USER_CODE_MISSES_PER_MINUTE {
                    tracing::warn!(
                        "device user code guessing throttled for this minute for one client"
                    );
                }
            }
        }
    }
}
