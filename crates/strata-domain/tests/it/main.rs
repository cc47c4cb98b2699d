//! Integration tests of the command side, each scenario run against the in-memory store
//! and the embedded store: handling, conflicts, command ids, metadata, snapshots,
//! upcasting, time travel, history, the given/when/then kit, and a fold property.

mod support;

mod cache;
mod command_ids;
mod conflicts;
mod fold;
mod handling;
mod history;
mod kit;
mod metadata;
mod snapshots;
mod time_travel;
mod upcasting;
