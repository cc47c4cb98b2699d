//! One generation of a PostgreSQL read model (its schema, the lane its runner publishes
//! on) and its [`Sink`] for the shared supervise loop: each batch, the parked events,
//! the checkpoint and the commit fence in one transaction. A retired generation drops its
//! schema when the last handle to it goes.
//!
//! It must not decide which generation answers: promoting and giving up are the host's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use deadpool_postgres::Pool;
use parking_lot::Mutex;
use strata_core::{Position, RecordedEvent};
use strata_store::ReadFilter;

use super::host::{PgHost, PgSlot};
use super::{PostgresProjection, sql};
use crate::lane::Lane;
use crate::lease::{Fence, Leases};
use crate::meta::GenerationId;
use crate::supervise::{Exit, Sink};
use crate::{FailurePolicy, ProjectionError, StopCause};

pub(crate) struct PgGeneration {
    pub(crate) name: &'static str,
    pub(crate) id: GenerationId,
    pub(crate) schema: String,
    /// The code that builds it; `None` for an older version that only answers queries
    /// until its successor takes over.
    pub(crate) projection: Option<Arc<dyn PostgresProjection>>,
    pub(crate) lane: Lane,
    /// Events in its dead-letter table.
    pub(crate) parked: AtomicU64,
    pool: Pool,
    retired: AtomicBool,
}

impl PgGeneration {
    pub(crate) fn new(
        name: &'static str,
        id: GenerationId,
        projection: Option<Arc<dyn PostgresProjection>>,
        pool: Pool,
    ) -> Self {
        Self {
            name,
            id,
            schema: sql::schema_name(name, id),
            projection,
            lane: Lane::new(Position::ZERO),
            parked: AtomicU64::new(0),
            pool,
            retired: AtomicBool::new(false),
        }
    }

    fn error(&self, what: &str, err: tokio_postgres::Error) -> ProjectionError {
        ProjectionError::postgres(format!("cannot {what} schema {}", self.schema), err)
    }

    /// Creates (and migrates) the schema if it is missing, then publishes its stored
    /// checkpoint and parked count on the lane. The database is the truth: this may move
    /// the lane's checkpoint back.
    pub(crate) async fn open(&self) -> Result<(), ProjectionError> {
        let mut client = super::host::client(&self.pool).await?;
        if let Some(projection) = &self.projection {
            let tx = client
                .transaction()
                .await
                .map_err(|e| self.error("create", e))?;
            let created = sql::create_generation(&tx, &self.schema, self.name, self.id)
                .await
                .map_err(|e| self.error("create", e))?;
            if created {
                projection
                    .migrate(&tx)
                    .await
                    .map_err(|e| self.error("migrate", e))?;
            }
            tx.commit().await.map_err(|e| self.error("create", e))?;
        }
        let (checkpoint, parked) = sql::load_state(&**client, &self.schema)
            .await
            .map_err(|e| self.error("read", e))?;
        self.lane.reset_checkpoint(checkpoint);
        self.parked.store(parked, Ordering::Release);
        Ok(())
    }

    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Marks the generation replaced or given up: its runner stops, and its schema is
    /// dropped once the last handle goes.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.lane.ask_stop();
    }
}

impl Drop for PgGeneration {
    fn drop(&mut self) {
        if !self.is_retired() {
            return;
        }
        // Outside a runtime the schema stays; the next registration drops it as a
        // leftover the metadata does not name.
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = self.pool.clone();
        let schema = std::mem::take(&mut self.schema);
        runtime.spawn(async move {
            let dropped = match pool.get().await {
                Ok(client) => sql::drop_schema(&**client, &schema)
                    .await
                    .map_err(|e| e.to_string()),
                Err(err) => Err(err.to_string()),
            };
            if let Err(err) = dropped {
                tracing::warn!(%schema, error = %err, "cannot drop a retired read model");
            }
        });
    }
}

/// What applying a batch did.
enum Outcome {
    Applied {
        checkpoint: Position,
        parked: u64,
    },
    Stopped {
        checkpoint: Position,
        position: Position,
        error: String,
    },
}

/// How a batch's events are applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No savepoints: one round trip less per event, for the common batch where every
    /// event applies. An event refused (or unhandled) makes the batch start over,
    /// careful.
    Optimistic,
    /// A savepoint before each event, rolled back to when the event is refused.
    Careful,
}

/// Why an attempt at a batch ended without committing.
enum Abort {
    /// A fault: retry the batch from the stored checkpoint after a backoff.
    Fault(String),
    /// An optimistic attempt met an event it must undo: apply the batch again, carefully.
    Undo,
}

impl From<tokio_postgres::Error> for Abort {
    fn from(err: tokio_postgres::Error) -> Self {
        Self::Fault(err.to_string())
    }
}

/// Applies `events` (ones at or below the stored checkpoint are skipped) and moves the
/// checkpoint to the last of them, or to `through` if later, in one transaction with the
/// parked events, after the fence agreed. Any `Err` left nothing committed.
/// What one batch applies: its events, the checkpoint it ends at, and the lease grant it
/// commits under (if the host is leased).
#[derive(Clone, Copy)]
struct Batch<'a> {
    events: &'a [RecordedEvent],
    through: Position,
    grant: Option<&'a Fence>,
}

async fn apply_batch(
    host: &PgHost,
    generation: &PgGeneration,
    projection: &dyn PostgresProjection,
    batch: Batch<'_>,
) -> Result<Outcome, String> {
    match attempt(host, generation, projection, batch, Mode::Optimistic).await {
        Ok(outcome) => Ok(outcome),
        Err(Abort::Fault(err)) => Err(err),
        Err(Abort::Undo) => {
            match attempt(host, generation, projection, batch, Mode::Careful).await {
                Ok(outcome) => Ok(outcome),
                Err(Abort::Fault(err)) => Err(err),
                Err(Abort::Undo) => Err("a careful batch cannot start over".to_owned()),
            }
        }
    }
}

/// One attempt at a batch, in one transaction (rolled back when dropped uncommitted).
async fn attempt(
    host: &PgHost,
    generation: &PgGeneration,
    projection: &dyn PostgresProjection,
    batch: Batch<'_>,
    mode: Mode,
) -> Result<Outcome, Abort> {
    let Batch {
        events,
        through,
        grant,
    } = batch;
    let policy = projection.policy();
    let mut client = super::host::client(&generation.pool)
        .await
        .map_err(|e| Abort::Fault(e.to_string()))?;
    let tx = client.transaction().await?;
    sql::set_search_path(&tx, &generation.schema).await?;
    // NOTE: the stored checkpoint, read under its row lock, is the truth: should another
    // writer have moved it, events it covers are skipped, not repeated.
    let stored = sql::read_checkpoint(&*tx, true).await?;
    let mut last = stored;
    let mut parked = 0;
    let mut stopped = None;
    let careful = mode == Mode::Careful;
    for event in events {
        if event.position <= last {
            continue;
        }
        if careful {
            tx.batch_execute("SAVEPOINT strata_event").await?;
        }
        match projection.apply(&tx, event).await {
            Ok(()) if careful => tx.batch_execute("RELEASE strata_event").await?,
            Ok(()) => {}
            Err(err) if err.is_transient() => return Err(Abort::Fault(err.to_string())),
            // Its writes may be in the transaction: undo them with savepoints.
            Err(_) if !careful => return Err(Abort::Undo),
            Err(err) => {
                tx.batch_execute("ROLLBACK TO strata_event; RELEASE strata_event")
                    .await?;
                if !err.is_unhandled() {
                    match policy {
                        FailurePolicy::Stop => {
                            stopped = Some((event.position, err.to_string()));
                            break;
                        }
                        FailurePolicy::Park => {
                            sql::park(&*tx, event, &err).await?;
                            parked += 1;
                        }
                    }
                }
            }
        }
        last = event.position;
    }
    let checkpoint = match &stopped {
        Some((position, _)) => Position(position.0 - 1).max(last),
        None => last.max(through),
    };
    if checkpoint > stored || parked > 0 {
        sql::write_checkpoint(&*tx, checkpoint).await?;
        if let Some(grant) = grant {
            super::check_fence(&*tx, grant)
                .await
                .map_err(|e| Abort::Fault(format!("the lease refused the batch: {e}")))?;
        }
        if let Some(fence) = host.fence() {
            fence
                .check(generation.name, &tx)
                .await
                .map_err(|e| Abort::Fault(format!("the commit fence refused the batch: {e}")))?;
        }
        tx.commit().await?;
    }
    let checkpoint = checkpoint.max(stored);
    Ok(match stopped {
        Some((position, error)) => Outcome::Stopped {
            checkpoint,
            position,
            error,
        },
        None => Outcome::Applied { checkpoint, parked },
    })
}

/// One generation of a PostgreSQL projection, as its runner sees it.
pub(crate) struct PgGenerationSink {
    pub(crate) host: Arc<PgHost>,
    pub(crate) slot: Arc<PgSlot>,
    pub(crate) generation: Arc<PgGeneration>,
    /// The lease grant the session commits under, when the host is leased.
    pub(crate) grant: Mutex<Option<Fence>>,
}

#[async_trait]
impl Sink for PgGenerationSink {
    fn name(&self) -> &'static str {
        self.generation.name
    }

    fn lane(&self) -> &Lane {
        &self.generation.lane
    }

    fn filter(&self) -> Option<ReadFilter> {
        self.generation.projection.as_ref().map(|p| p.filter())
    }

    fn lease(&self) -> Option<(Arc<dyn Leases>, String)> {
        let leases = self.host.leases()?;
        Some((leases, format!("projection/{}", self.generation.schema)))
    }

    async fn open(self: Arc<Self>, fence: Option<Fence>) -> Result<(), String> {
        *self.grant.lock() = fence;
        self.generation.open().await.map_err(|e| e.to_string())
    }

    async fn apply(&self, events: Vec<RecordedEvent>, through: Position) -> Result<Position, Exit> {
        let generation = &self.generation;
        let Some(projection) = &generation.projection else {
            return Err(Exit::Stop);
        };
        // NOTE: a leased sink commits only under its grant; a session without one (it was
        // lost) must not commit at all.
        let grant = self.grant.lock().clone();
        if self.host.leases().is_some() && grant.is_none() {
            return Err(Exit::Retry(format!(
                "{} holds no lease to commit under",
                generation.schema
            )));
        }
        let batch = Batch {
            events: &events,
            through,
            grant: grant.as_ref(),
        };
        match apply_batch(&self.host, generation, &**projection, batch).await {
            Err(err) => Err(Exit::Retry(err)),
            Ok(Outcome::Applied { checkpoint, parked }) => {
                generation.parked.fetch_add(parked, Ordering::AcqRel);
                Ok(checkpoint)
            }
            Ok(Outcome::Stopped {
                checkpoint,
                position,
                error,
            }) => {
                generation.lane.publish_checkpoint(checkpoint);
                Err(Exit::Failed(StopCause::PoisonEvent { position, error }))
            }
        }
    }

    async fn caught_up(&self) -> Result<(), Exit> {
        if self.slot.is_building(&self.generation)
            && let Err(err) = self.host.promote(&self.slot, &self.generation).await
        {
            return Err(Exit::Retry(err.to_string()));
        }
        Ok(())
    }

    async fn ended(&self, failed: Option<&StopCause>) {
        if let Some(cause) = failed
            && self.slot.is_building(&self.generation)
        {
            self.host.give_up(&self.slot, &self.generation, cause).await;
        }
    }
}
