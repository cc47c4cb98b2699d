//! Clients that hold connections without finishing requests: idle, slow-header and
//! slow-body connections are closed, connections beyond the cap are refused at once,
//! subscribers beyond theirs are answered 503, and a subscriber that stops reading is
//! let go; the server keeps serving everyone else. In process, on loopback, and one real
//! `strata serve` under a low open-file limit.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use strata_core::ExpectedVersion;
use strata_server::{AppState, Limits, serve};
use strata_store::{EventStore, MemoryStore};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::oneshot;

use crate::crash::{free_addr, request, strata_bin};

/// The longest any wait in these tests may take before it counts as a hang.
const BOUND: Duration = Duration::from_secs(20);

/// A server on loopback with `limits`, stopped when dropped.
struct Running {
    addr: SocketAddr,
    store: Arc<MemoryStore>,
    _stop: oneshot::Sender<()>,
}

async fn start(limits: Limits) -> Running {
    let store = Arc::new(MemoryStore::new());
    let state = AppState::builder(store.clone()).limits(limits).build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, state, async move {
        let _ = stopped.await;
    }));
    Running {
        addr,
        store,
        _stop: stop,
    }
}

/// Reads until the server closes the connection (end of file or reset); what it sent.
async fn until_closed(stream: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the server left the connection open");
    String::from_utf8_lossy(&seen).into_owned()
}

/// One `GET` on a fresh connection: its status and body, or `None` if refused.
async fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    let text = until_closed(&mut stream).await;
    status_and_body(&text)
}

fn status_and_body(text: &str) -> (u16, String) {
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn short(header: Duration) -> Limits {
    Limits {
        header_timeout: header,
        body_timeout: Duration::from_millis(300),
        ..Limits::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_that_never_finishes_its_head_is_closed() {
    let server = start(short(Duration::from_millis(300))).await;
    let mut silent = TcpStream::connect(server.addr).await.unwrap();
    let mut slow = TcpStream::connect(server.addr).await.unwrap();
    slow.write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n")
        .await
        .unwrap();
    until_closed(&mut silent).await;
    until_closed(&mut slow).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_left_idle_is_closed() {
    let server = start(short(Duration::from_millis(300))).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(b"GET /health HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    // The answer comes, and then, with no further request, the close.
    let text = until_closed(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_is_refused_and_closed() {
    let server = start(short(Duration::from_secs(10))).await;
    let mut stream = TcpStream::connect(server.addr).await.unwrap();
    stream
        .write_all(
            b"POST /streams/slow-1 HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
              content-length: 1000\r\n\r\n{\"events\":",
        )
        .await
        .unwrap();
    let text = until_closed(&mut stream).await;
    let (status, body) = status_and_body(&text);
    assert_eq!(status, 400, "{text}");
    assert!(body.contains("request body"), "{body}");
    assert_eq!(server.store.head().await.unwrap().0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_are_refused_at_once_and_the_rest_served() {
    let server = start(Limits {
        max_connections: Some(4),
        header_timeout: Duration::from_secs(60),
        ..Limits::default()
    })
    .await;
    let mut idle = Vec::new();
    for _ in 0..4 {
        idle.push(TcpStream::connect(server.addr).await.unwrap());
    }
    // The listener hands connections over in order, so the fifth is beyond the cap.
    let mut extra = TcpStream::connect(server.addr).await.unwrap();
    let text = until_closed(&mut extra).await;
    let (status, body) = status_and_body(&text);
    assert_eq!(status, 503, "{text}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "too_many_connections");
    // One idle client leaves: the server serves again as soon as it has noticed.
    drop(idle.pop());
    let deadline = Instant::now() + BOUND;
    loop {
        let (status, _) = get(server.addr, "/health").await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(
            Instant::now() < deadline,
            "the freed connection was never reused"
        );
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_beyond_the_cap_are_answered_503() {
    let server = start(Limits {
        max_subscribers: 2,
        ..Limits::default()
    })
    .await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(server.addr).await.unwrap();
        stream
            .write_all(b"GET /subscribe HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut head = [0u8; 12];
        stream.read_exact(&mut head).await.unwrap();
        assert_eq!(&head, b"HTTP/1.1 200");
        held.push(stream);
    }
    let (status, body) = get(server.addr, "/subscribe").await;
    assert_eq!(status, 503, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "too_many_subscribers");
    // Other routes are served all along.
    assert_eq!(get(server.addr, "/health").await.0, 200);
    drop(held);
}

/// Fills the log with about 24 MiB: several times what a loopback socket's buffers hold.
async fn fill(store: &MemoryStore) {
    let data = format!("{{\"pad\":\"{}\"}}", "x".repeat(8 * 1024));
    for batch in 0..60 {
        let events = (0..50)
            .map(|_| strata_core::NewEvent {
                id: strata_core::EventId::new(),
                event_type: strata_core::EventType::new("Padded").unwrap(),
                data: bytes::Bytes::from(data.clone()),
                metadata: bytes::Bytes::from_static(b"{}"),
            })
            .collect();
        let stream = strata_core::StreamName::new(format!("pad-{batch}")).unwrap();
        store
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
}

/// A subscription on a socket with a small receive buffer, its head read.
async fn subscribe_small(addr: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(addr).await.unwrap();
    stream
        .write_all(b"GET /subscribe HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 200");
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_falls_behind_is_told_why_and_disconnected() {
    let server = start(Limits {
        subscriber_stall: Duration::from_millis(200),
        send_timeout: Duration::from_secs(60),
        ..Limits::default()
    })
    .await;
    fill(&server.store).await;
    let mut stream = subscribe_small(server.addr).await;
    // Not reading for a while lets the server's buffers fill and its next event wait.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let text = until_closed(&mut stream).await;
    assert!(
        text.contains("subscriber_too_slow"),
        "no final event in the last bytes: {}",
        &text[text.len().saturating_sub(400)..]
    );
    assert!(get(server.addr, "/health").await.0 == 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_reads_nothing_is_closed_after_the_send_timeout() {
    let server = start(Limits {
        send_timeout: Duration::from_millis(300),
        ..Limits::default()
    })
    .await;
    fill(&server.store).await;
    let _stream = subscribe_small(server.addr).await;
    // Without reading a byte more, the server lets the subscriber go.
    let deadline = Instant::now() + BOUND;
    loop {
        let (status, body) = get(server.addr, "/stats").await;
        assert_eq!(status, 200, "{body}");
        let stats: Value = serde_json::from_str(&body).unwrap();
        if stats["sse_subscribers"] == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled subscriber was kept: {stats}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The attack as reported: many idle connections against a real server whose open-file
/// limit is low. The server refuses what it cannot serve, closes idle connections, and
/// keeps answering health checks and read-model queries.
#[test]
fn idle_connections_do_not_exhaust_a_real_servers_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let script = format!(
        "ulimit -n 320 && exec \"$0\" serve --data-dir '{}' --listen {addr} --header-timeout 1",
        dir.path().display()
    );
    let mut child = Command::new("sh")
        .args(["-c", &script])
        .arg(strata_bin())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("strata serve starts");
    let healthy = |bound: Duration| {
        let deadline = Instant::now() + bound;
        while Instant::now() < deadline {
            if let Ok((200, _)) = request(addr, "GET", "/health", None, &[]) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    assert!(
        healthy(Duration::from_secs(30)),
        "strata serve did not start"
    );
    // More idle connections than the process may open files.
    let idle: Vec<_> = (0..400)
        .filter_map(|_| std::net::TcpStream::connect(addr).ok())
        .collect();
    assert!(idle.len() > 320, "only {} connections opened", idle.len());
    assert!(healthy(BOUND), "the server stopped answering /health");
    let (status, body) = request(addr, "GET", "/shop/products/mug?after=0", None, &[]).unwrap();
    assert!(
        status == 200 || status == 404,
        "a read-model query answered {status}: {body}"
    );
    // Every idle connection was either refused or closed, none left hanging.
    for mut stream in idle {
        use std::io::Read as _;
        stream.set_read_timeout(Some(BOUND)).unwrap();
        let mut sink = Vec::new();
        let ended = stream.read_to_end(&mut sink);
        assert!(
            ended.is_ok() || ended.is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
            "an idle connection was left open"
        );
    }
    let _ = child.kill();
    let _ = child.wait();
}
