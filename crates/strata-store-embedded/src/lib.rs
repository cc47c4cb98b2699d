//! strata's embedded event log: an append-only log of CRC32C-framed batches in bounded
//! segment files, written by one writer thread with group commit, indexed in memory from
//! per-segment index files, and recovered on open by truncating only a torn last batch
//! that its high-water mark of acknowledged events does not cover.
//!
//! It must not interpret event payloads, and it owns its data directory exclusively
//! (readers in other processes open it read-only and follow the writer).

mod bloom;
mod format;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod index;
mod io;
mod lock;
mod mark;
mod open;
mod options;
mod read;
mod room;
mod scan;
#[cfg(feature = "simulation")]
pub mod simulation;
mod store;
mod streams;
mod verify;
mod writer;

pub use options::{Durability, LostData, Options};
pub use store::{
    BatchAppend, DamagedTail, EmbeddedStore, LostEvents, OpenReport, PendingBatch, StoreStats,
    TornTail,
};
pub use verify::{Problem, VerifyReport, verify};
