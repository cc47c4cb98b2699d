//! The process-manager runner's synchronous state machine: instance states, durable
//! timeouts, the outbox and the checkpoint, all in one SQLite database and changed
//! together, one transaction per batch of events (or of due timeouts).
//!
//! It never sends anything: it only records commands in the outbox; the async loop
//! sends them and then asks this machine to delete them.

use std::path::Path;
use std::sync::Arc;

use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use strata_core::{Position, RecordedEvent, Timestamp, metadata_keys};
use strata_domain::{CommandContext, derived_event_id};
use uuid::Uuid;

use super::typed::{DynProcess, JsonReaction};
use crate::db::{self, now};
use crate::{ProjectionError, error::is_transient_sqlite};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS pm_instances (
    instance TEXT PRIMARY KEY,
    state TEXT,
    done INTEGER NOT NULL,
    correlation_id TEXT,
    updated_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pm_timeouts (
    instance TEXT NOT NULL,
    name TEXT NOT NULL,
    deadline INTEGER NOT NULL,
    PRIMARY KEY (instance, name)
);
CREATE INDEX IF NOT EXISTS pm_timeouts_deadline ON pm_timeouts (deadline);
CREATE TABLE IF NOT EXISTS pm_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    command_id TEXT NOT NULL UNIQUE,
    instance TEXT NOT NULL,
    command TEXT NOT NULL,
    context TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
";

/// The most due timeouts fired in one transaction.
pub(crate) const TIMEOUT_BATCH: usize = 256;

/// The error behind a fault, kept as it was so that its source chain reaches the log.
pub(crate) type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A failure while handling a batch.
#[derive(Debug)]
pub(crate) enum Fault {
    /// Storage: nothing was committed; retry after a backoff.
    Transient(Cause),
    /// A stored state cannot be decoded (or a reaction encoded): the runner stops.
    Fatal(Cause),
}

impl From<rusqlite::Error> for Fault {
    fn from(err: rusqlite::Error) -> Self {
        if is_transient_sqlite(&err) {
            Fault::Transient(Box::new(err))
        } else {
            Fault::Fatal(Box::new(err))
        }
    }
}

/// A command waiting in the outbox.
#[derive(Debug, Clone)]
pub(crate) struct Outgoing {
    pub(crate) seq: i64,
    pub(crate) command: String,
    pub(crate) context: CommandContext,
}

/// Counts for the status.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    pub(crate) instances: u64,
    pub(crate) timeouts: u64,
    pub(crate) outbox: u64,
    /// The earliest pending deadline.
    pub(crate) next_deadline: Option<Timestamp>,
}

/// The namespace of the ids of commands sent from timeouts.
fn timeout_namespace() -> Uuid {
    Uuid::new_v5(&Uuid::NAMESPACE_URL, b"strata:process-manager-timeout")
}

/// The correlation id of the commands an event leads to: its own, or its id.
pub(crate) fn correlation_of(event: &RecordedEvent) -> String {
    event
        .metadata_json()
        .get(metadata_keys::CORRELATION_ID)
        .and_then(|v| v.as_str())
        .map_or_else(|| event.id.to_string(), str::to_owned)
}

/// The context of the `index`th command of a timeout's firing.
///
/// Ids derive from (process, instance, timeout, deadline): the same firing always sends
/// the same ids, and re-arming the timeout later sends new ones.
pub(crate) fn timeout_context(
    process: &str,
    instance: &str,
    timeout: &str,
    deadline: i64,
    correlation: Option<String>,
) -> impl Fn(u32) -> CommandContext + use<> {
    let cause = Uuid::new_v5(
        &timeout_namespace(),
        format!("{process}\u{0}{instance}\u{0}{timeout}\u{0}{deadline}").as_bytes(),
    );
    let causation = format!("timeout:{process}/{instance}/{timeout}");
    move |index| {
        let mut context = CommandContext::with_id(derived_event_id(cause, index).0);
        context.correlation_id = correlation.clone();
        context.causation_id = Some(causation.clone());
        context
    }
}

pub(crate) struct ProcessCore {
    manager: Arc<dyn DynProcess>,
    conn: Connection,
    checkpoint: Position,
}

impl ProcessCore {
    pub(crate) fn open(manager: Arc<dyn DynProcess>, path: &Path) -> Result<Self, ProjectionError> {
        let mut conn = db::open_writer(path)?;
        let context = |what: &str| format!("cannot {what} {}", path.display());
        let migrated =
            db::is_migrated(&conn).map_err(|e| ProjectionError::sqlite(context("read"), e))?;
        if !migrated {
            let tx = conn
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(|e| ProjectionError::sqlite(context("migrate"), e))?;
            db::create_system_tables(&tx, manager.name(), 1, 1)
                .and_then(|()| tx.execute_batch(SCHEMA))
                .and_then(|()| tx.commit())
                .map_err(|e| ProjectionError::sqlite(context("migrate"), e))?;
        }
        let checkpoint =
            db::read_checkpoint(&conn).map_err(|e| ProjectionError::sqlite(context("read"), e))?;
        Ok(Self {
            manager,
            conn,
            checkpoint,
        })
    }

    pub(crate) fn checkpoint(&self) -> Position {
        self.checkpoint
    }

    /// Handles `events` and moves the checkpoint to the last of them (or to `through`),
    /// recording new states, timeouts and commands, in one transaction.
    pub(crate) fn apply_batch(
        &mut self,
        events: &[RecordedEvent],
        through: Position,
    ) -> Result<Position, Fault> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // NOTE: the stored checkpoint, read under the write lock, is the truth.
        self.checkpoint = db::read_checkpoint(&tx)?;
        let mut last = self.checkpoint;
        for event in events {
            if event.position <= last {
                continue;
            }
            last = event.position;
            let Some(instance) = self.manager.correlate(event) else {
                continue;
            };
            let Some((state, _)) = load_instance(&tx, &instance)? else {
                continue;
            };
            let reaction = self.manager.react(state.as_deref(), event).map_err(|e| {
                Fault::Fatal(
                    format!("instance {instance} at position {}: {e}", event.position).into(),
                )
            })?;
            let correlation = correlation_of(event);
            record(&tx, &instance, reaction, Some(&correlation), |index| {
                CommandContext::caused_by(event, index)
            })?;
        }
        let checkpoint = last.max(through);
        if checkpoint > self.checkpoint {
            db::write_checkpoint(&tx, checkpoint)?;
            tx.commit()?;
            self.checkpoint = checkpoint;
        }
        Ok(self.checkpoint)
    }

    /// Fires the timeouts due at `now` (each once: deleted in the transaction that
    /// records its reaction). Returns how many fired.
    pub(crate) fn fire_due(&mut self, now: Timestamp) -> Result<usize, Fault> {
        let name = self.manager.name();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let due: Vec<(String, String, i64)> = {
            let mut statement = tx.prepare(
                "SELECT instance, name, deadline FROM pm_timeouts
                 WHERE deadline <= ?1 ORDER BY deadline, instance, name LIMIT ?2",
            )?;
            let rows = statement
                .query_map(params![now.unix_nanos(), TIMEOUT_BATCH as i64], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
                })?;
            rows.collect::<Result<_, _>>()?
        };
        for (instance, timeout, deadline) in &due {
            tx.execute(
                "DELETE FROM pm_timeouts WHERE instance = ?1 AND name = ?2",
                params![instance, timeout],
            )?;
            let Some((state, correlation)) = load_instance(&tx, instance)? else {
                continue;
            };
            let reaction = self
                .manager
                .on_timeout(state.as_deref(), timeout)
                .map_err(|e| {
                    Fault::Fatal(format!("instance {instance}, timeout {timeout}: {e}").into())
                })?;
            let context = timeout_context(name, instance, timeout, *deadline, correlation);
            record(&tx, instance, reaction, None, context)?;
        }
        tx.commit()?;
        Ok(due.len())
    }

    /// The oldest commands waiting in the outbox.
    pub(crate) fn outbox(&self, limit: usize) -> Result<Vec<Outgoing>, Fault> {
        let mut statement = self
            .conn
            .prepare("SELECT seq, command, context FROM pm_outbox ORDER BY seq LIMIT ?1")?;
        let rows = statement.query_map([limit as i64], |row| {
            Ok((
                row.get::<_, i64>(0)?,
                row.get::<_, String>(1)?,
                row.get::<_, String>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (seq, command, context) = row?;
            let context = serde_json::from_str(&context).map_err(|e| {
                Fault::Fatal(format!("outbox entry {seq} has a bad context: {e}").into())
            })?;
            out.push(Outgoing {
                seq,
                command,
                context,
            });
        }
        Ok(out)
    }

    /// Forgets a sent command.
    pub(crate) fn sent(&mut self, seq: i64) -> Result<(), Fault> {
        self.conn
            .execute("DELETE FROM pm_outbox WHERE seq = ?1", [seq])?;
        Ok(())
    }

    /// Counts for the status.
    pub(crate) fn counts(&self) -> Result<Counts, Fault> {
        let count = |sql: &str| -> rusqlite::Result<u64> {
            self.conn
                .query_row(sql, [], |row| row.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
        };
        let next_deadline: Option<i64> =
            self.conn
                .query_row("SELECT MIN(deadline) FROM pm_timeouts", [], |row| {
                    row.get(0)
                })?;
        Ok(Counts {
            instances: count("SELECT COUNT(*) FROM pm_instances WHERE done = 0")?,
            timeouts: count("SELECT COUNT(*) FROM pm_timeouts")?,
            outbox: count("SELECT COUNT(*) FROM pm_outbox")?,
            next_deadline: next_deadline.map(Timestamp::from_unix_nanos),
        })
    }
}

/// An instance's stored state and correlation id: `Some((None, _))` for a new instance,
/// `None` for a finished one.
#[allow(clippy::type_complexity)]
fn load_instance(
    conn: &Connection,
    instance: &str,
) -> rusqlite::Result<Option<(Option<String>, Option<String>)>> {
    let row: Option<(Option<String>, i64, Option<String>)> = conn
        .query_row(
            "SELECT state, done, correlation_id FROM pm_instances WHERE instance = ?1",
            [instance],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()?;
    Ok(match row {
        None => Some((None, None)),
        Some((_, done, _)) if done != 0 => None,
        Some((state, _, correlation)) => Some((state, correlation)),
    })
}

/// Stores a reaction: the state (or the end of the instance), timeouts and commands.
fn record(
    tx: &rusqlite::Transaction<'_>,
    instance: &str,
    reaction: JsonReaction,
    correlation: Option<&str>,
    context: impl Fn(u32) -> CommandContext,
) -> Result<(), Fault> {
    let at = now().unix_nanos();
    if reaction.done {
        tx.execute(
            "INSERT INTO pm_instances (instance, state, done, correlation_id, updated_at)
             VALUES (?1, NULL, 1, ?2, ?3)
             ON CONFLICT (instance) DO UPDATE SET state = NULL, done = 1, updated_at = excluded.updated_at",
            params![instance, correlation, at],
        )?;
        tx.execute("DELETE FROM pm_timeouts WHERE instance = ?1", [instance])?;
    } else {
        tx.execute(
            "INSERT INTO pm_instances (instance, state, done, correlation_id, updated_at)
             VALUES (?1, ?2, 0, ?3, ?4)
             ON CONFLICT (instance) DO UPDATE SET state = excluded.state,
                correlation_id = COALESCE(excluded.correlation_id, correlation_id),
                updated_at = excluded.updated_at",
            params![instance, reaction.state, correlation, at],
        )?;
        for name in &reaction.cancel_timeouts {
            tx.execute(
                "DELETE FROM pm_timeouts WHERE instance = ?1 AND name = ?2",
                params![instance, name],
            )?;
        }
        for (name, deadline) in &reaction.timeouts {
            tx.execute(
                "INSERT INTO pm_timeouts (instance, name, deadline) VALUES (?1, ?2, ?3)
                 ON CONFLICT (instance, name) DO UPDATE SET deadline = excluded.deadline",
                params![instance, name, deadline.unix_nanos()],
            )?;
        }
    }
    for (index, command) in reaction.commands.iter().enumerate() {
        let context = context(index as u32);
        let encoded = serde_json::to_string(&context)
            .map_err(|e| Fault::Fatal(format!("cannot encode a command context: {e}").into()))?;
        // A command id already in the outbox (a replay) is not queued twice.
        tx.execute(
            "INSERT OR IGNORE INTO pm_outbox (command_id, instance, command, context, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                context.command_id.to_string(),
                instance,
                command,
                encoded,
                at
            ],
        )?;
    }
    Ok(())
}
