//! The `telegram-oidc` command line.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
#[path = "main/admin_key.rs"]
mod admin_key;
#[path = "main/dev.rs"]
mod dev;
#[path = "main/traces.rs"]
mod traces;

use telegram_oidc::admin::{self, NewClient};
use telegram_oidc::clock::{system_now, system_now_millis};
use telegram_oidc::config::Config;
use telegram_oidc::keys::{KeyStore, SigningAlg};
use telegram_oidc::store::{AccessTokenFormat, ClientKind, ClientRecord, RefreshPolicy};

#[derive(Parser)]
#[command(
    name = "telegram-oidc",
    version,
    about = "An OpenID Connect provider that proves identity through Telegram"
)]
struct Cli {
    /// TOML settings file (environment variables TGOIDC_* override it).
    #[arg(long, short, global = true, env = "TGOIDC_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the provider with the settings file and environment.
    Serve {
        /// Not an option: the address comes from `listen` in the settings (or TGOIDC_LISTEN).
        #[arg(long, hide = true)]
        port: Option<String>,
    },
    /// A complete local provider with a Telegram emulator, a SQLite file under ./data and a demo client.
    Dev {
        /// A loopback address and port; the issuer is http://<listen> (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Where the SQLite database, the keys and the demo client's secret are kept.
        #[arg(long, default_value = "data")]
        data: PathBuf,
        /// A Telegram id that may sign in to the admin desk at /admin (as typed in the
        /// emulator); repeat for more.
        #[arg(long = "admin", value_name = "TELEGRAM_ID")]
        admins: Vec<i64>,
    },
    /// Register and manage apps.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Read the audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
    /// Keys of the admin API (`/admin/api/v1`).
    #[command(subcommand)]
    AdminKey(admin_key::AdminKeyCommand),
    /// Apply database migrations and exit.
    Migrate,
    /// Check the settings and exit.
    CheckConfig,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register an app; a confidential client's secret is printed once.
    Add(AddClient),
    /// Every app: client id, name, type (tab separated).
    List,
    /// One app's settings.
    Show { client_id: String },
    /// Remove an app; its tokens stop working at once.
    Remove { client_id: String },
    /// Replace a confidential client's secret; the old one stops working at once.
    RotateSecret { client_id: String },
    /// Change an app's access policy, scopes or step-up; effective at the next login or refresh.
    Update(UpdateClient),
}

#[derive(Args)]
struct UpdateClient {
    client_id: String,
    /// Who may log in: a TOML file with a `[policy]` table (see the README, "Who may enter").
    #[arg(long, conflicts_with = "clear_policy")]
    policy_file: Option<PathBuf>,
    /// Remove the access policy: every Telegram user may log in again.
    #[arg(long)]
    clear_policy: bool,
    /// Replace the allowed scopes, comma separated (add `groups` for the groups claim).
    #[arg(long, value_delimiter = ',')]
    scopes: Option<Vec<String>>,
    /// Every login must also be confirmed in the bot chat (`true`), or not (`false`).
    #[arg(long, value_name = "true|false")]
    require_bot_confirmation: Option<bool>,
}

#[derive(Args)]
#[command(
    override_usage = "telegram-oidc client add --name <NAME> --redirect-uri <URI>... [OPTIONS]\n       telegram-oidc client add --name <NAME> --service-account --scopes <SCOPES> [OPTIONS]"
)]
struct AddClient {
    /// The app's name, shown to users on the login and consent pages and in the bot chat.
    #[arg(long)]
    name: String,
    /// An exact redirect URI; repeat for more.
    #[arg(long = "redirect-uri", required_unless_present_any = ["service_account", "ciba"])]
    redirect_uris: Vec<String>,
    /// A public client (native, single-page or CLI app): no secret, PKCE required.
    #[arg(long)]
    public: bool,
    /// Allowed scopes, comma separated.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "openid,profile,telegram,offline_access"
    )]
    scopes: Vec<String>,
    /// How the app's ID tokens are signed.
    #[arg(long, value_enum, default_value = "rs256")]
    id_token_alg: AlgArg,
    /// Access tokens as signed JWTs (RFC 9068) the app's APIs can check offline, or opaque
    /// strings they check at /introspect.
    #[arg(long, value_enum, default_value = "jwt")]
    access_token_format: FormatArg,
    /// When a refresh token is issued: with the `offline_access` scope, always, or never.
    #[arg(long, value_enum, default_value = "offline-access")]
    refresh: RefreshArg,
    /// Do not ask the user for consent (first-party apps).
    #[arg(long)]
    skip_consent: bool,
    /// A service account: client credentials grant for its scopes (any API scope names).
    #[arg(long)]
    service_account: bool,
    /// May use the device authorization grant (TVs, consoles, CLIs).
    #[arg(long)]
    device_flow: bool,
    /// Authenticate with JWTs signed by the keys in this JWK set file (private_key_jwt, RFC 7523) instead of a secret.
    #[arg(long, conflicts_with_all = ["jwks_uri", "public"])]
    jwks_file: Option<PathBuf>,
    /// Authenticate with JWTs signed by the keys published at this URL (private_key_jwt).
    #[arg(long, conflicts_with = "public")]
    jwks_uri: Option<String>,
    /// Allow token exchange (RFC 8693): the app trades Mini App initData or Login Widget data
    /// for tokens at the token endpoint; implies consent to the app's scopes.
    #[arg(long)]
    token_exchange: bool,
    /// The app is the Mini App of another bot with this numeric id: its initData is checked with
    /// Telegram's Ed25519 key instead of this server's bot token.
    #[arg(long, requires = "token_exchange")]
    telegram_bot_id: Option<i64>,
    /// Where the app may send the user after RP-initiated logout (exact match); repeat for more.
    #[arg(long = "post-logout-redirect-uri")]
    post_logout_redirect_uris: Vec<String>,
    /// Where the app hears back-channel logout notifications.
    #[arg(long)]
    backchannel_logout_uri: Option<String>,
    /// Pairwise subjects: `sub` differs per sector and cannot be linked across sectors.
    #[arg(long)]
    pairwise: bool,
    /// The pairwise sector (default: the host of the first redirect URI).
    #[arg(long, requires = "pairwise")]
    sector_identifier: Option<String>,
    /// Release a synthetic `<sub>@<email_domain>` address (email_verified false) under the
    /// `email` scope, for apps that refuse users without an email.
    #[arg(long)]
    synthetic_email: bool,
    /// Who may log in: a TOML file with a `[policy]` table (see the README, "Who may enter").
    #[arg(long)]
    policy_file: Option<PathBuf>,
    /// Every login must also be confirmed in the bot chat (step-up; the ID token's `acr` is
    /// `urn:telegram-oidc:acr:bot-confirmed`).
    #[arg(long)]
    require_bot_confirmation: bool,
    /// May start backchannel authentication (CIBA): the app asks for a known user, who
    /// approves in the bot chat; the app polls the token endpoint (`poll`) or is told at its
    /// notification endpoint first (`ping`).
    #[arg(long, value_enum)]
    ciba: Option<CibaArg>,
    /// Where CIBA ping mode posts `{"auth_req_id": ...}` once the user answered.
    #[arg(long, requires = "ciba")]
    ciba_notification_endpoint: Option<String>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Reads an access policy file, saying which file is wrong and how.
fn read_policy_file(path: &std::path::Path) -> anyhow::Result<telegram_oidc::access::Rule> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    telegram_oidc::access::Rule::from_toml(&text)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

#[derive(Clone, Copy, ValueEnum)]
enum AlgArg {
    Rs256,
    Es256,
    Eddsa,
}

impl From<AlgArg> for SigningAlg {
    fn from(a: AlgArg) -> Self {
        match a {
            AlgArg::Rs256 => SigningAlg::RS256,
            AlgArg::Es256 => SigningAlg::ES256,
            AlgArg::Eddsa => SigningAlg::EdDSA,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum FormatArg {
    Jwt,
    Opaque,
}

#[derive(Clone, Copy, ValueEnum)]
enum CibaArg {
    Poll,
    Ping,
}

#[derive(Clone, Copy, ValueEnum)]
enum RefreshArg {
    OfflineAccess,
    Always,
    Never,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// The newest entries, oldest first; with --follow, then every new one as it is written.
    Tail {
        /// Keep printing new entries until interrupted.
        #[arg(long)]
        follow: bool,
        /// Only this Telegram user's entries.
        #[arg(long)]
        user: Option<i64>,
        /// Only this app's entries.
        #[arg(long)]
        client: Option<String>,
        /// Only this event, or the events under it (`token` finds `token.issued`).
        #[arg(long)]
        event: Option<String>,
        /// How many of the newest entries to print first.
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        limit: u32,
        /// One JSON object per line instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Every signing key: kid, algorithm, state (active, published, retired), creation time.
    List,
    /// Make a new key sign; the old one stays published until its tokens have expired.
    Rotate {
        #[arg(long, value_enum, default_value = "rs256")]
        alg: AlgArg,
        /// Publish the new key now and let it sign only this many seconds later, so every
        /// node and every app caching the JWKS (often for a minute or more) holds it first.
        #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(i64).range(0..=86_400))]
        activate_in: i64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let file = cli.config.as_deref();
    // `serve` starts its output once its settings are read: they may export traces.
    if !matches!(cli.command, Command::Serve { .. }) {
        traces::init(None)?;
    }
    match cli.command {
        Command::Serve { port } => {
            if let Some(port) = port {
                bail!(
                    "serve takes no --port: set `listen = \"0.0.0.0:{port}\"` in the settings file, or TGOIDC_LISTEN=0.0.0.0:{port}"
                );
            }
            let config = Config::load(file)?;
            let traces = traces::init(Some(&config.traces))?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let served =
                telegram_oidc::launch(config, listener, telegram_oidc::shutdown_signal()).await;
            if let Some(traces) = traces {
                traces.shutdown().await;
            }
            served
        }
        Command::Dev {
            listen,
            data,
            admins,
        } => dev::dev(listen, data, admins, file).await,
        Command::Client(command) => {
            let config = Config::load_unvalidated(file)?;
            client_command(&config, command).await
        }
        Command::Keys(command) => {
            let config = Config::load_unvalidated(file)?;
            // Listing or rotating keys in a directory that does not exist would quietly make
            // new keys no server uses: more likely the settings are not the server's.
            if !config.keys_dir.is_dir() {
                bail!(
                    "no keys directory at {}: the server creates it when it first starts. Give \
                     the server's settings (`--config FILE` with its `keys_dir`, or \
                     TGOIDC_KEYS_DIR), or start the server first",
                    config.keys_dir.display()
                );
            }
            let keys = KeyStore::open(&config.keys_dir, system_now())?;
            match command {
                KeysCommand::List => {
                    for k in keys.list() {
                        println!(
                            "{}\t{}\t{}\t{}",
                            k.kid,
                            k.alg,
                            if k.active {
                                "active".to_owned()
                            } else if let (None, Some(t)) = (k.retired_at, k.not_before) {
                                format!("published, signs from {t}")
                            } else {
                                "retired".to_owned()
                            },
                            k.created_at
                        );
                    }
                }
                KeysCommand::Rotate { alg, activate_in } => {
                    let store = telegram_oidc::open_store(&config.database_url).await?;
                    let info = admin::rotate_signing_key(
                        &keys,
                        store.as_ref(),
                        &admin::Actor::cli(),
                        alg.into(),
                        activate_in,
                        system_now_millis(),
                    )
                    .await?;
                    match info.not_before {
                        Some(t) => println!(
                            "new {} key {} is published and signs from {t} (in {activate_in} s)",
                            info.alg, info.kid
                        ),
                        None => println!("new {} key {} is now active", info.alg, info.kid),
                    }
                }
            }
            Ok(())
        }
        Command::AdminKey(command) => {
            let config = Config::load_unvalidated(file)?;
            admin_key::admin_key_command(&config, command).await
        }
        Command::Audit(AuditCommand::Tail {
            follow,
            user,
            client,
            event,
            limit,
            json,
        }) => {
            let config = Config::load_unvalidated(file)?;
            let store = telegram_oidc::open_store(&config.database_url).await?;
            let mut query = telegram_oidc::store::AuditQuery {
                user_id: user,
                client_id: client,
                event,
                limit,
                ..Default::default()
            };
            let mut newest = store.query_audit(&query).await?;
            newest.reverse();
            let mut last = newest.last().map(|e| e.id).unwrap_or(0);
            for entry in &newest {
                print_audit(entry, json);
            }
            if !follow {
                return Ok(());
            }
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                query.after = Some(last);
                query.limit = 1000;
                for entry in store.query_audit(&query).await? {
                    last = entry.id;
                    print_audit(&entry, json);
                }
            }
        }
        Command::Migrate => {
            let config = Config::load_unvalidated(file)?;
            telegram_oidc::open_store(&config.database_url).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::CheckConfig => {
            let config = Config::load(file)?;
            println!("configuration is valid; issuer {}", config.issuer);
            check_policy_chats(&config).await
        }
    }
}

/// Whether the bot is in every chat an app's policy or a group names: an error when Telegram
/// says it is not, a warning when the Bot API cannot be asked.
async fn check_policy_chats(config: &Config) -> anyhow::Result<()> {
    let clients = match telegram_oidc::open_store(&config.database_url).await {
        Ok(store) => store.list_clients().await?,
        Err(e) => {
            eprintln!("warning: the apps' policies were not checked: {e}");
            Vec::new()
        }
    };
    let chats = telegram_oidc::flow::policy::named_chats(config, &clients);
    if chats.is_empty() {
        return Ok(());
    }
    let bot = telegram_oidc::telegram::bot::BotApi::new(
        &config.telegram.bot_api_url,
        config.telegram.bot_token.clone(),
    )?;
    let timeout = std::time::Duration::from_secs(config.policy.timeout_secs);
    let problems = telegram_oidc::flow::policy::check_bot_in_chats(&bot, &chats, timeout).await;
    let mut definite = 0;
    for problem in &problems {
        if problem.definite {
            definite += 1;
            eprintln!("error: {}", problem.message);
        } else {
            eprintln!("warning: {}", problem.message);
        }
    }
    if definite > 0 {
        bail!("{definite} chat(s) named by access policies or groups cannot be checked by the bot");
    }
    println!(
        "the bot can see all {} chat(s) named by access policies and groups",
        chats.len()
    );
    Ok(())
}

fn print_client(c: &ClientRecord) {
    let s = &c.settings;
    println!("client_id:      {}", c.client_id);
    println!("name:           {}", s.name);
    println!("type:           {:?}", s.kind);
    println!("redirect_uris:  {}", s.redirect_uris.join(" "));
    if !s.post_logout_redirect_uris.is_empty() {
        println!("post_logout:    {}", s.post_logout_redirect_uris.join(" "));
    }
    if let Some(uri) = &s.backchannel_logout_uri {
        println!("backchannel:    {uri}");
    }
    println!("scopes:         {}", s.allowed_scopes.join(" "));
    println!("id_token_alg:   {}", s.id_token_alg);
    println!("access_token:   {:?}", s.access_token_format);
    println!("refresh:        {:?}", s.refresh_policy);
    println!("skip_consent:   {}", s.skip_consent);
    println!("service_acct:   {}", s.service_account);
    match &s.ciba {
        Some(ciba) => match &ciba.client_notification_endpoint {
            Some(uri) => println!("ciba:           {}, {uri}", ciba.delivery_mode.as_str()),
            None => println!("ciba:           {}", ciba.delivery_mode.as_str()),
        },
        None => println!("ciba:           no"),
    }
    match &s.token_exchange {
        Some(t) => match t.telegram_bot_id {
            Some(bot) => println!("token_exchange: yes, Mini App of bot {bot} (Ed25519)"),
            None => println!("token_exchange: yes, this server's bot"),
        },
        None => println!("token_exchange: no"),
    }
    match &s.access_policy {
        Some(rule) => println!(
            "access_policy:  {}",
            serde_json::to_string(rule).unwrap_or_default()
        ),
        None => println!("access_policy:  none (every Telegram user)"),
    }
    if s.require_bot_confirmation {
        println!("step-up:        every login is also confirmed in the bot chat");
    }
    if s.uses_private_key_jwt() {
        match &s.jwks_uri {
            Some(uri) => println!("auth:           private_key_jwt, keys at {uri}"),
            None => println!("auth:           private_key_jwt, inline keys"),
        }
    }
}

/// One audit entry as a line: time, event, result, then the rest as `name=value`.
fn print_audit(entry: &telegram_oidc::store::AuditEntry, json: bool) {
    if json {
        if let Ok(line) = serde_json::to_string(entry) {
            println!("{line}");
        }
        return;
    }
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(entry.at) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| entry.at.to_string());
    let mut line = format!("{at} {} {}", entry.event, entry.result);
    let mut field = |name: &str, value: Option<String>| {
        if let Some(value) = value {
            line.push_str(&format!(" {name}={}", value.escape_debug()));
        }
    };
    field("user", entry.user_id.map(|u| u.to_string()));
    field("client", entry.client_id.clone());
    field("actor", entry.actor.clone());
    field("ip", entry.ip.clone());
    field("request", entry.request_id.clone());
    if let serde_json::Value::Object(detail) = &entry.detail {
        for (name, value) in detail {
            field(
                name,
                Some(match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                }),
            );
        }
    }
    println!("{line}");
}

async fn client_command(config: &Config, command: ClientCommand) -> anyhow::Result<()> {
    let store = telegram_oidc::open_store(&config.database_url).await?;
    let cli = admin::Actor::cli();
    match command {
        ClientCommand::Add(a) => {
            let new = NewClient {
                name: a.name,
                kind: if a.public {
                    ClientKind::Public
                } else {
                    ClientKind::Confidential
                },
                redirect_uris: a.redirect_uris,
                scopes: a.scopes,
                id_token_alg: a.id_token_alg.into(),
                access_token_format: match a.access_token_format {
                    FormatArg::Jwt => AccessTokenFormat::Jwt,
                    FormatArg::Opaque => AccessTokenFormat::Opaque,
                },
                refresh_policy: match a.refresh {
                    RefreshArg::OfflineAccess => RefreshPolicy::OfflineAccess,
                    RefreshArg::Always => RefreshPolicy::Always,
                    RefreshArg::Never => RefreshPolicy::Never,
                },
                skip_consent: a.skip_consent,
                service_account: a.service_account,
                device_flow: a.device_flow,
                jwks: match &a.jwks_file {
                    Some(path) => Some(
                        serde_json::from_str(
                            &std::fs::read_to_string(path)
                                .with_context(|| format!("cannot read {}", path.display()))?,
                        )
                        .with_context(|| format!("{} is not JSON", path.display()))?,
                    ),
                    None => None,
                },
                jwks_uri: a.jwks_uri,
                post_logout_redirect_uris: a.post_logout_redirect_uris,
                backchannel_logout_uri: a.backchannel_logout_uri,
                subject_type: if a.pairwise {
                    telegram_oidc::store::SubjectType::Pairwise
                } else {
                    telegram_oidc::store::SubjectType::Public
                },
                sector_identifier: a.sector_identifier,
                synthetic_email: a.synthetic_email,
                access_policy: a.policy_file.as_deref().map(read_policy_file).transpose()?,
                require_bot_confirmation: a.require_bot_confirmation,
                ciba: a.ciba.map(|mode| telegram_oidc::store::CibaSettings {
                    delivery_mode: match mode {
                        CibaArg::Poll => telegram_oidc::store::CibaDeliveryMode::Poll,
                        CibaArg::Ping => telegram_oidc::store::CibaDeliveryMode::Ping,
                    },
                    client_notification_endpoint: a.ciba_notification_endpoint,
                }),
            };
            let token_exchange = a.token_exchange.then_some(a.telegram_bot_id);
            let (client, secret) = admin::create_client(
                store.as_ref(),
                &cli,
                new,
                token_exchange,
                system_now_millis(),
            )
            .await?;
            if a.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "client_id": client.client_id,
                        "client_secret": secret,
                        "settings": client.settings,
                    })
                );
            } else {
                print_client(&client);
                if let Some(secret) = secret {
                    println!("client_secret:  {secret}");
                    println!("\nThe secret is shown only now; it is stored as a hash.");
                }
            }
        }
        ClientCommand::List => {
            let clients = store.list_clients().await?;
            if clients.is_empty() {
                eprintln!("no clients (register one with `telegram-oidc client add`)");
            }
            for c in clients {
                println!(
                    "{}\t{}\t{:?}",
                    c.client_id, c.settings.name, c.settings.kind
                );
            }
        }
        ClientCommand::Show { client_id } => match store.get_client(&client_id).await? {
            Some(c) => print_client(&c),
            None => bail!("no client with id `{client_id}`"),
        },
        ClientCommand::Remove { client_id } => {
            admin::remove_client(store.as_ref(), &cli, &client_id, None, system_now_millis())
                .await?;
            println!("removed {client_id}; its tokens no longer work");
        }
        ClientCommand::Update(u) => {
            let access_policy = match (&u.policy_file, u.clear_policy) {
                (Some(path), _) => Some(Some(read_policy_file(path)?)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            if access_policy.is_none() && u.scopes.is_none() && u.require_bot_confirmation.is_none()
            {
                bail!(
                    "nothing to change: give --policy-file, --clear-policy, --scopes or --require-bot-confirmation"
                );
            }
            let update = admin::ClientUpdate {
                access_policy,
                scopes: u.scopes,
                require_bot_confirmation: u.require_bot_confirmation,
                ..admin::ClientUpdate::default()
            };
            let client = admin::change_client(
                store.as_ref(),
                &cli,
                &u.client_id,
                update,
                None,
                system_now_millis(),
            )
            .await?;
            print_client(&client);
        }
        ClientCommand::RotateSecret { client_id } => {
            let secret =
                admin::new_client_secret(store.as_ref(), &cli, &client_id, system_now_millis())
                    .await?;
            println!("client_secret:  {secret}");
            println!("\nThe secret is shown only now; the old one no longer works.");
        }
    }
    Ok(())
}
