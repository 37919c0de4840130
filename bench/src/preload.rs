//! `--preload N`: a database that already holds N tokens (half access, half refresh tokens),
//! with a grant and a code for every four of them, half of every kind expired, built once per
//! store and copied for every workload; and what a stored token costs in bytes.
//!
//! The rows are written by the database itself (a recursive CTE on SQLite, `generate_series`
//! on PostgreSQL) with random 32-byte keys, as the server's SHA-256 digests are, so every
//! index is as scattered as it would be after N real issuances.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::server::{self, ServerSpec, Store};

/// The PostgreSQL database the preloaded rows are built in; each workload's database is a
/// file copy of it.
pub const PG_TEMPLATE: &str = "telegram_oidc_preload";

/// The tables a token workload writes, with the key their rows are counted by.
pub const TABLES: [&str; 4] = ["access_tokens", "refresh_tokens", "codes", "grants"];

/// A preloaded database, ready to be copied.
pub struct Template {
    pub store: Store,
    /// SQLite: the database file.
    pub file: Option<PathBuf>,
    pub tokens: u64,
    pub built_in: Duration,
    pub sizes: Vec<TableSize>,
    /// The whole database: file size (SQLite) or `pg_database_size` (PostgreSQL), before and
    /// after the rows were added.
    pub db_bytes_empty: u64,
    pub db_bytes: u64,
}

/// One table and its indexes after the preload.
pub struct TableSize {
    pub table: &'static str,
    pub rows: u64,
    /// The table and all of its indexes.
    pub bytes: u64,
}

impl Template {
    /// Every byte the preload added to the database, per token.
    pub fn bytes_per_token(&self) -> f64 {
        self.db_bytes.saturating_sub(self.db_bytes_empty) as f64 / self.tokens.max(1) as f64
    }
}

/// Row counts of a preload of `tokens` tokens: access, refresh, codes, grants.
fn counts(tokens: u64) -> [u64; 4] {
    let access = tokens / 2;
    let refresh = tokens - access;
    [access, refresh, tokens / 4, tokens / 4]
}

fn now() -> i64 {
    crate::workloads::now_secs()
}

/// Builds the template for `store`: an empty database migrated by the server's own `migrate`,
/// then the rows.
pub fn build(
    spec: &ServerSpec,
    store: Store,
    tokens: u64,
    reuse: bool,
) -> anyhow::Result<Template> {
    let dir = spec.work_dir.join(format!("preload-{}", store_tag(store)));
    if reuse && let Some(kept) = kept(spec, store, tokens, &dir) {
        eprintln!("   reusing the preloaded database of an earlier run");
        return Ok(kept);
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let url = match store {
        Store::Sqlite => format!("sqlite://{}/template.db", dir.display()),
        Store::Postgres => {
            server::psql(
                &spec.pg,
                &format!("DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)"),
            )?;
            server::psql(&spec.pg, &format!("CREATE DATABASE {PG_TEMPLATE}"))?;
            format!("{}/{PG_TEMPLATE}", spec.pg)
        }
    };
    let config = server::write_config(&dir, 1, &url, &spec.keys_dir)?;
    let out = Command::new(&spec.bin)
        .arg("--config")
        .arg(&config)
        .arg("migrate")
        .env_remove("TGOIDC_CONFIG")
        .output()?;
    if !out.status.success() {
        bail!("migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let started = Instant::now();
    let template = match store {
        Store::Sqlite => build_sqlite(&dir.join("template.db"), tokens)?,
        Store::Postgres => build_postgres(&spec.pg, tokens)?,
    };
    let template = Template {
        built_in: started.elapsed(),
        ..template
    };
    let sizes: Vec<_> = template
        .sizes
        .iter()
        .map(|t| serde_json::json!([t.table, t.rows, t.bytes]))
        .collect();
    std::fs::write(
        dir.join("preloaded.json"),
        serde_json::json!({
            "tokens": tokens,
            "built_in_secs": template.built_in.as_secs_f64(),
            "db_bytes_empty": template.db_bytes_empty,
            "db_bytes": template.db_bytes,
            "sizes": sizes,
        })
        .to_string(),
    )?;
    Ok(template)
}

/// The preloaded database an earlier run with the same `--work-dir` left (`--reuse-preload`),
/// if it holds `tokens` tokens.
fn kept(spec: &ServerSpec, store: Store, tokens: u64, dir: &Path) -> Option<Template> {
    let v: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("preloaded.json")).ok()?).ok()?;
    if v["tokens"].as_u64()? != tokens {
        return None;
    }
    let file = dir.join("template.db");
    match store {
        Store::Sqlite if !file.exists() => return None,
        Store::Postgres
            if pg_number(
                &spec.pg,
                &format!("SELECT count(*) FROM pg_database WHERE datname = '{PG_TEMPLATE}'"),
            )
            .ok()?
                != 1 =>
        {
            return None;
        }
        _ => {}
    }
    let mut sizes = Vec::new();
    for entry in v["sizes"].as_array()? {
        let name = entry[0].as_str()?;
        sizes.push(TableSize {
            table: TABLES.into_iter().find(|t| *t == name)?,
            rows: entry[1].as_u64()?,
            bytes: entry[2].as_u64()?,
        });
    }
    Some(Template {
        store,
        file: (store == Store::Sqlite).then_some(file),
        tokens,
        built_in: Duration::from_secs_f64(v["built_in_secs"].as_f64()?),
        sizes,
        db_bytes_empty: v["db_bytes_empty"].as_u64()?,
        db_bytes: v["db_bytes"].as_u64()?,
    })
}

fn store_tag(store: Store) -> &'static str {
    match store {
        Store::Sqlite => "sqlite",
        Store::Postgres => "postgres",
    }
}

/// The statements that add the rows; `{G}` and friends filled in by the caller.
fn expiry_sql(now: i64) -> String {
    // Even rows live (one hour to a month ahead), odd rows expired (more than the hour codes
    // and grants are remembered after they expire, so a sweep removes all of them).
    format!(
        "CASE WHEN g % 2 = 0 THEN {now} + 3600 + (g * 7919) % 2592000 \
         ELSE {now} - 3601 - (g * 7919) % 86400 END"
    )
}

fn build_sqlite(path: &Path, tokens: u64) -> anyhow::Result<Template> {
    let db_bytes_empty = std::fs::metadata(path)?.len();
    let [access, refresh, codes, grants] = counts(tokens);
    let now = now();
    let exp = expiry_sql(now);
    let c = rusqlite::Connection::open(path)?;
    c.execute_batch(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -262144;",
    )?;
    let series = |n: u64| {
        format!("WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s LIMIT {n})")
    };
    let statements = [
        format!(
            "{} INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at) \
             SELECT lower(hex(randomblob(16))), 'preloaded-app', 1000000 + g % 500000, 'openid profile', {now} - 600, \
             'telegram', NULL, {now} - 600, NULL, {exp} FROM s",
            series(grants)
        ),
        format!(
            "{} INSERT INTO codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at, used_at) \
             SELECT randomblob(32), lower(hex(randomblob(16))), 'https://app.preload.test/callback', \
             lower(hex(randomblob(21))), {exp}, {now} - 500 FROM s",
            series(codes)
        ),
        format!(
            "{} INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, scope, created_at, expires_at) \
             SELECT randomblob(32), lower(hex(randomblob(16))), 'preloaded-app', 1000000 + g % 500000, \
             'openid profile', {now} - 600, {exp} FROM s",
            series(access)
        ),
        format!(
            "{} INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, used_at) \
             SELECT randomblob(32), lower(hex(randomblob(16))), {now} - 600, {exp}, \
             CASE WHEN g % 3 = 0 THEN {now} - 300 END FROM s",
            series(refresh)
        ),
    ];
    for statement in &statements {
        let tx = c.unchecked_transaction()?;
        tx.execute(statement, [])?;
        tx.commit()?;
    }
    c.execute_batch("ANALYZE; PRAGMA wal_checkpoint(TRUNCATE);")?;
    let mut sizes = Vec::new();
    for table in TABLES {
        let rows: i64 = c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0))?;
        // The table's b-tree and every index on it (dbstat: pages of each b-tree).
        let bytes: i64 = c.query_row(
            "SELECT COALESCE(SUM(d.pgsize), 0) FROM dbstat d JOIN sqlite_master m ON m.name = d.name \
             WHERE m.tbl_name = ?1",
            [table],
            |r| r.get(0),
        )?;
        sizes.push(TableSize {
            table,
            rows: rows as u64,
            bytes: bytes as u64,
        });
    }
    drop(c);
    Ok(Template {
        store: Store::Sqlite,
        file: Some(path.to_path_buf()),
        tokens,
        built_in: Duration::ZERO,
        sizes,
        db_bytes_empty,
        db_bytes: std::fs::metadata(path)?.len(),
    })
}

fn build_postgres(pg: &str, tokens: u64) -> anyhow::Result<Template> {
    let db_bytes_empty = pg_number(pg, &format!("SELECT pg_database_size('{PG_TEMPLATE}')"))?;
    let [access, refresh, codes, grants] = counts(tokens);
    let now = now();
    let exp = expiry_sql(now);
    // A random-looking 32-byte key per row (SHA-256 of the row number and a salt of this run),
    // as the server's token digests are.
    let salt = now;
    let statements = [
        format!(
            "INSERT INTO grants (id, client_id, user_id, scope, auth_time, amr, nonce, created_at, revoked_at, expires_at) \
             SELECT md5('g{salt}:' || g), 'preloaded-app', 1000000 + g % 500000, 'openid profile', {now} - 600, \
             'telegram', NULL, {now} - 600, NULL, {exp} FROM generate_series(1::bigint, {grants}) g"
        ),
        format!(
            "INSERT INTO codes (code_hash, grant_id, redirect_uri, code_challenge, expires_at, used_at) \
             SELECT sha256(('c{salt}:' || g)::bytea), md5('g{salt}:' || (g * 7 % {grants} + 1)), \
             'https://app.preload.test/callback', md5('v' || g) || 'abcdefghij', {exp}, {now} - 500 \
             FROM generate_series(1::bigint, {codes}) g"
        ),
        format!(
            "INSERT INTO access_tokens (token_hash, grant_id, client_id, user_id, scope, created_at, expires_at) \
             SELECT sha256(('a{salt}:' || g)::bytea), md5('g{salt}:' || (g % {grants} + 1)), 'preloaded-app', \
             1000000 + g % 500000, 'openid profile', {now} - 600, {exp} FROM generate_series(1::bigint, {access}) g"
        ),
        format!(
            "INSERT INTO refresh_tokens (token_hash, grant_id, created_at, expires_at, used_at) \
             SELECT sha256(('r{salt}:' || g)::bytea), md5('g{salt}:' || (g % {grants} + 1)), {now} - 600, {exp}, \
             CASE WHEN g % 3 = 0 THEN {now} - 300 END FROM generate_series(1::bigint, {refresh}) g"
        ),
    ];
    for statement in &statements {
        server::psql_in(pg, PG_TEMPLATE, statement)?;
    }
    // As a database looks once autovacuum has been through: hint bits set, statistics read.
    server::psql_in(pg, PG_TEMPLATE, "VACUUM ANALYZE")?;
    server::psql_in(pg, PG_TEMPLATE, "CHECKPOINT")?;
    let mut sizes = Vec::new();
    for table in TABLES {
        let rows = pg_number_in(pg, PG_TEMPLATE, &format!("SELECT count(*) FROM {table}"))?;
        let bytes = pg_number_in(
            pg,
            PG_TEMPLATE,
            &format!("SELECT pg_total_relation_size('{table}')"),
        )?;
        sizes.push(TableSize { table, rows, bytes });
    }
    Ok(Template {
        store: Store::Postgres,
        file: None,
        tokens,
        built_in: Duration::ZERO,
        sizes,
        db_bytes_empty,
        db_bytes: pg_number(pg, &format!("SELECT pg_database_size('{PG_TEMPLATE}')"))?,
    })
}

fn pg_number(pg: &str, sql: &str) -> anyhow::Result<u64> {
    pg_number_in(pg, "postgres", sql)
}

fn pg_number_in(pg: &str, database: &str, sql: &str) -> anyhow::Result<u64> {
    let text = server::psql_output(pg, database, sql)?;
    text.trim()
        .parse()
        .with_context(|| format!("not a number from {sql}: {text}"))
}

/// A workload's database as a copy of the template: the SQLite file copied into `dir`, or the
/// PostgreSQL database created from the template (a file copy, not a replay through the WAL).
pub fn copy(spec: &ServerSpec, template: &Template, dir: &Path) -> anyhow::Result<String> {
    match template.store {
        Store::Sqlite => {
            let from = template.file.as_ref().context("no template file")?;
            let to = dir.join("bench.db");
            std::fs::copy(from, &to)?;
            Ok(format!("sqlite://{}", to.display()))
        }
        Store::Postgres => {
            server::psql(
                &spec.pg,
                &format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    server::PG_DATABASE
                ),
            )?;
            server::psql(
                &spec.pg,
                &format!(
                    "CREATE DATABASE {} TEMPLATE {PG_TEMPLATE} STRATEGY FILE_COPY",
                    server::PG_DATABASE
                ),
            )?;
            Ok(format!("{}/{}", spec.pg, server::PG_DATABASE))
        }
    }
}

/// Expired rows still in the token tables of a workload's database (after a sweep's run).
pub fn expired_left(spec: &ServerSpec, store: Store, dir: &Path) -> anyhow::Result<u64> {
    let now = now();
    let mut total = 0;
    for table in TABLES {
        let sql = format!(
            "SELECT count(*) FROM {table} WHERE expires_at < {}",
            now - 3600
        );
        total += match store {
            Store::Sqlite => {
                let c = rusqlite::Connection::open(dir.join("bench.db"))?;
                let n: i64 = c.query_row(&sql, [], |r| r.get(0))?;
                n as u64
            }
            Store::Postgres => pg_number_in(&spec.pg, server::PG_DATABASE, &sql)?,
        };
    }
    Ok(total)
}

/// Drops the PostgreSQL template (the SQLite one goes with the work directory).
pub fn drop_template(spec: &ServerSpec, template: &Template) {
    if template.store == Store::Postgres {
        let _ = server::psql(
            &spec.pg,
            &format!("DROP DATABASE IF EXISTS {PG_TEMPLATE} WITH (FORCE)"),
        );
    }
}

/// "10M", "250k", "1234".
pub fn short(n: u64) -> String {
    if n >= 1_000_000 && n.is_multiple_of(1_000_000) {
        format!("{}M", n / 1_000_000)
    } else if n >= 1_000 && n.is_multiple_of(1_000) {
        format!("{}k", n / 1_000)
    } else {
        n.to_string()
    }
}
