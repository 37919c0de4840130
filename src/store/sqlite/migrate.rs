//! The migrations of migrations/sqlite, applied in order, each in its own transaction.
//!
//! They are recorded the way sqlx's migrator recorded them before this store ran on rusqlite:
//! in `_sqlx_migrations`, with the SHA-384 of the file as checksum. A database migrated by an
//! earlier release is therefore taken as it is, and one migrated here could still be opened by
//! that release. As sqlx did, a migration whose file changed after it was applied, a migration
//! left half done, or one this build does not know stops the start with a message.

use std::path::Path;
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{StoreError, StoreResult};

/// (version, file name), in order. A test checks this list against the directory.
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "0001_init.sql",
        include_str!("../../../migrations/sqlite/0001_init.sql"),
    ),
    (
        2,
        "0002_upstream_logins.sql",
        include_str!("../../../migrations/sqlite/0002_upstream_logins.sql"),
    ),
    (
        3,
        "0003_bot_logins_and_device_codes.sql",
        include_str!("../../../migrations/sqlite/0003_bot_logins_and_device_codes.sql"),
    ),
    (
        5,
        "0005_access_token_revocation.sql",
        include_str!("../../../migrations/sqlite/0005_access_token_revocation.sql"),
    ),
    (
        6,
        "0006_session_clients.sql",
        include_str!("../../../migrations/sqlite/0006_session_clients.sql"),
    ),
    (
        7,
        "0007_user_groups.sql",
        include_str!("../../../migrations/sqlite/0007_user_groups.sql"),
    ),
    (
        8,
        "0008_account.sql",
        include_str!("../../../migrations/sqlite/0008_account.sql"),
    ),
    (
        9,
        "0009_number_matching.sql",
        include_str!("../../../migrations/sqlite/0009_number_matching.sql"),
    ),
    (
        10,
        "0010_audit_log.sql",
        include_str!("../../../migrations/sqlite/0010_audit_log.sql"),
    ),
    (
        11,
        "0011_ciba.sql",
        include_str!("../../../migrations/sqlite/0011_ciba.sql"),
    ),
    (
        13,
        "0013_admin_keys.sql",
        include_str!("../../../migrations/sqlite/0013_admin_keys.sql"),
    ),
    (
        14,
        "0014_admin_sessions.sql",
        include_str!("../../../migrations/sqlite/0014_admin_sessions.sql"),
    ),
];

/// The table sqlx's migrator keeps, created as it creates it.
const CREATE_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    success BOOLEAN NOT NULL,
    checksum BLOB NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// sqlx's description of a migration: the file name without version and `.sql`, with spaces
/// for underscores.
fn description(file: &str) -> String {
    let stem = file.strip_suffix(".sql").unwrap_or(file);
    let rest = stem.split_once('_').map_or(stem, |(_, rest)| rest);
    rest.replace('_', " ")
}

fn checksum(sql: &str) -> Vec<u8> {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA384, sql.as_bytes())
        .as_ref()
        .to_vec()
}

fn failed(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(format!("migration failed: {e}"))
}

pub fn run(path: &Path) -> StoreResult<()> {
    let conn = super::db::open_connection(path, super::db::WRITER_CACHE_KIB).map_err(failed)?;
    run_on(&conn)
}

fn run_on(conn: &Connection) -> StoreResult<()> {
    conn.execute_batch(CREATE_TABLE).map_err(failed)?;
    let dirty: Option<i64> = conn
        .query_row(
            "SELECT version FROM _sqlx_migrations WHERE success = false ORDER BY version LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()
        .map_err(failed)?;
    if let Some(version) = dirty {
        return Err(failed(format!(
            "migration {version} was left partly applied; repair the database by hand"
        )));
    }
    for (version, file, sql) in MIGRATIONS {
        // BEGIN IMMEDIATE: a second process migrating the same file waits here, then sees
        // the migration done.
        conn.execute_batch("BEGIN IMMEDIATE").map_err(failed)?;
        let outcome = apply(conn, *version, file, sql);
        let end = if outcome.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        let ended = conn.execute_batch(end).map_err(failed);
        outcome?;
        ended?;
    }
    let known: Vec<i64> = MIGRATIONS.iter().map(|m| m.0).collect();
    let mut applied = conn
        .prepare("SELECT version FROM _sqlx_migrations ORDER BY version")
        .map_err(failed)?;
    let versions = applied
        .query_map([], |r| r.get::<_, i64>(0))
        .map_err(failed)?
        .collect::<Result<Vec<i64>, _>>()
        .map_err(failed)?;
    if let Some(unknown) = versions.iter().find(|v| !known.contains(v)) {
        return Err(failed(format!(
            "the database has migration {unknown}, which this build does not know: it was \
             migrated by a newer release"
        )));
    }
    Ok(())
}

/// Applies one migration unless it is recorded; inside the caller's transaction.
fn apply(conn: &Connection, version: i64, file: &str, sql: &str) -> StoreResult<()> {
    let recorded: Option<Vec<u8>> = conn
        .query_row(
            "SELECT checksum FROM _sqlx_migrations WHERE version = ?1",
            [version],
            |r| r.get(0),
        )
        .optional()
        .map_err(failed)?;
    let sum = checksum(sql);
    if let Some(recorded) = recorded {
        if recorded != sum {
            return Err(failed(format!(
                "migration {file} was changed after it was applied"
            )));
        }
        return Ok(());
    }
    let started = Instant::now();
    conn.execute_batch(sql)
        .map_err(|e| failed(format!("{file}: {e}")))?;
    let nanos = i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX);
    conn.execute(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (?1, ?2, TRUE, ?3, ?4)",
        params![version, description(file), sum, nanos],
    )
    .map_err(failed)?;
    tracing::info!(migration = file, "applied");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What sqlx 0.8's migrator recorded in `_sqlx_migrations` for these files (read from a
    /// database it had migrated): version, description, SHA-384 of the file.
    const RECORDED_BY_SQLX: &[(i64, &str, &str)] = &[
        (
            1,
            "init",
            "5ead0c4420b66b9a9ee7e0175ad8b78190136fa98f4c162e98aaec2b9329feb405590f37b91810bbcdd6b628e4f226eb",
        ),
        (
            2,
            "upstream logins",
            "ab1e2dbf062f2781dca68a17bb75e83c0086e40d389c410caa4d547ceca133a1469c63e0e47048d0c3f6b365588355c5",
        ),
        (
            3,
            "bot logins and device codes",
            "73d49dd1d7093335af1aa9fa242aa152f381bab35959af2e69034798082cefeda8b66b10a27ad12145c48ef05572f33d",
        ),
        (
            5,
            "access token revocation",
            "3977e60cc0fa4c14f1534623fca4e7ae8dda657aafed2d6f5c7e9474ed82f212b7f4e30ec213aaf7d75557dccaa2d90b",
        ),
        (
            6,
            "session clients",
            "589016bb7b005d7c74df7a0e49f4f7684db6dbe6b12e98a8a8a2ad388a05f661cb96e61991d96634d55a922b29fbb1ee",
        ),
        (
            7,
            "user groups",
            "ed3d3389eafb8a3426c0b7317bc390314a7bc848a9d75844e6060abb80d6304ad69f64abcc45e00d868a479dcd53a0ba",
        ),
        (
            8,
            "account",
            "1769f2b52004fdeaff76289f7eba7be4aae1b3e60bf401a5701ca050336a30449149a65ad681a247d1deeefc551e14dd",
        ),
        (
            9,
            "number matching",
            "ce01d60633b24dda17e68f777b73bef69e3437f8f7fbc818e4fdf4aab27a383d3a74791463a97f41d93ed25fb841736f",
        ),
        (
            10,
            "audit log",
            "8463be02e2801f0c1387b9684efa2d29e04dee479fdf4d5515dc4e9198227915e08ac6ec6d8ad71c81e87594f5680696",
        ),
        (
            11,
            "ciba",
            "724b41ce1f43eb93e5b486406f96c28c8521c2e804620436311486287651f767514853c73ae23b1f340c53b57c8089ec",
        ),
        (
            13,
            "admin keys",
            "af5798c7ecca1da6dfd3480366009e81134b58f188683c734b378113031da9dddbd808f786155d244a4c67a0511696fa",
        ),
        (
            14,
            "admin sessions",
            "2f78c70e0861a413bb2f5019bfe73c4b4d4d61df922ffa4cf44fb109816febba52fa372d2b61a1ef6250b7fc3a22c3fa",
        ),
    ];

    #[test]
    fn the_list_names_every_file_of_the_directory_in_order() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/migrations/sqlite");
        let mut files: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|f| f.ends_with(".sql"))
            .collect();
        files.sort();
        let listed: Vec<&str> = MIGRATIONS.iter().map(|m| m.1).collect();
        assert_eq!(files, listed);
        for (version, file, sql) in MIGRATIONS {
            let number: i64 = file.split('_').next().unwrap().parse().unwrap();
            assert_eq!(number, *version, "{file}");
            let on_disk = std::fs::read_to_string(format!("{dir}/{file}")).unwrap();
            assert_eq!(&on_disk, sql, "{file}");
        }
    }

    #[test]
    fn records_match_what_sqlx_recorded() {
        assert_eq!(RECORDED_BY_SQLX.len(), MIGRATIONS.len());
        for ((version, file, sql), (v, d, sum)) in MIGRATIONS.iter().zip(RECORDED_BY_SQLX) {
            assert_eq!(version, v);
            assert_eq!(description(file), *d);
            assert_eq!(hex::encode(checksum(sql)), *sum, "{file}");
        }
    }

    fn memory() -> Connection {
        Connection::open_in_memory().unwrap()
    }

    fn count(conn: &Connection, sql: &str) -> i64 {
        conn.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[test]
    fn a_database_migrated_by_sqlx_is_taken_as_it_is() {
        // The state sqlx's migrator left: the schema, and its rows in `_sqlx_migrations`.
        let conn = memory();
        conn.execute_batch(CREATE_TABLE).unwrap();
        for ((_, _, sql), (version, desc, sum)) in MIGRATIONS.iter().zip(RECORDED_BY_SQLX) {
            conn.execute_batch(sql).unwrap();
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, TRUE, ?3, 1234)",
                params![version, desc, hex::decode(sum).unwrap()],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO clients (client_id, settings, created_at) VALUES ('kept', '{}', 1)",
            [],
        )
        .unwrap();
        run_on(&conn).unwrap();
        run_on(&conn).unwrap();
        assert_eq!(
            count(&conn, "SELECT COUNT(*) FROM _sqlx_migrations"),
            MIGRATIONS.len() as i64
        );
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM clients"), 1);
    }

    #[test]
    fn a_fresh_database_is_recorded_as_sqlx_would_and_migrates_once() {
        let conn = memory();
        run_on(&conn).unwrap();
        run_on(&conn).unwrap();
        let mut rows = conn
            .prepare("SELECT version, description, checksum, success FROM _sqlx_migrations ORDER BY version")
            .unwrap();
        let rows: Vec<(i64, String, Vec<u8>, bool)> = rows
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows.len(), RECORDED_BY_SQLX.len());
        for (row, (version, desc, sum)) in rows.iter().zip(RECORDED_BY_SQLX) {
            assert_eq!(
                (row.0, row.1.as_str(), hex::encode(&row.2), row.3),
                (*version, *desc, sum.to_string(), true)
            );
        }
        assert_eq!(count(&conn, "SELECT COUNT(*) FROM session_clients"), 0);
    }

    #[test]
    fn a_changed_half_done_or_unknown_migration_stops_the_start() {
        let conn = memory();
        run_on(&conn).unwrap();
        conn.execute(
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 2",
            [],
        )
        .unwrap();
        assert!(run_on(&conn).unwrap_err().to_string().contains("changed"));

        let conn = memory();
        run_on(&conn).unwrap();
        conn.execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (99, 'future', TRUE, x'00', 0)",
            [],
        )
        .unwrap();
        assert!(run_on(&conn).unwrap_err().to_string().contains("newer"));

        let conn = memory();
        run_on(&conn).unwrap();
        conn.execute(
            "UPDATE _sqlx_migrations SET success = false WHERE version = 6",
            [],
        )
        .unwrap();
        assert!(run_on(&conn).unwrap_err().to_string().contains("partly"));
    }
}
