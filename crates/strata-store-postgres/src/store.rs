//! [`PostgresStore`]: the [`EventStore`] contract on PostgreSQL. It owns the connection
//! pool, the append protocol and the mapping between rows and events; it does not own
//! the schema (see `migrate`) nor the head follower's connection (see `follow`).

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use parking_lot::Mutex;
use strata_core::{
    EventId, EventType, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName, Timestamp,
    Version,
};
use strata_store::{
    AllPage, AppendCheck, AppendResult, DEFAULT_MAX_EVENT_BYTES, Direction, EventStore,
    EventStream, ReadFilter, StoreError, StreamSummary, catch_up_subscription, check_append,
    check_event_sizes, check_unique_ids,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::AbortHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::FromSql;
use tokio_postgres::{NoTls, Row};

use crate::{PostgresError, follow, group, migrate, reads, replica, sql};

/// How a [`PostgresStore`] connects and what it allows.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The most pooled connections the store opens (the head follower's LISTEN
    /// connection is one more).
    pub max_connections: usize,
    /// The largest event accepted (type, data and metadata bytes).
    pub max_event_bytes: usize,
    /// How often the head is polled when no notification arrives: the most a
    /// subscriber waits for another process's commit if notifications are lost.
    pub poll_interval: Duration,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            max_connections: 16,
            max_event_bytes: DEFAULT_MAX_EVENT_BYTES,
            poll_interval: Duration::from_millis(500),
        }
    }
}

/// How many times an append re-decides after losing a race to another append before it
/// reports an internal fault. Every lost race means another append committed, so this
/// bounds only pathological contention.
const MAX_APPEND_ATTEMPTS: usize = 1000;

/// Appends waiting for the group committer (and reads for the read batcher) before
/// callers wait to hand theirs over.
const COMMITTER_QUEUE: usize = 4096;

/// Which server a [`PostgresStore`] handle is opened on.
pub(crate) enum Role {
    /// The primary: the schema is migrated and the head followed with LISTEN/NOTIFY.
    Primary,
    /// A hot standby of the primary, which only reads: nothing is migrated (the caller
    /// waited for the schema to be replayed) and the head is polled, since NOTIFY does
    /// not reach a standby; faster while the primary's head is ahead of it.
    Standby {
        /// The primary's watched head.
        primary_head: watch::Receiver<Position>,
    },
}

/// An event store in a PostgreSQL database, in its own `strata` schema. Cloning gives
/// another handle to the same store; any number of processes may open the same database.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    config: tokio_postgres::Config,
    /// The watched head; `None` once closed, so that (with the follower's clone gone)
    /// every watcher sees the channel close and every subscription ends.
    head: Mutex<Option<watch::Sender<Position>>>,
    follower: AbortHandle,
    /// The group committer's queue; the committer ends when the last handle is gone.
    committer: mpsc::Sender<group::Request>,
    /// The read batcher's queue; it ends when the last handle is gone.
    reader: mpsc::Sender<reads::Read>,
    closed: AtomicBool,
    max_event_bytes: usize,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a key-value connection
    /// string), migrates the schema to this build's version, and starts following the
    /// head. Needs a Tokio runtime.
    pub async fn connect(url: &str, options: PostgresOptions) -> Result<Self, PostgresError> {
        let config = tokio_postgres::Config::from_str(url).map_err(PostgresError::InvalidUrl)?;
        Self::connect_with(config, options).await
    }

    /// Like [`PostgresStore::connect`], from a parsed configuration.
    pub async fn connect_with(
        config: tokio_postgres::Config,
        options: PostgresOptions,
    ) -> Result<Self, PostgresError> {
        Self::open(config, options, Role::Primary).await
    }

    /// Opens a handle on the server `role` names (see [`Role`]).
    pub(crate) async fn open(
        config: tokio_postgres::Config,
        options: PostgresOptions,
        role: Role,
    ) -> Result<Self, PostgresError> {
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(1))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|err| PostgresError::Pool(err.to_string()))?;
        let head = {
            let mut client = pool
                .get()
                .await
                .map_err(|err| PostgresError::Connect(err.to_string()))?;
            if let Role::Primary = role {
                migrate::migrate(&mut client).await?;
            }
            let row = client
                .query_one(sql::HEAD, &[])
                .await
                .map_err(PostgresError::Migrate)?;
            position_of(row.try_get(0).map_err(PostgresError::Migrate)?)
        };
        let (head, _) = watch::channel(head);
        let follower = match role {
            Role::Primary => tokio::spawn(follow::follow_head(
                config.clone(),
                pool.clone(),
                head.clone(),
                options.poll_interval,
            )),
            Role::Standby { primary_head } => tokio::spawn(replica::follow_standby(
                pool.clone(),
                head.clone(),
                primary_head,
                options.poll_interval,
            )),
        }
        .abort_handle();
        let (committer, requests) = mpsc::channel(COMMITTER_QUEUE);
        tokio::spawn(group::run(pool.clone(), requests));
        let (reader, waiting_reads) = mpsc::channel(COMMITTER_QUEUE);
        tokio::spawn(reads::run(pool.clone(), waiting_reads));
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                config,
                head: Mutex::new(Some(head)),
                follower,
                committer,
                reader,
                closed: AtomicBool::new(false),
                max_event_bytes: options.max_event_bytes,
            }),
        })
    }

    /// The connection settings this store was opened with.
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.inner.config
    }

    /// Closes the store: every handle's later operations fail with
    /// [`StoreError::Closed`], pooled connections close as they are returned, the head
    /// follower stops, and subscriptions end with `Closed` once they have yielded what
    /// they had fetched.
    pub fn close(&self) {
        self.inner.closed.store(true, Ordering::SeqCst);
        self.inner.pool.close();
        self.inner.follower.abort();
        self.inner.head.lock().take();
    }

    /// Raises the watched head to `position`; nothing once closed.
    fn publish(&self, position: Position) {
        if let Some(head) = self.inner.head.lock().as_ref() {
            follow::publish(head, position);
        }
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.inner.pool.get().await.map_err(|err| match err {
            PoolError::Closed => StoreError::Closed,
            other => StoreError::Backend(Box::new(other)),
        })
    }

    /// One attempt at deciding an append: the stream's state and, when the append may be
    /// a repeat, the ids of the versions it would repeat.
    async fn decide(
        &self,
        client: &deadpool_postgres::Object,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendCheck, StoreError> {
        let Some(first) = events.first() else {
            return Ok(AppendCheck::Refuse(StoreError::InvalidAppend {
                stream: stream.clone(),
                reason: "an append needs at least one event".to_owned(),
            }));
        };
        let statement = client
            .prepare_cached(sql::APPEND_STATE)
            .await
            .map_err(backend)?;
        let row = client
            .query_one(&statement, &[&stream.as_str(), &first.id.0])
            .await
            .map_err(backend)?;
        let current = Version(version_of(column(&row, 0)?));
        let first_id_version: Option<i64> = column(&row, 1)?;
        let first_id_version = first_id_version.map(|v| Version(version_of(v)));
        // Where a repeat of these events would start, as `check_append` will reason.
        let repeat_start = match expected.exact() {
            Some(v) if v < current.0 => Some(v + 1),
            Some(_) => None,
            None => first_id_version.map(|v| v.0),
        };
        let mut known = Vec::new();
        if let Some(start) = repeat_start {
            let end = (start + events.len() as u64 - 1).min(current.0);
            if start <= end {
                let statement = client
                    .prepare_cached(sql::STREAM_IDS)
                    .await
                    .map_err(backend)?;
                let rows = client
                    .query(
                        &statement,
                        &[&stream.as_str(), &to_i64(start), &to_i64(end)],
                    )
                    .await
                    .map_err(backend)?;
                for row in rows {
                    known.push((
                        Version(version_of(column(&row, 0)?)),
                        EventId(column(&row, 1)?),
                        position_of(column(&row, 2)?),
                        Timestamp::from_datetime(column(&row, 3)?),
                    ));
                }
            }
        }
        check_append(
            stream,
            expected,
            current,
            events,
            |version| {
                known
                    .iter()
                    .find(|(v, _, _, _)| *v == version)
                    .map(|(_, id, position, at)| (*id, *position, *at))
                    .ok_or_else(|| {
                        StoreError::internal(format!(
                            "stream {stream} is at version {current} but its version {version} was not read"
                        ))
                    })
            },
            |id| {
                Ok(if id == first.id {
                    first_id_version
                } else {
                    None
                })
            },
        )
    }

    /// The refusal of an append the event-id index refused twice against one version:
    /// the stored event holding one of its ids.
    async fn reused_id(
        &self,
        client: &deadpool_postgres::Object,
        stream: &StreamName,
        events: &[NewEvent],
    ) -> Result<StoreError, StoreError> {
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id.0).collect();
        let statement = client
            .prepare_cached(sql::FIRST_HOLDER)
            .await
            .map_err(backend)?;
        let row = client
            .query_opt(&statement, &[&ids])
            .await
            .map_err(backend)?
            .ok_or_else(|| {
                StoreError::internal(format!(
                    "an append to stream {stream} was refused by the event-id index, \
                     but no stored event holds its ids"
                ))
            })?;
        Ok(StoreError::DuplicateEventId {
            stream: stream.clone(),
            id: EventId(column(&row, 0)?),
            existing: Some(position_of(column(&row, 1)?)),
        })
    }

    /// Writes an append decided against version `current`. `Ok(Err(constraint))`: the
    /// named unique index refused it, so another append raced this one's decision.
    async fn write(
        &self,
        client: &deadpool_postgres::Object,
        stream: &StreamName,
        current: Version,
        events: &[NewEvent],
    ) -> Result<Result<AppendResult, String>, StoreError> {
        let ids: Vec<uuid::Uuid> = events.iter().map(|e| e.id.0).collect();
        let types: Vec<&str> = events.iter().map(|e| e.event_type.as_str()).collect();
        let data: Vec<&[u8]> = events.iter().map(|e| e.data.as_ref()).collect();
        let metadata: Vec<&[u8]> = events.iter().map(|e| e.metadata.as_ref()).collect();
        let count = events.len() as u64;
        let statement = client
            .prepare_cached(sql::APPEND_WRITE)
            .await
            .map_err(backend)?;
        let result = client
            .query_one(
                &statement,
                &[
                    &stream.as_str(),
                    &to_i64(current.0),
                    &ids,
                    &types,
                    &data,
                    &to_i64(count),
                    &stream.category(),
                    &metadata,
                ],
            )
            .await;
        match result {
            Ok(row) => {
                let base = position_of(column(&row, 0)?).0;
                Ok(Ok(AppendResult {
                    first_version: Version(current.0 + 1),
                    last_version: Version(current.0 + count),
                    first_position: Position(base + 1),
                    position: Position(base + count),
                    recorded_at: Timestamp::from_datetime(column(&row, 2)?),
                }))
            }
            Err(err) => match err.as_db_error() {
                Some(db) if *db.code() == SqlState::UNIQUE_VIOLATION => {
                    Ok(Err(db.constraint().unwrap_or_default().to_owned()))
                }
                _ => Err(backend(err)),
            },
        }
    }
    /// Hands a read to the read batcher.
    async fn read(&self, read: reads::Read) -> Result<(), StoreError> {
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        self.inner
            .reader
            .send(read)
            .await
            .map_err(|_| StoreError::Closed)
    }

    /// An append on its own: decided without locks, written by one autocommitted
    /// statement, decided again when a unique index says another append raced it. The
    /// group committer sends here what it cannot decide in a group.
    async fn append_alone(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: &[NewEvent],
    ) -> Result<AppendResult, StoreError> {
        let client = self.client().await?;
        // The version a write refused by the event-id index was decided against.
        let mut refused_by_id_at = None;
        for _ in 0..MAX_APPEND_ATTEMPTS {
            let current = match self.decide(&client, stream, expected, events).await? {
                AppendCheck::Refuse(err) => return Err(err),
                AppendCheck::AlreadyAppended(result) => return Ok(result),
                AppendCheck::Write { current } => current,
            };
            match self.write(&client, stream, current, events).await? {
                Ok(result) => {
                    // Every position below this one has committed (the head row was
                    // held until this commit), so it is safe to publish.
                    self.publish(result.position);
                    return Ok(result);
                }
                Err(constraint) if constraint == "events_id_key" => {
                    // One of these ids is already stored, but not where a repeat would
                    // put it (or a racing append stored it first: deciding again tells a
                    // repeat). Refused again against the same version, that is final.
                    if refused_by_id_at == Some(current) {
                        return Err(self.reused_id(&client, stream, events).await?);
                    }
                    refused_by_id_at = Some(current);
                }
                // Another append took these versions: decide again against the new state
                // (which may now be a conflict, a repeat, or for `Any` another write).
                Err(_) => {}
            }
        }
        Err(StoreError::internal(format!(
            "an append to stream {stream} lost {MAX_APPEND_ATTEMPTS} races in a row"
        )))
    }
}

#[async_trait]
impl EventStore for PostgresStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        check_event_sizes(stream, &events, self.inner.max_event_bytes)?;
        // One id given to two of these events; ids stored already are the unique index's.
        check_unique_ids(stream, &events, |_| Ok(None))?;
        if self.inner.closed.load(Ordering::SeqCst) {
            return Err(StoreError::Closed);
        }
        let (reply, answer) = oneshot::channel();
        let request = group::Request {
            stream: stream.clone(),
            expected,
            events,
            reply,
        };
        self.inner
            .committer
            .send(request)
            .await
            .map_err(|_| StoreError::Closed)?;
        match answer.await.map_err(|_| StoreError::Closed)? {
            group::Outcome::Done(result) => {
                if let Ok(appended) = &result {
                    // Every position below this one has committed (the group held the
                    // head row until its commit), so it is safe to publish.
                    self.publish(appended.position);
                }
                result
            }
            group::Outcome::Alone(events) => self.append_alone(stream, expected, &events).await,
        }
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Version>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        if direction == Direction::Forward {
            let (reply, answer) = oneshot::channel();
            self.read(reads::Read::Forward {
                stream: stream.clone(),
                from: to_i64(from.map_or(1, |v| v.0)),
                max_events: to_i64(limit as u64),
                reply,
            })
            .await?;
            return answer.await.map_err(|_| StoreError::Closed)?;
        }
        let client = self.client().await?;
        let from = from.map_or(u64::MAX, |v| v.0);
        let statement = client
            .prepare_cached(sql::READ_BACKWARD)
            .await
            .map_err(backend)?;
        let rows = client
            .query(
                &statement,
                &[&stream.as_str(), &to_i64(from), &to_i64(limit as u64)],
            )
            .await
            .map_err(backend)?;
        rows.iter().map(|row| row_to_event(row, 0)).collect()
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<AllPage, StoreError> {
        let start = from.0.max(1);
        if limit == 0 {
            return Ok(AllPage {
                events: Vec::new(),
                next: Position(start),
            });
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql::READ_ALL)
            .await
            .map_err(backend)?;
        let rows = client
            .query(
                &statement,
                &[
                    &to_i64(start),
                    &filter.categories,
                    &filter.event_types,
                    &to_i64(limit as u64),
                ],
            )
            .await
            .map_err(backend)?;
        let first = rows
            .first()
            .ok_or_else(|| StoreError::internal("the strata.head row is missing"))?;
        let head = position_of(column(first, 0)?);
        let mut events = Vec::with_capacity(rows.len());
        for row in &rows {
            let position: Option<i64> = column(row, 1)?;
            if position.is_some() {
                events.push(row_to_event(row, 1)?);
            }
        }
        // A full page stops at its last event; a short one examined everything up to the
        // head of its snapshot.
        let next = match events.last() {
            Some(last) if events.len() >= limit => last.position.0 + 1,
            _ => head.0 + 1,
        };
        Ok(AllPage {
            events,
            next: Position(next.max(start)),
        })
    }

    async fn event_by_id(
        &self,
        stream: &StreamName,
        id: EventId,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.read(reads::Read::ById {
            stream: stream.clone(),
            id: id.0,
            reply,
        })
        .await?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Version, StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql::STREAM_VERSION)
            .await
            .map_err(backend)?;
        let row = client
            .query_one(&statement, &[&stream.as_str()])
            .await
            .map_err(backend)?;
        Ok(Version(version_of(column(&row, 0)?)))
    }

    async fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let client = self.client().await?;
        let statement = client
            .prepare_cached(sql::LIST_STREAMS)
            .await
            .map_err(backend)?;
        let upper = prefix_successor(prefix);
        let rows = client
            .query(
                &statement,
                &[&prefix, &after, &upper, &to_i64(limit as u64)],
            )
            .await
            .map_err(backend)?;
        rows.iter()
            .map(|row| {
                let name: &str = column(row, 0)?;
                Ok(StreamSummary {
                    stream: stored_name(name)?,
                    version: Version(version_of(column(row, 1)?)),
                    last_position: position_of(column(row, 2)?),
                })
            })
            .collect()
    }

    async fn head(&self) -> Result<Position, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql::HEAD).await.map_err(backend)?;
        let row = client.query_one(&statement, &[]).await.map_err(backend)?;
        let head = position_of(column(&row, 0)?);
        self.publish(head);
        Ok(head)
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        match self.inner.head.lock().as_ref() {
            Some(head) => head.subscribe(),
            // Closed: a watch whose sender is already gone.
            None => watch::channel(Position::ZERO).1,
        }
    }

    fn subscribe(&self, after: Position, filter: ReadFilter) -> EventStream {
        catch_up_subscription(self.clone(), after, filter)
    }
}

/// The smallest string above every string that starts with `prefix`, in byte order:
/// the prefix with its last character incremented, after dropping trailing characters
/// that have no successor. `None` when there is no such bound (an empty prefix, or one
/// made only of `char::MAX`).
pub(crate) fn prefix_successor(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        // UTF-8 byte order is code point order, and no string holds a surrogate, so the
        // next scalar value is the next character any name can have.
        let next = (u32::from(last) + 1..=u32::from(char::MAX)).find_map(char::from_u32);
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

pub(crate) fn row_to_event(row: &Row, offset: usize) -> Result<RecordedEvent, StoreError> {
    let position: i64 = column(row, offset)?;
    let stream: &str = column(row, offset + 1)?;
    let version: i64 = column(row, offset + 2)?;
    let id: uuid::Uuid = column(row, offset + 3)?;
    let event_type: &str = column(row, offset + 4)?;
    let data: &[u8] = column(row, offset + 5)?;
    let metadata: &[u8] = column(row, offset + 6)?;
    let recorded_at: time::OffsetDateTime = column(row, offset + 7)?;
    Ok(RecordedEvent {
        position: position_of(position),
        stream: stored_name(stream)?,
        version: Version(version_of(version)),
        id: EventId(id),
        event_type: EventType::new(event_type).map_err(|err| {
            StoreError::internal_from(format!("stored event at position {position}"), err)
        })?,
        data: Bytes::copy_from_slice(data),
        metadata: Bytes::copy_from_slice(metadata),
        recorded_at: Timestamp::from_datetime(recorded_at),
    })
}

/// Column `index` of a row the store's own SQL returned. A type that does not match means
/// the schema is not the one the migrations made (another client altered it): an
/// internal fault to report, not a panic.
pub(crate) fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> Result<T, StoreError> {
    row.try_get(index).map_err(|err| {
        StoreError::internal_from(format!("column {index} of a row of the strata schema"), err)
    })
}

fn stored_name(name: &str) -> Result<StreamName, StoreError> {
    StreamName::new(name).map_err(|err| StoreError::internal_from("stored stream name", err))
}

/// Positions and versions are stored as `bigint`; the store only writes non-negative ones.
fn position_of(value: i64) -> Position {
    Position(u64::try_from(value).unwrap_or(0))
}

fn version_of(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A count or bound as a `bigint`, saturating (no stored value comes near `i64::MAX`).
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn backend(err: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(Box::new(err))
}
