//! How the bot's updates arrive: Telegram calls our webhook, or we long-poll `getUpdates`.
//! Both hand each update to [`bot_chat::handle_update`]; neither keeps state of its own beyond
//! the poll offset, so any node can take either role.

use std::sync::Arc;
use std::time::Duration;

use crate::config::UpdateMode;
use crate::flow::bot_chat::{self, HandleError};
use crate::state::App;
use crate::store::JobLock;
use crate::telegram::bot::{BotApi, BotApiError, Update};

pub const WEBHOOK_PATH: &str = "/telegram/webhook";
/// The job lock that keeps the long poll on one node: `getUpdates` serves one caller, and two
/// pollers would take each other's updates.
pub const POLLING_JOB: &str = "telegram-polling";
pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";
const MIN_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often a node that does not poll checks whether the poller's lock became free.
const LOCK_RETRY: Duration = Duration::from_secs(15);

/// Starts what the update mode needs: registers the webhook (if asked to) before the server
/// serves, or spawns the long poll. The returned task is aborted at shutdown.
pub async fn start(app: &Arc<App>) -> Option<tokio::task::JoinHandle<()>> {
    let bot = app.bot.clone()?;
    let telegram = &app.config.telegram;
    match telegram.update_mode() {
        UpdateMode::Webhook if telegram.register_webhook => {
            let url = app.url(WEBHOOK_PATH);
            match bot
                .set_webhook(&url, telegram.webhook_secret.expose())
                .await
            {
                Ok(()) => tracing::info!(url = %url, "webhook registered with Telegram"),
                // Serving goes on: the webhook may already be registered from an earlier start.
                Err(e) => tracing::warn!(error = %e, "registering the webhook failed"),
            }
            None
        }
        UpdateMode::Polling => Some(tokio::spawn(poll(app.clone(), bot))),
        UpdateMode::Webhook | UpdateMode::None | UpdateMode::Auto => None,
    }
}

/// The long poll: while this node holds the polling lock, `getUpdates` with the next offset
/// (which confirms every earlier update to Telegram), each update handled in order.
async fn poll(app: Arc<App>, bot: Arc<BotApi>) {
    let timeout = app.config.telegram.polling_timeout_secs;
    let mut offset: Option<i64> = None;
    let mut backoff = MIN_BACKOFF;
    let mut lock: Option<JobLock> = None;
    loop {
        if !hold_lock(&app, &mut lock).await {
            tokio::time::sleep(LOCK_RETRY).await;
            continue;
        }
        let failed = match bot.get_updates(offset, timeout).await {
            Ok(updates) => handle_batch(&app, &bot, updates, &mut offset).await,
            Err(e) => {
                if matches!(e, BotApiError::Refused { code: 409, .. }) {
                    // Telegram serves updates one way at a time (core.telegram.org/bots/api#getupdates).
                    tracing::warn!(error = %e, "getUpdates refused: a webhook is registered for this bot; delete it (deleteWebhook), or set telegram.updates = \"webhook\" (with its secret) or \"none\"");
                } else {
                    tracing::warn!(error = %e, "getUpdates failed");
                }
                match e {
                    BotApiError::Refused {
                        retry_after: Some(secs),
                        ..
                    } => Some(Duration::from_secs(secs.min(MAX_BACKOFF.as_secs()))),
                    _ => Some(backoff),
                }
            }
        };
        match failed {
            Some(wait) => {
                tokio::time::sleep(wait).await;
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
            None => backoff = MIN_BACKOFF,
        }
    }
}

/// Handles polled updates in order and moves the offset past each one handled. A store failure
/// stops the batch without moving past that update, so the next poll gets it again; the
/// returned wait says how long to back off.
async fn handle_batch(
    app: &App,
    bot: &BotApi,
    updates: Vec<Result<Update, i64>>,
    offset: &mut Option<i64>,
) -> Option<Duration> {
    for update in updates {
        let id = match update {
            Ok(update) => {
                match bot_chat::handle_update(app, bot, &update).await {
                    Ok(()) => {}
                    Err(HandleError::Store(e)) => {
                        tracing::warn!(error = %e, update_id = update.update_id, "update not handled; polling it again");
                        return Some(MIN_BACKOFF);
                    }
                    Err(HandleError::Bot(e)) => {
                        tracing::warn!(error = %e, update_id = update.update_id, "the bot could not answer in the chat");
                    }
                }
                update.update_id
            }
            Err(id) => {
                tracing::warn!(
                    update_id = id,
                    "an update this server cannot read was skipped"
                );
                id
            }
        };
        *offset = Some(offset.map_or(id + 1, |o| o.max(id + 1)));
    }
    None
}

/// Whether this node may poll now: it keeps the lock once taken, and notices losing it.
async fn hold_lock(app: &App, lock: &mut Option<JobLock>) -> bool {
    if let Some(held) = lock.as_mut() {
        if held.is_held().await {
            return true;
        }
        tracing::warn!("lost the Telegram polling lock");
        *lock = None;
    }
    match app.store.try_lock_job(POLLING_JOB).await {
        Ok(Some(taken)) => {
            tracing::info!("this node now polls Telegram for updates");
            *lock = Some(taken);
            true
        }
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(error = %e, "cannot take the Telegram polling lock");
            false
        }
    }
}
