//! The statements of every login and token request, on SQLite, called directly.
//!
//! Through sqlx every statement is a round trip to the connection's worker thread (two thread
//! wake-ups), and every write its own transaction: a WAL append of each page it touched and a
//! commit. On a two-core machine that made a client_credentials request cost about 500 µs of
//! CPU, most of it waking threads and writing pages (bench/README.md). Here:
//!
//! - **Reads** run on the calling thread, on one of a few read connections (WAL readers never
//!   wait for the writer), in the few microseconds SQLite needs for a lookup by primary key.
//! - **Writes** go to one writer thread, which owns the only write connection and commits them
//!   in groups: it takes every write waiting, runs them one after the other in one
//!   transaction, commits once, then answers each caller. A caller hears of success only after
//!   the commit, so nothing is acknowledged that is not in the database; single-use updates
//!   (`used_at IS NULL`) and rotations run as before, in order, on the one connection. If a
//!   write fails, the group is rolled back and every write in it runs again alone.
//!
//! The SQL is the text the sqlx implementation uses for PostgreSQL (`$n` parameters are named
//! parameters to SQLite); the other statements (administration, flows, cleanup) still go
//! through sqlx on the same file, and SQLite's locking keeps the two apart.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, named_params};

use super::sql::q;
use super::*;

/// Read connections; requests beyond this many at once wait for one (a lookup takes µs).
const READERS: usize = 4;
/// Most writes one transaction takes.
const MAX_BATCH: usize = 256;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// WAL length (4 KiB pages) past which the checkpointer starts it over (checkpoint_loop).
const WAL_RESTART_FRAMES: i64 = 4000;

pub struct SqliteDirect {
    path: PathBuf,
    readers: Vec<Mutex<Option<Connection>>>,
    writer: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
}

/// Page cache of the writer, which keeps what it wrote warm (SQLite's default, 2 MB).
const WRITER_CACHE_KIB: i64 = 2048;
/// Page cache of the readers and the checkpointer: a reader's cache is emptied whenever another
/// connection has written since its last read, which under load is before nearly every read,
/// so a large one would only hold memory (bench/README.md, peak RSS).
const READER_CACHE_KIB: i64 = 256;

fn open(path: &Path, cache_kib: i64) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // The settings of the sqlx pool (sqlite.rs); journal_mode=WAL is a property of the file.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    // Negative: a size in KiB, not a number of pages.
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        use rusqlite::ErrorCode;
        match &e {
            rusqlite::Error::SqliteFailure(f, message) => match f.code {
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => {
                    StoreError::Unavailable(e.to_string())
                }
                ErrorCode::ConstraintViolation
                    if matches!(
                        f.extended_code,
                        rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
                            | rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    ) =>
                {
                    StoreError::Conflict(message.clone().unwrap_or_else(|| e.to_string()))
                }
                ErrorCode::CannotOpen | ErrorCode::SystemIoFailure | ErrorCode::DiskFull => {
                    StoreError::Unavailable(e.to_string())
                }
                _ => StoreError::Internal(e.to_string()),
            },
            _ => StoreError::Internal(e.to_string()),
        }
    }
}

/// A write waiting for the writer thread.
trait Job: Send {
    /// Runs the write inside the group's transaction and keeps its outcome. The writer may run
    /// it again, alone, if the group is rolled back: the work only reads what it captured.
    fn run(&mut self, conn: &Connection) -> bool;
    /// Tells the caller: the kept outcome if `commit` succeeded, else the commit's error.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct WriteJob<F, T> {
    work: F,
    outcome: Option<StoreResult<T>>,
    reply: tokio::sync::oneshot::Sender<StoreResult<T>>,
}

impl<F, T> Job for WriteJob<F, T>
where
    F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
    T: Send + 'static,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let outcome = (self.work)(conn);
        let ok = outcome.is_ok();
        self.outcome = Some(outcome);
        ok
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = match (self.outcome, commit) {
            (Some(Err(e)), _) => Err(e),
            (_, Err(e)) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Ok(())) => Err(StoreError::Internal("a write was never run".into())),
        };
        let _ = self.reply.send(result);
    }
}

/// Runs `jobs` as one transaction; true if all of them ran and it committed.
fn run_group(conn: &Connection, jobs: &mut [Box<dyn Job>]) -> Result<bool, StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let all_ran = jobs.iter_mut().all(|job| job.run(conn));
    if all_ran && conn.execute_batch("COMMIT").is_ok() {
        return Ok(true);
    }
    let _ = conn.execute_batch("ROLLBACK");
    Ok(false)
}

/// The writer thread: takes what is waiting, up to [`MAX_BATCH`], as one transaction. Writes
/// run one after the other, in the order they came, so a single-use update sees every write
/// before it. No savepoint per write (SQLite would copy every page a write touches): if one
/// write fails, or the commit does, the group is rolled back and each write runs again in a
/// transaction of its own, so each caller gets the outcome of its own write alone.
fn writer_loop(path: PathBuf, jobs: mpsc::Receiver<Box<dyn Job>>) {
    let mut conn: Option<Connection> = None;
    // Told of each commit; ends when this thread does.
    let (committed, commits) = mpsc::sync_channel::<()>(1);
    let restart = Arc::new(AtomicBool::new(false));
    let checkpoint_path = path.clone();
    let wanted = restart.clone();
    let _ = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || checkpoint_loop(&checkpoint_path, commits, &wanted));
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let c = match conn.take() {
            Some(c) => c,
            None => match open(&path, WRITER_CACHE_KIB).and_then(|c| {
                // Checkpoints are the other thread's work (checkpoint_loop).
                c.pragma_update(None, "wal_autocheckpoint", 0)?;
                Ok(c)
            }) {
                Ok(c) => c,
                Err(e) => {
                    let message = e.to_string();
                    for job in batch {
                        job.finish(Err(StoreError::Unavailable(message.clone())));
                    }
                    continue;
                }
            },
        };
        let grouped = batch.len() > 1;
        match run_group(&c, &mut batch) {
            Ok(true) => {
                for job in batch {
                    job.finish(Ok(()));
                }
                let _ = committed.try_send(());
                if restart.swap(false, Ordering::Relaxed)
                    && let Err(e) = c.query_row("PRAGMA wal_checkpoint(RESTART)", [], |_| Ok(()))
                {
                    tracing::warn!(error = %e, "checkpoint failed");
                }
            }
            Ok(false) if grouped => {
                for mut job in batch {
                    let alone = run_group(&c, std::slice::from_mut(&mut job));
                    job.finish(match alone {
                        Ok(true) => Ok(()),
                        Ok(false) => Err(StoreError::Unavailable("the commit failed".into())),
                        Err(e) => Err(e),
                    });
                }
            }
            // One write alone: its own outcome (an error), or the commit's.
            Ok(false) => {
                for job in batch {
                    job.finish(Err(StoreError::Unavailable("the commit failed".into())));
                }
            }
            Err(e) => {
                let message = e.to_string();
                for job in batch {
                    job.finish(Err(StoreError::Unavailable(message.clone())));
                }
                // A connection that cannot begin is opened again for the next group.
                continue;
            }
        }
        conn = Some(c);
    }
}

/// Copies the WAL back into the database file after commits, on its own thread: done by the
/// writer after its commits (SQLite's default), a checkpoint and its fsync held up every
/// write waiting behind it. PASSIVE never waits for readers or the writer; what it cannot copy
/// yet it copies next time. Under a steady stream of writes, though, PASSIVE never catches up
/// with the end of the WAL, which then is never started over and grows without end (127 MB in
/// eight seconds of client_credentials; every write then lengthened the file). So once the WAL
/// holds more than [`WAL_RESTART_FRAMES`], the writer itself, between two groups, runs a
/// RESTART checkpoint: it copies the little PASSIVE has not copied yet and has the next write
/// start the WAL over from its beginning (run from this thread instead, it made the writer
/// sleep in SQLite's busy handler). Other connections (the sqlx pool) keep SQLite's own
/// automatic checkpoints.
fn checkpoint_loop(path: &Path, commits: mpsc::Receiver<()>, restart: &AtomicBool) {
    let mut conn: Option<Connection> = None;
    while commits.recv().is_ok() {
        // Commits that come meanwhile are covered by this checkpoint.
        std::thread::sleep(Duration::from_millis(20));
        while commits.try_recv().is_ok() {}
        let c = match conn.take() {
            Some(c) => c,
            None => match open(path, READER_CACHE_KIB) {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot open the database to checkpoint it");
                    continue;
                }
            },
        };
        // (busy, frames in the WAL, frames copied)
        let passive = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1));
        match passive {
            Ok(frames) => {
                if frames > WAL_RESTART_FRAMES {
                    restart.store(true, Ordering::Relaxed);
                }
                conn = Some(c);
            }
            Err(e) => tracing::warn!(error = %e, "checkpoint failed"),
        }
    }
}

impl SqliteDirect {
    pub fn new(path: PathBuf) -> SqliteDirect {
        SqliteDirect {
            path,
            readers: (0..READERS).map(|_| Mutex::new(None)).collect(),
            writer: Mutex::new(None),
        }
    }

    /// Runs a read on a free read connection, on this thread.
    fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let mut slot = None;
        for reader in &self.readers {
            if let Ok(guard) = reader.try_lock() {
                slot = Some(guard);
                break;
            }
        }
        let mut guard = match slot {
            Some(guard) => guard,
            None => self.readers[0]
                .lock()
                .map_err(|_| StoreError::Internal("read connection poisoned".into()))?,
        };
        let conn = match guard.take() {
            Some(conn) => conn,
            None => open(&self.path, READER_CACHE_KIB)?,
        };
        let result = f(&conn);
        // A connection that lost the file is opened again next time.
        if !matches!(result, Err(StoreError::Unavailable(_))) {
            *guard = Some(conn);
        }
        result
    }

    /// Hands a write to the writer thread and waits until its group is committed.
    async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Box<dyn Job> = Box::new(WriteJob {
            work,
            outcome: None,
            reply,
        });
        {
            let mut writer = self
                .writer
                .lock()
                .map_err(|_| StoreError::Internal("writer poisoned".into()))?;
            let sender = match writer.as_ref() {
                Some(sender) => sender.clone(),
                None => {
                    let (sender, receiver) = mpsc::channel();
                    let path = self.path.clone();
                    std::thread::Builder::new()
                        .name("sqlite-writer".into())
                        .spawn(move || writer_loop(path, receiver))
                        .map_err(|e| StoreError::Internal(format!("writer thread: {e}")))?;
                    *writer = Some(sender.clone());
                    sender
                }
            };
            if let Err(mpsc::SendError(job)) = sender.send(job) {
                *writer = None;
                job.finish(Err(StoreError::Unavailable(
                    "the writer thread stopped".into(),
                )));
            }
        }
        answer
            .await
            .map_err(|_| StoreError::Internal("the writer thread dropped a write".into()))?
    }

    // Reads.

    pub fn get_client(&self, client_id: &str) -> StoreResult<Option<ClientRecord>> {
        self.read(|c| {
            let row = c
                .prepare_cached(q::GET_CLIENT)?
                .query_row(named_params! {"$1": client_id}, |r| {
                    Ok((
                        r.get::<_, String>("client_id")?,
                        r.get::<_, Option<Vec<u8>>>("secret_hash")?,
                        r.get::<_, String>("settings")?,
                        r.get::<_, i64>("created_at")?,
                    ))
                })
                .optional()?;
            let Some((client_id, secret_hash, settings, created_at)) = row else {
                return Ok(None);
            };
            let settings: ClientSettings = serde_json::from_str(&settings)
                .map_err(|e| StoreError::Internal(format!("client settings: {e}")))?;
            Ok(Some(ClientRecord {
                client_id,
                secret_hash,
                settings,
                created_at,
            }))
        })
    }

    pub fn get_user(&self, telegram_id: i64) -> StoreResult<Option<UserRecord>> {
        self.read(|c| {
            Ok(c.prepare_cached(q::GET_USER)?
                .query_row(named_params! {"$1": telegram_id}, |r| {
                    Ok(UserRecord {
                        telegram_id: r.get("telegram_id")?,
                        first_name: r.get("first_name")?,
                        last_name: r.get("last_name")?,
                        username: r.get("username")?,
                        photo_url: r.get("photo_url")?,
                        language_code: r.get("language_code")?,
                        is_premium: r.get("is_premium")?,
                        phone_number: r.get("phone_number")?,
                        created_at: r.get("created_at")?,
                        updated_at: r.get("updated_at")?,
                    })
                })
                .optional()?)
        })
    }

    pub fn get_session(&self, id_hash: &[u8], now: i64) -> StoreResult<Option<SessionRecord>> {
        self.read(|c| {
            Ok(c.prepare_cached(q::GET_SESSION)?
                .query_row(named_params! {"$1": id_hash, "$2": now}, |r| {
                    Ok(SessionRecord {
                        id_hash: r.get("id_hash")?,
                        user_id: r.get("user_id")?,
                        auth_time: r.get("auth_time")?,
                        amr: r.get("amr")?,
                        created_at: r.get("created_at")?,
                        expires_at: r.get("expires_at")?,
                    })
                })
                .optional()?)
        })
    }

    pub fn get_pending(
        &self,
        id_hash: &[u8],
        now: i64,
    ) -> StoreResult<Option<PendingAuthorization>> {
        self.read(|c| {
            Ok(c.prepare_cached(q::GET_PENDING)?
                .query_row(named_params! {"$1": id_hash, "$2": now}, |r| {
                    Ok(PendingAuthorization {
                        id_hash: r.get("id_hash")?,
                        client_id: r.get("client_id")?,
                        request: r.get("request")?,
                        created_at: r.get("created_at")?,
                        expires_at: r.get("expires_at")?,
                    })
                })
                .optional()?)
        })
    }

    pub fn get_consent(&self, user_id: i64, client_id: &str) -> StoreResult<Option<String>> {
        self.read(|c| {
            Ok(c.prepare_cached(q::GET_CONSENT)?
                .query_row(named_params! {"$1": user_id, "$2": client_id}, |r| {
                    r.get("scope")
                })
                .optional()?)
        })
    }

    pub fn get_grant(&self, id: &str) -> StoreResult<Option<GrantRecord>> {
        self.read(|c| {
            Ok(c.prepare_cached(q::GET_GRANT)?
                .query_row(named_params! {"$1": id}, grant_from_row)
                .optional()?)
        })
    }

    pub fn get_access_token(&self, token_hash: &[u8]) -> StoreResult<Option<AccessTokenState>> {
        self.read(|c| {
            Ok(c.prepare_cached(q::GET_ACCESS_TOKEN)?
                .query_row(named_params! {"$1": token_hash}, |r| {
                    let live_grant: Option<String> = r.get("live_grant")?;
                    let revoked_at: Option<i64> = r.get("revoked_at")?;
                    let token_revoked_at: Option<i64> = r.get("token_revoked_at")?;
                    Ok(AccessTokenState {
                        record: AccessTokenRecord {
                            token_hash: r.get("token_hash")?,
                            grant_id: r.get("grant_id")?,
                            client_id: r.get("client_id")?,
                            user_id: r.get("user_id")?,
                            scope: r.get("scope")?,
                            created_at: r.get("created_at")?,
                            expires_at: r.get("expires_at")?,
                        },
                        revoked: live_grant.is_none()
                            || revoked_at.is_some()
                            || token_revoked_at.is_some(),
                    })
                })
                .optional()?)
        })
    }

    pub fn get_refresh_token(&self, token_hash: &[u8]) -> StoreResult<Option<RefreshTokenState>> {
        self.read(|c| {
            Ok(c.prepare_cached(q::GET_REFRESH_TOKEN)?
                .query_row(named_params! {"$1": token_hash}, |r| {
                    let grant = grant_from_row(r)?;
                    let used_at: Option<i64> = r.get("used_at")?;
                    Ok(RefreshTokenState {
                        record: RefreshTokenRecord {
                            token_hash: r.get("token_hash")?,
                            grant_id: grant.id.clone(),
                            created_at: r.get("token_created_at")?,
                            expires_at: r.get("token_expires_at")?,
                        },
                        used: used_at.is_some(),
                        grant,
                    })
                })
                .optional()?)
        })
    }

    pub fn refresh_token_scope(
        &self,
        token_hash: &[u8],
        client_id: &str,
    ) -> StoreResult<Option<String>> {
        self.read(|c| {
            Ok(c.prepare_cached(q::REFRESH_TOKEN_SCOPE)?
                .query_row(named_params! {"$1": token_hash, "$2": client_id}, |r| {
                    r.get("scope")
                })
                .optional()?)
        })
    }

    // Writes.

    pub async fn upsert_user(&self, user: &UserRecord) -> StoreResult<()> {
        let u = user.clone();
        self.write(move |c| {
            c.prepare_cached(q::UPSERT_USER)?.execute(named_params! {
                "$1": u.telegram_id, "$2": u.first_name, "$3": u.last_name, "$4": u.username,
                "$5": u.photo_url, "$6": u.language_code, "$7": u.is_premium,
                "$8": u.phone_number, "$9": u.created_at, "$10": u.updated_at,
            })?;
            Ok(())
        })
        .await
    }

    pub async fn consume_proof(&self, proof_hash: &[u8], expires_at: i64) -> StoreResult<bool> {
        let hash = proof_hash.to_vec();
        self.write(move |c| {
            let n = c
                .prepare_cached(q::CONSUME_PROOF)?
                .execute(named_params! {"$1": hash, "$2": expires_at})?;
            Ok(n == 1)
        })
        .await
    }

    pub async fn create_session(&self, s: &SessionRecord) -> StoreResult<()> {
        let s = s.clone();
        self.write(move |c| {
            c.prepare_cached(q::CREATE_SESSION)?
                .execute(named_params! {
                    "$1": s.id_hash, "$2": s.user_id, "$3": s.auth_time, "$4": s.amr,
                    "$5": s.created_at, "$6": s.expires_at,
                })?;
            Ok(())
        })
        .await
    }

    pub async fn record_session_client(
        &self,
        session_hash: &[u8],
        client_id: &str,
        user_id: i64,
        expires_at: i64,
    ) -> StoreResult<()> {
        let (hash, client_id) = (session_hash.to_vec(), client_id.to_owned());
        self.write(move |c| {
            c.prepare_cached(q::RECORD_SESSION_CLIENT)?
                .execute(named_params! {
                    "$1": hash, "$2": client_id, "$3": user_id, "$4": expires_at,
                })?;
            Ok(())
        })
        .await
    }

    pub async fn create_pending(&self, p: &PendingAuthorization) -> StoreResult<()> {
        let p = p.clone();
        self.write(move |c| {
            c.prepare_cached(q::CREATE_PENDING)?
                .execute(named_params! {
                    "$1": p.id_hash, "$2": p.client_id, "$3": p.request, "$4": p.created_at,
                    "$5": p.expires_at,
                })?;
            Ok(())
        })
        .await
    }

    pub async fn update_pending(&self, id_hash: &[u8], request: &str) -> StoreResult<bool> {
        let (hash, request) = (id_hash.to_vec(), request.to_owned());
        self.write(move |c| {
            let n = c
                .prepare_cached(q::UPDATE_PENDING)?
                .execute(named_params! {"$1": hash, "$2": request})?;
            Ok(n == 1)
        })
        .await
    }

    pub async fn delete_pending(&self, id_hash: &[u8]) -> StoreResult<()> {
        let hash = id_hash.to_vec();
        self.write(move |c| {
            c.prepare_cached(q::DELETE_PENDING)?
                .execute(named_params! {"$1": hash})?;
            Ok(())
        })
        .await
    }

    pub async fn create_grant_with_code(
        &self,
        grant: &GrantRecord,
        code: &CodeRecord,
    ) -> StoreResult<()> {
        let (g, code) = (grant.clone(), code.clone());
        self.write(move |c| {
            insert_grant(c, &g)?;
            c.prepare_cached(q::INSERT_CODE)?.execute(named_params! {
                "$1": code.code_hash, "$2": code.grant_id, "$3": code.redirect_uri,
                "$4": code.code_challenge, "$5": code.expires_at,
            })?;
            Ok(())
        })
        .await
    }

    pub async fn create_grant(&self, grant: &GrantRecord) -> StoreResult<()> {
        let g = grant.clone();
        self.write(move |c| insert_grant(c, &g)).await
    }

    pub async fn redeem_code(
        &self,
        code_hash: &[u8],
        client_id: &str,
        now: i64,
    ) -> StoreResult<RedeemOutcome> {
        let (hash, client_id) = (code_hash.to_vec(), client_id.to_owned());
        self.write(move |c| {
            let redeemed = c
                .prepare_cached(q::REDEEM_CODE)?
                .query_row(
                    named_params! {"$1": hash, "$2": now, "$3": client_id},
                    |r| {
                        Ok(CodeRecord {
                            code_hash: r.get("code_hash")?,
                            grant_id: r.get("grant_id")?,
                            redirect_uri: r.get("redirect_uri")?,
                            code_challenge: r.get("code_challenge")?,
                            expires_at: r.get("expires_at")?,
                        })
                    },
                )
                .optional()?;
            if let Some(code) = redeemed {
                return Ok(RedeemOutcome::Redeemed(code));
            }
            let used: Option<String> = c
                .prepare_cached(q::CODE_ALREADY_USED)?
                .query_row(named_params! {"$1": hash, "$2": client_id}, |r| {
                    r.get("grant_id")
                })
                .optional()?;
            Ok(match used {
                Some(grant_id) => RedeemOutcome::AlreadyUsed { grant_id },
                None => RedeemOutcome::NotFound,
            })
        })
        .await
    }

    pub async fn revoke_grant(&self, grant_id: &str, now: i64) -> StoreResult<()> {
        let grant_id = grant_id.to_owned();
        self.write(move |c| {
            c.prepare_cached(q::REVOKE_GRANT)?
                .execute(named_params! {"$1": grant_id, "$2": now})?;
            Ok(())
        })
        .await
    }

    pub async fn store_tokens(
        &self,
        access: Option<&AccessTokenRecord>,
        refresh: Option<&RefreshTokenRecord>,
    ) -> StoreResult<()> {
        let (access, refresh) = (access.cloned(), refresh.cloned());
        self.write(move |c| {
            if let Some(a) = &access {
                insert_access_token(c, a)?;
            }
            if let Some(r) = &refresh {
                insert_refresh_token(c, r, &r.grant_id)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn rotate_refresh_token_issuing(
        &self,
        old_hash: &[u8],
        client_id: &str,
        successor: &RefreshTokenRecord,
        access: Option<&AccessTokenRecord>,
        now: i64,
    ) -> StoreResult<RotateOutcome> {
        let (old, client_id) = (old_hash.to_vec(), client_id.to_owned());
        let (successor, access) = (successor.clone(), access.cloned());
        // One transaction holds it all: an error rolls back the use of the old token too.
        self.write(move |c| {
            let used: Option<String> = c
                .prepare_cached(q::USE_REFRESH_TOKEN)?
                .query_row(named_params! {"$1": old, "$2": now, "$3": client_id}, |r| {
                    r.get("grant_id")
                })
                .optional()?;
            let Some(grant_id) = used else {
                let seen: Option<(String, Option<i64>)> = c
                    .prepare_cached(q::REFRESH_TOKEN_SEEN)?
                    .query_row(named_params! {"$1": old, "$2": client_id}, |r| {
                        Ok((r.get("grant_id")?, r.get("used_at")?))
                    })
                    .optional()?;
                return Ok(match seen {
                    Some((grant_id, Some(_))) => RotateOutcome::Replayed { grant_id },
                    _ => RotateOutcome::Invalid,
                });
            };
            let grant = c
                .prepare_cached(q::GET_LIVE_GRANT)?
                .query_row(named_params! {"$1": grant_id}, grant_from_row)
                .optional()?;
            let Some(grant) = grant else {
                return Ok(RotateOutcome::Invalid);
            };
            if let Some(a) = &access {
                if a.grant_id != grant_id {
                    return Err(StoreError::Internal("access token of another grant".into()));
                }
                insert_access_token(c, a)?;
            }
            insert_refresh_token(c, &successor, &grant_id)?;
            Ok(RotateOutcome::Rotated(grant))
        })
        .await
    }
}

fn grant_from_row(r: &Row<'_>) -> rusqlite::Result<GrantRecord> {
    Ok(GrantRecord {
        id: r.get("id")?,
        client_id: r.get("client_id")?,
        user_id: r.get("user_id")?,
        scope: r.get("scope")?,
        auth_time: r.get("auth_time")?,
        amr: r.get("amr")?,
        nonce: r.get("nonce")?,
        created_at: r.get("created_at")?,
        revoked_at: r.get("revoked_at")?,
        expires_at: r.get("expires_at")?,
    })
}

fn insert_grant(c: &Connection, g: &GrantRecord) -> StoreResult<()> {
    c.prepare_cached(q::INSERT_GRANT)?.execute(named_params! {
        "$1": g.id, "$2": g.client_id, "$3": g.user_id, "$4": g.scope, "$5": g.auth_time,
        "$6": g.amr, "$7": g.nonce, "$8": g.created_at, "$9": g.revoked_at, "$10": g.expires_at,
    })?;
    Ok(())
}

fn insert_access_token(c: &Connection, a: &AccessTokenRecord) -> StoreResult<()> {
    c.prepare_cached(q::INSERT_ACCESS_TOKEN)?
        .execute(named_params! {
            "$1": a.token_hash, "$2": a.grant_id, "$3": a.client_id, "$4": a.user_id,
            "$5": a.scope, "$6": a.created_at, "$7": a.expires_at,
        })?;
    Ok(())
}

/// The refresh token, and its grant kept alive as long as the token.
fn insert_refresh_token(c: &Connection, r: &RefreshTokenRecord, grant_id: &str) -> StoreResult<()> {
    c.prepare_cached(q::INSERT_REFRESH_TOKEN)?
        .execute(named_params! {
            "$1": r.token_hash, "$2": grant_id, "$3": r.created_at, "$4": r.expires_at,
        })?;
    c.prepare_cached(q::EXTEND_GRANT)?
        .execute(named_params! {"$1": grant_id, "$2": r.expires_at})?;
    Ok(())
}
