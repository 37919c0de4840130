//! Writing the audit log. Every entry is stamped with the request it came from (address, user
//! agent, request id: set by the web layer for the request's task) and handed to a writer task
//! that stores entries in batches, so a request never waits for its audit row. The price: the
//! entries of the last moments before a crash (at most one batch) can be lost. With
//! `audit.stdout` each entry is also printed as one JSON line, for log shippers.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

use crate::metrics::{self, Metrics};
use crate::store::{AuditEntry, Store};

/// Entries waiting for the writer at most; past this, new ones are dropped and counted.
const QUEUE: usize = 16_384;
/// Entries written in one transaction at most.
const BATCH: usize = 512;
/// How long the writer waits after the first entry of a batch for others to join it.
const GATHER: Duration = Duration::from_millis(5);

/// Where a request came from, as the web layer saw it.
#[derive(Debug, Clone, Default)]
pub struct RequestMeta {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

tokio::task_local! {
    /// The request the current task serves.
    pub static REQUEST: RequestMeta;
}

/// `ok`, `refused` or `failed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Refused,
    Failed,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
        }
    }
}

/// One thing that happened, before the audit log stamps it.
#[derive(Debug, Clone)]
pub struct Event {
    pub event: &'static str,
    pub outcome: Outcome,
    pub user_id: Option<i64>,
    pub client_id: Option<String>,
    pub actor: Option<String>,
    pub detail: Value,
}

impl Event {
    pub fn new(event: &'static str, outcome: Outcome) -> Event {
        Event {
            event,
            outcome,
            user_id: None,
            client_id: None,
            actor: None,
            detail: Value::Null,
        }
    }

    pub fn user(mut self, user_id: i64) -> Event {
        self.user_id = Some(user_id);
        self
    }

    pub fn client(mut self, client_id: &str) -> Event {
        self.client_id = Some(client_id.to_owned());
        self
    }

    pub fn actor(mut self, actor: &str) -> Event {
        self.actor = Some(actor.to_owned());
        self
    }

    /// Adds one member to the detail object.
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Event {
        if !self.detail.is_object() {
            self.detail = Value::Object(Default::default());
        }
        if let Value::Object(members) = &mut self.detail {
            members.insert(name.to_owned(), value.into());
        }
        self
    }
}

/// The error codes `/token` answers with (RFC 6749 §5.2, RFC 8628 §3.5, RFC 8693 §2.2.2).
const TOKEN_ERRORS: [&str; 13] = [
    "invalid_request",
    "invalid_client",
    "invalid_grant",
    "unauthorized_client",
    "unsupported_grant_type",
    "invalid_scope",
    "access_denied",
    "server_error",
    "temporarily_unavailable",
    "authorization_pending",
    "slow_down",
    "expired_token",
    "invalid_target",
];

/// Counts `event` in the server's metrics: logins, policy refusals and token responses are
/// derived from their audit events, so every place that records one is counted, whether the
/// audit log is on or off. Label values are taken from fixed lists, never from the text the
/// event carries.
pub fn count(metrics: &Metrics, event: &Event) {
    let detail = |name: &str| event.detail.get(name).and_then(Value::as_str);
    match event.event {
        "login" => metrics.login(
            metrics::login_method_label(detail("method").unwrap_or("")),
            event.outcome.as_str(),
        ),
        "policy.refused" => metrics.policy_refusal("refused"),
        "policy.unavailable" => metrics.policy_refusal("unavailable"),
        "token.issued" => metrics.token_issued(
            metrics::grant_label(detail("grant_type").unwrap_or("")),
            match detail("access_token_format") {
                Some("jwt") => "jwt",
                Some("opaque") => "opaque",
                _ => "none",
            },
        ),
        "token.refused" => metrics.token_refused(
            metrics::grant_label(detail("grant_type").unwrap_or("")),
            detail("error")
                .and_then(|e| TOKEN_ERRORS.iter().find(|known| **known == e).copied())
                .unwrap_or("other"),
        ),
        _ => {}
    }
}

/// The audit log's writer side, held by the app.
pub struct AuditLog {
    queue: Option<mpsc::Sender<AuditEntry>>,
    stdout: bool,
    dropped: AtomicU64,
}

impl AuditLog {
    /// An audit log that records nothing (`audit.enabled = false`).
    pub fn off() -> AuditLog {
        AuditLog {
            queue: None,
            stdout: false,
            dropped: AtomicU64::new(0),
        }
    }

    /// Starts the writer task on `store`.
    pub fn start(store: Arc<dyn Store>, stdout: bool) -> AuditLog {
        let (tx, rx) = mpsc::channel(QUEUE);
        tokio::spawn(write_batches(store, rx));
        AuditLog {
            queue: Some(tx),
            stdout,
            dropped: AtomicU64::new(0),
        }
    }

    /// Records `event` at `now_millis`, stamped with the current request.
    pub fn record(&self, event: Event, now_millis: i64) {
        let Some(queue) = &self.queue else {
            return;
        };
        let meta = REQUEST.try_with(Clone::clone).unwrap_or_default();
        let entry = AuditEntry {
            id: 0,
            at: now_millis,
            event: event.event.to_owned(),
            result: event.outcome.as_str().to_owned(),
            user_id: event.user_id,
            client_id: event.client_id,
            actor: event.actor,
            ip: meta.ip,
            user_agent: meta.user_agent,
            request_id: meta.request_id,
            detail: event.detail,
        };
        if self.stdout
            && let Ok(line) = serde_json::to_string(&entry)
        {
            println!("{line}");
        }
        if queue.try_send(entry).is_err() {
            let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if dropped.is_power_of_two() {
                tracing::warn!(dropped, "audit entries dropped: the writer cannot keep up");
            }
        }
    }

    /// Entries dropped because the queue was full, since the start.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_batches(store: Arc<dyn Store>, mut rx: mpsc::Receiver<AuditEntry>) {
    let mut batch = Vec::with_capacity(BATCH);
    while rx.recv_many(&mut batch, BATCH).await > 0 {
        // More entries are usually on their way (a login makes several, and requests come
        // close together): waiting a moment for them lets one commit carry them all, where a
        // commit per entry made the log cost a quarter of a token request (bench/README.md).
        if batch.len() < BATCH {
            tokio::time::sleep(GATHER).await;
            while batch.len() < BATCH {
                match rx.try_recv() {
                    Ok(entry) => batch.push(entry),
                    Err(_) => break,
                }
            }
        }
        // A failing database gets a few tries before the batch is given up.
        for attempt in 0..3u32 {
            match store.record_audit(&batch).await {
                Ok(()) => break,
                Err(e) if attempt < 2 => {
                    tracing::warn!(error = %e, entries = batch.len(), "writing audit entries failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, entries = batch.len(), "audit entries lost: the database refused them");
                }
            }
        }
        batch.clear();
    }
}

/// The first characters of a hash, to tell entries apart without revealing anything usable.
pub fn hash_prefix(hash: &[u8]) -> String {
    hex::encode(&hash[..hash.len().min(6)])
}
