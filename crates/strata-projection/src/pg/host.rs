//! [`PostgresProjections`]: the host of PostgreSQL read models. It registers projections,
//! keeps each one's generations (which schema answers queries, which one is being built)
//! in `strata_read.generations`, starts and stops their runners through the shared
//! registry and supervise loop, and answers queries, waits and status exactly like the
//! SQLite host.
//!
//! It must not apply events itself: that is the generation's sink.

use std::path::PathBuf;
use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, PoolError, RecyclingMethod};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use parking_lot::{Mutex, RwLock};
use strata_core::Position;
use strata_store::EventStore;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio_postgres::{Client, NoTls};

use super::generation::{PgGeneration, PgGenerationSink};
use super::{CommitFence, PostgresProjection, sql};
use crate::lane::{WaitEnd, wait_error};
use crate::lease::Leases;
use crate::meta::{Entry, GenerationId};
use crate::registry::{Registry, validate_name};
use crate::{
    ParkedEvent, ProjectionError, ProjectionStatus, RebuildStatus, RunnerState, StopCause,
};

/// Connections the host keeps to the read database (runners and queries share them).
const POOL_SIZE: usize = 16;

/// The host of a set of PostgreSQL projections over one event store.
///
/// Cloning is cheap and gives another handle to the same host. Each projection version
/// (and each rebuild generation) lives in its own schema, `rm_<name>_v<version>_g<n>`, of
/// the read database; the table `strata_read.generations` names the schema that answers
/// queries and the one being built. The read database may be the event store's own or
/// another one: nothing else in it is touched.
#[derive(Clone)]
pub struct PostgresProjections {
    inner: Arc<PgHost>,
}

pub(crate) struct PgHost {
    registry: Registry<PgSlot>,
    pool: Pool,
    fence: RwLock<Option<Arc<dyn CommitFence>>>,
    /// The leases its runners take, when several nodes share the read store.
    leases: RwLock<Option<Arc<dyn Leases>>>,
}

/// One registered projection.
pub(crate) struct PgSlot {
    projection: Arc<dyn PostgresProjection>,
    active: watch::Sender<Arc<PgGeneration>>,
    building: Mutex<Option<Arc<PgGeneration>>>,
    failed_rebuild: Mutex<Option<RebuildStatus>>,
    rebuild_lock: tokio::sync::Mutex<()>,
}

impl PgSlot {
    pub(crate) fn is_building(&self, generation: &Arc<PgGeneration>) -> bool {
        self.building
            .lock()
            .as_ref()
            .is_some_and(|b| Arc::ptr_eq(b, generation))
    }
}

/// A connection from `pool`, or the error saying why there is none.
pub(crate) async fn client(pool: &Pool) -> Result<Object, ProjectionError> {
    pool.get().await.map_err(|err| match err {
        PoolError::Backend(source) => {
            ProjectionError::postgres("cannot connect to the read store", source)
        }
        PoolError::Closed => ProjectionError::ShutDown,
        other => ProjectionError::io(
            "cannot connect to the read store",
            std::io::Error::other(other.to_string()),
        ),
    })
}

fn rebuild_status(generation: &PgGeneration, head: Position) -> RebuildStatus {
    let lane = generation.lane.status(head);
    RebuildStatus {
        version: generation.id.version,
        generation: generation.id.generation,
        checkpoint: lane.checkpoint,
        lag_events: lane.lag_events,
        state: lane.info.state,
        last_error: lane.info.last_error,
        stopped_by: lane.info.stopped_by,
    }
}

impl PostgresProjections {
    /// A host over `store` keeping its read models in the PostgreSQL database at `url`
    /// (`postgres://...`): connects, and creates the `strata_read` schema if it is
    /// missing.
    pub async fn connect(store: Arc<dyn EventStore>, url: &str) -> Result<Self, ProjectionError> {
        let config = tokio_postgres::Config::from_str(url).map_err(|source| {
            ProjectionError::postgres("the read store's URL is not valid", source)
        })?;
        Self::connect_with(store, config).await
    }

    /// Like [`PostgresProjections::connect`], from a parsed configuration.
    pub async fn connect_with(
        store: Arc<dyn EventStore>,
        config: tokio_postgres::Config,
    ) -> Result<Self, ProjectionError> {
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .build()
            .map_err(|err| {
                ProjectionError::io(
                    "cannot set up the read store's connections",
                    std::io::Error::other(err.to_string()),
                )
            })?;
        let mut first = client(&pool).await?;
        sql::setup(&mut first).await.map_err(|source| {
            ProjectionError::postgres("cannot create the schema strata_read", source)
        })?;
        Ok(Self {
            inner: Arc::new(PgHost {
                // The registry's directory is unused: the schemas are the storage.
                registry: Registry::new(store, PathBuf::new()),
                pool,
                fence: RwLock::new(None),
                leases: RwLock::new(None),
            }),
        })
    }

    /// Sets the check every batch's transaction runs right before it commits (a lease
    /// held, say); `None` removes it. Applies from the next batch on.
    pub fn set_fence(&self, fence: Option<Arc<dyn CommitFence>>) {
        *self.inner.fence.write() = fence;
    }

    /// Runs each projection's runner on one node at a time, for a read store that several
    /// nodes share: a runner takes the lease `projection/<schema>` before it applies
    /// anything, stands by while another node holds it, and every batch's transaction
    /// checks the grant ([`crate::check_fence`]) before it commits. Set it before
    /// [`PostgresProjections::start`]; without it every node runs every projection (safe,
    /// since a batch skips what the stored checkpoint covers, but each node does the work).
    pub fn set_leases(&self, leases: Option<Arc<dyn Leases>>) {
        *self.inner.leases.write() = leases;
    }

    /// Registers a projection: creates its schema (migrating it) if there is none for
    /// its version and, if the host is started, starts its runner.
    ///
    /// If the answering schema was built by another version, it keeps answering while a
    /// schema for the new version builds from position 0; the new one takes over when it
    /// has caught up, and the old schema is dropped.
    pub async fn register(
        &self,
        projection: Arc<dyn PostgresProjection>,
    ) -> Result<(), ProjectionError> {
        let name = projection.name();
        validate_name(name)?;
        if name.len() > sql::MAX_NAME {
            return Err(ProjectionError::InvalidName {
                name: name.to_owned(),
                reason: "must be at most 38 characters in a PostgreSQL read store",
            });
        }
        let host = &self.inner;
        host.registry.check_free(name)?;
        let pg = |what: &'static str| {
            move |e| ProjectionError::postgres(format!("cannot {what} the read model {name}"), e)
        };
        let client = client(&host.pool).await?;
        let entry = sql::get_entry(&**client, name).await.map_err(pg("read"))?;
        let existing = sql::existing(&**client, name).await.map_err(pg("read"))?;
        let exists = |id: GenerationId| existing.contains(&id);
        let version = projection.version();
        let generation = |id: GenerationId, code: Option<Arc<dyn PostgresProjection>>| {
            Arc::new(PgGeneration::new(name, id, code, host.pool.clone()))
        };
        let fresh = entry
            .building
            .filter(|&b| b.version == version && exists(b))
            .unwrap_or(GenerationId {
                version,
                generation: entry.next_generation(),
            });
        let (active, building) = match entry.active {
            Some(a) if a.version == version && exists(a) => {
                let active = generation(a, Some(projection.clone()));
                active.open().await?;
                let building = match entry.building {
                    Some(b) if b.version == version && exists(b) => {
                        let building = generation(b, Some(projection.clone()));
                        building.open().await?;
                        Some(building)
                    }
                    _ => None,
                };
                (active, building)
            }
            Some(a) if exists(a) => {
                // An older (or newer) version keeps answering while this one builds.
                let stale = generation(a, None);
                stale.open().await?;
                let building = generation(fresh, Some(projection.clone()));
                building.open().await?;
                (stale, Some(building))
            }
            _ => {
                let active = generation(fresh, Some(projection.clone()));
                active.open().await?;
                (active, None)
            }
        };
        let entry = Entry {
            active: Some(active.id),
            building: building.as_ref().map(|b| b.id),
        };
        sql::set_entry(&**client, name, entry)
            .await
            .map_err(pg("record"))?;
        let keep: Vec<GenerationId> = [entry.active, entry.building]
            .into_iter()
            .flatten()
            .collect();
        sql::drop_leftovers(&**client, name, &keep)
            .await
            .map_err(pg("clean up"))?;
        drop(client);
        let slot = Arc::new(PgSlot {
            projection,
            active: watch::Sender::new(active),
            building: Mutex::new(building),
            failed_rebuild: Mutex::new(None),
            rebuild_lock: tokio::sync::Mutex::new(()),
        });
        if let Some(runtime) = host.registry.insert(name, slot.clone())? {
            host.spawn_slot(&runtime, &slot);
        }
        Ok(())
    }

    /// Starts every registered projection's runner on the current tokio runtime (and
    /// those registered later as they come). Starting a started host does nothing.
    pub fn start(&self) {
        let Some(runtime) = self.inner.registry.start("postgres projections") else {
            return;
        };
        for slot in self.inner.registry.all() {
            self.inner.spawn_slot(&runtime, &slot);
        }
    }

    /// Stops every runner after its current batch commits and waits for them. Queries
    /// keep working; `start` resumes from the checkpoints.
    pub async fn shutdown(&self) {
        let generations = self.inner.generations();
        self.inner
            .registry
            .stop_and_join(|| {
                for generation in &generations {
                    generation.lane.ask_stop();
                }
            })
            .await;
    }

    /// Every projection's health, by name.
    pub fn status(&self) -> Vec<ProjectionStatus> {
        let head = self.inner.registry.head();
        self.inner
            .registry
            .all()
            .iter()
            .map(|slot| {
                let active = slot.active.borrow().clone();
                let lane = active.lane.status(head);
                let building = slot.building.lock().clone();
                let rebuild = match &building {
                    Some(b) => Some(rebuild_status(b, head)),
                    None => slot.failed_rebuild.lock().clone(),
                };
                ProjectionStatus {
                    name: active.name.to_owned(),
                    version: active.id.version,
                    generation: active.id.generation,
                    rebuildable: true,
                    checkpoint: lane.checkpoint,
                    head,
                    lag_events: lane.lag_events,
                    lag_seconds: lane.lag_seconds,
                    state: if building.is_some() && lane.info.state != RunnerState::Failed {
                        RunnerState::Rebuilding
                    } else {
                        lane.info.state
                    },
                    last_error: lane.info.last_error,
                    stopped_by: lane.info.stopped_by,
                    retrying: lane.info.retrying,
                    parked: active.parked.load(Ordering::Acquire),
                    rebuild,
                }
            })
            .collect()
    }

    /// Waits until the answering read model of `name` has applied everything up to
    /// `position`, for at most `timeout`; the errors are the SQLite host's
    /// ([`crate::Projections::wait_for`]).
    pub async fn wait_for(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let started = tokio::time::Instant::now();
        let deadline = started + timeout;
        let mut active_rx = slot.active.subscribe();
        loop {
            let generation = active_rx.borrow_and_update().clone();
            let replaced = active_rx.changed().map(|_| ());
            match generation
                .lane
                .wait_until(position, deadline, replaced)
                .await
            {
                WaitEnd::Reached => return Ok(()),
                WaitEnd::Interrupted => continue,
                end => {
                    return Err(wait_error(name, position, end, started)
                        .unwrap_or(ProjectionError::ShutDown));
                }
            }
        }
    }

    /// Runs `f` on a pooled connection whose `search_path` is the answering schema of
    /// `name`, so `f` names the model's tables unqualified. `f` must leave no transaction
    /// open. A statement answers from one snapshot: a view made of several tables should
    /// be read in one statement to be consistent.
    pub async fn query<T, F>(&self, name: &str, f: F) -> Result<T, ProjectionError>
    where
        T: Send,
        F: for<'c> FnOnce(&'c Client) -> BoxFuture<'c, Result<T, tokio_postgres::Error>>,
    {
        let slot = self.inner.registry.get(name)?;
        let generation = slot.active.borrow().clone();
        let client = client(&self.inner.pool).await?;
        let failed = |source: tokio_postgres::Error| {
            ProjectionError::postgres(format!("query on projection {name} failed"), source)
        };
        client
            .batch_execute(&format!("SET search_path TO {}", generation.schema))
            .await
            .map_err(failed)?;
        f(&client).await.map_err(failed)
    }

    /// Rebuilds `name` without downtime, like [`crate::Projections::rebuild`]: a new
    /// schema builds from position 0 beside the answering one and takes over once caught
    /// up; the old schema is dropped. Returns once the new generation answers.
    pub async fn rebuild(&self, name: &str) -> Result<(), ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let generation = {
            let _guard = slot.rebuild_lock.lock().await;
            let runtime = self.inner.registry.started()?;
            let existing = slot.building.lock().clone();
            match existing {
                Some(generation) => generation,
                None => {
                    let generation = self.inner.new_building(&slot).await?;
                    slot.failed_rebuild.lock().take();
                    self.inner.spawn_generation(&runtime, &slot, &generation);
                    generation
                }
            }
        };
        let mut active_rx = slot.active.subscribe();
        let mut lane_rx = generation.lane.subscribe();
        loop {
            if Arc::ptr_eq(&active_rx.borrow_and_update(), &generation) {
                return Ok(());
            }
            if let Some(cause) = generation.lane.stopped_by() {
                return Err(ProjectionError::Stopped {
                    name: name.to_owned(),
                    cause,
                });
            }
            if !self.inner.registry.is_started() {
                return Err(ProjectionError::ShutDown);
            }
            // NOTE: the short sleep notices a shutdown, which signals neither watch.
            tokio::select! {
                _ = active_rx.changed() => {}
                _ = lane_rx.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Restarts the runners of `name` that stopped for good, from their checkpoints.
    /// Does nothing to a runner that is running. The host must be started.
    pub fn restart(&self, name: &str) -> Result<(), ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let runtime = self.inner.registry.started()?;
        self.inner.spawn_slot(&runtime, &slot);
        Ok(())
    }

    /// The parked (dead-letter) events of the answering schema of `name`, oldest first.
    pub async fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let generation = slot.active.borrow().clone();
        let client = client(&self.inner.pool).await?;
        sql::list_parked(&**client, &generation.schema)
            .await
            .map_err(|source: tokio_postgres::Error| {
                ProjectionError::postgres(
                    format!("cannot list the parked events of {name}"),
                    source,
                )
            })
    }

    /// Applies the parked event at `position` again. On success it leaves the
    /// dead-letter table in the same transaction as its effect; on failure
    /// [`ProjectionError::Apply`] says why and the event stays parked with its attempt
    /// counted.
    pub async fn retry_parked(
        &self,
        name: &str,
        position: Position,
    ) -> Result<(), ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let generation = slot.active.borrow().clone();
        let Some(projection) = generation.projection.clone() else {
            return Err(ProjectionError::Stale {
                name: name.to_owned(),
                version: generation.id.version,
            });
        };
        let pg = |source: tokio_postgres::Error| {
            ProjectionError::postgres(format!("cannot retry a parked event of {name}"), source)
        };
        let mut client = client(&self.inner.pool).await?;
        let tx = client.transaction().await.map_err(pg)?;
        sql::set_search_path(&tx, &generation.schema)
            .await
            .map_err(pg)?;
        let event = match sql::load_parked(&*tx, position).await.map_err(pg)? {
            None => {
                return Err(ProjectionError::NotParked {
                    name: name.to_owned(),
                    position,
                });
            }
            Some(Err(error)) => {
                return Err(ProjectionError::Apply {
                    name: name.to_owned(),
                    position,
                    error: error.into(),
                });
            }
            Some(Ok(event)) => event,
        };
        let delete = "DELETE FROM strata_parked WHERE position = $1";
        let at = position.0 as i64;
        tx.batch_execute("SAVEPOINT strata_retry")
            .await
            .map_err(pg)?;
        let outcome = projection.apply(&tx, &event).await;
        let result = match outcome {
            Ok(()) => Ok(()),
            Err(err) if err.is_unhandled() => {
                // The code no longer handles its type: it leaves the table, untouched by
                // the model, as the runner would have stepped over it.
                tx.batch_execute("ROLLBACK TO strata_retry")
                    .await
                    .map_err(pg)?;
                Ok(())
            }
            Err(err) => {
                tx.batch_execute("ROLLBACK TO strata_retry")
                    .await
                    .map_err(pg)?;
                tx.execute(
                    "UPDATE strata_parked SET error = $2, attempts = attempts + 1
                     WHERE position = $1",
                    &[&at, &err.to_string()],
                )
                .await
                .map_err(pg)?;
                Err(err)
            }
        };
        if result.is_ok() {
            tx.execute(delete, &[&at]).await.map_err(pg)?;
        }
        tx.commit().await.map_err(pg)?;
        match result {
            Ok(()) => {
                let _ = generation
                    .parked
                    .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
                generation.lane.update(|_| {});
                Ok(())
            }
            Err(error) => Err(ProjectionError::Apply {
                name: name.to_owned(),
                position,
                error,
            }),
        }
    }
}

impl PgHost {
    pub(crate) fn fence(&self) -> Option<Arc<dyn CommitFence>> {
        self.fence.read().clone()
    }

    pub(crate) fn leases(&self) -> Option<Arc<dyn Leases>> {
        self.leases.read().clone()
    }

    fn generations(&self) -> Vec<Arc<PgGeneration>> {
        let mut out = Vec::new();
        for slot in self.registry.all() {
            out.push(slot.active.borrow().clone());
            if let Some(building) = slot.building.lock().clone() {
                out.push(building);
            }
        }
        out
    }

    fn spawn_slot(self: &Arc<Self>, runtime: &Handle, slot: &Arc<PgSlot>) {
        let active = slot.active.borrow().clone();
        if active.projection.is_some() {
            self.spawn_generation(runtime, slot, &active);
        }
        let building = slot.building.lock().clone();
        if let Some(building) = building {
            self.spawn_generation(runtime, slot, &building);
        }
    }

    fn spawn_generation(
        self: &Arc<Self>,
        runtime: &Handle,
        slot: &Arc<PgSlot>,
        generation: &Arc<PgGeneration>,
    ) {
        self.registry.spawn(
            runtime,
            Arc::new(PgGenerationSink {
                host: self.clone(),
                slot: slot.clone(),
                generation: generation.clone(),
                grant: Mutex::new(None),
            }),
        );
    }

    async fn new_building(&self, slot: &PgSlot) -> Result<Arc<PgGeneration>, ProjectionError> {
        let projection = slot.projection.clone();
        let name = projection.name();
        let pg = |source: tokio_postgres::Error| {
            ProjectionError::postgres(format!("cannot start rebuilding {name}"), source)
        };
        let client = client(&self.pool).await?;
        let entry = sql::get_entry(&**client, name).await.map_err(pg)?;
        // NOTE: never the number of a given-up generation whose schema may still be on
        // its way out (it goes when its last handle drops): that would drop the new one.
        let given_up = slot
            .failed_rebuild
            .lock()
            .as_ref()
            .map_or(0, |failed| failed.generation + 1);
        let id = GenerationId {
            version: projection.version(),
            generation: entry.next_generation().max(given_up),
        };
        let generation = Arc::new(PgGeneration::new(
            name,
            id,
            Some(projection),
            self.pool.clone(),
        ));
        generation.open().await?;
        let active = slot.active.borrow().id;
        sql::set_entry(
            &**client,
            name,
            Entry {
                active: Some(active),
                building: Some(id),
            },
        )
        .await
        .map_err(pg)?;
        *slot.building.lock() = Some(generation.clone());
        Ok(generation)
    }

    /// Makes the caught-up generation being built the answering one, and retires the old.
    pub(crate) async fn promote(
        &self,
        slot: &PgSlot,
        generation: &Arc<PgGeneration>,
    ) -> Result<(), ProjectionError> {
        let name = generation.name;
        let entry = Entry {
            active: Some(generation.id),
            building: None,
        };
        // NOTE: the metadata names the new schema before the old one is dropped, so a
        // crash in between leaves the old schema as a leftover, never a missing active one.
        let client = client(&self.pool).await?;
        sql::set_entry(&**client, name, entry)
            .await
            .map_err(|source: tokio_postgres::Error| {
                ProjectionError::postgres(
                    format!("cannot switch {name} to its rebuilt read model"),
                    source,
                )
            })?;
        *slot.building.lock() = None;
        let old = slot.active.send_replace(generation.clone());
        old.retire();
        tracing::info!(
            projection = name,
            version = generation.id.version,
            generation = generation.id.generation,
            "a rebuilt read model took over"
        );
        Ok(())
    }

    /// Gives up a generation being built whose runner stopped for good; the answering
    /// generation is untouched.
    pub(crate) async fn give_up(
        &self,
        slot: &PgSlot,
        generation: &Arc<PgGeneration>,
        cause: &StopCause,
    ) {
        let name = generation.name;
        let active = slot.active.borrow().id;
        let entry = Entry {
            active: Some(active),
            building: None,
        };
        // NOTE: the metadata stops naming the schema before it is dropped.
        let forgotten = match client(&self.pool).await {
            Ok(client) => sql::set_entry(&**client, name, entry)
                .await
                .map_err(|e| e.to_string()),
            Err(err) => Err(err.to_string()),
        };
        if let Err(err) = forgotten {
            tracing::warn!(projection = name, error = %err, "cannot forget a failed rebuild");
        }
        let mut failed = rebuild_status(generation, self.registry.head());
        failed.state = RunnerState::Failed;
        failed.last_error = Some(cause.to_string());
        failed.stopped_by = Some(cause.clone());
        *slot.failed_rebuild.lock() = Some(failed);
        *slot.building.lock() = None;
        generation.retire();
        tracing::warn!(
            projection = name,
            version = generation.id.version,
            generation = generation.id.generation,
            "a rebuild failed and was given up; the answering read model keeps answering"
        );
    }
}
