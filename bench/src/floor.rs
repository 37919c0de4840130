//! The database's own limit for the client_credentials workload: SQLite alone (no HTTP, no
//! async driver, no threads), on the server's schema and settings, running the statements one
//! opaque client_credentials request runs, in a loop on one thread.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use rusqlite::{Connection, params};

/// The server's migrations, in order.
fn migrate(conn: &Connection, dir: &Path) -> anyhow::Result<()> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    for file in files {
        conn.execute_batch(&std::fs::read_to_string(&file)?)
            .with_context(|| format!("applying {}", file.display()))?;
    }
    Ok(())
}

/// Requests per second SQLite could serve if it were the only cost: one client lookup and two
/// autocommit inserts (the grant, then the access token's digest) per request.
/// With `batch` > 1, that many requests share one transaction (group commit).
pub fn sqlite_client_credentials(
    migrations: &Path,
    work_dir: &Path,
    budget: Duration,
    batch: usize,
) -> anyhow::Result<f64> {
    let path = work_dir.join("floor.db");
    let _ = std::fs::remove_file(&path);
    let conn = Connection::open(&path)?;
    // The pragmas of the server's SQLite store.
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.busy_timeout(Duration::from_secs(10))?;
    migrate(&conn, migrations)?;
    conn.execute(
        "INSERT INTO clients (client_id, secret_hash, settings, created_at) VALUES ($1, $2, $3, $4)",
        params!["bench-client", vec![7u8; 32], r#"{"name":"bench"}"#, 1_800_000_000i64],
    )?;
    let rng = SystemRandom::new();
    let mut random = [0u8; 48];
    let one = |conn: &Connection, random: &mut [u8; 48]| -> anyhow::Result<()> {
        let mut find = conn.prepare_cached(
            "SELECT client_id, secret_hash, settings, created_at FROM clients WHERE client_id = $1",
        )?;
        let settings: String = find.query_row(params!["bench-client"], |r| r.get(2))?;
        std::hint::black_box(settings);
        let _ = rng.fill(random);
        let grant_id = hex::encode(&random[..16]);
        conn.prepare_cached(
            "INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )?
        .execute(params![
            grant_id,
            "bench-client",
            None::<i64>,
            "api:read",
            1_800_000_000i64,
            "client_credentials",
            None::<String>,
            1_800_000_000i64,
            None::<i64>,
            1_800_003_600i64
        ])?;
        conn.prepare_cached(
            "INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, scope, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )?
        .execute(params![
            &random[16..48],
            grant_id,
            "bench-client",
            None::<i64>,
            "api:read",
            1_800_000_000i64,
            1_800_003_600i64
        ])?;
        Ok(())
    };
    for _ in 0..200 {
        one(&conn, &mut random)?;
    }
    let batch = batch.max(1);
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        if batch > 1 {
            conn.execute_batch("BEGIN IMMEDIATE")?;
        }
        for _ in 0..batch {
            one(&conn, &mut random)?;
        }
        if batch > 1 {
            conn.execute_batch("COMMIT")?;
        }
        n += batch as u64;
    }
    let rate = n as f64 / start.elapsed().as_secs_f64();
    drop(conn);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(work_dir.join(format!("floor.db{suffix}")));
    }
    Ok(rate)
}
