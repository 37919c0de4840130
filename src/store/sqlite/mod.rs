//! The embedded default: one SQLite file in WAL mode, on rusqlite. Reads run on the caller's
//! thread, writes on one writer thread that commits them in groups (db.rs).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use super::job_lock::{JobLock, LocalJobLocks};
use super::{StoreError, StoreResult};

mod account;
mod admin_keys;
mod audit;
mod db;
mod flows;
mod migrate;
mod rows;
mod store;

/// SQLite serves one node: its rate counters live in that process's memory (`flow::limits`).
impl crate::store::RateCounterStore for SqliteStore {}

use db::SqliteDb;

#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<SqliteDb>,
    jobs: LocalJobLocks,
    /// For `sqlite::memory:`: the temporary file that stands in for memory, removed with the
    /// last clone of the store.
    _scratch: Option<Arc<ScratchFile>>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database file of a `sqlite://` URL. `sqlite::memory:`
    /// (or `?mode=memory`) opens a private database in a temporary file that lives as long as
    /// the store: the reader connections and the writer thread need one file to share.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        let (path, scratch) = match parse_url(url)? {
            Location::File(path) => {
                if let Some(parent) = path.parent()
                    && !parent.as_os_str().is_empty()
                {
                    std::fs::create_dir_all(parent).map_err(|e| {
                        StoreError::Internal(format!("cannot create {}: {e}", parent.display()))
                    })?;
                }
                (path, None)
            }
            Location::Memory => {
                let scratch = ScratchFile::new();
                (scratch.0.clone(), Some(Arc::new(scratch)))
            }
        };
        let db = tokio::task::spawn_blocking(move || SqliteDb::open(path))
            .await
            .map_err(|e| StoreError::Internal(format!("opening the database: {e}")))??;
        Ok(SqliteStore {
            db: Arc::new(db),
            jobs: LocalJobLocks::default(),
            _scratch: scratch,
        })
    }

    /// Applies the migrations of migrations/sqlite that the file lacks (migrate.rs).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let path = self.db.path().to_path_buf();
        tokio::task::spawn_blocking(move || migrate::run(&path))
            .await
            .map_err(|e| StoreError::Internal(format!("migration: {e}")))?
    }

    /// The journal mode and busy timeout (ms) the store's connections run with, for checks.
    pub async fn journal_settings(&self) -> StoreResult<(String, i64)> {
        self.db.read(|c| {
            let mode: String = c.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            let timeout: i64 = c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))?;
            Ok((mode, timeout))
        })
    }

    /// One SQLite file serves one node, so its run-once jobs need only a lock in the process.
    fn lock_job(&self, job: &str) -> Option<JobLock> {
        self.jobs.try_lock(job)
    }

    /// Deletes what one of `sql::Sweep`'s SQLite statements finds before `before`, each batch
    /// a write of its own: the writer thread takes the writes that requests queued meanwhile
    /// before the next batch, so none waits for more than one batch.
    async fn sweep(&self, statement: &'static str, before: i64) -> StoreResult<u64> {
        super::sweep_in_batches(super::sql::SWEEP_BATCH_SQLITE, |size| {
            self.db.write(move |c| {
                Ok(c.prepare_cached(statement)?
                    .execute(rusqlite::named_params! {"$1": before, "$2": size})?
                    as u64)
            })
        })
        .await
    }
}

#[derive(Debug, PartialEq)]
enum Location {
    File(PathBuf),
    Memory,
}

/// Reads the URL forms sqlx accepted, so that existing configurations keep working:
/// `sqlite://path`, `sqlite:path`, `sqlite::memory:`, a percent-encoded path, and the query
/// parameters `mode` (`rw`, `rwc`, `memory`) and `cache`. The file is always created if missing.
fn parse_url(url: &str) -> StoreResult<Location> {
    let bad = |why: String| StoreError::Internal(format!("bad sqlite url: {why}"));
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .ok_or_else(|| bad("it must start with sqlite:".into()))?;
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    let mut memory = database == ":memory:";
    for (key, value) in url::form_urlencoded::parse(params.as_bytes()) {
        match (&*key, &*value) {
            ("mode", "memory") => memory = true,
            ("mode", "rw" | "rwc") | ("cache", "private" | "shared") => {}
            _ => return Err(bad(format!("unsupported parameter {key}={value}"))),
        }
    }
    if memory {
        return Ok(Location::Memory);
    }
    if database.is_empty() {
        return Err(bad("no file name".into()));
    }
    let path = percent_encoding::percent_decode_str(database)
        .decode_utf8()
        .map_err(|e| bad(e.to_string()))?;
    Ok(Location::File(PathBuf::from(&*path)))
}

/// A database file in the temporary directory, removed (with its WAL) on drop.
struct ScratchFile(PathBuf);

impl ScratchFile {
    fn new() -> ScratchFile {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "telegram-oidc-{}-{}-{}.db",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed),
            hex::encode(crate::secrets::random_bytes::<8>())
        );
        ScratchFile(std::env::temp_dir().join(name))
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        for suffix in ["", "-wal", "-shm"] {
            let mut file = self.0.clone().into_os_string();
            file.push(suffix);
            let _ = std::fs::remove_file(file);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_read_as_sqlx_read_them() {
        assert_eq!(
            parse_url("sqlite:///var/lib/x/db.sqlite").unwrap(),
            Location::File("/var/lib/x/db.sqlite".into())
        );
        assert_eq!(
            parse_url("sqlite://data/oidc.db?mode=rwc").unwrap(),
            Location::File("data/oidc.db".into())
        );
        assert_eq!(
            parse_url("sqlite:a%3Fb.db").unwrap(),
            Location::File("a?b.db".into())
        );
        assert_eq!(parse_url("sqlite::memory:").unwrap(), Location::Memory);
        assert_eq!(
            parse_url("sqlite://x?mode=memory&cache=shared").unwrap(),
            Location::Memory
        );
        assert!(parse_url("postgres://x").is_err());
        assert!(parse_url("sqlite://x?vfs=unix-none").is_err());
    }

    /// Each batch of the sweep finds its rows through the expiry column's index, so a batch
    /// costs the rows it deletes, not a scan of the table; and each table is a rowid table
    /// (the statement deletes by `rowid`).
    #[tokio::test]
    async fn every_sweep_batch_walks_its_expiry_index() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let sweeps = super::super::sql::DELETE_EXPIRED
            .iter()
            .map(|(sweep, _)| sweep)
            .chain([&super::super::sql::SWEEP_AUDIT_LOG]);
        for sweep in sweeps {
            let plan: Vec<String> = store
                .db
                .read(|c| {
                    let mut explain = c.prepare(&format!("EXPLAIN QUERY PLAN {}", sweep.sqlite))?;
                    let bound = rusqlite::named_params! {"$1": 1_000_000_000, "$2": 1000};
                    let rows = explain.query_map(bound, |r| r.get::<_, String>(3))?;
                    Ok(rows.collect::<Result<_, _>>()?)
                })
                .unwrap();
            let plan = plan.join("; ");
            assert!(
                plan.contains("USING INTEGER PRIMARY KEY (rowid=?)"),
                "{}: {plan}",
                sweep.sqlite
            );
            assert!(
                plan.contains("USING COVERING INDEX") && plan.contains("<?)"),
                "{}: {plan}",
                sweep.sqlite
            );
            assert!(!plan.contains("SCAN"), "{}: {plan}", sweep.sqlite);
        }
    }

    #[tokio::test]
    async fn an_in_memory_store_works_and_leaves_no_file() {
        let store = SqliteStore::connect("sqlite::memory:").await.unwrap();
        store.migrate().await.unwrap();
        let path = store.db.path().to_path_buf();
        assert!(path.exists());
        let (mode, _) = store.journal_settings().await.unwrap();
        assert_eq!(mode, "wal");
        drop(store);
        assert!(!path.exists());
    }
}
