//! The relay to NATS JetStream: what reaches the stream is the log, once, in order per
//! stream, through a catch-up, live events, a restart and the broker going away.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use strata_relay::{Destination, RelayConfig, RelayState, Relays};
use strata_store::MemoryStore;

use crate::common::{
    WAIT, append_round, assert_is_the_log, host_port, log, service, unique, with_address,
};
use crate::proxy::Proxy;

/// A relay config publishing under a prefix and into a JetStream stream of its own.
fn config(url: &str, id: &str) -> RelayConfig {
    RelayConfig {
        name: "nats_test".to_owned(),
        destination: Destination::Nats {
            url: url.to_owned(),
            subject_prefix: format!("t{id}.events"),
            stream: format!("T{id}"),
            duplicate_window: Duration::from_secs(120),
        },
    }
}

/// Every message of the JetStream stream, as (message id, envelope), in stream order.
async fn stored(url: &str, id: &str) -> Vec<(String, serde_json::Value, String)> {
    let client = async_nats::connect(url).await.unwrap();
    let js = jetstream::new(client);
    let mut stream = js.get_stream(format!("T{id}")).await.unwrap();
    let last = stream.info().await.unwrap().state.last_sequence;
    let mut out = Vec::new();
    for seq in 1..=last {
        let message = stream.get_raw_message(seq).await.unwrap();
        let msg_id = message
            .headers
            .get("Nats-Msg-Id")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let envelope: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        out.push((msg_id, envelope, message.subject.to_string()));
    }
    out
}

async fn delete_stream(url: &str, id: &str) {
    if let Ok(client) = async_nats::connect(url).await {
        let _ = jetstream::new(client).delete_stream(format!("T{id}")).await;
    }
}

fn check(
    stored: &[(String, serde_json::Value, String)],
    log: &[strata_core::RecordedEvent],
    id: &str,
) {
    let delivered: Vec<_> = stored
        .iter()
        .map(|(m, e, _)| (m.clone(), e.clone()))
        .collect();
    assert_is_the_log(&delivered, log);
    // JetStream dropped every republished message: the stream holds each event once.
    assert_eq!(stored.len(), log.len(), "the stream holds each event once");
    for (_, envelope, subject) in stored {
        let stream = envelope["stream"].as_str().unwrap();
        let category = stream.split('-').next().unwrap();
        let expected = format!("t{id}.events.{category}.{}", stream.replace('.', "~2E"));
        assert_eq!(subject, &expected);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_jetstream_once_in_order_across_a_restart() {
    let Some(url) = service("STRATA_TEST_NATS_URL", "nats every_event_reaches_jetstream") else {
        return;
    };
    let id = unique();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    for round in 0..4 {
        append_round(&store, round).await;
    }
    let relays = Relays::new(store.clone(), dir.path());
    relays.start(config(&url, &id)).unwrap();
    // Given a history, then live events.
    let head = append_round(&store, 4).await;
    relays.wait_for("nats_test", head, WAIT).await.unwrap();
    let head = append_round(&store, 5).await;
    let status = relays.wait_for("nats_test", head, WAIT).await.unwrap();
    assert_eq!(status.lag_events, 0);
    assert_eq!(status.state, RelayState::Live);
    relays.shutdown().await;

    // A relay started again resumes from its stored checkpoint.
    let head = append_round(&store, 6).await;
    let relays = Relays::new(store.clone(), dir.path());
    relays.start(config(&url, &id)).unwrap();
    let status = relays.wait_for("nats_test", head, WAIT).await.unwrap();
    assert_eq!(
        status.published, 5,
        "only the new round was published again"
    );
    relays.shutdown().await;

    let stored = stored(&url, &id).await;
    delete_stream(&url, &id).await;
    check(&stored, &log(&store).await, &id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_nats_is_away() {
    let Some(url) = service(
        "STRATA_TEST_NATS_URL",
        "nats nothing_is_lost_while_nats_is_away",
    ) else {
        return;
    };
    let id = unique();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    // Given a history the relay is catching up with…
    for round in 0..200 {
        append_round(&store, round).await;
    }
    let proxy = Proxy::start(host_port(&url)).await;
    let relays = Relays::new(store.clone(), dir.path());
    relays
        .start(config(&with_address(&url, proxy.addr), &id))
        .unwrap();
    relays
        .wait_until("nats_test", WAIT, |s| s.checkpoint.0 > 0)
        .await
        .unwrap();

    // When the broker goes away in the middle of it, while events keep coming…
    proxy.cut();
    for round in 200..205 {
        append_round(&store, round).await;
    }
    let status = relays
        .wait_until("nats_test", WAIT, |s| s.state == RelayState::Retrying)
        .await
        .unwrap();
    assert!(status.last_error.is_some());
    assert!(status.lag_events > 0);

    // …and comes back, the relay catches up and nothing is lost.
    proxy.restore();
    let head = append_round(&store, 205).await;
    relays.wait_for("nats_test", head, WAIT).await.unwrap();
    relays.shutdown().await;

    let stored = stored(&url, &id).await;
    delete_stream(&url, &id).await;
    check(&stored, &log(&store).await, &id);
}
