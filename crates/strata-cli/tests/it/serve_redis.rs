//! `strata serve --redis redis://...`: the shop's catalog kept in Redis and its hot
//! queries cached there, listed in `/projections` and answering `after=` through the
//! cache. Needs `STRATA_TEST_REDIS_URL`; says it is skipped without it. Works under a
//! key prefix of its own, removed after.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// One HTTP/1.1 request on a fresh connection: the status and the body.
fn request(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").expect("a head");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, serde_json::from_str(rest).unwrap_or(Value::Null))
}

fn ok(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Value {
    match request(addr, method, path, body) {
        (200, answer) => answer,
        other => panic!("{method} {path} answered {other:?}"),
    }
}

/// A running `strata serve`, killed when dropped.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data_dir: &Path, redis: &str, prefix: &str) -> Server {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &addr.to_string()])
        .args(["--redis", redis, "--redis-prefix", prefix])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("strata serve starts");
    let server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() && request(addr, "GET", "/health", None).0 == 200 {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("strata serve --redis did not answer /health within 60 s");
}

/// Removes every key under `prefix`.
fn clean(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL").arg(&keys).exec(&mut conn).unwrap();
    }
}

#[test]
fn serve_keeps_the_catalog_in_redis_and_answers_after_through_the_cache() {
    let url = match std::env::var("STRATA_TEST_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            println!("skipped serve with redis: STRATA_TEST_REDIS_URL is unset");
            return;
        }
    };
    let prefix = format!("strata-test:{}:", uuid::Uuid::new_v4().simple());
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = serve(scratch.path(), &url, &prefix);
    let addr = server.addr;
    ok(
        addr,
        "POST",
        "/shop/products/mug",
        Some(&json!({"name": "Blue mug", "description": "a blue ceramic mug", "price": 1250})),
    );
    let receive = |quantity: u64| {
        ok(
            addr,
            "POST",
            "/shop/inventory/mug/receive",
            Some(&json!({"quantity": quantity})),
        )["position"]
            .as_u64()
            .expect("a consistency token")
    };
    let first = receive(5);
    let product = |after: u64| {
        ok(
            addr,
            "GET",
            &format!("/shop/products/mug?after={after}"),
            None,
        )
    };
    assert_eq!(product(first)["available"], 5);
    assert_eq!(product(first)["available"], 5);
    // A later write: the cached answer is older than `after` and is not served.
    let second = receive(3);
    assert_eq!(product(second)["available"], 8);

    let runners = ok(addr, "GET", "/projections", None);
    let text = runners.to_string();
    for name in ["shop_catalog", "shop_catalog_redis", "query_cache"] {
        assert!(text.contains(&format!("\"{name}\"")), "{name} in {text}");
    }
    let (status, _) = request(
        addr,
        "POST",
        "/projections/shop_catalog_redis/rebuild",
        None,
    );
    assert_eq!(status, 409, "a Redis model is not rebuilt in place");
    drop(server);
    clean(&url, &prefix);
}
