//! The [`EventStore`] trait: the one seam between strata and its storage backends.

use std::pin::Pin;

use async_trait::async_trait;
use futures::Stream;
use strata_core::{
    EventId, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName, Timestamp, Version,
};
use tokio::sync::watch;

use crate::{ReadFilter, StoreError};

/// The default limit on one event's size (type, data and metadata): 1 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// What a successful append reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendResult {
    /// Version of the first appended event.
    pub first_version: Version,
    /// Version of the last appended event: the stream's version after the append.
    pub last_version: Version,
    /// Global position of the first appended event.
    pub first_position: Position,
    /// Global position of the last appended event: the consistency token a reader can
    /// wait for.
    pub position: Position,
    /// When the store recorded the last appended event: the `recorded_at` a read of it
    /// returns. The events of one [`EventStore::append`] share one recording time; for a
    /// repeated append it is the original's.
    pub recorded_at: Timestamp,
}

/// The order in which a stream is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Direction {
    /// Oldest first.
    #[default]
    Forward,
    /// Newest first.
    Backward,
}

/// A page of a global read.
#[derive(Debug, Clone, Default)]
pub struct AllPage {
    /// The selected events, in position order.
    pub events: Vec<RecordedEvent>,
    /// Where the next read should start (inclusive): one past the last position this read
    /// examined, whether or not the filter selected it.
    pub next: Position,
}

/// One stream in a listing ([`EventStore::list_streams`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSummary {
    /// The stream's name.
    pub stream: StreamName,
    /// Its version: how many events it holds (at least 1: a listed stream exists).
    pub version: Version,
    /// The global position of its last event.
    pub last_position: Position,
}

/// A stream of recorded events; it ends after yielding an error.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<RecordedEvent, StoreError>> + Send>>;

/// An event log with per-stream versions and a global order.
///
/// Every backend passes the conformance suite (the `conformance` module, behind the
/// feature of that name). Methods take `&self` and are safe to call from many tasks at
/// once.
#[async_trait]
pub trait EventStore: Send + Sync + 'static {
    /// Appends `events` to `stream` if its version satisfies `expected`.
    ///
    /// - Atomic: all events get consecutive versions and consecutive global positions, or
    ///   none is stored.
    /// - Durable: when this returns `Ok`, the events survive a crash under the backend's
    ///   configured durability (fsync'd by default).
    /// - Conflict: if the stream's version does not satisfy `expected`, nothing is written
    ///   and [`StoreError::WrongExpectedVersion`] carries the expected and actual versions.
    ///   Among concurrent appends to one stream expecting the same version, exactly one
    ///   wins.
    /// - Idempotent: if the events' ids are already the stream's events at that expected
    ///   version (or, for `Any`/`Exists`, anywhere in the stream, consecutively), the
    ///   original result is returned and nothing is written, also after a restart.
    ///   A partial match is a conflict.
    /// - Unique ids: an append that is not such a repeat and carries an id the log already
    ///   holds (in any stream, or elsewhere in this one), or gives one id to two of its
    ///   events, is [`StoreError::DuplicateEventId`]; nothing is written. Among concurrent
    ///   appends with one id, at most one stores it.
    /// - Limits: an empty append is [`StoreError::InvalidAppend`]; an event over the
    ///   backend's size limit is [`StoreError::EventTooLarge`].
    /// - After [`StoreError::Poisoned`] or [`StoreError::Closed`] every later append fails
    ///   the same way.
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError>;

    /// Reads up to `limit` events of `stream` in `direction`, starting at version `from`
    /// inclusive (`None`: the first event going forward, the last going backward).
    /// A stream that does not exist reads as empty.
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Version>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError>;

    /// Reads up to `limit` committed events selected by `filter`, in position order,
    /// starting at position `from` inclusive (0 and 1 both mean the first event).
    /// [`AllPage::next`] says where to continue. Never returns an event above
    /// [`EventStore::head`] as observed at the start of the call.
    async fn read_all(
        &self,
        from: Position,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<AllPage, StoreError>;

    /// The event of `stream` whose id is `id`, if the stream holds one. Used to recognise a
    /// command that was already applied (its events carry ids derived from the command
    /// id).
    async fn event_by_id(
        &self,
        stream: &StreamName,
        id: EventId,
    ) -> Result<Option<RecordedEvent>, StoreError>;

    /// The stream's current version (0 if it does not exist).
    async fn stream_version(&self, stream: &StreamName) -> Result<Version, StoreError>;

    /// Lists up to `limit` streams whose names start with `prefix` (`""`: every stream),
    /// in ascending byte order of their names (the order of `str`), starting after the
    /// name `after` (exclusive; `None`: from the first).
    ///
    /// - Paging: pass the last name of one page as the next page's `after`. A page shorter
    ///   than `limit` is the last one. Streams are never removed and names are totally
    ///   ordered, so paging lists every stream that existed before the first page exactly
    ///   once. A stream created while paging is listed at most once: on a later page if
    ///   its name sorts after that page's `after`, not at all otherwise.
    /// - Freshness: every summary describes a committed state at or after the call
    ///   began; a stream whose first append has not committed is not listed. Summaries of
    ///   one page may describe different moments while appends run.
    /// - `after` need not name an existing stream, nor start with `prefix`. A `limit` of 0
    ///   lists nothing.
    /// - Cost: proportional to `limit` (plus a logarithmic seek), not to the number of
    ///   streams; callers page with a bounded `limit`. A backend may pay once, on the
    ///   first call, to order its names (the embedded store does, so that opening it
    ///   does not).
    async fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError>;

    /// The position of the last committed event (0 for an empty store). Every event at or
    /// below it is readable, and no event below it will ever appear later.
    async fn head(&self) -> Result<Position, StoreError>;

    /// A watch of the head position, updated after each commit becomes readable.
    fn watch_head(&self) -> watch::Receiver<Position>;

    /// Whether the store can take appends now: `Ok`, or the error an append would meet
    /// (closed, poisoned, its storage gone). Cheap enough for every health check: at most
    /// a metadata lookup. The default says yes, for backends with nothing to check.
    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Yields every committed event selected by `filter` with a position above `after`,
    /// exactly once and in position order: first the history, then live events as they
    /// commit. Memory is bounded (events are fetched in pages as the consumer pulls) and
    /// a slow consumer only slows itself. The stream ends after yielding an error.
    fn subscribe(&self, after: Position, filter: ReadFilter) -> EventStream;
}
