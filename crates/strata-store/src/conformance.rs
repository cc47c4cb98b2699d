//! The conformance suite: the [`crate::EventStore`] contract as executable checks.
//! Every backend runs it against itself.
//!
//! Each case is a `pub async fn` that takes a [`Backend`], makes its own fresh stores and
//! panics with a sentence naming the broken rule. [`conformance_tests!`](crate::conformance_tests)
//! turns every case into a test. Event counts stay in the low thousands so that a backend
//! which fsyncs every commit still runs the suite in seconds; every wait is bounded, so a
//! bug fails a case instead of hanging it.

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::json;
use strata_core::{
    CoreError, EventId, EventType, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName,
    Timestamp, Version,
};

use crate::{
    AllPage, AppendResult, DEFAULT_MAX_EVENT_BYTES, Direction, EventStore, EventStream, ReadFilter,
    StoreError, StreamSummary,
};

/// How the suite gets stores to test.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The store type under test.
    type Store: EventStore + Clone;

    /// A new, empty store with the backend's default settings (in particular the default
    /// event size limit, [`DEFAULT_MAX_EVENT_BYTES`]).
    async fn fresh(&self) -> Self::Store;

    /// Closes `store` and opens the same data again, as after a restart; `None` if the
    /// backend keeps nothing across a restart. The suite drops every other handle to the
    /// store before it calls this.
    async fn reopen(&self, store: Self::Store) -> Option<Self::Store>;
}

/// The longest one case may take before it fails as hung.
pub const CASE_DEADLINE: Duration = Duration::from_secs(120);

/// The longest one step inside a case (an awaited event, a writer task) may take.
const STEP_DEADLINE: Duration = Duration::from_secs(30);

/// How long a subscription must stay silent to count as having nothing more to yield.
const QUIET: Duration = Duration::from_millis(200);

/// A limit larger than anything the suite writes.
const NO_LIMIT: usize = 1_000_000;

/// Runs one case, failing it if it takes longer than [`CASE_DEADLINE`].
pub async fn run<F: Future<Output = ()>>(case: &str, body: F) {
    if tokio::time::timeout(CASE_DEADLINE, body).await.is_err() {
        panic!("conformance case {case} did not finish within {CASE_DEADLINE:?}");
    }
}

/// Generates one `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]` per
/// conformance case, named like the case, each calling it with the backend returned by
/// the given zero-argument function.
///
/// The invoking crate needs `tokio` with the `macros` and `rt-multi-thread` features.
///
/// A backend that needs an outside server takes `optional`: `conformance_tests!(optional
/// backend)` calls a function returning `Option<B>`, and a case whose backend is `None`
/// passes without running (the function says why it was skipped).
///
/// ```
/// use async_trait::async_trait;
/// use strata_store::MemoryStore;
/// use strata_store::conformance::Backend;
///
/// struct Memory;
///
/// #[async_trait]
/// impl Backend for Memory {
///     type Store = MemoryStore;
///
///     async fn fresh(&self) -> MemoryStore {
///         MemoryStore::new()
///     }
///
///     async fn reopen(&self, _store: MemoryStore) -> Option<MemoryStore> {
///         None
///     }
/// }
///
/// fn backend() -> Memory {
///     Memory
/// }
///
/// mod conformance {
///     strata_store::conformance_tests!(crate::backend);
/// }
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (optional $backend:path) => {
        $crate::conformance_tests!(@list optional $backend);
    };
    ($backend:path) => {
        $crate::conformance_tests!(@list required $backend);
    };
    (@list $mode:ident $backend:path) => {
        $crate::conformance_tests!(@cases $mode $backend;
            append_assigns_consecutive_versions_and_positions,
            expected_any_appends_whatever_the_version,
            expected_no_stream_requires_a_missing_stream,
            expected_exists_requires_an_existing_stream,
            expected_exact_match_appends,
            expected_exact_too_low_conflicts,
            expected_exact_too_high_conflicts,
            concurrent_writers_on_one_stream_win_each_version_once,
            concurrent_appends_to_different_streams_keep_positions_contiguous,
            idempotent_retry_at_the_same_expected_version,
            idempotent_retry_with_any_and_exists,
            idempotent_partial_match_is_a_conflict,
            idempotent_retry_after_reopen,
            event_ids_are_unique_across_the_log,
            racing_appends_with_one_id_store_it_once,
            reopen_keeps_every_event,
            read_stream_forward,
            read_stream_backward,
            read_stream_of_a_missing_stream_is_empty,
            read_all_pages_in_position_order,
            read_all_filters_by_category,
            read_all_filters_by_event_type,
            read_all_filters_by_category_and_event_type,
            stream_version_and_head,
            subscribe_from_start_sees_history_then_live_exactly_once,
            subscribe_after_a_position,
            subscribe_with_a_filter,
            subscribe_slow_consumer_does_not_block_writers,
            stream_name_rules,
            empty_append_is_rejected,
            oversized_event_is_rejected,
            events_round_trip_byte_exact,
            recorded_at_is_set_and_non_decreasing,
            append_result_carries_the_stored_recording_time,
            event_by_id_finds_only_the_streams_own_events,
            list_streams_of_an_empty_store_is_empty,
            list_streams_pages_cover_every_stream_once_in_name_order,
            list_streams_filters_by_prefix,
            list_streams_takes_at_most_the_limit,
            list_streams_after_the_last_name_is_empty,
            list_streams_sees_streams_created_between_pages,
            list_streams_while_streams_are_created,
        );
    };
    (@cases required $backend:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend = $backend();
                $crate::conformance::run(
                    stringify!($case),
                    $crate::conformance::$case(&backend),
                )
                .await;
            }
        )*
    };
    (@cases optional $backend:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let Some(backend) = $backend() else {
                    return;
                };
                $crate::conformance::run(
                    stringify!($case),
                    $crate::conformance::$case(&backend),
                )
                .await;
            }
        )*
    };
}

// ---------------------------------------------------------------------------------------
// Append: atomicity and expected versions.

/// One append of several events gets consecutive versions and consecutive global
/// positions, and its result names them.
pub async fn append_assigns_consecutive_versions_and_positions<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let a = stream("atomic-a");
    let b = stream("atomic-b");

    let first = numbered("Added", 3);
    let r1 = append_ok(&store, &a, ExpectedVersion::NoStream, first.clone()).await;
    assert_eq!(
        r1,
        AppendResult {
            first_version: Version(1),
            last_version: Version(3),
            first_position: Position(1),
            position: Position(3),
            recorded_at: r1.recorded_at,
        },
        "the first append of three events to an empty store"
    );
    let r2 = append_ok(&store, &b, ExpectedVersion::Any, numbered("Added", 2)).await;
    assert_eq!(
        r2,
        AppendResult {
            first_version: Version(1),
            last_version: Version(2),
            first_position: Position(4),
            position: Position(5),
            recorded_at: r2.recorded_at,
        },
        "an append of two events to a second stream"
    );
    let second = numbered("Added", 4);
    let r3 = append_ok(&store, &a, ExpectedVersion::Exact(3), second.clone()).await;
    assert_eq!(
        r3,
        AppendResult {
            first_version: Version(4),
            last_version: Version(7),
            first_position: Position(6),
            position: Position(9),
            recorded_at: r3.recorded_at,
        },
        "a second append of four events to the first stream"
    );

    let read = read_forward(&store, &a).await;
    let proposed: Vec<&NewEvent> = first.iter().chain(&second).collect();
    assert_eq!(read.len(), 7, "stream {a} holds every appended event");
    let positions = [1, 2, 3, 6, 7, 8, 9];
    for (i, (event, new)) in read.iter().zip(&proposed).enumerate() {
        assert_eq!(event.version, Version(i as u64 + 1), "versions of {a}");
        assert_eq!(event.position, Position(positions[i]), "positions of {a}");
        assert_same_event(event, new);
        assert_eq!(event.stream, a);
    }
    assert_eq!(
        (r1.recorded_at, r3.recorded_at),
        (read[2].recorded_at, read[6].recorded_at),
        "an append's result carries the recording time a read of its last event returns"
    );
    assert_eq!(store.stream_version(&a).await.unwrap(), Version(7));
    assert_eq!(store.stream_version(&b).await.unwrap(), Version(2));
    assert_eq!(store.head().await.unwrap(), Position(9));
    assert_log_consistent(&store).await;
}

/// `Any` appends to a missing stream and to an existing one.
pub async fn expected_any_appends_whatever_the_version<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("any-1");
    let r = append_ok(&store, &s, ExpectedVersion::Any, numbered("E", 1)).await;
    assert_eq!((r.first_version, r.last_version), (Version(1), Version(1)));
    let r = append_ok(&store, &s, ExpectedVersion::Any, numbered("E", 2)).await;
    assert_eq!((r.first_version, r.last_version), (Version(2), Version(3)));
    assert_eq!(store.stream_version(&s).await.unwrap(), Version(3));
}

/// `NoStream` appends to a missing stream and conflicts, with the actual version, on an
/// existing one; the conflict writes nothing.
pub async fn expected_no_stream_requires_a_missing_stream<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("nostream-1");
    let r = append_ok(&store, &s, ExpectedVersion::NoStream, numbered("E", 2)).await;
    assert_eq!(r.last_version, Version(2));

    let before = snapshot(&store).await;
    let err = store
        .append(&s, ExpectedVersion::NoStream, numbered("E", 1))
        .await;
    assert_conflict(err, &s, ExpectedVersion::NoStream, 2);
    assert_unchanged(&store, &before, "a conflicting NoStream append").await;

    // Exact(0) means the same thing.
    let err = store
        .append(&s, ExpectedVersion::Exact(0), numbered("E", 1))
        .await;
    assert_conflict(err, &s, ExpectedVersion::Exact(0), 2);
    let other = stream("nostream-2");
    let r = append_ok(&store, &other, ExpectedVersion::Exact(0), numbered("E", 1)).await;
    assert_eq!(r.first_version, Version(1));
}

/// `Exists` conflicts (actual 0) on a missing stream, writing nothing, and appends to an
/// existing one.
pub async fn expected_exists_requires_an_existing_stream<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("exists-1");
    let err = store
        .append(&s, ExpectedVersion::Exists, numbered("E", 1))
        .await;
    assert_conflict(err, &s, ExpectedVersion::Exists, 0);
    assert_eq!(store.stream_version(&s).await.unwrap(), Version(0));
    assert_eq!(store.head().await.unwrap(), Position(0));

    append_ok(&store, &s, ExpectedVersion::NoStream, numbered("E", 1)).await;
    let r = append_ok(&store, &s, ExpectedVersion::Exists, numbered("E", 2)).await;
    assert_eq!((r.first_version, r.last_version), (Version(2), Version(3)));
}

/// `Exact(n)` appends when the stream is at version n (0 for a missing stream).
pub async fn expected_exact_match_appends<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("exact-1");
    let mut version = 0;
    for count in [1, 3, 2] {
        let r = append_ok(
            &store,
            &s,
            ExpectedVersion::Exact(version),
            numbered("E", count),
        )
        .await;
        assert_eq!(r.first_version, Version(version + 1));
        version += count as u64;
        assert_eq!(r.last_version, Version(version));
    }
    assert_eq!(store.stream_version(&s).await.unwrap(), Version(6));
}

/// `Exact(n)` below the stream's version conflicts with the actual version and writes
/// nothing.
pub async fn expected_exact_too_low_conflicts<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("low-1");
    append_ok(&store, &s, ExpectedVersion::Any, numbered("E", 3)).await;
    let before = snapshot(&store).await;
    for stale in [0, 1, 2] {
        let err = store
            .append(&s, ExpectedVersion::Exact(stale), numbered("E", 1))
            .await;
        assert_conflict(err, &s, ExpectedVersion::Exact(stale), 3);
    }
    assert_unchanged(&store, &before, "appends with a stale expected version").await;
}

/// `Exact(n)` above the stream's version conflicts with the actual version, on a missing
/// and on an existing stream, and writes nothing.
pub async fn expected_exact_too_high_conflicts<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let missing = stream("high-missing");
    let err = store
        .append(&missing, ExpectedVersion::Exact(1), numbered("E", 1))
        .await;
    assert_conflict(err, &missing, ExpectedVersion::Exact(1), 0);

    let s = stream("high-1");
    append_ok(&store, &s, ExpectedVersion::Any, numbered("E", 2)).await;
    let before = snapshot(&store).await;
    for ahead in [3, 4, 1000, u64::MAX] {
        let err = store
            .append(&s, ExpectedVersion::Exact(ahead), numbered("E", 1))
            .await;
        assert_conflict(err, &s, ExpectedVersion::Exact(ahead), 2);
    }
    assert_unchanged(&store, &before, "appends expecting a future version").await;
    assert_eq!(store.stream_version(&missing).await.unwrap(), Version(0));
}

// ---------------------------------------------------------------------------------------
// Concurrency.

/// Eight tasks race 50 two-event appends each onto one stream with exact expected
/// versions, retrying from the conflict's actual version: every version is won exactly
/// once, the pairs never interleave, and versions and positions have no gaps.
pub async fn concurrent_writers_on_one_stream_win_each_version_once<B: Backend>(backend: &B) {
    const TASKS: usize = 8;
    const ATTEMPTS: usize = 50;
    let store = backend.fresh().await;
    let s = stream("race-1");
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (store, s, barrier) = (store.clone(), s.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let mut known = 0u64;
            let mut wins = Vec::new();
            for attempt in 0..ATTEMPTS {
                let pair: Vec<NewEvent> = (0..2)
                    .map(|part| {
                        event(
                            "Raced",
                            json!({"task": task, "attempt": attempt, "part": part}),
                        )
                    })
                    .collect();
                let ids = [pair[0].id, pair[1].id];
                match store.append(&s, ExpectedVersion::Exact(known), pair).await {
                    Ok(r) => {
                        assert_eq!(
                            (r.first_version, r.last_version),
                            (Version(known + 1), Version(known + 2)),
                            "a won append expecting version {known}"
                        );
                        assert_eq!(
                            r.position.0,
                            r.first_position.0 + 1,
                            "positions of one append are consecutive"
                        );
                        known = r.last_version.0;
                        wins.push((r, ids));
                    }
                    Err(StoreError::WrongExpectedVersion {
                        stream,
                        expected,
                        actual,
                    }) => {
                        assert_eq!(stream, s);
                        assert_eq!(expected, ExpectedVersion::Exact(known));
                        assert!(
                            actual.0 > known,
                            "a conflict expecting {known} reported actual version {actual}, \
                             but the stream only grows"
                        );
                        assert!(
                            actual.0 % 2 == 0,
                            "actual version {actual} splits a two-event append"
                        );
                        known = actual.0;
                    }
                    Err(err) => panic!("append expecting version {known} failed: {err}"),
                }
            }
            wins
        }));
    }
    let mut wins = Vec::new();
    for task in tasks {
        wins.extend(within("a racing writer", task).await.expect("writer task"));
    }
    assert!(
        wins.len() >= ATTEMPTS,
        "only {} appends won; every failed attempt needs another writer's win",
        wins.len()
    );
    wins.sort_by_key(|(r, _)| r.first_version);
    for (i, (r, _)) in wins.iter().enumerate() {
        assert_eq!(
            r.first_version,
            Version(2 * i as u64 + 1),
            "versions won: each exactly once, none skipped"
        );
    }
    let total = 2 * wins.len() as u64;
    assert_eq!(store.stream_version(&s).await.unwrap(), Version(total));
    assert_eq!(store.head().await.unwrap(), Position(total));

    let read = read_forward(&store, &s).await;
    assert_eq!(read.len() as u64, total);
    for (pair, (r, ids)) in read.chunks(2).zip(&wins) {
        for (event, (id, position)) in pair
            .iter()
            .zip([(ids[0], r.first_position), (ids[1], r.position)])
        {
            assert_eq!(
                event.id, id,
                "the event at version {} is the winner's",
                event.version
            );
            assert_eq!(event.position, position);
        }
    }
    let log = assert_log_consistent(&store).await;
    assert_eq!(log.len() as u64, total);
}

/// Eight tasks append to their own streams at once while a reader tails the log: every
/// append succeeds, positions are unique and contiguous, each append's events are
/// consecutive, and the reader never sees a gap.
pub async fn concurrent_appends_to_different_streams_keep_positions_contiguous<B: Backend>(
    backend: &B,
) {
    const TASKS: usize = 8;
    const APPENDS: usize = 50;
    let store = backend.fresh().await;
    let size = |i: usize| i % 3 + 1;
    let total: u64 = (TASKS * (0..APPENDS).map(size).sum::<usize>()) as u64;
    let barrier = Arc::new(tokio::sync::Barrier::new(TASKS + 1));

    let reader = {
        let (store, barrier) = (store.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let mut seen = 0u64;
            let mut from = Position(1);
            while seen < total {
                let page = store.read_all(from, 64, &ReadFilter::all()).await.unwrap();
                for event in &page.events {
                    seen += 1;
                    assert_eq!(
                        event.position,
                        Position(seen),
                        "a tailing reader saw position {} after {}: a gap",
                        event.position,
                        seen - 1
                    );
                }
                if page.events.is_empty() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                } else {
                    assert_eq!(page.next, Position(seen + 1), "AllPage::next");
                }
                from = page.next.max(from);
            }
        })
    };

    let mut writers = Vec::new();
    for task in 0..TASKS {
        let (store, barrier) = (store.clone(), barrier.clone());
        writers.push(tokio::spawn(async move {
            let s = stream(&format!("conc{task}-x"));
            barrier.wait().await;
            let mut version = 0u64;
            let mut appended = Vec::new();
            for i in 0..APPENDS {
                let events = numbered("Parallel", size(i));
                let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
                let r = store
                    .append(&s, ExpectedVersion::Exact(version), events)
                    .await
                    .unwrap_or_else(|err| panic!("append {i} to {s}: {err}"));
                assert_eq!(r.first_version, Version(version + 1));
                version += ids.len() as u64;
                assert_eq!(r.last_version, Version(version));
                assert_eq!(
                    r.position.0 - r.first_position.0 + 1,
                    ids.len() as u64,
                    "one append's positions are consecutive"
                );
                appended.push((r, ids));
            }
            (s, appended)
        }));
    }
    let mut by_position = BTreeMap::new();
    for writer in writers {
        let (s, appended) = within("a writer", writer).await.expect("writer task");
        for (r, ids) in appended {
            for (i, id) in ids.into_iter().enumerate() {
                let position = Position(r.first_position.0 + i as u64);
                let version = Version(r.first_version.0 + i as u64);
                let previous = by_position.insert(position, (s.clone(), version, id));
                assert!(previous.is_none(), "position {position} was given twice");
            }
        }
    }
    within("the tailing reader", reader)
        .await
        .expect("reader task");

    assert_eq!(store.head().await.unwrap(), Position(total));
    let log = assert_log_consistent(&store).await;
    assert_eq!(log.len() as u64, total);
    for event in &log {
        let (s, version, id) = &by_position[&event.position];
        assert_eq!(
            (&event.stream, event.version, event.id),
            (s, *version, *id),
            "the event at position {} is the one its append reported",
            event.position
        );
    }
}

// ---------------------------------------------------------------------------------------
// Idempotency.

/// Repeating an append with the same ids at the same expected version returns the
/// original result and writes nothing, for the first append, a later one and a tail of
/// one.
pub async fn idempotent_retry_at_the_same_expected_version<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("idem-1");
    let first = numbered("E", 2);
    let second = numbered("E", 1);
    let r1 = append_ok(&store, &s, ExpectedVersion::NoStream, first.clone()).await;
    append_ok(
        &store,
        &stream("idem-2"),
        ExpectedVersion::Any,
        numbered("E", 1),
    )
    .await;
    let r2 = append_ok(&store, &s, ExpectedVersion::Exact(2), second.clone()).await;

    let before = snapshot(&store).await;
    let retries = [
        (ExpectedVersion::NoStream, first.clone(), r1),
        (ExpectedVersion::Exact(0), first.clone(), r1),
        (ExpectedVersion::Exact(2), second.clone(), r2),
        (
            ExpectedVersion::Exact(1),
            first[1..].to_vec(),
            AppendResult {
                first_version: Version(2),
                last_version: Version(2),
                first_position: r1.position,
                position: r1.position,
                recorded_at: r1.recorded_at,
            },
        ),
    ];
    for (expected, events, original) in retries {
        let again = append_ok(&store, &s, expected, events).await;
        assert_eq!(again, original, "a repeated append expecting {expected}");
    }
    // Twice more, to be sure the first repeat did not change anything.
    assert_eq!(
        append_ok(&store, &s, ExpectedVersion::NoStream, first).await,
        r1
    );
    assert_unchanged(&store, &before, "repeated appends").await;

    let r3 = append_ok(&store, &s, ExpectedVersion::Exact(3), numbered("E", 1)).await;
    assert_eq!(r3.first_version, Version(4));
    assert_eq!(r3.position, before.head.next());
}

/// With `Any` or `Exists`, repeating an append whose ids are already consecutive events
/// of the stream returns their original result and writes nothing.
pub async fn idempotent_retry_with_any_and_exists<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("idemany-1");
    let first = numbered("E", 2);
    let second = numbered("E", 1);
    let r1 = append_ok(&store, &s, ExpectedVersion::Any, first.clone()).await;
    append_ok(
        &store,
        &stream("idemany-2"),
        ExpectedVersion::Any,
        numbered("E", 2),
    )
    .await;
    let r2 = append_ok(&store, &s, ExpectedVersion::Any, second.clone()).await;

    let before = snapshot(&store).await;
    for expected in [ExpectedVersion::Any, ExpectedVersion::Exists] {
        assert_eq!(append_ok(&store, &s, expected, first.clone()).await, r1);
        assert_eq!(append_ok(&store, &s, expected, second.clone()).await, r2);
        let straddling = vec![first[1].clone(), second[0].clone()];
        assert_eq!(
            append_ok(&store, &s, expected, straddling).await,
            AppendResult {
                first_version: Version(2),
                last_version: Version(3),
                first_position: r1.position,
                position: r2.position,
                recorded_at: r2.recorded_at,
            },
            "a repeat of versions 2 and 3 expecting {expected}"
        );
    }
    assert_unchanged(&store, &before, "repeated appends expecting any or exists").await;
}

/// An append whose ids match only part of the stream's events at that point is a
/// conflict, with every kind of expectation, and writes nothing.
pub async fn idempotent_partial_match_is_a_conflict<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("partial-1");
    let first = numbered("E", 2);
    append_ok(&store, &s, ExpectedVersion::NoStream, first.clone()).await;
    let (a, b) = (first[0].clone(), first[1].clone());
    let x = event("E", json!({"fresh": true}));

    let before = snapshot(&store).await;
    let cases = [
        (ExpectedVersion::NoStream, vec![a.clone(), x.clone()]),
        (
            ExpectedVersion::NoStream,
            vec![a.clone(), b.clone(), x.clone()],
        ),
        (ExpectedVersion::NoStream, vec![b.clone()]),
        (ExpectedVersion::Exact(1), vec![b.clone(), x.clone()]),
        (ExpectedVersion::Exact(1), vec![a.clone()]),
        (ExpectedVersion::Any, vec![a.clone(), x.clone()]),
        (ExpectedVersion::Any, vec![b.clone(), a.clone()]),
        (ExpectedVersion::Exists, vec![b.clone(), x.clone()]),
    ];
    for (expected, events) in cases {
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        let result = store.append(&s, expected, events).await;
        match result {
            Err(StoreError::WrongExpectedVersion {
                stream,
                expected: e,
                actual,
            }) => {
                assert_eq!((stream, e, actual), (s.clone(), expected, Version(2)));
            }
            other => panic!(
                "append of ids {ids:?} expecting {expected} to a stream holding {:?}: \
                 want a conflict, got {other:?}",
                [a.id, b.id]
            ),
        }
    }
    assert_unchanged(&store, &before, "partially repeated appends").await;

    let r = append_ok(&store, &s, ExpectedVersion::Any, vec![x]).await;
    assert_eq!(r.first_version, Version(3));
}

/// After a restart, repeating an acknowledged append returns its original result and
/// writes nothing. Skipped when the backend keeps nothing across a restart.
pub async fn idempotent_retry_after_reopen<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("idemreopen-1");
    let first = numbered("E", 2);
    let second = numbered("E", 1);
    let r1 = append_ok(&store, &s, ExpectedVersion::NoStream, first.clone()).await;
    let r2 = append_ok(&store, &s, ExpectedVersion::Any, second.clone()).await;
    let before = snapshot(&store).await;

    let Some(store) = backend.reopen(store).await else {
        return;
    };
    assert_eq!(
        append_ok(&store, &s, ExpectedVersion::NoStream, first.clone()).await,
        r1
    );
    assert_eq!(append_ok(&store, &s, ExpectedVersion::Any, first).await, r1);
    assert_eq!(
        append_ok(&store, &s, ExpectedVersion::Exact(2), second.clone()).await,
        r2
    );
    assert_eq!(
        append_ok(&store, &s, ExpectedVersion::Exists, second).await,
        r2
    );
    assert_unchanged(&store, &before, "repeated appends after a restart").await;

    let r3 = append_ok(&store, &s, ExpectedVersion::Exact(3), numbered("E", 1)).await;
    assert_eq!(
        (r3.first_version, r3.position),
        (Version(4), before.head.next())
    );
}

/// An event id is stored once in the whole log: an append that reuses a stored id in
/// another stream, or at another place in the same stream, or that gives one id to two of
/// its events, is refused with `DuplicateEventId` naming the id (and the stored event's
/// position) and writes nothing, also after a restart; an exact repeat still answers its
/// first result.
pub async fn event_ids_are_unique_across_the_log<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let (s1, s2) = (stream("unique-1"), stream("unique-2"));
    let first = numbered("E", 2);
    let r1 = append_ok(&store, &s1, ExpectedVersion::NoStream, first.clone()).await;
    let taken = first[0].id;
    let reused = || event("Other", json!({"reused": true})).with_id(taken);
    let twin = event("E", json!({"twin": 1}));

    let before = snapshot(&store).await;
    let refusals = [
        (s2.clone(), ExpectedVersion::NoStream, vec![reused()]),
        (s2.clone(), ExpectedVersion::Any, vec![reused()]),
        (
            s2.clone(),
            ExpectedVersion::Any,
            vec![event("E", json!({})), reused()],
        ),
        (s1.clone(), ExpectedVersion::Exact(2), vec![reused()]),
        (
            s1.clone(),
            ExpectedVersion::Exact(2),
            vec![event("E", json!({})), first[1].clone()],
        ),
    ];
    for (s, expected, events) in refusals {
        let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
        match store.append(&s, expected, events).await {
            Err(StoreError::DuplicateEventId {
                stream,
                id,
                existing: Some(position),
            }) => {
                assert_eq!(stream, s, "the refusal names the stream appended to");
                assert!(
                    first.iter().any(|e| e.id == id),
                    "the refusal names a reused id, not {id}"
                );
                let stored = store.event_by_id(&s1, id).await.unwrap();
                assert_eq!(
                    stored.map(|e| e.position),
                    Some(position),
                    "the refusal names the position of the event holding the id"
                );
            }
            other => panic!(
                "append of ids {ids:?} to {s} expecting {expected}, reusing ids stored in {s1}: \
                 want DuplicateEventId, got {other:?}"
            ),
        }
    }
    let doubled = vec![twin.clone(), event("E", json!({})).with_id(twin.id)];
    match store.append(&s2, ExpectedVersion::Any, doubled).await {
        Err(StoreError::DuplicateEventId {
            stream,
            id,
            existing: None,
        }) => assert_eq!((stream, id), (s2.clone(), twin.id)),
        other => {
            panic!("an append giving one id to two events: want DuplicateEventId, got {other:?}")
        }
    }
    assert_unchanged(&store, &before, "appends reusing event ids").await;
    assert_eq!(
        append_ok(&store, &s1, ExpectedVersion::NoStream, first.clone()).await,
        r1,
        "an exact repeat is still a repeat"
    );

    let Some(store) = backend.reopen(store).await else {
        return;
    };
    assert!(
        matches!(
            store.append(&s2, ExpectedVersion::Any, vec![reused()]).await,
            Err(StoreError::DuplicateEventId { existing: Some(p), .. }) if p == r1.first_position
        ),
        "after a restart an id stored before is still taken"
    );
    assert_unchanged(&store, &before, "appends reusing event ids after a restart").await;
}

/// Appends racing into different streams with one event id: exactly one stores it, every
/// other is refused with `DuplicateEventId`, whatever batch each lands in.
pub async fn racing_appends_with_one_id_store_it_once<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    for round in 0..20 {
        let id = EventId::new();
        let tasks: Vec<_> = (0..4)
            .map(|w| {
                let store = store.clone();
                let s = stream(&format!("race{round}-{w}"));
                let new = event("E", json!({ "w": w })).with_id(id);
                tokio::spawn(async move { store.append(&s, ExpectedVersion::Any, vec![new]).await })
            })
            .collect();
        let mut stored = 0;
        for task in tasks {
            match within("a racing append", task).await.expect("append task") {
                Ok(_) => stored += 1,
                Err(StoreError::DuplicateEventId { id: refused, .. }) => assert_eq!(refused, id),
                Err(other) => panic!("a racing append with a shared id failed: {other}"),
            }
        }
        assert_eq!(stored, 1, "round {round}: appends storing one id");
    }
    let log = assert_log_consistent(&store).await;
    assert_eq!(log.len(), 20, "one event per round");
}

/// After a restart every acknowledged event reads back identical, stream versions and
/// the head are kept, and appends continue where they stopped. Skipped when the backend
/// keeps nothing across a restart.
pub async fn reopen_keeps_every_event<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let streams = [stream("keep-1"), stream("keep-2"), stream("other-1")];
    for round in 0..5 {
        for (i, s) in streams.iter().enumerate() {
            append_ok(
                &store,
                s,
                ExpectedVersion::Any,
                numbered("Kept", 1 + (round + i) % 3),
            )
            .await;
        }
    }
    let before = snapshot(&store).await;
    let mut versions = Vec::new();
    for s in &streams {
        versions.push(store.stream_version(s).await.unwrap());
    }

    let Some(store) = backend.reopen(store).await else {
        return;
    };
    assert_unchanged(&store, &before, "a restart").await;
    for (s, version) in streams.iter().zip(&versions) {
        assert_eq!(
            store.stream_version(s).await.unwrap(),
            *version,
            "version of {s}"
        );
    }
    assert_log_consistent(&store).await;

    let r = append_ok(
        &store,
        &streams[0],
        ExpectedVersion::Exact(versions[0].0),
        numbered("Later", 2),
    )
    .await;
    assert_eq!(r.first_version, versions[0].next());
    assert_eq!(r.first_position, before.head.next());
    assert_eq!(store.head().await.unwrap(), r.position);
}

// ---------------------------------------------------------------------------------------
// Reads.

/// `read_stream` forward: from the first event or a given version, up to a limit, only
/// the stream's events, oldest first.
pub async fn read_stream_forward<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("fwd-1");
    let other = stream("fwd-2");
    let mut appended = Vec::new();
    for i in 0..10 {
        let e = event("Step", json!({"i": i}));
        appended.push(e.clone());
        append_ok(&store, &s, ExpectedVersion::Any, vec![e]).await;
        append_ok(&store, &other, ExpectedVersion::Any, numbered("Noise", 1)).await;
    }

    let all = read_forward(&store, &s).await;
    assert_eq!(versions(&all), (1..=10).collect::<Vec<_>>());
    for (event, new) in all.iter().zip(&appended) {
        assert_same_event(event, new);
        assert_eq!(event.stream, s);
    }
    assert!(
        all.windows(2).all(|w| w[0].position < w[1].position),
        "positions grow with versions"
    );

    let read = |from: Option<u64>, limit: usize| {
        let (store, s) = (&store, &s);
        async move {
            let events = store
                .read_stream(s, from.map(Version), Direction::Forward, limit)
                .await
                .unwrap();
            versions(&events)
        }
    };
    assert_eq!(read(Some(1), NO_LIMIT).await, (1..=10).collect::<Vec<_>>());
    assert_eq!(read(Some(4), 3).await, vec![4, 5, 6]);
    assert_eq!(read(None, 2).await, vec![1, 2]);
    assert_eq!(read(Some(10), 5).await, vec![10]);
    assert_eq!(read(Some(11), 5).await, Vec::<u64>::new());
    assert_eq!(read(Some(1000), 5).await, Vec::<u64>::new());
    assert_eq!(read(None, 0).await, Vec::<u64>::new());
    assert_eq!(
        read(Some(3), usize::MAX).await,
        (3..=10).collect::<Vec<_>>()
    );
    let pages = [
        read(Some(1), 4).await,
        read(Some(5), 4).await,
        read(Some(9), 4).await,
    ];
    assert_eq!(
        pages.concat(),
        (1..=10).collect::<Vec<_>>(),
        "paging by version"
    );
}

/// `read_stream` backward: from the last event or a given version, up to a limit,
/// newest first.
pub async fn read_stream_backward<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("bwd-1");
    for i in 0..10 {
        append_ok(
            &store,
            &s,
            ExpectedVersion::Any,
            vec![event("Step", json!({"i": i}))],
        )
        .await;
        append_ok(
            &store,
            &stream("bwd-2"),
            ExpectedVersion::Any,
            numbered("Noise", 1),
        )
        .await;
    }
    let forward = read_forward(&store, &s).await;

    let all = store
        .read_stream(&s, None, Direction::Backward, NO_LIMIT)
        .await
        .unwrap();
    let mut reversed = forward.clone();
    reversed.reverse();
    assert_eq!(
        all, reversed,
        "a backward read is the forward read reversed"
    );

    let read = |from: Option<u64>, limit: usize| {
        let (store, s) = (&store, &s);
        async move {
            let events = store
                .read_stream(s, from.map(Version), Direction::Backward, limit)
                .await
                .unwrap();
            versions(&events)
        }
    };
    assert_eq!(read(None, 3).await, vec![10, 9, 8]);
    assert_eq!(read(Some(10), 1).await, vec![10]);
    assert_eq!(read(Some(5), 2).await, vec![5, 4]);
    assert_eq!(read(Some(3), NO_LIMIT).await, vec![3, 2, 1]);
    assert_eq!(read(Some(3), usize::MAX).await, vec![3, 2, 1]);
    assert_eq!(read(Some(1), 5).await, vec![1]);
    assert_eq!(read(None, 0).await, Vec::<u64>::new());
}

/// A stream that does not exist reads as empty in both directions and has version 0,
/// even when streams with names that extend it exist.
pub async fn read_stream_of_a_missing_stream_is_empty<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let never = stream("missing-1");
    for direction in [Direction::Forward, Direction::Backward] {
        assert!(
            store
                .read_stream(&never, None, direction, 10)
                .await
                .unwrap()
                .is_empty()
        );
    }
    append_ok(
        &store,
        &stream("abc-1"),
        ExpectedVersion::Any,
        numbered("E", 2),
    )
    .await;
    append_ok(
        &store,
        &stream("abc-12"),
        ExpectedVersion::Any,
        numbered("E", 1),
    )
    .await;
    for name in ["abc-", "abc", "abc-123", "abc-2", "ABC-1", "missing-1"] {
        let s = stream(name);
        for direction in [Direction::Forward, Direction::Backward] {
            for from in [None, Some(Version(1))] {
                let read = store.read_stream(&s, from, direction, 10).await.unwrap();
                assert!(
                    read.is_empty(),
                    "missing stream {s} read {direction:?} from {from:?} gave {read:?}"
                );
            }
        }
        assert_eq!(store.stream_version(&s).await.unwrap(), Version(0), "{s}");
    }
}

/// `read_all` returns every event in position order from an inclusive start (0 and 1
/// both mean the first event), up to a limit, and `next` continues exactly after the
/// last event examined.
pub async fn read_all_pages_in_position_order<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let empty = store
        .read_all(Position(0), 10, &ReadFilter::all())
        .await
        .unwrap();
    assert!(empty.events.is_empty(), "an empty store reads as empty");
    assert!(
        empty.next <= Position(1),
        "next {} on an empty store",
        empty.next
    );

    let names = [stream("ra-1"), stream("rb-1"), stream("rc-1")];
    for round in 0..8 {
        for (i, s) in names.iter().enumerate() {
            append_ok(
                &store,
                s,
                ExpectedVersion::Any,
                numbered("E", 1 + (round + i) % 2),
            )
            .await;
        }
    }
    let total = store.head().await.unwrap().0;

    let all = store
        .read_all(Position(0), NO_LIMIT, &ReadFilter::all())
        .await
        .unwrap();
    assert_eq!(positions(&all.events), (1..=total).collect::<Vec<_>>());
    assert_eq!(all.next, Position(total + 1));
    let from_one = store
        .read_all(Position(1), NO_LIMIT, &ReadFilter::all())
        .await
        .unwrap();
    assert_eq!(
        from_one.events, all.events,
        "from 0 and from 1 both start at the first event"
    );
    let unbounded = store
        .read_all(Position(1), usize::MAX, &ReadFilter::all())
        .await
        .unwrap();
    assert_eq!(unbounded.events, all.events, "a limit of usize::MAX");

    // Each event read globally is the same record read through its stream.
    for s in &names {
        let by_stream = read_forward(&store, s).await;
        let by_all: Vec<RecordedEvent> = all
            .events
            .iter()
            .filter(|e| &e.stream == s)
            .cloned()
            .collect();
        assert_eq!(by_stream, by_all, "events of {s}");
    }

    let page = store
        .read_all(Position(5), 3, &ReadFilter::all())
        .await
        .unwrap();
    assert_eq!(positions(&page.events), vec![5, 6, 7]);
    assert_eq!(page.next, Position(8));

    let last = store
        .read_all(Position(total), 10, &ReadFilter::all())
        .await
        .unwrap();
    assert_eq!(positions(&last.events), vec![total]);
    assert_eq!(last.next, Position(total + 1));

    for beyond in [total + 1, total + 100] {
        let page = store
            .read_all(Position(beyond), 10, &ReadFilter::all())
            .await
            .unwrap();
        assert!(
            page.events.is_empty(),
            "read from {beyond}, past the head {total}"
        );
        assert_eq!(
            page.next,
            Position(beyond),
            "next after reading nothing from {beyond}"
        );
    }

    let none = store
        .read_all(Position(3), 0, &ReadFilter::all())
        .await
        .unwrap();
    assert!(none.events.is_empty(), "a limit of 0 reads nothing");
    assert!(
        none.next <= Position(3),
        "a limit of 0 skipped to {}",
        none.next
    );

    let mut paged = Vec::new();
    let mut from = Position(0);
    for _ in 0..=total {
        let page = store.read_all(from, 7, &ReadFilter::all()).await.unwrap();
        if page.events.is_empty() {
            break;
        }
        assert!(page.events.len() <= 7);
        assert_eq!(page.next, page.events.last().unwrap().position.next());
        paged.extend(page.events);
        from = page.next;
    }
    assert_eq!(
        paged, all.events,
        "paging with next covers the log exactly once"
    );
}

/// A category filter selects the events of streams whose name up to the first `-` is
/// one of the categories, and paging with `next` skips none of them.
pub async fn read_all_filters_by_category<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let all = filter_fixture(&store).await;
    check_filter(&store, &all, &ReadFilter::all().category("order")).await;
    check_filter(&store, &all, &ReadFilter::all().category("orderline")).await;
    check_filter(
        &store,
        &all,
        &ReadFilter::all().category("order").category("payment"),
    )
    .await;
    let none = check_filter(&store, &all, &ReadFilter::all().category("nothing")).await;
    assert_eq!(none, 0);
    let one = check_filter(&store, &all, &ReadFilter::all().category("payment")).await;
    assert!(one > 0);
}

/// An event-type filter selects events whose type is one of the types, exactly.
pub async fn read_all_filters_by_event_type<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let all = filter_fixture(&store).await;
    check_filter(&store, &all, &ReadFilter::all().event_type("Placed")).await;
    check_filter(
        &store,
        &all,
        &ReadFilter::all()
            .event_type("Paid")
            .event_type("PlacedLater"),
    )
    .await;
    let none = check_filter(&store, &all, &ReadFilter::all().event_type("placed")).await;
    assert_eq!(none, 0, "types match exactly, case included");
}

/// A filter with categories and types selects events that match one of each.
pub async fn read_all_filters_by_category_and_event_type<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let all = filter_fixture(&store).await;
    let some = check_filter(
        &store,
        &all,
        &ReadFilter::all().category("order").event_type("Placed"),
    )
    .await;
    assert!(some > 0);
    check_filter(
        &store,
        &all,
        &ReadFilter::all()
            .category("order")
            .category("payment")
            .event_type("Paid")
            .event_type("Shipped"),
    )
    .await;
    let none = check_filter(
        &store,
        &all,
        &ReadFilter::all().category("payment").event_type("Placed"),
    )
    .await;
    assert_eq!(none, 0);
}

/// `stream_version` and `head` start at 0, follow every append, ignore refused appends,
/// and the head watch reaches each append's position.
pub async fn stream_version_and_head<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let (a, b) = (stream("head-a"), stream("head-b"));
    assert_eq!(store.head().await.unwrap(), Position(0));
    assert_eq!(store.stream_version(&a).await.unwrap(), Version(0));
    let mut watch = store.watch_head();
    assert_eq!(*watch.borrow_and_update(), Position(0));

    let r = append_ok(&store, &a, ExpectedVersion::Any, numbered("E", 3)).await;
    assert_eq!(store.head().await.unwrap(), Position(3));
    assert_eq!(store.stream_version(&a).await.unwrap(), Version(3));
    wait_for_head(&mut watch, r.position).await;

    let r = append_ok(&store, &b, ExpectedVersion::Any, numbered("E", 2)).await;
    assert_eq!(store.head().await.unwrap(), Position(5));
    assert_eq!(store.stream_version(&a).await.unwrap(), Version(3));
    assert_eq!(store.stream_version(&b).await.unwrap(), Version(2));
    wait_for_head(&mut watch, r.position).await;
    wait_for_head(&mut store.watch_head(), r.position).await;

    let _ = store
        .append(&a, ExpectedVersion::Exact(1), numbered("E", 1))
        .await
        .expect_err("a stale append");
    assert_eq!(store.head().await.unwrap(), Position(5));
    assert_eq!(store.stream_version(&a).await.unwrap(), Version(3));

    for i in 0..20 {
        let r = append_ok(&store, &b, ExpectedVersion::Any, numbered("E", 1 + i % 2)).await;
        assert!(
            store.head().await.unwrap() >= r.position,
            "after an append returns, the head covers its position"
        );
        let read = store
            .read_all(r.position, 1, &ReadFilter::all())
            .await
            .unwrap();
        assert_eq!(
            read.events.first().map(|e| e.position),
            Some(r.position),
            "an acknowledged event is readable at once"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Subscriptions.

/// A subscription from 0 yields the history and then the events four concurrent writers
/// append, every event exactly once and in position order.
pub async fn subscribe_from_start_sees_history_then_live_exactly_once<B: Backend>(backend: &B) {
    const WRITERS: usize = 4;
    const LIVE_PER_WRITER: usize = 200;
    let store = backend.fresh().await;
    // More history than one subscription page, so catch-up pages too.
    for i in 0..30 {
        let s = stream(&format!("hist-{}", i % 3));
        append_ok(&store, &s, ExpectedVersion::Any, numbered("Old", 20)).await;
    }
    let history = store.head().await.unwrap().0;

    let mut sub = store.subscribe(Position::ZERO, ReadFilter::all());
    let first = take(&mut sub, 1, "the first history event").await;
    assert_eq!(first[0].position, Position(1));

    let writers = spawn_writers(&store, WRITERS, LIVE_PER_WRITER, 3, "live", "New");
    let total = history + (WRITERS * LIVE_PER_WRITER) as u64;
    let mut seen = first;
    seen.extend(take(&mut sub, (total - 1) as usize, "history and live events").await);
    for writer in writers {
        within("a live writer", writer).await.expect("writer task");
    }
    assert_eq!(
        positions(&seen),
        (1..=total).collect::<Vec<_>>(),
        "a subscription from 0 yields positions 1..={total} once each, in order"
    );
    assert_quiet(&mut sub, "after the last event").await;
    let log = assert_log_consistent(&store).await;
    assert_eq!(seen, log, "subscribed events equal the stored ones");
}

/// A subscription after position p starts at p + 1, then follows live events; one after
/// the head or past it yields only later events.
pub async fn subscribe_after_a_position<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    for i in 0..10 {
        let s = stream(&format!("mid-{}", i % 2));
        append_ok(&store, &s, ExpectedVersion::Any, numbered("E", 4)).await;
    }
    let mut sub = store.subscribe(Position(17), ReadFilter::all());
    let seen = take(&mut sub, 23, "events after 17").await;
    assert_eq!(positions(&seen), (18..=40).collect::<Vec<_>>());

    let mut at_head = store.subscribe(Position(40), ReadFilter::all());
    let mut past_head = store.subscribe(Position(1000), ReadFilter::all());
    assert_quiet(
        &mut at_head,
        "a subscription after the head, before any append",
    )
    .await;

    append_ok(
        &store,
        &stream("mid-0"),
        ExpectedVersion::Any,
        numbered("E", 5),
    )
    .await;
    let live = take(&mut sub, 5, "live events after catch-up").await;
    assert_eq!(positions(&live), (41..=45).collect::<Vec<_>>());
    let live = take(&mut at_head, 5, "live events after the head").await;
    assert_eq!(positions(&live), (41..=45).collect::<Vec<_>>());
    assert_quiet(&mut sub, "after catching up").await;
    assert_quiet(&mut past_head, "a subscription after position 1000").await;
}

/// A filtered subscription yields exactly the selected events, history and live, in
/// order, even across long runs of events it skips.
pub async fn subscribe_with_a_filter<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let wanted = stream("keep-1");
    let skipped = stream("skip-1");
    append_ok(&store, &wanted, ExpectedVersion::Any, numbered("Kept", 2)).await;
    // A run of skipped events longer than one subscription page.
    for _ in 0..12 {
        append_ok(
            &store,
            &skipped,
            ExpectedVersion::Any,
            numbered("Skipped", 50),
        )
        .await;
    }
    append_ok(&store, &wanted, ExpectedVersion::Any, numbered("Kept", 1)).await;
    append_ok(&store, &wanted, ExpectedVersion::Any, numbered("Other", 1)).await;

    let by_category = ReadFilter::all().category("keep");
    let by_type = ReadFilter::all().event_type("Kept").event_type("Live");
    let mut sub_category = store.subscribe(Position::ZERO, by_category.clone());
    let mut sub_type = store.subscribe(Position::ZERO, by_type.clone());
    let history_category = take(&mut sub_category, 4, "filtered history by category").await;
    let history_type = take(&mut sub_type, 3, "filtered history by type").await;

    let writers = [
        spawn_writers(&store, 1, 100, 3, "keep", "Live"),
        spawn_writers(&store, 1, 100, 3, "skip", "Live"),
        spawn_writers(&store, 1, 100, 3, "other", "Ignored"),
    ];
    let live_category = take(&mut sub_category, 100, "filtered live events by category").await;
    let live_type = take(&mut sub_type, 200, "filtered live events by type").await;
    for writer in writers.into_iter().flatten() {
        within("a writer", writer).await.expect("writer task");
    }
    assert_quiet(&mut sub_category, "after the selected events").await;
    assert_quiet(&mut sub_type, "after the selected events").await;

    let log = read_everything(&store, &ReadFilter::all()).await;
    for (filter, seen) in [
        (by_category, [history_category, live_category].concat()),
        (by_type, [history_type, live_type].concat()),
    ] {
        let expected: Vec<RecordedEvent> = log
            .iter()
            .filter(|e| selects(&filter, e))
            .cloned()
            .collect();
        assert_eq!(
            positions(&seen),
            positions(&expected),
            "a subscription filtered by {filter:?}"
        );
        assert_eq!(seen, expected);
    }
}

/// A consumer that stops pulling does not hold up writers, and when it resumes it still
/// sees every event once, in order.
pub async fn subscribe_slow_consumer_does_not_block_writers<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    append_ok(
        &store,
        &stream("slow-0"),
        ExpectedVersion::Any,
        numbered("E", 1),
    )
    .await;
    let mut sub = store.subscribe(Position::ZERO, ReadFilter::all());
    take(&mut sub, 1, "the first event").await;

    // Far more than one subscription page, written while the consumer does not pull.
    let writers = spawn_writers(&store, 3, 400, 20, "slow", "E");
    for writer in writers {
        within("a writer while the consumer is idle", writer)
            .await
            .expect("writer task");
    }
    let total = store.head().await.unwrap().0;
    assert_eq!(total, 1201);

    let mut seen = Vec::new();
    while seen.len() < 1200 {
        seen.extend(take(&mut sub, 100, "events after a pause").await);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(positions(&seen), (2..=total).collect::<Vec<_>>());
    assert_quiet(&mut sub, "after the last event").await;
}

// ---------------------------------------------------------------------------------------
// Inputs and limits.

/// Stream names must be 1 to 255 bytes without control characters; names at the edges
/// of the rules work with the store, and names are case-sensitive.
pub async fn stream_name_rules<B: Backend>(backend: &B) {
    let too_long = "a".repeat(StreamName::MAX_BYTES + 1);
    for bad in [
        "",
        too_long.as_str(),
        "a\nb",
        "nul\0",
        "del\u{7f}",
        "tab\t-1",
    ] {
        match StreamName::new(bad) {
            Err(CoreError::InvalidStreamName { .. }) => {}
            other => panic!("stream name {bad:?} must be rejected, got {other:?}"),
        }
    }
    match StreamName::from_utf8(b"bad-\xff") {
        Err(CoreError::InvalidStreamName { .. }) => {}
        other => panic!("a non-UTF-8 stream name must be rejected, got {other:?}"),
    }

    let store = backend.fresh().await;
    let longest = format!("long-{}", "é".repeat(125));
    assert_eq!(longest.len(), 255);
    let names = [
        longest.as_str(),
        "訂單-🦀",
        "with space-and more",
        "-",
        "x",
        "case-1",
        "Case-1",
    ];
    for (i, name) in names.iter().enumerate() {
        let s = stream(name);
        let r = append_ok(&store, &s, ExpectedVersion::NoStream, numbered("E", i + 1)).await;
        assert_eq!(r.last_version, Version(i as u64 + 1), "stream {name:?}");
    }
    for (i, name) in names.iter().enumerate() {
        let s = stream(name);
        let read = read_forward(&store, &s).await;
        assert_eq!(read.len(), i + 1, "events of stream {name:?}");
        assert!(read.iter().all(|e| e.stream.as_str() == *name));
    }
}

/// An append with no events is refused with `InvalidAppend` and creates nothing.
pub async fn empty_append_is_rejected<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("empty-1");
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::NoStream,
        ExpectedVersion::Exact(0),
    ] {
        match store.append(&s, expected, Vec::new()).await {
            Err(StoreError::InvalidAppend { stream, .. }) => assert_eq!(stream, s),
            other => panic!("an empty append expecting {expected}: got {other:?}"),
        }
    }
    assert_eq!(store.stream_version(&s).await.unwrap(), Version(0));
    assert_eq!(store.head().await.unwrap(), Position(0));

    append_ok(&store, &s, ExpectedVersion::NoStream, numbered("E", 1)).await;
    let before = snapshot(&store).await;
    for expected in [
        ExpectedVersion::Any,
        ExpectedVersion::Exists,
        ExpectedVersion::Exact(1),
    ] {
        match store.append(&s, expected, Vec::new()).await {
            Err(StoreError::InvalidAppend { stream, .. }) => assert_eq!(stream, s),
            other => panic!("an empty append to an existing stream: got {other:?}"),
        }
    }
    assert_unchanged(&store, &before, "empty appends").await;
}

/// An event over the size limit (type, data and metadata bytes) is refused with
/// `EventTooLarge` naming its index, size and the limit; nothing of the append is
/// written, an event of exactly the limit is accepted, and the store keeps working.
pub async fn oversized_event_is_rejected<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("big-1");
    let limit = DEFAULT_MAX_EVENT_BYTES;
    let sized = |size: usize| {
        let event_type = EventType::new("Big").unwrap();
        let data = vec![b'a'; size - event_type.as_str().len() - 2];
        NewEvent::raw(event_type, data)
    };
    let over = sized(limit + 1);
    assert_eq!(over.size(), limit + 1);

    match store
        .append(&s, ExpectedVersion::Any, vec![sized(100), over])
        .await
    {
        Err(StoreError::EventTooLarge {
            stream,
            index,
            size,
            limit: reported,
        }) => {
            assert_eq!(
                (stream, index, size, reported),
                (s.clone(), 1, limit + 1, limit)
            );
        }
        other => panic!(
            "an append with an event of {} bytes: got {other:?}",
            limit + 1
        ),
    }
    assert_eq!(store.stream_version(&s).await.unwrap(), Version(0));
    assert_eq!(store.head().await.unwrap(), Position(0));

    // Metadata counts too.
    let mut heavy = sized(100);
    heavy.metadata = Bytes::from(format!("{{\"pad\":\"{}\"}}", "m".repeat(limit)));
    match store.append(&s, ExpectedVersion::Any, vec![heavy]).await {
        Err(StoreError::EventTooLarge { index: 0, .. }) => {}
        other => panic!("an event with over-large metadata: got {other:?}"),
    }
    assert_eq!(store.head().await.unwrap(), Position(0));

    let at_limit = sized(limit);
    let r = append_ok(
        &store,
        &s,
        ExpectedVersion::NoStream,
        vec![at_limit.clone()],
    )
    .await;
    assert_eq!(r.position, Position(1));
    let read = read_forward(&store, &s).await;
    assert_eq!(read.len(), 1);
    assert_same_event(&read[0], &at_limit);

    append_ok(&store, &s, ExpectedVersion::Exact(1), numbered("Small", 2)).await;
    assert_eq!(store.head().await.unwrap(), Position(3));
}

/// Ids, types, data and metadata come back byte for byte, whatever the bytes, through
/// `read_stream`, `read_all`, a subscription and a restart.
pub async fn events_round_trip_byte_exact<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("bytes-1");
    let mut pretty_metadata = serde_json::Map::new();
    pretty_metadata.insert("correlation_id".into(), json!("c-1"));
    pretty_metadata.insert("causation_id".into(), json!("e-0"));
    pretty_metadata.insert("actor".into(), json!("ana"));
    pretty_metadata.insert("tenant".into(), json!("t\u{e9}"));
    let raw = |event_type: &str, data: &[u8], metadata: &[u8], id: EventId| NewEvent {
        id,
        event_type: EventType::new(event_type).unwrap(),
        data: Bytes::copy_from_slice(data),
        metadata: Bytes::copy_from_slice(metadata),
    };
    let every_byte: Vec<u8> = (0..=255).collect();
    let events = vec![
        raw("Binary", &every_byte, b"{}", EventId::from_bytes([0x11; 16])),
        raw("Empty", b"", b"", EventId::from_bytes([0; 16])),
        raw(
            "Json",
            b"{ \"z\": 1,\n  \"a\": [1.50, 2e3, \"\\u00e9\\n\"], \"big\": 123456789012345678901234567890 }",
            serde_json::to_string_pretty(&pretty_metadata).unwrap().as_bytes(),
            EventId::from_bytes([0xff; 16]),
        ),
        raw("NotUtf8", b"\xff\xfe\x00 half", b"not json at all", EventId::new()),
        raw(&"T".repeat(255), b"null", b"{}", EventId::new()),
        raw("Commandé ✓ 🦀", "données".as_bytes(), b"{\"k\":\"v\"}", EventId::new()),
        NewEvent::json(EventType::new("Built").unwrap(), &json!({"n": 1}))
            .with_metadata(&pretty_metadata),
    ];
    append_ok(&store, &s, ExpectedVersion::NoStream, events.clone()).await;

    let check = |read: &[RecordedEvent], how: &str| {
        assert_eq!(read.len(), events.len(), "events read by {how}");
        for (event, new) in read.iter().zip(&events) {
            assert_same_event(event, new);
        }
    };
    check(&read_forward(&store, &s).await, "read_stream");
    check(
        &read_everything(&store, &ReadFilter::all()).await,
        "read_all",
    );
    let mut sub = store.subscribe(Position::ZERO, ReadFilter::all());
    check(
        &take(&mut sub, events.len(), "round-trip events").await,
        "subscribe",
    );
    drop(sub);

    if let Some(store) = backend.reopen(store).await {
        check(
            &read_forward(&store, &s).await,
            "read_stream after a restart",
        );
        check(
            &read_everything(&store, &ReadFilter::all()).await,
            "read_all after a restart",
        );
    }
}

/// Every event gets a recording time near the append's, and times never decrease as
/// positions grow.
pub async fn recorded_at_is_set_and_non_decreasing<B: Backend>(backend: &B) {
    // Generous enough for a database server whose clock is not this machine's.
    let tolerance = 300 * 1_000_000_000;
    let store = backend.fresh().await;
    let before = now().unix_nanos();
    for i in 0..6 {
        let s = stream(&format!("clock-{}", i % 2));
        append_ok(&store, &s, ExpectedVersion::Any, numbered("E", 3)).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let after = now().unix_nanos();

    let log = read_everything(&store, &ReadFilter::all()).await;
    assert_eq!(log.len(), 18);
    for event in &log {
        let at = event.recorded_at.unix_nanos();
        assert!(
            at >= before - tolerance && at <= after + tolerance,
            "event {} was recorded at {}, but appended between {} and {}",
            event.position,
            event.recorded_at,
            Timestamp::from_unix_nanos(before),
            Timestamp::from_unix_nanos(after)
        );
    }
    for pair in log.windows(2) {
        assert!(
            pair[0].recorded_at <= pair[1].recorded_at,
            "position {} was recorded at {}, after position {} at {}",
            pair[0].position,
            pair[0].recorded_at,
            pair[1].position,
            pair[1].recorded_at
        );
    }
}

/// An append's result carries the recording time its events were stored with, which every
/// read returns (one time for all events of one append); a repeated append answers the
/// original's, also when it is repeated later.
pub async fn append_result_carries_the_stored_recording_time<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let s = stream("stamped-1");
    let first = numbered("E", 3);
    let r1 = append_ok(&store, &s, ExpectedVersion::NoStream, first.clone()).await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let r2 = append_ok(&store, &s, ExpectedVersion::Exact(3), numbered("E", 1)).await;

    let read = read_forward(&store, &s).await;
    assert_eq!(read.len(), 4, "stream {s} holds both appends");
    for event in &read[..3] {
        assert_eq!(
            event.recorded_at, r1.recorded_at,
            "version {} of the first append was read with another recording time than its append answered",
            event.version
        );
    }
    assert_eq!(
        read[3].recorded_at, r2.recorded_at,
        "the second append answered another recording time than a read returns"
    );
    let by_id = store
        .event_by_id(&s, first[2].id)
        .await
        .unwrap()
        .expect("the first append's last event is found by its id");
    assert_eq!(
        by_id.recorded_at, r1.recorded_at,
        "event_by_id's recording time"
    );

    tokio::time::sleep(Duration::from_millis(2)).await;
    let again = append_ok(&store, &s, ExpectedVersion::NoStream, first).await;
    assert_eq!(
        again.recorded_at, r1.recorded_at,
        "a repeated append answers the original's recording time"
    );
}

// ---------------------------------------------------------------------------------------
// Helpers.

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap_or_else(|err| panic!("test stream name {name:?}: {err}"))
}

fn event(event_type: &str, data: serde_json::Value) -> NewEvent {
    let event_type = EventType::new(event_type).expect("test event type");
    NewEvent::json(event_type, &data)
}

fn numbered(event_type: &str, count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|i| event(event_type, json!({ "i": i })))
        .collect()
}

fn now() -> Timestamp {
    Timestamp::from_datetime(::time::OffsetDateTime::now_utc())
}

fn versions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.version.0).collect()
}

fn positions(events: &[RecordedEvent]) -> Vec<u64> {
    events.iter().map(|e| e.position.0).collect()
}

/// Whether `filter` selects `event`, decided here from the contract rather than with
/// [`ReadFilter::matches`], so that a wrong filter does not check itself.
fn selects(filter: &ReadFilter, event: &RecordedEvent) -> bool {
    let category = event.stream.as_str().split('-').next().unwrap_or_default();
    (filter.categories.is_empty() || filter.categories.iter().any(|c| c == category))
        && (filter.event_types.is_empty()
            || filter
                .event_types
                .iter()
                .any(|t| t == event.event_type.as_str()))
}

fn assert_same_event(recorded: &RecordedEvent, new: &NewEvent) {
    let at = format!("event at position {}", recorded.position);
    assert_eq!(recorded.id, new.id, "{at}: id");
    assert_eq!(recorded.event_type, new.event_type, "{at}: type");
    assert_eq!(recorded.data, new.data, "{at}: data bytes");
    assert_eq!(recorded.metadata, new.metadata, "{at}: metadata bytes");
}

async fn within<F: Future>(what: &str, future: F) -> F::Output {
    match tokio::time::timeout(STEP_DEADLINE, future).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {STEP_DEADLINE:?}"),
    }
}

async fn append_ok<S: EventStore>(
    store: &S,
    stream: &StreamName,
    expected: ExpectedVersion,
    events: Vec<NewEvent>,
) -> AppendResult {
    let count = events.len();
    store
        .append(stream, expected, events)
        .await
        .unwrap_or_else(|err| {
            panic!("append of {count} events to {stream} expecting {expected} failed: {err}")
        })
}

fn assert_conflict(
    result: Result<AppendResult, StoreError>,
    stream: &StreamName,
    expected: ExpectedVersion,
    actual: u64,
) {
    match result {
        Err(StoreError::WrongExpectedVersion {
            stream: s,
            expected: e,
            actual: a,
        }) => {
            assert_eq!(&s, stream, "the conflict names the stream");
            assert_eq!(e, expected, "the conflict carries the expected version");
            assert_eq!(
                a,
                Version(actual),
                "the conflict carries the actual version"
            );
        }
        other => panic!(
            "append to {stream} (at version {actual}) expecting {expected}: \
             want WrongExpectedVersion, got {other:?}"
        ),
    }
}

async fn read_forward<S: EventStore>(store: &S, stream: &StreamName) -> Vec<RecordedEvent> {
    store
        .read_stream(stream, None, Direction::Forward, NO_LIMIT)
        .await
        .unwrap_or_else(|err| panic!("read of {stream}: {err}"))
}

/// Every event up to the head selected by `filter`, read in small pages through
/// [`AllPage::next`], checking that no page skips a selected event.
async fn read_everything<S: EventStore>(store: &S, filter: &ReadFilter) -> Vec<RecordedEvent> {
    let head = store.head().await.unwrap();
    let mut from = Position(1);
    let mut out = Vec::new();
    while from <= head {
        let page = store
            .read_all(from, 100, filter)
            .await
            .unwrap_or_else(|err| panic!("read_all from {from}: {err}"));
        assert!(
            page.next > from,
            "read_all from {from} (head {head}) with {filter:?} made no progress"
        );
        out.extend(page.events);
        from = page.next;
    }
    out
}

/// The head and every event, to compare before and after something that must write
/// nothing.
struct Snapshot {
    head: Position,
    events: Vec<RecordedEvent>,
}

async fn snapshot<S: EventStore>(store: &S) -> Snapshot {
    Snapshot {
        head: store.head().await.unwrap(),
        events: read_everything(store, &ReadFilter::all()).await,
    }
}

async fn assert_unchanged<S: EventStore>(store: &S, before: &Snapshot, what: &str) {
    let after = snapshot(store).await;
    assert_eq!(after.head, before.head, "{what} moved the head");
    assert_eq!(after.events, before.events, "{what} changed the log");
}

/// Checks that the log holds positions 1..=head with per-stream versions 1..=n, that
/// each stream's version and read agree with it, and returns it.
async fn assert_log_consistent<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    let head = store.head().await.unwrap();
    let log = read_everything(store, &ReadFilter::all()).await;
    assert_eq!(
        positions(&log),
        (1..=head.0).collect::<Vec<_>>(),
        "the log holds every position up to the head once"
    );
    let mut streams: HashMap<StreamName, Vec<RecordedEvent>> = HashMap::new();
    for event in &log {
        let events = streams.entry(event.stream.clone()).or_default();
        assert_eq!(
            event.version,
            Version(events.len() as u64 + 1),
            "versions of {} follow positions without gaps",
            event.stream
        );
        events.push(event.clone());
    }
    for (s, events) in &streams {
        assert_eq!(
            store.stream_version(s).await.unwrap(),
            Version(events.len() as u64),
            "version of {s}"
        );
        assert_eq!(&read_forward(store, s).await, events, "events of {s}");
    }
    log
}

async fn wait_for_head(watch: &mut tokio::sync::watch::Receiver<Position>, position: Position) {
    within("the head watch", watch.wait_for(|head| *head >= position))
        .await
        .unwrap_or_else(|_| panic!("the head watch closed before reaching {position}"));
}

/// Appends a mixed set of streams and types for the filter cases and returns the log.
async fn filter_fixture<S: EventStore>(store: &S) -> Vec<RecordedEvent> {
    let plan = [
        ("order-1", "Placed"),
        ("order-2", "Placed"),
        ("orderline-1", "Placed"),
        ("payment-1", "Paid"),
        ("order", "Shipped"),
        ("x-order-1", "Placed"),
        ("order-1", "PlacedLater"),
        ("order-1-2", "Paid"),
        ("payment-2", "Refunded"),
    ];
    for round in 0..4 {
        for (i, (name, event_type)) in plan.iter().enumerate() {
            let count = 1 + (round + i) % 2;
            append_ok(
                store,
                &stream(name),
                ExpectedVersion::Any,
                numbered(event_type, count),
            )
            .await;
        }
    }
    read_everything(store, &ReadFilter::all()).await
}

/// Checks a filtered `read_all` against the contract: whole reads, pages of two and
/// reads starting mid-log select exactly the matching events, and `next` never skips
/// one. Returns how many events the filter selects.
async fn check_filter<S: EventStore>(
    store: &S,
    all: &[RecordedEvent],
    filter: &ReadFilter,
) -> usize {
    let expected: Vec<RecordedEvent> = all.iter().filter(|e| selects(filter, e)).cloned().collect();
    let whole = store.read_all(Position(0), NO_LIMIT, filter).await.unwrap();
    assert_eq!(
        positions(&whole.events),
        positions(&expected),
        "read_all with {filter:?}"
    );
    assert_eq!(whole.events, expected);

    let head = store.head().await.unwrap();
    for start in [1, 7, head.0] {
        let mut from = Position(start);
        let mut paged = Vec::new();
        while from <= head {
            let page: AllPage = store.read_all(from, 2, filter).await.unwrap();
            assert!(
                page.events.len() <= 2,
                "a page of two held {}",
                page.events.len()
            );
            assert!(
                page.next > from,
                "read_all from {from} with {filter:?} made no progress"
            );
            let in_range: Vec<u64> = expected
                .iter()
                .filter(|e| e.position >= from && e.position < page.next)
                .map(|e| e.position.0)
                .collect();
            assert_eq!(
                positions(&page.events),
                in_range,
                "a page from {from} to {} with {filter:?} must hold every selected event \
                 it passed over",
                page.next
            );
            paged.extend(page.events);
            from = page.next;
        }
        let expected_from: Vec<RecordedEvent> = expected
            .iter()
            .filter(|e| e.position.0 >= start)
            .cloned()
            .collect();
        assert_eq!(paged, expected_from, "paging from {start} with {filter:?}");
    }
    expected.len()
}

/// Waits for `count` events from `sub`, failing on an error, an end, or a stall.
async fn take(sub: &mut EventStream, count: usize, what: &str) -> Vec<RecordedEvent> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match tokio::time::timeout(STEP_DEADLINE, sub.next()).await {
            Ok(Some(Ok(event))) => out.push(event),
            Ok(Some(Err(err))) => {
                panic!(
                    "{what}: the subscription failed after {} events: {err}",
                    out.len()
                )
            }
            Ok(None) => panic!(
                "{what}: the subscription ended after {} of {count} events",
                out.len()
            ),
            Err(_) => panic!(
                "{what}: the subscription yielded {} of {count} events, then nothing for {:?}",
                out.len(),
                STEP_DEADLINE
            ),
        }
    }
    out
}

/// Checks that `sub` yields nothing more for a while.
async fn assert_quiet(sub: &mut EventStream, what: &str) {
    if let Ok(item) = tokio::time::timeout(QUIET, sub.next()).await {
        panic!("{what}: the subscription yielded {item:?}, but no event was due");
    }
}

/// Spawns `writers` tasks, each appending `per_writer` events of `event_type` to its own
/// stream `{category}-w{n}` in appends of one to `batch` events.
fn spawn_writers<S: EventStore + Clone>(
    store: &S,
    writers: usize,
    per_writer: usize,
    batch: usize,
    category: &str,
    event_type: &str,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..writers)
        .map(|w| {
            let store = store.clone();
            let s = stream(&format!("{category}-w{w}"));
            let event_type = event_type.to_owned();
            tokio::spawn(async move {
                let mut written = 0;
                let mut i = 0;
                while written < per_writer {
                    let count = (i % batch + 1).min(per_writer - written);
                    let r = append_ok(
                        &store,
                        &s,
                        ExpectedVersion::Exact(written as u64),
                        numbered(&event_type, count),
                    )
                    .await;
                    assert_eq!(r.last_version, Version((written + count) as u64));
                    written += count;
                    i += 1;
                }
            })
        })
        .collect()
}

/// `event_by_id` finds an event of the stream by its id, also after a restart, and
/// nothing for an unknown id or another stream's id.
pub async fn event_by_id_finds_only_the_streams_own_events<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let a = stream("byid-a");
    let b = stream("byid-b");
    let first = event("Made", json!(1));
    let second = event("Made", json!(2));
    let other = event("Made", json!(3));
    append_ok(
        &store,
        &a,
        ExpectedVersion::NoStream,
        vec![first.clone(), second.clone()],
    )
    .await;
    append_ok(&store, &b, ExpectedVersion::NoStream, vec![other.clone()]).await;
    for filler in 0..50 {
        append_ok(
            &store,
            &a,
            ExpectedVersion::Any,
            vec![event("Filler", json!(filler))],
        )
        .await;
    }
    let found = store
        .event_by_id(&a, second.id)
        .await
        .expect("event_by_id works");
    let found = found.expect("the stream's own event is found by id");
    assert_eq!(
        (found.id, found.version),
        (second.id, Version(2)),
        "event_by_id returns the event with that id"
    );
    assert!(
        store.event_by_id(&a, other.id).await.unwrap().is_none(),
        "event_by_id does not find another stream's event"
    );
    assert!(
        store
            .event_by_id(&a, EventId::new())
            .await
            .unwrap()
            .is_none(),
        "event_by_id finds nothing for an unknown id"
    );
    assert!(
        store
            .event_by_id(&stream("byid-none"), first.id)
            .await
            .unwrap()
            .is_none(),
        "event_by_id finds nothing in a missing stream"
    );
    if let Some(store) = backend.reopen(store).await {
        let found = store.event_by_id(&a, first.id).await.unwrap();
        assert_eq!(
            found.map(|e| e.version),
            Some(Version(1)),
            "event_by_id works after a restart"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Stream listings.

/// An empty store lists no stream, whatever the prefix, cursor and limit.
pub async fn list_streams_of_an_empty_store_is_empty<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    for (prefix, after) in [
        ("", None),
        ("order-", None),
        ("", Some("a")),
        ("", Some("")),
    ] {
        let page = list(&store, prefix, after, 10).await;
        assert!(
            page.is_empty(),
            "an empty store lists {page:?} for prefix {prefix:?} after {after:?}"
        );
    }
}

/// Paging with any page size lists every stream exactly once, in ascending byte order of
/// the names, each with its version and the position of its last event; no page is
/// longer than the limit, and only the last one is shorter.
pub async fn list_streams_pages_cover_every_stream_once_in_name_order<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let mut expected: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    // Created out of name order, with names that sort differently by length, by case and
    // by bytes above ASCII (byte order puts "é" after "z").
    let names = [
        "page-10", "page-2", "page-1", "Page-1", "page-1-1", "é-1", "z-1", "page-100", "a",
        "page-3", "b-1", "page-20", "zz", "page-", "a-1",
    ];
    for (i, name) in names.iter().enumerate() {
        let s = stream(name);
        let r = append_ok(
            &store,
            &s,
            ExpectedVersion::NoStream,
            numbered("E", i % 3 + 1),
        )
        .await;
        expected.insert((*name).to_owned(), (r.last_version.0, r.position.0));
    }
    // A second append to some streams moves their version and last position.
    for name in ["page-2", "a", "é-1"] {
        let r = append_ok(
            &store,
            &stream(name),
            ExpectedVersion::Any,
            numbered("F", 2),
        )
        .await;
        expected.insert(name.to_owned(), (r.last_version.0, r.position.0));
    }
    let want: Vec<(String, u64, u64)> = expected
        .into_iter()
        .map(|(name, (version, position))| (name, version, position))
        .collect();
    for limit in [1, 2, 4, 7, names.len(), names.len() + 1, 1000] {
        let (listed, pages) = list_in_pages(&store, "", limit).await;
        assert_eq!(
            summaries(&listed),
            want,
            "paging by {limit} lists every stream once, in byte order of the names, with its \
             version and last position"
        );
        for (i, page) in pages.iter().enumerate() {
            assert!(
                page.len() <= limit,
                "page {i} holds {} > {limit}",
                page.len()
            );
            if i + 1 < pages.len() {
                assert_eq!(
                    page.len(),
                    limit,
                    "only the last page is shorter than {limit}"
                );
            }
        }
    }
}

/// A prefix selects the streams whose names start with it, also combined with a cursor
/// inside, before or after the prefix's range.
pub async fn list_streams_filters_by_prefix<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    for name in [
        "order-2",
        "order-10",
        "orderline-1",
        "order-1",
        "ord",
        "payment-1",
        "order",
        "or-1",
        "order-1-1",
    ] {
        append_ok(
            &store,
            &stream(name),
            ExpectedVersion::NoStream,
            numbered("E", 1),
        )
        .await;
    }
    let names = |page: Vec<StreamSummary>| -> Vec<String> {
        page.into_iter()
            .map(|s| s.stream.as_str().to_owned())
            .collect()
    };
    let cases: [(&str, Option<&str>, &[&str]); 10] = [
        (
            "order-",
            None,
            &["order-1", "order-1-1", "order-10", "order-2"],
        ),
        (
            "order",
            None,
            &[
                "order",
                "order-1",
                "order-1-1",
                "order-10",
                "order-2",
                "orderline-1",
            ],
        ),
        (
            "ord",
            None,
            &[
                "ord",
                "order",
                "order-1",
                "order-1-1",
                "order-10",
                "order-2",
                "orderline-1",
            ],
        ),
        ("order-1", None, &["order-1", "order-1-1", "order-10"]),
        ("payment-1", None, &["payment-1"]),
        ("pay", Some("order-1"), &["payment-1"]),
        (
            "order-",
            Some("order-1"),
            &["order-1-1", "order-10", "order-2"],
        ),
        (
            "order-",
            Some("a"),
            &["order-1", "order-1-1", "order-10", "order-2"],
        ),
        ("order-", Some("order-2"), &[]),
        ("zebra", None, &[]),
    ];
    for (prefix, after, want) in cases {
        assert_eq!(
            names(list(&store, prefix, after, 100).await),
            want,
            "the streams with prefix {prefix:?} after {after:?}"
        );
    }
    assert_eq!(
        names(list(&store, "order-", Some("orderline-1"), 100).await),
        Vec::<String>::new(),
        "a cursor past the prefix's range lists nothing"
    );
    let (paged, _) = list_in_pages(&store, "order", 2).await;
    assert_eq!(
        paged.iter().map(|s| s.stream.as_str()).collect::<Vec<_>>(),
        [
            "order",
            "order-1",
            "order-1-1",
            "order-10",
            "order-2",
            "orderline-1"
        ],
        "paging with a prefix lists each of its streams once"
    );
}

/// A listing holds at most `limit` streams, the first ones in name order; a limit of 0
/// lists nothing.
pub async fn list_streams_takes_at_most_the_limit<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    let mut names: Vec<String> = (0..12).map(|i| format!("limit-{i:02}")).collect();
    for name in names.iter().rev() {
        append_ok(
            &store,
            &stream(name),
            ExpectedVersion::NoStream,
            numbered("E", 1),
        )
        .await;
    }
    names.sort();
    assert!(
        list(&store, "", None, 0).await.is_empty(),
        "a limit of 0 lists nothing"
    );
    for limit in [1, 5, 12, 13] {
        let page = list(&store, "", None, limit).await;
        assert_eq!(
            page.iter().map(|s| s.stream.as_str()).collect::<Vec<_>>(),
            names[..limit.min(names.len())],
            "a listing of limit {limit} holds the first streams by name"
        );
    }
}

/// A cursor at or past the last name lists nothing; a cursor that names no stream starts
/// at the next name after it.
pub async fn list_streams_after_the_last_name_is_empty<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    for name in ["end-a", "end-c", "end-e"] {
        append_ok(
            &store,
            &stream(name),
            ExpectedVersion::NoStream,
            numbered("E", 1),
        )
        .await;
    }
    for after in ["end-e", "end-f", "zzz", "\u{10ffff}"] {
        let page = list(&store, "", Some(after), 10).await;
        assert!(
            page.is_empty(),
            "a cursor {after:?} at or past the last name lists {page:?}"
        );
    }
    let page = list(&store, "", Some("end-b"), 10).await;
    assert_eq!(
        page.iter().map(|s| s.stream.as_str()).collect::<Vec<_>>(),
        ["end-c", "end-e"],
        "a cursor between names starts at the next one"
    );
    let page = list(&store, "", Some(""), 10).await;
    assert_eq!(page.len(), 3, "an empty cursor starts at the first name");
}

/// Between pages, a stream created after the cursor is listed on a later page, one created
/// before it is not (it would be a second pass), and a stream appended to after it was
/// listed is not listed again; a stream not yet listed shows its latest version.
pub async fn list_streams_sees_streams_created_between_pages<B: Backend>(backend: &B) {
    let store = backend.fresh().await;
    for name in ["grow-b", "grow-d", "grow-f", "grow-h"] {
        append_ok(
            &store,
            &stream(name),
            ExpectedVersion::NoStream,
            numbered("E", 1),
        )
        .await;
    }
    let first = list(&store, "grow-", None, 2).await;
    assert_eq!(
        first.iter().map(|s| s.stream.as_str()).collect::<Vec<_>>(),
        ["grow-b", "grow-d"]
    );
    let cursor = first.last().map(|s| s.stream.as_str().to_owned());
    for name in ["grow-a", "grow-c", "grow-e"] {
        append_ok(
            &store,
            &stream(name),
            ExpectedVersion::NoStream,
            numbered("E", 1),
        )
        .await;
    }
    append_ok(
        &store,
        &stream("grow-b"),
        ExpectedVersion::Any,
        numbered("E", 1),
    )
    .await;
    let f = append_ok(
        &store,
        &stream("grow-f"),
        ExpectedVersion::Any,
        numbered("E", 2),
    )
    .await;
    let rest = list(&store, "grow-", cursor.as_deref(), 100).await;
    assert_eq!(
        rest.iter().map(|s| s.stream.as_str()).collect::<Vec<_>>(),
        ["grow-e", "grow-f", "grow-h"],
        "the next page holds the streams after the cursor, new ones included"
    );
    assert_eq!(
        (rest[1].version, rest[1].last_position),
        (f.last_version, f.position),
        "a stream appended to between pages is listed with its latest version"
    );
    let (all, _) = list_in_pages(&store, "grow-", 3).await;
    assert_eq!(
        all.iter().map(|s| s.stream.as_str()).collect::<Vec<_>>(),
        [
            "grow-a", "grow-b", "grow-c", "grow-d", "grow-e", "grow-f", "grow-h"
        ],
        "a new pass lists every stream"
    );
}

/// Paging while writers create streams and append to them: every stream that existed
/// before the first page is listed exactly once, no stream twice, in name order, and
/// every summary describes a committed state (its version and last position at most the
/// stream's current ones, and consistent with each other).
pub async fn list_streams_while_streams_are_created<B: Backend>(backend: &B) {
    const BEFORE: usize = 60;
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 40;
    let store = backend.fresh().await;
    let mut existing = Vec::new();
    for i in 0..BEFORE {
        let name = format!("busy-{:03}", (i * 37) % BEFORE * 2);
        append_ok(
            &store,
            &stream(&name),
            ExpectedVersion::NoStream,
            numbered("E", 1),
        )
        .await;
        existing.push(name);
    }
    existing.sort();
    // Each writer creates streams whose names fall between and after the existing ones,
    // and appends again to existing ones.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..PER_WRITER {
                    let fresh = stream(&format!("busy-{:03}-w{w}", (i * 7 + w) % (BEFORE * 2)));
                    append_ok(&store, &fresh, ExpectedVersion::Any, numbered("E", 1)).await;
                    let old = stream(&format!("busy-{:03}", (i + w) % BEFORE * 2));
                    append_ok(&store, &old, ExpectedVersion::Any, numbered("E", 1)).await;
                }
            })
        })
        .collect();
    let mut listed: Vec<StreamSummary> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = list(&store, "busy-", after.as_deref(), 5).await;
        for summary in &page {
            assert!(
                summary.version >= Version(1),
                "{summary:?} is listed without events"
            );
            let last = store
                .read_stream(
                    &summary.stream,
                    Some(summary.version),
                    Direction::Forward,
                    1,
                )
                .await
                .unwrap();
            assert_eq!(
                last.first().map(|e| e.position),
                Some(summary.last_position),
                "{summary:?}: its last position is that of the event at its version"
            );
        }
        let done = page.len() < 5;
        after = page.last().map(|s| s.stream.as_str().to_owned()).or(after);
        listed.extend(page);
        if done {
            break;
        }
        tokio::task::yield_now().await;
    }
    for writer in writers {
        within("a writer", writer).await.expect("a writer panicked");
    }
    let names: Vec<&str> = listed.iter().map(|s| s.stream.as_str()).collect();
    assert!(
        names.windows(2).all(|w| w[0] < w[1]),
        "paging while streams are created lists each at most once, in name order: {names:?}"
    );
    for name in &existing {
        assert!(
            names.contains(&name.as_str()),
            "stream {name}, created before paging began, was not listed"
        );
    }
    for summary in &listed {
        let now = store.stream_version(&summary.stream).await.unwrap();
        assert!(
            summary.version <= now,
            "{summary:?} is ahead of the stream's version {now}"
        );
    }
}

async fn list<S: EventStore>(
    store: &S,
    prefix: &str,
    after: Option<&str>,
    limit: usize,
) -> Vec<StreamSummary> {
    store
        .list_streams(prefix, after, limit)
        .await
        .unwrap_or_else(|err| {
            panic!("list_streams({prefix:?}, after {after:?}, limit {limit}): {err}")
        })
}

/// Every stream with `prefix`, listed in pages of `limit`, and the pages.
async fn list_in_pages<S: EventStore>(
    store: &S,
    prefix: &str,
    limit: usize,
) -> (Vec<StreamSummary>, Vec<Vec<StreamSummary>>) {
    let mut pages = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = list(store, prefix, after.as_deref(), limit).await;
        let done = page.len() < limit;
        if let Some(last) = page.last() {
            after = Some(last.stream.as_str().to_owned());
        }
        pages.push(page);
        assert!(
            pages.len() <= 10_000,
            "paging by {limit} with prefix {prefix:?} does not end"
        );
        if done {
            break;
        }
    }
    (pages.concat(), pages)
}

fn summaries(listed: &[StreamSummary]) -> Vec<(String, u64, u64)> {
    listed
        .iter()
        .map(|s| (s.stream.as_str().to_owned(), s.version.0, s.last_position.0))
        .collect()
}
