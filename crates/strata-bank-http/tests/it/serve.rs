//! The `strata-bank` binary end to end: accounts, a refused overdraft, a transfer that
//! completes and one that fails, balances read after a consistency token, the owned
//! categories closed to raw appends, and a graceful stop.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long the test waits for the server at most.
const WAIT: Duration = Duration::from_secs(10);

/// A running `strata-bank`, killed if the test ends early.
struct Server {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts the binary on any free port and reads the address it prints.
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_strata-bank"))
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("strata-bank starts");
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        // Keeps reading the log so that the server never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in stderr.lines().map_while(Result::ok) {
                if let Some(at) = line.find("serving on http://") {
                    let rest = &line[at + "serving on http://".len()..];
                    let addr = rest.split_whitespace().next().unwrap_or_default();
                    let _ = tx.send(addr.parse::<SocketAddr>().ok());
                }
            }
        });
        let addr = rx
            .recv_timeout(WAIT)
            .expect("strata-bank says where it serves")
            .expect("the address it prints parses");
        Server {
            child,
            addr,
            _dir: dir,
        }
    }

    /// Sends one request and answers its status and JSON body.
    fn request(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        let (head, body) = answer.split_once("\r\n\r\n").expect("a head and a body");
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        let json = if body.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(body).unwrap_or_else(|e| panic!("{path}: not JSON ({e}): {body}"))
        };
        (status, json)
    }

    /// A command that must succeed; its consistency token.
    fn command(&self, path: &str, body: Value) -> u64 {
        let (status, answer) = self.request("POST", path, Some(body));
        assert_eq!(status, 200, "{path}: {answer}");
        answer["position"].as_u64().expect("a position")
    }

    /// Polls `path` until `done` holds for its answer.
    fn until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let (status, answer) = self.request("GET", path, None);
            if status == 200 && done(&answer) {
                return answer;
            }
            assert!(Instant::now() < deadline, "{path} still answers {answer}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server with SIGTERM and waits for its exit status.
    fn stop(mut self) -> std::process::ExitStatus {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(terminated.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "strata-bank did not stop");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_bank_binary_serves_accounts_and_transfers() {
    let server = Server::start();
    server.command("/bank/accounts/alice", json!({"owner": "Alice"}));
    server.command("/bank/accounts/bob", json!({"owner": "Bob"}));
    let deposited = server.command("/bank/accounts/alice/deposit", json!({"amount": 100}));

    // Read your write: the balance after the deposit's token includes it.
    let (status, alice) = server.request(
        "GET",
        &format!("/bank/accounts/alice?after={deposited}"),
        None,
    );
    assert_eq!(status, 200, "{alice}");
    assert_eq!(
        alice,
        json!({"account": "alice", "owner": "Alice", "balance": 100})
    );

    // An overdraft is refused with the domain's code, and nothing is written.
    let (status, refused) = server.request(
        "POST",
        "/bank/accounts/alice/withdraw",
        Some(json!({"amount": 101})),
    );
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["code"], "insufficient_funds");

    // A transfer completes; one beyond the balance fails and says why.
    server.command(
        "/bank/transfers/t-1",
        json!({"from": "alice", "to": "bob", "amount": 30}),
    );
    server.command(
        "/bank/transfers/t-2",
        json!({"from": "bob", "to": "alice", "amount": 500}),
    );
    let t1 = server.until("/bank/transfers/t-1", |t| t["status"] != "requested");
    assert_eq!(
        t1,
        json!({"id": "t-1", "from": "alice", "to": "bob", "amount": 30,
               "status": "completed", "reason": null})
    );
    let t2 = server.until("/bank/transfers/t-2", |t| t["status"] != "requested");
    assert_eq!(t2["status"], "failed");
    assert_eq!(t2["reason"], "insufficient_funds");
    server.until("/bank/accounts/alice", |a| a["balance"] == 70);
    server.until("/bank/accounts/bob", |a| a["balance"] == 30);

    // Clear answers for what is not there or not well-formed.
    let (status, missing) = server.request("GET", "/bank/accounts/carol", None);
    assert_eq!(
        (status, missing["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (status, missing) = server.request("GET", "/bank/transfers/t-9", None);
    assert_eq!(
        (status, missing["error"]["code"].clone()),
        (404, json!("not_found"))
    );
    let (status, malformed) = server.request(
        "POST",
        "/bank/accounts/alice/deposit",
        Some(json!({"amount": -5})),
    );
    assert_eq!(status, 400, "{malformed}");

    // The bank's categories are written only through its commands.
    let (status, raw) = server.request(
        "POST",
        "/streams/account-alice",
        Some(json!({"events": [
            {"type": "MoneyDeposited", "data": {"account": "alice", "amount": 1}}
        ]})),
    );
    assert_eq!(status, 403, "{raw}");
    assert_eq!(raw["error"]["code"], "category_owned");

    // The routes are documented.
    let (status, openapi) = server.request("GET", "/openapi.json", None);
    assert_eq!(status, 200);
    for path in [
        "/bank/accounts/{id}",
        "/bank/accounts/{id}/deposit",
        "/bank/accounts/{id}/withdraw",
        "/bank/transfers/{id}",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "{path} is not documented"
        );
    }

    let status = server.stop();
    assert!(status.success(), "strata-bank exited with {status}");
}

#[test]
fn the_bank_binary_refuses_to_listen_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_strata-bank"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0"),
        "{stderr}"
    );
    // Nothing was opened or created.
    assert!(!dir.path().join("data").exists());
}
