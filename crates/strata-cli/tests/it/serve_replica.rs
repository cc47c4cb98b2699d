//! `strata serve --store postgres://primary --replica postgres://standby`: a real server
//! whose commands go to the primary and whose reads and read models come from a hot
//! standby; a query with `after=` answers what the command wrote, and waits while the
//! standby's replay is paused. Needs
//! `STRATA_TEST_POSTGRES_URL` and `STRATA_TEST_POSTGRES_REPLICA_URL` (scripts/services.sh
//! makes the standby); says it is skipped without them. Also checks, without any server,
//! that a bad `--replica` is refused in one sentence.

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::str::FromStr as _;
use std::time::{Duration, Instant};

use crate::support::{http_ok as ok, http_request as request};
use serde_json::json;
use tokio_postgres::NoTls;

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

fn serve(data_dir: &Path, store: &str, replica: &str) -> Server {
    let addr = TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let child = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--listen", &addr.to_string(), "--store", store])
        .args(["--replica", replica])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("strata serve starts");
    let server = Server { child, addr };
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Some((200, _)) = request(addr, "GET", "/health", None) {
            return server;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("strata serve --replica did not answer /health within 60 s");
}

/// Runs `sql` on the server of `config`; the first column of the first row, if any.
fn admin(config: &tokio_postgres::Config, sql: &str) -> Option<i64> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let (client, connection) = config.connect(NoTls).await.expect("connect to PostgreSQL");
        tokio::spawn(connection);
        let messages = client
            .simple_query(sql)
            .await
            .unwrap_or_else(|err| panic!("{sql}: {err}"));
        messages.iter().find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0)?.parse().ok(),
            _ => None,
        })
    })
}

/// A database made on the primary for the test (and so on its standby), dropped with it.
struct Database {
    admin: tokio_postgres::Config,
    name: String,
}

impl Drop for Database {
    fn drop(&mut self) {
        admin(
            &self.admin,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// Replay on the standby paused until dropped (scripts/services.sh resumes a replay
/// that a test which died left paused).
struct ReplayPaused(tokio_postgres::Config);

impl ReplayPaused {
    fn new(standby: &tokio_postgres::Config) -> Self {
        admin(standby, "SELECT pg_wal_replay_pause()");
        Self(standby.clone())
    }
}

impl Drop for ReplayPaused {
    fn drop(&mut self) {
        admin(&self.0, "SELECT pg_wal_replay_resume()");
    }
}

/// `url` with its database replaced by `name`.
fn with_database(url: &str, name: &str) -> String {
    match url.rsplit_once('/') {
        Some((base, _)) if base.contains("://") => format!("{base}/{name}"),
        _ => panic!("{url} names no database to replace"),
    }
}

#[test]
fn serve_with_a_replica_answers_a_query_after_a_command_from_the_standby() {
    let urls = [
        "STRATA_TEST_POSTGRES_URL",
        "STRATA_TEST_POSTGRES_REPLICA_URL",
    ]
    .map(|name| {
        std::env::var(name)
            .ok()
            .filter(|url| !url.trim().is_empty())
    });
    let [Some(primary), Some(standby)] = urls else {
        println!(
            "skipped serve with a replica: STRATA_TEST_POSTGRES_URL or STRATA_TEST_POSTGRES_REPLICA_URL is unset"
        );
        return;
    };
    let config = tokio_postgres::Config::from_str(&primary).expect("a PostgreSQL URL");
    let name = format!("strata_cli_test_{}", uuid::Uuid::new_v4().simple());
    admin(&config, &format!("CREATE DATABASE \"{name}\""));
    let database = Database {
        admin: config,
        name: name.clone(),
    };
    let mut standby_config = tokio_postgres::Config::from_str(&standby).expect("a PostgreSQL URL");
    standby_config.dbname(&name);

    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = serve(
        scratch.path(),
        &with_database(&primary, &name),
        &with_database(&standby, &name),
    );
    ok(
        server.addr,
        "POST",
        "/shop/products/mug",
        Some(&json!({"name": "Blue mug", "description": "a blue ceramic mug", "price": 1250})),
    );
    let received = ok(
        server.addr,
        "POST",
        "/shop/inventory/mug/receive",
        Some(&json!({"quantity": 5})),
    );
    let position = received["position"].as_u64().expect("a consistency token");
    let product = ok(
        server.addr,
        "GET",
        &format!("/shop/products/mug?after={position}"),
        None,
    );
    assert_eq!(
        product["available"], 5,
        "the read model, fed from the standby, includes the command: {product}"
    );
    // The read model reached the position, so the standby has replayed it.
    let stream = ok(server.addr, "GET", "/streams/inventory-mug", None);
    assert!(
        stream.to_string().contains("StockReceived"),
        "the standby serves the stream: {stream}"
    );
    let connections = admin(
        &standby_config,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'"),
    )
    .expect("a count");
    assert!(
        connections >= 2,
        "the server reads from the standby ({connections} connections, one of them the count's)"
    );

    // With replay paused, commands still load from and append to the primary (the
    // second one decides on the first one's version), while the read side waits.
    let paused = ReplayPaused::new(&standby_config);
    ok(
        server.addr,
        "POST",
        "/shop/inventory/mug/receive",
        Some(&json!({"quantity": 2})),
    );
    let received = ok(
        server.addr,
        "POST",
        "/shop/inventory/mug/receive",
        Some(&json!({"quantity": 3})),
    );
    let later = received["position"].as_u64().expect("a consistency token");
    match request(
        server.addr,
        "GET",
        &format!("/shop/products/mug?after={later}&timeout_ms=300"),
        None,
    ) {
        Some((503, answer)) => {
            assert_eq!(answer["error"]["code"], "consistency_timeout", "{answer}");
        }
        other => panic!("a query the standby cannot answer yet answered {other:?}"),
    }
    drop(paused);
    let product = ok(
        server.addr,
        "GET",
        &format!("/shop/products/mug?after={later}"),
        None,
    );
    assert_eq!(product["available"], 10, "once replayed: {product}");
    drop(server);
    drop(database);
}

#[test]
fn a_replica_without_a_postgres_store_is_refused_in_one_sentence() {
    let scratch = tempfile::tempdir().expect("a temporary directory");
    for (args, says) in [
        (
            vec!["--replica", "postgres://app@standby/shop"],
            "--replica needs --store",
        ),
        (
            vec![
                "--store",
                "postgres://app@primary/shop",
                "--replica",
                "redis://standby",
            ],
            "--replica takes a postgres:// URL",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("serve")
            .arg("--data-dir")
            .arg(scratch.path())
            .args(["--listen", "127.0.0.1:0"])
            .args(&args)
            .env_remove("STRATA_STORE")
            .env_remove("STRATA_REPLICA")
            .output()
            .expect("strata serve runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?} says {stderr:?}");
    }
}
