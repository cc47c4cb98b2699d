//! [`PgProcessState`]: one process manager's instance states, durable timeouts, outbox
//! and checkpoint in the `strata_process` schema, changed in one transaction per batch
//! of events (or of due timeouts), exactly as the SQLite runner changes its file. Every
//! such transaction first checks the runner's lease fence and locks the checkpoint row,
//! so a node that lost the lease cannot commit, and two nodes never commit one batch.
//!
//! It never sends anything: it records commands in the outbox, and deletes one when the
//! runner says it was sent.

use std::sync::Arc;

use deadpool_postgres::{Object, Pool, Transaction};
use strata_core::{Position, RecordedEvent, Timestamp};
use strata_domain::CommandContext;
use uuid::Uuid;

use super::check_fence;
use crate::lease::Fence;
use crate::process::core::{
    Counts, Fault, Outgoing, TIMEOUT_BATCH, correlation_of, timeout_context,
};
use crate::process::typed::{DynProcess, JsonReaction};

/// The state of one process manager, in PostgreSQL.
pub(crate) struct PgProcessState {
    pool: Pool,
    manager: Arc<dyn DynProcess>,
}

/// A fault of the database (or of reaching it): nothing was committed; retried.
fn transient(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Fault {
    Fault::Transient(err.into())
}

impl PgProcessState {
    pub(crate) fn new(pool: Pool, manager: Arc<dyn DynProcess>) -> Self {
        Self { pool, manager }
    }

    fn name(&self) -> &'static str {
        self.manager.name()
    }

    async fn client(&self) -> Result<Object, Fault> {
        self.pool.get().await.map_err(transient)
    }

    /// Creates the checkpoint row if it is missing; the stored checkpoint and counts.
    pub(crate) async fn open(&self) -> Result<(Position, Counts), Fault> {
        let client = self.client().await?;
        client
            .execute(
                "INSERT INTO strata_process.checkpoints (process, position, updated_at)
                 VALUES ($1, 0, now()) ON CONFLICT (process) DO NOTHING",
                &[&self.name()],
            )
            .await
            .map_err(transient)?;
        let row = client
            .query_one(
                "SELECT position FROM strata_process.checkpoints WHERE process = $1",
                &[&self.name()],
            )
            .await
            .map_err(transient)?;
        let position: i64 = row.try_get(0).map_err(transient)?;
        let counts = counts(&**client, self.name()).await?;
        Ok((Position(position.max(0) as u64), counts))
    }

    /// Handles `events` and moves the checkpoint to the last of them (or to `through`),
    /// recording new states, timeouts and commands, in one transaction guarded by
    /// `fence`.
    pub(crate) async fn apply_batch(
        &self,
        events: &[RecordedEvent],
        through: Position,
        fence: Option<&Fence>,
    ) -> Result<(Position, Counts), Fault> {
        let name = self.name();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(transient)?;
        guard(&tx, fence).await?;
        // NOTE: the stored checkpoint, read under its row lock, is the truth: a batch
        // another grant already committed is stepped over, never applied twice.
        let row = tx
            .query_one(
                "SELECT position FROM strata_process.checkpoints WHERE process = $1 FOR UPDATE",
                &[&name],
            )
            .await
            .map_err(transient)?;
        let stored: i64 = row.try_get(0).map_err(transient)?;
        let stored = Position(stored.max(0) as u64);
        let mut last = stored;
        for event in events {
            if event.position <= last {
                continue;
            }
            last = event.position;
            let Some(instance) = self.manager.correlate(event) else {
                continue;
            };
            let Some((state, _)) = load_instance(&tx, name, &instance).await? else {
                continue;
            };
            let reaction = self.manager.react(state.as_deref(), event).map_err(|e| {
                Fault::Fatal(
                    format!("instance {instance} at position {}: {e}", event.position).into(),
                )
            })?;
            let correlation = correlation_of(event);
            record(
                &tx,
                name,
                &instance,
                reaction,
                Some(&correlation),
                |index| CommandContext::caused_by(event, index),
            )
            .await?;
        }
        let checkpoint = last.max(through);
        if checkpoint > stored {
            tx.execute(
                "UPDATE strata_process.checkpoints SET position = $2, updated_at = now()
                 WHERE process = $1",
                &[&name, &(checkpoint.0 as i64)],
            )
            .await
            .map_err(transient)?;
        }
        let counts = counts(&*tx, name).await?;
        tx.commit().await.map_err(transient)?;
        Ok((checkpoint.max(stored), counts))
    }

    /// Fires the timeouts due at `now` (each once: deleted in the transaction that
    /// records its reaction), guarded by `fence`.
    pub(crate) async fn fire_due(
        &self,
        now: Timestamp,
        fence: Option<&Fence>,
    ) -> Result<Counts, Fault> {
        let name = self.name();
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(transient)?;
        guard(&tx, fence).await?;
        let due = tx
            .query(
                "SELECT instance, name, deadline FROM strata_process.timeouts
                 WHERE process = $1 AND deadline <= $2
                 ORDER BY deadline, instance, name LIMIT $3 FOR UPDATE",
                &[&name, &now.unix_nanos(), &(TIMEOUT_BATCH as i64)],
            )
            .await
            .map_err(transient)?;
        for row in due {
            let instance: String = row.try_get(0).map_err(transient)?;
            let timeout: String = row.try_get(1).map_err(transient)?;
            let deadline: i64 = row.try_get(2).map_err(transient)?;
            tx.execute(
                "DELETE FROM strata_process.timeouts
                 WHERE process = $1 AND instance = $2 AND name = $3",
                &[&name, &instance, &timeout],
            )
            .await
            .map_err(transient)?;
            let Some((state, correlation)) = load_instance(&tx, name, &instance).await? else {
                continue;
            };
            let reaction = self
                .manager
                .on_timeout(state.as_deref(), &timeout)
                .map_err(|e| {
                    Fault::Fatal(format!("instance {instance}, timeout {timeout}: {e}").into())
                })?;
            let context = timeout_context(name, &instance, &timeout, deadline, correlation);
            record(&tx, name, &instance, reaction, None, context).await?;
        }
        let counts = counts(&*tx, name).await?;
        tx.commit().await.map_err(transient)?;
        Ok(counts)
    }

    /// The oldest commands waiting in the outbox.
    pub(crate) async fn outbox(&self, limit: usize) -> Result<Vec<Outgoing>, Fault> {
        let client = self.client().await?;
        let rows = client
            .query(
                "SELECT seq, command, context FROM strata_process.outbox
                 WHERE process = $1 ORDER BY seq LIMIT $2",
                &[&self.name(), &(limit as i64)],
            )
            .await
            .map_err(transient)?;
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            let seq: i64 = row.try_get(0).map_err(transient)?;
            let command: String = row.try_get(1).map_err(transient)?;
            let context: String = row.try_get(2).map_err(transient)?;
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
    pub(crate) async fn sent(&self, seq: i64) -> Result<(), Fault> {
        let client = self.client().await?;
        client
            .execute(
                "DELETE FROM strata_process.outbox WHERE process = $1 AND seq = $2",
                &[&self.name(), &seq],
            )
            .await
            .map_err(transient)?;
        Ok(())
    }

    /// Counts for the status.
    pub(crate) async fn counts(&self) -> Result<Counts, Fault> {
        let client = self.client().await?;
        counts(&**client, self.name()).await
    }
}

/// Refuses to go on unless `fence` (if the runner is leased) is the current grant.
async fn guard(tx: &Transaction<'_>, fence: Option<&Fence>) -> Result<(), Fault> {
    match fence {
        Some(fence) => check_fence(&**tx, fence).await.map_err(transient),
        None => Ok(()),
    }
}

async fn counts<C: tokio_postgres::GenericClient>(client: &C, name: &str) -> Result<Counts, Fault> {
    let row = client
        .query_one(
            "SELECT
                (SELECT count(*) FROM strata_process.instances WHERE process = $1 AND NOT done),
                (SELECT count(*) FROM strata_process.timeouts WHERE process = $1),
                (SELECT count(*) FROM strata_process.outbox WHERE process = $1),
                (SELECT min(deadline) FROM strata_process.timeouts WHERE process = $1)",
            &[&name],
        )
        .await
        .map_err(transient)?;
    let count = |i: usize| -> Result<u64, Fault> {
        let n: i64 = row.try_get(i).map_err(transient)?;
        Ok(n.max(0) as u64)
    };
    let next: Option<i64> = row.try_get(3).map_err(transient)?;
    Ok(Counts {
        instances: count(0)?,
        timeouts: count(1)?,
        outbox: count(2)?,
        next_deadline: next.map(Timestamp::from_unix_nanos),
    })
}

/// An instance's stored state and correlation id: `Some((None, _))` for a new instance,
/// `None` for a finished one.
#[allow(clippy::type_complexity)]
async fn load_instance(
    tx: &Transaction<'_>,
    process: &str,
    instance: &str,
) -> Result<Option<(Option<String>, Option<String>)>, Fault> {
    let row = tx
        .query_opt(
            "SELECT state, done, correlation_id FROM strata_process.instances
             WHERE process = $1 AND instance = $2",
            &[&process, &instance],
        )
        .await
        .map_err(transient)?;
    let Some(row) = row else {
        return Ok(Some((None, None)));
    };
    let done: bool = row.try_get(1).map_err(transient)?;
    if done {
        return Ok(None);
    }
    Ok(Some((
        row.try_get(0).map_err(transient)?,
        row.try_get(2).map_err(transient)?,
    )))
}

/// Stores a reaction: the state (or the end of the instance), timeouts and commands.
async fn record(
    tx: &Transaction<'_>,
    process: &str,
    instance: &str,
    reaction: JsonReaction,
    correlation: Option<&str>,
    context: impl Fn(u32) -> CommandContext,
) -> Result<(), Fault> {
    if reaction.done {
        tx.execute(
            "INSERT INTO strata_process.instances
                 (process, instance, state, done, correlation_id, updated_at)
             VALUES ($1, $2, NULL, true, $3, now())
             ON CONFLICT (process, instance) DO UPDATE
                 SET state = NULL, done = true, updated_at = excluded.updated_at",
            &[&process, &instance, &correlation],
        )
        .await
        .map_err(transient)?;
        tx.execute(
            "DELETE FROM strata_process.timeouts WHERE process = $1 AND instance = $2",
            &[&process, &instance],
        )
        .await
        .map_err(transient)?;
    } else {
        tx.execute(
            "INSERT INTO strata_process.instances AS i
                 (process, instance, state, done, correlation_id, updated_at)
             VALUES ($1, $2, $3, false, $4, now())
             ON CONFLICT (process, instance) DO UPDATE
                 SET state = excluded.state,
                     correlation_id = COALESCE(excluded.correlation_id, i.correlation_id),
                     updated_at = excluded.updated_at",
            &[&process, &instance, &reaction.state, &correlation],
        )
        .await
        .map_err(transient)?;
        for name in &reaction.cancel_timeouts {
            tx.execute(
                "DELETE FROM strata_process.timeouts
                 WHERE process = $1 AND instance = $2 AND name = $3",
                &[&process, &instance, name],
            )
            .await
            .map_err(transient)?;
        }
        for (name, deadline) in &reaction.timeouts {
            tx.execute(
                "INSERT INTO strata_process.timeouts (process, instance, name, deadline)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (process, instance, name) DO UPDATE SET deadline = excluded.deadline",
                &[&process, &instance, name, &deadline.unix_nanos()],
            )
            .await
            .map_err(transient)?;
        }
    }
    for (index, command) in reaction.commands.iter().enumerate() {
        let context = context(index as u32);
        let encoded = serde_json::to_string(&context)
            .map_err(|e| Fault::Fatal(format!("cannot encode a command context: {e}").into()))?;
        let command_id: Uuid = context.command_id;
        // A command id already in the outbox (a replay) is not queued twice.
        tx.execute(
            "INSERT INTO strata_process.outbox
                 (process, command_id, instance, command, context, created_at)
             VALUES ($1, $2, $3, $4, $5, now())
             ON CONFLICT (process, command_id) DO NOTHING",
            &[&process, &command_id, &instance, command, &encoded],
        )
        .await
        .map_err(transient)?;
    }
    Ok(())
}
