//! The in-memory store beyond the shared suite: its head under racing writers, and the
//! suite's restart cases run with a "restart" that keeps the data.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use strata_core::{EventType, ExpectedVersion, NewEvent, Position, StreamName};
use strata_store::conformance::{self, Backend};
use strata_store::{EventStore, MemoryStore, ReadFilter};

/// The in-memory store with a restart that hands back the same data, so that the
/// suite's restart paths run against the reference model too.
struct KeepsData;

#[async_trait]
impl Backend for KeepsData {
    type Store = MemoryStore;

    async fn fresh(&self) -> MemoryStore {
        MemoryStore::new()
    }

    async fn reopen(&self, store: MemoryStore) -> Option<MemoryStore> {
        Some(store)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_after_a_restart_that_keeps_data() {
    conformance::idempotent_retry_after_reopen(&KeepsData).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopen_keeps_every_event_with_a_restart_that_keeps_data() {
    conformance::reopen_keeps_every_event(&KeepsData).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_through_a_restart_that_keeps_data() {
    conformance::events_round_trip_byte_exact(&KeepsData).await;
}

fn one_event() -> Vec<NewEvent> {
    vec![NewEvent::raw(EventType::new("Tick").unwrap(), &b"{}"[..])]
}

/// Given threads appending to their own streams as fast as they can, the head never
/// moves backwards, never lags behind the log once an append has returned, and ends at
/// the last position.
#[test]
fn head_never_goes_backwards_under_racing_appends() {
    const THREADS: usize = 8;
    const APPENDS: usize = 2000;
    let store = MemoryStore::new();
    let done = Arc::new(AtomicBool::new(false));

    let watcher = {
        let (watch, done) = (store.watch_head(), done.clone());
        std::thread::spawn(move || {
            let mut last = Position::ZERO;
            while !done.load(Ordering::Relaxed) {
                let head = *watch.borrow();
                assert!(head >= last, "the head went back from {last} to {head}");
                last = head;
            }
        })
    };
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let s = StreamName::new(format!("race-{t}")).unwrap();
                for _ in 0..APPENDS {
                    let r = store
                        .append_now(&s, ExpectedVersion::Any, one_event())
                        .unwrap();
                    let head = *store.watch_head().borrow();
                    assert!(
                        head >= r.position,
                        "append at {} returned with the head at {head}",
                        r.position
                    );
                }
            })
        })
        .collect();
    for writer in writers {
        writer.join().unwrap();
    }
    done.store(true, Ordering::Relaxed);
    watcher.join().unwrap();

    let total = (THREADS * APPENDS) as u64;
    assert_eq!(*store.watch_head().borrow(), Position(total));
}

/// Given events appended, when a global read and the head are taken, then the read never
/// shows an event the head does not cover.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_never_run_ahead_of_the_head() {
    let store = MemoryStore::new();
    let writer = {
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let s = StreamName::new("ahead-1").unwrap();
            for _ in 0..5000 {
                store
                    .append_now(&s, ExpectedVersion::Any, one_event())
                    .unwrap();
            }
        })
    };
    let mut from = Position(1);
    while from.0 <= 5000 {
        let page = store.read_all(from, 64, &ReadFilter::all()).await.unwrap();
        let head = store.head().await.unwrap();
        if let Some(last) = page.events.last() {
            assert!(
                last.position <= head,
                "read event {} while the head was {head}",
                last.position
            );
        }
        from = page.next.max(from);
        tokio::task::yield_now().await;
    }
    writer.await.unwrap();
}

/// A store made with a smaller size limit reports that limit.
#[tokio::test]
async fn size_limit_is_configurable() {
    let store = MemoryStore::with_max_event_bytes(10);
    let s = StreamName::new("small-1").unwrap();
    let ok = NewEvent::raw(EventType::new("T").unwrap(), &b"12345"[..]);
    assert_eq!(ok.size(), 8);
    store
        .append(&s, ExpectedVersion::Any, vec![ok])
        .await
        .unwrap();
    let big = NewEvent::raw(EventType::new("T").unwrap(), &b"123456789"[..]);
    match store.append(&s, ExpectedVersion::Any, vec![big]).await {
        Err(strata_store::StoreError::EventTooLarge {
            size: 12,
            limit: 10,
            index: 0,
            ..
        }) => {}
        other => panic!("want EventTooLarge, got {other:?}"),
    }
}
