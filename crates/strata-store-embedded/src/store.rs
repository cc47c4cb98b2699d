//! The store handle.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use strata_core::{
    ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName, Timestamp, Version,
};
use strata_store::{
    AllPage, AppendResult, Direction, EventStore, EventStream, ReadFilter, StoreError,
};
use tokio::sync::watch;

use crate::Options;

/// What opening the store found and repaired.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// A torn last batch that was cut off, if there was one.
    pub torn_tail: Option<TornTail>,
}

/// An incomplete last batch, left by a crash during a write; it was never acknowledged.
#[derive(Debug, Clone)]
pub struct TornTail {
    /// The segment file.
    pub file: PathBuf,
    /// Where the incomplete batch started (the file was truncated to this length).
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
}

/// An embedded event store. Cloning gives another handle to the same store.
#[derive(Clone)]
pub struct EmbeddedStore {}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir` for writing, taking the directory's
    /// lock.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self, StoreError> {
        let _ = (dir.as_ref(), options);
        Err(StoreError::Closed)
    }

    /// Opens the store in `dir` for reading while another process may be writing it.
    pub fn open_read_only(dir: impl AsRef<Path>, options: Options) -> Result<Self, StoreError> {
        let _ = (dir.as_ref(), options);
        Err(StoreError::Closed)
    }

    /// What opening found.
    pub fn open_report(&self) -> OpenReport {
        OpenReport::default()
    }

    /// Appends events with given recording times (import).
    pub async fn append_with_timestamps(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        recorded_at: Vec<Timestamp>,
    ) -> Result<AppendResult, StoreError> {
        let _ = (stream, expected, events, recorded_at);
        Err(StoreError::Closed)
    }

    /// Waits for the writer to finish and releases the directory.
    pub async fn close(self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let _ = (stream, expected, events);
        Err(StoreError::Closed)
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Version>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let _ = (stream, from, direction, limit);
        Err(StoreError::Closed)
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<AllPage, StoreError> {
        let _ = (from, limit, filter);
        Err(StoreError::Closed)
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Version, StoreError> {
        let _ = stream;
        Err(StoreError::Closed)
    }

    async fn head(&self) -> Result<Position, StoreError> {
        Err(StoreError::Closed)
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        watch::Sender::new(Position::ZERO).subscribe()
    }

    fn subscribe(&self, after: Position, filter: ReadFilter) -> EventStream {
        strata_store::catch_up_subscription(self.clone(), after, filter)
    }
}
