//! Snapshots: a saved aggregate state at a stream version, so loading does not replay
//! every event. Versioned: a snapshot whose schema does not match the code is ignored.
//!
//! The state is encoded by [`encode_state`]: a short header (a zero byte, `SN`, the
//! encoding's number) and the state in MessagePack with its field names, so a state of
//! another shape fails to decode, as it did in JSON. States saved as JSON before the
//! header existed still decode ([`decode_state`] tells them by their first byte: JSON
//! never starts with a zero byte).

use std::collections::HashMap;

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
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
    /// The state, as [`encode_state`] writes it (or JSON, from before the header).
    pub state: Bytes,
}

/// The header of an encoded state: a zero byte (no JSON text starts with one), `SN`.
const STATE_MAGIC: [u8; 3] = *b"\0SN";

/// The encodings a header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum StateEncoding {
    /// MessagePack, structs as maps with their field names.
    MessagePack = 1,
}

/// Why a snapshot's state could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StateError {
    /// The state's `Serialize` refused it.
    #[error("{0}")]
    Encode(String),
    /// The bytes are not a state of this type: another shape, another encoding, or
    /// damaged. Loading replays the events instead.
    #[error("{0}")]
    Decode(String),
}

/// Encodes a state for a snapshot: the header, then MessagePack with field names.
pub fn encode_state<S: Serialize + ?Sized>(state: &S) -> Result<Vec<u8>, StateError> {
    let mut bytes = Vec::with_capacity(256);
    bytes.extend_from_slice(&STATE_MAGIC);
    bytes.push(StateEncoding::MessagePack as u8);
    rmp_serde::encode::write_named(&mut bytes, state)
        .map_err(|e| StateError::Encode(e.to_string()))?;
    Ok(bytes)
}

/// Decodes a state that [`encode_state`] wrote, or one saved as JSON before it.
pub fn decode_state<S: DeserializeOwned>(bytes: &[u8]) -> Result<S, StateError> {
    let Some(rest) = bytes.strip_prefix(&STATE_MAGIC) else {
        return serde_json::from_slice(bytes).map_err(|e| StateError::Decode(e.to_string()));
    };
    match rest.split_first() {
        Some((&encoding, payload)) if encoding == StateEncoding::MessagePack as u8 => {
            rmp_serde::from_slice(payload).map_err(|e| StateError::Decode(e.to_string()))
        }
        Some((&encoding, _)) => Err(StateError::Decode(format!(
            "unknown state encoding {encoding}"
        ))),
        None => Err(StateError::Decode("the state is cut short".to_owned())),
    }
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
    /// The aggregate's state could not be serialised: its `Serialize` refuses it. A bug
    /// in the aggregate that recurs at every snapshot until its code is fixed; until then
    /// every load replays the stream's events.
    #[error("cannot serialise the state of stream {stream} for a snapshot: {error}")]
    Encode {
        /// The aggregate's stream.
        stream: StreamName,
        /// The serialiser's error.
        error: StateError,
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
