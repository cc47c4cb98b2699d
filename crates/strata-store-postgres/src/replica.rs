//! [`ReplicatedStore`]: one event store over a PostgreSQL primary and a hot standby of it
//! (physical streaming replication). It owns the routing (appends to the primary; reads,
//! the head and subscriptions to the standby), the check that the standby is a copy of
//! the primary that has caught up, and the standby's head follower. It never writes to
//! the standby and holds no SQL of the log beyond the head probe.
//!
//! Why a subscription on the standby is as gap-safe as on the primary: an append's
//! events, its stream row and the head row commit in one transaction, and appends commit
//! in position order (the head row's lock is held to commit). The standby replays the
//! primary's WAL in order and a transaction becomes visible there when its commit record
//! is replayed, so every snapshot on the standby sees a prefix of the primary's commits:
//! a prefix of the positions, with the head row saying where it ends. Reading the log and
//! the head in one snapshot (as `read_all` does) therefore never shows a position above
//! a missing one, on either server.

use std::str::FromStr as _;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::Pool;
use strata_core::{
    EventId, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName, Version,
};
use strata_store::{
    AllPage, AppendResult, Direction, EventStore, EventStream, ReadFilter, StoreError,
    StreamSummary,
};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_postgres::NoTls;

use crate::store::Role;
use crate::{PostgresError, PostgresOptions, PostgresStore, follow, migrate, sql};

/// How a [`ReplicatedStore`] connects.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReplicaOptions {
    /// The options of both handles, the primary's and the standby's. Their
    /// `poll_interval` is also how often the standby's head is read while it is not
    /// behind the primary's known head.
    pub store: PostgresOptions,
    /// How long opening waits for the standby to have the database, the schema, and the
    /// primary's head as of opening.
    pub catch_up_timeout: Duration,
}

impl Default for ReplicaOptions {
    fn default() -> Self {
        Self {
            store: PostgresOptions::default(),
            catch_up_timeout: Duration::from_secs(30),
        }
    }
}

/// Why [`ReplicatedStore::wait_replayed`] returned without the position replayed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReplayError {
    /// The standby had not replayed `position` when the wait ran out. Retry later, or
    /// answer that the read side is behind.
    #[error("the standby has replayed position {replayed}, not yet {position}, after {waited:?}")]
    Lagging {
        /// The position waited for.
        position: Position,
        /// The standby's head when the wait ran out.
        replayed: Position,
        /// How long it waited.
        waited: Duration,
    },
    /// The store was closed while waiting.
    #[error("the store was closed")]
    Closed,
}

/// The shortest pause between two reads of the standby's head while it is behind the
/// primary's. Replay waits for the standby's own WAL flush, a few milliseconds.
const CHASE_MIN: Duration = Duration::from_millis(2);

/// The longest pause between two reads of the standby's head while it is behind the
/// primary's and makes no progress (the pause doubles from [`CHASE_MIN`]); never more
/// than the poll interval.
const CHASE_MAX: Duration = Duration::from_millis(16);

/// An event store whose appends go to a PostgreSQL primary and whose reads, head and
/// subscriptions are served by a hot standby of it.
///
/// Reads are as fresh as the standby's replay: an append acknowledged by the primary is
/// readable here once the standby has replayed it ([`ReplicatedStore::wait_replayed`]
/// waits for that). Loads that decide commands must read the primary
/// ([`ReplicatedStore::primary`]): a decision on a stale stream only conflicts, or
/// decides on a state that is gone. Idempotent repeats, conflicts and event-id checks
/// are decided by the primary. Cloning gives another handle to the same pair.
#[derive(Clone)]
pub struct ReplicatedStore {
    primary: PostgresStore,
    standby: PostgresStore,
}

impl ReplicatedStore {
    /// Opens the primary at `primary` (migrating its schema) and the standby at
    /// `standby` (both `postgres://` URLs or key-value connection strings, naming the same
    /// database), then waits, up to the options' `catch_up_timeout`, until the standby is
    /// a copy of the primary (the same system identifier), holds the schema, and has
    /// replayed the primary's head as of opening, so that no checkpoint taken from the
    /// primary before is ahead of what the standby shows. Needs a Tokio runtime.
    pub async fn connect(
        primary: &str,
        standby: &str,
        options: ReplicaOptions,
    ) -> Result<Self, PostgresError> {
        let primary =
            tokio_postgres::Config::from_str(primary).map_err(PostgresError::InvalidUrl)?;
        let standby =
            tokio_postgres::Config::from_str(standby).map_err(PostgresError::InvalidUrl)?;
        Self::connect_with(primary, standby, options).await
    }

    /// Like [`ReplicatedStore::connect`], from parsed configurations.
    pub async fn connect_with(
        primary: tokio_postgres::Config,
        standby: tokio_postgres::Config,
        options: ReplicaOptions,
    ) -> Result<Self, PostgresError> {
        let primary = PostgresStore::connect_with(primary, options.store.clone()).await?;
        let opened = async {
            let (identifier, head) = primary_state(primary.config()).await?;
            wait_for_standby(&standby, identifier, head, options.catch_up_timeout).await?;
            PostgresStore::open(
                standby,
                options.store,
                Role::Standby {
                    primary_head: primary.watch_head(),
                },
            )
            .await
        }
        .await;
        match opened {
            Ok(standby) => Ok(Self { primary, standby }),
            Err(err) => {
                primary.close();
                Err(err)
            }
        }
    }

    /// The primary: the handle that commands load from (and append to).
    pub fn primary(&self) -> &PostgresStore {
        &self.primary
    }

    /// The standby's connection settings.
    pub fn standby_config(&self) -> &tokio_postgres::Config {
        self.standby.config()
    }

    /// Closes both handles (see [`PostgresStore::close`]).
    pub fn close(&self) {
        self.primary.close();
        self.standby.close();
    }

    /// Waits until the standby has replayed `position` (its head is at or above it), at
    /// most `timeout`; then every event up to `position` is readable through this store.
    pub async fn wait_replayed(
        &self,
        position: Position,
        timeout: Duration,
    ) -> Result<Position, ReplayError> {
        let started = Instant::now();
        let mut head = self.standby.watch_head();
        let waited = tokio::time::timeout(timeout, head.wait_for(|head| *head >= position))
            .await
            .map(|replayed| replayed.map(|head| *head));
        match waited {
            Ok(Ok(head)) => Ok(head),
            Ok(Err(_)) => Err(ReplayError::Closed),
            Err(_) => Err(ReplayError::Lagging {
                position,
                replayed: *head.borrow(),
                waited: started.elapsed(),
            }),
        }
    }
}

#[async_trait]
impl EventStore for ReplicatedStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        // The primary publishes the position to its head watch, which the standby's
        // follower chases.
        self.primary.append(stream, expected, events).await
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Version>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.standby
            .read_stream(stream, from, direction, limit)
            .await
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<AllPage, StoreError> {
        self.standby.read_all(from, limit, filter).await
    }

    async fn event_by_id(
        &self,
        stream: &StreamName,
        id: EventId,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        self.standby.event_by_id(stream, id).await
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Version, StoreError> {
        self.standby.stream_version(stream).await
    }

    async fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        self.standby.list_streams(prefix, after, limit).await
    }

    /// The standby's head: every event at or below it is readable here.
    async fn head(&self) -> Result<Position, StoreError> {
        self.standby.head().await
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.standby.watch_head()
    }

    /// Whether the primary can take appends.
    async fn check(&self) -> Result<(), StoreError> {
        self.primary.check().await
    }

    /// A subscription on the standby (gap-safe: see the module's documentation).
    fn subscribe(&self, after: Position, filter: ReadFilter) -> EventStream {
        self.standby.subscribe(after, filter)
    }
}

/// The primary's system identifier and head.
async fn primary_state(config: &tokio_postgres::Config) -> Result<(i64, Position), PostgresError> {
    let client = connect(config).await.map_err(PostgresError::Connect)?;
    let row = client
        .query_one(
            "SELECT (SELECT system_identifier FROM pg_control_system()), \
                    (SELECT position FROM strata.head)",
            &[],
        )
        .await
        .map_err(PostgresError::Primary)?;
    let identifier: i64 = row.try_get(0).map_err(PostgresError::Primary)?;
    let head: i64 = row.try_get(1).map_err(PostgresError::Primary)?;
    Ok((identifier, Position(u64::try_from(head).unwrap_or(0))))
}

/// Waits until the standby at `config` is the primary's copy with the schema and `head`
/// replayed; at most `timeout`, retrying every 50 ms. A standby of another server is
/// refused at once.
async fn wait_for_standby(
    config: &tokio_postgres::Config,
    identifier: i64,
    head: Position,
    timeout: Duration,
) -> Result<(), PostgresError> {
    let started = Instant::now();
    loop {
        let reason = match probe(config, identifier, head).await {
            Ok(None) => return Ok(()),
            Ok(Some(reason)) => reason,
            Err(err) => return Err(err),
        };
        if started.elapsed() >= timeout {
            return Err(PostgresError::StandbyNotReady {
                waited: started.elapsed(),
                reason,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One look at the standby: `None` when it is ready, or why it is not yet.
async fn probe(
    config: &tokio_postgres::Config,
    identifier: i64,
    head: Position,
) -> Result<Option<String>, PostgresError> {
    let client = match connect(config).await {
        Ok(client) => client,
        Err(reason) => return Ok(Some(reason)),
    };
    let row = match client
        .query_one(
            "SELECT (SELECT system_identifier FROM pg_control_system()), \
                    to_regclass('strata.schema_version') IS NOT NULL",
            &[],
        )
        .await
    {
        Ok(row) => row,
        Err(err) => return Ok(Some(describe(&err))),
    };
    let (found, schema): (i64, bool) = match (row.try_get(0), row.try_get(1)) {
        (Ok(found), Ok(schema)) => (found, schema),
        _ => return Ok(Some("the standby answered an unexpected row".to_owned())),
    };
    if found != identifier {
        return Err(PostgresError::NotAStandby {
            primary: identifier,
            standby: found,
        });
    }
    if !schema {
        return Ok(Some("the strata schema is not there yet".to_owned()));
    }
    let latest = migrate::MIGRATIONS.len() as i32;
    let row = match client
        .query_one(
            "SELECT (SELECT coalesce(max(version), 0) FROM strata.schema_version), \
                    (SELECT position FROM strata.head)",
            &[],
        )
        .await
    {
        Ok(row) => row,
        Err(err) => return Ok(Some(describe(&err))),
    };
    let (version, replayed): (i32, Option<i64>) = match (row.try_get(0), row.try_get(1)) {
        (Ok(version), Ok(replayed)) => (version, replayed),
        _ => return Ok(Some("the standby answered an unexpected row".to_owned())),
    };
    let replayed = Position(replayed.and_then(|p| u64::try_from(p).ok()).unwrap_or(0));
    Ok(if version < latest {
        Some(format!(
            "the strata schema is at version {version}, not yet {latest}"
        ))
    } else if replayed < head {
        Some(format!(
            "it has replayed position {replayed} of the primary's {head}"
        ))
    } else {
        None
    })
}

/// A plain connection, driven by a task of its own; the reason as text when it fails.
async fn connect(config: &tokio_postgres::Config) -> Result<tokio_postgres::Client, String> {
    let connecting = tokio::time::timeout(Duration::from_secs(10), config.connect(NoTls));
    let (client, connection) = match connecting.await {
        Ok(Ok(connected)) => connected,
        Ok(Err(err)) => return Err(describe(&err)),
        Err(_) => return Err("connecting timed out after 10s".to_owned()),
    };
    tokio::spawn(async move {
        // Ends when the client is dropped or the server goes away.
        let _ = connection.await;
    });
    Ok(client)
}

/// An error with the server's own message, which `tokio_postgres::Error`'s display
/// leaves out.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => db.to_string(),
        None => err.to_string(),
    }
}

/// Runs until aborted: keeps `head` at the standby's replayed head. NOTIFY does not reach
/// a standby (LISTEN is refused during recovery), so it polls: every `poll_interval`
/// while the standby is level with `primary_head`, and from [`CHASE_MIN`] (doubling while
/// the standby makes no progress, up to [`CHASE_MAX`]) while it is behind. Appends of
/// this process raise `primary_head` at once, so a read of one's own write waits about one
/// replay, not one poll interval.
pub(crate) async fn follow_standby(
    pool: Pool,
    head: watch::Sender<Position>,
    mut primary_head: watch::Receiver<Position>,
    poll_interval: Duration,
) {
    let mut pause = CHASE_MIN;
    loop {
        let before = *head.borrow();
        match read_head(&pool).await {
            Ok(position) => follow::publish(&head, position),
            Err(err) => {
                tracing::warn!(error = %err, "cannot read the postgres standby's head");
                tokio::time::sleep(poll_interval).await;
                continue;
            }
        }
        let replayed = *head.borrow();
        // NOTE: marked as seen before waiting, so a later append wakes the wait below.
        let target = *primary_head.borrow_and_update();
        if target > replayed {
            pause = if replayed > before {
                CHASE_MIN
            } else {
                (pause * 2).min(CHASE_MAX).min(poll_interval)
            };
            tokio::time::sleep(pause).await;
            continue;
        }
        pause = CHASE_MIN;
        tokio::select! {
            changed = primary_head.changed() => {
                if changed.is_err() {
                    // The primary's handle is closed: poll on.
                    tokio::time::sleep(poll_interval).await;
                }
            }
            () = tokio::time::sleep(poll_interval) => {}
        }
    }
}

async fn read_head(pool: &Pool) -> Result<Position, String> {
    let client = pool.get().await.map_err(|err| err.to_string())?;
    let row = client
        .query_one(sql::HEAD, &[])
        .await
        .map_err(|err| err.to_string())?;
    let position: i64 = row.try_get(0).map_err(|err| err.to_string())?;
    Ok(Position(u64::try_from(position).unwrap_or(0)))
}
