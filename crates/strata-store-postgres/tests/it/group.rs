//! Group commit: appends made at the same time share one transaction, yet each is decided
//! alone: a conflicting member fails with its own typed error, a member reusing an id
//! stored elsewhere is refused alone, repeats answer their first result, and the others
//! commit.

use std::collections::BTreeSet;
use std::time::Duration;

use futures::future::join_all;
use serde_json::json;
use strata_core::{EventType, ExpectedVersion, NewEvent, Position, StreamName};
use strata_store::{EventStore, ReadFilter, StoreError};

use crate::support::{Databases, options};

const APPENDS: usize = 32;

fn event(n: usize) -> NewEvent {
    NewEvent::json(
        EventType::new("Grouped").expect("a valid type"),
        &json!({ "n": n }),
    )
}

fn stream(n: usize) -> StreamName {
    StreamName::new(format!("account-{n}")).expect("a valid name")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_to_different_streams_share_commits() {
    let Some(databases) = Databases::new("concurrent_appends_to_different_streams_share_commits")
    else {
        return;
    };
    let store = databases.store(options(Duration::from_millis(200))).await;
    let appends = (0..APPENDS).map(|n| {
        let store = store.clone();
        async move {
            store
                .append(&stream(n), ExpectedVersion::NoStream, vec![event(n)])
                .await
        }
    });
    let results: Vec<_> = join_all(appends).await;
    let mut positions = BTreeSet::new();
    for result in results {
        let appended = result.expect("every append to its own stream commits");
        assert_eq!(appended.position, appended.first_position);
        positions.insert(appended.position.0);
    }
    assert_eq!(
        positions,
        (1..=APPENDS as u64).collect(),
        "the appends took positions 1..=n, each one"
    );
    // One group is one statement: its events share one recording time.
    let log = store
        .read_all(Position(1), APPENDS, &ReadFilter::all())
        .await
        .expect("read the log")
        .events;
    let commits: BTreeSet<_> = log.iter().map(|e| e.recorded_at).collect();
    assert!(
        commits.len() <= APPENDS / 2,
        "{APPENDS} concurrent appends took {} commits",
        commits.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conflicting_member_fails_alone() {
    let Some(databases) = Databases::new("a_conflicting_member_fails_alone") else {
        return;
    };
    let store = databases.store(options(Duration::from_millis(200))).await;
    // Every even stream exists already, so expecting no stream conflicts there.
    for n in (0..APPENDS).step_by(2) {
        store
            .append(&stream(n), ExpectedVersion::NoStream, vec![event(n)])
            .await
            .expect("set up a stream");
    }
    let head = store.head().await.expect("head");
    let appends = (0..APPENDS).map(|n| {
        let store = store.clone();
        async move {
            store
                .append(&stream(n), ExpectedVersion::NoStream, vec![event(n)])
                .await
        }
    });
    let results: Vec<_> = join_all(appends).await;
    for (n, result) in results.into_iter().enumerate() {
        if n % 2 == 0 {
            assert!(
                matches!(
                    &result,
                    Err(StoreError::WrongExpectedVersion { actual, .. }) if actual.0 == 1
                ),
                "stream {n} exists: {result:?}"
            );
        } else {
            let appended = result.unwrap_or_else(|err| panic!("stream {n} is new: {err}"));
            assert_eq!(appended.last_version.0, 1);
        }
    }
    assert_eq!(
        store.head().await.expect("head").0,
        head.0 + APPENDS as u64 / 2,
        "only the new streams' events were written"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_reusing_an_id_of_another_stream_is_refused_alone() {
    let Some(databases) =
        Databases::new("a_member_reusing_an_id_of_another_stream_is_refused_alone")
    else {
        return;
    };
    let store = databases.store(options(Duration::from_millis(200))).await;
    let taken = event(0);
    let stored = store
        .append(&stream(1000), ExpectedVersion::Any, vec![taken.clone()])
        .await
        .expect("store the id");
    let appends = (0..APPENDS).map(|n| {
        let store = store.clone();
        let events = if n == APPENDS / 2 {
            vec![taken.clone()]
        } else {
            vec![event(n)]
        };
        async move { store.append(&stream(n), ExpectedVersion::Any, events).await }
    });
    let results: Vec<_> = join_all(appends).await;
    for (n, result) in results.into_iter().enumerate() {
        if n == APPENDS / 2 {
            assert!(
                matches!(
                    &result,
                    Err(StoreError::DuplicateEventId { id, existing: Some(at), .. })
                        if *id == taken.id && *at == stored.position
                ),
                "the reused id is refused: {result:?}"
            );
        } else {
            result.unwrap_or_else(|err| panic!("append {n} commits: {err}"));
        }
    }
    assert_eq!(store.head().await.expect("head").0, APPENDS as u64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_repeats_answer_the_first_result() {
    let Some(databases) = Databases::new("concurrent_repeats_answer_the_first_result") else {
        return;
    };
    let store = databases.store(options(Duration::from_millis(200))).await;
    let events: Vec<NewEvent> = (0..3).map(event).collect();
    let target = stream(7);
    // The same append eight times at once: one group takes one of them, the others wait
    // for a later group (same stream) and are recognised as repeats.
    let appends = (0..8).map(|_| {
        let store = store.clone();
        let events = events.clone();
        let target = target.clone();
        async move {
            store
                .append(&target, ExpectedVersion::NoStream, events)
                .await
        }
    });
    let results: Vec<_> = join_all(appends).await;
    let first = *results[0].as_ref().expect("the append commits");
    for result in &results {
        assert_eq!(result.as_ref().expect("a repeat succeeds"), &first);
    }
    assert_eq!(store.head().await.expect("head").0, 3, "written once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_append_is_written_whole() {
    let Some(databases) = Databases::new("a_bulk_append_is_written_whole") else {
        return;
    };
    let store = databases.store(options(Duration::from_millis(200))).await;
    let events: Vec<NewEvent> = (0..5000).map(event).collect();
    let appended = store
        .append(&stream(1), ExpectedVersion::NoStream, events.clone())
        .await
        .expect("a bulk append");
    assert_eq!((appended.first_position.0, appended.position.0), (1, 5000));
    let stored = store
        .read_all(Position(1), 10_000, &ReadFilter::all())
        .await
        .expect("read back")
        .events;
    assert_eq!(stored.len(), 5000);
    for ((got, want), version) in stored.iter().zip(&events).zip(1..) {
        assert_eq!((got.id, got.version.0), (want.id, version));
    }
}
