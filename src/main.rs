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
use telegram_oidc::admin::{self, NewClient};
use telegram_oidc::clock::system_now;
use telegram_oidc::config::{Config, Secret};
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
    Serve,
    /// A complete local provider with a Telegram emulator, a SQLite file under ./data and a demo client.
    Dev {
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
    /// Register and manage apps.
    #[command(subcommand)]
    Client(ClientCommand),
    /// Signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Apply database migrations and exit.
    Migrate,
    /// Check the settings and exit.
    CheckConfig,
}

#[derive(Subcommand)]
enum ClientCommand {
    /// Register an app; a confidential client's secret is printed once.
    Add(AddClient),
    List,
    Show {
        client_id: String,
    },
    Remove {
        client_id: String,
    },
    /// Replace a confidential client's secret; the old one stops working at once.
    RotateSecret {
        client_id: String,
    },
    /// Change an app's access policy or scopes; effective at the next login or refresh.
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
}

#[derive(Args)]
struct AddClient {
    #[arg(long)]
    name: String,
    /// An exact redirect URI; repeat for more.
    #[arg(long = "redirect-uri", required_unless_present = "service_account")]
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
    #[arg(long, value_enum, default_value = "rs256")]
    id_token_alg: AlgArg,
    #[arg(long, value_enum, default_value = "jwt")]
    access_token_format: FormatArg,
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
enum RefreshArg {
    OfflineAccess,
    Always,
    Never,
}

#[derive(Subcommand)]
enum KeysCommand {
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
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,tower_http=info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
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
    match cli.command {
        Command::Serve => {
            let config = Config::load(file)?;
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            telegram_oidc::launch(config, listener, telegram_oidc::shutdown_signal()).await
        }
        Command::Dev { listen, data } => dev(listen, data).await,
        Command::Client(command) => {
            let config = Config::load_unvalidated(file)?;
            client_command(&config, command).await
        }
        Command::Keys(command) => {
            let config = Config::load_unvalidated(file)?;
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
                    let info = keys.rotate_after(alg.into(), system_now(), activate_in)?;
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
    if s.uses_private_key_jwt() {
        match &s.jwks_uri {
            Some(uri) => println!("auth:           private_key_jwt, keys at {uri}"),
            None => println!("auth:           private_key_jwt, inline keys"),
        }
    }
}

async fn client_command(config: &Config, command: ClientCommand) -> anyhow::Result<()> {
    let store = telegram_oidc::open_store(&config.database_url).await?;
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
            };
            // Checked before the client exists, so a refusal leaves nothing half registered.
            if a.telegram_bot_id.is_some_and(|id| id <= 0) {
                bail!("--telegram-bot-id: a bot id is the positive number before `:` in its token");
            }
            let (client, secret) = admin::add_client(store.as_ref(), new, system_now()).await?;
            let client = if a.token_exchange {
                admin::allow_token_exchange(store.as_ref(), &client.client_id, a.telegram_bot_id)
                    .await?
            } else {
                client
            };
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
            for c in store.list_clients().await? {
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
            if !store.delete_client(&client_id).await? {
                bail!("no client with id `{client_id}`");
            }
            println!("removed {client_id}; its tokens no longer work");
        }
        ClientCommand::Update(u) => {
            let access_policy = match (&u.policy_file, u.clear_policy) {
                (Some(path), _) => Some(Some(read_policy_file(path)?)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            if access_policy.is_none() && u.scopes.is_none() {
                bail!("nothing to change: give --policy-file, --clear-policy or --scopes");
            }
            let update = admin::ClientUpdate {
                access_policy,
                scopes: u.scopes,
            };
            let client = admin::update_client(store.as_ref(), &u.client_id, update).await?;
            print_client(&client);
        }
        ClientCommand::RotateSecret { client_id } => {
            let secret = admin::rotate_secret(store.as_ref(), &client_id).await?;
            println!("client_secret:  {secret}");
            println!("\nThe secret is shown only now; the old one no longer works.");
        }
    }
    Ok(())
}

const DEV_CLIENT_NAME: &str = "Demo app (dev mode)";

async fn dev(listen: SocketAddr, data: PathBuf) -> anyhow::Result<()> {
    std::fs::create_dir_all(&data).with_context(|| format!("cannot create {}", data.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr()?;
    let issuer = format!("http://{address}");
    let mut config = Config {
        issuer: issuer.clone(),
        listen: address,
        database_url: format!("sqlite://{}/telegram-oidc.db", data.display()),
        keys_dir: data.join("keys"),
        dev_mode: true,
        ..Config::default()
    };
    config.telegram.bot_token = Secret::new("1000000001:DEV-emulator-token-not-a-real-bot");
    config.telegram.bot_username = "telegram_oidc_dev_bot".into();
    // The dev bot is no real bot: nothing to poll.
    config.telegram.updates = telegram_oidc::config::UpdateMode::None;
    config.validate()?;

    let store = telegram_oidc::open_store(&config.database_url).await?;
    let redirect_uri = format!("{issuer}/dev/callback");
    let existing = store
        .list_clients()
        .await?
        .into_iter()
        .find(|c| c.settings.name == DEV_CLIENT_NAME);
    let (client_id, secret) = match existing {
        Some(mut client) => {
            // The port may differ from the last run: keep the redirect URI in step.
            client.settings.redirect_uris = vec![redirect_uri.clone()];
            store.update_client(&client).await?;
            let secret = admin::rotate_secret(store.as_ref(), &client.client_id).await?;
            (client.client_id, secret)
        }
        None => {
            let (client, secret) = admin::add_client(
                store.as_ref(),
                NewClient {
                    name: DEV_CLIENT_NAME.into(),
                    kind: ClientKind::Confidential,
                    redirect_uris: vec![redirect_uri.clone()],
                    scopes: vec![
                        "openid".into(),
                        "profile".into(),
                        "telegram".into(),
                        "offline_access".into(),
                    ],
                    id_token_alg: SigningAlg::RS256,
                    access_token_format: AccessTokenFormat::Jwt,
                    refresh_policy: RefreshPolicy::OfflineAccess,
                    skip_consent: false,
                    service_account: false,
                    ..Default::default()
                },
                system_now(),
            )
            .await?;
            (client.client_id, secret.unwrap_or_default())
        }
    };
    drop(store);
    println!("telegram-oidc dev mode: Telegram is replaced by a local emulator.");
    println!();
    println!("  issuer:         {issuer}");
    println!("  discovery:      {issuer}/.well-known/openid-configuration");
    println!("  client_id:      {client_id}");
    println!("  client_secret:  {secret}");
    println!("  redirect_uri:   {redirect_uri}");
    println!();
    println!(
        "  try it: {issuer}/authorize?response_type=code&client_id={client_id}&redirect_uri={redirect_uri}&scope=openid%20profile&state=xyz"
    );
    println!();
    telegram_oidc::launch(config, listener, telegram_oidc::shutdown_signal()).await
}
