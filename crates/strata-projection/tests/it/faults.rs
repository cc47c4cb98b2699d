//! Storage faults are not poison: a failing store or a busy database is retried with
//! backoff, reported in the status meanwhile, and nothing is skipped or repeated.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use async_trait::async_trait;
use futures::StreamExt as _;
use strata_core::{
    EventId, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName, Version,
};
use strata_projection::{ApplyError, Projections, SqliteProjection};
use strata_store::{
    AllPage, AppendResult, Direction, EventStore, EventStream, MemoryStore, ReadFilter, StoreError,
    StreamSummary,
};
use tokio::sync::watch;

use crate::support::{
    Counter, WAIT, append, append_many, eventually, expected_model, query_model, read_log,
};

/// A memory store whose reads fail while `failing` is set.
struct Flaky {
    inner: MemoryStore,
    failing: Arc<AtomicBool>,
}

fn outage() -> StoreError {
    StoreError::io(
        "reading the log",
        std::io::Error::other("the disk went away"),
    )
}

#[async_trait]
impl EventStore for Flaky {
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
        if self.failing.load(Ordering::SeqCst) {
            return Err(outage());
        }
        self.inner.read_all(from, limit, filter).await
    }
    async fn event_by_id(
        &self,
        stream: &StreamName,
        id: EventId,
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
        let failing = self.failing.clone();
        // The subscription fails at its next event while the outage lasts.
        let inner = self.inner.subscribe(after, filter);
        Box::pin(inner.map(move |item| {
            if failing.load(Ordering::SeqCst) {
                Err(outage())
            } else {
                item
            }
        }))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_outage_is_retried_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let failing = Arc::new(AtomicBool::new(true));
    let store: Arc<dyn EventStore> = Arc::new(Flaky {
        inner: MemoryStore::new(),
        failing: failing.clone(),
    });
    let head = append_many(&*store, 300, 3).await;
    let host = Projections::new(store.clone(), dir.path());
    host.register(Arc::new(Counter::new("counter"))).unwrap();
    host.start();
    assert!(
        eventually(WAIT, || host.status()[0].retrying).await,
        "{:?}",
        host.status()
    );
    let status = host.status().remove(0);
    assert!(status.last_error.unwrap().contains("the disk went away"));
    assert_eq!(status.checkpoint, Position::ZERO);

    failing.store(false, Ordering::SeqCst);
    host.wait_for("counter", head, WAIT).await.unwrap();
    let log = read_log(&*store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, head.0, &[])
    );
    assert!(eventually(WAIT, || !host.status()[0].retrying).await);
    host.shutdown().await;
}

/// Fails with "database is locked" for the first `busy` calls, then counts like
/// [`Counter`].
struct Busy {
    busy: AtomicU32,
    counter: Counter,
}

impl SqliteProjection for Busy {
    fn name(&self) -> &'static str {
        "counter"
    }
    fn version(&self) -> u32 {
        1
    }
    fn filter(&self) -> ReadFilter {
        self.counter.filter()
    }
    fn migrate(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        self.counter.migrate(tx)
    }
    fn apply(
        &self,
        tx: &rusqlite::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError> {
        self.counter.apply(tx, event)?;
        if self
            .busy
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
                None,
            )
            .into());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_database_is_retried_not_parked_or_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let mut last = Position::ZERO;
    for i in 0..20 {
        last = append(&*store, "acct-1", "Added", serde_json::json!({"n": i})).await;
    }
    let host = Projections::new(store.clone(), dir.path());
    host.register(Arc::new(Busy {
        busy: AtomicU32::new(3),
        counter: Counter::new("counter"),
    }))
    .unwrap();
    host.start();
    host.wait_for("counter", last, WAIT).await.unwrap();
    let status = host.status().remove(0);
    assert!(
        status.last_error.unwrap().contains("locked"),
        "the fault is reported"
    );
    assert_eq!(status.parked, 0);
    // Each failed batch was rolled back whole: every event applied exactly once.
    let log = read_log(&*store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, last.0, &[])
    );
    host.shutdown().await;
}

#[tokio::test]
async fn rebuild_needs_a_started_host_and_names_are_checked() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let host = Projections::new(store, dir.path());
    host.register(Arc::new(Counter::new("counter"))).unwrap();
    assert!(matches!(
        host.register(Arc::new(Counter::new("counter"))),
        Err(strata_projection::ProjectionError::AlreadyRegistered(_))
    ));
    assert!(matches!(
        host.register(Arc::new(Counter::new("Bad-Name"))),
        Err(strata_projection::ProjectionError::InvalidName { .. })
    ));
    assert!(matches!(
        host.rebuild("counter").await,
        Err(strata_projection::ProjectionError::ShutDown)
    ));
    assert!(matches!(
        host.rebuild("nope").await,
        Err(strata_projection::ProjectionError::Unknown(_))
    ));
    let err = host
        .query("counter", |conn| {
            conn.execute_batch("SELECT * FROM missing")
        })
        .await
        .unwrap_err();
    assert!(
        matches!(err, strata_projection::ProjectionError::Query { .. }),
        "{err}"
    );
    // Queries are read-only.
    let err = host
        .query("counter", |conn| conn.execute_batch("DELETE FROM applied"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, strata_projection::ProjectionError::Query { .. }),
        "{err}"
    );
}
