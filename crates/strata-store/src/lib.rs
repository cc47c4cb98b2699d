//! The event store seam: the [`EventStore`] trait and its contract, the store's error type,
//! an in-memory implementation, the catch-up subscription every backend shares, and the
//! `conformance` suite that every backend runs against itself (behind the `conformance`
//! feature, so that only tests compile it).
//!
//! This crate knows nothing of files, SQL or HTTP. Backends implement [`EventStore`]; edges
//! (CLI, server, runners) hold an `Arc<dyn EventStore>`.

mod append_rules;
#[cfg(feature = "conformance")]
pub mod conformance;
mod error;
mod filter;
mod listing;
mod memory;
mod store;
mod subscription;

pub use append_rules::{AppendCheck, check_append, check_event_sizes, check_unique_ids};
pub use error::StoreError;
pub use filter::ReadFilter;
pub use listing::listed;
pub use memory::MemoryStore;
pub use store::{
    AllPage, AppendResult, DEFAULT_MAX_EVENT_BYTES, Direction, EventStore, EventStream,
    StreamSummary,
};
pub use subscription::{SUBSCRIPTION_BATCH, catch_up_subscription};

#[cfg(test)]
mod tests;
