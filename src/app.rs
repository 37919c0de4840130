//! The application state and the router: which path goes to which handler, which layers wrap them.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Request, header};
use axum::routing::{get, post};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;

use crate::clock::Clock;
use crate::config::Config;
use crate::keys::KeyStore;
use crate::store::Store;
use crate::{oidc, web};

pub struct App {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub keys: Arc<KeyStore>,
    pub clock: Arc<dyn Clock>,
    /// The discovery document never changes while the server runs: rendered once.
    pub discovery: Bytes,
    /// The JWKS, rendered again when the key set or the time window changes.
    jwks_cache: RwLock<Option<(i64, Bytes)>>,
    base_path: String,
    /// Telegram's own OpenID Connect provider, when configured as a login method.
    pub telegram_oidc: Option<Arc<crate::telegram::upstream_oidc::UpstreamOidc>>,
    /// The server secret behind pairwise subjects; in keys/ so every node derives the same.
    subject_secret: [u8; 32],
    last_forced_reload: std::sync::atomic::AtomicI64,
    /// Wrong device user codes in the current minute: (minute, count).
    user_code_misses: std::sync::Mutex<(i64, u32)>,
    /// Client JWK sets fetched from their `jwks_uri` (private_key_jwt).
    pub client_jwks: oidc::client_assertion::JwksCache,
    /// The Bot API client, when the bot hears updates (`telegram.updates` is not `none`).
    pub bot: Option<Arc<crate::telegram::bot::BotApi>>,
}

pub type AppState = Arc<App>;

/// Wrong device user codes accepted per minute per node before `/device` answers 429.
pub const USER_CODE_MISSES_PER_MINUTE: u32 = 30;

/// How long a rendered JWKS is served before it is rendered again.
const JWKS_CACHE_SECS: i64 = 5;

impl App {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        keys: Arc<KeyStore>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<App> {
        let subject_secret = load_or_create_secret(&config.keys_dir.join("subject-secret"))?;
        let discovery = Bytes::from(oidc::discovery::document(&config).to_string());
        let base_path = match config.cookie_path().as_str() {
            "/" => String::new(),
            p => p.to_owned(),
        };
        let telegram_oidc = match &config.telegram_oidc {
            Some(upstream) => Some(Arc::new(crate::telegram::upstream_oidc::UpstreamOidc::new(
                upstream,
                &format!("{}{}", config.issuer, web::upstream::CALLBACK_PATH),
            )?)),
            None => None,
        };
        let bot = match config.telegram.updates {
            crate::config::UpdateMode::None => None,
            _ => Some(Arc::new(crate::telegram::bot::BotApi::new(
                &config.telegram.bot_api_url,
                config.telegram.bot_token.clone(),
            )?)),
        };
        Ok(App {
            bot,
            telegram_oidc,
            last_forced_reload: std::sync::atomic::AtomicI64::new(0),
            user_code_misses: std::sync::Mutex::new((0, 0)),
            subject_secret,
            base_path,
            config,
            store,
            keys,
            clock,
            discovery,
            jwks_cache: RwLock::new(None),
            client_jwks: Default::default(),
        })
    }

    pub fn subject_secret(&self) -> &[u8] {
        &self.subject_secret
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The issuer's path ("" at the root, "/oidc" under a prefix), for links in pages.
    pub fn base_path(&self) -> &str {
        &self.base_path
    }

    /// The issuer URL plus a path of ours.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.issuer, path)
    }

    pub fn jwks(&self) -> Bytes {
        let now = self.now();
        if let Ok(cache) = self.jwks_cache.read()
            && let Some((at, bytes)) = cache.as_ref()
            && now - at < JWKS_CACHE_SECS
            && now >= *at
        {
            return bytes.clone();
        }
        let bytes = Bytes::from(
            self.keys
                .jwks(now, self.config.key_retention_secs())
                .to_string(),
        );
        if let Ok(mut cache) = self.jwks_cache.write() {
            *cache = Some((now, bytes.clone()));
        }
        bytes
    }

    /// Verifies a JWT signed by one of our keys. A `kid` this node has not loaded yet may be a
    /// key another node just rotated in: the key directory is read again (at most once a
    /// second) before the token is refused.
    pub fn verify_jwt(
        &self,
        token: &str,
    ) -> Result<(serde_json::Value, serde_json::Value), crate::keys::KeyError> {
        match self.keys.verify(token) {
            Err(crate::keys::KeyError::InvalidToken(reason)) if reason.contains("kid") => {
                let now = self.now();
                let due = self
                    .last_forced_reload
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |last| (now > last).then_some(now),
                    )
                    .is_ok();
                if due && matches!(self.keys.reload_at(now), Ok(true)) {
                    self.invalidate_jwks();
                }
                self.keys.verify(token)
            }
            other => other,
        }
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

    /// Forgets the rendered JWKS (after a key rotation or reload).
    pub fn invalidate_jwks(&self) {
        if let Ok(mut cache) = self.jwks_cache.write() {
            *cache = None;
        }
    }
}

pub fn router(app: AppState) -> Router {
    let config = &app.config;
    let mut routes = Router::new()
        .route(
            "/authorize",
            get(oidc::authorize::authorize_get).post(oidc::authorize::authorize_post),
        )
        .route("/authorize/continue", get(oidc::authorize::resume))
        .route("/token", post(oidc::token::token))
        .route("/revoke", post(oidc::revoke::revoke))
        .route(
            "/logout",
            get(oidc::logout::end_session).post(oidc::logout::end_session),
        )
        .route("/logout/confirm", post(oidc::logout::confirm))
        .route("/introspect", post(oidc::introspect::introspect))
        .route(
            "/userinfo",
            get(oidc::userinfo::userinfo_get).post(oidc::userinfo::userinfo_post),
        )
        .route("/login", get(web::login::login_page))
        .route(web::upstream::START_PATH, get(web::upstream::start))
        .route(web::upstream::CALLBACK_PATH, get(web::upstream::callback))
        .route(
            "/login/telegram/{req}",
            get(web::login::widget_callback_get).post(web::login::widget_callback_post),
        )
        .route(
            "/consent",
            get(web::consent::consent_page).post(web::consent::consent_decision),
        )
        .route("/static/app.css", get(web::stylesheet))
        .route("/healthz", get(web::healthz))
        .route("/readyz", get(web::readyz));
    if config.registration.enabled {
        routes = routes
            .route("/register", post(oidc::registration::register))
            .route(
                "/register/{client_id}",
                get(oidc::registration::read)
                    .put(oidc::registration::update)
                    .delete(oidc::registration::delete),
            );
    }
    routes = routes
        .merge(web::deeplink::routes())
        .merge(oidc::device::routes());
    if config.telegram.updates == crate::config::UpdateMode::Webhook {
        routes = routes.route(
            crate::telegram::updates::WEBHOOK_PATH,
            post(crate::telegram::updates::webhook),
        );
    }
    if config.dev_mode {
        routes = routes
            .route(
                "/dev/telegram",
                get(web::emulator::emulator_page).post(web::emulator::emulator_submit),
            )
            .route("/dev/callback", get(web::emulator::demo_callback));
    }
    let routes = routes
        .fallback(web::not_found)
        .layer(axum::middleware::from_fn(web::i18n::negotiate))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request<_>| {
                let route = request
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map(|p| p.as_str().to_owned())
                    .unwrap_or_else(|| "unmatched".into());
                let id = request
                    .headers()
                    .get("x-request-id")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                tracing::info_span!("request", method = %request.method(), route, request_id = id)
            }),
        )
        .layer(DefaultBodyLimit::max(config.max_body_bytes));

    // Served from memory, never failing and logging nothing: these two skip every layer
    // (span, request id, timeout, language, body limit), which cost them a third of their
    // throughput (bench/README.md); their handlers set the response headers themselves.
    let static_documents = Router::new()
        .route(
            "/.well-known/openid-configuration",
            get(oidc::discovery::openid_configuration),
        )
        .route("/jwks.json", get(oidc::discovery::jwks))
        .with_state(app.clone());

    let base_path = config.cookie_path();
    let (router, static_documents) = if base_path == "/" {
        (routes, static_documents)
    } else {
        (
            Router::new().nest(&base_path, routes),
            Router::new().nest(&base_path, static_documents),
        )
    };

    let request_id = HeaderName::from_static("x-request-id");
    router
        .with_state(app)
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(30),
        ))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .merge(static_documents)
}

/// Reads a 32-byte secret file, creating it (mode 0600, written atomically) on first start.
fn load_or_create_secret(path: &std::path::Path) -> anyhow::Result<[u8; 32]> {
    use anyhow::Context;
    match std::fs::read(path) {
        Ok(bytes) => bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("{} must hold exactly 32 bytes; remove it to make a new one (pairwise subjects will change)", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret: [u8; 32] = crate::secrets::random_bytes();
            let dir = path.parent().unwrap_or(std::path::Path::new("."));
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
            let tmp = dir.join(format!(".subject-secret.tmp-{}", std::process::id()));
            {
                use std::io::Write;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut file = options.open(&tmp).with_context(|| format!("cannot write {}", tmp.display()))?;
                file.write_all(&secret)?;
                file.sync_all()?;
            }
            // Another node may have won the race: keep whichever file landed first.
            if std::fs::hard_link(&tmp, path).is_err() && !path.exists() {
                anyhow::bail!("cannot create {}", path.display());
            }
            let _ = std::fs::remove_file(&tmp);
            load_or_create_secret(path)
        }
        Err(e) => Err(anyhow::anyhow!("cannot read {}: {e}", path.display())),
    }
}
