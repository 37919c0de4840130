//! The load generator's parts: keep-alive HTTP/1.1 connections (hyper's connection-level
//! client, one request in flight per connection, as a browser or an app's HTTP pool does), and
//! the clock that splits a run into warm-up and measurement.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

pub struct Settings {
    pub duration: Duration,
    pub warmup: Duration,
    pub perf_dir: Option<PathBuf>,
    /// PostgreSQL workloads: seconds of a second run through the counting proxy; `None`: no
    /// counting run.
    pub count_secs: Option<f64>,
}

/// The load generator's runtime. With one thread it takes at most one core, so on a two-core
/// machine the server has about the other.
pub fn runtime(threads: usize) -> anyhow::Result<tokio::runtime::Runtime> {
    let rt = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    Ok(rt)
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn header(&self, name: header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn expect(self, status: StatusCode, what: &str) -> anyhow::Result<Reply> {
        if self.status != status {
            let body = String::from_utf8_lossy(&self.body);
            bail!(
                "{what}: expected {status}, got {}: {}",
                self.status,
                body.chars().take(300).collect::<String>()
            );
        }
        Ok(self)
    }

    pub fn location(&self) -> anyhow::Result<&str> {
        self.header(header::LOCATION)
            .ok_or_else(|| anyhow!("no Location header"))
    }

    pub fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the body is not JSON")
    }
}

/// One keep-alive connection.
pub struct Http {
    addr: SocketAddr,
    host: HeaderValue,
    sender: SendRequest<Full<Bytes>>,
}

impl Http {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<Http> {
        let stream = TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        stream.set_nodelay(true)?;
        let (sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(Http {
            addr,
            host: HeaderValue::from_str(&addr.to_string())?,
            sender,
        })
    }

    /// A new connection after an error, so one failure does not poison the rest of the run.
    pub async fn reconnect(&mut self) -> anyhow::Result<()> {
        *self = Http::connect(self.addr).await?;
        Ok(())
    }

    pub async fn request(
        &mut self,
        method: Method,
        path_and_query: &str,
        headers: &[(header::HeaderName, &str)],
        body: Option<Bytes>,
    ) -> anyhow::Result<Reply> {
        let mut builder = Request::builder()
            .method(method)
            .uri(path_and_query)
            .header(header::HOST, self.host.clone());
        for (name, value) in headers {
            builder = builder.header(name, *value);
        }
        if body.is_some() {
            builder = builder.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let request = builder.body(Full::new(body.unwrap_or_default()))?;
        self.sender.ready().await?;
        let response = self.sender.send_request(request).await?;
        let (parts, body) = response.into_parts();
        let body = body.collect().await?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(
        &mut self,
        path_and_query: &str,
        headers: &[(header::HeaderName, &str)],
    ) -> anyhow::Result<Reply> {
        self.request(Method::GET, path_and_query, headers, None)
            .await
    }

    pub async fn post_form(
        &mut self,
        path: &str,
        headers: &[(header::HeaderName, &str)],
        form: String,
    ) -> anyhow::Result<Reply> {
        self.request(Method::POST, path, headers, Some(Bytes::from(form)))
            .await
    }
}

/// When a run warms up, measures, and stops.
#[derive(Clone, Copy)]
pub struct Phases {
    pub measure_from: Instant,
    pub end: Instant,
}

impl Phases {
    pub fn starting_now(settings: &Settings) -> Phases {
        let measure_from = Instant::now() + settings.warmup;
        Phases {
            measure_from,
            end: measure_from + settings.duration,
        }
    }
}

/// What one connection (or all, merged) saw.
pub struct RunResult {
    /// Operations started and finished inside the measurement window.
    pub ops: u64,
    /// Failed operations over the whole run, warm-up included.
    pub errors: u64,
    pub first_error: Option<String>,
    /// Latency of each measured operation, in microseconds.
    pub latency: Histogram<u64>,
    pub measured: Duration,
}

impl RunResult {
    pub fn new(measured: Duration) -> RunResult {
        RunResult {
            ops: 0,
            errors: 0,
            first_error: None,
            latency: Histogram::new_with_bounds(1, 120_000_000, 3)
                .expect("constant histogram bounds are valid"),
            measured,
        }
    }

    pub fn record(&mut self, started: Instant, finished: Instant, phases: &Phases) {
        if started >= phases.measure_from && finished <= phases.end {
            self.ops += 1;
            let us = finished.duration_since(started).as_micros() as u64;
            let _ = self.latency.record(us.max(1));
        }
    }

    pub fn error(&mut self, e: &anyhow::Error) {
        self.errors += 1;
        if self.first_error.is_none() {
            self.first_error = Some(format!("{e:#}"));
        }
    }

    pub fn merge(&mut self, other: RunResult) {
        self.ops += other.ops;
        self.errors += other.errors;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        let _ = self.latency.add(&other.latency);
    }

    pub fn rps(&self) -> f64 {
        self.ops as f64 / self.measured.as_secs_f64()
    }

    pub fn p50_us(&self) -> u64 {
        self.latency.value_at_quantile(0.50)
    }

    pub fn p99_us(&self) -> u64 {
        self.latency.value_at_quantile(0.99)
    }
}

/// CPU seconds (user + system) a process has used so far, from /proc/<pid>/stat.
pub fn process_cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((utime + stime) / ticks)
}

/// Busy CPU seconds of the whole machine so far (every core; idle and I/O wait excluded).
pub fn machine_busy_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
        return 0.0;
    };
    let Some(line) = stat.lines().next() else {
        return 0.0;
    };
    let fields: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...: busy is all but idle and iowait.
    let total: f64 = fields.iter().take(8).sum();
    let idle = fields.get(3).copied().unwrap_or(0.0) + fields.get(4).copied().unwrap_or(0.0);
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (total - idle) / ticks
}

/// CPU seconds this process (the load generator) has used so far.
pub fn own_cpu_secs() -> f64 {
    process_cpu_secs(std::process::id()).unwrap_or(0.0)
}

/// Context switches (voluntary and not) of every thread of a process so far.
pub fn context_switches(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .map(|status| {
            status
                .lines()
                .filter(|l| l.contains("ctxt_switches:"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .sum::<u64>()
        })
        .sum()
}

/// (VmRSS, VmHWM) of a process in KiB: resident memory now, and its peak so far.
pub fn rss_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}
