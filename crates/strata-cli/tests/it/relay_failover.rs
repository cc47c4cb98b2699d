//! Two `strata serve --store postgres://... --relay nats://...` processes on one
//! database: the relay publishes from the one holding its lease while the other stands
//! by; when the publisher is killed (SIGKILL) while events keep arriving, the other takes
//! over within seconds from the checkpoint the first stored in the database, and a
//! JetStream consumer receives every event of the log, once after de-duplication by id,
//! in order per stream. Needs `STRATA_TEST_POSTGRES_URL` and `STRATA_TEST_NATS_URL`;
//! says it is skipped without them. Runs in a database made for it and dropped after;
//! its events are in a category of their own, whose subjects it purges after.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use futures::StreamExt as _;
use serde_json::{Value, json};

use crate::failover::{Server, serve_with, wait_healthy};
use crate::support::{TestDatabase, http_ok as ok, http_request as request, pg_rows as query};

/// The appends made through the takeover, of five events each.
const APPENDS: usize = 60;

/// The pause between two appends, so that they keep arriving through the takeover.
const PACE: Duration = Duration::from_millis(40);

/// The relay's status on `server`, if it answers.
fn relay_status(server: &Server) -> Option<Value> {
    let (status, body) = request(server.served.addr, "GET", "/relays", None)?;
    if status != 200 {
        return None;
    }
    body["relays"].as_array()?.first().cloned()
}

/// Whether `server` holds the relay's lease and publishes.
fn publishes(server: &Server) -> bool {
    relay_status(server).is_some_and(|r| r["lease"]["held_here"] == true)
}

/// The relay checkpoint stored in the database (0 when none yet).
fn stored_checkpoint(url: &str) -> u64 {
    query(
        url,
        "SELECT coalesce(max(position), 0) FROM strata_relay.checkpoints",
    )[0][0]
        .parse()
        .expect("a position")
}

#[test]
fn a_relay_publishes_from_one_server_and_another_takes_over_when_it_is_killed() {
    let (url, nats) = match (
        std::env::var("STRATA_TEST_POSTGRES_URL"),
        std::env::var("STRATA_TEST_NATS_URL"),
    ) {
        (Ok(url), Ok(nats)) if !url.trim().is_empty() && !nats.trim().is_empty() => (url, nats),
        _ => {
            println!(
                "skipped the relay failover test: STRATA_TEST_POSTGRES_URL or STRATA_TEST_NATS_URL is unset"
            );
            return;
        }
    };
    let database = TestDatabase::create(&url);
    let store_url = database.url().to_owned();
    let id = uuid::Uuid::new_v4().simple().to_string();
    // The events' category, and so their subjects, are this run's own.
    let category = format!("rf{}", &id[..12]);

    let scratch = tempfile::tempdir().expect("a temporary directory");
    let mut servers: Vec<Server> = (1..=2)
        .map(|n| {
            serve_with(
                &scratch.path().join(format!("node-{n}")),
                &store_url,
                &format!("node-{n}"),
                &["--relay", &nats],
            )
        })
        .collect();
    servers.iter().for_each(wait_healthy);
    let deadline = Instant::now() + Duration::from_secs(15);
    let holder = loop {
        if let Some(index) = servers.iter().position(publishes) {
            break index;
        }
        assert!(
            Instant::now() < deadline,
            "no server took the relay's lease"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let other = 1 - holder;
    // The other one stands by, naming the holder.
    let standing = loop {
        let status = relay_status(&servers[other]).expect("the relay's status");
        if status["state"] == "standby" {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the other server never stood by: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        standing["lease"]["holder"],
        servers[holder].node.as_str(),
        "{standing}"
    );

    // Events keep arriving through the other server, before, during and after the kill.
    let appended = Arc::new(AtomicUsize::new(0));
    let driver = {
        let appended = appended.clone();
        let addr = servers[other].served.addr;
        let category = category.clone();
        std::thread::spawn(move || {
            for i in 0..APPENDS {
                let events: Vec<Value> = (0..5)
                    .map(|n| json!({"type": "Ticked", "data": {"append": i, "n": n}}))
                    .collect();
                ok(
                    addr,
                    "POST",
                    &format!("/streams/{category}-{}", i % 7),
                    Some(&json!({ "events": events })),
                );
                appended.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(PACE);
            }
        })
    };
    // Kill the publisher once it stored a checkpoint, while events keep coming.
    let deadline = Instant::now() + Duration::from_secs(30);
    while appended.load(Ordering::SeqCst) < APPENDS / 3 || stored_checkpoint(&store_url) == 0 {
        assert!(Instant::now() < deadline, "the relay stored no checkpoint");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut killed = servers.remove(holder);
    killed
        .served
        .child
        .kill()
        .expect("SIGKILL the relay's publisher");
    killed
        .served
        .child
        .wait()
        .expect("the killed server is reaped");
    let killed_at = Instant::now();
    let stored_at_kill = stored_checkpoint(&store_url);
    assert!(stored_at_kill > 0);

    let survivor = &servers[0];
    let taken_over = loop {
        if publishes(survivor) {
            break killed_at.elapsed();
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "{} did not take the relay over within 20 s of {} being killed",
            survivor.node,
            killed.node
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "{} took the relay over {} ms after {} was killed at checkpoint {stored_at_kill}",
        survivor.node,
        taken_over.as_millis(),
        killed.node
    );
    driver.join().expect("every append was made");
    assert!(
        taken_over < Duration::from_secs(10),
        "the takeover took {taken_over:?}"
    );

    // The survivor publishes up to the head, from where the killed one had stored.
    let head: u64 = query(&store_url, "SELECT max(position) FROM strata.events")[0][0]
        .parse()
        .expect("a head");
    assert_eq!(head as usize, APPENDS * 5);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        let status = relay_status(survivor).expect("the relay's status");
        if status["checkpoint"] == head {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the relay never reached {head}: {status}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status["state"], "live", "{status}");
    let published = status["published"].as_u64().expect("published");
    assert!(
        published <= head - stored_at_kill,
        "the survivor resumed from the stored checkpoint {stored_at_kill}, not from the start: {status}"
    );
    assert_eq!(stored_checkpoint(&store_url), head);

    // A JetStream consumer receives every event of the log, in order per stream once
    // repeats are dropped by id.
    let log = query(
        &store_url,
        "SELECT id::text, stream, version FROM strata.events ORDER BY position",
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let received = runtime.block_on(receive(&nats, &category, log.len()));
    let mut seen = HashSet::new();
    let mut versions: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for envelope in &received {
        let event_id = envelope["id"].as_str().expect("an id").to_owned();
        if seen.insert(event_id) {
            versions
                .entry(envelope["stream"].as_str().expect("a stream").to_owned())
                .or_default()
                .push(envelope["version"].as_u64().expect("a version"));
        }
    }
    let ids: HashSet<String> = log.iter().map(|row| row[0].clone()).collect();
    assert_eq!(seen, ids, "every event of the log, once");
    for (stream, versions) in versions {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, expected, "the events of {stream} in order");
    }
    drop(servers);
    drop(database);
}

/// Reads the relay's JetStream stream, only this run's subjects, until `count` distinct
/// event ids arrived; answers every envelope in the stream's order. Purges the subjects
/// after.
async fn receive(url: &str, category: &str, count: usize) -> Vec<Value> {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = jetstream::new(client);
    let stream = js
        .get_stream(strata_relay::DEFAULT_NATS_STREAM)
        .await
        .expect("the relay's stream");
    let subjects = format!("{}.{category}.>", strata_relay::DEFAULT_NATS_PREFIX);
    let consumer = stream
        .create_consumer(jetstream::consumer::pull::Config {
            filter_subject: subjects.clone(),
            deliver_policy: jetstream::consumer::DeliverPolicy::All,
            ack_policy: jetstream::consumer::AckPolicy::None,
            ..Default::default()
        })
        .await
        .expect("a consumer");
    let mut messages = consumer.messages().await.expect("messages");
    let mut out = Vec::new();
    let mut ids = HashSet::new();
    while ids.len() < count {
        let message = tokio::time::timeout(Duration::from_secs(30), messages.next())
            .await
            .expect("a message in time")
            .expect("a message")
            .expect("a readable message");
        let envelope: Value = serde_json::from_slice(&message.payload).expect("an envelope");
        ids.insert(envelope["id"].as_str().unwrap_or_default().to_owned());
        out.push(envelope);
    }
    let _ = stream.purge().filter(subjects).await;
    out
}
