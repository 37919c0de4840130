//! `telegram-oidc dev`: a complete provider on loopback with a Telegram emulator, a SQLite
//! file and a demo client whose secret is kept across restarts.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, bail};
use telegram_oidc::admin::{self, NewClient};
use telegram_oidc::clock::system_now;
use telegram_oidc::config::{Config, Secret};
use telegram_oidc::keys::SigningAlg;
use telegram_oidc::store::{AccessTokenFormat, ClientKind, RefreshPolicy};

const DEV_CLIENT_NAME: &str = "Demo app (dev mode)";

/// Writes `text` to `path`, readable by its owner only.
fn write_private(path: &std::path::Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The demo client's secret is kept here (dev mode only, mode 0600), so a restart keeps it.
const DEV_SECRET_FILE: &str = "dev-client-secret";

pub async fn dev(
    listen: SocketAddr,
    data: PathBuf,
    admins: Vec<i64>,
    settings: Option<&std::path::Path>,
) -> anyhow::Result<()> {
    if let Some(file) = settings {
        bail!(
            "dev mode takes no settings file (given {}): it always serves http://<listen> on \
             loopback with a Telegram emulator. To serve a real issuer, run \
             `telegram-oidc --config {} serve`",
            file.display(),
            file.display()
        );
    }
    if !listen.ip().is_loopback() {
        bail!(
            "dev mode listens on loopback only (127.0.0.1 or [::1]), not {listen}: its issuer \
             is http://<listen>, and its Telegram emulator must not be reachable from other \
             machines. To listen on {}, run `serve` with a settings file",
            listen.ip()
        );
    }
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
    config.admin.telegram_ids = admins;
    config.validate()?;

    let store = telegram_oidc::open_store(&config.database_url).await?;
    let redirect_uri = format!("{issuer}/dev/callback");
    let existing = store
        .list_clients()
        .await?
        .into_iter()
        .find(|c| c.settings.name == DEV_CLIENT_NAME);
    let secret_file = data.join(DEV_SECRET_FILE);
    let kept = std::fs::read_to_string(&secret_file)
        .ok()
        .map(|s| s.trim().to_owned());
    let (client_id, secret) = match existing {
        Some(mut client) => {
            // The port may differ from the last run: keep the redirect URI in step.
            client.settings.redirect_uris = vec![redirect_uri.clone()];
            store.update_client(&client).await?;
            // The same secret as last time, while it still matches the stored hash.
            let still_valid = kept.as_deref().filter(|s| {
                client.secret_hash.as_deref().is_some_and(|stored| {
                    telegram_oidc::secrets::constant_time_eq(
                        stored,
                        &telegram_oidc::secrets::token_hash(s),
                    )
                })
            });
            let secret = match still_valid {
                Some(secret) => secret.to_owned(),
                None => {
                    let secret = admin::rotate_secret(store.as_ref(), &client.client_id).await?;
                    println!(
                        "(the demo client has a new secret: the one kept in {} no longer matched)",
                        secret_file.display()
                    );
                    secret
                }
            };
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
    write_private(&secret_file, &secret)?;
    config.dev_client_secret = Some(Secret::new(secret.clone()));
    drop(store);
    println!("telegram-oidc dev mode: Telegram is replaced by a local emulator.");
    println!();
    println!("  issuer:         {issuer}");
    println!("  discovery:      {issuer}/.well-known/openid-configuration");
    println!("  client_id:      {client_id}");
    println!(
        "  client_secret:  {secret}  (kept in {} across restarts)",
        secret_file.display()
    );
    println!("  redirect_uri:   {redirect_uri}");
    if config.admin.desk_enabled() {
        let ids: Vec<String> = config
            .admin
            .telegram_ids
            .iter()
            .map(i64::to_string)
            .collect();
        println!(
            "  admin desk:     {issuer}/admin  (sign in as Telegram id {})",
            ids.join(" or ")
        );
    }
    println!();
    println!(
        "  try it: {issuer}/authorize?response_type=code&client_id={client_id}&redirect_uri={redirect_uri}&scope=openid%20profile&state=xyz"
    );
    println!();
    telegram_oidc::launch(config, listener, telegram_oidc::shutdown_signal()).await
}
