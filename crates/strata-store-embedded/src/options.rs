//! How an embedded store is configured.

use strata_store::DEFAULT_MAX_EVENT_BYTES;

/// When an append is acknowledged relative to the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fdatasync each batch before acknowledging it: an acknowledged event survives power
    /// loss (the default).
    #[default]
    Sync,
    /// Acknowledge once the batch is written to the operating system: an acknowledged
    /// event survives a crash of the process but the tail may be lost on power failure.
    None,
}

/// Settings for opening an embedded store.
#[derive(Debug, Clone)]
pub struct Options {
    /// When appends are acknowledged.
    pub durability: Durability,
    /// A segment is sealed and a new one started once it reaches this size (a batch is
    /// never split, so a segment may exceed it by one batch). At most 1 GiB.
    pub segment_bytes: u64,
    /// The largest event (type, data and metadata bytes) an append may carry.
    pub max_event_bytes: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            durability: Durability::Sync,
            segment_bytes: 256 * 1024 * 1024,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
        }
    }
}
