//! [`Projections`]: the host that registers projections, keeps each one's generations
//! (which file answers queries, which one is being built), starts and stops their
//! runners, and answers queries, waits and status.
//!
//! It must not apply events itself: that is the runner's (`runner`) and the state
//! machine's (`core`) job. It never runs SQLite on a runtime worker thread.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use rusqlite::Connection;
use strata_core::Position;
use strata_store::EventStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::generation::Generation;
use crate::meta::{self, Entry, GenerationId, Meta};
use crate::{
    ParkedEvent, ProjectionError, ProjectionStatus, RebuildStatus, RunnerState, SqliteProjection,
    db,
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
    pub(crate) store: Arc<dyn EventStore>,
    dir: PathBuf,
    meta: Mutex<Option<Arc<Meta>>>,
    slots: RwLock<BTreeMap<&'static str, Arc<Slot>>>,
    /// The runtime runners are spawned on, while the host is started.
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    head: watch::Receiver<Position>,
}

/// One registered projection.
pub(crate) struct Slot {
    pub(crate) projection: Arc<dyn SqliteProjection>,
    /// The generation answering queries.
    pub(crate) active: watch::Sender<Arc<Generation>>,
    /// The generation being built to replace it, if any.
    pub(crate) building: Mutex<Option<Arc<Generation>>>,
    /// Serializes starting rebuilds.
    rebuild_lock: tokio::sync::Mutex<()>,
}

impl Slot {
    /// Whether `gen` is the generation being built.
    pub(crate) fn is_building(&self, generation: &Arc<Generation>) -> bool {
        self.building
            .lock()
            .as_ref()
            .is_some_and(|b| Arc::ptr_eq(b, generation))
    }
}

/// Checks a projection or process-manager name: it becomes part of file names.
pub(crate) fn validate_name(name: &str) -> Result<(), ProjectionError> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > 64 {
        Some("must be at most 64 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Some("must only hold a-z, 0-9 and _")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ProjectionError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}

impl Projections {
    /// A host over `store` whose read databases live in `dir` (created on first use).
    pub fn new(store: Arc<dyn EventStore>, dir: impl Into<PathBuf>) -> Self {
        let head = store.watch_head();
        Self {
            inner: Arc::new(Host {
                store,
                dir: dir.into(),
                meta: Mutex::new(None),
                slots: RwLock::new(BTreeMap::new()),
                runtime: Mutex::new(None),
                tasks: Mutex::new(Vec::new()),
                head,
            }),
        }
    }

    /// The directory holding the read databases.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
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
        if self.inner.slots.read().contains_key(name) {
            return Err(ProjectionError::AlreadyRegistered(name.to_owned()));
        }
        let meta = self.inner.meta()?;
        let dir = &self.inner.dir;
        let entry = meta.get(name)?;
        let version = projection.version();
        let exists = |id: GenerationId| meta::generation_path(dir, name, id).exists();
        let open = |id: GenerationId| -> Result<Arc<Generation>, ProjectionError> {
            let generation = Arc::new(Generation::new(
                name,
                id,
                meta::generation_path(dir, name, id),
                Some(projection.clone()),
                Position::ZERO,
                0,
            ));
            generation.open_writer()?;
            Ok(generation)
        };
        let next = entry.next_generation();
        let resumable = entry
            .building
            .filter(|&b| b.version == version && exists(b));
        let (active, building) = match entry.active {
            Some(a) if a.version == version && exists(a) => {
                (open(a)?, resumable.map(open).transpose()?)
            }
            Some(a) if exists(a) => {
                // An older (or newer) version keeps answering while this one builds.
                let stale = Arc::new(Generation::new(
                    name,
                    a,
                    meta::generation_path(dir, name, a),
                    None,
                    Position::ZERO,
                    0,
                ));
                let (checkpoint, parked) = stale
                    .with_reader(|conn| {
                        let checkpoint = db::read_checkpoint(conn)?;
                        let parked = crate::core::list_parked(conn)?.len() as u64;
                        Ok::<_, rusqlite::Error>((checkpoint, parked))
                    })?
                    .map_err(|e| {
                        ProjectionError::sqlite(format!("cannot read {}", stale.path.display()), e)
                    })?;
                stale.checkpoint.send_replace(checkpoint);
                stale.info.lock().parked = parked;
                let id = resumable.unwrap_or(GenerationId {
                    version,
                    generation: next,
                });
                (stale, Some(open(id)?))
            }
            _ => {
                let id = resumable.unwrap_or(GenerationId {
                    version,
                    generation: next,
                });
                (open(id)?, None)
            }
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
            rebuild_lock: tokio::sync::Mutex::new(()),
        });
        {
            let mut slots = self.inner.slots.write();
            if slots.contains_key(name) {
                return Err(ProjectionError::AlreadyRegistered(name.to_owned()));
            }
            slots.insert(name, slot.clone());
        }
        if let Some(runtime) = self.inner.runtime.lock().clone() {
            self.inner.spawn_slot(&runtime, &slot);
        }
        Ok(())
    }

    /// Starts every registered projection's runner on the current tokio runtime (and
    /// those registered later as they come). Starting a started host does nothing.
    /// Outside a tokio runtime nothing starts and an error is logged.
    pub fn start(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("projections cannot start outside a tokio runtime");
            return;
        };
        *self.inner.runtime.lock() = Some(runtime.clone());
        let slots: Vec<Arc<Slot>> = self.inner.slots.read().values().cloned().collect();
        for slot in slots {
            self.inner.spawn_slot(&runtime, &slot);
        }
    }

    /// Stops every runner after its current batch commits, waits for them, and closes
    /// the writer connections. Queries keep working; `start` resumes from the
    /// checkpoints.
    pub async fn shutdown(&self) {
        self.inner.runtime.lock().take();
        let generations = self.inner.generations();
        for generation in &generations {
            generation.stop.send_replace(true);
        }
        let tasks = std::mem::take(&mut *self.inner.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
        for generation in &generations {
            generation.close_writer().await;
        }
    }

    /// Every projection's health, by name.
    pub fn status(&self) -> Vec<ProjectionStatus> {
        let head = *self.inner.head.borrow();
        let slots: Vec<Arc<Slot>> = self.inner.slots.read().values().cloned().collect();
        slots
            .iter()
            .map(|slot| {
                let active = slot.active.borrow().clone();
                let building = slot.building.lock().clone();
                let checkpoint = *active.checkpoint.borrow();
                let info = active.info.lock().clone();
                let lag_events = head.0.saturating_sub(checkpoint.0);
                let rebuild = building.map(|b| {
                    let checkpoint = *b.checkpoint.borrow();
                    let info = b.info.lock().clone();
                    RebuildStatus {
                        version: b.id.version,
                        generation: b.id.generation,
                        checkpoint,
                        lag_events: head.0.saturating_sub(checkpoint.0),
                        state: info.state,
                        last_error: info.last_error,
                    }
                });
                ProjectionStatus {
                    name: active.name.to_owned(),
                    version: active.id.version,
                    generation: active.id.generation,
                    checkpoint,
                    head,
                    lag_events,
                    lag_seconds: if lag_events == 0 {
                        0.0
                    } else {
                        info.pending_since.map_or(0.0, seconds_since)
                    },
                    state: if rebuild.is_some() {
                        RunnerState::Rebuilding
                    } else {
                        info.state
                    },
                    last_error: info.last_error,
                    retrying: info.retrying,
                    parked: info.parked,
                    rebuild,
                }
            })
            .collect()
    }

    /// Waits until the answering read model of `name` has applied everything up to
    /// `position` (a command's consistency token), for at most `timeout`.
    ///
    /// [`ProjectionError::Timeout`] if it does not get there in time;
    /// [`ProjectionError::Failed`] at once if the projection stopped on a poison event
    /// before `position`.
    pub async fn wait_for(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let slot = self.inner.slot(name)?;
        let deadline = tokio::time::Instant::now() + timeout;
        let mut active_rx = slot.active.subscribe();
        loop {
            let generation = active_rx.borrow_and_update().clone();
            let mut checkpoint_rx = generation.checkpoint.subscribe();
            loop {
                let checkpoint = *checkpoint_rx.borrow_and_update();
                if checkpoint >= position {
                    return Ok(());
                }
                if let Some(err) = failed_error(&generation) {
                    return Err(err);
                }
                tokio::select! {
                    changed = checkpoint_rx.changed() => {
                        if changed.is_err() {
                            break;
                        }
                    }
                    changed = active_rx.changed() => {
                        if changed.is_err() {
                            return Err(ProjectionError::ShutDown);
                        }
                        break;
                    }
                    () = tokio::time::sleep_until(deadline) => {
                        return Err(ProjectionError::Timeout {
                            name: name.to_owned(),
                            position,
                            checkpoint,
                        });
                    }
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
        let slot = self.inner.slot(name)?;
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

    /// Rebuilds `name` without downtime: a new generation builds from position 0 beside
    /// the answering one, which keeps answering (and following the log) until the new
    /// one has caught up and takes over; then the old file is removed. Returns once the
    /// new generation answers. A rebuild already in progress is waited for, not doubled.
    /// The host must be started.
    pub async fn rebuild(&self, name: &str) -> Result<(), ProjectionError> {
        let slot = self.inner.slot(name)?;
        let generation = {
            let _guard = slot.rebuild_lock.lock().await;
            let runtime = self
                .inner
                .runtime
                .lock()
                .clone()
                .ok_or(ProjectionError::ShutDown)?;
            let existing = slot.building.lock().clone();
            match existing {
                Some(generation) => generation,
                None => {
                    let host = self.inner.clone();
                    let slot2 = slot.clone();
                    let generation = tokio::task::spawn_blocking(move || host.new_building(&slot2))
                        .await
                        .map_err(|_| ProjectionError::ShutDown)??;
                    self.inner.spawn_runner(&runtime, &slot, &generation);
                    generation
                }
            }
        };
        let mut active_rx = slot.active.subscribe();
        let mut checkpoint_rx = generation.checkpoint.subscribe();
        loop {
            if Arc::ptr_eq(&active_rx.borrow_and_update(), &generation) {
                return Ok(());
            }
            if let Some(err) = failed_error(&generation) {
                return Err(err);
            }
            if self.inner.runtime.lock().is_none() {
                return Err(ProjectionError::ShutDown);
            }
            tokio::select! {
                _ = active_rx.changed() => {}
                _ = checkpoint_rx.changed() => {}
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    }

    /// Restarts a runner that stopped on a poison event (policy `Stop`), from its
    /// checkpoint: for when the projection's code was fixed, or the failure was outside
    /// the event. Does nothing to a runner that is running.
    pub async fn restart(&self, name: &str) -> Result<(), ProjectionError> {
        let slot = self.inner.slot(name)?;
        let runtime = self
            .inner
            .runtime
            .lock()
            .clone()
            .ok_or(ProjectionError::ShutDown)?;
        self.inner.spawn_slot(&runtime, &slot);
        Ok(())
    }

    /// The parked (dead-letter) events of the answering database of `name`, oldest
    /// first. Reads the database on the calling thread.
    pub fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError> {
        let slot = self.inner.slot(name)?;
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
        let slot = self.inner.slot(name)?;
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
                generation.update(|info| info.parked = info.parked.saturating_sub(1));
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

/// The error for a generation whose runner stopped on a poison event.
fn failed_error(generation: &Generation) -> Option<ProjectionError> {
    let info = generation.info.lock();
    match (info.state, info.failed_at) {
        (RunnerState::Failed, Some(position)) => Some(ProjectionError::Failed {
            name: generation.name.to_owned(),
            position,
            error: info.last_error.clone().unwrap_or_default(),
        }),
        _ => None,
    }
}

/// Seconds from `t` to now (0 if `t` is in the future).
pub(crate) fn seconds_since(t: strata_core::Timestamp) -> f64 {
    let nanos = db::now().unix_nanos().saturating_sub(t.unix_nanos());
    nanos.max(0) as f64 / 1e9
}

impl Host {
    fn meta(&self) -> Result<Arc<Meta>, ProjectionError> {
        let mut meta = self.meta.lock();
        if let Some(meta) = meta.as_ref() {
            return Ok(meta.clone());
        }
        let opened = Arc::new(Meta::open(&self.dir)?);
        *meta = Some(opened.clone());
        Ok(opened)
    }

    fn slot(&self, name: &str) -> Result<Arc<Slot>, ProjectionError> {
        self.slots
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| ProjectionError::Unknown(name.to_owned()))
    }

    /// Every generation of every slot.
    fn generations(&self) -> Vec<Arc<Generation>> {
        let slots: Vec<Arc<Slot>> = self.slots.read().values().cloned().collect();
        let mut out = Vec::new();
        for slot in slots {
            out.push(slot.active.borrow().clone());
            if let Some(building) = slot.building.lock().clone() {
                out.push(building);
            }
        }
        out
    }

    /// Spawns the runners a slot needs that are not running.
    fn spawn_slot(self: &Arc<Self>, runtime: &tokio::runtime::Handle, slot: &Arc<Slot>) {
        let active = slot.active.borrow().clone();
        if active.projection.is_some() {
            self.spawn_runner(runtime, slot, &active);
        }
        let building = slot.building.lock().clone();
        if let Some(building) = building {
            self.spawn_runner(runtime, slot, &building);
        }
    }

    pub(crate) fn spawn_runner(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        slot: &Arc<Slot>,
        generation: &Arc<Generation>,
    ) {
        if !generation.claim_runner() {
            return;
        }
        generation.stop.send_replace(false);
        // Before the task runs, so a waiter never sees the previous run's failure.
        generation.update(|info| {
            info.state = RunnerState::CatchingUp;
            info.failed_at = None;
            info.retrying = false;
        });
        let task = runtime.spawn(crate::runner::run(
            self.clone(),
            slot.clone(),
            generation.clone(),
        ));
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Creates a generation to rebuild `slot` into (blocking: opens and migrates a file).
    fn new_building(&self, slot: &Slot) -> Result<Arc<Generation>, ProjectionError> {
        let projection = slot.projection.clone();
        let name = projection.name();
        let meta = self.meta()?;
        let entry = meta.get(name)?;
        let id = GenerationId {
            version: projection.version(),
            generation: entry.next_generation(),
        };
        let generation = Arc::new(Generation::new(
            name,
            id,
            meta::generation_path(&self.dir, name, id),
            Some(projection),
            Position::ZERO,
            0,
        ));
        generation.open_writer()?;
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
        self: &Arc<Self>,
        slot: &Arc<Slot>,
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
}
