//! The figures, the targets they are held to, and the table that shows both.

use std::fmt;

use serde_json::json;

use crate::crypto::RawRates;
use crate::load::RunResult;
use crate::server::{COLD_START_TARGET, ColdStart, Store};
use crate::workloads::Workload;

/// Peak RSS allowed at 256 concurrent connections.
const RSS_TARGET_KB: u64 = 40 * 1024;
/// The connection count the memory target is set for.
const RSS_TARGET_CONNS: usize = 256;

pub struct Machine {
    cpu: String,
    cores: usize,
    kernel: String,
    /// The 1-minute load average when the run started: other work on the machine skews the
    /// figures.
    load: String,
}

impl Machine {
    pub fn describe() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown CPU".into());
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_default();
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().next().unwrap_or("?").to_owned())
            .unwrap_or_default();
        Machine {
            load,
            cpu,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel,
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} cores, {}, Linux {}; load average {} at start",
            self.cores, self.cpu, self.kernel, self.load
        )
    }
}

pub enum Target {
    None,
    /// At least this many operations per second, with the words that explain the figure.
    MinRps(f64, String),
}

pub struct Row {
    pub workload: String,
    pub store: String,
    pub conns: usize,
    pub rps: f64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub errors: u64,
    pub peak_rss_kb: u64,
    pub target: String,
    pub pass: Option<bool>,
    pub usage: crate::workloads::Usage,
    /// PostgreSQL rows: statements and round trips per operation.
    pub per_op: Option<crate::pgcount::PerOp>,
}

impl Row {
    pub fn new(
        workload: &str,
        store: &str,
        conns: usize,
        result: &RunResult,
        peak_rss_kb: u64,
        target: Target,
    ) -> Row {
        let rps = result.rps();
        let mut texts = Vec::new();
        let mut checks = Vec::new();
        // The throughput targets are for the default connection count; the memory runs are
        // held to the memory target only.
        if conns >= RSS_TARGET_CONNS {
            texts.push("peak RSS < 40 MB".into());
            checks.push(peak_rss_kb > 0 && peak_rss_kb < RSS_TARGET_KB);
        } else if let Target::MinRps(min, text) = target {
            texts.push(text);
            checks.push(rps >= min);
        }
        // Every target also demands an error-free run.
        let pass = (!checks.is_empty()).then(|| checks.iter().all(|ok| *ok) && result.errors == 0);
        Row {
            workload: workload.to_owned(),
            store: store.to_owned(),
            conns,
            rps,
            p50_us: result.p50_us(),
            p99_us: result.p99_us(),
            errors: result.errors,
            peak_rss_kb,
            target: texts.join("; "),
            pass,
            usage: Default::default(),
            per_op: None,
        }
    }
}

pub fn target_for(
    workload: Workload,
    store: Store,
    conns: usize,
    raw: &RawRates,
    bare_rps: Option<f64>,
) -> Target {
    let _ = conns;
    match workload {
        Workload::Discovery | Workload::Jwks => {
            let bare = bare_rps.unwrap_or(0.0);
            let min = f64::max(80_000.0, 0.7 * bare);
            Target::MinRps(
                min,
                format!(">= 80k/s and >= 70% of bare ({:.0})", 0.7 * bare),
            )
        }
        Workload::CcOpaque if store == Store::Sqlite => Target::MinRps(
            20_000.0,
            format!(">= 20k/s (SQLite alone: {:.0}/s)", raw.sqlite_cc),
        ),
        Workload::CcJwt => Target::MinRps(
            0.8 * raw.rs256,
            format!(
                ">= 80% of raw RS256 {:.0}/s ({:.0})",
                raw.rs256,
                0.8 * raw.rs256
            ),
        ),
        Workload::LoginEs256 => Target::MinRps(1_000.0, ">= 1000 logins/s".into()),
        Workload::LoginRs256 => Target::MinRps(500.0, ">= 500 logins/s".into()),
        _ => Target::None,
    }
}

pub fn fmt_us(us: u64) -> String {
    if us >= 10_000 {
        format!("{:.0} ms", us as f64 / 1000.0)
    } else if us >= 1000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{us} µs")
    }
}

pub fn fmt_kb(kb: u64) -> String {
    if kb == 0 {
        "-".into()
    } else {
        format!("{:.1} MB", kb as f64 / 1024.0)
    }
}

/// The results as a Markdown table, ready for the README.
pub fn render(
    machine: &Machine,
    raw: &RawRates,
    rows: &[Row],
    cold: &[ColdStart],
    settings: &str,
) -> String {
    let mut out = String::new();
    out.push_str(&format!("Machine: {machine}\n"));
    out.push_str(&format!("Run: {settings}\n"));
    out.push_str(&format!(
        "Raw signing on one thread (aws-lc-rs): RS256 {:.0}/s, ES256 {:.0}/s, EdDSA {:.0}/s\n",
        raw.rs256, raw.es256, raw.eddsa
    ));
    out.push_str(&format!(
        "SQLite alone on one thread, the statements of one opaque client_credentials request (1 read, 2 autocommit inserts): {:.0}/s; {:.0}/s with 64 requests a transaction\n\n",
        raw.sqlite_cc, raw.sqlite_cc_batched
    ));
    out.push_str(
        "ops/s: requests per second, or complete logins per second for the login rows. server CPU: cores the server used while measured; \
         other CPU: cores everything else used meanwhile except the load generator (PostgreSQL's processes, and any other work on the machine).\n\n",
    );
    out.push_str("| workload | store | conns | ops/s | p50 | p99 | errors | peak RSS | server CPU | other CPU | target | result |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---|\n");
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} | {} | {} | {:.2} | {} | {} |\n",
            r.workload,
            r.store,
            r.conns,
            r.rps,
            fmt_us(r.p50_us),
            fmt_us(r.p99_us),
            r.errors,
            fmt_kb(r.peak_rss_kb),
            if r.usage.server_cpu > 0.0 {
                format!("{:.2}", r.usage.server_cpu)
            } else {
                "-".into()
            },
            r.usage.other_cpu,
            if r.target.is_empty() { "-" } else { &r.target },
            match r.pass {
                Some(true) => "pass",
                Some(false) => "FAIL",
                None => "-",
            }
        ));
    }
    out.push_str(&render_postgres(raw, rows));
    if !cold.is_empty() {
        out.push_str(&format!(
            "\n| cold start (spawn to first 200 from /readyz, {} runs) | median | max | target | result |\n|---|---:|---:|---|---|\n",
            cold.first().map_or(0, |c| c.times.len())
        ));
        for c in cold {
            out.push_str(&format!(
                "| {} | {} ms | {} ms | < {} ms (median) | {} |\n",
                c.label,
                c.median().as_millis(),
                c.max().as_millis(),
                COLD_START_TARGET.as_millis(),
                if c.pass() { "pass" } else { "FAIL" }
            ));
        }
    }
    out
}

/// The PostgreSQL rows again, with what each operation asks of the database and how far the
/// statements the measured rate implies are from what pgbench did alone.
fn render_postgres(raw: &RawRates, rows: &[Row]) -> String {
    let counted: Vec<(&Row, &crate::pgcount::PerOp)> = rows
        .iter()
        .filter_map(|r| r.per_op.as_ref().map(|p| (r, p)))
        .collect();
    let mut out = String::new();
    if let Some(pg) = &raw.pg {
        out.push_str(&format!(
            "\nPostgreSQL alone (pgbench, 32 clients, prepared, same run): {:.0} primary-key SELECTs/s, {:.0} single-row INSERT commits/s\n",
            pg.select_per_sec, pg.insert_commits_per_sec
        ));
    }
    if counted.is_empty() {
        return out;
    }
    out.push_str(
        "\nPer operation on PostgreSQL, counted on the wire in a second, shorter run of each workload: statements \
         (BEGIN and COMMIT included), round trips (each waits for PostgreSQL's answer: a statement, a BEGIN or COMMIT, \
         a statement's preparation on a new connection, or one of the pool's pings: sqlx 0.8 pings a connection \
         before it hands it out and again when it comes back). \
         statements/s: at the measured ops/s.\n\n",
    );
    out.push_str("| workload | conns | ops/s | statements/op | of them BEGIN/COMMIT | round trips/op | of them pings | statements/s |\n");
    out.push_str("|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for (r, p) in counted {
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.1} | {:.1} | {:.1} | {:.1} | {:.0} |\n",
            r.workload,
            r.conns,
            r.rps,
            p.statements,
            p.transaction_control,
            p.round_trips,
            p.pings,
            r.rps * p.statements,
        ));
    }
    out
}

pub fn json(
    machine: &Machine,
    raw: &RawRates,
    rows: &[Row],
    cold: &[ColdStart],
) -> serde_json::Value {
    json!({
        "machine": machine.to_string(),
        "raw_signing_per_sec": { "RS256": raw.rs256, "ES256": raw.es256, "EdDSA": raw.eddsa },
        "sqlite_alone_client_credentials_per_sec": raw.sqlite_cc,
        "sqlite_alone_client_credentials_batched_per_sec": raw.sqlite_cc_batched,
        "workloads": rows.iter().map(|r| json!({
            "workload": r.workload,
            "store": r.store,
            "conns": r.conns,
            "ops_per_sec": r.rps,
            "p50_us": r.p50_us,
            "p99_us": r.p99_us,
            "errors": r.errors,
            "peak_rss_kb": r.peak_rss_kb,
            "server_cpu_cores": r.usage.server_cpu,
            "client_cpu_cores": r.usage.client_cpu,
            "server_context_switches": r.usage.server_switches,
            "other_cpu_cores": r.usage.other_cpu,
            "target": r.target,
            "pass": r.pass,
            "per_op": r.per_op.map(|p| json!({
                "statements": p.statements,
                "begin_commit": p.transaction_control,
                "round_trips": p.round_trips,
                "pings": p.pings,
                "prepares": p.prepares,
            })),
        })).collect::<Vec<_>>(),
        "postgres_alone": raw.pg.map(|pg| json!({
            "pk_select_per_sec": pg.select_per_sec,
            "insert_commits_per_sec": pg.insert_commits_per_sec,
        })),
        "cold_start": cold.iter().map(|c| json!({
            "label": c.label,
            "ms": c.times.iter().map(|t| t.as_secs_f64() * 1000.0).collect::<Vec<_>>(),
            "pass": c.pass(),
        })).collect::<Vec<_>>(),
    })
}
