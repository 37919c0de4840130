//! Group commit on PostgreSQL: the inserts of grants, codes and tokens, from every request
//! waiting at the moment, written on one connection in one transaction (a [`Job`] of
//! `group.rs`).
//!
//! Written one by one, each autocommit INSERT is its own round trip on a pooled connection,
//! sqlx's ping when that connection goes back to the pool (which cannot be turned off), and its
//! own commit with its own fsync. Here a request hands its rows, as data ([`Write`]), to the
//! writer task and waits. The task takes every request waiting (up to [`MOST_WRITES`]) and
//! writes them with one multi-row statement per table (`INSERT ... SELECT * FROM unnest(...)`,
//! the same text whatever the number of rows, so it stays prepared), grants first, then codes,
//! access tokens, refresh tokens and the grants those keep alive; then it commits, and only
//! then answers each request.
//!
//! - A group that needs one statement runs it without BEGIN and COMMIT: one statement is
//!   atomic by itself.
//! - If the group fails because the database is unavailable, every request of it is told so
//!   (the server answers 503). If it fails otherwise (one row's unique violation, say), it is
//!   rolled back and each request's write runs again alone, so only the culprit gets its error.
//! - Nothing is answered `Ok` before the commit that holds it succeeded; durability is that of
//!   a single INSERT's commit.

use std::borrow::Cow;
use std::collections::BTreeMap;

use sqlx::{Connection, PgConnection, PgPool};

use super::group::{Grouper, Job, Pending};
use super::{column, opt_text, text};
use crate::store::{
    AccessTokenRecord, CodeRecord, GrantRecord, PendingAuthorization, RefreshTokenRecord,
    SessionRecord, StoreError, StoreResult,
};

/// Most writes one group takes.
const MOST_WRITES: usize = 256;

const INSERT_GRANTS: &str = "INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at, session_hash) \
     SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $11::bytea[])";
const INSERT_CODES: &str = "INSERT INTO codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at) \
     SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::text[], $5::bigint[])";
const INSERT_ACCESS_TOKENS: &str = "INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, scope, created_at, expires_at) \
     SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::bigint[], $7::bigint[])";
const INSERT_REFRESH_TOKENS: &str = "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at) \
     SELECT * FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::bigint[])";
const INSERT_SESSIONS: &str = "INSERT INTO sessions (id_hash, user_id, auth_time, amr, created_at, expires_at, device, place, last_used_at) \
     SELECT * FROM unnest($1::bytea[], $2::bigint[], $3::bigint[], $4::text[], $5::bigint[], $6::bigint[], $7::text[], $8::text[], $9::bigint[])";
const INSERT_PENDINGS: &str = "INSERT INTO pending_authorizations (id_hash, client_id, request, created_at, expires_at) \
     SELECT * FROM unnest($1::bytea[], $2::text[], $3::text[], $4::bigint[], $5::bigint[])";
/// As `sql::RECORD_SESSION_CLIENT`, for many (each pair once: see [`Rows::of`]).
const RECORD_SESSION_CLIENTS: &str = "INSERT INTO session_clients (session_hash, client_id, user_id, expires_at) \
     SELECT * FROM unnest($1::bytea[], $2::text[], $3::bigint[], $4::bigint[]) \
     ON CONFLICT (session_hash, client_id) DO UPDATE SET expires_at = excluded.expires_at";
const DELETE_PENDINGS: &str = "DELETE FROM pending_authorizations WHERE id_hash = ANY($1::bytea[])";
/// A grant lives as long as its longest refresh token (as `sql::EXTEND_GRANT`, for many).
const EXTEND_GRANTS: &str = "UPDATE grants g SET expires_at = v.e \
     FROM unnest($1::text[], $2::bigint[]) AS v(id, e) \
     WHERE g.id = ANY($1::text[]) AND g.id = v.id AND g.expires_at < v.e";

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
    Session(SessionRecord),
    Pending(PendingAuthorization),
    /// A client the session signed in to, until the session ends (upserted).
    SessionClient(SessionClient),
    /// A pending authorization, by the hash of its id, gone.
    PendingGone(Vec<u8>),
    /// An authorization in a browser ended with a code: the grant with its code, the client
    /// noted for the session, the pending authorization gone.
    CodeIssued(GrantRecord, CodeRecord, SessionClient, Vec<u8>),
}

pub(super) struct SessionClient {
    pub(super) session_hash: Vec<u8>,
    pub(super) client_id: String,
    pub(super) user_id: i64,
    pub(super) expires_at: i64,
}

impl Write {
    fn grant(&self) -> Option<&GrantRecord> {
        match self {
            Write::Grant(g)
            | Write::GrantWithCode(g, _)
            | Write::GrantWithTokens(g, _, _)
            | Write::CodeIssued(g, ..) => Some(g),
            _ => None,
        }
    }

    fn code(&self) -> Option<&CodeRecord> {
        match self {
            Write::GrantWithCode(_, c) | Write::CodeIssued(_, c, ..) => Some(c),
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

/// The store's writer of grants, codes and tokens.
pub(super) struct GroupWriter(Grouper<Write>);

impl GroupWriter {
    pub(super) fn new(pool: PgPool) -> GroupWriter {
        GroupWriter(Grouper::new(pool))
    }

    /// Writes handed over and not answered yet.
    pub(super) fn waiting(&self) -> u64 {
        self.0.waiting()
    }

    /// Groups committed so far.
    #[cfg(test)]
    pub(super) fn committed(&self) -> u64 {
        self.0.succeeded()
    }

    /// The count of groups, as the writer task holds it: gone once that task has ended.
    #[cfg(test)]
    pub(super) fn task_probe(&self) -> std::sync::Weak<std::sync::atomic::AtomicU64> {
        self.0.task_probe()
    }

    /// Stores `write` with whatever else is waiting, and returns once it is committed (or with
    /// this write's own error).
    pub(super) async fn write(&self, write: Write) -> StoreResult<()> {
        if write.is_empty() {
            return Ok(());
        }
        self.0.run(write).await
    }
}

impl Job for Write {
    type Answer = ();
    const MOST: usize = MOST_WRITES;

    async fn run(pool: PgPool, group: Vec<Pending<Write>>) -> bool {
        write_and_answer(&pool, group).await
    }
}

/// Writes a group and answers each of its requests; `true` when it was committed whole.
async fn write_and_answer(pool: &PgPool, group: Vec<Pending<Write>>) -> bool {
    let writes: Vec<&Write> = group.iter().map(|r| &r.job).collect();
    match write_group(pool, &writes).await {
        Ok(()) => {
            for request in group {
                request.answer(Ok(()));
            }
            return true;
        }
        Err(StoreError::Unavailable(message)) => {
            for request in group {
                request.answer(Err(StoreError::Unavailable(message.clone())));
            }
        }
        Err(error) if group.len() == 1 => {
            if let Some(request) = group.into_iter().next() {
                request.answer(Err(error));
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
                    None => write_group(pool, &[&request.job]).await,
                };
                if let Err(StoreError::Unavailable(message)) = &alone {
                    outage = Some(message.clone());
                }
                request.answer(alone);
            }
        }
    }
    false
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

/// A session and a client it signed in to.
type SessionClientKey<'a> = (&'a [u8], Cow<'a, str>);

/// A group's rows, table by table, in the order their statements run.
struct Rows<'a> {
    grants: Vec<&'a GrantRecord>,
    codes: Vec<&'a CodeRecord>,
    access: Vec<&'a AccessTokenRecord>,
    refresh: Vec<&'a RefreshTokenRecord>,
    /// Each grant a refresh token keeps alive, until the latest of its tokens expires.
    extend: BTreeMap<Cow<'a, str>, i64>,
    sessions: Vec<&'a SessionRecord>,
    pendings: Vec<&'a PendingAuthorization>,
    /// Each (session, client) once, as the last write of the group left it: one upsert may
    /// not touch a row twice.
    session_clients: BTreeMap<SessionClientKey<'a>, (i64, i64)>,
    pendings_gone: Vec<&'a [u8]>,
}

impl<'a> Rows<'a> {
    fn of(writes: &[&'a Write]) -> Rows<'a> {
        let mut rows = Rows {
            grants: Vec::new(),
            codes: Vec::new(),
            access: Vec::new(),
            refresh: Vec::new(),
            extend: BTreeMap::new(),
            sessions: Vec::new(),
            pendings: Vec::new(),
            session_clients: BTreeMap::new(),
            pendings_gone: Vec::new(),
        };
        for write in writes {
            match write {
                Write::Session(s) => rows.sessions.push(s),
                Write::Pending(p) => rows.pendings.push(p),
                Write::SessionClient(c) => rows.session_client(c),
                Write::PendingGone(id_hash) => rows.pendings_gone.push(id_hash),
                Write::CodeIssued(_, _, c, id_hash) => {
                    rows.session_client(c);
                    rows.pendings_gone.push(id_hash);
                }
                _ => {}
            }
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

    fn session_client(&mut self, c: &'a SessionClient) {
        let key = (&c.session_hash[..], text(&c.client_id));
        self.session_clients.insert(key, (c.user_id, c.expires_at));
    }

    fn statements(&self) -> usize {
        [
            !self.grants.is_empty(),
            !self.codes.is_empty(),
            !self.access.is_empty(),
            !self.refresh.is_empty(),
            !self.extend.is_empty(),
            !self.sessions.is_empty(),
            !self.pendings.is_empty(),
            !self.session_clients.is_empty(),
            !self.pendings_gone.is_empty(),
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
        self.insert_browser_rows(conn).await
    }

    /// The rows of logins in a browser: sessions, the clients they signed in to, and the
    /// pending authorizations started and ended.
    async fn insert_browser_rows(&self, conn: &mut PgConnection) -> StoreResult<()> {
        let (s, p) = (&self.sessions, &self.pendings);
        if !s.is_empty() {
            sqlx::query(INSERT_SESSIONS)
                .bind(column(s, |s| s.id_hash.as_slice()))
                .bind(column(s, |s| s.user_id))
                .bind(column(s, |s| s.auth_time))
                .bind(column(s, |s| text(&s.amr)))
                .bind(column(s, |s| s.created_at))
                .bind(column(s, |s| s.expires_at))
                .bind(column(s, |s| opt_text(&s.device)))
                .bind(column(s, |s| opt_text(&s.place)))
                .bind(column(s, |s| s.last_used_at))
                .execute(&mut *conn)
                .await?;
        }
        if !p.is_empty() {
            sqlx::query(INSERT_PENDINGS)
                .bind(column(p, |p| p.id_hash.as_slice()))
                .bind(column(p, |p| text(&p.client_id)))
                .bind(column(p, |p| text(&p.request)))
                .bind(column(p, |p| p.created_at))
                .bind(column(p, |p| p.expires_at))
                .execute(&mut *conn)
                .await?;
        }
        let c = &self.session_clients;
        if !c.is_empty() {
            sqlx::query(RECORD_SESSION_CLIENTS)
                .bind(c.keys().map(|(s, _)| *s).collect::<Vec<&[u8]>>())
                .bind(c.keys().map(|(_, id)| id.as_ref()).collect::<Vec<&str>>())
                .bind(c.values().map(|(u, _)| *u).collect::<Vec<i64>>())
                .bind(c.values().map(|(_, e)| *e).collect::<Vec<i64>>())
                .execute(&mut *conn)
                .await?;
        }
        if !self.pendings_gone.is_empty() {
            sqlx::query(DELETE_PENDINGS)
                .bind(&self.pendings_gone)
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }
}
