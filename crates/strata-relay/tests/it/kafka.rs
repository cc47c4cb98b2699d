//! The relay to Kafka (against the Kafka-API broker named by `STRATA_TEST_KAFKA_URL`):
//! what the topic holds is the log, once after de-duplication by event id, in order per
//! stream, keyed by stream, through a catch-up, live events, a restart and the broker
//! going away.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::{Headers as _, Message as _};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use strata_relay::{
    Destination, KAFKA_EVENT_ID_HEADER, KAFKA_EVENT_TYPE_HEADER, RelayConfig, RelayState, Relays,
};
use strata_store::MemoryStore;

use crate::common::{WAIT, append_round, assert_is_the_log, host_port, log, service, unique};
use crate::proxy::Proxy;

/// A relay config publishing to a topic of its own.
pub(crate) fn config(brokers: &str, topic: &str, partitions: i32) -> RelayConfig {
    RelayConfig {
        name: "kafka_test".to_owned(),
        destination: Destination::Kafka {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            partitions,
        },
    }
}

/// One message as a consumer reads it.
#[derive(Debug)]
struct Received {
    id_header: String,
    type_header: String,
    key: String,
    envelope: serde_json::Value,
}

/// Reads every partition of `topic` from the beginning until `count` distinct event ids
/// arrived; answers every message, in each partition's order.
async fn receive(brokers: &str, topic: &str, partitions: i32, count: usize) -> Vec<Received> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("test-{}", unique()))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..partitions {
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&assignment).unwrap();
    let mut out = Vec::new();
    let mut ids = std::collections::HashSet::new();
    while ids.len() < count {
        let message = tokio::time::timeout(WAIT, consumer.recv())
            .await
            .expect("a message in time")
            .expect("a message");
        let header = |name: &str| {
            message
                .headers()
                .and_then(|h| h.iter().find(|h| h.key == name))
                .and_then(|h| h.value)
                .map(|v| String::from_utf8_lossy(v).into_owned())
                .unwrap_or_default()
        };
        let received = Received {
            id_header: header(KAFKA_EVENT_ID_HEADER),
            type_header: header(KAFKA_EVENT_TYPE_HEADER),
            key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
            envelope: serde_json::from_slice(message.payload().unwrap_or_default()).unwrap(),
        };
        ids.insert(received.id_header.clone());
        out.push(received);
    }
    out
}

fn check(received: &[Received], log: &[strata_core::RecordedEvent]) {
    let pairs: Vec<_> = received
        .iter()
        .map(|r| (r.id_header.clone(), r.envelope.clone()))
        .collect();
    // Each partition's order is the order of the streams in it: checking each stream's
    // versions in the concatenation of the partitions checks that.
    assert_is_the_log(&pairs, log);
    for r in received {
        assert_eq!(
            r.key,
            r.envelope["stream"].as_str().unwrap(),
            "key = stream"
        );
        assert_eq!(r.type_header, r.envelope["type"].as_str().unwrap());
    }
}

/// Publishes `payload` straight to `topic`, as a broker's duplicate would look.
pub(crate) async fn produce(brokers: &str, topic: &str, key: &str, payload: &[u8]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .create()
        .unwrap();
    producer
        .send(
            FutureRecord::to(topic).key(key).payload(payload),
            std::time::Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_topic_once_keyed_by_stream_across_a_restart() {
    let Some(url) = service(
        "STRATA_TEST_KAFKA_URL",
        "kafka every_event_reaches_the_topic",
    ) else {
        return;
    };
    let brokers = host_port(&url);
    let topic = format!("strata-test-{}", unique());
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    for round in 0..4 {
        append_round(&store, round).await;
    }
    // Given a history, then live events, on a topic of three partitions…
    let relays = Relays::new(store.clone(), dir.path());
    relays.start(config(&brokers, &topic, 3)).unwrap();
    let head = append_round(&store, 4).await;
    relays.wait_for("kafka_test", head, WAIT).await.unwrap();
    let head = append_round(&store, 5).await;
    let status = relays.wait_for("kafka_test", head, WAIT).await.unwrap();
    assert_eq!(status.state, RelayState::Live);
    assert_eq!(status.lag_events, 0);
    relays.shutdown().await;

    // …a relay started again resumes from its stored checkpoint.
    let head = append_round(&store, 6).await;
    let relays = Relays::new(store.clone(), dir.path());
    relays.start(config(&brokers, &topic, 3)).unwrap();
    let status = relays.wait_for("kafka_test", head, WAIT).await.unwrap();
    assert_eq!(
        status.published, 5,
        "only the new round was published again"
    );
    relays.shutdown().await;

    let log = log(&store).await;
    let received = receive(&brokers, &topic, 3, log.len()).await;
    check(&received, &log);
    assert_eq!(
        received.len(),
        log.len(),
        "nothing was published twice without a fault"
    );
}

/// A Kafka-API broker of the test's own, reached through a proxy it advertises, so the
/// test can take it away from the relay (a client connects to the advertised address).
pub(crate) struct PrivateBroker {
    child: Child,
    pub(crate) proxy: Proxy,
    pub(crate) brokers: String,
}

impl PrivateBroker {
    /// Starts `tansu` (the binary in `STRATA_TEST_TANSU`) behind a proxy; `None` after
    /// printing a skip line when the variable is unset.
    pub(crate) async fn start(test: &str) -> Option<Self> {
        let tansu = service("STRATA_TEST_TANSU", test)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let proxy = Proxy::start(format!("127.0.0.1:{port}")).await;
        let child = Command::new(tansu)
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://127.0.0.1:{port}"),
                "--advertised-listener-url",
                &format!("tcp://{}", proxy.addr),
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(tokio::time::Instant::now() < deadline, "tansu listens");
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        let brokers = proxy.addr.to_string();
        Some(Self {
            child,
            proxy,
            brokers,
        })
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_kafka_is_away() {
    let test = "kafka nothing_is_lost_while_kafka_is_away";
    if service("STRATA_TEST_KAFKA_URL", test).is_none() {
        return;
    }
    let Some(broker) = PrivateBroker::start(test).await else {
        return;
    };
    let topic = format!("strata-test-{}", unique());
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    // Given a history the relay is catching up with…
    for round in 0..200 {
        append_round(&store, round).await;
    }
    let relays = Relays::new(store.clone(), dir.path());
    relays.start(config(&broker.brokers, &topic, 1)).unwrap();
    relays
        .wait_until("kafka_test", WAIT, |s| s.checkpoint.0 > 0)
        .await
        .unwrap();

    // When the broker goes away in the middle of it, while events keep coming…
    broker.proxy.cut();
    for round in 200..205 {
        append_round(&store, round).await;
    }
    let status = relays
        .wait_until("kafka_test", WAIT, |s| s.state == RelayState::Retrying)
        .await
        .unwrap();
    assert!(status.last_error.is_some());
    assert!(status.lag_events > 0);

    // …and comes back, the relay catches up and nothing is lost.
    broker.proxy.restore();
    let head = append_round(&store, 205).await;
    relays.wait_for("kafka_test", head, WAIT).await.unwrap();
    relays.shutdown().await;

    let log = log(&store).await;
    let received = receive(&broker.brokers, &topic, 1, log.len()).await;
    check(&received, &log);
}
