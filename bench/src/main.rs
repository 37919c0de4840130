//! The telegram-oidc benchmark: starts the real server on loopback, loads it from this process
//! over keep-alive HTTP/1.1 connections, and prints requests per second, latency percentiles,
//! errors and the server's peak memory next to the figures it has to beat.
//!
//! `cargo run --release --manifest-path bench/Cargo.toml -- --all`

mod bare;
mod crypto;
mod floor;
mod load;
mod pgceiling;
mod pgcount;
mod preload;
mod report;
mod server;
mod workloads;

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::report::{Row, Target};
use crate::server::{ServerSpec, Store};
use crate::workloads::Workload;

#[derive(Parser)]
#[command(
    name = "telegram-oidc-bench",
    about = "Benchmarks telegram-oidc on loopback"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// The bare axum server the discovery and JWKS figures are compared with (run by the
    /// benchmark as its own process).
    BareServer {
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        discovery: PathBuf,
        #[arg(long)]
        jwks: PathBuf,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Every workload on SQLite and PostgreSQL, the 256-connection memory runs and cold start.
    #[arg(long)]
    all: bool,
    /// Workloads to run (comma separated); default: all of them.
    #[arg(long, value_delimiter = ',')]
    workloads: Vec<Workload>,
    /// Stores to run the database workloads on.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    stores: Vec<Store>,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    conns: usize,
    /// Connections of the memory runs (peak RSS target); 0 skips them.
    #[arg(long, default_value_t = 256)]
    rss_conns: usize,
    /// Measured seconds per workload.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Unmeasured seconds before each measurement.
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Threads of the load generator's runtime. One leaves the other core of a two-core
    /// machine to the server.
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// The server binary; default: target/release/telegram-oidc of the repository.
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Do not run `cargo build --release` first.
    #[arg(long)]
    no_build: bool,
    /// PostgreSQL server (no database name): the benchmark drops and creates the database
    /// `telegram_oidc_bench` on it for every workload.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pg: String,
    /// PostgreSQL workloads: seconds of a second, shorter run through a proxy that counts
    /// statements and round trips per operation; 0 skips it.
    #[arg(long, default_value_t = 3.0)]
    count_secs: f64,
    /// Seconds of each pgbench figure (PostgreSQL's own limits, measured once per run when
    /// PostgreSQL is among the stores); 0 skips them.
    #[arg(long, default_value_t = 5)]
    pgbench_secs: u32,
    /// The pgbench binary; default: `pgbench` on the PATH, else /usr/lib/postgresql/*/bin.
    #[arg(long)]
    pgbench: Option<PathBuf>,
    /// Skip the cold-start measurement.
    #[arg(long)]
    no_cold_start: bool,
    /// Record a CPU profile of the server (perf record, call graphs) during each measurement
    /// into this directory.
    #[arg(long)]
    perf: Option<PathBuf>,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Also run every database workload on a database that already holds this many tokens
    /// (half access, half refresh tokens, with a grant and a code per four tokens, half of all
    /// rows expired), built once per store and copied for each workload; prints each rate
    /// against the empty database's and the bytes a stored token takes. 0: no preloaded runs.
    #[arg(long, default_value_t = 0)]
    preload: u64,
    /// With --preload: a third run of each database workload on the preloaded database while the
    /// expired-row sweep removes its expired half, for the p99 during a sweep.
    #[arg(long)]
    sweep: bool,
    /// With --preload and --work-dir: use the preloaded databases an earlier run with the same
    /// --work-dir and --preload left, and leave them for the next (building 10M rows takes
    /// minutes).
    #[arg(long)]
    reuse_preload: bool,
    /// Scratch directory for databases, keys and logs.
    #[arg(long)]
    work_dir: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::BareServer {
        listen,
        discovery,
        jwks,
    }) = cli.command
    {
        return bare::serve(listen, &discovery, &jwks);
    }
    run(cli.run)
}

fn repo_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

fn run(args: RunArgs) -> anyhow::Result<()> {
    let root = repo_root();
    if !args.no_build {
        eprintln!("building the server: cargo build --release");
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .args(["build", "--release", "--bin", "telegram-oidc"])
            .current_dir(&root)
            .status()?;
        anyhow::ensure!(status.success(), "cargo build --release failed");
    }
    let bin = args
        .bin
        .clone()
        .unwrap_or_else(|| root.join("target/release/telegram-oidc"));
    anyhow::ensure!(
        bin.exists(),
        "{} does not exist: run `cargo build --release` in the repository first",
        bin.display()
    );
    let work_dir = args.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("telegram-oidc-bench-{}", std::process::id()))
    });
    std::fs::create_dir_all(&work_dir)?;
    if let Some(dir) = &args.perf {
        std::fs::create_dir_all(dir)?;
    }
    let workloads = if args.workloads.is_empty() {
        Workload::ALL.to_vec()
    } else {
        args.workloads.clone()
    };
    let mut stores = args.stores.clone();
    if stores.contains(&Store::Postgres) && !server::postgres_reachable(&args.pg) {
        eprintln!(
            "PostgreSQL at {} cannot be reached with psql: the PostgreSQL runs are skipped",
            args.pg
        );
        stores.retain(|s| *s != Store::Postgres);
    }

    let machine = report::Machine::describe();
    eprintln!("{machine}");
    eprintln!("measuring the raw signing rates (one thread, 2 s each)");
    let mut raw = crypto::raw_signing_rates(Duration::from_secs(2));
    eprintln!(
        "raw signing: RS256 {:.0}/s, ES256 {:.0}/s, EdDSA {:.0}/s",
        raw.rs256, raw.es256, raw.eddsa
    );
    raw.sqlite_cc = floor::sqlite_client_credentials(
        &root.join("migrations/sqlite"),
        &work_dir,
        Duration::from_secs(3),
        1,
    )?;
    raw.sqlite_cc_batched = floor::sqlite_client_credentials(
        &root.join("migrations/sqlite"),
        &work_dir,
        Duration::from_secs(3),
        64,
    )?;
    eprintln!(
        "SQLite alone, the statements of an opaque client_credentials request: {:.0}/s, {:.0}/s with 64 requests a transaction",
        raw.sqlite_cc, raw.sqlite_cc_batched
    );

    if stores.contains(&Store::Postgres) && args.pgbench_secs > 0 {
        match args.pgbench.clone().or_else(pgceiling::find_pgbench) {
            Some(pgbench) => {
                eprintln!(
                    "measuring PostgreSQL alone with {} ({} s per figure)",
                    pgbench.display(),
                    args.pgbench_secs
                );
                let pg = pgceiling::measure(&pgbench, &args.pg, args.pgbench_secs, &work_dir)?;
                eprintln!(
                    "PostgreSQL alone: {:.0} primary-key SELECTs/s, {:.0} single-row INSERT commits/s",
                    pg.select_per_sec, pg.insert_commits_per_sec
                );
                raw.pg = Some(pg);
            }
            None => eprintln!(
                "pgbench not found (--pgbench PATH): PostgreSQL's own limits are not measured"
            ),
        }
    }

    let keys_dir = work_dir.join("keys");
    server::prepare_keys(&bin, &work_dir, &keys_dir)?;
    let spec = ServerSpec {
        bin: bin.clone(),
        work_dir: work_dir.clone(),
        keys_dir: keys_dir.clone(),
        pg: args.pg.clone(),
    };
    let runtime = load::runtime(args.client_threads)?;
    let settings = load::Settings {
        duration: Duration::from_secs_f64(args.duration),
        warmup: Duration::from_secs_f64(args.warmup),
        perf_dir: args.perf.clone(),
        count_secs: (args.count_secs > 0.0).then_some(args.count_secs),
    };

    let mut rows: Vec<Row> = Vec::new();
    let mut cold = Vec::new();
    if !args.no_cold_start && (args.all || args.workloads.is_empty()) {
        for store in &stores {
            cold.extend(server::cold_starts(&spec, *store, &runtime)?);
        }
    }

    let mut templates = Vec::new();
    if args.preload > 0 && workloads.iter().any(|w| w.uses_store()) {
        for store in &stores {
            eprintln!(
                "preloading {} tokens on {}",
                args.preload,
                store.name(Workload::CcOpaque)
            );
            let template = preload::build(&spec, *store, args.preload, args.reuse_preload)?;
            eprintln!(
                "   built in {:.0} s; {:.0} bytes per token (the whole database)",
                template.built_in.as_secs_f64(),
                template.bytes_per_token()
            );
            templates.push(template);
        }
    }
    let mut compared: Vec<Compared> = Vec::new();

    let mut bare_rps: std::collections::HashMap<Workload, f64> = Default::default();
    let mut runs: Vec<(Workload, Store, usize)> = Vec::new();
    for w in &workloads {
        if w.uses_store() {
            for s in &stores {
                runs.push((*w, *s, args.conns));
            }
        } else {
            runs.push((*w, Store::Sqlite, args.conns));
        }
    }
    if args.rss_conns > 0 && (args.all || args.workloads.is_empty()) {
        for w in [
            Workload::Discovery,
            Workload::CcOpaque,
            Workload::LoginEs256,
        ] {
            if workloads.contains(&w) {
                runs.push((w, Store::Sqlite, args.rss_conns));
            }
        }
    }
    let mut plans: Vec<(Workload, Store, usize, Kind)> = Vec::new();
    for (workload, store, conns) in runs {
        let preloaded = conns == args.conns
            && workload.uses_store()
            && templates.iter().any(|t| t.store == store);
        if !preloaded {
            plans.push((workload, store, conns, Kind::Plain));
            continue;
        }
        plans.push((workload, store, conns, Kind::Empty));
        plans.push((workload, store, conns, Kind::Preloaded));
        if args.sweep {
            plans.push((workload, store, conns, Kind::Sweeping));
        }
    }
    for (workload, store, conns, kind) in plans {
        let template = templates.iter().find(|t| t.store == store);
        let n = preload::short(args.preload);
        let (label, variant) = match kind {
            Kind::Plain => (workload.name().to_owned(), workloads::Variant::default()),
            Kind::Empty => (
                format!("{}, empty", workload.name()),
                workloads::Variant {
                    tag: "-empty".into(),
                    env: vec![(SWEEP_INTERVAL_ENV, "0".into())],
                    ..Default::default()
                },
            ),
            Kind::Preloaded => (
                format!("{}, {n} preloaded", workload.name()),
                workloads::Variant {
                    tag: "-preloaded".into(),
                    template,
                    env: vec![(SWEEP_INTERVAL_ENV, "0".into())],
                    ..Default::default()
                },
            ),
            Kind::Sweeping => (
                format!("{}, {n} preloaded, sweeping", workload.name()),
                workloads::Variant {
                    tag: "-sweeping".into(),
                    template,
                    // The first sweep starts with the server and removes the preload's
                    // expired half, batch after batch, through the measurement.
                    env: vec![(SWEEP_INTERVAL_ENV, "10".into())],
                    count_expired: true,
                },
            ),
        };
        eprintln!(
            "== {label} on {} with {conns} connections",
            store.name(workload)
        );
        let outcome = runtime.block_on(workloads::run(
            &spec, workload, store, conns, &settings, &variant,
        ))?;
        if kind != Kind::Plain {
            compared.push(Compared {
                workload,
                store,
                kind,
                rps: outcome.result.rps(),
                p99_us: outcome.result.p99_us(),
                errors: outcome.result.errors,
                expired_left: outcome.expired_left,
            });
        }
        if let Some(left) = outcome.expired_left {
            eprintln!("   expired rows left after the measurement: {left}");
        }
        let rps = outcome.result.rps();
        if let Some(bare) = outcome.bare {
            bare_rps.insert(workload, bare.rps());
            let mut row = Row::new(
                workload.bare_name().unwrap_or("bare"),
                "-",
                conns,
                &bare,
                outcome.bare_rss_kb,
                Target::None,
            );
            row.usage = outcome.bare_usage;
            // The yardstick is not held to any target.
            row.target.clear();
            row.pass = None;
            rows.push(row);
        }
        let target = report::target_for(
            workload,
            store,
            conns,
            &raw,
            bare_rps.get(&workload).copied(),
        );
        let mut row = Row::new(
            &label,
            store.name(workload),
            conns,
            &outcome.result,
            outcome.peak_rss_kb,
            target,
        );
        row.usage = outcome.usage;
        row.per_op = outcome.per_op;
        rows.push(row);
        if let Some(p) = &outcome.per_op {
            eprintln!(
                "   per operation: {:.1} statements ({:.1} BEGIN/COMMIT), {:.1} round trips ({:.1} pings, {:.2} preparations)",
                p.statements, p.transaction_control, p.round_trips, p.pings, p.prepares
            );
        }
        let ops = outcome.result.ops.max(1) as f64;
        eprintln!(
            "   {:.0}/s p50 {} p99 {} errors {} peak RSS {}; server {:.2} cores, {:.0} µs CPU and {:.1} context switches per op; load generator {:.2} cores; everything else {:.2} cores",
            rps,
            report::fmt_us(outcome.result.p50_us()),
            report::fmt_us(outcome.result.p99_us()),
            outcome.result.errors,
            report::fmt_kb(outcome.peak_rss_kb),
            outcome.usage.server_cpu,
            outcome.usage.server_cpu * settings.duration.as_secs_f64() * 1e6 / ops,
            outcome.usage.server_switches as f64 / ops,
            outcome.usage.client_cpu,
            outcome.usage.other_cpu,
        );
        if let Some(first) = &outcome.result.first_error {
            eprintln!("   first error: {first}");
        }
    }

    let text = report::render(&machine, &raw, &rows, &cold, &args_summary(&args));
    println!("{text}");
    if !templates.is_empty() {
        println!("{}", preload_report(&templates, &compared));
    }
    if !args.reuse_preload {
        for template in &templates {
            preload::drop_template(&spec, template);
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, report::json(&machine, &raw, &rows, &cold).to_string())?;
    }
    if args.work_dir.is_none() {
        let _ = std::fs::remove_dir_all(&work_dir);
    }
    let failed = rows.iter().filter(|r| r.pass == Some(false)).count()
        + cold.iter().filter(|c| !c.pass()).count();
    if failed > 0 {
        eprintln!("{failed} figure(s) missed their target");
    }
    Ok(())
}

fn args_summary(args: &RunArgs) -> String {
    format!(
        "{} s measured after {} s warm-up per workload; {} load-generator thread(s); fresh server and database per workload",
        args.duration, args.warmup, args.client_threads
    )
}

/// The server setting that sets the interval of the expired-row sweep (0: never).
const SWEEP_INTERVAL_ENV: &str = "TGOIDC_SWEEP_INTERVAL_SECS";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// As without --preload.
    Plain,
    /// --preload: the empty database the preloaded one is compared with.
    Empty,
    Preloaded,
    /// --preload --sweep: preloaded, with the sweep at work.
    Sweeping,
}

struct Compared {
    workload: Workload,
    store: Store,
    kind: Kind,
    rps: f64,
    p99_us: u64,
    errors: u64,
    expired_left: Option<u64>,
}

/// The preload's tables: what each store holds, the bytes per row, and every workload's rate
/// and p99 on the preloaded database against the empty one (and during a sweep).
fn preload_report(templates: &[preload::Template], compared: &[Compared]) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    let n = templates.first().map_or(0, |t| t.tokens);
    let _ = writeln!(
        out,
        "\nPreloaded: {n} tokens ({} access, {} refresh), {} codes, {} grants; half of each expired\n",
        n / 2,
        n - n / 2,
        n / 4,
        n / 4
    );
    let _ = writeln!(
        out,
        "| store | built in | table | rows | bytes (table and indexes) | bytes per row |"
    );
    let _ = writeln!(out, "|---|---:|---|---:|---:|---:|");
    for t in templates {
        for size in &t.sizes {
            let _ = writeln!(
                out,
                "| {} | {:.0} s | {} | {} | {} | {:.0} |",
                store_label(t.store),
                t.built_in.as_secs_f64(),
                size.table,
                size.rows,
                size.bytes,
                size.bytes as f64 / size.rows.max(1) as f64
            );
        }
        let _ = writeln!(
            out,
            "| {} | | whole database, per token (codes and grants included) | {} | {} | {:.0} |",
            store_label(t.store),
            t.tokens,
            t.db_bytes.saturating_sub(t.db_bytes_empty),
            t.bytes_per_token()
        );
    }
    let _ = writeln!(
        out,
        "\n| workload | store | empty | preloaded | preloaded / empty | p99 empty | p99 preloaded | p99 sweeping | sweeping / preloaded p99 | expired rows left at the end | errors |"
    );
    let _ = writeln!(
        out,
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut seen: Vec<(Workload, Store)> = Vec::new();
    for c in compared {
        if seen.contains(&(c.workload, c.store)) {
            continue;
        }
        seen.push((c.workload, c.store));
        let find = |kind: Kind| {
            compared
                .iter()
                .find(|x| x.workload == c.workload && x.store == c.store && x.kind == kind)
        };
        let (empty, pre, sweep) = (
            find(Kind::Empty),
            find(Kind::Preloaded),
            find(Kind::Sweeping),
        );
        let rate = |x: Option<&Compared>| x.map_or("-".into(), |x| format!("{:.0}/s", x.rps));
        let p99 = |x: Option<&Compared>| x.map_or("-".into(), |x| report::fmt_us(x.p99_us));
        let ratio = match (empty, pre) {
            (Some(e), Some(p)) if e.rps > 0.0 => format!("{:.0} %", 100.0 * p.rps / e.rps),
            _ => "-".into(),
        };
        let p99_ratio = match (pre, sweep) {
            (Some(p), Some(s)) if p.p99_us > 0 => {
                format!("{:.2}x", s.p99_us as f64 / p.p99_us as f64)
            }
            _ => "-".into(),
        };
        let errors: u64 = [empty, pre, sweep].iter().flatten().map(|x| x.errors).sum();
        let left = sweep
            .and_then(|s| s.expired_left)
            .map_or("-".into(), |l| l.to_string());
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            c.workload.name(),
            store_label(c.store),
            rate(empty),
            rate(pre),
            ratio,
            p99(empty),
            p99(pre),
            p99(sweep),
            p99_ratio,
            left,
            errors
        );
    }
    out
}

fn store_label(store: Store) -> &'static str {
    match store {
        Store::Sqlite => "sqlite",
        Store::Postgres => "postgres",
    }
}
