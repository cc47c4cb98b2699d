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

/// What opening for writing does when the log holds fewer events than the store had
/// acknowledged (its high-water mark): a file cut or removed behind the store's back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LostData {
    /// Refuse to open, naming the file, the offset and the positions lost (the default).
    #[default]
    Refuse,
    /// Open anyway: cut what cannot be read, record the lost positions as a gap that is
    /// never given out again, and continue above the high-water mark. An operator's
    /// decision, after the loss was reported.
    Accept,
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
    /// What opening for writing does over lost acknowledged events.
    pub lost_data: LostData,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            durability: Durability::Sync,
            segment_bytes: 256 * 1024 * 1024,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            lost_data: LostData::Refuse,
        }
    }
}
