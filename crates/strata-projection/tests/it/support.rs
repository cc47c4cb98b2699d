//! Shared fixtures: the two stores, a counting projection whose tables prove every event
//! was applied exactly once, and helpers to append and to compare a model with the log.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::params;
use strata_core::{EventType, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName};
use strata_projection::{ApplyError, FailurePolicy, Projections, SqliteProjection};
use strata_store::{EventStore, MemoryStore, ReadFilter};
use strata_store_embedded::{Durability, EmbeddedStore, Options};
use tempfile::TempDir;

/// Which store a test runs against.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Memory,
    Embedded,
}

/// A store and the temporary directory holding it and the read models.
pub(crate) struct Fixture {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) dir: TempDir,
}

impl Fixture {
    pub(crate) fn new(kind: Kind) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn EventStore> = match kind {
            Kind::Memory => Arc::new(MemoryStore::new()),
            Kind::Embedded => Arc::new(open_embedded(&dir.path().join("store"))),
        };
        Self { store, dir }
    }

    pub(crate) fn read_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("read")
    }

    pub(crate) fn host(&self) -> Projections {
        Projections::new(self.store.clone(), self.read_dir())
    }
}

pub(crate) fn open_embedded(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(
        dir,
        Options {
            durability: Durability::None,
            ..Options::default()
        },
    )
    .unwrap()
}

/// Runs an async test body against both stores.
macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn memory() {
                    super::$name(crate::support::Kind::Memory).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$name(crate::support::Kind::Embedded).await;
                }
            }
        )*
    };
}
pub(crate) use both_stores;

/// Appends one JSON event to `stream`; returns its position.
pub(crate) async fn append(
    store: &dyn EventStore,
    stream: &str,
    event_type: &str,
    data: serde_json::Value,
) -> Position {
    store
        .append(
            &StreamName::new(stream).unwrap(),
            ExpectedVersion::Any,
            vec![NewEvent::json(EventType::new(event_type).unwrap(), &data)],
        )
        .await
        .unwrap()
        .position
}

/// Appends `count` events `{"n": i}` spread over `streams` streams of category `acct`.
pub(crate) async fn append_many(store: &dyn EventStore, count: u64, streams: u64) -> Position {
    let mut last = Position::ZERO;
    for i in 0..count {
        last = append(
            store,
            &format!("acct-{}", i % streams),
            "Added",
            serde_json::json!({"n": i}),
        )
        .await;
    }
    last
}

/// Every event of the log, in order.
pub(crate) async fn read_log(store: &dyn EventStore) -> Vec<RecordedEvent> {
    let mut out = Vec::new();
    let mut next = Position(1);
    loop {
        let page = store
            .read_all(next, 10_000, &ReadFilter::all())
            .await
            .unwrap();
        if page.events.is_empty() && page.next <= next {
            break;
        }
        out.extend(page.events);
        if page.next <= next {
            break;
        }
        next = page.next;
    }
    out
}

/// Counts events of category `acct` per stream and records each applied position with
/// how many times it was applied: a skipped event is a missing row, a repeated one a
/// count of 2. Refuses events whose data has `"poison": true` while `refuse` is set.
/// Handles only events of type `Added`: any other type is unhandled (after writing, so
/// that stepping over it must undo the write).
pub(crate) struct Counter {
    pub(crate) name: &'static str,
    pub(crate) version: u32,
    pub(crate) policy: FailurePolicy,
    pub(crate) refuse: AtomicBool,
    /// Sleep this many microseconds per applied event (to make builds take time).
    pub(crate) delay_micros: AtomicU64,
    /// Whether `totals` has a deferred index ([`TOTALS_INDEX`]).
    pub(crate) deferred_index: bool,
}

/// The name of the counter's deferred index, when it has one.
pub(crate) const TOTALS_INDEX: &str = "totals_by_events";

impl Counter {
    pub(crate) fn new(name: &'static str) -> Self {
        Self {
            name,
            version: 1,
            policy: FailurePolicy::Stop,
            refuse: AtomicBool::new(true),
            delay_micros: AtomicU64::new(0),
            deferred_index: false,
        }
    }

    pub(crate) fn deferred_index(mut self) -> Self {
        self.deferred_index = true;
        self
    }

    pub(crate) fn version(mut self, version: u32) -> Self {
        self.version = version;
        self
    }

    pub(crate) fn policy(mut self, policy: FailurePolicy) -> Self {
        self.policy = policy;
        self
    }

    pub(crate) fn delay(self, micros: u64) -> Self {
        self.delay_micros.store(micros, Ordering::SeqCst);
        self
    }
}

impl SqliteProjection for Counter {
    fn name(&self) -> &'static str {
        self.name
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn filter(&self) -> ReadFilter {
        ReadFilter::all().category("acct")
    }
    fn policy(&self) -> FailurePolicy {
        self.policy
    }
    fn migrate(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE applied (position INTEGER PRIMARY KEY, times INTEGER NOT NULL);
             CREATE TABLE totals (stream TEXT PRIMARY KEY, events INTEGER NOT NULL, sum INTEGER NOT NULL);",
        )
    }
    fn deferred_indexes(&self) -> &'static [&'static str] {
        if self.deferred_index {
            &["CREATE INDEX IF NOT EXISTS totals_by_events ON totals (events, stream)"]
        } else {
            &[]
        }
    }
    fn apply(
        &self,
        tx: &rusqlite::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError> {
        let delay = self.delay_micros.load(Ordering::Relaxed);
        if delay > 0 {
            std::thread::sleep(Duration::from_micros(delay));
        }
        let data: serde_json::Value = serde_json::from_slice(&event.data)?;
        tx.execute(
            "INSERT INTO applied (position, times) VALUES (?1, 1)
             ON CONFLICT (position) DO UPDATE SET times = times + 1",
            [event.position.0 as i64],
        )?;
        tx.execute(
            "INSERT INTO totals (stream, events, sum) VALUES (?1, 1, ?2)
             ON CONFLICT (stream) DO UPDATE SET events = events + 1, sum = sum + excluded.sum",
            params![event.stream.as_str(), data["n"].as_i64().unwrap_or(0)],
        )?;
        if event.event_type.as_str() != "Added" {
            return Err(ApplyError::unhandled(&event.event_type));
        }
        if data["poison"].as_bool() == Some(true) && self.refuse.load(Ordering::SeqCst) {
            return Err(ApplyError::new(format!("poison at {}", event.position)));
        }
        Ok(())
    }
}

/// What a counter model holds: its checkpoint, applied positions with their counts, and
/// per-stream totals.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Model {
    pub(crate) checkpoint: u64,
    pub(crate) applied: Vec<(u64, i64)>,
    pub(crate) totals: Vec<(String, i64, i64)>,
}

pub(crate) fn read_model(conn: &rusqlite::Connection) -> rusqlite::Result<Model> {
    let checkpoint: i64 =
        conn.query_row("SELECT position FROM strata_checkpoint", [], |r| r.get(0))?;
    let applied = conn
        .prepare("SELECT position, times FROM applied ORDER BY position")?
        .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    let totals = conn
        .prepare("SELECT stream, events, sum FROM totals ORDER BY stream")?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Model {
        checkpoint: checkpoint as u64,
        applied,
        totals,
    })
}

/// The counter model the log's `acct` events up to `checkpoint` fold to, skipping the
/// positions in `skip` (parked ones).
pub(crate) fn expected_model(log: &[RecordedEvent], checkpoint: u64, skip: &[u64]) -> Model {
    let mut applied = Vec::new();
    let mut totals = std::collections::BTreeMap::<String, (i64, i64)>::new();
    for event in log {
        if event.position.0 > checkpoint
            || event.stream.category() != "acct"
            || skip.contains(&event.position.0)
        {
            continue;
        }
        applied.push((event.position.0, 1));
        let data: serde_json::Value = serde_json::from_slice(&event.data).unwrap();
        let entry = totals.entry(event.stream.to_string()).or_default();
        entry.0 += 1;
        entry.1 += data["n"].as_i64().unwrap_or(0);
    }
    Model {
        checkpoint,
        applied,
        totals: totals.into_iter().map(|(s, (e, n))| (s, e, n)).collect(),
    }
}

/// The model of projection `name` as the host's query sees it.
pub(crate) async fn query_model(host: &Projections, name: &str) -> Model {
    host.query(name, read_model).await.unwrap()
}

/// Waits up to `timeout` for `condition` to hold, polling.
pub(crate) async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    condition()
}

pub(crate) const WAIT: Duration = Duration::from_secs(10);
