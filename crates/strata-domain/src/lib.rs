//! strata's command side: aggregates that decide events purely, the typed mapping between
//! event enums and stored `(type, JSON)` with a schema version per type, upcasters, the
//! command handler (load, decide, append with the expected version, retry on conflict,
//! de-duplicate by command id), snapshots, and a given/when/then test kit (behind the
//! `testing` feature, so that only tests compile it).
//!
//! Deciding and evolving do no I/O; only [`CommandHandler`] talks to the store.

mod aggregate;
mod codec;
mod context;
mod handler;
mod snapshot;
#[cfg(feature = "testing")]
pub mod testing;

pub use aggregate::{Aggregate, DomainError};
pub use codec::{CodecError, EventCodec, SCHEMA_VERSION_KEY, TaggedEvent, Upcaster, Upcasters};
pub use context::{COMMAND_ID_KEY, CommandContext, REQUEST_DIGEST_KEY, derived_event_id};
pub use handler::{
    CommandError, CommandHandler, CommandOutcome, HandlerOptions, History, HistoryEntry, Loaded,
};
pub use snapshot::{
    MemorySnapshots, Snapshot, SnapshotError, SnapshotStore, StateError, decode_state, encode_state,
};
