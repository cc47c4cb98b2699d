//! PostgreSQL (the `postgres` feature), for the read side and for runner state that
//! several nodes share. Read models: the [`PostgresProjection`] trait a model implements,
//! the [`CommitFence`] hook checked inside every batch's transaction, and the
//! [`PostgresProjections`] host, which runs each generation through the same registry,
//! lanes and supervise loop as the SQLite host. Shared runner state: [`PostgresHome`]
//! (process managers' state in `strata_process`, leases in `strata_lease`), [`PgLeases`]
//! (the [`crate::Leases`] seam on a table) and [`check_fence`], the hook a sink runs inside
//! its commit so that a holder that lost its lease cannot commit.
//!
//! It must not know an event store backend: the log is read through the `EventStore`
//! trait only, and its databases are its own connection pools.

mod generation;
mod home;
mod host;
mod leases;
mod migrate;
mod process;
mod sql;

use async_trait::async_trait;
use deadpool_postgres::Transaction;
use strata_core::RecordedEvent;
use strata_store::ReadFilter;

pub use home::{PostgresHome, PostgresHomeOptions};
pub use host::PostgresProjections;
pub use leases::{PgLeases, check_fence};
pub use migrate::{PgSchema, migrate_schema};
pub(crate) use process::PgProcessState;

use crate::{ApplyError, FailurePolicy};

/// A read model kept in PostgreSQL, in a schema of its own per version and generation.
///
/// Its methods get a pooled connection's transaction: it derefs to a
/// [`tokio_postgres::Transaction`] (every query method is there) and adds
/// `prepare_cached`, which prepares a statement once per connection — the same few
/// statements run for every event, and preparing them each time doubles the round trips.
/// A cached statement is planned again when the `search_path` (the generation) changes.
///
/// The runner calls [`PostgresProjection::migrate`] once in a fresh schema, then
/// [`PostgresProjection::apply`] for every selected event in position order, inside a
/// transaction that also stores the checkpoint (and the parked events): a crash neither
/// skips nor repeats an event. Both run with the generation's schema as the only entry of
/// the `search_path`, so the model names its tables unqualified. `apply` must only touch
/// the database through `tx` (no other I/O, no clock): the same events must always build
/// the same model, which rebuilds and version bumps rely on.
#[async_trait]
pub trait PostgresProjection: Send + Sync + 'static {
    /// The projection's name: 1 to 38 characters of `a-z`, `0-9` and `_` (it names the
    /// schemas, whose names PostgreSQL cuts at 63 bytes).
    fn name(&self) -> &'static str;

    /// The version of the model's code. Bumping it builds a new schema from position 0
    /// beside the old one, which keeps answering queries until the new one has caught up.
    fn version(&self) -> u32;

    /// The events the projection wants (categories and event types).
    fn filter(&self) -> ReadFilter;

    /// What to do with an event `apply` refuses; parking it is the default.
    fn policy(&self) -> FailurePolicy {
        FailurePolicy::Park
    }

    /// Creates the model's tables (and indexes) in a fresh schema.
    async fn migrate(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error>;

    /// Applies one event to the model. An error follows [`PostgresProjection::policy`],
    /// except [`ApplyError::unhandled`] (stepped over, nothing parked) and faults of the
    /// connection or the server (see `From<tokio_postgres::Error> for ApplyError`), which
    /// are retried with backoff. A refused (or unhandled) event's statements are undone:
    /// the batch is applied again with a savepoint before each event, rolled back to
    /// when the event is refused, so `apply` may run more than once for an event, always
    /// in a transaction that is then rolled back or commits it once.
    async fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ApplyError>;
}

/// A check run inside every batch's transaction, after the model, the parked events and
/// the checkpoint are written and right before the commit: for instance that this process
/// still holds the lease to run `runner` (a lease epoch compared in the same transaction),
/// so that a process that lost it can never commit.
///
/// A refusal rolls the whole batch back; the runner retries from the stored checkpoint
/// after a backoff, and the status shows the refusal as its last error.
#[async_trait]
pub trait CommitFence: Send + Sync + 'static {
    /// Checks that the batch of `runner` may commit; `Err` says why not.
    async fn check(&self, runner: &str, tx: &tokio_postgres::Transaction<'_>)
    -> Result<(), String>;
}
