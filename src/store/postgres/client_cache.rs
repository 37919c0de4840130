//! Clients held in the server's memory, so authenticating a client (every `/token`,
//! `/introspect` and `/revoke` request, and each step of a login) costs no round trip.
//!
//! Every node listens on one channel; every change of a client (create, update, secret
//! rotation, removal) sends a `NOTIFY` with the client's id in the transaction that makes it,
//! so PostgreSQL delivers it exactly when the change is committed, to every node. A node drops
//! the entry when the notification arrives, and never serves a removed client or an old secret
//! after that.
//!
//! Deaf is never stale: the cache answers only while its listening connection is up. When that
//! connection fails, every entry goes and every lookup reads the database until `LISTEN` runs
//! again. A lookup that was reading the database while any entry was dropped (or the listener
//! was lost) does not store what it read: it may be older than the change. Entries also expire
//! after a short time (`client_cache_secs`), a safety net for a connection that dies without
//! the operating system noticing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use sqlx::PgPool;
use sqlx::postgres::PgListener;

use crate::store::ClientRecord;

/// The channel every node listens on; a notification's payload is one client id.
pub(super) const CHANNEL: &str = "telegram_oidc_clients";
/// The `application_name` of the listening connection (seen in `pg_stat_activity`).
pub const LISTENER_APPLICATION_NAME: &str = "telegram-oidc client cache";
/// A client id this long (in bytes) or longer is announced with an empty payload, which drops
/// every entry: a `NOTIFY` payload must stay under 8,000 bytes.
const LONGEST_PAYLOAD: usize = 4_000;
/// At most this many clients are held; past it the map starts again from empty, so lookups of
/// ids that exist cannot grow it without bound (ids that do not exist are never held).
const MOST_ENTRIES: usize = 10_000;
/// How long to wait before listening again after the connection failed.
const RETRY: Duration = Duration::from_secs(1);

/// The payload that announces a change of `client_id` (already as PostgreSQL stores it).
pub(super) fn payload(client_id: &str) -> &str {
    if client_id.len() >= LONGEST_PAYLOAD || client_id.is_empty() {
        ""
    } else {
        client_id
    }
}

pub(super) struct ClientCache {
    ttl: Duration,
    state: Mutex<State>,
    listener: Mutex<Option<tokio::task::AbortHandle>>,
}

struct State {
    /// True from a successful `LISTEN` until its connection fails.
    listening: bool,
    /// Moves on every drop of an entry and every change of `listening`.
    epoch: u64,
    entries: HashMap<String, (Instant, Arc<ClientRecord>)>,
}

/// What a lookup saw before it read the database; its result is stored only if nothing was
/// dropped meanwhile.
pub(super) struct Ticket(u64);

impl ClientCache {
    /// A cache, and the task that listens for changes on a connection of its own from `pool`.
    pub(super) fn start(ttl: Duration, pool: PgPool) -> Arc<ClientCache> {
        let cache = Arc::new(ClientCache {
            ttl,
            state: Mutex::new(State {
                listening: false,
                epoch: 0,
                entries: HashMap::new(),
            }),
            listener: Mutex::new(None),
        });
        let task = tokio::spawn(listen(Arc::downgrade(&cache), pool));
        *lock(&cache.listener) = Some(task.abort_handle());
        cache
    }

    /// The client held for `client_id`, if the cache is listening and the entry is fresh.
    pub(super) fn get(&self, client_id: &str) -> Option<ClientRecord> {
        let found = {
            let state = lock(&self.state);
            if !state.listening {
                return None;
            }
            let (at, record) = state.entries.get(client_id)?;
            if at.elapsed() >= self.ttl {
                return None;
            }
            record.clone()
        };
        Some(ClientRecord::clone(&found))
    }

    /// Taken before reading the database; `None` while deaf (nothing read may be stored).
    pub(super) fn ticket(&self) -> Option<Ticket> {
        let state = lock(&self.state);
        state.listening.then_some(Ticket(state.epoch))
    }

    /// Stores what a lookup read, unless an entry was dropped or the listener lost since its
    /// ticket was taken.
    pub(super) fn put(&self, ticket: Ticket, client_id: &str, record: &ClientRecord) {
        let mut state = lock(&self.state);
        if !state.listening || state.epoch != ticket.0 {
            return;
        }
        if state.entries.len() >= MOST_ENTRIES {
            state.entries.clear();
        }
        state.entries.insert(
            client_id.to_string(),
            (Instant::now(), Arc::new(record.clone())),
        );
    }

    /// Drops the entry a notification (or this node's own change) names; an empty payload
    /// drops them all.
    pub(super) fn forget(&self, payload: &str) {
        let mut state = lock(&self.state);
        state.epoch += 1;
        if payload.is_empty() {
            state.entries.clear();
        } else {
            state.entries.remove(payload);
        }
    }

    fn set_listening(&self, listening: bool) {
        let mut state = lock(&self.state);
        state.epoch += 1;
        state.listening = listening;
        state.entries.clear();
    }
}

impl Drop for ClientCache {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.listener).take() {
            task.abort();
        }
    }
}

/// A poisoned lock still holds a usable map: a panic elsewhere never stops lookups.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Listens until the cache is dropped: on every failure the cache goes deaf (emptied and
/// bypassed), and listening starts again a second later.
async fn listen(cache: Weak<ClientCache>, pool: PgPool) {
    let mut deaf_since_start = false;
    loop {
        let error = match subscribe(&pool).await {
            Ok(mut listener) => {
                let Some(strong) = cache.upgrade() else {
                    return;
                };
                strong.set_listening(true);
                if deaf_since_start {
                    tracing::info!("client cache: listening for client changes again");
                }
                drop(strong);
                let error = loop {
                    match listener.try_recv().await {
                        Ok(Some(notification)) => match cache.upgrade() {
                            Some(strong) => strong.forget(notification.payload()),
                            None => return,
                        },
                        Ok(None) => break "the connection was lost".to_string(),
                        Err(e) => break e.to_string(),
                    }
                };
                drop(listener);
                error
            }
            Err(e) => e.to_string(),
        };
        let Some(strong) = cache.upgrade() else {
            return;
        };
        let was_listening = lock(&strong.state).listening;
        strong.set_listening(false);
        drop(strong);
        if was_listening || !deaf_since_start {
            tracing::warn!(
                %error,
                "client cache: not listening for client changes; every client is read from the \
                 database until listening again"
            );
        }
        deaf_since_start = true;
        tokio::time::sleep(RETRY).await;
    }
}

async fn subscribe(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    // A lost connection is taken up again here, by the next `subscribe`, after the cache went
    // deaf.
    listener.eager_reconnect(false);
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(ttl: Duration) -> ClientCache {
        ClientCache {
            ttl,
            state: Mutex::new(State {
                listening: true,
                epoch: 0,
                entries: HashMap::new(),
            }),
            listener: Mutex::new(None),
        }
    }

    fn record(id: &str) -> ClientRecord {
        ClientRecord {
            client_id: id.into(),
            secret_hash: Some(vec![1; 32]),
            settings: serde_json::from_value(serde_json::json!({
                "name": id,
                "kind": "confidential",
                "redirect_uris": [],
                "allowed_scopes": [],
                "id_token_alg": "RS256",
            }))
            .unwrap(),
            created_at: 0,
        }
    }

    #[test]
    fn a_change_during_a_read_keeps_the_read_out() {
        let cache = cache(Duration::from_secs(60));
        let ticket = cache.ticket().unwrap();
        cache.forget("other");
        cache.put(ticket, "a", &record("a"));
        assert!(cache.get("a").is_none());
        let ticket = cache.ticket().unwrap();
        cache.put(ticket, "a", &record("a"));
        assert!(cache.get("a").is_some());
        cache.forget("a");
        assert!(cache.get("a").is_none());
    }

    #[test]
    fn deaf_means_bypassed_and_empty() {
        let cache = cache(Duration::from_secs(60));
        let ticket = cache.ticket().unwrap();
        cache.put(ticket, "a", &record("a"));
        let ticket = cache.ticket().unwrap();
        cache.set_listening(false);
        assert!(cache.get("a").is_none());
        assert!(cache.ticket().is_none());
        cache.put(ticket, "b", &record("b"));
        cache.set_listening(true);
        assert!(cache.get("a").is_none() && cache.get("b").is_none());
    }

    #[test]
    fn entries_expire_and_an_empty_payload_drops_all() {
        let cache = cache(Duration::ZERO);
        let ticket = cache.ticket().unwrap();
        cache.put(ticket, "a", &record("a"));
        assert!(cache.get("a").is_none(), "expired");
        let cache = self::cache(Duration::from_secs(60));
        for id in ["a", "b"] {
            let ticket = cache.ticket().unwrap();
            cache.put(ticket, id, &record(id));
        }
        cache.forget(payload(&"x".repeat(LONGEST_PAYLOAD)));
        assert!(cache.get("a").is_none() && cache.get("b").is_none());
    }
}
