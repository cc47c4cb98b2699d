//! [`Projections`]: the host that registers projections, keeps each one's generations
//! (which file answers queries, which one is being built), starts and stops their
//! runners through the shared registry and supervise loop, and answers queries, waits
//! and status.
//!
//! It must not apply events itself: that is the sink's (`runner`) and the state
//! machine's (`core`) job. It runs SQLite on a runtime worker thread only for a point
//! read ([`Projections::point_query`]); every other query goes to the blocking pool.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt as _;
use parking_lot::Mutex;
use rusqlite::Connection;
use strata_core::Position;
use strata_store::EventStore;
use tokio::runtime::Handle;
use tokio::sync::watch;

use crate::generation::Generation;
use crate::lane::{WaitEnd, wait_error};
use crate::meta::{self, Entry, GenerationId, Meta};
use crate::registry::{Registry, validate_name};
use crate::runner::GenerationSink;
use crate::{
    ParkedEvent, ProjectionError, ProjectionStatus, RebuildStatus, RunnerState, SqliteProjection,
    StopCause,
};

/// The host of a set of SQLite projections over one event store.
///
/// Cloning is cheap and gives another handle to the same host. Each projection version
/// (and each rebuild generation) lives in its own SQLite file in the host's directory,
/// next to a small metadata database that names the file answering queries.
#[derive(Clone)]
pub struct Projections {
    inner: Arc<Host>,
}

pub(crate) struct Host {
    registry: Registry<Slot>,
    meta: Mutex<Option<Arc<Meta>>>,
}

/// One registered projection.
pub(crate) struct Slot {
    projection: Arc<dyn SqliteProjection>,
    /// The generation answering queries.
    active: watch::Sender<Arc<Generation>>,
    /// The generation being built to replace it, if any.
    building: Mutex<Option<Arc<Generation>>>,
    /// The last rebuild that failed and was given up, until the next one starts.
    failed_rebuild: Mutex<Option<RebuildStatus>>,
    /// Serializes starting rebuilds.
    rebuild_lock: tokio::sync::Mutex<()>,
}

impl Slot {
    /// Whether `generation` is the generation being built.
    pub(crate) fn is_building(&self, generation: &Arc<Generation>) -> bool {
        self.building
            .lock()
            .as_ref()
            .is_some_and(|b| Arc::ptr_eq(b, generation))
    }
}

/// The status of a generation being built (or given up), against `head`.
fn rebuild_status(generation: &Generation, head: Position) -> RebuildStatus {
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

impl Projections {
    /// A host over `store` whose read databases live in `dir` (created on first use).
    pub fn new(store: Arc<dyn EventStore>, dir: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Host {
                registry: Registry::new(store, dir.into()),
                meta: Mutex::new(None),
            }),
        }
    }

    /// The directory holding the read databases.
    pub fn dir(&self) -> &Path {
        &self.inner.registry.dir
    }

    /// Registers a projection: opens its database (creating and migrating a fresh one if
    /// there is none for its version) and, if the host is started, starts its runner.
    ///
    /// If the answering database was built by another version, it keeps answering while
    /// a database for the new version builds from position 0; the new one takes over
    /// when it has caught up, and the old file is removed. This opens files and may
    /// migrate a database: call it while setting up, not on a hot path.
    pub fn register(&self, projection: Arc<dyn SqliteProjection>) -> Result<(), ProjectionError> {
        let name = projection.name();
        validate_name(name)?;
        let registry = &self.inner.registry;
        registry.check_free(name)?;
        let meta = self.inner.meta()?;
        let dir = &registry.dir;
        let entry = meta.get(name)?;
        let version = projection.version();
        let exists = |id: GenerationId| meta::generation_path(dir, name, id).exists();
        let generation = |id: GenerationId, code: Option<Arc<dyn SqliteProjection>>| {
            Arc::new(Generation::new(
                name,
                id,
                meta::generation_path(dir, name, id),
                code,
            ))
        };
        let open = |id: GenerationId| -> Result<Arc<Generation>, ProjectionError> {
            let opened = generation(id, Some(projection.clone()));
            opened.writer()?;
            Ok(opened)
        };
        let fresh = resumable_or_next(&entry, version, exists);
        let (active, building) = match entry.active {
            Some(a) if a.version == version && exists(a) => {
                let resumable = entry
                    .building
                    .filter(|&b| b.version == version && exists(b));
                (open(a)?, resumable.map(open).transpose()?)
            }
            Some(a) if exists(a) => {
                // An older (or newer) version keeps answering while this one builds.
                let stale = generation(a, None);
                stale.load_stale()?;
                (stale, Some(open(fresh)?))
            }
            _ => (open(fresh)?, None),
        };
        let entry = Entry {
            active: Some(active.id),
            building: building.as_ref().map(|b| b.id),
        };
        meta.set(name, entry)?;
        let keep: Vec<GenerationId> = [entry.active, entry.building]
            .into_iter()
            .flatten()
            .collect();
        meta::remove_leftovers(dir, name, &keep)?;
        let slot = Arc::new(Slot {
            projection: projection.clone(),
            active: watch::Sender::new(active),
            building: Mutex::new(building),
            failed_rebuild: Mutex::new(None),
            rebuild_lock: tokio::sync::Mutex::new(()),
        });
        if let Some(runtime) = registry.insert(name, slot.clone())? {
            self.inner.spawn_slot(&runtime, &slot);
        }
        Ok(())
    }

    /// Starts every registered projection's runner on the current tokio runtime (and
    /// those registered later as they come). Starting a started host does nothing.
    /// Outside a tokio runtime nothing starts and an error is logged.
    pub fn start(&self) {
        let Some(runtime) = self.inner.registry.start("projections") else {
            return;
        };
        for slot in self.inner.registry.all() {
            self.inner.spawn_slot(&runtime, &slot);
        }
    }

    /// Stops every runner after its current batch commits, waits for them, and closes
    /// the writer connections. Queries keep working; `start` resumes from the
    /// checkpoints.
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
        for generation in &generations {
            generation.close_writer().await;
        }
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
                    // A failed answering runner says so even while a rebuild builds.
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

    /// The checkpoint of the answering read model of `name`: everything up to it is
    /// applied, so a query that reads this first answers at least that fresh.
    pub fn checkpoint(&self, name: &str) -> Result<Position, ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let active = slot.active.borrow().clone();
        Ok(active.lane.checkpoint())
    }

    /// Waits until the answering read model of `name` has applied everything up to
    /// `position` (a command's consistency token), for at most `timeout`.
    ///
    /// [`ProjectionError::Timeout`] if it does not get there in time (a runner not
    /// started yet is waited for); [`ProjectionError::Stopped`] at once if its runner
    /// stopped for good before `position` (a poison event under policy `Stop`, a
    /// checkpoint beyond the log's head).
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
            // A new answering generation (a rebuild took over) is waited on afresh.
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

    /// Runs `f` on a read-only connection to the answering database of `name`, on a
    /// blocking-pool thread. Connections are pooled; `f` must not keep one.
    pub async fn query<T: Send + 'static>(
        &self,
        name: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let generation = slot.active.borrow().clone();
        let joined = tokio::task::spawn_blocking(move || generation.with_reader(f)).await;
        match joined {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(source))) => Err(ProjectionError::Query {
                name: name.to_owned(),
                source,
            }),
            Ok(Err(err)) => Err(err),
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Err(ProjectionError::ShutDown),
        }
    }

    /// Runs `f` on a read-only connection to the answering database of `name`, on the
    /// calling thread, for a point read: a few rows found by their key through an index,
    /// from pages the pooled connection has cached. Such a read takes a few
    /// microseconds, less than the hop to a blocking-pool thread and back that
    /// [`Projections::query`] makes; anything that may scan, sort or search belongs there.
    ///
    /// NOTE: this is the one place SQLite runs on the caller's (a runtime worker's)
    /// thread. Readers of a WAL database do not wait on the writer, so the read is bounded
    /// by the rows it touches; the first read of a generation opens its connection here.
    pub fn point_query<T>(
        &self,
        name: &str,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let generation = slot.active.borrow().clone();
        match generation.with_reader(f) {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(source)) => Err(ProjectionError::Query {
                name: name.to_owned(),
                source,
            }),
            Err(err) => Err(err),
        }
    }

    /// Rebuilds `name` without downtime: a new generation builds from position 0 beside
    /// the answering one, which keeps answering (and following the log) until the new
    /// one has caught up and takes over; then the old file is removed. Returns once the
    /// new generation answers. A rebuild already in progress is waited for, not doubled.
    /// The host must be started.
    ///
    /// A rebuild whose runner stops for good (a poison event under policy `Stop`) is
    /// given up: its file is removed, the answering generation keeps answering, the
    /// status shows the failed rebuild, and this returns [`ProjectionError::Stopped`].
    pub async fn rebuild(&self, name: &str) -> Result<(), ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let generation = {
            let _guard = slot.rebuild_lock.lock().await;
            let runtime = self.inner.registry.started()?;
            let existing = slot.building.lock().clone();
            match existing {
                Some(generation) => generation,
                None => {
                    let host = self.inner.clone();
                    let slot2 = slot.clone();
                    let generation = tokio::task::spawn_blocking(move || host.new_building(&slot2))
                        .await
                        .map_err(|_| ProjectionError::ShutDown)??;
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

    /// Restarts the runners of `name` that stopped for good (on a poison event under
    /// policy `Stop`, or a checkpoint beyond the log's head) from their checkpoints: for
    /// when the projection's code was fixed, or the cause was outside the event. Does
    /// nothing to a runner that is running. The host must be started.
    pub fn restart(&self, name: &str) -> Result<(), ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let runtime = self.inner.registry.started()?;
        self.inner.spawn_slot(&runtime, &slot);
        Ok(())
    }

    /// The parked (dead-letter) events of the answering database of `name`, oldest
    /// first. Reads the database on the calling thread.
    pub fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let generation = slot.active.borrow().clone();
        generation
            .with_reader(crate::core::list_parked)?
            .map_err(|source| ProjectionError::Query {
                name: name.to_owned(),
                source,
            })
    }

    /// Applies the parked event at `position` again (after a fix, say). On success it
    /// leaves the dead-letter table, in the same transaction as its effect; on failure
    /// [`ProjectionError::Apply`] says why and the event stays parked.
    pub async fn retry_parked(
        &self,
        name: &str,
        position: Position,
    ) -> Result<(), ProjectionError> {
        let slot = self.inner.registry.get(name)?;
        let generation = slot.active.borrow().clone();
        let g = generation.clone();
        let writer = tokio::task::spawn_blocking(move || g.writer())
            .await
            .map_err(|_| ProjectionError::ShutDown)??;
        match writer
            .call(move |core| core.retry_parked(position))
            .await??
        {
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

/// The generation to build for `version`: the one being built for it if its file is
/// there, else a new number.
fn resumable_or_next(
    entry: &Entry,
    version: u32,
    exists: impl Fn(GenerationId) -> bool,
) -> GenerationId {
    entry
        .building
        .filter(|&b| b.version == version && exists(b))
        .unwrap_or(GenerationId {
            version,
            generation: entry.next_generation(),
        })
}

impl Host {
    fn meta(&self) -> Result<Arc<Meta>, ProjectionError> {
        let mut meta = self.meta.lock();
        if let Some(meta) = meta.as_ref() {
            return Ok(meta.clone());
        }
        let opened = Arc::new(Meta::open(&self.registry.dir)?);
        *meta = Some(opened.clone());
        Ok(opened)
    }

    /// Every generation of every slot.
    fn generations(&self) -> Vec<Arc<Generation>> {
        let mut out = Vec::new();
        for slot in self.registry.all() {
            out.push(slot.active.borrow().clone());
            if let Some(building) = slot.building.lock().clone() {
                out.push(building);
            }
        }
        out
    }

    /// Spawns the runners a slot needs that are not running.
    fn spawn_slot(self: &Arc<Self>, runtime: &Handle, slot: &Arc<Slot>) {
        let active = slot.active.borrow().clone();
        // An answering generation without code (an older version) has nothing to run.
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
        slot: &Arc<Slot>,
        generation: &Arc<Generation>,
    ) {
        self.registry.spawn(
            runtime,
            Arc::new(GenerationSink {
                host: self.clone(),
                slot: slot.clone(),
                generation: generation.clone(),
            }),
        );
    }

    /// Creates a generation to rebuild `slot` into (blocking: opens and migrates a file).
    fn new_building(&self, slot: &Slot) -> Result<Arc<Generation>, ProjectionError> {
        let projection = slot.projection.clone();
        let name = projection.name();
        let meta = self.meta()?;
        let entry = meta.get(name)?;
        // NOTE: never the number of a given-up generation whose file may still be on its
        // way out (it goes when its last handle drops): that would remove the new file.
        let given_up = slot
            .failed_rebuild
            .lock()
            .as_ref()
            .map_or(0, |failed| failed.generation + 1);
        let id = GenerationId {
            version: projection.version(),
            generation: entry.next_generation().max(given_up),
        };
        let generation = Arc::new(Generation::new(
            name,
            id,
            meta::generation_path(&self.registry.dir, name, id),
            Some(projection),
        ));
        generation.writer()?;
        meta.set(
            name,
            Entry {
                active: Some(slot.active.borrow().id),
                building: Some(id),
            },
        )?;
        *slot.building.lock() = Some(generation.clone());
        Ok(generation)
    }

    /// Makes the caught-up generation being built the answering one, and retires the old.
    pub(crate) async fn promote(
        &self,
        slot: &Slot,
        generation: &Arc<Generation>,
    ) -> Result<(), ProjectionError> {
        let meta = self.meta()?;
        let name = generation.name;
        let entry = Entry {
            active: Some(generation.id),
            building: None,
        };
        // NOTE: the metadata names the new file before the old one is removed, so a
        // crash in between leaves the old file as a leftover, never a missing active one.
        tokio::task::spawn_blocking(move || meta.set(name, entry))
            .await
            .map_err(|_| ProjectionError::ShutDown)??;
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

    /// Gives up a generation being built whose runner stopped for good: the metadata
    /// stops naming it, its file goes, and the status keeps what happened. The answering
    /// generation is untouched.
    pub(crate) async fn give_up(
        &self,
        slot: &Slot,
        generation: &Arc<Generation>,
        cause: &StopCause,
    ) {
        let name = generation.name;
        let active = slot.active.borrow().id;
        let entry = Entry {
            active: Some(active),
            building: None,
        };
        // NOTE: the metadata stops naming the file before it is removed; should this
        // fail, the name it keeps points at no file, which registration ignores.
        let forgotten = match self.meta() {
            Ok(meta) => tokio::task::spawn_blocking(move || meta.set(name, entry))
                .await
                .map_err(|_| ProjectionError::ShutDown)
                .and_then(|set| set),
            Err(err) => Err(err),
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
