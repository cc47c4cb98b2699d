//! A read side fed from a broker instead of the log, so it can live on another machine:
//! an [`EnvelopeSource`] (a durable JetStream consumer, a Kafka partition) delivers the
//! relay's envelopes, and a [`RemoteReadModel`] applies them to a [`SqliteProjection`]
//! with its checkpoint (the last position applied and the broker's offset) in the same
//! transaction. [`RemoteReadSide`] runs the two with the relays' session and backoff
//! model.
//!
//! It de-duplicates by position: an envelope at or below the checkpoint (a relay's
//! republish, a broker's redelivery) is skipped. That needs the broker to keep the
//! relay's order across streams (one JetStream stream, one Kafka partition). It must not
//! read or write the event log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior};
use serde::Serialize;
use strata_core::{Position, RecordedEvent};
use strata_projection::{FailurePolicy, SqliteProjection};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{RelayError, RelayState, parse_envelope};

/// The most messages applied in one transaction.
const BATCH: usize = 256;
/// The first delay after a fault; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
/// The longest delay between sessions.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// One message as a broker delivered it.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The message body: an envelope.
    pub payload: Vec<u8>,
    /// Where the broker keeps it: the JetStream stream sequence or the Kafka offset,
    /// increasing in delivery order.
    pub offset: u64,
}

/// A broker's side of a remote read model: the relay's messages, in the order the
/// relay published them.
#[async_trait]
pub trait EnvelopeSource: Send + 'static {
    /// The broker's name (`nats`, `kafka`).
    fn broker(&self) -> &'static str;

    /// Where it consumes from, without credentials.
    fn target(&self) -> String;

    /// Drops any previous connection and opens a new one that delivers the messages
    /// after `after` (the offset the read model stored; `None`: from the first).
    async fn connect(&mut self, after: Option<u64>) -> Result<(), RelayError>;

    /// Waits for the next messages (at least one, at most `max`), in broker order.
    async fn next(&mut self, max: usize) -> Result<Vec<Delivered>, RelayError>;

    /// The read model stored everything up to `offset`: the broker may forget it.
    async fn acknowledge(&mut self, offset: u64) -> Result<(), RelayError>;
}

/// Where a remote read model stands: the last position applied, and the broker offset
/// of the message that carried it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct RemoteCheckpoint {
    /// The last position applied (0: nothing yet).
    pub position: Position,
    /// The broker offset stored with it (`None`: nothing consumed yet).
    pub offset: Option<u64>,
}

/// A read model kept in its own SQLite file, fed with envelopes: the projection's
/// tables, a checkpoint table and a table of parked events, each batch one
/// transaction.
#[derive(Clone)]
pub struct RemoteReadModel {
    path: PathBuf,
    projection: Arc<dyn SqliteProjection>,
    conn: Arc<Mutex<Connection>>,
}

/// What applying one batch did.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Applied {
    pub(crate) checkpoint: RemoteCheckpoint,
    pub(crate) applied: u64,
    pub(crate) duplicates: u64,
}

/// The table that holds the checkpoint.
const CHECKPOINT: &str = "strata_remote_checkpoint";
/// The table that holds events the projection refused under [`FailurePolicy::Park`].
const PARKED: &str = "strata_parked";

impl RemoteReadModel {
    /// Opens (creating it and the projection's tables if new) the read model at `path`.
    /// Blocking. A file built by another projection or version is refused: delete it
    /// to build it again.
    pub fn open(
        path: impl Into<PathBuf>,
        projection: Arc<dyn SqliteProjection>,
    ) -> Result<Self, RelayError> {
        let path = path.into();
        let err = |source| RelayError::Checkpoint {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;")
            .map_err(err)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(err)?;
        let existing: Option<(String, u32)> = tx
            .query_row(
                &format!(
                    "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '{CHECKPOINT}'"
                ),
                [],
                |_| Ok(()),
            )
            .optional()
            .map_err(err)?
            .map(|()| {
                tx.query_row(
                    &format!("SELECT projection, version FROM {CHECKPOINT} WHERE id = 0"),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
            })
            .transpose()
            .map_err(err)?;
        match existing {
            Some((name, version))
                if name == projection.name() && version == projection.version() => {}
            Some((name, version)) => {
                return Err(RelayError::ReadModelMismatch {
                    path,
                    found: format!("{name} v{version}"),
                    expected: format!("{} v{}", projection.name(), projection.version()),
                });
            }
            None => {
                tx.execute_batch(&format!(
                    "CREATE TABLE {CHECKPOINT} (
                         id INTEGER PRIMARY KEY CHECK (id = 0),
                         projection TEXT NOT NULL,
                         version INTEGER NOT NULL,
                         position INTEGER NOT NULL,
                         broker_offset INTEGER
                     );
                     CREATE TABLE IF NOT EXISTS {PARKED} (
                         position INTEGER PRIMARY KEY,
                         stream TEXT NOT NULL,
                         type TEXT NOT NULL,
                         error TEXT NOT NULL
                     );"
                ))
                .map_err(err)?;
                tx.execute(
                    &format!(
                        "INSERT INTO {CHECKPOINT} (id, projection, version, position) VALUES (0, ?1, ?2, 0)"
                    ),
                    rusqlite::params![projection.name(), projection.version()],
                )
                .map_err(err)?;
                projection.migrate(&tx).map_err(err)?;
            }
        }
        tx.commit().map_err(err)?;
        Ok(Self {
            path,
            projection,
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The file it lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Where it stands. Blocking.
    pub fn checkpoint(&self) -> Result<RemoteCheckpoint, RelayError> {
        self.conn
            .lock()
            .query_row(
                &format!("SELECT position, broker_offset FROM {CHECKPOINT} WHERE id = 0"),
                [],
                |r| {
                    Ok(RemoteCheckpoint {
                        position: Position(r.get::<_, i64>(0)?.max(0) as u64),
                        offset: r.get::<_, Option<i64>>(1)?.map(|o| o.max(0) as u64),
                    })
                },
            )
            .map_err(|source| self.error(source))
    }

    /// Applies `messages` in one transaction with the new checkpoint: envelopes at or
    /// below the stored position are skipped, events the projection does not select
    /// only move the checkpoint. Blocking.
    pub(crate) fn apply(&self, messages: &[Delivered]) -> Result<Applied, RelayError> {
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            events.push((parse_envelope(&message.payload)?, message.offset));
        }
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| self.error(source))?;
        let mut checkpoint = tx
            .query_row(
                &format!("SELECT position, broker_offset FROM {CHECKPOINT} WHERE id = 0"),
                [],
                |r| {
                    Ok(RemoteCheckpoint {
                        position: Position(r.get::<_, i64>(0)?.max(0) as u64),
                        offset: r.get::<_, Option<i64>>(1)?.map(|o| o.max(0) as u64),
                    })
                },
            )
            .map_err(|source| self.error(source))?;
        let filter = self.projection.filter();
        let mut applied = 0;
        let mut duplicates = 0;
        for (event, offset) in &events {
            checkpoint.offset = Some(checkpoint.offset.map_or(*offset, |o| o.max(*offset)));
            if event.position <= checkpoint.position {
                duplicates += 1;
                continue;
            }
            checkpoint.position = event.position;
            if !filter.matches(&event.stream, event.event_type.as_str()) {
                continue;
            }
            self.apply_one(&tx, event)?;
            applied += 1;
        }
        tx.execute(
            &format!("UPDATE {CHECKPOINT} SET position = ?1, broker_offset = ?2 WHERE id = 0"),
            rusqlite::params![
                i64::try_from(checkpoint.position.0).unwrap_or(i64::MAX),
                checkpoint
                    .offset
                    .map(|o| i64::try_from(o).unwrap_or(i64::MAX)),
            ],
        )
        .map_err(|source| self.error(source))?;
        tx.commit().map_err(|source| self.error(source))?;
        Ok(Applied {
            checkpoint,
            applied,
            duplicates,
        })
    }

    /// Applies one event under the projection's failure policy.
    fn apply_one(
        &self,
        tx: &rusqlite::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), RelayError> {
        // NOTE: a savepoint, so that a refused event leaves nothing of itself behind.
        tx.execute_batch("SAVEPOINT strata_event")
            .map_err(|source| self.error(source))?;
        match self.projection.apply(tx, event) {
            Ok(()) => {}
            Err(err) if err.is_unhandled() => {}
            Err(err) => {
                tx.execute_batch("ROLLBACK TO strata_event")
                    .map_err(|source| self.error(source))?;
                if err.is_transient() {
                    return Err(RelayError::ReadModel {
                        path: self.path.clone(),
                        message: format!("position {}: {err}", event.position),
                    });
                }
                if self.projection.policy() == FailurePolicy::Stop {
                    return Err(RelayError::Apply {
                        position: event.position,
                        message: err.to_string(),
                    });
                }
                tx.execute(
                    &format!(
                        "INSERT OR REPLACE INTO {PARKED} (position, stream, type, error) VALUES (?1, ?2, ?3, ?4)"
                    ),
                    rusqlite::params![
                        i64::try_from(event.position.0).unwrap_or(i64::MAX),
                        event.stream.as_str(),
                        event.event_type.as_str(),
                        err.to_string(),
                    ],
                )
                .map_err(|source| self.error(source))?;
            }
        }
        tx.execute_batch("RELEASE strata_event")
            .map_err(|source| self.error(source))
    }

    fn error(&self, source: rusqlite::Error) -> RelayError {
        RelayError::Checkpoint {
            path: self.path.clone(),
            source,
        }
    }
}

/// A remote read side's health at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RemoteStatus {
    /// The read side's name.
    pub name: String,
    /// Its broker (`nats`, `kafka`).
    pub broker: &'static str,
    /// Where it consumes from, without credentials.
    pub target: String,
    /// The last position applied and the broker offset stored with it.
    pub checkpoint: RemoteCheckpoint,
    /// What it is doing: `connecting`, `live` (consuming), `retrying`, `stopped`,
    /// `failed`.
    pub state: RelayState,
    /// The last fault it met, if any since it last applied a batch.
    pub last_error: Option<String>,
    /// Events applied since it started.
    pub applied: u64,
    /// Messages skipped since it started because their position was already applied.
    pub duplicates: u64,
}

/// A remote read side running on the current tokio runtime: consumes from its source,
/// applies to its read model, acknowledges, and reconnects with backoff after any
/// fault. Dropping it does not stop it: call [`RemoteReadSide::shutdown`].
pub struct RemoteReadSide {
    status: watch::Receiver<RemoteStatus>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl RemoteReadSide {
    /// Starts `name`, feeding `model` from `source`.
    pub fn start(
        name: &str,
        source: Box<dyn EnvelopeSource>,
        model: RemoteReadModel,
    ) -> Result<Self, RelayError> {
        crate::config::validate_name(name)?;
        let checkpoint = model.checkpoint()?;
        let (tx, status) = watch::channel(RemoteStatus {
            name: name.to_owned(),
            broker: source.broker(),
            target: source.target(),
            checkpoint,
            state: RelayState::Connecting,
            last_error: None,
            applied: 0,
            duplicates: 0,
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(consume(source, model, tx, stop_rx));
        Ok(Self { status, stop, task })
    }

    /// Its status now.
    pub fn status(&self) -> RemoteStatus {
        self.status.borrow().clone()
    }

    /// Waits until the read model has applied everything up to `position`.
    pub async fn wait_for(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<RemoteStatus, RelayError> {
        let mut status = self.status.clone();
        // The guard the wait answers is dropped at once: `status()` reads the same value.
        let _ = tokio::time::timeout(
            timeout,
            status.wait_for(|s| s.checkpoint.position >= position || s.state == RelayState::Failed),
        )
        .await
        .map(|reached| reached.is_ok());
        let now = self.status();
        if now.state == RelayState::Failed {
            Err(RelayError::Stopped {
                name: now.name,
                cause: now.last_error.unwrap_or_default(),
            })
        } else if now.checkpoint.position >= position {
            Ok(now)
        } else {
            Err(RelayError::Timeout {
                name: now.name,
                position,
                checkpoint: now.checkpoint.position,
            })
        }
    }

    /// Stops after the current batch, its checkpoint stored.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// The consuming task: sessions with a backoff between them.
async fn consume(
    mut source: Box<dyn EnvelopeSource>,
    model: RemoteReadModel,
    status: watch::Sender<RemoteStatus>,
    mut stop: watch::Receiver<bool>,
) {
    let mut delay = BACKOFF_FIRST;
    loop {
        if *stop.borrow() {
            break;
        }
        let fault = match session(&mut *source, &model, &status, &mut stop, &mut delay).await {
            None => break,
            Some(fault) => fault,
        };
        let fatal = matches!(
            fault,
            RelayError::InvalidEnvelope(_) | RelayError::Apply { .. }
        );
        tracing::warn!(read_side = %status.borrow().name, error = %fault, "remote read side fault");
        status.send_modify(|s| {
            s.state = if fatal {
                RelayState::Failed
            } else {
                RelayState::Retrying
            };
            s.last_error = Some(fault.to_string());
        });
        if fatal {
            return;
        }
        let stopped = tokio::select! {
            () = tokio::time::sleep(delay) => false,
            _ = stop.wait_for(|s| *s) => true,
        };
        if stopped {
            break;
        }
        delay = (delay * 2).min(BACKOFF_MAX);
    }
    status.send_modify(|s| s.state = RelayState::Stopped);
}

/// One connection's worth of consuming; `None` when stopped.
async fn session(
    source: &mut dyn EnvelopeSource,
    model: &RemoteReadModel,
    status: &watch::Sender<RemoteStatus>,
    stop: &mut watch::Receiver<bool>,
    delay: &mut Duration,
) -> Option<RelayError> {
    status.send_modify(|s| s.state = RelayState::Connecting);
    let checkpoint = match blocking(model, |m| m.checkpoint()).await {
        Ok(c) => c,
        Err(err) => return Some(err),
    };
    if let Err(err) = source.connect(checkpoint.offset).await {
        return Some(err);
    }
    status.send_modify(|s| s.state = RelayState::Live);
    loop {
        let messages = tokio::select! {
            next = source.next(BATCH) => next,
            _ = stop.wait_for(|s| *s) => return None,
        };
        let messages = match messages {
            Ok(m) => m,
            Err(err) => return Some(err),
        };
        let Some(last) = messages.last().map(|m| m.offset) else {
            continue;
        };
        let applied = match blocking(model, move |m| m.apply(&messages)).await {
            Ok(a) => a,
            Err(err) => return Some(err),
        };
        // The batch is committed: the status says so even if the acknowledgement fails.
        status.send_modify(|s| {
            s.checkpoint = applied.checkpoint;
            s.applied += applied.applied;
            s.duplicates += applied.duplicates;
        });
        // NOTE: only after the read model committed; a lost acknowledgement means a
        // redelivery, which the checkpoint then skips.
        if let Err(err) = source.acknowledge(last).await {
            return Some(err);
        }
        *delay = BACKOFF_FIRST;
        status.send_modify(|s| s.last_error = None);
    }
}

/// Runs `f` on the model on a blocking thread.
async fn blocking<T: Send + 'static>(
    model: &RemoteReadModel,
    f: impl FnOnce(&RemoteReadModel) -> Result<T, RelayError> + Send + 'static,
) -> Result<T, RelayError> {
    let owned = model.clone();
    tokio::task::spawn_blocking(move || f(&owned))
        .await
        .unwrap_or_else(|e| {
            Err(RelayError::ReadModel {
                path: model.path.clone(),
                message: format!("the read model's thread ended: {e}"),
            })
        })
}
