//! The shared catch-up subscription: it pulls in bounded pages, a slow consumer only
//! slows itself, and it ends after an error.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use parking_lot::Mutex;
use strata_core::{
    EventType, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName, Version,
};
use strata_store::{
    AllPage, AppendResult, Direction, EventStore, EventStream, MemoryStore, ReadFilter,
    SUBSCRIPTION_BATCH, StoreError, StreamSummary, catch_up_subscription,
};
use tokio::sync::watch;

const DEADLINE: Duration = Duration::from_secs(20);

/// A store that records the global reads made of it and can be told to fail them.
#[derive(Clone)]
struct Probe {
    inner: MemoryStore,
    reads: Arc<Mutex<Vec<(Position, usize)>>>,
    fail_reads_after: Option<usize>,
}

impl Probe {
    fn new(fail_reads_after: Option<usize>) -> Self {
        Self {
            inner: MemoryStore::new(),
            reads: Arc::default(),
            fail_reads_after,
        }
    }

    fn reads(&self) -> Vec<(Position, usize)> {
        self.reads.lock().clone()
    }
}

#[async_trait]
impl EventStore for Probe {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.inner.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Version>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.inner.read_stream(stream, from, direction, limit).await
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<AllPage, StoreError> {
        let count = {
            let mut reads = self.reads.lock();
            reads.push((from, limit));
            reads.len()
        };
        if self.fail_reads_after.is_some_and(|n| count > n) {
            return Err(StoreError::io(
                "reading the probe",
                std::io::Error::other("injected failure"),
            ));
        }
        self.inner.read_all(from, limit, filter).await
    }

    async fn event_by_id(
        &self,
        stream: &StreamName,
        id: strata_core::EventId,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        self.inner.event_by_id(stream, id).await
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Version, StoreError> {
        self.inner.stream_version(stream).await
    }

    async fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        self.inner.list_streams(prefix, after, limit).await
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.inner.head().await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.watch_head()
    }

    fn subscribe(&self, after: Position, filter: ReadFilter) -> EventStream {
        catch_up_subscription(self.clone(), after, filter)
    }
}

fn events(count: usize) -> Vec<NewEvent> {
    (0..count)
        .map(|i| NewEvent::json(EventType::new("E").unwrap(), &serde_json::json!({ "i": i })))
        .collect()
}

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

async fn next(sub: &mut EventStream) -> Option<Result<RecordedEvent, StoreError>> {
    tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("the subscription stalled")
}

async fn take(sub: &mut EventStream, count: usize) -> Vec<RecordedEvent> {
    let mut out = Vec::with_capacity(count);
    while out.len() < count {
        match next(sub).await {
            Some(Ok(event)) => out.push(event),
            other => panic!("after {} events: {other:?}", out.len()),
        }
    }
    out
}

/// Given a long history, when a consumer pulls one event, then the subscription has read
/// one page, not the whole history, and every read asks for at most one page.
#[tokio::test]
async fn pulls_history_one_page_at_a_time() {
    let store = Probe::new(None);
    for _ in 0..10 {
        store
            .append(&stream("hist-1"), ExpectedVersion::Any, events(500))
            .await
            .unwrap();
    }
    let mut sub = store.subscribe(Position::ZERO, ReadFilter::all());
    assert_eq!(take(&mut sub, 1).await[0].position, Position(1));
    assert_eq!(store.reads(), vec![(Position(1), SUBSCRIPTION_BATCH)]);

    let rest = take(&mut sub, 4999).await;
    assert_eq!(rest.last().unwrap().position, Position(5000));
    let reads = store.reads();
    assert!(reads.iter().all(|(_, limit)| *limit <= SUBSCRIPTION_BATCH));
    assert_eq!(reads.len(), 5000usize.div_ceil(SUBSCRIPTION_BATCH));
}

/// Given a consumer that has stopped pulling, when writers append thousands of events,
/// then they finish without waiting for it, and it later sees every event once, in
/// order, next to a consumer that kept up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_does_not_block_writers_and_sees_everything() {
    const WRITERS: usize = 4;
    const PER_WRITER: usize = 1500;
    let store = MemoryStore::new();
    let mut slow = store.subscribe(Position::ZERO, ReadFilter::all());
    let mut fast = store.subscribe(Position::ZERO, ReadFilter::all());
    let total = WRITERS * PER_WRITER;

    let fast_consumer = tokio::spawn(async move { take(&mut fast, total).await });
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..PER_WRITER / 10 {
                    store
                        .append(
                            &stream(&format!("slow-{w}")),
                            ExpectedVersion::Any,
                            events(10),
                        )
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        tokio::time::timeout(DEADLINE, writer)
            .await
            .expect("a writer waited on an idle consumer")
            .unwrap();
    }

    let fast_seen = tokio::time::timeout(DEADLINE, fast_consumer)
        .await
        .expect("the fast consumer stalled")
        .unwrap();
    let mut slow_seen = Vec::new();
    while slow_seen.len() < total {
        slow_seen.extend(take(&mut slow, 250).await);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let expected: Vec<u64> = (1..=total as u64).collect();
    let positions = |seen: &[RecordedEvent]| seen.iter().map(|e| e.position.0).collect::<Vec<_>>();
    assert_eq!(positions(&slow_seen), expected);
    assert_eq!(positions(&fast_seen), expected);
    assert_eq!(slow_seen, fast_seen);
}

/// Given a subscription, when a read fails, then it yields that error once and ends.
#[tokio::test]
async fn ends_after_yielding_an_error() {
    let store = Probe::new(Some(1));
    store
        .append(
            &stream("err-1"),
            ExpectedVersion::Any,
            events(SUBSCRIPTION_BATCH + 5),
        )
        .await
        .unwrap();
    let mut sub = store.subscribe(Position::ZERO, ReadFilter::all());
    let first_page = take(&mut sub, SUBSCRIPTION_BATCH).await;
    assert_eq!(first_page.len(), SUBSCRIPTION_BATCH);
    match next(&mut sub).await {
        Some(Err(StoreError::Io { context, .. })) => assert_eq!(context, "reading the probe"),
        other => panic!("want the injected error, got {other:?}"),
    }
    assert!(
        next(&mut sub).await.is_none(),
        "the stream ends after an error"
    );
}

/// Given a filter that selects nothing yet, when many unselected events are appended and
/// then one selected, then the subscription yields only that one, without re-reading
/// what it already passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_subscription_moves_past_unselected_events() {
    let store = Probe::new(None);
    let mut sub = store.subscribe(Position::ZERO, ReadFilter::all().category("wanted"));
    for _ in 0..3 {
        store
            .append(&stream("noise-1"), ExpectedVersion::Any, events(400))
            .await
            .unwrap();
    }
    let pending = tokio::spawn(async move {
        let got = take(&mut sub, 1).await;
        (got, sub)
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    store
        .append(&stream("wanted-1"), ExpectedVersion::Any, events(1))
        .await
        .unwrap();
    let (got, mut sub) = tokio::time::timeout(DEADLINE, pending)
        .await
        .expect("the filtered subscription stalled")
        .unwrap();
    assert_eq!(got[0].position, Position(1201));
    assert_eq!(got[0].stream.as_str(), "wanted-1");

    let reads = store.reads();
    let mut starts: Vec<Position> = reads.iter().map(|(from, _)| *from).collect();
    starts.dedup();
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "the cursor only moves forward: {starts:?}"
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(100), sub.next())
            .await
            .is_err()
    );
}

/// Given a subscription after the head, when nothing is appended, then it yields
/// nothing; dropping it releases nothing the store needs.
#[tokio::test]
async fn a_subscription_at_the_head_waits_for_new_events() {
    let store = MemoryStore::new();
    store
        .append(&stream("wait-1"), ExpectedVersion::Any, events(3))
        .await
        .unwrap();
    let mut sub = store.subscribe(Position(3), ReadFilter::all());
    assert!(
        tokio::time::timeout(Duration::from_millis(100), sub.next())
            .await
            .is_err()
    );
    store
        .append(&stream("wait-1"), ExpectedVersion::Exact(3), events(1))
        .await
        .unwrap();
    assert_eq!(take(&mut sub, 1).await[0].position, Position(4));
    drop(sub);
    store
        .append(&stream("wait-1"), ExpectedVersion::Exact(4), events(1))
        .await
        .unwrap();
    assert_eq!(store.head().await.unwrap(), Position(5));
}
