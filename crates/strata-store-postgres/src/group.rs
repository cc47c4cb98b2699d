//! Group commit: one committer task per store gathers the appends that the store's
//! handles make at the same time and writes them together: one read of every stream's
//! state, then one statement for all their events, which holds the position allocator
//! only for its own execution, commit and WAL flush. It owns the batching and the
//! group's decisions; it does not own the single-append path (see `store`), which a
//! member takes when the group cannot decide it alone.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use deadpool_postgres::{Pool, PoolError};
use strata_core::{ExpectedVersion, NewEvent, Position, StreamName, Timestamp, Version};
use strata_store::{AppendCheck, AppendResult, StoreError, check_append};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::sql;

/// Groups in flight at once. One: the appends made while a group commits all wait for the
/// next group, so groups are as large as the clients make them, and each costs one
/// commit's flush. (Two in flight split the clients between two smaller groups, each
/// flushing on its own, and measured slower at 8 and 32 clients.)
const GROUPS_IN_FLIGHT: usize = 1;
/// The most appends one group takes.
const MAX_GROUP_APPENDS: usize = 1024;
/// The most events one group takes (its first append is taken whatever its size).
const MAX_GROUP_EVENTS: usize = 16 * 1024;
/// The most event bytes one group takes (its first append is taken whatever its size).
const MAX_GROUP_BYTES: usize = 32 * 1024 * 1024;

/// An append handed to the committer, already checked for sizes and repeated ids.
pub(crate) struct Request {
    pub(crate) stream: StreamName,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<NewEvent>,
    pub(crate) reply: oneshot::Sender<Outcome>,
}

/// What the committer answers an append.
pub(crate) enum Outcome {
    /// Decided in the group: written (and durable), answered as a repeat, or refused.
    Done(Result<AppendResult, StoreError>),
    /// The group could not decide it (it may repeat stored events, or a unique index
    /// refused the group's write): nothing of it was written; append these events alone.
    Alone(Vec<NewEvent>),
}

/// A member's fate as the group's transaction decides it.
enum Decided {
    Done(Result<AppendResult, StoreError>),
    Alone,
}

/// Runs until every sender is gone: takes the appends waiting, commits them as one
/// group, and answers each. Appends arriving while a group commits form the next group,
/// sent as soon as fewer than [`GROUPS_IN_FLIGHT`] are in flight.
pub(crate) async fn run(pool: Pool, mut requests: mpsc::Receiver<Request>) {
    let permits = Arc::new(Semaphore::new(GROUPS_IN_FLIGHT));
    let mut deferred = VecDeque::new();
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let first = match deferred.pop_front() {
            Some(request) => request,
            None => match requests.recv().await {
                Some(request) => request,
                None => return,
            },
        };
        let group = gather(first, &mut deferred, &mut requests);
        let pool = pool.clone();
        tokio::spawn(async move {
            commit(&pool, group).await;
            drop(permit);
        });
    }
}

/// Builds a group from `first`, then the deferred appends and those waiting in the
/// channel, within the group's limits. An append to a stream already in the group, or
/// naming an id of an append in the group, waits for the next group: every member then
/// decides against the committed log alone, never against another member.
fn gather(
    first: Request,
    deferred: &mut VecDeque<Request>,
    requests: &mut mpsc::Receiver<Request>,
) -> Vec<Request> {
    let mut streams = HashSet::new();
    let mut ids = HashSet::new();
    let mut events = 0;
    let mut bytes = 0;
    let mut group = Vec::new();
    let mut admit = |request: Request, group: &mut Vec<Request>| -> Result<(), Request> {
        let size: usize = request.events.iter().map(NewEvent::size).sum();
        let full = !group.is_empty()
            && (group.len() >= MAX_GROUP_APPENDS
                || events + request.events.len() > MAX_GROUP_EVENTS
                || bytes + size > MAX_GROUP_BYTES);
        if full
            || streams.contains(request.stream.as_str())
            || request.events.iter().any(|e| ids.contains(&e.id.0))
        {
            return Err(request);
        }
        streams.insert(request.stream.as_str().to_owned());
        ids.extend(request.events.iter().map(|e| e.id.0));
        events += request.events.len();
        bytes += size;
        group.push(request);
        Ok(())
    };
    if let Err(request) = admit(first, &mut group) {
        deferred.push_front(request);
    }
    for _ in 0..deferred.len() {
        let Some(request) = deferred.pop_front() else {
            break;
        };
        if let Err(request) = admit(request, &mut group) {
            deferred.push_back(request);
        }
    }
    while group.len() < MAX_GROUP_APPENDS {
        let Ok(request) = requests.try_recv() else {
            break;
        };
        if let Err(request) = admit(request, &mut group) {
            deferred.push_back(request);
        }
    }
    group
}

/// Commits a group and answers every member.
async fn commit(pool: &Pool, group: Vec<Request>) {
    // A caller that went away no longer waits for its answer: leave its append out.
    let group: Vec<Request> = group.into_iter().filter(|r| !r.reply.is_closed()).collect();
    if group.is_empty() {
        return;
    }
    match write(pool, &group).await {
        Ok(decided) => {
            for (request, decided) in group.into_iter().zip(decided) {
                let outcome = match decided {
                    Decided::Done(result) => Outcome::Done(result),
                    Decided::Alone => Outcome::Alone(request.events),
                };
                let _ = request.reply.send(outcome);
            }
        }
        Err(Failure::Refused) => {
            for request in group {
                let _ = request.reply.send(Outcome::Alone(request.events));
            }
        }
        Err(Failure::Closed) => {
            for request in group {
                let _ = request.reply.send(Outcome::Done(Err(StoreError::Closed)));
            }
        }
        Err(Failure::Backend(err)) => {
            for request in group {
                let err = StoreError::Backend(Box::new(Arc::clone(&err)));
                let _ = request.reply.send(Outcome::Done(Err(err)));
            }
        }
        Err(Failure::Internal(reason)) => {
            for request in group {
                let _ = request
                    .reply
                    .send(Outcome::Done(Err(StoreError::internal(reason.clone()))));
            }
        }
    }
}

/// Why a group wrote nothing.
enum Failure {
    /// A unique index refused the write: an id already stored in another stream, or a
    /// client other than strata wrote the tables. Each member retries alone.
    Refused,
    /// The store was closed.
    Closed,
    /// The server or the connection failed; whether the commit happened is unknown if
    /// it failed during the commit.
    Backend(Arc<tokio_postgres::Error>),
    /// The schema is not the one the migrations made.
    Internal(String),
}

impl From<tokio_postgres::Error> for Failure {
    fn from(err: tokio_postgres::Error) -> Self {
        match err.as_db_error() {
            Some(db) if *db.code() == SqlState::UNIQUE_VIOLATION => Failure::Refused,
            _ => Failure::Backend(Arc::new(err)),
        }
    }
}

/// Writes a group optimistically: decide each member without the lock, from one read of
/// every member's stream state (no read at all when every member expects an exact
/// version: that version is what it is decided against), then write the winners in one
/// autocommitted statement, which takes the position allocator's lock only for its own
/// execution and commit. If a member's stream is not at the version it was decided
/// against when the statement runs (another append raced it), the statement is refused
/// whole (see [`sql::GROUP_WRITE`]), nothing is written, and the group is decided again
/// under the lock ([`write_locked`]).
async fn write(pool: &Pool, group: &[Request]) -> Result<Vec<Decided>, Failure> {
    let client = pool.get().await.map_err(|err| match err {
        PoolError::Closed => Failure::Closed,
        other => Failure::Internal(format!("cannot get a postgres connection: {other}")),
    })?;
    let insert = client.prepare_cached(sql::GROUP_WRITE).await?;
    // Only versions a `bigint` holds once the events are added; a larger one is refused
    // after a read.
    let exact: Option<Vec<(Version, Option<i64>)>> = group
        .iter()
        .map(|r| {
            r.expected
                .exact()
                .filter(|v| {
                    v.checked_add(r.events.len() as u64)
                        .is_some_and(|last| last <= i64::MAX as u64)
                })
                .map(|v| (Version(v), None))
        })
        .collect();
    let (outcomes, batch) = match exact {
        // NOTE: an append expecting version v is decided as if its stream were at v: if
        // it is, that is the decision a read would give; if not, the write is refused.
        // A repeat of stored events is then refused too, and decided under the lock.
        Some(states) => decide_states(group, states),
        None => {
            let state = client.prepare_cached(sql::GROUP_STATE).await?;
            let (names, first_ids) = state_params(group);
            let params: [&(dyn ToSql + Sync); 2] = [&names, &first_ids];
            let rows = client.query(&state, &params).await?;
            decide_rows(group, &rows)?
        }
    };
    if batch.events == 0 {
        return Ok(outcomes);
    }
    let params = batch.params();
    match client.query_one(&insert, &params).await {
        Ok(row) => placed(outcomes, &batch, &row),
        Err(err) if raced(&err) => write_locked(&client, group).await,
        Err(err) => Err(Failure::from(err)),
    }
}

/// Whether an optimistic write was refused because a member's stream is not at the
/// version it was decided against (or one of its ids was stored meanwhile).
fn raced(err: &tokio_postgres::Error) -> bool {
    err.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION
            || (*db.code() == SqlState::INVALID_TEXT_REPRESENTATION
                && db.message().contains(sql::GROUP_BEHIND))
    })
}

/// One transaction for the whole group in two round trips: `BEGIN`, lock the allocator
/// and read every member's stream state (pipelined); decide each member here; then write
/// the winners in one statement and `COMMIT` (pipelined). Holds the lock for both round
/// trips, so no other append can change what it decided on: it is taken only when the
/// optimistic write lost a race.
async fn write_locked(
    client: &deadpool_postgres::Client,
    group: &[Request],
) -> Result<Vec<Decided>, Failure> {
    let lock = client.prepare_cached(sql::LOCK_HEAD).await?;
    let state = client.prepare_cached(sql::GROUP_STATE).await?;
    let insert = client.prepare_cached(sql::GROUP_WRITE).await?;
    // NOTE: the lock comes first and the state is read by a later statement, so with
    // READ COMMITTED the state is read in a snapshot taken under the lock: it shows every
    // append that committed, and none can commit before this group does.
    let (names, first_ids) = state_params(group);
    let state_params: [&(dyn ToSql + Sync); 2] = [&names, &first_ids];
    let (begun, locked, rows) = futures::join!(
        client.batch_execute("BEGIN"),
        client.query_one(&lock, &[]),
        client.query(&state, &state_params)
    );
    let decided = begun
        .and(locked)
        .and(rows)
        .map_err(Failure::from)
        .and_then(|rows| decide_rows(group, &rows));
    let (outcomes, batch) = match decided {
        Ok(decided) => decided,
        Err(failure) => {
            // The transaction may be open (and aborted): end it before the connection
            // goes back to the pool. Outside a transaction this only warns.
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(failure);
        }
    };
    if batch.events == 0 {
        // Nothing to write: the lock is given back without a commit to flush.
        client.batch_execute("ROLLBACK").await?;
        return Ok(outcomes);
    }
    // NOTE: the COMMIT is sent behind the write without waiting for it. If the write
    // fails, the transaction is aborted and the server turns that COMMIT into a
    // rollback, so an error of the write always means nothing was written.
    let params = batch.params();
    let (written, committed) = futures::join!(
        client.query_one(&insert, &params),
        client.batch_execute("COMMIT")
    );
    let row = written?;
    committed?;
    placed(outcomes, &batch, &row)
}

/// Fills in the result of every member `batch` wrote, from the row of [`sql::GROUP_WRITE`].
fn placed(
    mut outcomes: Vec<Decided>,
    batch: &Batch<'_>,
    row: &tokio_postgres::Row,
) -> Result<Vec<Decided>, Failure> {
    let base: i64 = row.try_get(0).map_err(schema)?;
    let base = u64::try_from(base).unwrap_or(0);
    let recorded_at: time::OffsetDateTime = row.try_get(2).map_err(schema)?;
    let recorded_at = Timestamp::from_datetime(recorded_at);
    for (outcome, placed) in outcomes.iter_mut().zip(&batch.placed) {
        if let Some((first_ord, first_version, count)) = *placed {
            *outcome = Decided::Done(Ok(AppendResult {
                first_version: Version(first_version),
                last_version: Version(first_version + count - 1),
                first_position: Position(base + first_ord),
                position: Position(base + first_ord + count - 1),
                recorded_at,
            }));
        }
    }
    Ok(outcomes)
}

/// The parameters of [`sql::GROUP_STATE`]: every member's stream and first event id.
fn state_params(group: &[Request]) -> (Vec<&str>, Vec<uuid::Uuid>) {
    group
        .iter()
        .map(|r| (r.stream.as_str(), r.events[0].id.0))
        .unzip()
}

/// Decides every member from the rows of [`sql::GROUP_STATE`].
fn decide_rows<'a>(
    group: &'a [Request],
    rows: &[tokio_postgres::Row],
) -> Result<(Vec<Decided>, Batch<'a>), Failure> {
    if rows.len() != group.len() {
        return Err(Failure::Internal(format!(
            "the state of {} streams came back as {} rows",
            group.len(),
            rows.len()
        )));
    }
    let states = rows
        .iter()
        .map(|row| {
            let current: i64 = row.try_get(0).map_err(schema)?;
            let first_id_version: Option<i64> = row.try_get(1).map_err(schema)?;
            Ok((
                Version(u64::try_from(current).unwrap_or(0)),
                first_id_version,
            ))
        })
        .collect::<Result<Vec<_>, Failure>>()?;
    Ok(decide_states(group, states))
}

/// Decides every member against its stream's version and the version of the stream's
/// event with the member's first id, given in member order.
fn decide_states(
    group: &[Request],
    states: Vec<(Version, Option<i64>)>,
) -> (Vec<Decided>, Batch<'_>) {
    let mut outcomes = Vec::with_capacity(group.len());
    let mut batch = Batch::default();
    for (request, (current, first_id_version)) in group.iter().zip(states) {
        outcomes.push(decide(request, current, first_id_version, &mut batch));
    }
    (outcomes, batch)
}

/// The events a group writes, as the columns [`sql::GROUP_WRITE`] takes.
#[derive(Default)]
struct Batch<'a> {
    events: i64,
    streams: Vec<&'a str>,
    versions: Vec<i64>,
    ids: Vec<uuid::Uuid>,
    types: Vec<&'a str>,
    categories: Vec<&'a str>,
    data: Vec<&'a [u8]>,
    metadata: Vec<&'a [u8]>,
    names: Vec<&'a str>,
    stream_versions: Vec<i64>,
    last_ords: Vec<i64>,
    /// Per member written: its stream's version the write was decided against.
    decided_versions: Vec<i64>,
    /// Per member, in order: where its events went (the ordinal of its first event in
    /// the batch, its first version, its event count), or none if it writes nothing.
    placed: Vec<Option<(u64, u64, u64)>>,
}

impl Batch<'_> {
    /// The parameters of [`sql::GROUP_WRITE`].
    fn params(&self) -> [&(dyn ToSql + Sync); 12] {
        [
            &self.events,
            &self.streams,
            &self.versions,
            &self.ids,
            &self.types,
            &self.categories,
            &self.data,
            &self.metadata,
            &self.names,
            &self.stream_versions,
            &self.last_ords,
            &self.decided_versions,
        ]
    }
}

/// Decides one member against its stream's committed state. A write goes into `batch`
/// (its result is filled in after the commit); a member that might repeat stored events
/// is sent to the single-append path, which reads the ids it would repeat.
fn decide<'a>(
    request: &'a Request,
    current: Version,
    first_id_version: Option<i64>,
    batch: &mut Batch<'a>,
) -> Decided {
    let possible_repeat = match request.expected.exact() {
        Some(v) => v < current.0,
        None => first_id_version.is_some(),
    };
    if possible_repeat {
        batch.placed.push(None);
        return Decided::Alone;
    }
    let checked = check_append(
        &request.stream,
        request.expected,
        current,
        &request.events,
        |version| {
            Err(StoreError::internal(format!(
                "stream {} was decided as a repeat without reading its version {version}",
                request.stream
            )))
        },
        |_| Ok(None),
    );
    match checked {
        Ok(AppendCheck::Write { current }) => {
            let count = request.events.len() as u64;
            let first_ord = batch.events as u64 + 1;
            let category = request.stream.category();
            for (i, event) in request.events.iter().enumerate() {
                batch.streams.push(request.stream.as_str());
                batch.versions.push(to_i64(current.0 + 1 + i as u64));
                batch.ids.push(event.id.0);
                batch.types.push(event.event_type.as_str());
                batch.categories.push(category);
                batch.data.push(event.data.as_ref());
                batch.metadata.push(event.metadata.as_ref());
            }
            batch.events += to_i64(count);
            batch.names.push(request.stream.as_str());
            batch.stream_versions.push(to_i64(current.0 + count));
            batch.last_ords.push(batch.events);
            batch.decided_versions.push(to_i64(current.0));
            batch.placed.push(Some((first_ord, current.0 + 1, count)));
            // Filled in with the positions once committed.
            Decided::Alone
        }
        Ok(AppendCheck::AlreadyAppended(result)) => {
            batch.placed.push(None);
            Decided::Done(Ok(result))
        }
        Ok(AppendCheck::Refuse(err)) | Err(err) => {
            batch.placed.push(None);
            Decided::Done(Err(err))
        }
    }
}

fn schema(err: tokio_postgres::Error) -> Failure {
    Failure::Internal(format!("a row of the strata schema does not fit: {err}"))
}

/// A count or bound as a `bigint`, saturating (no stored value comes near `i64::MAX`).
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
