//! `strata serve --store postgres://primary --replica postgres://standby`: a real server
//! whose commands go to the primary and whose reads and read models come from a hot
//! standby; a query with `after=` answers what the command wrote, and waits while the
//! standby's replay is paused. Needs
//! `STRATA_TEST_POSTGRES_URL` and `STRATA_TEST_POSTGRES_REPLICA_URL` (scripts/services.sh
//! makes the standby); says it is skipped without them. Also checks, without any server,
//! that a bad `--replica` is refused in one sentence.

use std::path::Path;
use std::process::Command;

use crate::support::{
    Served, TestDatabase, http_ok as ok, http_request as request, pg_rows, pg_value, with_database,
};
use serde_json::json;

fn serve(data_dir: &Path, store: &str, replica: &str) -> Served {
    Served::start(data_dir, &["--store", store, "--replica", replica], &[])
}

/// Replay on the standby paused until dropped (scripts/services.sh resumes a replay
/// that a test which died left paused).
struct ReplayPaused(String);

impl ReplayPaused {
    fn new(standby: &str) -> Self {
        pg_rows(standby, "SELECT pg_wal_replay_pause()");
        Self(standby.to_owned())
    }
}

impl Drop for ReplayPaused {
    fn drop(&mut self) {
        pg_rows(&self.0, "SELECT pg_wal_replay_resume()");
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
    let database = TestDatabase::create(&primary);
    let name = database.name().to_owned();
    let standby_url = with_database(&standby, &name);

    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = serve(scratch.path(), database.url(), &standby_url);
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
    let connections = pg_value(
        &standby_url,
        &format!("SELECT count(*) FROM pg_stat_activity WHERE datname = '{name}'"),
    )
    .expect("a count");
    assert!(
        connections >= 2,
        "the server reads from the standby ({connections} connections, one of them the count's)"
    );

    // With replay paused, commands still load from and append to the primary (the
    // second one decides on the first one's version), while the read side waits.
    let paused = ReplayPaused::new(&standby_url);
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
