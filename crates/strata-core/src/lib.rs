//! The words of strata's event-sourcing model as types: events, stream names, versions,
//! expected versions, positions and metadata.
//!
//! This crate does no I/O and has no async code. Every other crate speaks in these types;
//! validation of names happens here, once, so that a [`StreamName`] in hand is always valid.

mod error;
mod event;
mod stream;
mod time_stamp;
mod version;

pub use error::CoreError;
pub use event::{EMPTY_METADATA, EventId, EventType, NewEvent, RecordedEvent, metadata_keys};
pub use stream::StreamName;
pub use time_stamp::Timestamp;
pub use version::{ExpectedVersion, Position, Version};

#[cfg(test)]
mod tests;
