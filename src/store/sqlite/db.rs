//! The engine under [`SqliteStore`](super::SqliteStore): a few read connections used on the
//! caller's thread, and one writer thread that commits in groups.
//!
//! Through a pool with a worker thread per connection (as sqlx runs SQLite), every statement is
//! a round trip to that thread (two thread wake-ups), and every write its own transaction: a
//! WAL append of each page it touched and a commit. On a two-core machine that made a
//! client_credentials request cost about 500 µs of CPU, most of it waking threads and writing
//! pages (bench/README.md). Here:
//!
//! - **Reads** run on the calling thread, on one of a few read connections (WAL readers never
//!   wait for the writer), in the few microseconds SQLite needs for a lookup by primary key.
//! - **Writes** go to one writer thread, which owns the only write connection and commits them
//!   in groups: it takes every write waiting, runs them one after the other in one
//!   transaction, commits once, then answers each caller. A caller hears of success only after
//!   the commit, so nothing is acknowledged that is not in the database; single-use updates
//!   (`used_at IS NULL`) and rotations run in order, on the one connection. If a write fails,
//!   the group is rolled back and every write in it runs again alone, so each write is all or
//!   nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::store::{StoreError, StoreResult};

/// Read connections; requests beyond this many at once wait for one (a lookup takes µs).
const READERS: usize = 4;
/// Most writes one transaction takes.
const MAX_BATCH: usize = 256;
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);
/// WAL length (4 KiB pages) past which the checkpointer starts it over (checkpoint_loop).
const WAL_RESTART_FRAMES: i64 = 4000;

pub struct SqliteDb {
    path: PathBuf,
    readers: Vec<Mutex<Option<Connection>>>,
    writer: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
    /// Reads running now, for the metrics.
    reads_running: AtomicU64,
    /// Writes handed to the writer thread and not yet answered, for the metrics.
    writes_waiting: AtomicU64,
}

/// Takes one from a count when dropped (also when the caller stops waiting).
struct Running<'a>(&'a AtomicU64);

impl<'a> Running<'a> {
    fn start(count: &'a AtomicU64) -> Running<'a> {
        count.fetch_add(1, Ordering::Relaxed);
        Running(count)
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Page cache of the writer, which keeps what it wrote warm (SQLite's default, 2 MB).
pub const WRITER_CACHE_KIB: i64 = 2048;
/// Page cache of the readers and the checkpointer: a reader's cache is emptied whenever another
/// connection has written since its last read, which under load is before nearly every read,
/// so a large one would only hold memory (bench/README.md, peak RSS).
const READER_CACHE_KIB: i64 = 256;

pub fn open_connection(path: &Path, cache_kib: i64) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // journal_mode=WAL is a property of the file, set once when the store opens it.
    conn.execute_batch("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
    // Negative: a size in KiB, not a number of pages.
    conn.pragma_update(None, "cache_size", -cache_kib)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        let error = store_error(e);
        crate::store::count_error(&error);
        error
    }
}

fn store_error(e: rusqlite::Error) -> StoreError {
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
            None => match open_connection(&path, WRITER_CACHE_KIB).and_then(|c| {
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
/// sleep in SQLite's busy handler). Connections of another store on the same file (another
/// process) keep SQLite's own automatic checkpoints.
fn checkpoint_loop(path: &Path, commits: mpsc::Receiver<()>, restart: &AtomicBool) {
    let mut conn: Option<Connection> = None;
    while commits.recv().is_ok() {
        // Commits that come meanwhile are covered by this checkpoint.
        std::thread::sleep(Duration::from_millis(20));
        while commits.try_recv().is_ok() {}
        let c = match conn.take() {
            Some(c) => c,
            None => match open_connection(path, READER_CACHE_KIB) {
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

impl SqliteDb {
    /// Opens the file, creating it if missing, in WAL mode; the first connection becomes a
    /// reader. No thread starts before the first write.
    pub fn open(path: PathBuf) -> StoreResult<SqliteDb> {
        let first = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| StoreError::Unavailable(format!("cannot open {}: {e}", path.display())))?;
        first.busy_timeout(BUSY_TIMEOUT)?;
        // WAL: readers never wait for the writer, and a commit appends instead of rewriting.
        let mode: String = first.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Internal(format!(
                "{} cannot run in WAL mode (journal_mode is {mode})",
                path.display()
            )));
        }
        drop(first);
        let db = SqliteDb {
            readers: (0..READERS).map(|_| Mutex::new(None)).collect(),
            writer: Mutex::new(None),
            reads_running: AtomicU64::new(0),
            writes_waiting: AtomicU64::new(0),
            path,
        };
        // Fails now, at startup, if the file cannot be used.
        db.read(|_| Ok(()))?;
        Ok(db)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read connections in use and free, and the writes waiting for the writer thread.
    pub fn pool_stats(&self) -> crate::metrics::PoolStats {
        let used = self
            .reads_running
            .load(Ordering::Relaxed)
            .min(READERS as u64);
        crate::metrics::PoolStats {
            idle: READERS as u64 - used,
            used,
            write_queue: Some(self.writes_waiting.load(Ordering::Relaxed)),
        }
    }

    /// Runs a read on a free read connection, on this thread.
    pub fn read<T>(&self, f: impl FnOnce(&Connection) -> StoreResult<T>) -> StoreResult<T> {
        let _running = Running::start(&self.reads_running);
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
            None => open_connection(&self.path, READER_CACHE_KIB)?,
        };
        let result = f(&conn);
        // A connection that lost the file is opened again next time.
        if !matches!(result, Err(StoreError::Unavailable(_))) {
            *guard = Some(conn);
        }
        result
    }

    /// Hands a write to the writer thread and waits until its group is committed.
    pub async fn write<T, F>(&self, work: F) -> StoreResult<T>
    where
        F: Fn(&Connection) -> StoreResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let _waiting = Running::start(&self.writes_waiting);
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
}
