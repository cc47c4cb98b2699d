//! What every topic shares: the test aggregates, a fixture over either store, a store
//! wrapper that counts reads and lets a test slip another writer in at a chosen moment,
//! and a snapshot store that always fails.

pub(crate) mod account;
pub(crate) mod counter;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use strata_core::{
    EventId, EventType, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName, Version,
};
use strata_domain::{
    CommandHandler, HandlerOptions, MemorySnapshots, Snapshot, SnapshotError, SnapshotStore,
};
use strata_store::{
    AllPage, AppendResult, Direction, EventStore, EventStream, MemoryStore, ReadFilter, StoreError,
    StreamSummary,
};
use strata_store_embedded::{EmbeddedStore, Options};
use tempfile::TempDir;
use tokio::sync::watch;

/// Generates, for each named `async fn(Fixture)`, a module running it once against the
/// in-memory store and once against the embedded store.
macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$scenario($crate::support::Fixture::new($crate::support::Backend::Memory))
                    .await
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$scenario($crate::support::Fixture::new(
                    $crate::support::Backend::Embedded,
                ))
                .await
            }
        }
    )*};
}
pub(crate) use on_both_stores;

/// Which event store a fixture runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Backend {
    Memory,
    Embedded,
}

/// An event store (behind a [`Spy`]) and a snapshot store, for one test.
pub(crate) struct Fixture {
    pub(crate) backend: Backend,
    /// The real store, for the test's own reads and raw appends.
    pub(crate) store: Arc<dyn EventStore>,
    /// What handlers talk to: the real store, observed.
    pub(crate) spy: Arc<Spy>,
    pub(crate) snapshots: Arc<MemorySnapshots>,
    embedded: Option<EmbeddedStore>,
    dir: Option<TempDir>,
}

impl Fixture {
    pub(crate) fn new(backend: Backend) -> Self {
        match backend {
            Backend::Memory => Self::around(backend, Arc::new(MemoryStore::new()), None, None),
            Backend::Embedded => {
                let dir = tempfile::tempdir().expect("a temporary directory");
                let store = EmbeddedStore::open(dir.path(), Options::default())
                    .expect("the embedded store opens");
                Self::around(backend, Arc::new(store.clone()), Some(store), Some(dir))
            }
        }
    }

    fn around(
        backend: Backend,
        store: Arc<dyn EventStore>,
        embedded: Option<EmbeddedStore>,
        dir: Option<TempDir>,
    ) -> Self {
        Self {
            backend,
            spy: Arc::new(Spy::new(store.clone())),
            store,
            snapshots: Arc::new(MemorySnapshots::new()),
            embedded,
            dir,
        }
    }

    /// A handler over the spied store and the fixture's snapshots, reading the account's
    /// old event shapes.
    pub(crate) fn handler(&self) -> CommandHandler {
        CommandHandler::new(self.spy.clone(), self.snapshots.clone())
            .with_upcasters(account::upcasters())
    }

    /// A handler without the aggregate cache: every command loads its aggregate.
    pub(crate) fn handler_uncached(&self) -> CommandHandler {
        self.handler().with_options(HandlerOptions {
            cached_aggregates: 0,
            ..HandlerOptions::default()
        })
    }

    /// A handler that gives up only after `max_attempts` conflicting attempts.
    pub(crate) fn handler_with_attempts(&self, max_attempts: u32) -> CommandHandler {
        self.handler().with_options(HandlerOptions {
            max_attempts,
            ..HandlerOptions::default()
        })
    }

    /// Starts over as a new process would: the embedded store is closed and opened again
    /// from its directory (the in-memory store is kept), with a new spy and no snapshots.
    pub(crate) async fn reopen(&mut self) {
        if let (Some(store), Some(dir)) = (self.embedded.take(), self.dir.as_ref()) {
            store.close().await.expect("the embedded store closes");
            let store = EmbeddedStore::open(dir.path(), Options::default())
                .expect("the embedded store opens again");
            self.store = Arc::new(store.clone());
            self.embedded = Some(store);
        }
        self.spy = Arc::new(Spy::new(self.store.clone()));
        self.snapshots = Arc::new(MemorySnapshots::new());
    }

    /// The embedded store, if that is the backend.
    pub(crate) fn embedded(&self) -> Option<&EmbeddedStore> {
        self.embedded.as_ref()
    }

    /// Every event of `stream`, oldest first.
    pub(crate) async fn events(&self, stream: &str) -> Vec<RecordedEvent> {
        read_all_of(&*self.store, &stream_name(stream)).await
    }

    /// Appends one event with exactly these bytes, as an older program would have.
    pub(crate) async fn append_raw(
        &self,
        stream: &str,
        event_type: &str,
        data: &[u8],
        metadata: &[u8],
    ) -> AppendResult {
        let event = NewEvent {
            id: EventId::new(),
            event_type: EventType::new(event_type).expect("a valid event type"),
            data: Bytes::copy_from_slice(data),
            metadata: Bytes::copy_from_slice(metadata),
        };
        self.store
            .append(&stream_name(stream), ExpectedVersion::Any, vec![event])
            .await
            .expect("the raw append succeeds")
    }
}

pub(crate) fn stream_name(name: &str) -> StreamName {
    StreamName::new(name).expect("a valid stream name")
}

pub(crate) async fn read_all_of(store: &dyn EventStore, stream: &StreamName) -> Vec<RecordedEvent> {
    let mut events = Vec::new();
    loop {
        let next = Version(events.len() as u64 + 1);
        let page = store
            .read_stream(stream, Some(next), Direction::Forward, 100)
            .await
            .expect("the stream reads");
        if page.is_empty() {
            return events;
        }
        events.extend(page);
    }
}

type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Something another writer does to the store at a moment a test chooses.
pub(crate) type Hook = Box<dyn FnOnce(Arc<dyn EventStore>) -> BoxFuture + Send>;

/// Wraps an async closure as a [`Hook`].
pub(crate) fn hook<F, Fut>(f: F) -> Hook
where
    F: FnOnce(Arc<dyn EventStore>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    Box::new(move |store| Box::pin(f(store)))
}

/// An event store that forwards to another and watches: it counts the events read and
/// the appends refused for a conflict, can yield after every read and before every
/// append (so concurrent commands interleave even on the in-memory store), and runs queued hooks just before an append
/// or just after an `event_by_id` lookup.
pub(crate) struct Spy {
    inner: Arc<dyn EventStore>,
    events_read: AtomicU64,
    conflicts: AtomicU64,
    appends: AtomicU64,
    interleave: AtomicBool,
    before_append: Mutex<VecDeque<Hook>>,
    after_lookup: Mutex<VecDeque<Hook>>,
}

impl Spy {
    fn new(inner: Arc<dyn EventStore>) -> Self {
        Self {
            inner,
            events_read: AtomicU64::new(0),
            conflicts: AtomicU64::new(0),
            appends: AtomicU64::new(0),
            interleave: AtomicBool::new(false),
            before_append: Mutex::new(VecDeque::new()),
            after_lookup: Mutex::new(VecDeque::new()),
        }
    }

    /// How many events `read_stream` has returned so far.
    pub(crate) fn events_read(&self) -> u64 {
        self.events_read.load(Ordering::SeqCst)
    }

    /// How many appends were refused for a wrong expected version.
    pub(crate) fn conflicts(&self) -> u64 {
        self.conflicts.load(Ordering::SeqCst)
    }

    /// How many appends were attempted.
    pub(crate) fn appends(&self) -> u64 {
        self.appends.load(Ordering::SeqCst)
    }

    pub(crate) fn interleave(&self) {
        self.interleave.store(true, Ordering::SeqCst);
    }

    /// Runs `hook` right before the next append reaches the store.
    pub(crate) fn before_next_append(&self, hook: Hook) {
        self.before_append.lock().push_back(hook);
    }

    /// Runs `hook` right after the next `event_by_id` lookup answers.
    pub(crate) fn after_next_lookup(&self, hook: Hook) {
        self.after_lookup.lock().push_back(hook);
    }
}

#[async_trait]
impl EventStore for Spy {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let hook = self.before_append.lock().pop_front();
        if let Some(hook) = hook {
            hook(self.inner.clone()).await;
        }
        if self.interleave.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        self.appends.fetch_add(1, Ordering::SeqCst);
        let result = self.inner.append(stream, expected, events).await;
        if let Err(StoreError::WrongExpectedVersion { .. }) = result {
            self.conflicts.fetch_add(1, Ordering::SeqCst);
        }
        result
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Version>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let events = self
            .inner
            .read_stream(stream, from, direction, limit)
            .await?;
        if self.interleave.load(Ordering::SeqCst) {
            tokio::task::yield_now().await;
        }
        self.events_read
            .fetch_add(events.len() as u64, Ordering::SeqCst);
        Ok(events)
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<AllPage, StoreError> {
        self.inner.read_all(from, limit, filter).await
    }

    async fn event_by_id(
        &self,
        stream: &StreamName,
        id: EventId,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        let found = self.inner.event_by_id(stream, id).await;
        let hook = self.after_lookup.lock().pop_front();
        if let Some(hook) = hook {
            hook(self.inner.clone()).await;
        }
        found
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
        self.inner.subscribe(after, filter)
    }
}

/// A snapshot store whose storage is always down.
#[derive(Default)]
pub(crate) struct BrokenSnapshots {
    pub(crate) saves: AtomicU64,
    pub(crate) loads: AtomicU64,
}

#[async_trait]
impl SnapshotStore for BrokenSnapshots {
    async fn load(&self, _stream: &StreamName) -> Result<Option<Snapshot>, SnapshotError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Err(SnapshotError::storage("the snapshot disk is gone"))
    }

    async fn save(&self, _snapshot: Snapshot) -> Result<(), SnapshotError> {
        self.saves.fetch_add(1, Ordering::SeqCst);
        Err(SnapshotError::storage("the snapshot disk is gone"))
    }
}
