//! strata's event store on PostgreSQL (13 or later): [`PostgresStore`] implements the
//! [`strata_store::EventStore`] contract in its own `strata` schema of a database it
//! shares with any other client.
//!
//! Global positions are gapless and handed out in commit order by a one-row allocator
//! whose lock an append holds only from allocation to its commit; docs/design.md explains
//! why readers never see a gap and what that costs. Appends made at the same time are
//! group-committed: one transaction, one statement and one WAL flush for all of them,
//! each member still decided (and refused) alone. Stream reads and lookups by id made at
//! the same time are gathered into one statement each, likewise. Subscribers follow the
//! head with LISTEN/NOTIFY as a wake-up hint and a poll as the fallback.
//! [`ReplicatedStore`] splits the contract over a primary and a hot standby of it: appends
//! to the one, reads and subscriptions from the other. This crate does not hold read
//! models, checkpoints or leases.

mod error;
mod follow;
mod group;
mod migrate;
mod reads;
mod replica;
mod sql;
mod store;

pub use error::PostgresError;
pub use replica::{ReplayError, ReplicaOptions, ReplicatedStore};
pub use store::{PostgresOptions, PostgresStore};

#[cfg(test)]
mod tests;
