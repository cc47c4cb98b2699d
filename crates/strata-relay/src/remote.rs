//! A read side fed from a broker instead of the log, so it can live on another machine:
//! an [`EnvelopeSource`] (a durable JetStream consumer, the partitions of a Kafka topic)
//! delivers the relay's envelopes, and a [`RemoteReadModel`] applies them to a
//! [`SqliteProjection`] with everything it needs to de-duplicate and resume in the same
//! transaction. [`RemoteReadSide`] runs the two with the relays' session and backoff
//! model. It must not read or write the event log.
//!
//! A broker keeps order only per stream (a Kafka key, one relay's publishes), and it can
//! deliver an event twice, late, or after a later one of the same stream (a relay
//! republishing after a refused message). So the read model de-duplicates by event
//! identity, not by position:
//!
//! - per stream the projection selects, the last version applied and its event id
//!   (`strata_remote_streams`). An envelope at or below it is a duplicate (at that version
//!   its id must be the one applied, or the broker carries another log: the read side
//!   stops); the next version is applied;
//! - a later version is early: an event of its stream is missing. It is held in the
//!   model's file (`strata_remote_held`), never applied out of order, and applied as soon
//!   as its predecessor arrives; meanwhile the status reports the gap. A gap that never
//!   closes (the broker lost the event, or no longer has the start of the log) stays in
//!   the status until the model is rebuilt;
//! - the positions taken in (applied, parked, stepped over, or of streams the projection
//!   does not select) as ranges (`strata_remote_done`) above the watermark: the position
//!   through which every event is in. The relay publishes every position of the log, so
//!   the watermark is exact, and it is what [`RemoteReadSide::wait_for`] waits for;
//! - each partition's broker offset (`strata_remote_offsets`), where consuming resumes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension as _, Transaction, TransactionBehavior};
use serde::Serialize;
use strata_core::{Position, RecordedEvent};
use strata_projection::{FailurePolicy, SqliteProjection};
use strata_store::ReadFilter;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::{RelayError, RelayState, parse_envelope};

/// The most messages applied in one transaction.
const BATCH: usize = 256;
/// The first delay after a fault; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
/// The longest delay between sessions.
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// The most gaps a status lists.
const GAPS_LISTED: usize = 16;

/// One message as a broker delivered it.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The message body: an envelope.
    pub payload: Vec<u8>,
    /// The partition it came from (a Kafka partition; 0 for a JetStream stream).
    pub partition: u32,
    /// Where the broker keeps it in its partition: the JetStream stream sequence or the
    /// Kafka offset, increasing in delivery order.
    pub offset: u64,
}

/// A broker's side of a remote read model: the relay's messages, in the order of each
/// partition.
#[async_trait]
pub trait EnvelopeSource: Send + 'static {
    /// The broker's name (`nats`, `kafka`).
    fn broker(&self) -> &'static str;

    /// Where it consumes from, without credentials.
    fn target(&self) -> String;

    /// Drops any previous connection and opens a new one that delivers, in each
    /// partition, the messages after the offset `after` holds for it (the offsets the
    /// read model stored; a partition missing from it: from its first message).
    async fn connect(&mut self, after: &BTreeMap<u32, u64>) -> Result<(), RelayError>;

    /// Waits for the next messages (at least one, at most `max`), in each partition's
    /// order.
    async fn next(&mut self, max: usize) -> Result<Vec<Delivered>, RelayError>;

    /// The read model stored everything up to these offsets: the broker may forget it.
    async fn acknowledge(&mut self, offsets: &BTreeMap<u32, u64>) -> Result<(), RelayError>;
}

/// Where a remote read model stands.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct RemoteCheckpoint {
    /// Every event at or below this position is in the model (applied, parked, or not
    /// selected by it): what [`RemoteReadSide::wait_for`] waits for (0: nothing yet).
    pub watermark: Position,
    /// The highest position taken in (0: nothing yet). Events of other streams below it
    /// may still be on their way: the broker keeps order per stream only.
    pub position: Position,
    /// The broker offset of the last message taken in, per partition.
    pub offsets: BTreeMap<u32, u64>,
}

/// A stream whose next event is missing: later ones arrived and wait, unapplied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemoteGap {
    /// The stream.
    pub stream: String,
    /// The last version applied to the model.
    pub applied: u64,
    /// The lowest version held back.
    pub held_from: u64,
    /// How many of its events are held back.
    pub held: u64,
    /// The position of the earliest one held back.
    pub position: Position,
}

/// A read model kept in its own SQLite file, fed with envelopes: the projection's
/// tables and the read side's own (per-stream versions, held events, positions taken in,
/// broker offsets, parked events), each batch one transaction.
#[derive(Clone)]
pub struct RemoteReadModel {
    path: PathBuf,
    projection: Arc<dyn SqliteProjection>,
    conn: Arc<Mutex<Connection>>,
}

/// What applying one batch did.
#[derive(Debug, Clone, Default)]
pub(crate) struct Applied {
    pub(crate) checkpoint: RemoteCheckpoint,
    pub(crate) applied: u64,
    pub(crate) duplicates: u64,
    pub(crate) gaps: Vec<RemoteGap>,
    pub(crate) held: u64,
}

/// The table that names the projection and holds the watermark and highest position.
const CHECKPOINT: &str = "strata_remote_checkpoint";
/// Per stream the projection selects: the last version applied and its event id.
const STREAMS: &str = "strata_remote_streams";
/// Events that arrived before an earlier one of their stream, not applied yet.
const HELD: &str = "strata_remote_held";
/// Ranges of positions taken in above the watermark.
const DONE: &str = "strata_remote_done";
/// Per partition, the broker offset of the last message taken in.
const OFFSETS: &str = "strata_remote_offsets";
/// The table that holds events the projection refused under [`FailurePolicy::Park`].
const PARKED: &str = "strata_parked";
/// The layout of the read side's own tables. Layout 1 de-duplicated by position alone.
const LAYOUT: u32 = 2;

impl RemoteReadModel {
    /// Opens (creating it and the projection's tables if new) the read model at `path`.
    /// Blocking. A file built by another projection or version, or by an older layout
    /// of the read side's tables, is refused: delete it to build it again.
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
        let exists: bool = tx
            .query_row(
                &format!(
                    "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '{CHECKPOINT}')"
                ),
                [],
                |r| r.get(0),
            )
            .map_err(err)?;
        if exists {
            let has_layout: bool = tx
                .query_row(
                    &format!(
                        "SELECT EXISTS (SELECT 1 FROM pragma_table_info('{CHECKPOINT}') WHERE name = 'layout')"
                    ),
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
            let (name, version, layout): (String, u32, u32) = tx
                .query_row(
                    &format!(
                        "SELECT projection, version, {} FROM {CHECKPOINT} WHERE id = 0",
                        if has_layout { "layout" } else { "1" }
                    ),
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
                )
                .map_err(err)?;
            if name != projection.name() || version != projection.version() || layout != LAYOUT {
                return Err(RelayError::ReadModelMismatch {
                    path,
                    found: format!("{name} v{version} (read side layout {layout})"),
                    expected: format!(
                        "{} v{} (read side layout {LAYOUT})",
                        projection.name(),
                        projection.version()
                    ),
                });
            }
        } else {
            tx.execute_batch(&format!(
                "CREATE TABLE {CHECKPOINT} (
                     id INTEGER PRIMARY KEY CHECK (id = 0),
                     projection TEXT NOT NULL,
                     version INTEGER NOT NULL,
                     layout INTEGER NOT NULL,
                     watermark INTEGER NOT NULL,
                     position INTEGER NOT NULL
                 );
                 CREATE TABLE {STREAMS} (
                     stream TEXT PRIMARY KEY,
                     version INTEGER NOT NULL,
                     id TEXT NOT NULL
                 ) WITHOUT ROWID;
                 CREATE TABLE {HELD} (
                     stream TEXT NOT NULL,
                     version INTEGER NOT NULL,
                     position INTEGER NOT NULL,
                     id TEXT NOT NULL,
                     envelope BLOB NOT NULL,
                     PRIMARY KEY (stream, version)
                 ) WITHOUT ROWID;
                 CREATE TABLE {DONE} (
                     first INTEGER PRIMARY KEY,
                     last INTEGER NOT NULL
                 );
                 CREATE TABLE {OFFSETS} (
                     partition INTEGER PRIMARY KEY,
                     broker_offset INTEGER NOT NULL
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
                    "INSERT INTO {CHECKPOINT} (id, projection, version, layout, watermark, position)
                     VALUES (0, ?1, ?2, ?3, 0, 0)"
                ),
                rusqlite::params![projection.name(), projection.version(), LAYOUT],
            )
            .map_err(err)?;
            projection.migrate(&tx).map_err(err)?;
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
        let conn = self.conn.lock();
        read_checkpoint(&conn).map_err(|source| self.error(source))
    }

    /// The streams whose next event is missing (at most 16, earliest first) and how
    /// many events are held back in all. Blocking.
    pub fn gaps(&self) -> Result<(Vec<RemoteGap>, u64), RelayError> {
        let conn = self.conn.lock();
        read_gaps(&conn).map_err(|source| self.error(source))
    }

    /// Applies `messages` in one transaction with everything the read side keeps beside
    /// the model (see the module's documentation). Blocking.
    pub(crate) fn apply(&self, messages: &[Delivered]) -> Result<Applied, RelayError> {
        let mut events = Vec::with_capacity(messages.len());
        for message in messages {
            events.push(parse_envelope(&message.payload)?);
        }
        let mut conn = self.conn.lock();
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|source| self.error(source))?;
        let sql = |source| self.error(source);
        let mut batch = Batch {
            model: self,
            filter: self.projection.filter(),
            checkpoint: read_checkpoint(&tx).map_err(sql)?,
            done: read_done(&tx).map_err(sql)?,
            held_any: tx
                .query_row(&format!("SELECT EXISTS (SELECT 1 FROM {HELD})"), [], |r| {
                    r.get(0)
                })
                .map_err(sql)?,
            applied: 0,
            duplicates: 0,
            tx: &tx,
        };
        let mut offsets = BTreeMap::new();
        for (event, message) in events.into_iter().zip(messages) {
            offsets
                .entry(message.partition)
                .and_modify(|o: &mut u64| *o = (*o).max(message.offset))
                .or_insert(message.offset);
            batch.take(event, &message.payload)?;
        }
        let Batch {
            mut checkpoint,
            done,
            applied,
            duplicates,
            ..
        } = batch;
        checkpoint.watermark = Position(done.watermark);
        for (partition, offset) in &offsets {
            let stored = checkpoint.offsets.entry(*partition).or_insert(*offset);
            *stored = (*stored).max(*offset);
        }
        write_checkpoint(&tx, &checkpoint, &done).map_err(sql)?;
        let (gaps, held) = read_gaps(&tx).map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(Applied {
            checkpoint,
            applied,
            duplicates,
            gaps,
            held,
        })
    }

    fn error(&self, source: rusqlite::Error) -> RelayError {
        RelayError::Checkpoint {
            path: self.path.clone(),
            source,
        }
    }
}

/// The positions taken in: everything through `watermark`, and the ranges above it.
#[derive(Debug, Default)]
struct Done {
    watermark: u64,
    /// First position → last position of each range, none touching another or the
    /// watermark.
    ranges: BTreeMap<u64, u64>,
}

impl Done {
    fn contains(&self, position: u64) -> bool {
        position <= self.watermark
            || self
                .ranges
                .range(..=position)
                .next_back()
                .is_some_and(|(_, &last)| position <= last)
    }

    fn insert(&mut self, position: u64) {
        if self.contains(position) {
            return;
        }
        let mut first = position;
        let mut last = position;
        if let Some((&below, &end)) = self.ranges.range(..position).next_back()
            && end + 1 == position
        {
            self.ranges.remove(&below);
            first = below;
        }
        if let Some(end) = self.ranges.remove(&(position + 1)) {
            last = end;
        }
        if first == self.watermark + 1 {
            self.watermark = last;
        } else {
            self.ranges.insert(first, last);
        }
    }
}

/// One batch being applied, in its transaction.
struct Batch<'a> {
    model: &'a RemoteReadModel,
    filter: ReadFilter,
    checkpoint: RemoteCheckpoint,
    done: Done,
    held_any: bool,
    applied: u64,
    duplicates: u64,
    tx: &'a Transaction<'a>,
}

impl Batch<'_> {
    fn sql(&self, source: rusqlite::Error) -> RelayError {
        self.model.error(source)
    }

    /// Takes in one delivered event: a duplicate, the next of its stream (applied, with
    /// any held successors), or early (held).
    fn take(&mut self, event: RecordedEvent, envelope: &[u8]) -> Result<(), RelayError> {
        if !selects_stream(&self.filter, event.stream.as_str()) {
            // NOTE: nothing of such a stream is applied, so its order does not matter;
            // only its position counts, for the watermark.
            if self.done.contains(event.position.0) {
                self.duplicates += 1;
            } else {
                self.done.insert(event.position.0);
                self.checkpoint.position = self.checkpoint.position.max(event.position);
            }
            return Ok(());
        }
        let stream = event.stream.as_str();
        let (last, last_id) = self.last_applied(stream)?;
        let version = event.version.0;
        if version <= last {
            if version == last && last_id != event.id.to_string() {
                return Err(RelayError::ForeignEvent {
                    stream: stream.to_owned(),
                    version,
                    applied: last_id,
                    delivered: event.id.to_string(),
                });
            }
            self.duplicates += 1;
            return Ok(());
        }
        if version > last + 1 {
            return self.hold(&event, envelope);
        }
        self.apply_in_order(event)
    }

    /// The last version of `stream` applied and its event id (0 and "" for none).
    fn last_applied(&self, stream: &str) -> Result<(u64, String), RelayError> {
        let row: Option<(i64, String)> = self
            .tx
            .prepare_cached(&format!(
                "SELECT version, id FROM {STREAMS} WHERE stream = ?1"
            ))
            .and_then(|mut s| {
                s.query_row([stream], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()
            })
            .map_err(|e| self.sql(e))?;
        Ok(row.map_or((0, String::new()), |(v, id)| {
            (u64::try_from(v).unwrap_or(0), id)
        }))
    }

    /// Keeps an early event until its predecessor is applied.
    fn hold(&mut self, event: &RecordedEvent, envelope: &[u8]) -> Result<(), RelayError> {
        let held: Option<String> = self
            .tx
            .prepare_cached(&format!(
                "SELECT id FROM {HELD} WHERE stream = ?1 AND version = ?2"
            ))
            .and_then(|mut s| {
                s.query_row(
                    rusqlite::params![event.stream.as_str(), to_sql(event.version.0)],
                    |r| r.get(0),
                )
                .optional()
            })
            .map_err(|e| self.sql(e))?;
        match held {
            Some(id) if id == event.id.to_string() => self.duplicates += 1,
            Some(id) => {
                return Err(RelayError::ForeignEvent {
                    stream: event.stream.as_str().to_owned(),
                    version: event.version.0,
                    applied: id,
                    delivered: event.id.to_string(),
                });
            }
            None => {
                self.tx
                    .prepare_cached(&format!(
                        "INSERT INTO {HELD} (stream, version, position, id, envelope)
                         VALUES (?1, ?2, ?3, ?4, ?5)"
                    ))
                    .and_then(|mut s| {
                        s.execute(rusqlite::params![
                            event.stream.as_str(),
                            to_sql(event.version.0),
                            to_sql(event.position.0),
                            event.id.to_string(),
                            envelope,
                        ])
                    })
                    .map_err(|e| self.sql(e))?;
                self.held_any = true;
            }
        }
        Ok(())
    }

    /// Applies `event`, the next of its stream, then any held successors.
    fn apply_in_order(&mut self, mut event: RecordedEvent) -> Result<(), RelayError> {
        loop {
            if self
                .filter
                .matches(&event.stream, event.event_type.as_str())
            {
                self.model.apply_one(self.tx, &event)?;
                self.applied += 1;
            }
            self.tx
                .prepare_cached(&format!(
                    "INSERT INTO {STREAMS} (stream, version, id) VALUES (?1, ?2, ?3)
                     ON CONFLICT (stream) DO UPDATE SET version = excluded.version, id = excluded.id"
                ))
                .and_then(|mut s| {
                    s.execute(rusqlite::params![
                        event.stream.as_str(),
                        to_sql(event.version.0),
                        event.id.to_string(),
                    ])
                })
                .map_err(|e| self.sql(e))?;
            self.done.insert(event.position.0);
            self.checkpoint.position = self.checkpoint.position.max(event.position);
            if !self.held_any {
                return Ok(());
            }
            let next: Option<Vec<u8>> = self
                .tx
                .prepare_cached(&format!(
                    "DELETE FROM {HELD} WHERE stream = ?1 AND version = ?2 RETURNING envelope"
                ))
                .and_then(|mut s| {
                    s.query_row(
                        rusqlite::params![event.stream.as_str(), to_sql(event.version.0 + 1)],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .map_err(|e| self.sql(e))?;
            match next {
                Some(envelope) => event = parse_envelope(&envelope)?,
                None => return Ok(()),
            }
        }
    }
}

/// Whether `filter` can select any event of `stream` (its category is selected).
fn selects_stream(filter: &ReadFilter, stream: &str) -> bool {
    let category = stream.split_once('-').map_or(stream, |(c, _)| c);
    filter.categories.is_empty() || filter.categories.iter().any(|c| c == category)
}

/// A position, version or offset as SQLite stores it.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A stored position, version or offset.
fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn read_checkpoint(conn: &Connection) -> rusqlite::Result<RemoteCheckpoint> {
    let (watermark, position) = conn.query_row(
        &format!("SELECT watermark, position FROM {CHECKPOINT} WHERE id = 0"),
        [],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)),
    )?;
    let mut statement =
        conn.prepare_cached(&format!("SELECT partition, broker_offset FROM {OFFSETS}"))?;
    let offsets = statement
        .query_map([], |r| {
            Ok((
                u32::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
                from_sql(r.get(1)?),
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(RemoteCheckpoint {
        watermark: Position(from_sql(watermark)),
        position: Position(from_sql(position)),
        offsets,
    })
}

fn read_done(conn: &Connection) -> rusqlite::Result<Done> {
    let watermark: i64 = conn.query_row(
        &format!("SELECT watermark FROM {CHECKPOINT} WHERE id = 0"),
        [],
        |r| r.get(0),
    )?;
    let mut statement = conn.prepare_cached(&format!("SELECT first, last FROM {DONE}"))?;
    let ranges = statement
        .query_map([], |r| Ok((from_sql(r.get(0)?), from_sql(r.get(1)?))))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(Done {
        watermark: from_sql(watermark),
        ranges,
    })
}

fn write_checkpoint(
    tx: &Transaction<'_>,
    checkpoint: &RemoteCheckpoint,
    done: &Done,
) -> rusqlite::Result<()> {
    tx.execute(
        &format!("UPDATE {CHECKPOINT} SET watermark = ?1, position = ?2 WHERE id = 0"),
        rusqlite::params![to_sql(done.watermark), to_sql(checkpoint.position.0)],
    )?;
    // NOTE: the ranges are few (holes between partitions' progress, or events missing
    // from the broker), so they are written whole.
    tx.execute(&format!("DELETE FROM {DONE}"), [])?;
    let mut insert =
        tx.prepare_cached(&format!("INSERT INTO {DONE} (first, last) VALUES (?1, ?2)"))?;
    for (first, last) in &done.ranges {
        insert.execute([to_sql(*first), to_sql(*last)])?;
    }
    let mut offset = tx.prepare_cached(&format!(
        "INSERT INTO {OFFSETS} (partition, broker_offset) VALUES (?1, ?2)
         ON CONFLICT (partition) DO UPDATE SET broker_offset = excluded.broker_offset"
    ))?;
    for (partition, value) in &checkpoint.offsets {
        offset.execute([i64::from(*partition), to_sql(*value)])?;
    }
    Ok(())
}

fn read_gaps(conn: &Connection) -> rusqlite::Result<(Vec<RemoteGap>, u64)> {
    let held: i64 = conn.query_row(&format!("SELECT count(*) FROM {HELD}"), [], |r| r.get(0))?;
    if held == 0 {
        return Ok((Vec::new(), 0));
    }
    let mut statement = conn.prepare_cached(&format!(
        "SELECT h.stream, coalesce(s.version, 0), min(h.version), count(*), min(h.position)
         FROM {HELD} h LEFT JOIN {STREAMS} s ON s.stream = h.stream
         GROUP BY h.stream ORDER BY min(h.position) LIMIT {GAPS_LISTED}"
    ))?;
    let gaps = statement
        .query_map([], |r| {
            Ok(RemoteGap {
                stream: r.get(0)?,
                applied: from_sql(r.get(1)?),
                held_from: from_sql(r.get(2)?),
                held: from_sql(r.get(3)?),
                position: Position(from_sql(r.get(4)?)),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok((gaps, from_sql(held)))
}

impl RemoteReadModel {
    /// Applies one event under the projection's failure policy.
    fn apply_one(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), RelayError> {
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
                        to_sql(event.position.0),
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
    /// The watermark, the highest position taken in and the broker offsets stored with
    /// them.
    pub checkpoint: RemoteCheckpoint,
    /// What it is doing: `connecting`, `live` (consuming), `retrying`, `stopped`,
    /// `failed`.
    pub state: RelayState,
    /// The last fault it met, if any since it last applied a batch; or, while events
    /// are held back, the gap that holds them.
    pub last_error: Option<String>,
    /// Streams whose next event has not arrived while later ones did (at most 16,
    /// earliest first): those later ones are held back, unapplied, and the watermark
    /// stays below them until the missing event comes.
    pub gaps: Vec<RemoteGap>,
    /// Events held back in all.
    pub held: u64,
    /// Events applied since it started.
    pub applied: u64,
    /// Messages skipped since it started because their event was already taken in.
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
        let (gaps, held) = model.gaps()?;
        let (tx, status) = watch::channel(RemoteStatus {
            name: name.to_owned(),
            broker: source.broker(),
            target: source.target(),
            checkpoint,
            state: RelayState::Connecting,
            last_error: gap_error(&gaps, held),
            gaps,
            held,
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

    /// Waits until every event at or below `position` is in the read model (its
    /// watermark reached `position`): then a query sees every effect of the events up
    /// to `position` that the projection selects — the read-your-writes a command's
    /// position promises. An event missing from the broker holds the watermark, so the
    /// wait then ends in [`RelayError::Timeout`], never with an answer that lacks it.
    pub async fn wait_for(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<RemoteStatus, RelayError> {
        let mut status = self.status.clone();
        // The guard the wait answers is dropped at once: `status()` reads the same value.
        let _ = tokio::time::timeout(
            timeout,
            status
                .wait_for(|s| s.checkpoint.watermark >= position || s.state == RelayState::Failed),
        )
        .await
        .map(|reached| reached.is_ok());
        let now = self.status();
        if now.checkpoint.watermark >= position {
            Ok(now)
        } else if now.state == RelayState::Failed {
            Err(RelayError::Stopped {
                name: now.name,
                cause: now.last_error.unwrap_or_default(),
            })
        } else {
            Err(RelayError::Timeout {
                name: now.name,
                position,
                checkpoint: now.checkpoint.watermark,
            })
        }
    }

    /// Stops after the current batch, its checkpoint stored.
    pub async fn shutdown(self) {
        self.stop.send_replace(true);
        let _ = self.task.await;
    }
}

/// What the status says while events are held back.
fn gap_error(gaps: &[RemoteGap], held: u64) -> Option<String> {
    let first = gaps.first()?;
    Some(format!(
        "{held} events held back: stream {} lacks version {} (applied through {}, holds from version {} at position {}){}",
        first.stream,
        first.applied + 1,
        first.applied,
        first.held_from,
        first.position,
        if gaps.len() > 1 {
            format!(", and {} more streams wait", gaps.len() - 1)
        } else {
            String::new()
        }
    ))
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
            RelayError::InvalidEnvelope(_)
                | RelayError::Apply { .. }
                | RelayError::ForeignEvent { .. }
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
    if let Err(err) = source.connect(&checkpoint.offsets).await {
        return Some(err);
    }
    status.send_modify(|s| s.state = RelayState::Live);
    loop {
        let messages = tokio::select! {
            next = source.next(BATCH) => next,
            _ = stop.wait_for(|s| *s) => return None,
        };
        let messages = match messages {
            Ok(m) if m.is_empty() => continue,
            Ok(m) => m,
            Err(err) => return Some(err),
        };
        let applied = match blocking(model, move |m| m.apply(&messages)).await {
            Ok(a) => a,
            Err(err) => return Some(err),
        };
        let offsets = applied.checkpoint.offsets.clone();
        // The batch is committed: the status says so even if the acknowledgement fails.
        status.send_modify(|s| {
            s.checkpoint = applied.checkpoint;
            s.applied += applied.applied;
            s.duplicates += applied.duplicates;
            s.last_error = gap_error(&applied.gaps, applied.held);
            s.gaps = applied.gaps;
            s.held = applied.held;
        });
        // NOTE: only after the read model committed; a lost acknowledgement means a
        // redelivery, which the read model then skips.
        if let Err(err) = source.acknowledge(&offsets).await {
            return Some(err);
        }
        *delay = BACKOFF_FIRST;
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
