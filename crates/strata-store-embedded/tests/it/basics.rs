//! Appends, reads and reopening, end to end through the public API.

use strata_core::{EventId, EventType, ExpectedVersion, NewEvent, Position, StreamName, Version};
use strata_store::{Direction, EventStore, ReadFilter, StoreError};
use strata_store_embedded::{EmbeddedStore, Options};

pub(crate) fn event(kind: &str, n: u64) -> NewEvent {
    NewEvent::json(
        EventType::new(kind).unwrap(),
        &serde_json::json!({ "n": n }),
    )
}

pub(crate) fn small_segments() -> Options {
    Options {
        segment_bytes: 4096,
        ..Options::default()
    }
}

#[tokio::test]
async fn appends_survive_reopen_across_many_segments() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let mut expected = Vec::new();
    for i in 0..300u64 {
        let stream = StreamName::new(format!("order-{}", i % 7)).unwrap();
        let e = event("Placed", i);
        let result = store
            .append(&stream, ExpectedVersion::Any, vec![e.clone()])
            .await
            .unwrap();
        assert_eq!(result.position, Position(i + 1));
        expected.push((stream, e.id));
    }
    store.close().await.unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    assert!(
        store.open_report().segments > 3,
        "{:?}",
        store.open_report()
    );
    assert_eq!(store.head().await.unwrap(), Position(300));
    let page = store
        .read_all(Position(1), 1000, &ReadFilter::all())
        .await
        .unwrap();
    assert_eq!(page.events.len(), 300);
    for (event, (stream, id)) in page.events.iter().zip(&expected) {
        assert_eq!(&event.stream, stream);
        assert_eq!(&event.id, id);
    }
    let s3 = StreamName::new("order-3").unwrap();
    let events = store
        .read_stream(&s3, None, Direction::Backward, 2)
        .await
        .unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].version, store.stream_version(&s3).await.unwrap());
    assert_eq!(events[1].version, Version(events[0].version.0 - 1));
    // The stream listing is rebuilt from the index files and the active segment.
    let listed = store.list_streams("order-", None, 100).await.unwrap();
    let want: Vec<(String, u64)> = (0..7u64)
        .map(|s| (format!("order-{s}"), (300 - s).div_ceil(7)))
        .collect();
    assert_eq!(
        listed
            .iter()
            .map(|s| (s.stream.as_str().to_owned(), s.version.0))
            .collect::<Vec<_>>(),
        want
    );
    assert_eq!(
        listed.iter().map(|s| s.last_position.0).collect::<Vec<_>>(),
        [295, 296, 297, 298, 299, 300, 294],
        "the last event of order-s is the last i < 300 with i % 7 == s, at position i + 1"
    );
    // The reopened store appends where it left off.
    let result = store
        .append(&s3, ExpectedVersion::Any, vec![event("Placed", 1)])
        .await
        .unwrap();
    assert_eq!(result.position, Position(301));
}

/// `position_of_id` finds an event by id in any stream, across segments and after a
/// reopen, and answers `None` for an id the log does not hold.
#[tokio::test]
async fn an_event_is_found_by_id_in_any_stream() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let mut ids = Vec::new();
    for i in 0..200u64 {
        let stream = StreamName::new(format!("order-{}", i % 5)).unwrap();
        let e = event("Placed", i);
        ids.push(e.id);
        store
            .append(&stream, ExpectedVersion::Any, vec![e])
            .await
            .unwrap();
    }
    assert_found(&store, &ids, "before a reopen");
    store.close().await.unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    assert!(
        store.open_report().segments > 1,
        "{:?}",
        store.open_report()
    );
    assert_found(&store, &ids, "after a reopen");
    store.close().await.unwrap();
}

/// An acknowledged event is found by its id at once, whichever of the store's threads
/// put its id in the filter, while other clients keep appending (and groups form).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_event_is_found_by_id_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let clients: Vec<_> = (0..4u64)
        .map(|client| {
            let store = store.clone();
            tokio::spawn(async move {
                let stream = StreamName::new(format!("order-{client}")).unwrap();
                for i in 0..150u64 {
                    let events: Vec<NewEvent> = (0..1 + i % 3)
                        .map(|n| event("Placed", i * 10 + n))
                        .collect();
                    let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
                    let result = store
                        .append(&stream, ExpectedVersion::Any, events)
                        .await
                        .unwrap();
                    let first = result.position.0 + 1 - ids.len() as u64;
                    for (k, id) in ids.iter().enumerate() {
                        assert_eq!(
                            store.position_of_id(*id).unwrap(),
                            Some(Position(first + k as u64)),
                            "client {client}, append {i}"
                        );
                    }
                    assert_eq!(store.ids_maybe_stored(&ids).unwrap(), ids);
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    store.close().await.unwrap();
}

fn assert_found(store: &EmbeddedStore, ids: &[strata_core::EventId], when: &str) {
    for (i, id) in ids.iter().enumerate().step_by(7) {
        assert_eq!(
            store.position_of_id(*id).unwrap(),
            Some(Position(i as u64 + 1)),
            "{when}: the event at position {}",
            i + 1
        );
    }
    assert_eq!(
        store.position_of_id(strata_core::EventId::new()).unwrap(),
        None,
        "{when}: an id never stored"
    );
}

#[tokio::test]
async fn second_writer_is_refused_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let _store = EmbeddedStore::open(dir.path(), Options::default()).unwrap();
    let err = EmbeddedStore::open(dir.path(), Options::default())
        .err()
        .expect("second open must fail");
    let text = err.to_string();
    assert!(text.contains("locked"), "{text}");
    assert!(text.contains(&std::process::id().to_string()), "{text}");
}

#[tokio::test]
async fn read_only_handle_follows_the_writer() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let stream = StreamName::new("acct-1").unwrap();
    store
        .append(&stream, ExpectedVersion::Any, vec![event("Opened", 0)])
        .await
        .unwrap();
    let reader = EmbeddedStore::open_read_only(dir.path(), Options::default()).unwrap();
    assert_eq!(reader.head().await.unwrap(), Position(1));
    for i in 1..100 {
        store
            .append(&stream, ExpectedVersion::Any, vec![event("Deposited", i)])
            .await
            .unwrap();
    }
    let other = StreamName::new("acct-2").unwrap();
    store
        .append(&other, ExpectedVersion::NoStream, vec![event("Opened", 0)])
        .await
        .unwrap();
    let mut watch = reader.watch_head();
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while *watch.borrow_and_update() < Position(101) {
            watch.changed().await.unwrap();
        }
    })
    .await
    .expect("the reader catches up");
    let events = reader
        .read_stream(&stream, None, Direction::Forward, 1000)
        .await
        .unwrap();
    assert_eq!(events.len(), 100);
    let listed = reader.list_streams("", None, 10).await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|s| (s.stream.as_str(), s.version.0, s.last_position.0))
            .collect::<Vec<_>>(),
        [("acct-1", 100, 100), ("acct-2", 1, 101)],
        "a follower lists the streams the writer created"
    );
    let err = reader
        .append(&stream, ExpectedVersion::Any, vec![event("X", 0)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "store_read_only");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitted_batches_commit_in_submission_order() {
    use strata_store_embedded::BatchAppend;
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let mut pending = Vec::new();
    for b in 0..60u64 {
        let appends = (0..20u64)
            .map(|i| BatchAppend {
                stream: StreamName::new(format!("bulk-{}", (b * 20 + i) % 13)).unwrap(),
                expected: ExpectedVersion::Any,
                events: vec![event("Loaded", b * 20 + i)],
                recorded_at: None,
            })
            .collect();
        pending.push(store.submit_batch(appends).await);
    }
    let mut expected_position = 1;
    for batch in pending {
        for outcome in batch.wait().await {
            assert_eq!(outcome.unwrap().position, Position(expected_position));
            expected_position += 1;
        }
    }
    let page = store
        .read_all(Position(1), 2000, &ReadFilter::all())
        .await
        .unwrap();
    for (i, e) in page.events.iter().enumerate() {
        assert_eq!(
            e.data_json()["n"],
            serde_json::json!(i as u64),
            "event {i} out of order"
        );
    }
}

#[tokio::test]
async fn a_bad_append_in_a_batch_fails_alone() {
    use strata_store_embedded::BatchAppend;
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Options::default()).unwrap();
    let s = StreamName::new("mixed-1").unwrap();
    let one = |expected, events| BatchAppend {
        stream: s.clone(),
        expected,
        events,
        recorded_at: None,
    };
    let outcomes = store
        .append_batch(vec![
            one(ExpectedVersion::NoStream, vec![event("A", 1)]),
            one(ExpectedVersion::Any, vec![]),
            one(ExpectedVersion::NoStream, vec![event("B", 2)]),
            one(
                ExpectedVersion::Exact(1),
                vec![event("C", 3), event("D", 4)],
            ),
        ])
        .await;
    assert_eq!(outcomes[0].as_ref().unwrap().last_version, Version(1));
    assert_eq!(outcomes[1].as_ref().unwrap_err().code(), "invalid_input");
    assert_eq!(
        outcomes[2].as_ref().unwrap_err().code(),
        "wrong_expected_version"
    );
    assert_eq!(outcomes[3].as_ref().unwrap().last_version, Version(3));
    assert_eq!(store.stream_version(&s).await.unwrap(), Version(3));
}

#[tokio::test]
async fn the_stats_count_one_fdatasync_per_acknowledged_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Options::default()).unwrap();
    assert_eq!(store.stats().fdatasyncs, 0);
    let stream = StreamName::new("order-1").unwrap();
    // Each append waits for its acknowledgement, so each is a group of its own.
    for i in 0..5u64 {
        store
            .append(&stream, ExpectedVersion::Any, vec![event("Placed", i)])
            .await
            .unwrap();
    }
    assert_eq!(store.stats().fdatasyncs, 5);
    store.close().await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        durability: strata_store_embedded::Durability::None,
        ..Options::default()
    };
    let store = EmbeddedStore::open(dir.path(), options).unwrap();
    store
        .append(&stream, ExpectedVersion::Any, vec![event("Placed", 0)])
        .await
        .unwrap();
    assert_eq!(
        store.stats().fdatasyncs,
        0,
        "nothing is synced without durability"
    );
    store.close().await.unwrap();
}

/// Ids stored past the id filter's first generation (65,536 ids), random and time-ordered,
/// are still refused when appended again and found by `position_of_id`, before and after a
/// reopen: a search after the filter's "maybe" covers only the positions of the
/// generations that may hold the id, and those must include the id's own.
#[tokio::test]
async fn ids_of_every_filter_generation_are_refused_when_repeated() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Options::default()).unwrap();
    let batches = 70u64;
    let mut ids = Vec::new();
    for batch in 0..batches {
        let stream = StreamName::new(format!("bulk-{}", batch % 7)).unwrap();
        let events: Vec<NewEvent> = (0..1000u64)
            .map(|i| {
                let e = event("Loaded", batch * 1000 + i);
                if batch % 2 == 0 {
                    e.with_id(EventId(uuid::Uuid::new_v4()))
                } else {
                    e
                }
            })
            .collect();
        ids.extend(events.iter().map(|e| e.id));
        store
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
    let samples: Vec<usize> = [0, 1, 999, 1000, 1500, 34_567, 65_535, 65_536, 65_537]
        .into_iter()
        .chain([ids.len() - 1001, ids.len() - 1])
        .collect();
    let mut store = store;
    for when in ["before a reopen", "after a reopen"] {
        if when == "after a reopen" {
            store.close().await.unwrap();
            store = EmbeddedStore::open(dir.path(), Options::default()).unwrap();
        }
        for &i in &samples {
            let position = Position(i as u64 + 1);
            assert_eq!(
                store.position_of_id(ids[i]).unwrap(),
                Some(position),
                "{when}: id {i}"
            );
            let again = event("Loaded", 0).with_id(ids[i]);
            let err = store
                .append(
                    &StreamName::new("elsewhere").unwrap(),
                    ExpectedVersion::Any,
                    vec![again],
                )
                .await
                .unwrap_err();
            assert!(
                matches!(err, StoreError::DuplicateEventId { existing: Some(p), .. } if p == position),
                "{when}: id {i}: {err:?}"
            );
        }
        let fresh = vec![
            event("Loaded", 0),
            event("Loaded", 1).with_id(EventId(uuid::Uuid::new_v4())),
        ];
        store
            .append(
                &StreamName::new(format!("fresh {when}")).unwrap(),
                ExpectedVersion::Any,
                fresh,
            )
            .await
            .unwrap();
    }
    store.close().await.unwrap();
}
