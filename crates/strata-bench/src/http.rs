//! HTTP load against a real `strata serve` child on loopback: shop commands, shop
//! queries and raw single-event appends, each from a fixed number of keep-alive
//! connections in a closed loop for a fixed time.
//!
//! The load runs in this process on the same machine, so it takes CPU the server would
//! otherwise have; the result lines say how much each side used. `stack` adds what bounds
//! these phases: the server stack's own ceiling and bulk appends against the embedded
//! store.

use std::collections::VecDeque;
use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::{Context as _, Result, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;

use crate::args::HttpArgs;
use crate::fixtures::{BENCH_TYPE, payload, scratch};
use crate::load::{LoadOutcome, closed_loop};
use crate::report::{Ceiling, Probes, ScenarioResult};

mod stack;

/// How long the server may take to start listening.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Log lines of the server kept to explain a failure.
const KEPT_LOG_LINES: usize = 20;

/// Runs the three kinds of requests against a new server and reports each.
pub(crate) async fn http(
    dir: &Path,
    args: &HttpArgs,
    _probes: &Probes,
) -> Result<Vec<ScenarioResult>> {
    let scratch = scratch(dir, "http")?;
    let server = Server::start(&scratch.path().join("data"))?;
    let result = stack::measured(
        scratch.path(),
        server.addr,
        server.pid(),
        args,
        run_phases(&server, args),
    )
    .await;
    let stopped = server.stop();
    let results = result?;
    stopped?;
    Ok(results)
}

async fn run_phases(server: &Server, args: &HttpArgs) -> Result<Vec<ScenarioResult>> {
    let addr = server.addr;
    let connections = args.connections as usize;
    let window = Duration::from_secs_f64(args.seconds);
    let products = args.products;

    // The catalog, before anything is timed.
    let mut setup = Conn::connect(addr).await?;
    for p in 0..products {
        setup
            .expect_ok(
                Method::POST,
                &format!("/shop/products/{}", sku(p)),
                Some(format!(
                    r#"{{"name":"Product {p}","description":"A useful thing, in blue","price":1250}}"#
                )),
            )
            .await?;
        setup
            .expect_ok(
                Method::POST,
                &format!("/shop/inventory/{}/receive", sku(p)),
                Some(r#"{"quantity":1000000000}"#.to_owned()),
            )
            .await?;
    }

    // Shop commands: each connection opens orders and adds a line to each.
    let conns = connect_all(addr, connections).await?;
    let orders: Arc<Vec<AtomicU64>> =
        Arc::new((0..connections).map(|_| AtomicU64::new(0)).collect());
    let last_position = Arc::new(AtomicU64::new(0));
    let cpu = CpuMeter::start(server.pid());
    let outcome = closed_loop(connections, window, |c| {
        let conn = conns[c].clone();
        let orders = orders.clone();
        let last_position = last_position.clone();
        move |seq| {
            let conn = conn.clone();
            let orders = orders.clone();
            let last_position = last_position.clone();
            async move {
                let order = seq / 2;
                let (path, body) = if seq.is_multiple_of(2) {
                    (
                        format!("/shop/orders/h{c}-{order}"),
                        format!(r#"{{"customer":"customer{c}"}}"#),
                    )
                } else {
                    (
                        format!("/shop/orders/h{c}-{order}/lines"),
                        format!(
                            r#"{{"sku":"{}","quantity":1}}"#,
                            sku((c as u64 + order) % products)
                        ),
                    )
                };
                let answer = conn
                    .lock_owned()
                    .await
                    .expect_ok(Method::POST, &path, Some(body))
                    .await?;
                let position: CommandAnswer = serde_json::from_slice(&answer)
                    .with_context(|| format!("POST {path} answered {answer:?}"))?;
                last_position.fetch_max(position.position, Ordering::Relaxed);
                if seq % 2 == 1 {
                    orders[c].fetch_max(order + 1, Ordering::Relaxed);
                }
                Ok(1)
            }
        }
    })
    .await;
    let cpu = cpu.stop();
    let commands = report(
        "http_shop_commands",
        &outcome,
        cpu,
        connections,
        "command",
        true,
    )
    .with("commands_per_s", outcome.ops_per_s())
    .with(
        "command_mix",
        "POST /shop/orders/{id}, POST /shop/orders/{id}/lines",
    );

    // Shop queries, once the read models have caught up with every command.
    let token = last_position.load(Ordering::Relaxed);
    let known: Vec<u64> = orders.iter().map(|o| o.load(Ordering::Relaxed)).collect();
    let (client, count) = known
        .iter()
        .enumerate()
        .find(|(_, n)| **n > 0)
        .map(|(c, n)| (c, *n))
        .context("no order was completed in the command phase")?;
    setup
        .expect_ok(
            Method::GET,
            &format!(
                "/shop/orders/h{client}-{}?after={token}&timeout_ms=60000",
                count - 1
            ),
            None,
        )
        .await?;
    setup
        .expect_ok(
            Method::GET,
            &format!("/shop/products/{}?after={token}&timeout_ms=60000", sku(0)),
            None,
        )
        .await?;
    let known = Arc::new(known);
    let cpu = CpuMeter::start(server.pid());
    let outcome = closed_loop(connections, window, |c| {
        let conn = conns[c].clone();
        let known = known.clone();
        move |seq| {
            let conn = conn.clone();
            let path = query_path(&known, c, seq, products);
            async move {
                conn.lock_owned()
                    .await
                    .expect_ok(Method::GET, &path, None)
                    .await?;
                Ok(1)
            }
        }
    })
    .await;
    let queries = report(
        "http_shop_queries",
        &outcome,
        cpu.stop(),
        connections,
        "query",
        false,
    )
    .with("requests_per_s", outcome.ops_per_s())
    .with(
        "query_mix",
        "GET /shop/orders/{id}, GET /shop/products/{sku}",
    );

    // Raw appends: one event per request, each connection to its own stream.
    let event = format!(
        r#"{{"expected_version":"any","events":[{{"type":"{BENCH_TYPE}","data":{}}}]}}"#,
        String::from_utf8_lossy(&payload(args.event_bytes))
    );
    let cpu = CpuMeter::start(server.pid());
    let outcome = closed_loop(connections, window, |c| {
        let conn = conns[c].clone();
        let event = event.clone();
        move |_| {
            let conn = conn.clone();
            let body = event.clone();
            async move {
                conn.lock_owned()
                    .await
                    .expect_ok(Method::POST, &format!("/streams/http-{c}"), Some(body))
                    .await?;
                Ok(1)
            }
        }
    })
    .await;
    let cpu = cpu.stop();
    let appends = report("http_appends", &outcome, cpu, connections, "request", true)
        .with("requests_per_s", outcome.ops_per_s())
        .with("event_bytes", args.event_bytes);
    Ok(vec![commands, queries, appends])
}

fn sku(p: u64) -> String {
    format!("sku{p}")
}

/// The `seq`-th query of connection `c`: an order some connection completed, or a
/// product, in turn.
pub(crate) fn query_path(known: &[u64], c: usize, seq: u64, products: u64) -> String {
    let spread = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 16;
    if seq.is_multiple_of(2) {
        let owners = known.len().max(1);
        for step in 0..owners {
            let owner = (c + step + spread as usize) % owners;
            if let Some(&n) = known.get(owner).filter(|n| **n > 0) {
                return format!("/shop/orders/h{owner}-{}", spread % n);
            }
        }
    }
    format!("/shop/products/{}", sku(spread % products.max(1)))
}

/// A phase's result. The server's store runs in the child process, whose fdatasyncs
/// this one cannot count, so nothing is matched and no ratio is printed. `events_per_s`
/// is printed only for a phase that `appends` (one event per request); a query reads
/// read-model rows, not events.
fn report(
    scenario: &str,
    outcome: &LoadOutcome,
    cpu: CpuUse,
    connections: usize,
    latency_is_per: &str,
    appends: bool,
) -> ScenarioResult {
    let seconds = outcome.window.as_secs_f64();
    let events_per_s = appends.then(|| outcome.events_per_s());
    ScenarioResult::new(scenario, events_per_s, &outcome.latency, latency_is_per)
        .against(&Ceiling::None(
            "the server runs in a child process whose fdatasyncs are not counted",
        ))
        .with("connections", connections)
        .with("seconds", seconds)
        .with("server_cpu_cores", cpu.server_s / cpu.wall_s.max(1e-9))
        .with("bench_cpu_cores", cpu.bench_s / cpu.wall_s.max(1e-9))
        .with("errors", outcome.errors)
        .with("first_error", outcome.first_error.clone())
}

#[derive(Deserialize)]
struct CommandAnswer {
    position: u64,
}

/// One keep-alive HTTP/1.1 connection.
struct Conn {
    sender: http1::SendRequest<Full<Bytes>>,
    host: String,
}

type SharedConn = Arc<tokio::sync::Mutex<Conn>>;

async fn connect_all(addr: SocketAddr, n: usize) -> Result<Vec<SharedConn>> {
    let mut conns = Vec::with_capacity(n);
    for _ in 0..n {
        conns.push(Arc::new(tokio::sync::Mutex::new(
            Conn::connect(addr).await?,
        )));
    }
    Ok(conns)
}

impl Conn {
    async fn connect(addr: SocketAddr) -> Result<Self> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .with_context(|| format!("cannot connect to {addr}"))?;
        tcp.set_nodelay(true)
            .with_context(|| format!("cannot set TCP_NODELAY on {addr}"))?;
        let (sender, connection) = http1::handshake(TokioIo::new(tcp))
            .await
            .with_context(|| format!("cannot start HTTP with {addr}"))?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "a benchmark connection ended");
            }
        });
        Ok(Self {
            sender,
            host: addr.to_string(),
        })
    }

    /// Sends a request and answers the body of a 200, or fails naming the status.
    async fn expect_ok(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<Bytes> {
        let (status, body) = self.send(method.clone(), path, body).await?;
        ensure!(
            status == StatusCode::OK,
            "{method} {path} answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        Ok(body)
    }

    async fn send(
        &mut self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes)> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.host);
        if body.is_some() {
            request = request.header(hyper::header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .with_context(|| format!("cannot build the request {path}"))?;
        self.sender.ready().await.context("the connection closed")?;
        let response = self
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("{path}: no answer"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("{path}: the answer broke off"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// A `strata serve` child on a loopback port of the kernel's choosing.
struct Server {
    child: Child,
    addr: SocketAddr,
    log: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    fn start(data_dir: &Path) -> Result<Self> {
        let exe = std::env::current_exe().context("cannot find the strata binary")?;
        let mut child = Command::new(exe)
            .arg("--data-dir")
            .arg(data_dir)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env_remove("RUST_LOG")
            .env_remove("STRATA_TOKENS_FILE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start strata serve")?;
        let stderr = child.stderr.take().context("no standard error to read")?;
        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (found, addr_rx) = std::sync::mpsc::channel();
        let kept = log.clone();
        // NOTE: the server's standard error is read to its end, or a full pipe would
        // block its logging and so the server.
        std::thread::spawn(move || {
            let mut found = Some(found);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let line = strip_ansi(&line);
                if let Some(addr) = listen_address(&line)
                    && let Some(tx) = found.take()
                {
                    let _ = tx.send(addr);
                }
                let mut kept = kept
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if kept.len() == KEPT_LOG_LINES {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        let mut server = Self {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        match addr_rx.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                server.addr = addr;
                Ok(server)
            }
            Err(_) => {
                let _ = server.child.kill();
                let _ = server.child.wait();
                bail!(
                    "strata serve did not start listening: {}",
                    server.log_tail()
                )
            }
        }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log_tail(&self) -> String {
        let log = self
            .log
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        log.iter().cloned().collect::<Vec<_>>().join(" | ")
    }

    /// Stops the server with SIGTERM, as an operator would, and waits for it.
    fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let deadline = std::time::Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .context("cannot wait for strata serve")?
            {
                ensure!(
                    status.success(),
                    "strata serve exited with {status}: {}",
                    self.log_tail()
                );
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                bail!("strata serve did not stop on SIGTERM: {}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The address in the server's "serving on http://ADDR" line.
pub(crate) fn listen_address(line: &str) -> Option<SocketAddr> {
    let rest = line.split("serving on http://").nth(1)?;
    let addr = rest.split(|c: char| c.is_whitespace() || c == '/').next()?;
    addr.parse().ok()
}

/// `line` without terminal colour sequences (`ESC [ … m`).
pub(crate) fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// CPU time of the server and of this process over a phase.
struct CpuMeter {
    pid: u32,
    started: std::time::Instant,
    server: f64,
    bench: f64,
}

#[derive(Clone, Copy)]
struct CpuUse {
    wall_s: f64,
    server_s: f64,
    bench_s: f64,
}

impl CpuMeter {
    fn start(pid: u32) -> Self {
        Self {
            pid,
            started: std::time::Instant::now(),
            server: cpu_seconds(&format!("/proc/{pid}/stat")).unwrap_or(0.0),
            bench: cpu_seconds("/proc/self/stat").unwrap_or(0.0),
        }
    }

    fn stop(self) -> CpuUse {
        let server = cpu_seconds(&format!("/proc/{}/stat", self.pid)).unwrap_or(0.0);
        let bench = cpu_seconds("/proc/self/stat").unwrap_or(0.0);
        CpuUse {
            wall_s: self.started.elapsed().as_secs_f64(),
            server_s: server - self.server,
            bench_s: bench - self.bench,
        }
    }
}

/// User and system CPU seconds of a process, from its `stat` file.
fn cpu_seconds(path: &str) -> Option<f64> {
    parse_cpu_ticks(&std::fs::read_to_string(path).ok()?)
        .map(|t| t as f64 / crate::system::clock_ticks_per_s())
}

/// utime + stime (fields 14 and 15) of a `/proc/<pid>/stat` line; the command name in
/// parentheses may hold spaces, so fields are counted after its closing parenthesis.
pub(crate) fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let after = stat.rsplit_once(')')?.1;
    let mut fields = after.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}
