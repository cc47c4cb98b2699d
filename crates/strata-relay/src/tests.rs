use bytes::Bytes;
use strata_core::{EventId, EventType, Position, RecordedEvent, StreamName, Timestamp, Version};

use crate::{
    Destination, RelayConfig, RelayError, amqp_routing_key, envelope, nats_subject, parse_envelope,
    sns_group_id, subject_token,
};

fn event(stream: &str, event_type: &str, data: &str) -> RecordedEvent {
    RecordedEvent {
        position: Position(42),
        stream: StreamName::new(stream).unwrap(),
        version: Version(3),
        id: EventId::new(),
        event_type: EventType::new(event_type).unwrap(),
        data: Bytes::copy_from_slice(data.as_bytes()),
        metadata: Bytes::from_static(br#"{"actor":"ann"}"#),
        recorded_at: Timestamp::from_unix_nanos(1_700_000_000_000_000_000),
    }
}

#[test]
fn envelope_is_byte_for_byte_the_json_line_after_the_format() {
    for data in [
        r#"{"total": 5}"#,
        "not json",
        "{\n  \"pretty\": [1, 2]\n}",
        "",
    ] {
        let e = event("order-7.b", "Order\"Placed", data);
        let mut line = Vec::new();
        e.write_json_line(&mut line);
        let mut expected = br#"{"format":1,"#.to_vec();
        expected.extend_from_slice(&line[1..line.len() - 1]);
        assert_eq!(
            String::from_utf8(envelope(&e)).unwrap(),
            String::from_utf8(expected).unwrap()
        );
    }
}

#[test]
fn envelope_is_the_json_line_with_a_format_first() {
    let e = event("order-7", "OrderPlaced", r#"{"total": 5}"#);
    let bytes = envelope(&e);
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(text.starts_with(r#"{"format":1,"position":42,"#), "{text}");
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["format"], 1);
    assert_eq!(v["stream"], "order-7");
    assert_eq!(v["version"], 3);
    assert_eq!(v["id"], e.id.to_string());
    assert_eq!(v["type"], "OrderPlaced");
    assert_eq!(v["data"]["total"], 5);
    assert_eq!(v["metadata"]["actor"], "ann");
    assert!(v["recorded_at"].is_string());
    assert!(!text.contains('\n'));
}

#[test]
fn a_payload_that_is_not_json_travels_as_a_string() {
    let v: serde_json::Value =
        serde_json::from_slice(&envelope(&event("a-1", "T", "not json"))).unwrap();
    assert_eq!(v["data"], "not json");
}

#[test]
fn an_envelope_reads_back_as_the_event() {
    let e = event("order-7", "OrderPlaced", r#"{"total":5,"lines":[1,2]}"#);
    assert_eq!(parse_envelope(&envelope(&e)).unwrap(), e);
    let raw = event("a-1", "T", "not json");
    let back = parse_envelope(&envelope(&raw)).unwrap();
    assert_eq!(back.data.as_ref(), br#""not json""#);
}

#[test]
fn what_is_not_an_envelope_of_this_format_is_refused() {
    let e = event("order-7", "OrderPlaced", "{}");
    let text = String::from_utf8(envelope(&e)).unwrap();
    for bad in [
        text.replace(r#""format":1"#, r#""format":2"#),
        text.replace(r#""position":42"#, r#""position":0"#),
        text.replace(r#""stream":"order-7""#, r#""stream":"""#),
        "{}".to_owned(),
        "not json".to_owned(),
    ] {
        let err = parse_envelope(bad.as_bytes()).unwrap_err();
        assert!(
            matches!(err, RelayError::InvalidEnvelope(_)),
            "{bad}: {err}"
        );
    }
}

#[test]
fn tokens_keep_plain_names_and_escape_the_rest() {
    assert_eq!(subject_token("order-7_x"), "order-7_x");
    assert_eq!(subject_token("a.b"), "a~2Eb");
    assert_eq!(subject_token("*>#~ "), "~2A~3E~23~7E~20");
    assert_eq!(subject_token("é"), "~C3~A9");
    assert_eq!(subject_token(""), "~");
}

#[test]
fn subjects_and_routing_keys_follow_the_documented_shape() {
    let e = event("order-7.1", "shop.OrderPlaced", "{}");
    assert_eq!(
        nats_subject("strata.events", &e),
        "strata.events.order.order-7~2E1"
    );
    assert_eq!(amqp_routing_key(&e), "order.shop~2EOrderPlaced");
    let no_category = event("-x", "T", "{}");
    assert_eq!(nats_subject("p", &no_category), "p.~.-x");
}

#[test]
fn a_long_routing_key_is_cut_outside_an_escape() {
    let long = ".".repeat(200);
    let key = amqp_routing_key(&event("c-1", &long, "{}"));
    assert!(key.len() <= 255);
    assert!(key.ends_with("~2E"), "{key}");
}

#[test]
fn urls_name_their_relay_and_lose_their_password() {
    let nats = RelayConfig::from_url("nats://127.0.0.1:4222").unwrap();
    assert_eq!(nats.name, "nats_127_0_0_1_4222");
    assert!(
        matches!(nats.destination, Destination::Nats { ref subject_prefix, .. } if subject_prefix == "strata.events")
    );
    let amqp = RelayConfig::from_url("amqp://guest:secret@127.0.0.1:5672/%2f").unwrap();
    assert_eq!(amqp.name, "amqp_127_0_0_1_5672");
    assert_eq!(amqp.destination.target(), "amqp://guest@127.0.0.1:5672/%2f");
    assert!(
        matches!(amqp.destination, Destination::Amqp { ref exchange, .. } if exchange == "strata.events")
    );
    let err = RelayConfig::from_url("kafka://u:pw@h:9092").unwrap_err();
    assert!(
        matches!(err, RelayError::InvalidUrl { ref url, .. } if url == "kafka://u@h:9092"),
        "{err}"
    );
    assert!(RelayConfig::from_url("127.0.0.1:4222").is_err());
    assert!(RelayConfig::from_url("nats://").is_err());
}

#[test]
fn a_host_list_with_an_empty_host_or_a_bad_port_is_refused() {
    for bad in [
        "kafka://:9092",
        "kafka://h:99999",
        "kafka://h:9092,",
        "kafka://h:0",
        "nats://h:port",
        "amqp://guest:guest@:5672/%2f",
        "nats://[::1",
    ] {
        let err = RelayConfig::from_url(bad).unwrap_err();
        assert!(matches!(err, RelayError::InvalidUrl { .. }), "{bad}: {err}");
    }
    for good in [
        "kafka://a:9092,b:9093",
        "nats://[::1]:4222",
        "nats://localhost",
        "amqp://guest:guest@127.0.0.1:5672/%2f",
    ] {
        // A broker left out of the build is refused for that, not for its hosts.
        let parsed = RelayConfig::from_url(good);
        assert!(
            !matches!(parsed, Err(RelayError::InvalidUrl { .. })),
            "{good}: {parsed:?}"
        );
    }
}

#[test]
fn kafka_urls_name_a_topic_or_take_the_default() {
    for bad in [
        "kafka://h:9092/path",
        "kafka://h:9092?topic=",
        "kafka://h:9092?topic=a/b",
        "kafka://h:9092?partitions=3",
    ] {
        let err = RelayConfig::from_url(bad).unwrap_err();
        assert!(matches!(err, RelayError::InvalidUrl { .. }), "{bad}: {err}");
    }
    let plain = RelayConfig::from_url("kafka://127.0.0.1:9092");
    let named = RelayConfig::from_url("kafka://a:9092,b:9092/?topic=shop.events");
    if !cfg!(feature = "kafka") {
        assert!(matches!(
            plain,
            Err(RelayError::BrokerNotBuilt {
                broker: "kafka",
                ..
            })
        ));
        return;
    }
    let plain = plain.unwrap();
    assert_eq!(plain.name, "kafka_127_0_0_1_9092");
    assert_eq!(
        plain.destination,
        Destination::Kafka {
            brokers: "127.0.0.1:9092".to_owned(),
            topic: "strata-events".to_owned(),
            partitions: 1,
        }
    );
    assert_eq!(
        plain.destination.target(),
        "kafka://127.0.0.1:9092/strata-events"
    );
    let named = named.unwrap();
    assert_eq!(named.name, "kafka_a_9092_b_9092_shop_events");
    assert!(
        matches!(named.destination, Destination::Kafka { ref brokers, ref topic, .. } if brokers == "a:9092,b:9092" && topic == "shop.events")
    );
}

#[test]
fn sns_urls_read_the_topic_the_region_and_the_endpoint() {
    let url = "sns://arn:aws:sns:eu-west-1:123456789012:shop-events.fifo\
               ?endpoint=http%3A%2F%2F127.0.0.1%3A4566&region=us-east-1";
    let parsed = RelayConfig::from_url(url);
    if !cfg!(feature = "sns") {
        let err = parsed.unwrap_err();
        assert!(
            matches!(err, RelayError::BrokerNotBuilt { broker: "sns", .. }),
            "{err}"
        );
        return;
    }
    let config = parsed.unwrap();
    assert_eq!(
        config.destination,
        Destination::Sns {
            topic_arn: "arn:aws:sns:eu-west-1:123456789012:shop-events.fifo".to_owned(),
            endpoint: Some("http://127.0.0.1:4566".to_owned()),
            region: "us-east-1".to_owned(),
        }
    );
    assert_eq!(config.destination.broker(), "sns");
    assert!(
        config
            .name
            .starts_with("sns_arn_aws_sns_eu_west_1_123456789012_")
    );
    // The region defaults to the ARN's.
    let plain = RelayConfig::from_url("sns://arn:aws:sns:us-east-2:1:t").unwrap();
    assert!(
        matches!(plain.destination, Destination::Sns { ref region, endpoint: None, .. } if region == "us-east-2")
    );
    for bad in [
        "sns://topic",
        "sns://arn:aws:sqs:us-east-1:1:t",
        "sns://arn:aws:sns::1:t",
        "sns://arn:aws:sns:us-east-1:1:t?endpoint=127.0.0.1:4566",
        "sns://arn:aws:sns:us-east-1:1:t?queue=q",
    ] {
        let err = RelayConfig::from_url(bad).unwrap_err();
        assert!(matches!(err, RelayError::InvalidUrl { .. }), "{bad}: {err}");
    }
}

#[test]
fn sns_group_ids_are_the_stream_or_a_bounded_token() {
    assert_eq!(sns_group_id("order-7"), "order-7");
    assert_eq!(sns_group_id("order-7.b"), "order-7.b");
    assert_eq!(sns_group_id("commande-é"), "commande-~C3~A9");
    let long = "x-".to_owned() + &"é".repeat(100);
    let id = sns_group_id(&long);
    assert!(id.len() <= 128, "{id}");
    assert_ne!(id, sns_group_id(&(long.clone() + "f")));
    assert_eq!(id, sns_group_id(&long));
    assert!(id.bytes().all(|b| b.is_ascii_graphic()));
}

mod window {
    use strata_core::Position;

    use crate::window::{Advance, Window};

    #[test]
    fn confirmations_out_of_order_never_pass_a_gap() {
        // Given four batches in flight after checkpoint 10…
        let mut window = Window::new(Position(10));
        let seqs: Vec<u64> = [(20, 10), (30, 10), (35, 5), (50, 15)]
            .into_iter()
            .map(|(through, count)| window.send(Position(through), count))
            .collect();
        assert_eq!(window.in_flight(), 40);
        // …the later ones confirmed first move nothing…
        assert_eq!(window.confirm(seqs[1]), None);
        assert_eq!(window.confirm(seqs[3]), None);
        assert_eq!(window.checkpoint(), Position(10));
        assert_eq!(
            window.in_flight(),
            40,
            "confirmed behind a gap still counts"
        );
        // …until the gap closes: then the checkpoint jumps over every confirmed batch
        // behind it, and stops at the next unconfirmed one.
        assert_eq!(
            window.confirm(seqs[0]),
            Some(Advance {
                through: Position(30),
                events: 20
            })
        );
        assert_eq!(window.checkpoint(), Position(30));
        assert_eq!(window.in_flight(), 20);
        assert_eq!(
            window.confirm(seqs[2]),
            Some(Advance {
                through: Position(50),
                events: 20
            })
        );
        assert_eq!(window.in_flight(), 0);
    }

    #[test]
    fn a_failure_mid_window_leaves_the_last_contiguous_confirmed_position() {
        let mut window = Window::new(Position::ZERO);
        let a = window.send(Position(256), 256);
        let b = window.send(Position(512), 256);
        let c = window.send(Position(768), 256);
        let d = window.send(Position(1000), 232);
        window.confirm(d);
        window.confirm(a);
        window.confirm(b);
        // c fails: everything after b is sent again, from here.
        assert_eq!(window.checkpoint(), Position(512));
        assert_eq!(window.in_flight(), 488);
        // Repeated or unknown confirmations change nothing.
        assert_eq!(window.confirm(a), None);
        assert_eq!(window.confirm(c + 10), None);
        assert_eq!(window.checkpoint(), Position(512));
        assert_eq!(window.confirm(c).map(|a| a.through), Some(Position(1000)));
    }
}

mod runner {
    use std::sync::Arc;
    use std::time::Duration;

    use async_trait::async_trait;
    use parking_lot::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use strata_core::{EventType, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName};
    use strata_store::{EventStore, MemoryStore};

    use tokio::sync::{Notify, Semaphore, oneshot, watch};

    use crate::{BrokerSink, Confirmation, RelayError, RelayState, Relays};

    const WAIT: Duration = Duration::from_secs(30);

    /// A broker in memory: it records what it received, fails the publishes it is told
    /// to (after taking half the batch), and confirms only when the test lets it.
    #[derive(Default)]
    struct Broker {
        received: Mutex<Vec<RecordedEvent>>,
        failures: Mutex<usize>,
        connects: Mutex<usize>,
    }

    struct FakeSink {
        broker: Arc<Broker>,
        entered: Arc<Notify>,
        confirms: Arc<Semaphore>,
    }

    #[async_trait]
    impl BrokerSink for FakeSink {
        fn broker(&self) -> &'static str {
            "fake"
        }
        fn target(&self) -> String {
            "memory".to_owned()
        }
        async fn connect(&mut self) -> Result<(), RelayError> {
            *self.broker.connects.lock() += 1;
            Ok(())
        }
        async fn send(&mut self, events: &[RecordedEvent]) -> Result<Confirmation, RelayError> {
            self.entered.notify_one();
            let fail = {
                let mut failures = self.broker.failures.lock();
                let fail = *failures > 0;
                *failures = failures.saturating_sub(1);
                fail
            };
            if fail {
                let half = events.len().div_ceil(2);
                self.broker
                    .received
                    .lock()
                    .extend_from_slice(&events[..half]);
                return Err(RelayError::Broker {
                    broker: "fake",
                    target: "memory".to_owned(),
                    message: "connection lost".to_owned(),
                });
            }
            self.broker.received.lock().extend_from_slice(events);
            let confirms = self.confirms.clone();
            Ok(Box::pin(async move {
                let permit = confirms.acquire().await.expect("the semaphore stays open");
                permit.forget();
                Ok(())
            }))
        }
    }

    fn sink(
        broker: &Arc<Broker>,
        entered: &Arc<Notify>,
        confirms: &Arc<Semaphore>,
    ) -> Box<FakeSink> {
        Box::new(FakeSink {
            broker: broker.clone(),
            entered: entered.clone(),
            confirms: confirms.clone(),
        })
    }

    async fn append(store: &MemoryStore, n: usize) -> Position {
        let mut last = Position::ZERO;
        for i in 0..n {
            let stream = StreamName::new(format!("s-{}", i % 3)).unwrap();
            let event =
                NewEvent::json(EventType::new("E").unwrap(), &serde_json::json!({ "i": i }));
            last = store
                .append(&stream, ExpectedVersion::Any, vec![event])
                .await
                .unwrap()
                .position;
        }
        last
    }

    #[tokio::test]
    async fn the_checkpoint_moves_only_after_the_broker_confirmed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        let head = append(&store, 10).await;
        let (broker, entered, confirms) = (
            Arc::default(),
            Arc::new(Notify::new()),
            Arc::new(Semaphore::new(0)),
        );
        let relays = Relays::new(store.clone(), dir.path());
        relays
            .start_with("fake", sink(&broker, &entered, &confirms))
            .unwrap();

        // Given a batch handed to the broker and not confirmed yet…
        entered.notified().await;
        assert_eq!(relays.status()[0].checkpoint, Position::ZERO);
        // …when it confirms, the checkpoint reaches the batch's end.
        confirms.add_permits(100);
        let status = relays.wait_for("fake", head, WAIT).await.unwrap();
        assert_eq!(status.state, RelayState::Live);
        relays.shutdown().await;

        // The checkpoint is durable: a new host starts from it and publishes nothing again.
        let relays = Relays::new(store.clone(), dir.path());
        relays
            .start_with("fake", sink(&broker, &entered, &confirms))
            .unwrap();
        assert_eq!(relays.status()[0].checkpoint, head);
        relays.shutdown().await;
        assert_eq!(broker.received.lock().len(), 10);
    }

    #[tokio::test]
    async fn a_failed_publish_is_published_again_from_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        let head = append(&store, 20).await;
        let broker = Arc::new(Broker::default());
        *broker.failures.lock() = 2;
        let (entered, confirms) = (Arc::new(Notify::new()), Arc::new(Semaphore::new(1000)));
        let relays = Relays::new(store.clone(), dir.path());
        relays
            .start_with("fake", sink(&broker, &entered, &confirms))
            .unwrap();
        let status = relays.wait_for("fake", head, WAIT).await.unwrap();
        relays.shutdown().await;

        assert_eq!(*broker.connects.lock(), 3, "a new session after each fault");
        assert_eq!(status.last_error, None, "a success clears the error");
        // Every event arrived; after dropping repeats, in log order.
        let mut seen = std::collections::HashSet::new();
        let positions: Vec<u64> = broker
            .received
            .lock()
            .iter()
            .filter(|e| seen.insert(e.id))
            .map(|e| e.position.0)
            .collect();
        assert_eq!(positions, (1..=20).collect::<Vec<_>>());
    }

    /// A broker whose test answers each batch by hand, in any order.
    struct Hand {
        connects: Mutex<usize>,
        batches: Mutex<Vec<Handed>>,
        received: Mutex<Vec<RecordedEvent>>,
        handed: watch::Sender<usize>,
        /// Confirm every batch at once from now on.
        auto: AtomicBool,
    }

    /// One batch handed to a [`Hand`]: the session, its first and last positions, and
    /// the answer its confirmation waits for.
    struct Handed {
        session: usize,
        first: u64,
        last: u64,
        answer: Option<oneshot::Sender<Result<(), RelayError>>>,
    }

    impl Hand {
        fn new() -> Arc<Self> {
            Arc::new(Self {
                connects: Mutex::new(0),
                batches: Mutex::new(Vec::new()),
                received: Mutex::new(Vec::new()),
                handed: watch::Sender::new(0),
                auto: AtomicBool::new(false),
            })
        }

        /// Waits until `n` batches were handed over (in all sessions).
        async fn wait_handed(&self, n: usize) {
            let mut handed = self.handed.subscribe();
            tokio::time::timeout(WAIT, handed.wait_for(|h| *h >= n))
                .await
                .expect("batches handed over in time")
                .unwrap();
        }

        /// Answers batch `index` (in the order handed over).
        fn answer(&self, index: usize, result: Result<(), RelayError>) {
            let answer = self.batches.lock()[index].answer.take();
            let _ = answer.expect("a batch not answered yet").send(result);
        }
    }

    struct HandSink(Arc<Hand>);

    #[async_trait]
    impl BrokerSink for HandSink {
        fn broker(&self) -> &'static str {
            "hand"
        }
        fn target(&self) -> String {
            "memory".to_owned()
        }
        async fn connect(&mut self) -> Result<(), RelayError> {
            *self.0.connects.lock() += 1;
            Ok(())
        }
        async fn send(&mut self, events: &[RecordedEvent]) -> Result<Confirmation, RelayError> {
            self.0.received.lock().extend_from_slice(events);
            let (answer, answered) = oneshot::channel();
            let auto = self.0.auto.load(Ordering::SeqCst);
            self.0.batches.lock().push(Handed {
                session: *self.0.connects.lock(),
                first: events[0].position.0,
                last: events[events.len() - 1].position.0,
                answer: (!auto).then_some(answer),
            });
            self.0.handed.send_modify(|h| *h += 1);
            Ok(Box::pin(async move {
                if auto {
                    return Ok(());
                }
                answered.await.unwrap_or_else(|_| {
                    Err(RelayError::Broker {
                        broker: "hand",
                        target: "memory".to_owned(),
                        message: "the confirmation was dropped".to_owned(),
                    })
                })
            }))
        }
    }

    fn refused() -> RelayError {
        RelayError::Broker {
            broker: "hand",
            target: "memory".to_owned(),
            message: "refused".to_owned(),
        }
    }

    #[tokio::test]
    async fn the_checkpoint_moves_only_over_the_confirmed_prefix_of_the_window() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        let head = append(&store, 1000).await;
        let hand = Hand::new();
        let relays = Relays::new(store.clone(), dir.path());
        relays
            .start_with("hand", Box::new(HandSink(hand.clone())))
            .unwrap();

        // Given the whole log handed over in several batches, none confirmed…
        let mut count = 0;
        while hand.batches.lock().last().is_none_or(|b| b.last < head.0) {
            count += 1;
            hand.wait_handed(count).await;
        }
        let ranges: Vec<(u64, u64)> = hand
            .batches
            .lock()
            .iter()
            .map(|b| (b.first, b.last))
            .collect();
        assert!(ranges.len() >= 4, "{ranges:?}");
        assert_eq!(relays.status()[0].checkpoint, Position::ZERO);
        // …when the last batch, then the first two are confirmed, the checkpoint reaches
        // the end of the second and no further: the third is a gap.
        hand.answer(ranges.len() - 1, Ok(()));
        hand.answer(0, Ok(()));
        hand.answer(1, Ok(()));
        let confirmed = Position(ranges[1].1);
        let status = relays.wait_for("hand", confirmed, WAIT).await.unwrap();
        assert_eq!(status.checkpoint, confirmed);
        assert_eq!(
            status.published, confirmed.0,
            "nothing behind the gap counts"
        );

        // When the third fails, the next session starts right after the confirmed prefix
        // and publishes the rest again.
        hand.auto.store(true, Ordering::SeqCst);
        hand.answer(2, Err(refused()));
        let status = relays.wait_for("hand", head, WAIT).await.unwrap();
        relays.shutdown().await;
        let batches = hand.batches.lock();
        let resumed = batches
            .iter()
            .find(|b| b.session == 2)
            .expect("a second session");
        assert_eq!(resumed.first, confirmed.0 + 1);
        assert_eq!(*hand.connects.lock(), 2);
        assert_eq!(status.checkpoint, head);
        assert_eq!(status.published, head.0, "every event counted once");
        assert_eq!(status.last_error, None, "a confirmation clears the error");
        let mut seen = std::collections::HashSet::new();
        let positions: Vec<u64> = hand
            .received
            .lock()
            .iter()
            .filter(|e| seen.insert(e.id))
            .map(|e| e.position.0)
            .collect();
        assert_eq!(positions, (1..=head.0).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn a_checkpoint_beyond_the_head_stops_the_relay() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        let head = append(&store, 5).await;
        let (broker, entered, confirms) = (
            Arc::default(),
            Arc::new(Notify::new()),
            Arc::new(Semaphore::new(100)),
        );
        let relays = Relays::new(store, dir.path());
        relays
            .start_with("fake", sink(&broker, &entered, &confirms))
            .unwrap();
        relays.wait_for("fake", head, WAIT).await.unwrap();
        relays.shutdown().await;

        // The same checkpoint over another (empty) log.
        let relays = Relays::new(Arc::new(MemoryStore::new()), dir.path());
        relays
            .start_with("fake", sink(&broker, &entered, &confirms))
            .unwrap();
        let err = relays
            .wait_until("fake", WAIT, |_| false)
            .await
            .unwrap_err();
        assert!(matches!(err, RelayError::Stopped { .. }), "{err}");
        assert_eq!(relays.status()[0].state, RelayState::Failed);
        relays.shutdown().await;
    }

    #[tokio::test]
    async fn names_are_checked_and_not_shared() {
        let dir = tempfile::tempdir().unwrap();
        let relays = Relays::new(Arc::new(MemoryStore::new()), dir.path());
        let (broker, entered, confirms) = (
            Arc::default(),
            Arc::new(Notify::new()),
            Arc::new(Semaphore::new(0)),
        );
        assert!(matches!(
            relays.start_with("Bad-Name", sink(&broker, &entered, &confirms)),
            Err(RelayError::InvalidName(_))
        ));
        relays
            .start_with("one", sink(&broker, &entered, &confirms))
            .unwrap();
        assert!(matches!(
            relays.start_with("one", sink(&broker, &entered, &confirms)),
            Err(RelayError::AlreadyRunning(_))
        ));
        relays.shutdown().await;
    }
}

#[cfg(feature = "sns")]
mod sqs {
    use rusqlite::Transaction;

    use crate::sqs::{Db, Outcome, apply, read_body};
    use crate::{ConsumedEvent, SqsReadModel};

    fn body(position: u64, stream: &str, version: u64) -> String {
        format!(
            r#"{{"format":1,"position":{position},"stream":"{stream}","version":{version},"id":"id-{position}","type":"Placed","data":{{"n":{position}}},"metadata":{{}},"recorded_at":"2026-11-30T06:00:00Z"}}"#
        )
    }

    /// Records the positions applied, in order.
    struct Applied;

    impl SqsReadModel for Applied {
        fn init(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
            tx.execute_batch("CREATE TABLE IF NOT EXISTS applied (position INTEGER)")
        }
        fn apply(&mut self, tx: &Transaction<'_>, event: &ConsumedEvent) -> rusqlite::Result<()> {
            tx.execute("INSERT INTO applied VALUES (?1)", [event.position as i64])
                .map(|_| ())
        }
    }

    #[test]
    fn a_body_is_the_envelope_or_an_sns_notification_around_it() {
        let raw = read_body(&body(7, "order-1", 2)).unwrap();
        assert_eq!(
            (raw.position, raw.version, raw.stream.as_str()),
            (7, 2, "order-1")
        );
        assert_eq!(raw.event_type, "Placed");
        assert_eq!(raw.data, serde_json::json!({"n": 7}));
        let notification = serde_json::json!({
            "Type": "Notification",
            "MessageId": "m",
            "Message": body(7, "order-1", 2),
        });
        assert_eq!(read_body(&notification.to_string()).unwrap(), raw);
        for bad in [
            "not json".to_owned(),
            r#"{"Type":"Notification"}"#.to_owned(),
            r#"{"format":1}"#.to_owned(),
            body(7, "order-1", 2).replace(r#""format":1"#, r#""format":2"#),
        ] {
            assert!(read_body(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn events_apply_once_in_version_order_and_early_ones_wait() {
        let dir = tempfile::tempdir().unwrap();
        let mut db = Db::open(dir.path().join("model.sqlite"), Box::new(Applied)).unwrap();
        let events = |list: &[(u64, &str, u64)]| -> Vec<ConsumedEvent> {
            list.iter()
                .map(|&(p, s, v)| read_body(&body(p, s, v)).unwrap())
                .collect()
        };
        // Given a receive that holds a stream's versions out of order, a repeat, and a
        // version of another stream whose predecessor has not come yet…
        let outcomes = apply(
            &mut db,
            events(&[
                (3, "order-1", 3),
                (2, "order-1", 2),
                (1, "order-1", 1),
                (1, "order-1", 1),
                (5, "order-2", 2),
            ]),
        )
        .unwrap();
        assert_eq!(
            outcomes,
            [
                Outcome::Applied,
                Outcome::Applied,
                Outcome::Applied,
                Outcome::Duplicate,
                Outcome::Early
            ]
        );
        // …then the missing one, and the early one again, and an old repeat.
        let outcomes = apply(
            &mut db,
            events(&[(5, "order-2", 2), (4, "order-2", 1), (2, "order-1", 2)]),
        )
        .unwrap();
        assert_eq!(
            outcomes,
            [Outcome::Applied, Outcome::Applied, Outcome::Duplicate]
        );
        let applied: Vec<i64> = db
            .conn()
            .prepare("SELECT position FROM applied ORDER BY rowid")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(applied, [1, 2, 3, 4, 5]);
    }
}

mod remote {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use strata_core::{Position, RecordedEvent, Version};
    use strata_projection::{ApplyError, FailurePolicy, SqliteProjection};
    use strata_store::ReadFilter;

    use super::event;
    use crate::{Delivered, RelayError, RemoteReadModel, envelope};

    /// Records each `order` event applied with its stream version; refuses a type named
    /// `Bad`, and an event out of its stream's order.
    struct Count(FailurePolicy);

    impl SqliteProjection for Count {
        fn name(&self) -> &'static str {
            "count"
        }
        fn version(&self) -> u32 {
            1
        }
        fn filter(&self) -> ReadFilter {
            ReadFilter::all()
                .category("order")
                .event_type("A")
                .event_type("Bad")
        }
        fn policy(&self) -> FailurePolicy {
            self.0
        }
        fn migrate(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
            tx.execute_batch(
                "CREATE TABLE seen (position INTEGER PRIMARY KEY, stream TEXT NOT NULL,
                                    version INTEGER NOT NULL)",
            )
        }
        fn apply(
            &self,
            tx: &rusqlite::Transaction<'_>,
            event: &RecordedEvent,
        ) -> Result<(), ApplyError> {
            tx.execute(
                "INSERT INTO seen VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    event.position.0 as i64,
                    event.stream.as_str(),
                    event.version.0 as i64
                ],
            )?;
            if event.event_type.as_str() == "Bad" {
                return Err(ApplyError::new("bad event"));
            }
            Ok(())
        }
    }

    /// A log: events spread over streams, each with its version and position.
    struct Log(Vec<RecordedEvent>);

    impl Log {
        fn new() -> Self {
            Self(Vec::new())
        }

        /// Appends an event of `event_type` to `stream`.
        fn append(&mut self, stream: &str, event_type: &str) -> RecordedEvent {
            let version = self
                .0
                .iter()
                .filter(|e| e.stream.as_str() == stream)
                .count() as u64;
            let mut e = event(stream, event_type, "{}");
            e.position = Position(self.0.len() as u64 + 1);
            e.version = Version(version + 1);
            self.0.push(e.clone());
            e
        }

        fn at(&self, position: u64) -> &RecordedEvent {
            &self.0[position as usize - 1]
        }
    }

    fn deliver(event: &RecordedEvent, partition: u32, offset: u64) -> Delivered {
        Delivered {
            payload: envelope(event),
            partition,
            offset,
        }
    }

    fn open(dir: &tempfile::TempDir, policy: FailurePolicy) -> RemoteReadModel {
        RemoteReadModel::open(dir.path().join("m.sqlite"), Arc::new(Count(policy))).unwrap()
    }

    /// (position, stream, version) of what the model applied, in position order.
    fn seen(model: &RemoteReadModel) -> Vec<(i64, String, i64)> {
        let conn = rusqlite::Connection::open(model.path()).unwrap();
        let mut st = conn
            .prepare("SELECT position, stream, version FROM seen ORDER BY position")
            .unwrap();
        st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    /// What the model built from `log` in order holds.
    fn expected(log: &Log) -> Vec<(i64, String, i64)> {
        log.0
            .iter()
            .filter(|e| e.stream.category() == "order" && e.event_type.as_str() == "A")
            .map(|e| {
                (
                    e.position.0 as i64,
                    e.stream.as_str().to_owned(),
                    e.version.0 as i64,
                )
            })
            .collect()
    }

    #[test]
    fn an_earlier_event_of_another_stream_arriving_later_is_applied() {
        // Given two streams on two partitions…
        let mut log = Log::new();
        let a1 = log.append("order-a", "A");
        let b1 = log.append("order-b", "A");
        let a2 = log.append("order-a", "A");
        let b2 = log.append("order-b", "A");
        let dir = tempfile::tempdir().unwrap();
        let model = open(&dir, FailurePolicy::Stop);
        // …when one partition is consumed ahead of the other…
        let first = model
            .apply(&[deliver(&a1, 0, 0), deliver(&a2, 0, 1)])
            .unwrap();
        assert_eq!(first.applied, 2);
        assert_eq!(first.checkpoint.position, Position(3));
        assert_eq!(
            first.checkpoint.watermark,
            Position(1),
            "position 2 has not arrived"
        );
        // …the other's lower positions still apply.
        let second = model
            .apply(&[deliver(&b1, 1, 0), deliver(&b2, 1, 1)])
            .unwrap();
        assert_eq!(second.applied, 2);
        assert_eq!(second.duplicates, 0);
        assert_eq!(second.checkpoint.watermark, Position(4));
        assert_eq!(
            second.checkpoint.offsets,
            BTreeMap::from([(0, 1), (1, 1)]),
            "each partition's offset"
        );
        assert_eq!(seen(&model), expected(&log));
    }

    #[test]
    fn duplicates_are_skipped_and_the_checkpoint_moves_with_the_model() {
        let mut log = Log::new();
        for (stream, event_type) in [
            ("order-1", "A"),
            ("payment-1", "A"),
            ("order-2", "A"),
            ("order-1", "Bad"),
            ("order-1", "Other"),
        ] {
            log.append(stream, event_type);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let model = open(&dir, FailurePolicy::Park);
        let first = model
            .apply(&[
                deliver(log.at(1), 0, 10),
                deliver(log.at(2), 0, 11),
                deliver(log.at(1), 0, 12),
                deliver(log.at(3), 0, 13),
            ])
            .unwrap();
        assert_eq!(first.applied, 2, "order events only, the repeat skipped");
        assert_eq!(first.duplicates, 1);
        let again = model
            .apply(&[
                deliver(log.at(3), 0, 14),
                deliver(log.at(2), 0, 15),
                deliver(log.at(4), 0, 16),
                deliver(log.at(5), 0, 17),
            ])
            .unwrap();
        assert_eq!(again.duplicates, 2, "a selected and an unselected stream");
        let checkpoint = model.checkpoint().unwrap();
        assert_eq!(checkpoint.position, Position(5));
        assert_eq!(checkpoint.watermark, Position(5));
        assert_eq!(checkpoint.offsets, BTreeMap::from([(0, 17)]));
        // The refused event left nothing in the model, and was parked.
        assert_eq!(
            seen(&model),
            [(1, "order-1".into(), 1), (3, "order-2".into(), 1)]
        );
        let conn = rusqlite::Connection::open(&path).unwrap();
        let parked: i64 = conn
            .query_row("SELECT position FROM strata_parked", [], |r| r.get(0))
            .unwrap();
        assert_eq!(parked, 4);
        drop(model);

        // Reopened, it stands where it stood, and still knows what it applied.
        let model = open(&dir, FailurePolicy::Park);
        assert_eq!(model.checkpoint().unwrap(), checkpoint);
        let repeat = model.apply(&[deliver(log.at(5), 0, 17)]).unwrap();
        assert_eq!((repeat.applied, repeat.duplicates), (0, 1));
    }

    #[test]
    fn an_early_event_is_held_until_its_predecessor_arrives() {
        let mut log = Log::new();
        let v1 = log.append("order-1", "A");
        let v2 = log.append("order-1", "A");
        let v3 = log.append("order-1", "A");
        let other = log.append("order-2", "A");
        let dir = tempfile::tempdir().unwrap();
        let model = open(&dir, FailurePolicy::Stop);
        // Given version 2 refused by the broker and published again after version 3…
        let first = model
            .apply(&[
                deliver(&v1, 0, 0),
                deliver(&v3, 0, 1),
                deliver(&v3, 0, 2),
                deliver(&other, 0, 3),
            ])
            .unwrap();
        // …version 3 waits, unapplied, and the status names the gap…
        assert_eq!(first.applied, 2);
        assert_eq!(first.duplicates, 1, "a repeat of a held event");
        assert_eq!(first.held, 1);
        assert_eq!(first.gaps.len(), 1);
        let gap = &first.gaps[0];
        assert_eq!(
            (gap.stream.as_str(), gap.applied, gap.held_from, gap.held),
            ("order-1", 1, 3, 1)
        );
        assert_eq!(gap.position, Position(3));
        assert_eq!(first.checkpoint.watermark, Position(1));
        assert_eq!(first.checkpoint.position, Position(4));
        assert_eq!(model.gaps().unwrap().1, 1, "the gap is stored");
        // …and when version 2 comes, both apply in order and the gap closes.
        let second = model.apply(&[deliver(&v2, 0, 4)]).unwrap();
        assert_eq!(second.applied, 2);
        assert_eq!(second.held, 0);
        assert!(second.gaps.is_empty());
        assert_eq!(second.checkpoint.watermark, Position(4));
        assert_eq!(seen(&model), expected(&log));
    }

    #[test]
    fn another_event_at_an_applied_version_stops_the_read_side() {
        let mut log = Log::new();
        let v1 = log.append("order-1", "A");
        let v3 = {
            log.append("order-1", "A");
            log.append("order-1", "A")
        };
        let dir = tempfile::tempdir().unwrap();
        let model = open(&dir, FailurePolicy::Stop);
        model
            .apply(&[deliver(&v1, 0, 0), deliver(&v3, 0, 1)])
            .unwrap();
        // The same stream and version under another id: another log.
        let mut foreign = v1.clone();
        foreign.id = strata_core::EventId::new();
        let err = model.apply(&[deliver(&foreign, 0, 2)]).unwrap_err();
        assert!(
            matches!(err, RelayError::ForeignEvent { version: 1, .. }),
            "{err}"
        );
        let mut foreign = v3.clone();
        foreign.id = strata_core::EventId::new();
        let err = model.apply(&[deliver(&foreign, 0, 2)]).unwrap_err();
        assert!(
            matches!(err, RelayError::ForeignEvent { version: 3, .. }),
            "{err}"
        );
        assert_eq!(
            model.checkpoint().unwrap().offsets,
            BTreeMap::from([(0, 1)])
        );
    }

    /// A small deterministic generator (xorshift), so the shuffles repeat.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    #[test]
    fn reordered_repeated_deliveries_converge_to_the_model_of_the_log() {
        for seed in 1..=20_u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
            let mut log = Log::new();
            let streams = ["order-1", "order-2", "order-3", "payment-1", "order-4"];
            for _ in 0..120 {
                let stream = streams[rng.below(streams.len())];
                let event_type = if rng.below(5) == 0 { "Other" } else { "A" };
                log.append(stream, event_type);
            }
            // Three partitions keyed by stream, as a Kafka topic holds them, with
            // redeliveries of earlier stretches and, now and then, a stream's event
            // stored after its successor (a refused and republished message).
            let mut partitions: Vec<Vec<RecordedEvent>> = vec![Vec::new(); 3];
            for e in &log.0 {
                let p = streams
                    .iter()
                    .position(|s| *s == e.stream.as_str())
                    .unwrap()
                    % 3;
                partitions[p].push(e.clone());
            }
            for partition in &mut partitions {
                let mut out: Vec<RecordedEvent> = Vec::new();
                for e in partition.iter() {
                    out.push(e.clone());
                    if rng.below(10) == 0 {
                        let back = rng.below(out.len().min(8)) + 1;
                        let from = out.len() - back;
                        out.extend(out[from..].to_vec());
                    }
                }
                for _ in 0..3 {
                    let i = rng.below(out.len() - 1);
                    out.swap(i, i + 1);
                }
                *partition = out;
            }
            // Delivered interleaved, in batches of random sizes.
            let dir = tempfile::tempdir().unwrap();
            let model = open(&dir, FailurePolicy::Stop);
            let mut cursors = [0_usize; 3];
            let mut batch = Vec::new();
            while cursors.iter().zip(&partitions).any(|(c, p)| *c < p.len()) {
                let p = rng.below(3);
                if cursors[p] == partitions[p].len() {
                    continue;
                }
                let e = &partitions[p][cursors[p]];
                batch.push(deliver(e, p as u32, cursors[p] as u64));
                cursors[p] += 1;
                if rng.below(7) == 0 {
                    model.apply(&std::mem::take(&mut batch)).unwrap();
                }
            }
            let last = model.apply(&batch).unwrap();
            assert_eq!(seen(&model), expected(&log), "seed {seed}");
            assert_eq!(last.held, 0, "seed {seed}");
            assert_eq!(
                last.checkpoint.watermark,
                Position(log.0.len() as u64),
                "seed {seed}"
            );
        }
    }

    #[test]
    fn a_refused_event_under_stop_commits_nothing_of_its_batch() {
        let mut log = Log::new();
        let good = log.append("order-1", "A");
        let bad = log.append("order-1", "Bad");
        let dir = tempfile::tempdir().unwrap();
        let model = open(&dir, FailurePolicy::Stop);
        let err = model
            .apply(&[deliver(&good, 0, 0), deliver(&bad, 0, 1)])
            .unwrap_err();
        assert!(
            matches!(
                err,
                RelayError::Apply {
                    position: Position(2),
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(model.checkpoint().unwrap(), Default::default());
        assert!(seen(&model).is_empty());
        let garbage = Delivered {
            payload: b"{}".to_vec(),
            partition: 0,
            offset: 0,
        };
        assert!(matches!(
            model.apply(&[garbage]),
            Err(RelayError::InvalidEnvelope(_))
        ));
    }

    #[test]
    fn a_model_of_the_layout_that_skipped_by_position_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.sqlite");
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE strata_remote_checkpoint (id INTEGER PRIMARY KEY, projection TEXT,
                 version INTEGER, position INTEGER, broker_offset INTEGER);
             INSERT INTO strata_remote_checkpoint VALUES (0, 'count', 1, 7, 7);",
        )
        .unwrap();
        drop(conn);
        let err = RemoteReadModel::open(&path, Arc::new(Count(FailurePolicy::Stop)))
            .err()
            .expect("refused");
        assert!(matches!(err, RelayError::ReadModelMismatch { .. }), "{err}");
        assert!(err.to_string().contains("layout 1"), "{err}");
    }
}
