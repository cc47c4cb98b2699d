//! strata's read side (DESIGN §6) and process managers (DESIGN §7).
//!
//! - [`Projections`] hosts [`SqliteProjection`]s: each version (and each rebuild
//!   generation) of a read model is its own SQLite file, updated by one runner in
//!   batches, with the checkpoint and the dead-letter table in the same transaction as
//!   the model, so a crash never skips nor repeats an event. Queries run on pooled
//!   read-only connections and can wait for a consistency token.
//! - [`PostgresProjections`] (the `postgres` feature) hosts [`PostgresProjection`]s the
//!   same way in a PostgreSQL database: a schema per version and generation, each batch
//!   with its checkpoint and parked events in one PostgreSQL transaction, and an optional
//!   [`CommitFence`] checked in that transaction before it commits.
//! - [`ReadModelHost`] is what edges need of either host: status, waits, rebuilds,
//!   parked events.
//! - [`build_as_of`] replays a read model up to a position into a temporary database.
//! - [`ProcessManagers`] hosts [`ProcessManager`]s: per-instance state, durable timeouts
//!   and an outbox of commands with ids derived from their cause, in one SQLite file each.
//! - [`SqliteSnapshots`] keeps the command side's snapshots durable.
//! - [`Leases`] let one node at a time run a runner whose state several nodes share;
//!   with the `postgres` feature, [`PostgresHome`] keeps process managers' state and the
//!   leases ([`PgLeases`]) in PostgreSQL, and [`check_fence`] refuses a commit of a
//!   holder that lost its lease.
//! - With the `redis` feature, [`RedisProjections`] hosts [`RedisProjection`]s kept in
//!   Redis (each batch and its checkpoint written by one fenced script), and
//!   [`QueryCache`] keeps query answers that events invalidate.
//!
//! Both hosts run their runners the same way: one registry of named slots and one
//! supervise loop over a small sink seam (`supervise`), so starting, stopping,
//! retrying, checkpoint publishing, `wait_for` and status behave alike.
//!
//! This crate reads the event log only through the `EventStore` trait and never writes
//! to it; it knows nothing of HTTP. SQLite work runs on dedicated threads, never on an
//! async runtime worker.

mod as_of;
mod backoff;
mod core;
mod db;
mod error;
mod feed;
mod generation;
mod host;
mod lane;
mod lease;
mod meta;
#[cfg(feature = "postgres")]
mod pg;
mod process;
mod projection;
mod read_host;
#[cfg(feature = "redis")]
mod redis;
mod registry;
mod runner;
mod snapshots;
mod status;
mod supervise;
mod worker;

#[cfg(feature = "redis")]
pub use self::redis::{
    CacheStats, DEFAULT_PREFIX as REDIS_DEFAULT_PREFIX, Dependency, QueryCache, RedisOps,
    RedisProjection, RedisProjections,
};
pub use as_of::build_as_of;
/// The pool whose transactions [`PostgresProjection`]s are handed.
#[cfg(feature = "postgres")]
pub use deadpool_postgres;
pub use error::{ApplyError, ProjectionError};
pub use host::Projections;
pub use lease::{Acquired, Fence, HeldLease, LeaseError, LeaseStatus, LeaseTimings, Leases, Taken};
#[cfg(feature = "postgres")]
pub use pg::{
    CommitFence, PgLeases, PgSchema, PostgresHome, PostgresHomeOptions, PostgresProjection,
    PostgresProjections, check_fence, migrate_schema,
};
pub use process::{CommandSender, ProcessManager, ProcessManagers, Reaction, SendError};
pub use projection::{FailurePolicy, SqliteProjection};
pub use read_host::ReadModelHost;
pub use snapshots::SqliteSnapshots;
pub use status::{
    ParkedEvent, ProcessStatus, ProjectionStatus, RebuildStatus, RunnerState, RunnerStatus,
    StopCause,
};
/// The PostgreSQL client the [`PostgresProjection`]s and queries are written against.
#[cfg(feature = "postgres")]
pub use tokio_postgres;

/// The name of the table every read database keeps its checkpoint in.
pub const CHECKPOINT_TABLE: &str = "strata_checkpoint";
/// The name of the table every read database keeps its parked events in.
pub const PARKED_TABLE: &str = "strata_parked";

#[cfg(test)]
mod tests;
