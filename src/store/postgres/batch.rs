//! Group commit on PostgreSQL: the inserts of grants, codes and tokens, from every request
//! waiting at the moment, written on one connection in one transaction.
//!
//! Written one by one, each autocommit INSERT is its own round trip on a pooled connection,
//! sqlx's ping when that connection goes back to the pool (which cannot be turned off), and its
//! own commit with its own fsync. Here a request hands its rows, as data ([`Write`]), to one
//! writer task and waits. The writer takes every request waiting (up to [`MOST_WRITES`]) and
//! writes them with one multi-row statement per table (`INSERT ... SELECT * FROM unnest(...)`,
//! the same text whatever the number of rows, so it stays prepared), grants first, then codes,
//! access tokens, refresh tokens and the grants those keep alive; then it commits, and only
//! then answers each request. There is no waiting for more: while one group commits, the next
//! one gathers, and [`IN_FLIGHT`] groups may be on their way at once.
//!
//! - A group that needs one statement runs it without BEGIN and COMMIT: one statement is
//!   atomic by itself.
//! - If the group fails because the database is unavailable, every request of it is told so
//!   (the server answers 503). If it fails otherwise (one row's unique violation, say), it is
//!   rolled back and each request's write runs again alone, so only the culprit gets its error.
//! - Nothing is answered `Ok` before the commit that holds it succeeded; durability is that of
//!   a single INSERT's commit.
//! - The writer ends when the store's last copy is dropped (its channel closes). A request
//!   whose writer is gone (the runtime it ran on has ended) starts another one; a request that
//!   cannot be handed over, or whose group is lost, is answered with an error: none is left
//!   waiting.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::{column, opt_text, text};
use crate::store::{
    AccessTokenRecord, CodeRecord, GrantRecord, RefreshTokenRecord, StoreError, StoreResult,
};

/// Most writes one group takes.
const MOST_WRITES: usize = 256;
/// Groups being written at once: one committing while the next is written.
const IN_FLIGHT: usize = 2;

const INSERT_GRANTS: &str = "INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at, session_hash) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bytea[])";
const INSERT_CODES: &str = "INSERT INTO codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at) \
     SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::bigint[])";
const INSERT_ACCESS_TOKENS: &str = "INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, scope, created_at, expires_at) \
     SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[])";
const INSERT_REFRESH_TOKENS: &str = "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
     SELECT * FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::bigint[])";
/// A grant lives as long as its longest refresh token (as `sql::EXTEND_GRANT`, for many).
const EXTEND_GRANTS: &str = "UPDATE grants g SET expires_at = v.e \
     FROM unnest($1::text[], $2::bigint[]) AS v(id, e) WHERE g.id = v.id AND g.expires_at < v.e";

/// What one request stores, all or nothing.
pub(super) enum Write {
    Grant(GrantRecord),
    GrantWithCode(GrantRecord, CodeRecord),
    Tokens(Option<AccessTokenRecord>, Option<RefreshTokenRecord>),
    GrantWithTokens(
        GrantRecord,
        Option<AccessTokenRecord>,
        Option<RefreshTokenRecord>,
    ),
}

impl Write {
    fn grant(&self) -> Option<&GrantRecord> {
        match self {
            Write::Grant(g) | Write::GrantWithCode(g, _) | Write::GrantWithTokens(g, _, _) => {
                Some(g)
            }
            Write::Tokens(..) => None,
        }
    }

    fn code(&self) -> Option<&CodeRecord> {
        match self {
            Write::GrantWithCode(_, c) => Some(c),
            _ => None,
        }
    }

    fn access(&self) -> Option<&AccessTokenRecord> {
        match self {
            Write::Tokens(a, _) | Write::GrantWithTokens(_, a, _) => a.as_ref(),
            _ => None,
        }
    }

    fn refresh(&self) -> Option<&RefreshTokenRecord> {
        match self {
            Write::Tokens(_, r) | Write::GrantWithTokens(_, _, r) => r.as_ref(),
            _ => None,
        }
    }

    fn is_empty(&self) -> bool {
        matches!(self, Write::Tokens(None, None))
    }
}

struct Request {
    write: Write,
    reply: oneshot::Sender<StoreResult<()>>,
}

/// The store's side of the writer: hands writes over and waits for their commit.
pub(super) struct GroupWriter {
    pool: PgPool,
    /// The writer task's inbox, started with the first write (and again if the task is gone,
    /// as when the runtime that ran it has ended).
    inbox: Mutex<Option<mpsc::UnboundedSender<Request>>>,
    /// Writes handed over and not yet answered, for the metrics.
    waiting: Arc<AtomicU64>,
    /// Groups committed, for the tests.
    committed: Arc<AtomicU64>,
}

/// Takes one from a count when dropped (also when the caller stops waiting).
struct Waiting(Arc<AtomicU64>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl GroupWriter {
    pub(super) fn new(pool: PgPool) -> GroupWriter {
        GroupWriter {
            pool,
            inbox: Mutex::new(None),
            waiting: Arc::new(AtomicU64::new(0)),
            committed: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Writes handed over and not answered yet.
    pub(super) fn waiting(&self) -> u64 {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Groups committed so far.
    #[cfg(test)]
    pub(super) fn committed(&self) -> u64 {
        self.committed.load(Ordering::Relaxed)
    }

    /// The count of groups, as the writer task holds it: gone once that task has ended.
    #[cfg(test)]
    pub(super) fn task_probe(&self) -> std::sync::Weak<AtomicU64> {
        Arc::downgrade(&self.committed)
    }

    /// Stores `write` with whatever else is waiting, and returns once it is committed (or with
    /// this write's own error).
    pub(super) async fn write(&self, write: Write) -> StoreResult<()> {
        if write.is_empty() {
            return Ok(());
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _waiting = Waiting(self.waiting.clone());
        let (reply, answer) = oneshot::channel();
        self.hand_over(Request { write, reply })?;
        answer.await.map_err(|_| {
            StoreError::Unavailable("the database writer stopped before answering".into())
        })?
    }

    fn hand_over(&self, request: Request) -> StoreResult<()> {
        let mut inbox = self
            .inbox
            .lock()
            .map_err(|_| StoreError::Internal("the database writer's inbox is poisoned".into()))?;
        // A writer whose task has ended (its runtime stopped) gives the request back.
        let request = match inbox.as_ref() {
            Some(sender) => match sender.send(request) {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(request)) => request,
            },
            None => request,
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return Err(StoreError::Internal(
                "no tokio runtime to run the database writer on".into(),
            ));
        };
        let (sender, receiver) = mpsc::unbounded_channel();
        runtime.spawn(writer(self.pool.clone(), receiver, self.committed.clone()));
        let sent = sender.send(request);
        *inbox = Some(sender);
        sent.map_err(|_| StoreError::Unavailable("the database writer did not start".into()))
    }
}

/// The writer task: takes what waits as one group, and starts writing it as soon as one of the
/// [`IN_FLIGHT`] slots is free; ends when every sender is gone.
async fn writer(
    pool: PgPool,
    mut inbox: mpsc::UnboundedReceiver<Request>,
    committed: Arc<AtomicU64>,
) {
    let slots = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = inbox.recv().await {
        // Whatever arrives while both slots are busy joins the group taken next.
        let Ok(slot) = slots.clone().acquire_owned().await else {
            let _ = first.reply.send(Err(StoreError::Internal(
                "the writer's slots closed".into(),
            )));
            continue;
        };
        let mut group = vec![first];
        while group.len() < MOST_WRITES {
            match inbox.try_recv() {
                Ok(request) => group.push(request),
                Err(_) => break,
            }
        }
        let (pool, committed) = (pool.clone(), committed.clone());
        tokio::spawn(async move {
            write_and_answer(&pool, group, &committed).await;
            drop(slot);
        });
    }
}

/// Writes a group and answers each of its requests.
async fn write_and_answer(pool: &PgPool, group: Vec<Request>, committed: &AtomicU64) {
    let writes: Vec<&Write> = group.iter().map(|r| &r.write).collect();
    match write_group(pool, &writes).await {
        Ok(()) => {
            committed.fetch_add(1, Ordering::Relaxed);
            for request in group {
                let _ = request.reply.send(Ok(()));
            }
        }
        Err(StoreError::Unavailable(message)) => {
            for request in group {
                let _ = request
                    .reply
                    .send(Err(StoreError::Unavailable(message.clone())));
            }
        }
        Err(error) if group.len() == 1 => {
            if let Some(request) = group.into_iter().next() {
                let _ = request.reply.send(Err(error));
            }
        }
        // Rolled back: each write again, alone, so that only the culprit hears of its error.
        // Should the database go away meanwhile, the writes not yet replayed are told so at
        // once rather than each waiting out the pool's timeout.
        Err(_) => {
            let mut outage: Option<String> = None;
            for request in group {
                let alone = match &outage {
                    Some(message) => Err(StoreError::Unavailable(message.clone())),
                    None => write_group(pool, &[&request.write]).await,
                };
                if let Err(StoreError::Unavailable(message)) = &alone {
                    outage = Some(message.clone());
                }
                let _ = request.reply.send(alone);
            }
        }
    }
}

/// Writes `writes` on one pooled connection, as one transaction (or as one statement when one
/// is enough). On failure nothing of them is stored.
async fn write_group(pool: &PgPool, writes: &[&Write]) -> StoreResult<()> {
    let rows = Rows::of(writes);
    let mut conn = pool.acquire().await?;
    if rows.statements() <= 1 {
        return rows.insert(&mut conn).await;
    }
    let mut tx = (*conn).begin().await?;
    match rows.insert(&mut tx).await {
        Ok(()) => {
            tx.commit().await?;
            Ok(())
        }
        Err(error) => {
            // A rollback that fails leaves the connection to sqlx, which drops a broken one.
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

/// A group's rows, table by table, in the order their statements run.
struct Rows<'a> {
    grants: Vec<&'a GrantRecord>,
    codes: Vec<&'a CodeRecord>,
    access: Vec<&'a AccessTokenRecord>,
    refresh: Vec<&'a RefreshTokenRecord>,
    /// Each grant a refresh token keeps alive, until the latest of its tokens expires.
    extend: BTreeMap<Cow<'a, str>, i64>,
}

impl<'a> Rows<'a> {
    fn of(writes: &[&'a Write]) -> Rows<'a> {
        let mut rows = Rows {
            grants: Vec::new(),
            codes: Vec::new(),
            access: Vec::new(),
            refresh: Vec::new(),
            extend: BTreeMap::new(),
        };
        for write in writes {
            rows.grants.extend(write.grant());
            rows.codes.extend(write.code());
            rows.access.extend(write.access());
            if let Some(r) = write.refresh() {
                rows.refresh.push(r);
                let until = rows.extend.entry(text(&r.grant_id)).or_insert(r.expires_at);
                *until = (*until).max(r.expires_at);
            }
        }
        rows
    }

    fn statements(&self) -> usize {
        [
            !self.grants.is_empty(),
            !self.codes.is_empty(),
            !self.access.is_empty(),
            !self.refresh.is_empty(),
            !self.extend.is_empty(),
        ]
        .into_iter()
        .filter(|&some| some)
        .count()
    }

    /// Grants before what names them; text as PostgreSQL can hold it (`text`, `opt_text`),
    /// exactly as the single-row inserts in `rows.rs` bind it.
    async fn insert(&self, conn: &mut PgConnection) -> StoreResult<()> {
        let (g, c, a, r) = (&self.grants, &self.codes, &self.access, &self.refresh);
        if !g.is_empty() {
            sqlx::query(INSERT_GRANTS)
                .bind(column(g, |g| text(&g.id)))
                .bind(column(g, |g| text(&g.client_id)))
                .bind(column(g, |g| g.user_id))
                .bind(column(g, |g| text(&g.scope)))
                .bind(column(g, |g| g.auth_time))
                .bind(column(g, |g| text(&g.amr)))
                .bind(column(g, |g| opt_text(&g.nonce)))
                .bind(column(g, |g| g.created_at))
                .bind(column(g, |g| g.revoked_at))
                .bind(column(g, |g| g.expires_at))
                .bind(column(g, |g| g.session_hash.as_deref()))
                .execute(&mut *conn)
                .await?;
        }
        if !c.is_empty() {
            sqlx::query(INSERT_CODES)
                .bind(column(c, |c| c.code_hash.as_slice()))
                .bind(column(c, |c| text(&c.grant_id)))
                .bind(column(c, |c| text(&c.redirect_uri)))
                .bind(column(c, |c| opt_text(&c.code_challenge)))
                .bind(column(c, |c| c.expires_at))
                .execute(&mut *conn)
                .await?;
        }
        if !a.is_empty() {
            sqlx::query(INSERT_ACCESS_TOKENS)
                .bind(column(a, |a| a.token_hash.as_slice()))
                .bind(column(a, |a| text(&a.grant_id)))
                .bind(column(a, |a| text(&a.client_id)))
                .bind(column(a, |a| a.user_id))
                .bind(column(a, |a| text(&a.scope)))
                .bind(column(a, |a| a.created_at))
                .bind(column(a, |a| a.expires_at))
                .execute(&mut *conn)
                .await?;
        }
        if !r.is_empty() {
            sqlx::query(INSERT_REFRESH_TOKENS)
                .bind(column(r, |r| r.token_hash.as_slice()))
                .bind(column(r, |r| text(&r.grant_id)))
                .bind(column(r, |r| r.created_at))
                .bind(column(r, |r| r.expires_at))
                .execute(&mut *conn)
                .await?;
        }
        if !self.extend.is_empty() {
            sqlx::query(EXTEND_GRANTS)
                .bind(
                    self.extend
                        .keys()
                        .map(|id| id.as_ref())
                        .collect::<Vec<&str>>(),
                )
                .bind(self.extend.values().copied().collect::<Vec<_>>())
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}
