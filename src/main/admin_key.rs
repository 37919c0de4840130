//! `telegram-oidc admin-key ...`: keys of the admin API, made, listed and revoked from the
//! server's own machine (the operations are `admin`'s, as the API's are).

use clap::{Subcommand, ValueEnum};
use telegram_oidc::admin;
use telegram_oidc::clock::{system_now, system_now_millis};
use telegram_oidc::config::Config;
use telegram_oidc::store::AdminScope;

#[derive(Subcommand)]
pub enum AdminKeyCommand {
    /// Make a key; it is printed once and stored only as a hash.
    Create {
        /// `read` lists and shows; `write` also changes.
        #[arg(long, value_enum)]
        scope: ScopeArg,
        /// What the key is for, shown in `admin-key list` and the audit log.
        #[arg(long, default_value = "admin key")]
        name: String,
        /// The key stops working after this long: e.g. 90d, 12h, 30m (default: never).
        #[arg(long, value_parser = admin::parse_duration)]
        expires_in: Option<i64>,
        /// Addresses or CIDR ranges the key may be used from, comma separated (default: any).
        #[arg(long, value_delimiter = ',', value_parser = admin::parse_cidr)]
        allow_ip: Vec<ipnet::IpNet>,
    },
    /// Every key: id, name, scope, state, allow-list (tab separated).
    List,
    /// Revoke a key: it stops working at once.
    Revoke { id: String },
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ScopeArg {
    Read,
    Write,
}

pub async fn admin_key_command(config: &Config, command: AdminKeyCommand) -> anyhow::Result<()> {
    let store = telegram_oidc::open_store(&config.database_url).await?;
    let cli = admin::Actor::cli();
    match command {
        AdminKeyCommand::Create {
            scope,
            name,
            expires_in,
            allow_ip,
        } => {
            let new = admin::NewAdminKey {
                name,
                scope: match scope {
                    ScopeArg::Read => AdminScope::Read,
                    ScopeArg::Write => AdminScope::Write,
                },
                expires_in,
                allow_ips: allow_ip,
            };
            let (record, key) =
                admin::create_admin_key(store.as_ref(), &cli, new, system_now_millis()).await?;
            println!("id:       {}", record.id);
            println!("scope:    {}", record.scope.as_str());
            if let Some(t) = record.expires_at {
                println!("expires:  {t}");
            }
            println!("key:      {key}");
            println!("\nThe key is shown only now; it is stored as a hash.");
        }
        AdminKeyCommand::List => {
            let now = system_now();
            for k in store.list_admin_keys().await? {
                let state = match (k.revoked_at, k.expires_at) {
                    (Some(t), _) => format!("revoked {t}"),
                    (None, Some(t)) if t <= now => format!("expired {t}"),
                    (None, Some(t)) => format!("live until {t}"),
                    (None, None) => "live".to_owned(),
                };
                let allow: Vec<String> = k.allow_ips.iter().map(|n| n.to_string()).collect();
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.name,
                    k.scope.as_str(),
                    state,
                    if allow.is_empty() {
                        "any address".to_owned()
                    } else {
                        allow.join(",")
                    }
                );
            }
        }
        AdminKeyCommand::Revoke { id } => {
            admin::revoke_admin_key(store.as_ref(), &cli, &id, system_now_millis()).await?;
            println!("revoked {id}; it no longer works");
        }
    }
    Ok(())
}
