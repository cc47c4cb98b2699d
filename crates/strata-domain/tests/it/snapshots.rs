//! Snapshots: taken every N events, used when loading (only newer events are read),
//! ignored when their version or shape does not match the code, and never a reason for
//! a command to fail.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use strata_core::Version;
use strata_domain::{
    CommandContext, CommandHandler, Snapshot, SnapshotStore, decode_state, encode_state,
};

use crate::support::counter::{Counter, CounterCommand, CounterEvent, EVERY, fold};
use crate::support::{BrokenSnapshots, Fixture, on_both_stores, stream_name};

on_both_stores!(
    a_snapshot_is_taken_every_n_events,
    loading_starts_from_the_snapshot,
    a_snapshot_of_another_version_is_ignored,
    an_undecodable_snapshot_is_ignored,
    a_snapshot_beyond_the_streams_end_is_ignored,
    a_broken_snapshot_store_fails_no_command,
);

async fn add(handler: &CommandHandler, id: &str, n: i64) -> Version {
    handler
        .handle::<Counter>(id, &CounterCommand::Add(n), &CommandContext::new())
        .await
        .unwrap()
        .version
}

async fn snapshot_of(fx: &Fixture, stream: &str) -> Option<Snapshot> {
    fx.snapshots.load(&stream_name(stream)).await.unwrap()
}

async fn a_snapshot_is_taken_every_n_events(fx: Fixture) {
    let handler = fx.handler();
    let mut expected_at = None;
    for n in 1..=7 {
        let version = add(&handler, "snap", n).await;
        if version.0 % EVERY == 0 {
            expected_at = Some(version);
        }
        let snapshot = snapshot_of(&fx, "counter-snap").await;
        assert_eq!(
            snapshot.as_ref().map(|s| s.version),
            expected_at,
            "after {n}"
        );
    }
    let snapshot = snapshot_of(&fx, "counter-snap").await.unwrap();
    assert_eq!(snapshot.version, Version(6));
    assert_eq!(snapshot.schema_version, 2);
    assert_eq!(snapshot.stream.as_str(), "counter-snap");
    let state: Counter = decode_state(&snapshot.state).unwrap();
    assert_eq!(
        state,
        Counter {
            value: 21,
            applied: 6
        }
    );

    // One command crossing the interval snapshots the state after all its events.
    let events = vec![
        CounterEvent::Added { n: 3 },
        CounterEvent::Doubled,
        CounterEvent::Added { n: 1 },
        CounterEvent::Doubled,
    ];
    handler
        .handle::<Counter>(
            "burst",
            &CounterCommand::Record(events.clone()),
            &CommandContext::new(),
        )
        .await
        .unwrap();
    let snapshot = snapshot_of(&fx, "counter-burst").await.unwrap();
    assert_eq!(snapshot.version, Version(4));
    let state: Counter = decode_state(&snapshot.state).unwrap();
    assert_eq!(state, fold(&events));
    assert_eq!(state.value, 14);
}

async fn loading_starts_from_the_snapshot(fx: Fixture) {
    // Uncached: every load starts from the snapshot store.
    let handler = fx.handler_uncached();
    for n in 1..=6 {
        add(&handler, "warm", n).await;
    }
    let stored = fx.events("counter-warm").await;

    // Snapshot at the head: only its last event is read (it must exist, and it names the
    // position).
    let before = fx.spy.events_read();
    let loaded = handler.load::<Counter>("warm").await.unwrap();
    assert_eq!(fx.spy.events_read() - before, 1);
    assert_eq!(loaded.snapshot, Some(Version(6)));
    assert_eq!(loaded.version, Version(6));
    assert_eq!(loaded.position, stored[5].position);
    assert_eq!(
        loaded.state,
        Counter {
            value: 21,
            applied: 6
        }
    );

    add(&handler, "warm", 7).await;
    add(&handler, "warm", 8).await;
    let stored = fx.events("counter-warm").await;
    let before = fx.spy.events_read();
    let loaded = handler.load::<Counter>("warm").await.unwrap();
    assert_eq!(
        fx.spy.events_read() - before,
        3,
        "only the snapshot's last event and the events after it"
    );
    assert_eq!(loaded.snapshot, Some(Version(6)));
    assert_eq!(loaded.version, Version(8));
    assert_eq!(loaded.position, stored[7].position);
    assert_eq!(
        loaded.state,
        Counter {
            value: 36,
            applied: 8
        }
    );

    // Without snapshots every event is read, to the same state.
    let fresh = CommandHandler::new(
        fx.spy.clone(),
        Arc::new(strata_domain::MemorySnapshots::new()),
    );
    let before = fx.spy.events_read();
    let replayed = fresh.load::<Counter>("warm").await.unwrap();
    assert_eq!(fx.spy.events_read() - before, 8);
    assert_eq!(replayed.snapshot, None);
    assert_eq!(
        (replayed.state, replayed.version, replayed.position),
        (loaded.state, loaded.version, loaded.position)
    );
}

/// Replaces the stream's snapshot with one at the same version.
async fn plant(fx: &Fixture, stream: &str, schema_version: u32, state: impl Into<Bytes>) {
    let state = state.into();
    let version = snapshot_of(fx, stream).await.unwrap().version;
    fx.snapshots
        .save(Snapshot {
            stream: stream_name(stream),
            version,
            schema_version,
            state: state.clone(),
        })
        .await
        .unwrap();
    assert_eq!(snapshot_of(fx, stream).await.unwrap().state, state);
}

async fn a_snapshot_of_another_version_is_ignored(fx: Fixture) {
    // Every command loads, so the planted snapshots below are met by the commands too.
    let handler = fx.handler_uncached();
    for n in 1..=6 {
        add(&handler, "old", n).await;
    }
    // The shape matches, but versions 1 and 3 are other state shapes, where the value
    // means another thing, so they must not be used, in JSON (from before the header) or
    // in the binary encoding.
    let binary = encode_state(&Counter {
        value: 999,
        applied: 6,
    })
    .unwrap();
    let planted: [(u32, Bytes); 4] = [
        (1, Bytes::from_static(br#"{"value":999,"applied":6}"#)),
        (3, Bytes::from_static(br#"{"value":999,"applied":6}"#)),
        (1, Bytes::from(binary.clone())),
        (3, Bytes::from(binary)),
    ];
    for (schema_version, state) in planted {
        plant(&fx, "counter-old", schema_version, state).await;
        let before = fx.spy.events_read();
        let loaded = handler.load::<Counter>("old").await.unwrap();
        assert_eq!(loaded.snapshot, None);
        assert_eq!(
            loaded.state,
            Counter {
                value: 21,
                applied: 6
            }
        );
        assert_eq!(fx.spy.events_read() - before, 6);
    }

    // Commands decide on the rebuilt state, and the next one replaces the stale snapshot.
    add(&handler, "old", 7).await;
    let snapshot = snapshot_of(&fx, "counter-old").await.unwrap();
    assert_eq!((snapshot.version, snapshot.schema_version), (Version(7), 2));
    let loaded = handler.load::<Counter>("old").await.unwrap();
    assert_eq!(loaded.snapshot, Some(Version(7)));
    assert_eq!(
        loaded.state,
        Counter {
            value: 28,
            applied: 7
        }
    );
}

async fn an_undecodable_snapshot_is_ignored(fx: Fixture) {
    // Uncached: every load starts from the snapshot store.
    let handler = fx.handler_uncached();
    for n in 1..=3 {
        add(&handler, "junk", n).await;
    }
    // Of the current version, but not a state of this shape, or not a state at all: JSON
    // from before the header, the binary encoding of another shape, an encoding this code
    // does not know, a header alone.
    let other_shape = encode_state(&serde_json::json!({"value": "six", "applied": 3})).unwrap();
    let states = [
        Bytes::from_static(b"not json"),
        Bytes::from_static(br#"{"value":"six"}"#),
        Bytes::from_static(b"[]"),
        Bytes::from(other_shape),
        Bytes::from_static(b"\0SN\x09\x80"),
        Bytes::from_static(b"\0SN\x01\xc1"),
        Bytes::from_static(b"\0SN"),
    ];
    for state in states {
        plant(&fx, "counter-junk", 2, state).await;
        let loaded = handler.load::<Counter>("junk").await.unwrap();
        assert_eq!(loaded.snapshot, None);
        assert_eq!(
            loaded.state,
            Counter {
                value: 6,
                applied: 3
            }
        );
        assert_eq!(loaded.version, Version(3));
    }
    assert_eq!(add(&handler, "junk", 4).await, Version(4));
    assert_eq!(
        handler.load::<Counter>("junk").await.unwrap().state.value,
        10
    );
}

async fn a_broken_snapshot_store_fails_no_command(fx: Fixture) {
    let broken = Arc::new(BrokenSnapshots::default());
    // Every command loads, so every command meets the broken store.
    let handler = CommandHandler::new(fx.spy.clone(), broken.clone()).with_options(
        strata_domain::HandlerOptions {
            cached_aggregates: 0,
            ..Default::default()
        },
    );
    for n in 1..=7 {
        add(&handler, "down", n).await;
    }
    assert!(
        broken.saves.load(Ordering::SeqCst) >= 2,
        "it tried to save snapshots"
    );
    assert!(broken.loads.load(Ordering::SeqCst) >= 7);
    let loaded = handler.load::<Counter>("down").await.unwrap();
    assert_eq!(loaded.snapshot, None);
    assert_eq!(
        loaded.state,
        Counter {
            value: 28,
            applied: 7
        }
    );
    assert_eq!(loaded.version, Version(7));
    assert_eq!(fx.events("counter-down").await.len(), 7);
}

/// Snapshots kept apart from the events can get ahead of them (the event store restored
/// from an older backup, say): such a snapshot is ignored, and commands still apply.
async fn a_snapshot_beyond_the_streams_end_is_ignored(fx: Fixture) {
    // Uncached: every load starts from the snapshot store.
    let handler = fx.handler_uncached();
    for n in 1..=4 {
        add(&handler, "ahead", n).await;
    }
    fx.snapshots
        .save(Snapshot {
            stream: stream_name("counter-ahead"),
            version: Version(9),
            schema_version: 2,
            state: Bytes::from_static(br#"{"value":45,"applied":9}"#),
        })
        .await
        .unwrap();
    let loaded = handler.load::<Counter>("ahead").await.unwrap();
    assert_eq!(loaded.snapshot, None);
    assert_eq!(loaded.version, Version(4));
    assert_eq!(
        loaded.state,
        Counter {
            value: 10,
            applied: 4
        }
    );
    let past = handler
        .load_at_version::<Counter>("ahead", Version(9))
        .await
        .unwrap();
    assert_eq!((past.version, past.snapshot), (Version(4), None));
    assert_eq!(add(&handler, "ahead", 5).await, Version(5));
    assert_eq!(
        handler.load::<Counter>("ahead").await.unwrap().state,
        Counter {
            value: 15,
            applied: 5
        }
    );
}
