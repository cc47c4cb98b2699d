//! Snapshots: a saved aggregate state at a stream version, so loading does not replay
//! every event. Versioned: a snapshot whose schema does not match the code is ignored.

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use strata_core::{StreamName, Version};

/// A saved state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The aggregate's stream.
    pub stream: StreamName,
    /// The stream version the state includes.
    pub version: Version,
    /// The aggregate's `SNAPSHOT_VERSION` when it was taken.
    pub schema_version: u32,
    /// The state as JSON.
    pub state: Bytes,
}

/// Why a snapshot could not be taken, loaded or saved. Loading treats it as "no snapshot";
/// a command whose snapshot fails still succeeds (the events are the truth). Messages
/// include their cause, so they do not repeat it as a `source`; the cause is kept for
/// callers that inspect it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// The backing storage failed. Loading replays events meanwhile; saving is tried
    /// again at the next due snapshot.
    #[error("snapshot storage failed: {0}")]
    Storage(Box<dyn std::error::Error + Send + Sync>),
    /// The aggregate's state could not be serialised: its `Serialize` refuses it (a map
    /// with non-string keys, say). A bug in the aggregate that recurs at every snapshot
    /// until its code is fixed; until then every load replays the stream's events.
    #[error("cannot serialise the state of stream {stream} for a snapshot: {error}")]
    Encode {
        /// The aggregate's stream.
        stream: StreamName,
        /// The serialiser's error.
        error: serde_json::Error,
    },
}

impl SnapshotError {
    /// A storage failure caused by `cause`, which is kept.
    pub fn storage(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        SnapshotError::Storage(cause.into())
    }
}

/// Where snapshots are kept. Saving replaces the stream's previous snapshot.
#[async_trait]
pub trait SnapshotStore: Send + Sync + 'static {
    /// The latest snapshot of `stream`, if any.
    async fn load(&self, stream: &StreamName) -> Result<Option<Snapshot>, SnapshotError>;
    /// Saves a snapshot, replacing an older one of the same stream.
    async fn save(&self, snapshot: Snapshot) -> Result<(), SnapshotError>;
}

/// Snapshots in memory (tests, and stores that live in one process).
#[derive(Default)]
pub struct MemorySnapshots {
    snapshots: Mutex<HashMap<StreamName, Snapshot>>,
}

impl MemorySnapshots {
    /// An empty snapshot store.
    pub fn new() -> Self {
        Self::default()
    }
}

#[async_trait]
impl SnapshotStore for MemorySnapshots {
    async fn load(&self, stream: &StreamName) -> Result<Option<Snapshot>, SnapshotError> {
        Ok(self.snapshots.lock().get(stream).cloned())
    }

    async fn save(&self, snapshot: Snapshot) -> Result<(), SnapshotError> {
        let mut snapshots = self.snapshots.lock();
        let newer = snapshots
            .get(&snapshot.stream)
            .is_none_or(|old| old.version <= snapshot.version);
        if newer {
            snapshots.insert(snapshot.stream.clone(), snapshot);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
