//! [`SqsConsumer`]: the other end of an SNS relay. It receives envelopes from an SQS queue
//! subscribed to the topic (raw message delivery, or the SNS notification around them),
//! applies each event once to a SQLite read model, in version order per stream, in one
//! transaction with what it has applied, and deletes a message only after that
//! transaction committed. It must not publish anything or read the event log.
//!
//! De-duplication: the read model's file keeps, per stream, the last version applied. An
//! envelope at or below it is a duplicate (deleted unapplied); the next version is
//! applied; a later one is early (a standard queue keeps no order) and goes back to the
//! queue, to come again after the visibility timeout once its predecessors are applied.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::Client;
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension as _, Transaction};
use serde::Deserialize;
use strata_core::Position;
use tokio::sync::watch;

use crate::aws::{describe, sdk_config};
use crate::{ENVELOPE_FORMAT, RelayError};

/// The first delay after a fault; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
/// The longest delay between polls after faults.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where a consumer receives from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqsConsumerConfig {
    /// The queue's URL (`https://sqs.<region>.amazonaws.com/<account>/<name>`).
    pub queue_url: String,
    /// Another endpoint than AWS's (an emulator), `http://host:port`; credentials then
    /// come from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, or placeholders.
    pub endpoint: Option<String>,
    /// The AWS region.
    pub region: String,
    /// How long one ReceiveMessage waits for a message (long polling), at most 20 s.
    pub wait: Duration,
    /// How long a received message stays hidden from other receives: an early or
    /// unreadable one comes back after it.
    pub visibility_timeout: Duration,
}

impl SqsConsumerConfig {
    /// A queue in `region` on AWS, waiting 10 s per receive, with a 30 s visibility
    /// timeout.
    pub fn new(queue_url: impl Into<String>, region: impl Into<String>) -> Self {
        Self {
            queue_url: queue_url.into(),
            endpoint: None,
            region: region.into(),
            wait: Duration::from_secs(10),
            visibility_timeout: Duration::from_secs(30),
        }
    }
}

/// One event as a consumer reads it from the envelope (docs/relays.md).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct ConsumedEvent {
    /// The envelope's format.
    pub format: u32,
    /// The event's global position in the log.
    pub position: u64,
    /// Its stream.
    pub stream: String,
    /// Its version in the stream.
    pub version: u64,
    /// Its id.
    pub id: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Its data (a JSON string when the data is not JSON).
    pub data: serde_json::Value,
    /// Its metadata.
    #[serde(default)]
    pub metadata: serde_json::Value,
}

/// A read model a [`SqsConsumer`] keeps: SQLite tables of its own in the consumer's file.
///
/// Both methods run on a blocking thread, inside a transaction that the consumer commits
/// with its record of what is applied; an error rolls everything back. Keep state only in
/// the transaction: after an error the batch comes again.
pub trait SqsReadModel: Send + 'static {
    /// Creates the model's tables if missing; runs when the consumer opens.
    fn init(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()>;

    /// Applies one event: called once per event, in version order within a stream.
    fn apply(&mut self, tx: &Transaction<'_>, event: &ConsumedEvent) -> rusqlite::Result<()>;
}

/// What one [`SqsConsumer::poll`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PollReport {
    /// Messages received.
    pub received: usize,
    /// Events applied to the read model.
    pub applied: usize,
    /// Messages whose event was applied before (deleted unapplied).
    pub duplicates: usize,
    /// Messages whose stream lacks an earlier version yet (left in the queue).
    pub early: usize,
    /// Messages that are no envelope this build reads (left in the queue, for its
    /// redrive policy).
    pub unreadable: usize,
}

/// The read model's file, its model, and the consumer's bookkeeping beside them.
pub(crate) struct Db {
    path: PathBuf,
    conn: Connection,
    model: Box<dyn SqsReadModel>,
}

impl Db {
    /// Opens the file at `path` and sets up the consumer's tables and `model`'s. Blocking.
    pub(crate) fn open(
        path: PathBuf,
        mut model: Box<dyn SqsReadModel>,
    ) -> Result<Self, RelayError> {
        let err = |source| RelayError::ConsumerReadModel {
            path: path.clone(),
            source,
        };
        let mut conn = Connection::open(&path).map_err(err)?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;",
        )
        .map_err(err)?;
        let tx = conn.transaction().map_err(err)?;
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS strata_sqs_streams (
                 stream TEXT PRIMARY KEY,
                 version INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS strata_sqs_checkpoint (
                 id INTEGER PRIMARY KEY CHECK (id = 0),
                 position INTEGER NOT NULL
             );",
        )
        .map_err(err)?;
        model.init(&tx).map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Self { path, conn, model })
    }

    /// The SQLite connection (for tests).
    #[cfg(test)]
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Applied,
    Duplicate,
    Early,
}

/// Consumes an SQS queue into a read model. Cheap to clone.
#[derive(Clone)]
pub struct SqsConsumer {
    config: SqsConsumerConfig,
    path: PathBuf,
    client: Client,
    db: Arc<Mutex<Db>>,
}

impl SqsConsumer {
    /// Opens (creating it if missing) the read model's SQLite file at `path`, sets up
    /// `model`'s tables and the consumer's own, and prepares the SQS client. Talks to no
    /// service yet.
    pub async fn open(
        config: SqsConsumerConfig,
        path: &Path,
        model: impl SqsReadModel,
    ) -> Result<Self, RelayError> {
        let path = path.to_owned();
        let file = path.clone();
        let db = blocking(&file, move || Db::open(path, Box::new(model))).await?;
        let sdk = sdk_config(config.endpoint.as_deref(), &config.region).await;
        Ok(Self {
            client: Client::new(&sdk),
            config,
            path: file,
            db: Arc::new(Mutex::new(db)),
        })
    }

    /// The highest position applied (0: nothing yet). Events of other streams below it
    /// may still be on their way: SQS keeps order only within a message group (a FIFO
    /// queue's stream), and a standard queue none at all.
    pub async fn position(&self) -> Result<Position, RelayError> {
        let db = self.db.clone();
        blocking(&self.path, move || {
            let db = db.lock();
            let position: Option<i64> = db
                .conn
                .query_row(
                    "SELECT position FROM strata_sqs_checkpoint WHERE id = 0",
                    [],
                    |r| r.get(0),
                )
                .optional()
                .map_err(|source| RelayError::ConsumerReadModel {
                    path: db.path.clone(),
                    source,
                })?;
            Ok(Position(
                position.map_or(0, |p| u64::try_from(p).unwrap_or(0)),
            ))
        })
        .await
    }

    /// Receives once (up to 10 messages, waiting up to `wait`), applies what is new in
    /// one transaction, then deletes the applied and duplicate messages.
    pub async fn poll(&self) -> Result<PollReport, RelayError> {
        let output = self
            .client
            .receive_message()
            .queue_url(&self.config.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(seconds(self.config.wait))
            .visibility_timeout(seconds(self.config.visibility_timeout))
            .send()
            .await
            .map_err(|e| self.error(format!("cannot receive: {}", describe(&e))))?;
        let messages = output.messages();
        let mut report = PollReport {
            received: messages.len(),
            ..PollReport::default()
        };
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            match read_body(message.body().unwrap_or_default()) {
                Ok(event) => events.push((message.receipt_handle().unwrap_or_default(), event)),
                Err(reason) => {
                    report.unreadable += 1;
                    tracing::warn!(
                        queue = %self.config.queue_url,
                        message = message.message_id().unwrap_or_default(),
                        "unreadable message left in the queue: {reason}"
                    );
                }
            }
        }
        if events.is_empty() {
            return Ok(report);
        }
        let (handles, events): (Vec<&str>, Vec<ConsumedEvent>) = events.into_iter().unzip();
        let db = self.db.clone();
        let outcomes = blocking(&self.path, move || apply(&mut db.lock(), events)).await?;
        let mut delete = Vec::with_capacity(handles.len());
        for (i, (handle, outcome)) in handles.iter().zip(outcomes).enumerate() {
            match outcome {
                Outcome::Applied => report.applied += 1,
                Outcome::Duplicate => report.duplicates += 1,
                Outcome::Early => {
                    report.early += 1;
                    continue;
                }
            }
            delete.push(
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(*handle)
                    .build()
                    .map_err(|e| self.error(format!("cannot delete: {e}")))?,
            );
        }
        if !delete.is_empty() {
            // A message not deleted comes again, and is then dropped as a duplicate.
            let deleted = self
                .client
                .delete_message_batch()
                .queue_url(&self.config.queue_url)
                .set_entries(Some(delete))
                .send()
                .await
                .map_err(|e| self.error(format!("cannot delete: {}", describe(&e))))?;
            if let Some(failed) = deleted.failed().first() {
                tracing::warn!(
                    queue = %self.config.queue_url,
                    "{} applied messages not deleted ({}); they come again as duplicates",
                    deleted.failed().len(),
                    failed.code()
                );
            }
        }
        Ok(report)
    }

    /// Polls until `stop` turns true, waiting with a growing backoff after a fault.
    pub async fn run(&self, mut stop: watch::Receiver<bool>) {
        let mut delay = BACKOFF_FIRST;
        while !*stop.borrow() {
            let polled = tokio::select! {
                polled = self.poll() => polled,
                _ = stop.wait_for(|s| *s) => break,
            };
            match polled {
                Ok(_) => delay = BACKOFF_FIRST,
                Err(err) => {
                    tracing::warn!(queue = %self.config.queue_url, error = %err, "sqs consumer retries");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        _ = stop.wait_for(|s| *s) => break,
                    }
                    delay = (delay * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> RelayError {
        RelayError::Broker {
            broker: "sqs",
            target: self.config.queue_url.clone(),
            message: message.to_string(),
        }
    }
}

/// The envelope in a message body: the body itself (raw message delivery) or the
/// `Message` of the SNS notification around it.
pub(crate) fn read_body(body: &str) -> Result<ConsumedEvent, String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let value = if value.get("Type").and_then(|t| t.as_str()) == Some("Notification") {
        let message = value
            .get("Message")
            .and_then(|m| m.as_str())
            .ok_or("an SNS notification without a Message")?;
        serde_json::from_str(message).map_err(|e| format!("the Message is not JSON: {e}"))?
    } else {
        value
    };
    let event: ConsumedEvent =
        serde_json::from_value(value).map_err(|e| format!("not an envelope: {e}"))?;
    if event.format == 0 || event.format > ENVELOPE_FORMAT {
        return Err(format!(
            "envelope format {} (this build reads 1 to {ENVELOPE_FORMAT})",
            event.format
        ));
    }
    Ok(event)
}

/// Applies `events` in one transaction; answers each one's outcome, in the order given.
pub(crate) fn apply(db: &mut Db, events: Vec<ConsumedEvent>) -> Result<Vec<Outcome>, RelayError> {
    let Db { path, conn, model } = db;
    let err = |source| RelayError::ConsumerReadModel {
        path: path.clone(),
        source,
    };
    // In log order, so that two versions of a stream in one receive apply in order.
    let mut order: Vec<usize> = (0..events.len()).collect();
    order.sort_by_key(|&i| events[i].position);
    let mut outcomes = vec![Outcome::Early; events.len()];
    let tx = conn.transaction().map_err(err)?;
    let mut highest = 0_u64;
    for i in order {
        let event = &events[i];
        let applied: i64 = tx
            .query_row(
                "SELECT version FROM strata_sqs_streams WHERE stream = ?1",
                [&event.stream],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?
            .unwrap_or(0);
        let applied = u64::try_from(applied).unwrap_or(0);
        outcomes[i] = if event.version <= applied {
            Outcome::Duplicate
        } else if event.version == applied + 1 {
            model.apply(&tx, event).map_err(err)?;
            tx.execute(
                "INSERT INTO strata_sqs_streams (stream, version) VALUES (?1, ?2)
                 ON CONFLICT (stream) DO UPDATE SET version = excluded.version",
                rusqlite::params![
                    event.stream,
                    i64::try_from(event.version).unwrap_or(i64::MAX)
                ],
            )
            .map_err(err)?;
            highest = highest.max(event.position);
            Outcome::Applied
        } else {
            Outcome::Early
        };
    }
    if highest > 0 {
        tx.execute(
            "INSERT INTO strata_sqs_checkpoint (id, position) VALUES (0, ?1)
             ON CONFLICT (id) DO UPDATE SET position = max(position, excluded.position)",
            [i64::try_from(highest).unwrap_or(i64::MAX)],
        )
        .map_err(err)?;
    }
    tx.commit().map_err(err)?;
    Ok(outcomes)
}

/// `duration` in whole seconds, as the SQS API takes it (at most 12 hours).
fn seconds(duration: Duration) -> i32 {
    i32::try_from(duration.as_secs())
        .unwrap_or(i32::MAX)
        .min(43_200)
}

/// Runs `f`, which works on the read model at `path`, on a blocking thread: SQLite never
/// runs on a runtime worker.
async fn blocking<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T, RelayError> + Send + 'static,
) -> Result<T, RelayError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result,
        // The closures do not panic; a runtime shutting down is the only other end.
        Err(join) => Err(RelayError::ConsumerReadModel {
            path: path.to_owned(),
            source: rusqlite::Error::ToSqlConversionFailure(Box::new(join)),
        }),
    }
}
