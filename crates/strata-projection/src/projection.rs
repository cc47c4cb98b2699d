//! The [`SqliteProjection`] trait: what a read model built in SQLite tells its runner.
//! It owns no I/O of its own; the runner opens the database and owns the transaction.

use strata_core::RecordedEvent;
use strata_store::ReadFilter;

use crate::ApplyError;

/// What the runner does when `apply` refuses an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailurePolicy {
    /// Commit the events before the bad one, mark the projection failed and stop until it
    /// is restarted. The read model never skips an event, and stops answering
    /// read-your-writes waits past it.
    Stop,
    /// Record the event and its error in the `strata_parked` table (in the same
    /// transaction) and go on. Parked events can be listed and retried. The default
    /// (DESIGN §6): one bad event must not stop a read model for everyone.
    #[default]
    Park,
}

/// A read model kept in its own SQLite database.
///
/// The runner calls [`SqliteProjection::migrate`] once on a fresh database, then
/// [`SqliteProjection::apply`] for every selected event in position order, inside a
/// transaction that also stores the checkpoint: a crash neither skips nor repeats an
/// event. `apply` must only touch the database through `tx` (no other I/O, no clock):
/// the same events must always build the same model, which is what rebuilds, version
/// bumps and [`crate::build_as_of`] rely on.
pub trait SqliteProjection: Send + Sync + 'static {
    /// The projection's name: 1 to 64 characters of `a-z`, `0-9` and `_`
    /// (`order_summaries`). It names the database files.
    fn name(&self) -> &'static str;

    /// The version of the model's code. Bumping it builds a new database from position 0
    /// beside the old one, which keeps answering queries until the new one has caught up.
    fn version(&self) -> u32;

    /// The events the projection wants (categories and event types).
    fn filter(&self) -> ReadFilter;

    /// What to do with an event `apply` refuses; parking it is the default.
    fn policy(&self) -> FailurePolicy {
        FailurePolicy::Park
    }

    /// Creates the model's tables in a fresh database.
    fn migrate(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()>;

    /// Indexes that only the model's queries use, each a `CREATE INDEX IF NOT EXISTS`
    /// statement; none may be needed by [`SqliteProjection::apply`] to be right or fast.
    ///
    /// A fresh database is built without them: each time its writer opens, they are
    /// created once the runner first reaches the head of the log, each in one sort of
    /// the finished table, before a rebuilt generation takes over queries and before the
    /// runner reports itself live. Kept up to date row by row while a long history is
    /// replayed, an index keyed apart from the table's own order turns most inserts into
    /// a page read and written back once the model outgrows its page cache. Until then a
    /// first generation's queries run without them (more slowly, with the same answers).
    /// Adding one needs no new version: an existing database gets it on the writer's
    /// next catch-up.
    fn deferred_indexes(&self) -> &'static [&'static str] {
        &[]
    }

    /// Applies one event to the model. An error follows [`SqliteProjection::policy`],
    /// except [`ApplyError::unhandled`] (an event type the projection does not handle:
    /// stepped over, nothing parked) and storage faults (disk full, I/O), which are
    /// retried with backoff.
    fn apply(
        &self,
        tx: &rusqlite::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError>;
}
