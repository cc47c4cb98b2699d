//! Group commit: one committer task per store gathers the appends that the store's
//! handles make at the same time and writes them in one transaction, sent as one
//! pipeline: the position allocator's lock, one statement in which the server decides
//! every member against its stream and writes the winners, one commit and WAL flush. It
//! owns the batching and the reading of each member's fate; it does not own the
//! single-append path (see `store`), which the members take when a unique index refuses
//! the group's write.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use deadpool_postgres::{Pool, PoolError};
use strata_core::{EventId, ExpectedVersion, NewEvent, Position, StreamName, Timestamp, Version};
use strata_store::{AppendCheck, AppendResult, StoreError, check_append};
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use crate::sql;

/// Groups in flight at once. The next group's pipeline reaches the server while the
/// previous one commits and waits there for the head row, so the server goes from one
/// group to the next at the pace of its commits, not of round trips through this
/// process; the lock still decides them one after the other.
const GROUPS_IN_FLIGHT: usize = 2;
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
    /// A unique index refused the group's write (an id stored in another stream, or a
    /// client other than strata wrote the tables): nothing of the group was written;
    /// append these events alone.
    Alone(Vec<NewEvent>),
}

/// Runs until every sender is gone: takes the appends waiting, commits them as one
/// group, and answers each. Appends arriving while a group commits form the next group,
/// which is sent at once (up to [`GROUPS_IN_FLIGHT`]) and waits for the head row.
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
            for (request, result) in group.into_iter().zip(decided) {
                let _ = request.reply.send(Outcome::Done(result));
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

/// One transaction for the whole group in one round trip: `BEGIN`, the allocator's
/// lock, [`sql::GROUP_APPEND`] (which decides every member in the server, writes the
/// winners and answers each member's fate) and `COMMIT`, pipelined. The group holds the
/// lock only while the server runs that statement and flushes the commit, never across
/// a round trip to this process.
async fn write(
    pool: &Pool,
    group: &[Request],
) -> Result<Vec<Result<AppendResult, StoreError>>, Failure> {
    let client = pool.get().await.map_err(|err| match err {
        PoolError::Closed => Failure::Closed,
        other => Failure::Internal(format!("cannot get a postgres connection: {other}")),
    })?;
    let lock = client.prepare_cached(sql::LOCK_HEAD).await?;
    let append = client.prepare_cached(sql::GROUP_APPEND).await?;
    let members = Members::of(group);
    let params: [&(dyn ToSql + Sync); 12] = [
        &members.streams,
        &members.exact,
        &members.must_exist,
        &members.first_ids,
        &members.counts,
        &members.categories,
        &members.member,
        &members.index,
        &members.ids,
        &members.types,
        &members.data,
        &members.metadata,
    ];
    // NOTE: the lock is its own statement, before the one that decides: under READ
    // COMMITTED that statement's snapshot is taken once the lock is granted, so it shows
    // every append that committed, and none can commit before this group does. The
    // COMMIT is sent behind it without waiting: if anything before it fails, the
    // transaction is aborted and the server turns that COMMIT into a rollback, so an
    // error always means nothing was written.
    let (begun, locked, rows, committed) = futures::join!(
        client.batch_execute("BEGIN"),
        client.query(&lock, &[]),
        client.query(&append, &params),
        client.batch_execute("COMMIT")
    );
    if let Err(err) = &committed {
        // The pipeline was cut short (the connection failed): whether the transaction
        // is still open is unknown, so end it before the connection goes back to the
        // pool. Outside a transaction this only warns.
        let _ = client.batch_execute("ROLLBACK").await;
        tracing::debug!(error = %err, "a group's commit failed");
    }
    // The first failure is the cause; the statements after it failed because of it.
    begun.and(locked)?;
    let rows = rows?;
    // A commit that failed may or may not have happened: no member is answered a write.
    committed?;
    if rows.len() != group.len() {
        return Err(Failure::Internal(format!(
            "the fates of {} appends came back as {} rows",
            group.len(),
            rows.len()
        )));
    }
    group
        .iter()
        .zip(&rows)
        .map(|(request, row)| decide(request, row))
        .collect()
}

/// The arguments of [`sql::GROUP_APPEND`]: the members' columns, then the events'
/// columns, member after member.
struct Members<'a> {
    streams: Vec<&'a str>,
    exact: Vec<Option<i64>>,
    must_exist: Vec<bool>,
    first_ids: Vec<uuid::Uuid>,
    counts: Vec<i64>,
    categories: Vec<&'a str>,
    member: Vec<i64>,
    index: Vec<i64>,
    ids: Vec<uuid::Uuid>,
    types: Vec<&'a str>,
    data: Vec<&'a [u8]>,
    metadata: Vec<&'a [u8]>,
}

impl<'a> Members<'a> {
    fn of(group: &'a [Request]) -> Self {
        let events: usize = group.iter().map(|r| r.events.len()).sum();
        let mut members = Members {
            streams: Vec::with_capacity(group.len()),
            exact: Vec::with_capacity(group.len()),
            must_exist: Vec::with_capacity(group.len()),
            first_ids: Vec::with_capacity(group.len()),
            counts: Vec::with_capacity(group.len()),
            categories: Vec::with_capacity(group.len()),
            member: Vec::with_capacity(events),
            index: Vec::with_capacity(events),
            ids: Vec::with_capacity(events),
            types: Vec::with_capacity(events),
            data: Vec::with_capacity(events),
            metadata: Vec::with_capacity(events),
        };
        for (ord, request) in (1..).zip(group) {
            members.streams.push(request.stream.as_str());
            members.exact.push(request.expected.exact().map(to_i64));
            members
                .must_exist
                .push(request.expected == ExpectedVersion::Exists);
            // Every append has an event (refused before it reaches the committer).
            members
                .first_ids
                .push(request.events.first().map_or(uuid::Uuid::nil(), |e| e.id.0));
            members.counts.push(to_i64(request.events.len() as u64));
            members.categories.push(request.stream.category());
            for (index, event) in (1..).zip(&request.events) {
                members.member.push(ord);
                members.index.push(index);
                members.ids.push(event.id.0);
                members.types.push(event.event_type.as_str());
                members.data.push(event.data.as_ref());
                members.metadata.push(event.metadata.as_ref());
            }
        }
        members
    }
}

/// A member's answer from its row of [`sql::GROUP_APPEND`]: written by the server, or
/// else a repeat or a conflict as the shared `check_append` rules tell from the stored
/// events the row carries.
fn decide(request: &Request, row: &Row) -> Result<Result<AppendResult, StoreError>, Failure> {
    let wins: bool = row.try_get(0).map_err(schema)?;
    let current: i64 = row.try_get(1).map_err(schema)?;
    let current = Version(u64::try_from(current).unwrap_or(0));
    let count = request.events.len() as u64;
    if wins {
        let base: Option<i64> = row.try_get(3).map_err(schema)?;
        let recorded_at: Option<time::OffsetDateTime> = row.try_get(4).map_err(schema)?;
        let (Some(base), Some(recorded_at)) = (base, recorded_at) else {
            return Err(Failure::Internal(format!(
                "the append to stream {} was written without a position",
                request.stream
            )));
        };
        let base = u64::try_from(base).unwrap_or(0);
        return Ok(Ok(AppendResult {
            first_version: Version(current.0 + 1),
            last_version: Version(current.0 + count),
            first_position: Position(base + 1),
            position: Position(base + count),
            recorded_at: Timestamp::from_datetime(recorded_at),
        }));
    }
    let id_version: Option<i64> = row.try_get(2).map_err(schema)?;
    let versions: Option<Vec<i64>> = row.try_get(5).map_err(schema)?;
    let ids: Option<Vec<uuid::Uuid>> = row.try_get(6).map_err(schema)?;
    let positions: Option<Vec<i64>> = row.try_get(7).map_err(schema)?;
    let recorded: Option<Vec<time::OffsetDateTime>> = row.try_get(8).map_err(schema)?;
    let stored: Vec<(u64, uuid::Uuid, u64, time::OffsetDateTime)> = versions
        .unwrap_or_default()
        .into_iter()
        .zip(ids.unwrap_or_default())
        .zip(positions.unwrap_or_default())
        .zip(recorded.unwrap_or_default())
        .map(|(((version, id), position), at)| {
            (
                u64::try_from(version).unwrap_or(0),
                id,
                u64::try_from(position).unwrap_or(0),
                at,
            )
        })
        .collect();
    let first_id = request.events.first().map(|e| e.id);
    let stream = &request.stream;
    let checked = check_append(
        stream,
        request.expected,
        current,
        &request.events,
        |version| {
            stored
                .iter()
                .find(|(v, ..)| *v == version.0)
                .map(|&(_, id, position, at)| {
                    (EventId(id), Position(position), Timestamp::from_datetime(at))
                })
                .ok_or_else(|| {
                    StoreError::internal(format!(
                        "stream {stream} is at version {current} but its version {version} was not read"
                    ))
                })
        },
        |id| {
            Ok(match id_version {
                Some(version) if Some(id) == first_id => {
                    Some(Version(u64::try_from(version).unwrap_or(0)))
                }
                _ => None,
            })
        },
    );
    Ok(match checked {
        Ok(AppendCheck::AlreadyAppended(result)) => Ok(result),
        Ok(AppendCheck::Refuse(err)) | Err(err) => Err(err),
        // Nothing of it was written: say so rather than answer a write.
        Ok(AppendCheck::Write { .. }) => Err(StoreError::internal(format!(
            "the server did not write an append to stream {stream} that check_append would"
        ))),
    })
}

fn schema(err: tokio_postgres::Error) -> Failure {
    Failure::Internal(format!("a row of the strata schema does not fit: {err}"))
}

/// A count or bound as a `bigint`, saturating (no stored value comes near `i64::MAX`).
fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
