//! Write failures (injected through the `fault-injection` feature): the failing append
//! reports an error, the store is poisoned and refuses every later append, reads of
//! acknowledged events go on, and reopening brings back a working store holding every
//! acknowledged event.

use strata_core::{EventId, ExpectedVersion, Position, StreamName, Version};
use strata_store::{AppendResult, Direction, EventStore, ReadFilter, StoreError};
use strata_store_embedded::{EmbeddedStore, verify};

use crate::basics::{event, small_segments};

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

/// Appends `count` single events to `stream`, returning their ids.
async fn append_some(store: &EmbeddedStore, stream: &StreamName, count: u64) -> Vec<EventId> {
    let mut ids = Vec::new();
    for i in 0..count {
        let e = event("Deposited", i);
        ids.push(e.id);
        store
            .append(stream, ExpectedVersion::Any, vec![e])
            .await
            .unwrap();
    }
    ids
}

/// The error of an append whose batch failed to write: the write error itself or the
/// poisoning it caused, naming the cause either way.
fn assert_write_failure(err: &StoreError) {
    assert!(
        matches!(err, StoreError::Io { .. } | StoreError::Poisoned { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("injected write failure"), "{err}");
}

fn assert_poisoned<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Poisoned { reason }) => {
            assert!(reason.contains("injected write failure"), "{reason}");
        }
        other => panic!("expected the store to be poisoned, got {other:?}"),
    }
}

#[tokio::test]
async fn a_failed_write_poisons_the_store_until_it_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let acct = stream("acct-1");
    // Enough to fill a few segments.
    let acked = append_some(&store, &acct, 40).await;

    // Given a disk that fails the next write,
    store.inject_write_failure();
    // when an append is written, it fails and says why.
    let failed = event("Deposited", 99);
    let err = store
        .append(&acct, ExpectedVersion::Exact(40), vec![failed.clone()])
        .await
        .expect_err("the append whose write failed must not succeed");
    assert_write_failure(&err);

    // Then every later append is refused, through both APIs, even one that would
    // otherwise conflict or repeat an earlier append.
    assert_poisoned(
        store
            .append(
                &stream("acct-2"),
                ExpectedVersion::Any,
                vec![event("Opened", 0)],
            )
            .await,
    );
    assert_poisoned(append_on_a_thread(&store, &acct));
    assert_poisoned(
        store
            .append(
                &acct,
                ExpectedVersion::Exact(3),
                vec![event("Deposited", 0)],
            )
            .await,
    );

    // Reads of acknowledged events go on.
    let events = store
        .read_stream(&acct, None, Direction::Forward, 100)
        .await
        .unwrap();
    let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, acked);
    assert_eq!(store.head().await.unwrap(), Position(40));
    assert_eq!(store.stream_version(&acct).await.unwrap(), Version(40));
    let page = store
        .read_all(Position(1), 100, &ReadFilter::all())
        .await
        .unwrap();
    assert_eq!(page.events.len(), 40);

    // After reopening, the store works again and holds every acknowledged event.
    store.close().await.unwrap();
    assert!(verify(dir.path()).unwrap().is_intact());
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let events = store
        .read_stream(&acct, None, Direction::Forward, 100)
        .await
        .unwrap();
    let ids: Vec<EventId> = events.iter().map(|e| e.id).collect();
    assert_eq!(ids, acked);
    // The failed append was never written: retrying it appends it now.
    let result = store
        .append(&acct, ExpectedVersion::Exact(40), vec![failed])
        .await
        .unwrap();
    assert_eq!(result.position, Position(41));
    assert_eq!(result.last_version, Version(41));
}

#[tokio::test]
async fn every_append_of_the_failed_batch_fails_and_none_is_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let acked = append_some(&store, &stream("acct-0"), 5).await;
    store.inject_write_failure();

    // Many concurrent appends: those that share the failed batch fail with the write
    // error, the rest with Poisoned; none reports success.
    let mut tasks = Vec::new();
    for i in 0..32u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = stream(&format!("acct-{}", i % 4));
            let events = (0..=i % 3).map(|k| event("Deposited", k)).collect();
            store.append(&s, ExpectedVersion::Any, events).await
        }));
    }
    for task in tasks {
        match task.await.unwrap() {
            Err(err) => assert_write_failure(&err),
            Ok(result) => panic!("an append after the failure must fail, got {result:?}"),
        }
    }
    assert_eq!(store.head().await.unwrap(), Position(5));
    drop(store);

    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    assert_eq!(store.head().await.unwrap(), Position(5));
    let page = store
        .read_all(Position(1), 100, &ReadFilter::all())
        .await
        .unwrap();
    let ids: Vec<EventId> = page.events.iter().map(|e| e.id).collect();
    assert_eq!(ids, acked);
    store
        .append(
            &stream("acct-0"),
            ExpectedVersion::Exact(5),
            vec![event("X", 0)],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_conflicting_append_writes_nothing_so_the_failure_waits_for_a_real_write() {
    // A refused append does not touch the disk: the failure is still armed for the next
    // write, and the refusal is reported as the conflict it is.
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let acct = stream("acct-1");
    append_some(&store, &acct, 2).await;
    store.inject_write_failure();
    let err = store
        .append(&acct, ExpectedVersion::NoStream, vec![event("Opened", 0)])
        .await
        .unwrap_err();
    assert_eq!(err.code(), "wrong_expected_version", "{err}");
    let err = store
        .append(
            &acct,
            ExpectedVersion::Exact(2),
            vec![event("Deposited", 2)],
        )
        .await
        .unwrap_err();
    assert_write_failure(&err);
    assert_poisoned(
        store
            .append(&acct, ExpectedVersion::Any, vec![event("Deposited", 3)])
            .await,
    );
}

/// The blocking API, called from a thread of its own (it must not run on the runtime).
fn append_on_a_thread(
    store: &EmbeddedStore,
    stream: &StreamName,
) -> Result<AppendResult, StoreError> {
    let store = store.clone();
    let stream = stream.clone();
    std::thread::spawn(move || {
        store.append_blocking(&stream, ExpectedVersion::Any, vec![event("Deposited", 0)])
    })
    .join()
    .unwrap()
}
