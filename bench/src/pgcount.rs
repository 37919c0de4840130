//! What a PostgreSQL workload asks of the database, counted on the wire: a proxy between the
//! server and PostgreSQL that reads the frontend/backend protocol the server sends and counts
//! statements and round trips. Every message is counted, whatever sent it (sqlx's pings of
//! pooled connections included, which `pg_stat_statements` never sees),
//! with nothing to configure on the PostgreSQL server.
//!
//! The server waits for `ReadyForQuery` after every `Sync` and every simple `Query` (sqlx does
//! not pipeline), so each of those is one round trip:
//! - a `Sync` after an `Execute`: a statement with the extended protocol (prepared once per
//!   connection, then bound and executed);
//! - a `Sync` after only `Parse`/`Describe`: preparing a statement on a new connection;
//! - a `Sync` alone: sqlx's ping (its pool checks every connection before it hands it out,
//!   and again when it comes back);
//! - a simple `Query`: `BEGIN`, `COMMIT`, `ROLLBACK`, `LISTEN`.
//!
//! The proxy answers a TLS request with "no", so the counted connections are plain text; the
//! measured runs connect to PostgreSQL directly, as configured.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};

/// Protocol codes of the untyped first messages (PostgreSQL protocol, "Message Formats").
const SSL_REQUEST: u32 = 80_877_103;
const GSSENC_REQUEST: u32 = 80_877_104;

#[derive(Default)]
pub struct Counters {
    /// `Execute` messages: statements run with the extended protocol.
    executes: AtomicU64,
    /// Simple `Query` messages (transaction control, `LISTEN`): a statement and a round trip.
    simple_queries: AtomicU64,
    /// `Sync` after at least one `Execute`.
    statement_syncs: AtomicU64,
    /// `Sync` after `Parse` or `Describe` only.
    prepare_syncs: AtomicU64,
    /// `Sync` with nothing before it: a ping.
    pings: AtomicU64,
}

/// A reading of the counters; subtract two to get what happened between them.
#[derive(Clone, Copy, Debug, Default)]
pub struct Counts {
    pub executes: u64,
    pub simple_queries: u64,
    pub statement_syncs: u64,
    pub prepare_syncs: u64,
    pub pings: u64,
}

impl Counts {
    pub fn statements(&self) -> u64 {
        self.executes + self.simple_queries
    }

    pub fn round_trips(&self) -> u64 {
        self.simple_queries + self.statement_syncs + self.prepare_syncs + self.pings
    }

    pub fn since(&self, earlier: &Counts) -> Counts {
        Counts {
            executes: self.executes - earlier.executes,
            simple_queries: self.simple_queries - earlier.simple_queries,
            statement_syncs: self.statement_syncs - earlier.statement_syncs,
            prepare_syncs: self.prepare_syncs - earlier.prepare_syncs,
            pings: self.pings - earlier.pings,
        }
    }
}

impl Counters {
    pub fn read(&self) -> Counts {
        Counts {
            executes: self.executes.load(Ordering::Relaxed),
            simple_queries: self.simple_queries.load(Ordering::Relaxed),
            statement_syncs: self.statement_syncs.load(Ordering::Relaxed),
            prepare_syncs: self.prepare_syncs.load(Ordering::Relaxed),
            pings: self.pings.load(Ordering::Relaxed),
        }
    }
}

/// Statements and round trips per operation of a workload, from a counting run.
#[derive(Clone, Copy, Debug)]
pub struct PerOp {
    pub statements: f64,
    /// Of the statements: simple queries (`BEGIN`, `COMMIT`, ...).
    pub transaction_control: f64,
    pub round_trips: f64,
    /// Of the round trips: pings.
    pub pings: f64,
    /// Of the round trips: statement preparations.
    pub prepares: f64,
}

impl PerOp {
    pub fn new(counts: &Counts, ops: u64) -> PerOp {
        let ops = ops.max(1) as f64;
        PerOp {
            statements: counts.statements() as f64 / ops,
            transaction_control: counts.simple_queries as f64 / ops,
            round_trips: counts.round_trips() as f64 / ops,
            pings: counts.pings as f64 / ops,
            prepares: counts.prepare_syncs as f64 / ops,
        }
    }
}

/// Listens on a loopback port and forwards every connection to `upstream`, counting.
pub async fn start(upstream: SocketAddr) -> anyhow::Result<(SocketAddr, Arc<Counters>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let counters = Arc::new(Counters::default());
    let shared = counters.clone();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let counters = shared.clone();
            tokio::spawn(async move {
                if let Ok(server) = TcpStream::connect(upstream).await {
                    let _ = relay(client, server, &counters).await;
                }
            });
        }
    });
    Ok((addr, counters))
}

async fn relay(client: TcpStream, server: TcpStream, counters: &Counters) -> anyhow::Result<()> {
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    let (client_read, mut client_write) = client.into_split();
    let (mut server_read, server_write) = server.into_split();
    let mut from_client = BufReader::new(client_read);
    let mut to_server = BufWriter::new(server_write);

    // Untyped messages first: a TLS or GSS request is refused here (the client then goes on
    // in plain text), and the startup message passes.
    loop {
        let len = from_client.read_u32().await? as usize;
        anyhow::ensure!((8..=10_000).contains(&len), "bad startup message");
        let mut body = vec![0u8; len - 4];
        from_client.read_exact(&mut body).await?;
        let code = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        if code == SSL_REQUEST || code == GSSENC_REQUEST {
            client_write.write_all(b"N").await?;
            continue;
        }
        to_server.write_all(&(len as u32).to_be_bytes()).await?;
        to_server.write_all(&body).await?;
        to_server.flush().await?;
        break;
    }
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
    });

    let mut executed = false;
    let mut prepared = false;
    let result: anyhow::Result<()> = async {
        loop {
            let kind = match from_client.read_u8().await {
                Ok(kind) => kind,
                Err(_) => return Ok(()),
            };
            let len = from_client.read_u32().await? as usize;
            anyhow::ensure!(len >= 4, "bad message length");
            let mut body = vec![0u8; len - 4];
            from_client.read_exact(&mut body).await?;
            match kind {
                b'E' => {
                    executed = true;
                    counters.executes.fetch_add(1, Ordering::Relaxed);
                }
                b'P' | b'D' => prepared = true,
                b'Q' => {
                    counters.simple_queries.fetch_add(1, Ordering::Relaxed);
                }
                b'S' => {
                    let counter = if executed {
                        &counters.statement_syncs
                    } else if prepared {
                        &counters.prepare_syncs
                    } else {
                        &counters.pings
                    };
                    counter.fetch_add(1, Ordering::Relaxed);
                    executed = false;
                    prepared = false;
                }
                _ => {}
            }
            to_server.write_u8(kind).await?;
            to_server.write_u32(len as u32).await?;
            to_server.write_all(&body).await?;
            // Forward what arrived together in one write, as the client sent it.
            if from_client.buffer().is_empty() {
                to_server.flush().await?;
            }
        }
    }
    .await;
    back.abort();
    result.context("relaying to PostgreSQL")
}
