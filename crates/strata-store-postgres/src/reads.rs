//! Gathered reads: the stream reads (oldest first) and the lookups by event id that a
//! store's handles make at the same time go to the server as one statement per kind,
//! a few batches in flight at once. A command handler reads its aggregate before every
//! append; gathering those reads makes the server parse, plan and answer one statement
//! for many commands, as group commit does for their appends. Owns only the batching;
//! it decides nothing and writes nothing.

use std::sync::Arc;

use deadpool_postgres::{Pool, PoolError};
use strata_core::{RecordedEvent, StreamName};
use strata_store::StoreError;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use crate::sql;
use crate::store::{column, row_to_event};

/// The most reads one batch takes.
const MAX_BATCH: usize = 256;
/// Batches running at once; later reads wait and join the next batches.
const BATCHES_IN_FLIGHT: usize = 4;

/// A read handed to the batcher.
pub(crate) enum Read {
    /// A stream's events from a version on, oldest first, at most `max_events`.
    Forward {
        stream: StreamName,
        from: i64,
        max_events: i64,
        reply: oneshot::Sender<Result<Vec<RecordedEvent>, StoreError>>,
    },
    /// The stream's event with this id.
    ById {
        stream: StreamName,
        id: uuid::Uuid,
        reply: oneshot::Sender<Result<Option<RecordedEvent>, StoreError>>,
    },
}

/// Runs until every sender is gone: gathers the reads waiting and runs each batch on a
/// pooled connection, at most [`BATCHES_IN_FLIGHT`] at once.
pub(crate) async fn run(pool: Pool, mut reads: mpsc::Receiver<Read>) {
    let permits = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let Some(first) = reads.recv().await else {
            return;
        };
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match reads.try_recv() {
                Ok(read) => batch.push(read),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        tokio::spawn(async move {
            answer(&pool, batch).await;
            drop(permit);
        });
    }
}

/// Runs one batch and answers each read.
async fn answer(pool: &Pool, batch: Vec<Read>) {
    let mut forward = Vec::new();
    let mut by_id = Vec::new();
    for read in batch {
        match read {
            Read::Forward {
                stream,
                from,
                max_events,
                reply,
            } => {
                if !reply.is_closed() {
                    forward.push((stream, from, max_events, reply));
                }
            }
            Read::ById { stream, id, reply } => {
                if !reply.is_closed() {
                    by_id.push((stream, id, reply));
                }
            }
        }
    }
    if forward.is_empty() && by_id.is_empty() {
        return;
    }
    let rows = query(pool, &forward, &by_id).await;
    let (forward_rows, by_id_rows) = match rows {
        Ok(rows) => rows,
        Err(err) => {
            let err = Arc::new(err);
            for (_, _, _, reply) in forward {
                let _ = reply.send(Err(err.to_store_error()));
            }
            for (_, _, reply) in by_id {
                let _ = reply.send(Err(err.to_store_error()));
            }
            return;
        }
    };
    let mut events: Vec<Result<Vec<RecordedEvent>, StoreError>> =
        (0..forward.len()).map(|_| Ok(Vec::new())).collect();
    for row in &forward_rows {
        let (ord, event) = ordinal_event(row);
        match events.get_mut(ord) {
            Some(Ok(list)) => match event {
                Ok(event) => list.push(event),
                Err(err) => events[ord] = Err(err),
            },
            Some(Err(_)) => {}
            None => {}
        }
    }
    for ((_, _, _, reply), result) in forward.into_iter().zip(events) {
        let _ = reply.send(result);
    }
    let mut found: Vec<Result<Option<RecordedEvent>, StoreError>> =
        (0..by_id.len()).map(|_| Ok(None)).collect();
    for row in &by_id_rows {
        let (ord, event) = ordinal_event(row);
        if let Some(slot) = found.get_mut(ord) {
            *slot = event.map(Some);
        }
    }
    for ((_, _, reply), result) in by_id.into_iter().zip(found) {
        let _ = reply.send(result);
    }
}

/// A row of a batched read: the 0-based index of the read it answers, and its event.
fn ordinal_event(row: &Row) -> (usize, Result<RecordedEvent, StoreError>) {
    let ord = column::<i64>(row, 0)
        .ok()
        .and_then(|ord| usize::try_from(ord - 1).ok())
        .unwrap_or(usize::MAX);
    (ord, row_to_event(row, 1))
}

type ForwardRead = (
    StreamName,
    i64,
    i64,
    oneshot::Sender<Result<Vec<RecordedEvent>, StoreError>>,
);
type ByIdRead = (
    StreamName,
    uuid::Uuid,
    oneshot::Sender<Result<Option<RecordedEvent>, StoreError>>,
);

/// Why a batch read nothing.
enum Failure {
    Closed,
    Pool(String),
    Backend(tokio_postgres::Error),
}

impl Failure {
    fn to_store_error(self: &Arc<Self>) -> StoreError {
        match &**self {
            Failure::Closed => StoreError::Closed,
            Failure::Pool(reason) => {
                StoreError::internal(format!("cannot get a postgres connection: {reason}"))
            }
            Failure::Backend(_) => StoreError::Backend(Box::new(BatchError(self.clone()))),
        }
    }
}

/// A server error shared by every read of a failed batch.
#[derive(Debug)]
struct BatchError(Arc<Failure>);

impl std::fmt::Debug for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Closed => f.write_str("Closed"),
            Failure::Pool(reason) => write!(f, "Pool({reason})"),
            Failure::Backend(err) => write!(f, "Backend({err:?})"),
        }
    }
}

impl std::fmt::Display for BatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &*self.0 {
            Failure::Backend(err) => write!(f, "{err}"),
            other => write!(f, "{other:?}"),
        }
    }
}

impl std::error::Error for BatchError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &*self.0 {
            Failure::Backend(err) => Some(err),
            _ => None,
        }
    }
}

/// Both kinds of a batch on one connection, pipelined.
async fn query(
    pool: &Pool,
    forward: &[ForwardRead],
    by_id: &[ByIdRead],
) -> Result<(Vec<Row>, Vec<Row>), Failure> {
    let client = pool.get().await.map_err(|err| match err {
        PoolError::Closed => Failure::Closed,
        other => Failure::Pool(other.to_string()),
    })?;
    let forward_rows = async {
        if forward.is_empty() {
            return Ok(Vec::new());
        }
        let statement = client.prepare_cached(sql::READ_FORWARD_MANY).await?;
        let streams: Vec<&str> = forward.iter().map(|r| r.0.as_str()).collect();
        let froms: Vec<i64> = forward.iter().map(|r| r.1).collect();
        let limits: Vec<i64> = forward.iter().map(|r| r.2).collect();
        let params: [&(dyn ToSql + Sync); 3] = [&streams, &froms, &limits];
        client.query(&statement, &params).await
    };
    let by_id_rows = async {
        if by_id.is_empty() {
            return Ok(Vec::new());
        }
        let statement = client.prepare_cached(sql::EVENTS_BY_ID_MANY).await?;
        let streams: Vec<&str> = by_id.iter().map(|r| r.0.as_str()).collect();
        let ids: Vec<uuid::Uuid> = by_id.iter().map(|r| r.1).collect();
        let params: [&(dyn ToSql + Sync); 2] = [&streams, &ids];
        client.query(&statement, &params).await
    };
    futures::try_join!(forward_rows, by_id_rows).map_err(Failure::Backend)
}
