//! PostgreSQL's own limits on this machine, measured with pgbench in the same run as the
//! workloads: primary-key SELECTs per second (pgbench's select-only script, prepared
//! statements, 32 clients) and single-row INSERT commits per second (one random 32-byte key a
//! row, as a token's digest is, autocommit, prepared, 32 clients).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};

/// The scratch database pgbench runs in, dropped and created again for each run.
const DATABASE: &str = "telegram_oidc_pgbench";
const CLIENTS: &str = "32";

#[derive(Clone, Copy, Debug)]
pub struct Ceilings {
    pub select_per_sec: f64,
    pub insert_commits_per_sec: f64,
}

/// `pgbench` on the PATH, else the newest under /usr/lib/postgresql/*/bin (Debian and
/// Ubuntu keep it there).
pub fn find_pgbench() -> Option<PathBuf> {
    if Command::new("pgbench")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Some(PathBuf::from("pgbench"));
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .map(|e| e.path().join("bin/pgbench"))
        .filter(|p| p.exists())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(Path::parent)
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop()
}

/// Runs both figures for `seconds` each against the PostgreSQL at `pg` (no database name).
pub fn measure(pgbench: &Path, pg: &str, seconds: u32, dir: &Path) -> anyhow::Result<Ceilings> {
    crate::server::psql(
        pg,
        &format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
    )?;
    crate::server::psql(pg, &format!("CREATE DATABASE {DATABASE}"))?;
    let url = format!("{pg}/{DATABASE}");
    run(pgbench, &["-i", "-q", "-s", "1", &url])?;
    let seconds = seconds.to_string();
    let select = tps(&run(
        pgbench,
        &[
            "-n", "-S", "-M", "prepared", "-c", CLIENTS, "-j", "2", "-T", &seconds, &url,
        ],
    )?)?;
    crate::server::psql_in(
        pg,
        DATABASE,
        "CREATE TABLE ceiling_insert (k bytea PRIMARY KEY, created_at bigint NOT NULL)",
    )?;
    let script = dir.join("pgbench-insert.sql");
    std::fs::write(
        &script,
        "INSERT INTO ceiling_insert (k, created_at) VALUES (sha256(random()::text::bytea), 1);\n",
    )?;
    let script = script.display().to_string();
    let insert = tps(&run(
        pgbench,
        &[
            "-n", "-f", &script, "-M", "prepared", "-c", CLIENTS, "-j", "2", "-T", &seconds, &url,
        ],
    )?)?;
    crate::server::psql(
        pg,
        &format!("DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"),
    )?;
    Ok(Ceilings {
        select_per_sec: select,
        insert_commits_per_sec: insert,
    })
}

fn run(pgbench: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(pgbench)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {}", pgbench.display()))?;
    if !out.status.success() {
        bail!(
            "pgbench {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// pgbench's "tps = 18512.3 (without initial connection time)".
fn tps(output: &str) -> anyhow::Result<f64> {
    output
        .lines()
        .find_map(|l| {
            l.strip_prefix("tps = ")
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.parse().ok())
        })
        .with_context(|| format!("no tps in pgbench's output: {output}"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_pgbench_tps() {
        let out = "latency average = 1.7 ms\ninitial connection time = 20.1 ms\ntps = 18512.301 (without initial connection time)\n";
        assert_eq!(super::tps(out).unwrap(), 18512.301);
    }
}
