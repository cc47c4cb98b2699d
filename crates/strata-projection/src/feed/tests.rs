use std::sync::Arc;

use bytes::Bytes;
use strata_core::{EventType, ExpectedVersion, NewEvent, Position, StreamName};
use strata_store::{EventStore, MemoryStore, ReadFilter};
use tokio::sync::watch;

use super::{Feed, MAX_BATCH, MAX_BATCH_BYTES, Next, event_bytes};

/// Hands over every batch until the feed reports being caught up; returns them.
async fn batches(store: Arc<dyn EventStore>) -> Vec<Vec<strata_core::RecordedEvent>> {
    let (_stop_tx, mut stop) = watch::channel(false);
    let mut feed = Feed::new(store, Position::ZERO, ReadFilter::all());
    let mut checkpoint = Position::ZERO;
    let mut all = Vec::new();
    loop {
        match feed
            .next_batch(checkpoint, &mut stop, None, |_, _| {})
            .await
        {
            Next::Apply {
                events,
                caught_up,
                through,
            } => {
                if let Some(last) = events.last() {
                    checkpoint = last.position;
                }
                if let Some(through) = through {
                    checkpoint = checkpoint.max(through);
                }
                if !events.is_empty() {
                    all.push(events);
                }
                if caught_up {
                    return all;
                }
            }
            Next::Stop | Next::Wake => panic!("the feed stopped or woke unasked"),
            Next::Failed(err) => panic!("the feed failed: {err}"),
        }
    }
}

async fn append(store: &dyn EventStore, count: usize, data_bytes: usize) {
    let name = StreamName::new("big-1").unwrap();
    for _ in 0..count {
        store
            .append(
                &name,
                ExpectedVersion::Any,
                vec![NewEvent::raw(
                    EventType::new("Blob").unwrap(),
                    Bytes::from(vec![b'x'; data_bytes]),
                )],
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_batch_of_large_events_ends_at_the_byte_bound_and_one_of_small_ones_at_the_count() {
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    // 40 events of 1 MB (40 MB in all), then more small ones than one batch holds.
    append(&*store, 40, 1_000_000).await;
    append(&*store, MAX_BATCH + 500, 10).await;
    let batches = batches(store).await;

    let handed: Vec<u64> = batches.iter().flatten().map(|e| e.position.0).collect();
    let expected: Vec<u64> = (1..=(40 + MAX_BATCH as u64 + 500)).collect();
    assert_eq!(handed, expected, "every event once, in order");
    for batch in &batches {
        assert!(
            batch.len() <= MAX_BATCH,
            "a batch of {} events",
            batch.len()
        );
        let bytes: usize = batch.iter().map(event_bytes).sum();
        let last = batch.last().map_or(0, event_bytes);
        assert!(
            bytes - last < MAX_BATCH_BYTES,
            "a batch of {bytes} bytes went on past the bound"
        );
    }
    let first = &batches[0];
    assert!(
        first.len() > 1 && first.len() < 40,
        "the first batch held {} large events",
        first.len()
    );
    assert!(
        batches.iter().any(|b| b.len() == MAX_BATCH),
        "no batch of small events reached {MAX_BATCH}"
    );
}
