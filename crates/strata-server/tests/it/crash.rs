//! A real `strata serve` under HTTP load is killed with SIGKILL and restarted: every
//! append and shop command it acknowledged is there afterwards, and the read models
//! catch up with them.
//!
//! Uses the `strata` binary next to this test's directory (`target/<profile>/strata`,
//! built by `cargo test --workspace`), or the one `STRATA_BIN` names.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The strata binary to run.
pub(crate) fn strata_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("STRATA_BIN") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test knows its path");
    // target/<profile>/deps/it-<hash> → target/<profile>/strata
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("the test runs from target/<profile>/deps");
    let bin = profile_dir.join("strata");
    if !bin.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "-p", "strata-cli", "--bin", "strata"])
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cannot build the strata binary");
    }
    assert!(bin.exists(), "no strata binary at {}", bin.display());
    bin
}

pub(crate) fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// One HTTP/1.1 request on a fresh connection; the status and body.
pub(crate) fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("no header end"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("no status"))?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    Ok((status, body))
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

struct Server {
    child: Child,
    addr: SocketAddr,
}

fn start(dir: &Path) -> Server {
    let addr = free_addr();
    let mut child = Command::new(strata_bin())
        .args(["serve", "--data-dir"])
        .arg(dir)
        .args(["--listen", &addr.to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("strata serve starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok((200, _)) = request(addr, "GET", "/health", None, &[]) {
            return Server { child, addr };
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("strata serve did not answer /health within 30 s");
}

/// What a load thread saw acknowledged.
#[derive(Default)]
struct Acked {
    /// (stream, event id, position) of acknowledged appends.
    appends: Vec<(String, String, u64)>,
    /// (order id, position) of acknowledged order creations.
    orders: Vec<(String, u64)>,
}

fn load(addr: SocketAddr, thread: usize, stop: Arc<AtomicBool>) -> Acked {
    let mut acked = Acked::default();
    for i in 0..5000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if i % 2 == 0 {
            let stream = format!("crash-{thread}");
            let id = uuid::Uuid::now_v7().to_string();
            let body = json!({"events": [{"type": "Tick", "data": {"i": i}, "id": id}]});
            match request(
                addr,
                "POST",
                &format!("/streams/{stream}"),
                Some(&body),
                &[],
            ) {
                Ok((200, answer)) => {
                    let answer: Value = serde_json::from_str(&answer).unwrap();
                    acked
                        .appends
                        .push((stream, id, answer["position"].as_u64().unwrap()));
                }
                Ok((status, answer)) => panic!("append answered {status}: {answer}"),
                Err(_) => break,
            }
        } else {
            let order = format!("k{thread}-{i}");
            let key = uuid::Uuid::now_v7().to_string();
            let body = json!({"customer": format!("c-{thread}")});
            match request(
                addr,
                "POST",
                &format!("/shop/orders/{order}"),
                Some(&body),
                &[("Idempotency-Key", &key)],
            ) {
                Ok((200, answer)) => {
                    let answer: Value = serde_json::from_str(&answer).unwrap();
                    acked
                        .orders
                        .push((order, answer["position"].as_u64().unwrap()));
                }
                Ok((status, answer)) => panic!("command answered {status}: {answer}"),
                Err(_) => break,
            }
        }
    }
    acked
}

/// Every event of `stream`.
fn read_stream(addr: SocketAddr, stream: &str) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let from = events.len() + 1;
        let (status, body) = request(
            addr,
            "GET",
            &format!("/streams/{stream}?from={from}&limit=1000"),
            None,
            &[],
        )
        .unwrap();
        assert_eq!(status, 200, "{body}");
        let body: Value = serde_json::from_str(&body).unwrap();
        let page = body["events"].as_array().unwrap().clone();
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

#[test]
fn a_sigkilled_server_keeps_every_acknowledged_append_and_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = start(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let stop = stop.clone();
            let addr = server.addr;
            std::thread::spawn(move || load(addr, t, stop))
        })
        .collect();
    // Let load build up, then kill the server mid-flight.
    std::thread::sleep(Duration::from_millis(1500));
    server.child.kill().expect("SIGKILL"); // Child::kill sends SIGKILL on Unix.
    server.child.wait().unwrap();
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let appends: usize = acked.iter().map(|a| a.appends.len()).sum();
    let orders: usize = acked.iter().map(|a| a.orders.len()).sum();
    eprintln!("killed under load: {appends} appends and {orders} commands acknowledged");
    assert!(
        appends > 10 && orders > 10,
        "too little load: {appends} appends, {orders} commands"
    );

    let mut server = start(dir.path());
    let addr = server.addr;
    for a in &acked {
        let mut streams = std::collections::HashMap::new();
        for (stream, id, position) in &a.appends {
            let events = streams
                .entry(stream.clone())
                .or_insert_with(|| read_stream(addr, stream));
            let found = events.iter().find(|e| e["id"] == id.as_str());
            let event =
                found.unwrap_or_else(|| panic!("acknowledged event {id} of {stream} is lost"));
            assert_eq!(event["position"], *position);
        }
        for (order, position) in &a.orders {
            let (status, body) = request(
                addr,
                "GET",
                &format!("/shop/orders/{order}?after={position}&timeout_ms=20000"),
                None,
                &[],
            )
            .unwrap();
            assert_eq!(status, 200, "acknowledged order {order} missing: {body}");
        }
    }
    // A graceful stop after the restart exits 0.
    let pid = server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let exit = server.child.wait().unwrap();
    assert!(exit.success(), "strata serve exited with {exit}");
}
