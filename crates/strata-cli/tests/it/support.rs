//! Running the built `strata` binary against a temporary data directory.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any one command may take before the test fails.
pub(crate) const TIMEOUT: Duration = Duration::from_secs(60);

/// A temporary data directory and the binary to run against it.
pub(crate) struct Strata {
    dir: tempfile::TempDir,
}

impl Strata {
    pub(crate) fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The data directory (not created until a writer opens it).
    pub(crate) fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The temporary directory holding the data directory, for other files.
    pub(crate) fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// A command running the binary against this data directory (via the environment).
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
        command
            .args(args)
            .env("STRATA_DATA_DIR", self.data_dir())
            .env_remove("RUST_LOG");
        command
    }

    /// Runs the binary with `stdin` as its input and waits for it.
    pub(crate) fn run(&self, args: &[&str], stdin: &str) -> Run {
        run(self.command(args), stdin.as_bytes())
    }

    /// Appends the given lines and checks that every one was acknowledged.
    pub(crate) fn append_ok(&self, lines: &[Value]) -> Vec<Value> {
        let input: String = lines.iter().map(|l| format!("{l}\n")).collect();
        let run = self.run(&["append"], &input);
        run.assert_success();
        let acks = run.json_lines();
        assert_eq!(acks.len(), lines.len(), "{run:?}");
        for ack in &acks {
            assert!(ack.get("error").is_none(), "{ack}");
        }
        acks
    }
}

/// Runs a command with the given input, failing the test after [`TIMEOUT`].
pub(crate) fn run(mut command: Command, stdin: &[u8]) -> Run {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the strata binary starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    let stdin = stdin.to_vec();
    let feeder = thread::spawn(move || {
        // The command may exit before reading everything; that is its business.
        let _ = input.write_all(&stdin);
    });
    let output = wait_output(child, TIMEOUT);
    feeder.join().expect("the input thread");
    Run(output)
}

/// Waits for a child's output, killing it and failing the test after `timeout`.
pub(crate) fn wait_output(child: Child, timeout: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(timeout) {
        Ok(output) => output.expect("the child's output"),
        Err(_) => {
            signal(pid, "KILL");
            panic!("strata (pid {pid}) did not finish within {timeout:?}");
        }
    }
}

/// Waits for a child to exit, failing the test after `timeout`.
pub(crate) fn wait_status(child: &mut Child, timeout: Duration) -> ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("the child's status") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "strata (pid {}) did not exit within {timeout:?}",
                child.id()
            );
        }
        thread::sleep(Duration::from_millis(10));
    }
}

/// Sends a signal (by name, `TERM`, `INT`, `KILL`) to a process.
pub(crate) fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Reads a child's standard output line by line on a thread.
pub(crate) fn lines_of(child: &mut Child) -> mpsc::Receiver<String> {
    let stdout = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// A finished run of the binary.
pub(crate) struct Run(pub(crate) Output);

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.0.status,
            self.stdout(),
            self.stderr()
        )
    }
}

impl Run {
    pub(crate) fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.0.stdout).into_owned()
    }

    pub(crate) fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }

    pub(crate) fn code(&self) -> Option<i32> {
        self.0.status.code()
    }

    pub(crate) fn json_lines(&self) -> Vec<Value> {
        self.stdout()
            .lines()
            .map(|line| {
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}\n{self:?}"))
            })
            .collect()
    }

    /// Exit 0 and nothing alarming on stderr.
    pub(crate) fn assert_success(&self) {
        assert_eq!(self.code(), Some(0), "{self:?}");
        self.assert_no_panic();
    }

    /// A clean failure: the given exit code, one line on stderr mentioning `needle`.
    pub(crate) fn assert_failure(&self, code: i32, needle: &str) {
        assert_eq!(self.code(), Some(code), "{self:?}");
        self.assert_no_panic();
        let stderr = self.stderr();
        assert!(
            stderr.contains(needle),
            "stderr should mention {needle:?}\n{self:?}"
        );
        if code == 1 {
            assert_eq!(
                stderr.trim_end().lines().count(),
                1,
                "one line on stderr\n{self:?}"
            );
            assert!(stderr.starts_with("error: "), "{self:?}");
        }
    }

    pub(crate) fn assert_no_panic(&self) {
        let stderr = self.stderr();
        assert!(
            !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
            "{self:?}"
        );
    }
}

/// The JSON value of an append line with one event per type.
pub(crate) fn append_line(stream: &str, expected: Value, types: &[&str]) -> Value {
    let events: Vec<Value> = types
        .iter()
        .enumerate()
        .map(|(i, t)| serde_json::json!({"type": t, "data": {"n": i}}))
        .collect();
    serde_json::json!({"stream": stream, "expected_version": expected, "events": events})
}

/// Writes `appends` (stream and events, each one append and one batch) into a store in
/// `dir` through the library, with `segment_bytes` per segment, and closes it.
pub(crate) fn write_store(
    dir: &Path,
    segment_bytes: u64,
    appends: Vec<(&str, Vec<strata_core::NewEvent>)>,
) {
    let options = strata_store_embedded::Options {
        segment_bytes,
        ..strata_store_embedded::Options::default()
    };
    let store = strata_store_embedded::EmbeddedStore::open(dir, options).expect("opens");
    for (stream, events) in appends {
        let stream = strata_core::StreamName::new(stream).expect("a valid stream");
        store
            .append_blocking(&stream, strata_core::ExpectedVersion::Any, events)
            .expect("appends");
    }
    block_on(store.close()).expect("closes");
}

/// Every event of the store in `dir`, read through the library.
pub(crate) fn read_store(dir: &Path) -> Vec<strata_core::RecordedEvent> {
    let options = strata_store_embedded::Options::default();
    let store = strata_store_embedded::EmbeddedStore::open_read_only(dir, options).expect("opens");
    let mut events = Vec::new();
    let mut next = strata_core::Position(1);
    loop {
        let page = store
            .read_all_sync(next, 1000, &strata_store::ReadFilter::all())
            .expect("reads");
        if page.events.is_empty() {
            return events;
        }
        events.extend(page.events);
        next = page.next;
    }
}

/// Runs a future to completion on a small runtime of its own.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime")
        .block_on(future)
}

/// One HTTP/1.1 request on a fresh connection to a `strata serve` child: the status and
/// the JSON body (`Null` when it is not JSON), or `None` when the exchange fails.
pub(crate) fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    use std::io::Read as _;
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, serde_json::from_str(rest).unwrap_or(Value::Null)))
}

/// A request that must answer 200: its body.
pub(crate) fn http_ok(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Value {
    match http_request(addr, method, path, body) {
        Some((200, answer)) => answer,
        other => panic!("{method} {path} on {addr} answered {other:?}"),
    }
}

/// A running `strata serve` child on a free loopback port, killed when dropped.
pub(crate) struct Served {
    pub(crate) child: Child,
    pub(crate) addr: std::net::SocketAddr,
}

impl Served {
    /// Starts `strata serve --data-dir <data_dir> --listen <free port>` with `args` and
    /// `env` (logging at `warn`) and does not wait for it.
    pub(crate) fn spawn(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port");
        let child = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &addr.to_string()])
            .args(args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("strata serve starts");
        Self { child, addr }
    }

    /// Starts it as [`Served::spawn`] does and waits until it answers `/health`.
    pub(crate) fn start(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let served = Self::spawn(data_dir, args, env);
        served.wait_healthy(TIMEOUT, &format!("strata serve {args:?}"));
        served
    }

    /// Waits until it answers `GET /health` with 200; panics naming `what` after
    /// `timeout`.
    pub(crate) fn wait_healthy(&self, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some((200, _)) = http_request(self.addr, "GET", "/health", None) {
                return;
            }
            thread::sleep(Duration::from_millis(50));
        }
        panic!("{what} did not answer /health within {timeout:?}");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The PostgreSQL URL the tests run against, or `None` after printing that `what` is
/// skipped because `STRATA_TEST_POSTGRES_URL` is unset.
pub(crate) fn postgres_url(what: &str) -> Option<String> {
    match std::env::var("STRATA_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ => {
            println!("skipped {what}: STRATA_TEST_POSTGRES_URL is unset");
            None
        }
    }
}

/// The rows of `sql` on the database of `url`, each column as text (`""` for NULL). It
/// runs on a thread and runtime of its own, so it may be called from anywhere.
pub(crate) fn pg_rows(url: &str, sql: &str) -> Vec<Vec<String>> {
    use std::str::FromStr as _;
    let config = tokio_postgres::Config::from_str(url).expect("a PostgreSQL URL");
    let sql = sql.to_owned();
    thread::spawn(move || {
        block_on(async {
            let (client, connection) = config
                .connect(tokio_postgres::NoTls)
                .await
                .expect("connect to PostgreSQL");
            tokio::spawn(connection);
            let messages = client
                .simple_query(&sql)
                .await
                .unwrap_or_else(|err| panic!("{sql}: {err}"));
            messages
                .iter()
                .filter_map(|message| match message {
                    tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                        (0..row.len())
                            .map(|i| row.get(i).unwrap_or_default().to_owned())
                            .collect(),
                    ),
                    _ => None,
                })
                .collect()
        })
    })
    .join()
    .expect("the query ran")
}

/// The first column of the first row of `sql` on the database of `url`, as a number.
pub(crate) fn pg_value(url: &str, sql: &str) -> Option<i64> {
    pg_rows(url, sql).first()?.first()?.parse().ok()
}

/// `url` with its database replaced by `name`.
pub(crate) fn with_database(url: &str, name: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, _)) if base.contains("://") => format!("{base}/{name}"),
        _ => panic!("{url} names no database to replace"),
    }
}

/// A database made for one test on the server of a URL, dropped with it (with any
/// connection left to it).
pub(crate) struct TestDatabase {
    server: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates a fresh database on the server of `url`.
    pub(crate) fn create(url: &str) -> Self {
        let name = format!("strata_cli_test_{}", uuid::Uuid::new_v4().simple());
        pg_rows(url, &format!("CREATE DATABASE \"{name}\""));
        Self {
            server: url.to_owned(),
            url: with_database(url, &name),
            name,
        }
    }

    /// Its name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// A URL of the same server with this database.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        pg_rows(
            &self.server,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}
