//! Remote read sides: a read model fed through a broker converges with the same model
//! built from the log, through duplicates, a consumer that went away and a restart.

// The helpers serve the broker tests, which a build without brokers leaves out.
#![cfg_attr(not(any(feature = "nats", feature = "kafka")), allow(dead_code))]

use std::path::Path;
use std::sync::Arc;

use strata_core::RecordedEvent;
use strata_projection::{ApplyError, SqliteProjection, build_as_of};
use strata_relay::{RelayState, RemoteReadModel, RemoteReadSide};
use strata_store::{EventStore, MemoryStore, ReadFilter};

/// A model of the `order` streams: per stream, its event count, last version and the
/// rounds in the order applied. It refuses an event out of its stream's order, so a
/// read side that reorders or repeats would not converge.
pub(crate) struct Tally;

impl SqliteProjection for Tally {
    fn name(&self) -> &'static str {
        "tally"
    }

    fn version(&self) -> u32 {
        1
    }

    fn filter(&self) -> ReadFilter {
        ReadFilter::all().category("order")
    }

    fn migrate(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE tally (stream TEXT PRIMARY KEY, events INTEGER NOT NULL,
                                 last_version INTEGER NOT NULL, rounds TEXT NOT NULL)",
        )
    }

    fn apply(
        &self,
        tx: &rusqlite::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError> {
        let last: i64 = tx
            .query_row(
                "SELECT last_version FROM tally WHERE stream = ?1",
                [event.stream.as_str()],
                |r| r.get(0),
            )
            .unwrap_or(0);
        if last + 1 != event.version.0 as i64 {
            return Err(ApplyError::new(format!(
                "{} version {} after {last}",
                event.stream, event.version.0
            )));
        }
        let round = event.data_json()["round"].to_string();
        tx.execute(
            "INSERT INTO tally (stream, events, last_version, rounds) VALUES (?1, 1, ?2, ?3)
             ON CONFLICT (stream) DO UPDATE SET events = events + 1,
                 last_version = excluded.last_version, rounds = rounds || ',' || excluded.rounds",
            rusqlite::params![event.stream.as_str(), event.version.0 as i64, round],
        )?;
        Ok(())
    }
}

/// The model's rows, in stream order.
pub(crate) fn rows(path: &Path) -> Vec<(String, i64, i64, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut statement = conn
        .prepare("SELECT stream, events, last_version, rounds FROM tally ORDER BY stream")
        .unwrap();
    statement
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Nothing parked: every event applied in its stream's order.
pub(crate) fn parked(path: &Path) -> i64 {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT count(*) FROM strata_parked", [], |r| r.get(0))
        .unwrap()
}

/// Checks that the remote model at `remote` is the model built from the log.
pub(crate) async fn assert_converged(store: &MemoryStore, remote: &Path, dir: &Path) {
    let head = store.head().await.unwrap();
    let local = dir.join("from-the-log.sqlite");
    build_as_of(store, &Tally, head, &local).await.unwrap();
    let expected = rows(&local);
    assert!(!expected.is_empty());
    assert_eq!(
        rows(remote),
        expected,
        "the remote model is the model of the log"
    );
    assert_eq!(parked(remote), 0, "nothing was refused");
}

/// A remote read model of [`Tally`] in `dir`.
pub(crate) fn model(dir: &Path) -> RemoteReadModel {
    RemoteReadModel::open(dir.join("remote.sqlite"), Arc::new(Tally)).unwrap()
}

/// Stops `side` and checks it was healthy.
pub(crate) async fn stop(side: RemoteReadSide) -> strata_relay::RemoteStatus {
    let status = side.status();
    side.shutdown().await;
    assert_ne!(status.state, RelayState::Failed, "{status:?}");
    status
}

#[test]
fn a_model_file_of_another_projection_is_refused() {
    struct Other;
    impl SqliteProjection for Other {
        fn name(&self) -> &'static str {
            "other"
        }
        fn version(&self) -> u32 {
            1
        }
        fn filter(&self) -> ReadFilter {
            ReadFilter::all()
        }
        fn migrate(&self, _: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
            Ok(())
        }
        fn apply(
            &self,
            _: &rusqlite::Transaction<'_>,
            _: &RecordedEvent,
        ) -> Result<(), ApplyError> {
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    drop(model(dir.path()));
    let err = RemoteReadModel::open(dir.path().join("remote.sqlite"), Arc::new(Other))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("built by tally v1"), "{err}");
}

#[cfg(feature = "nats")]
mod nats {
    use std::sync::Arc;
    use std::time::Duration;

    use async_nats::jetstream;
    use strata_core::{Position, RecordedEvent};
    use strata_relay::{Destination, NatsSource, RelayConfig, Relays, RemoteReadSide, envelope};
    use strata_store::MemoryStore;

    use super::{assert_converged, model, stop};
    use crate::common::{WAIT, append_round, host_port, log, service, unique, with_address};
    use crate::proxy::Proxy;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_side_fed_through_jetstream_converges_with_the_log() {
        let Some(url) = service("STRATA_TEST_NATS_URL", "nats remote read side converges") else {
            return;
        };
        let id = unique();
        let prefix = format!("r{id}.events");
        let stream = format!("R{id}");
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        for round in 0..50 {
            append_round(&store, round).await;
        }
        let relays = Relays::new(store.clone(), dir.path().join("relays"));
        relays
            .start(RelayConfig {
                name: "nats_remote".to_owned(),
                destination: Destination::Nats {
                    url: url.clone(),
                    subject_prefix: prefix.clone(),
                    stream: stream.clone(),
                    duplicate_window: Duration::from_secs(120),
                },
            })
            .unwrap();
        let head = append_round(&store, 50).await;
        relays.wait_for("nats_remote", head, WAIT).await.unwrap();

        // Given a read side on "another machine", reaching NATS through a proxy…
        let proxy = Proxy::start(host_port(&url)).await;
        let remote_url = with_address(&url, proxy.addr);
        let durable = format!("read-{id}");
        let side = RemoteReadSide::start(
            "tally_remote",
            Box::new(NatsSource::new(&remote_url, &stream, &durable)),
            model(dir.path()),
        )
        .unwrap();
        side.wait_for(head, WAIT).await.unwrap();

        // …when the stream holds duplicates of events already applied (stored under
        // new message ids, past JetStream's own de-duplication)…
        let client = async_nats::connect(&url).await.unwrap();
        let js = jetstream::new(client);
        let history = log(&store).await;
        for event in &history[..20] {
            js.publish(format!("{prefix}.order.dup"), envelope(event).into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        // …and NATS goes away while events keep coming, then comes back…
        proxy.cut();
        for round in 51..60 {
            append_round(&store, round).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.restore();
        let head = append_round(&store, 60).await;
        relays.wait_for("nats_remote", head, WAIT).await.unwrap();
        let status = side.wait_for(head, WAIT).await.unwrap();
        assert!(status.duplicates >= 20, "{status:?}");
        stop(side).await;

        // …and the read side restarts later, behind on new events.
        for round in 61..70 {
            append_round(&store, round).await;
        }
        let head = append_round(&store, 70).await;
        relays.wait_for("nats_remote", head, WAIT).await.unwrap();
        let side = RemoteReadSide::start(
            "tally_remote",
            Box::new(NatsSource::new(&url, &stream, &durable)),
            model(dir.path()),
        )
        .unwrap();
        side.wait_for(head, WAIT).await.unwrap();
        stop(side).await;
        relays.shutdown().await;

        // Then the remote model is the model built from the log.
        assert_converged(&store, &dir.path().join("remote.sqlite"), dir.path()).await;
        let _ = js.delete_stream(&stream).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_jetstream_read_side_converges_through_reordered_repeated_and_missing_events() {
        let Some(url) = service(
            "STRATA_TEST_NATS_URL",
            "nats remote read side through reordered deliveries",
        ) else {
            return;
        };
        let id = unique();
        let stream = format!("R{id}");
        let subject = format!("r{id}.events");
        let client = async_nats::connect(&url).await.unwrap();
        let js = jetstream::new(client);
        js.create_stream(jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
        let store = Arc::new(MemoryStore::new());
        for round in 0..30 {
            append_round(&store, round).await;
        }
        let history = log(&store).await;
        let head = history.last().unwrap().position;

        // Given the log as several relays or partitions would leave it in one stream:
        // each stream in its order, the streams interleaved out of the log's order (the
        // last stream first), stretches repeated, one event stored after its successor,
        // and one event of `order-1` not there at all…
        let mut by_stream: Vec<Vec<RecordedEvent>> = Vec::new();
        for event in &history {
            match by_stream.iter_mut().find(|s| s[0].stream == event.stream) {
                Some(events) => events.push(event.clone()),
                None => by_stream.push(vec![event.clone()]),
            }
        }
        by_stream.reverse();
        let mut deliveries: Vec<RecordedEvent> = Vec::new();
        let mut missing = None;
        for events in &by_stream {
            for (i, event) in events.iter().enumerate() {
                if event.stream.as_str() == "order-1" && event.version.0 == 10 {
                    missing = Some(event.clone());
                    continue;
                }
                deliveries.push(event.clone());
                if i % 7 == 6 {
                    deliveries.extend(events[i - 3..=i].iter().cloned());
                }
            }
            if events[0].stream.as_str() == "order-2" {
                let at = deliveries.len() - 2;
                deliveries.swap(at, at + 1);
            }
        }
        let missing = missing.expect("order-1 has a version 10");
        for event in &deliveries {
            js.publish(subject.clone(), envelope(event).into())
                .await
                .unwrap()
                .await
                .unwrap();
        }
        let dir = tempfile::tempdir().unwrap();
        let side = RemoteReadSide::start(
            "tally_remote",
            Box::new(NatsSource::new(&url, &stream, &format!("read-{id}"))),
            model(dir.path()),
        )
        .unwrap();
        // …the read side takes in every event that can apply, holds back what follows
        // the missing one, says so, and does not claim the positions above it…
        let last_of_order_1 = history
            .iter()
            .rev()
            .find(|e| e.stream.as_str() == "order-1")
            .unwrap()
            .clone();
        side.wait_for(Position(missing.position.0 - 1), WAIT)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + WAIT;
        let published = deliveries.len() as u64;
        let status = loop {
            let status = side.status();
            if status.checkpoint.offsets.get(&0) == Some(&published) {
                break status;
            }
            assert!(tokio::time::Instant::now() < deadline, "{status:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status.gaps.len(), 1, "{status:?}");
        assert_eq!(status.gaps[0].stream, "order-1");
        assert_eq!(status.gaps[0].applied, 9);
        assert_eq!(status.gaps[0].held_from, 11);
        assert_eq!(status.held, last_of_order_1.version.0 - 10);
        assert!(
            status
                .last_error
                .as_deref()
                .unwrap_or_default()
                .contains("order-1"),
            "{status:?}"
        );
        assert_eq!(status.checkpoint.position, head);
        assert_eq!(status.checkpoint.watermark.0, missing.position.0 - 1);
        assert!(status.duplicates > 0, "{status:?}");

        // …and when the missing event arrives late, the held ones follow it in order.
        js.publish(subject.clone(), envelope(&missing).into())
            .await
            .unwrap()
            .await
            .unwrap();
        let status = side.wait_for(head, WAIT).await.unwrap();
        assert_eq!(status.held, 0, "{status:?}");
        assert!(status.gaps.is_empty());
        assert_eq!(status.last_error, None);
        stop(side).await;
        assert_converged(&store, &dir.path().join("remote.sqlite"), dir.path()).await;
        let _ = js.delete_stream(&stream).await;
    }
}

#[cfg(feature = "kafka")]
mod kafka {
    use std::sync::Arc;

    use strata_relay::{KafkaSource, Relays, RemoteReadSide, envelope};
    use strata_store::MemoryStore;

    use super::{assert_converged, model, stop};
    use crate::common::{WAIT, append_round, host_port, log, service, unique};
    use crate::kafka::{PrivateBroker, config, produce};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_side_fed_through_kafka_partitions_converges_with_the_log() {
        let test = "kafka remote read side converges";
        let Some(url) = service("STRATA_TEST_KAFKA_URL", test) else {
            return;
        };
        let brokers = host_port(&url);
        let topic = format!("strata-test-{}", unique());
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        for round in 0..50 {
            append_round(&store, round).await;
        }
        // Three partitions keyed by stream: each keeps its streams' order, not the log's.
        let relays = Relays::new(store.clone(), dir.path().join("relays"));
        relays.start(config(&brokers, &topic, 3)).unwrap();
        let head = append_round(&store, 50).await;
        relays.wait_for("kafka_test", head, WAIT).await.unwrap();

        // Given a read side fed from the topic…
        let group = format!("read-{}", unique());
        let side = RemoteReadSide::start(
            "tally_remote",
            Box::new(KafkaSource::new(&brokers, &topic, &group)),
            model(dir.path()),
        )
        .unwrap();
        side.wait_for(head, WAIT).await.unwrap();

        // …when the topic holds duplicates of events already applied…
        let history = log(&store).await;
        for event in &history[..20] {
            produce(&brokers, &topic, event.stream.as_str(), &envelope(event)).await;
        }
        let head = append_round(&store, 51).await;
        relays.wait_for("kafka_test", head, WAIT).await.unwrap();
        let status = side.wait_for(head, WAIT).await.unwrap();
        assert_eq!(status.duplicates, 20, "{status:?}");
        stop(side).await;

        // …and the read side restarts later, behind on new events…
        for round in 52..60 {
            append_round(&store, round).await;
        }
        let head = append_round(&store, 60).await;
        relays.wait_for("kafka_test", head, WAIT).await.unwrap();
        let side = RemoteReadSide::start(
            "tally_remote",
            Box::new(KafkaSource::new(&brokers, &topic, &group)),
            model(dir.path()),
        )
        .unwrap();
        side.wait_for(head, WAIT).await.unwrap();
        stop(side).await;
        relays.shutdown().await;

        // Then the remote model is the model built from the log.
        assert_converged(&store, &dir.path().join("remote.sqlite"), dir.path()).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_kafka_read_side_survives_the_broker_going_away() {
        let test = "kafka remote read side survives the broker going away";
        if service("STRATA_TEST_KAFKA_URL", test).is_none() {
            return;
        }
        let Some(broker) = PrivateBroker::start(test).await else {
            return;
        };
        let topic = format!("strata-test-{}", unique());
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        for round in 0..100 {
            append_round(&store, round).await;
        }
        let relays = Relays::new(store.clone(), dir.path().join("relays"));
        relays.start(config(&broker.brokers, &topic, 1)).unwrap();
        let side = RemoteReadSide::start(
            "tally_remote",
            Box::new(KafkaSource::new(&broker.brokers, &topic, "read")),
            model(dir.path()),
        )
        .unwrap();
        let head = append_round(&store, 100).await;
        side.wait_for(head, WAIT).await.unwrap();

        // When the broker goes away from both ends while events keep coming, and comes
        // back…
        broker.proxy.cut();
        for round in 101..110 {
            append_round(&store, round).await;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        broker.proxy.restore();
        let head = append_round(&store, 110).await;
        relays.wait_for("kafka_test", head, WAIT).await.unwrap();
        side.wait_for(head, WAIT).await.unwrap();
        stop(side).await;
        relays.shutdown().await;

        // …the remote model is the model built from the log.
        assert_converged(&store, &dir.path().join("remote.sqlite"), dir.path()).await;
    }
}
