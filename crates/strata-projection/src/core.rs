//! The projection runner's synchronous state machine: one writer connection, the
//! checkpoint, and the rule for applying a batch (model, parked events and checkpoint in
//! one transaction). It does no async work and never talks to the event store; the
//! async loop in `runner` feeds it.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use strata_core::{EventId, EventType, Position, RecordedEvent, StreamName, Timestamp, Version};

use crate::db::{self, now};
use crate::{ApplyError, FailurePolicy, ParkedEvent, ProjectionError, SqliteProjection};

/// A storage fault while applying a batch: nothing of the batch was committed; retry it.
#[derive(Debug)]
pub(crate) struct Transient(pub(crate) String);

impl From<rusqlite::Error> for Transient {
    fn from(err: rusqlite::Error) -> Self {
        Self(err.to_string())
    }
}

/// What applying a batch did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum BatchOutcome {
    /// Every event was applied or parked; the checkpoint moved to `checkpoint`.
    Applied {
        /// The new checkpoint.
        checkpoint: Position,
        /// Events parked by this batch.
        parked: u64,
    },
    /// An event was refused under policy `Stop`: the events before it were committed
    /// with the checkpoint just before it.
    Stopped {
        /// The new checkpoint (just before the refused event).
        checkpoint: Position,
        /// Events parked by this batch (none under `Stop`).
        parked: u64,
        /// The refused event.
        position: Position,
        /// Why it was refused.
        error: String,
    },
}

/// One generation's writer: the database connection and the projection's code.
pub(crate) struct ProjectionCore {
    projection: Arc<dyn SqliteProjection>,
    conn: Connection,
    checkpoint: Position,
    /// Whether the last batch refused or stepped over an event: the next one is then
    /// applied with a savepoint per event from the start (see [`Self::apply_batch`]).
    careful: bool,
    /// Whether this writer has created the projection's deferred indexes.
    indexed: bool,
}

impl ProjectionCore {
    /// Opens the database at `path`, migrating it first if it is fresh.
    pub(crate) fn open(
        projection: Arc<dyn SqliteProjection>,
        path: &Path,
        generation: u64,
    ) -> Result<Self, ProjectionError> {
        let mut conn = db::open_model_writer(path)?;
        let context = |what: &str| format!("cannot {what} {}", path.display());
        let migrated =
            db::is_migrated(&conn).map_err(|e| ProjectionError::sqlite(context("read"), e))?;
        if !migrated {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| ProjectionError::sqlite(context("migrate"), e))?;
            db::create_system_tables(&tx, projection.name(), projection.version(), generation)
                .and_then(|()| projection.migrate(&tx))
                .and_then(|()| tx.commit())
                .map_err(|e| ProjectionError::sqlite(context("migrate"), e))?;
        }
        let checkpoint =
            db::read_checkpoint(&conn).map_err(|e| ProjectionError::sqlite(context("read"), e))?;
        Ok(Self {
            projection,
            conn,
            checkpoint,
            careful: false,
            indexed: false,
        })
    }

    /// Creates the projection's deferred indexes ([`SqliteProjection::deferred_indexes`])
    /// the first time it is called on this writer; later calls do nothing. Each
    /// statement leaves an index that exists as it is, so an existing database costs one
    /// look at its schema.
    pub(crate) fn create_deferred_indexes(&mut self) -> Result<(), Transient> {
        if self.indexed {
            return Ok(());
        }
        db::create_deferred_indexes(&mut self.conn, self.projection.deferred_indexes())?;
        self.indexed = true;
        Ok(())
    }

    /// The last committed checkpoint.
    pub(crate) fn checkpoint(&self) -> Position {
        self.checkpoint
    }

    /// How many events are parked.
    pub(crate) fn parked_count(&self) -> rusqlite::Result<u64> {
        let count: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM strata_parked", [], |row| row.get(0))?;
        Ok(count.max(0) as u64)
    }

    /// Applies `events` (in position order; ones at or below the checkpoint are skipped)
    /// and moves the checkpoint to the last of them, or to `through` if that is later
    /// (positions the filter skipped), all in one transaction.
    ///
    /// A batch is first applied without a savepoint per event: nearly every batch
    /// applies whole, and a savepoint costs two statements per event and a copy of every
    /// page an event touches into the statement journal. Should any event be refused or
    /// stepped over, that transaction is rolled back whole and the batch applied again
    /// with a savepoint per event (`apply_careful`), which undoes just that event's
    /// writes and follows the policy; the same events build the same model, so the
    /// outcome is the one the careful path alone gives. After a batch that refused or
    /// stepped over an event, the next one starts careful.
    pub(crate) fn apply_batch(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<BatchOutcome, Transient> {
        if !self.careful
            && let Some(outcome) = self.apply_whole(events, through)?
        {
            return Ok(outcome);
        }
        let (outcome, refused_or_stepped) = self.apply_careful(events, through)?;
        self.careful = refused_or_stepped;
        Ok(outcome)
    }

    /// Applies the batch in one transaction with no savepoint per event; `None` (with
    /// nothing committed) as soon as an event is refused or stepped over.
    fn apply_whole(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<Option<BatchOutcome>, Transient> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // NOTE: as in `apply_careful`, the stored checkpoint read under the write lock
        // is the truth.
        self.checkpoint = db::read_checkpoint(&tx)?;
        let mut last = self.checkpoint;
        for event in events {
            if event.position <= last {
                continue;
            }
            match self.projection.apply(&tx, event) {
                Ok(()) => {}
                Err(err) if err.is_transient() => return Err(Transient(err.to_string())),
                // Dropping the transaction rolls back everything of this attempt.
                Err(_) => return Ok(None),
            }
            last = event.position;
        }
        let checkpoint = last.max(through);
        if checkpoint > self.checkpoint {
            db::write_checkpoint(&tx, checkpoint)?;
            tx.commit()?;
        }
        self.checkpoint = checkpoint.max(self.checkpoint);
        Ok(Some(BatchOutcome::Applied {
            checkpoint: self.checkpoint,
            parked: 0,
        }))
    }

    /// Applies the batch with a savepoint per event, following the policy; also says
    /// whether an event was refused or stepped over.
    fn apply_careful(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<(BatchOutcome, bool), Transient> {
        let policy = self.projection.policy();
        let mut stepped = false;
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // NOTE: the stored checkpoint, read under the write lock, is the truth: should
        // another writer ever have moved it, events it covers are skipped, not repeated.
        self.checkpoint = db::read_checkpoint(&tx)?;
        let mut last = self.checkpoint;
        let mut parked = 0;
        for event in events {
            if event.position <= last {
                continue;
            }
            // A savepoint per event, so a refused event leaves no partial writes behind.
            savepoint(&tx, Savepoint::Begin)?;
            match self.projection.apply(&tx, event) {
                Ok(()) => savepoint(&tx, Savepoint::Release)?,
                Err(err) if err.is_transient() => return Err(Transient(err.to_string())),
                Err(err) if err.is_unhandled() => {
                    // Stepped over: not the projection's business, nothing to park.
                    savepoint(&tx, Savepoint::Undo)?;
                    stepped = true;
                }
                Err(err) => {
                    savepoint(&tx, Savepoint::Undo)?;
                    match policy {
                        FailurePolicy::Stop => {
                            let checkpoint = Position(event.position.0 - 1).max(last);
                            db::write_checkpoint(&tx, checkpoint)?;
                            tx.commit()?;
                            self.checkpoint = checkpoint;
                            let stopped = BatchOutcome::Stopped {
                                checkpoint,
                                parked,
                                position: event.position,
                                error: err.to_string(),
                            };
                            return Ok((stopped, true));
                        }
                        FailurePolicy::Park => {
                            park(&tx, event, &err)?;
                            parked += 1;
                        }
                    }
                }
            }
            last = event.position;
        }
        let checkpoint = last.max(through);
        if checkpoint > self.checkpoint || parked > 0 {
            db::write_checkpoint(&tx, checkpoint)?;
            tx.commit()?;
        }
        self.checkpoint = checkpoint.max(self.checkpoint);
        let applied = BatchOutcome::Applied {
            checkpoint: self.checkpoint,
            parked,
        };
        Ok((applied, stepped || parked > 0))
    }

    /// Applies a parked event again. On success it leaves the dead-letter table; on
    /// failure its error and attempt count are updated.
    pub(crate) fn retry_parked(
        &mut self,
        position: Position,
    ) -> Result<Result<(), ApplyError>, ProjectionError> {
        let name = self.projection.name();
        let sqlite = |e: rusqlite::Error| {
            ProjectionError::sqlite(format!("cannot retry a parked event of {name}"), e)
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(sqlite)?;
        let Some(event) = load_parked(&tx, position).map_err(sqlite)? else {
            return Err(ProjectionError::NotParked {
                name: name.to_owned(),
                position,
            });
        };
        match self.projection.apply(&tx, &event) {
            Err(err) if err.is_unhandled() => {
                // The code no longer handles its type: it leaves the table untouched by
                // the model, as the runner would have stepped over it.
                tx.rollback().map_err(sqlite)?;
                self.conn
                    .execute(
                        "DELETE FROM strata_parked WHERE position = ?1",
                        [position.0 as i64],
                    )
                    .map_err(sqlite)?;
                Ok(Ok(()))
            }
            Ok(()) => {
                tx.execute(
                    "DELETE FROM strata_parked WHERE position = ?1",
                    [position.0 as i64],
                )
                .map_err(sqlite)?;
                tx.commit().map_err(sqlite)?;
                Ok(Ok(()))
            }
            Err(err) => {
                // Drop whatever the failed attempt wrote, then record the attempt.
                tx.rollback().map_err(sqlite)?;
                self.conn
                    .execute(
                        "UPDATE strata_parked SET error = ?2, attempts = attempts + 1
                         WHERE position = ?1",
                        params![position.0 as i64, err.to_string()],
                    )
                    .map_err(sqlite)?;
                Ok(Err(err))
            }
        }
    }
}

/// A step of the per-event savepoint.
#[derive(Clone, Copy)]
pub(crate) enum Savepoint {
    /// Opens it before the event is applied.
    Begin,
    /// Keeps what the event wrote.
    Release,
    /// Drops what the event wrote.
    Undo,
}

/// Runs a step of the per-event savepoint `strata_event` on a prepared statement kept
/// by the connection: it runs twice per event, and parsing its SQL each time cost as
/// much as a small model update.
pub(crate) fn savepoint(tx: &rusqlite::Transaction<'_>, step: Savepoint) -> rusqlite::Result<()> {
    match step {
        Savepoint::Begin => run_cached(tx, "SAVEPOINT strata_event"),
        Savepoint::Release => run_cached(tx, "RELEASE strata_event"),
        Savepoint::Undo => {
            run_cached(tx, "ROLLBACK TO strata_event")?;
            run_cached(tx, "RELEASE strata_event")
        }
    }
}

fn run_cached(tx: &rusqlite::Transaction<'_>, statement: &str) -> rusqlite::Result<()> {
    tx.prepare_cached(statement)?.execute([])?;
    Ok(())
}

/// Records a refused event in the dead-letter table, inside the batch's transaction.
pub(crate) fn park(
    tx: &rusqlite::Transaction<'_>,
    event: &RecordedEvent,
    err: &ApplyError,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO strata_parked
            (position, stream, version, event_id, event_type, data, metadata, recorded_at,
             error, parked_at, attempts)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 1)
         ON CONFLICT (position) DO UPDATE SET error = excluded.error,
                                              attempts = attempts + 1",
        params![
            event.position.0 as i64,
            event.stream.as_str(),
            event.version.0 as i64,
            event.id.to_string(),
            event.event_type.as_str(),
            &event.data[..],
            &event.metadata[..],
            event.recorded_at.unix_nanos(),
            err.to_string(),
            now().unix_nanos(),
        ],
    )?;
    Ok(())
}

/// Rebuilds a parked event from its row.
fn load_parked(conn: &Connection, position: Position) -> rusqlite::Result<Option<RecordedEvent>> {
    conn.query_row(
        "SELECT stream, version, event_id, event_type, data, metadata, recorded_at
         FROM strata_parked WHERE position = ?1",
        [position.0 as i64],
        |row| {
            let stream: String = row.get(0)?;
            let version: i64 = row.get(1)?;
            let id: String = row.get(2)?;
            let event_type: String = row.get(3)?;
            let data: Vec<u8> = row.get(4)?;
            let metadata: Vec<u8> = row.get(5)?;
            let recorded_at: i64 = row.get(6)?;
            let bad = |what: &str| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    format!("parked event at position {position} has an invalid {what}").into(),
                )
            };
            Ok(RecordedEvent {
                position,
                stream: StreamName::new(&stream).map_err(|_| bad("stream name"))?,
                version: Version(version.max(0) as u64),
                id: id.parse::<EventId>().map_err(|_| bad("event id"))?,
                event_type: EventType::new(&event_type).map_err(|_| bad("event type"))?,
                data: Bytes::from(data),
                metadata: Bytes::from(metadata),
                recorded_at: Timestamp::from_unix_nanos(recorded_at),
            })
        },
    )
    .optional()
}

/// Lists the parked events of the database behind `conn`, oldest first.
pub(crate) fn list_parked(conn: &Connection) -> rusqlite::Result<Vec<ParkedEvent>> {
    let mut statement = conn.prepare(
        "SELECT position, stream, event_type, error, parked_at, attempts
         FROM strata_parked ORDER BY position",
    )?;
    let rows = statement.query_map([], |row| {
        Ok(ParkedEvent {
            position: Position(row.get::<_, i64>(0)?.max(0) as u64),
            stream: row.get(1)?,
            event_type: row.get(2)?,
            error: row.get(3)?,
            parked_at: Timestamp::from_unix_nanos(row.get(4)?),
            attempts: row.get::<_, i64>(5)?.clamp(0, i64::from(u32::MAX)) as u32,
        })
    })?;
    rows.collect()
}
