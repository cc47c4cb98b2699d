//! [`ProcessManagers`]: the host of process managers, and each one's [`Sink`] for the
//! shared supervise loop: handle events in batches, fire due timeouts, then send the
//! outbox through the [`CommandSender`], retrying failed sends with backoff.
//!
//! It must not decide anything itself: reactions come from the process manager, and
//! whether a command is accepted is the command side's business.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use strata_core::{Position, RecordedEvent, Timestamp};
use strata_store::{EventStore, ReadFilter};
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::time::Instant;

use super::core::{Counts, Fault, ProcessCore};
use super::typed::{DynProcess, Typed};
use super::{CommandSender, ProcessManager};
use crate::backoff::{Backoff, sleep_or_stop};
use crate::db::now;
use crate::lane::{Lane, WaitEnd, wait_error};
use crate::registry::{Registry, validate_name};
use crate::supervise::{Exit, Sink};
use crate::worker::Worker;
use crate::{ProcessStatus, ProjectionError, StopCause};

/// Outbox entries read per round of sending.
const SEND_BATCH: usize = 64;

/// The host of a set of process managers over one event store. Each keeps its instance
/// states, timeouts, outbox and checkpoint in its own SQLite file in the host's
/// directory. Cloning is cheap and gives another handle to the same host.
#[derive(Clone)]
pub struct ProcessManagers {
    inner: Arc<Registry<Slot>>,
}

/// One registered process manager: its sink.
struct Slot {
    manager: Arc<dyn DynProcess>,
    path: PathBuf,
    lane: Lane,
    counts: Mutex<Counts>,
    writer: Mutex<Option<Arc<Worker<ProcessCore>>>>,
}

impl Slot {
    /// The writer, opening the database on a new thread if it is closed (blocking).
    fn writer(&self) -> Result<Arc<Worker<ProcessCore>>, ProjectionError> {
        if let Some(writer) = self.writer.lock().clone() {
            return Ok(writer);
        }
        let manager = self.manager.clone();
        let path = self.path.clone();
        let worker = Arc::new(Worker::spawn(
            format!("strata-process-{}", self.manager.name()),
            move || ProcessCore::open(manager, &path),
        )?);
        let (checkpoint, counts) =
            worker.call_blocking(|core| (core.checkpoint(), core.counts()))?;
        let counts = counts.map_err(|f| fault_error(&self.path, f))?;
        self.lane.reset_checkpoint(checkpoint);
        self.set_counts(counts);
        *self.writer.lock() = Some(worker.clone());
        Ok(worker)
    }

    /// The writer if it is open (never blocks).
    fn current_writer(&self) -> Result<Arc<Worker<ProcessCore>>, Exit> {
        self.writer
            .lock()
            .clone()
            .ok_or_else(|| Exit::Retry(format!("the writer of {} is closed", self.manager.name())))
    }

    fn set_counts(&self, counts: Counts) {
        *self.counts.lock() = counts;
    }
}

fn fault_error(path: &Path, fault: Fault) -> ProjectionError {
    let (Fault::Transient(cause) | Fault::Fatal(cause)) = fault;
    ProjectionError::io(
        format!("cannot read {}", path.display()),
        std::io::Error::other(cause),
    )
}

/// Turns a fault into how the session ends.
fn on_fault(fault: Fault) -> Exit {
    match fault {
        Fault::Transient(err) => Exit::Retry(err.to_string()),
        Fault::Fatal(err) => Exit::Failed(StopCause::Undecodable {
            error: err.to_string(),
        }),
    }
}

impl ProcessManagers {
    /// A host over `store` whose databases live in `dir` (created on first use).
    pub fn new(store: Arc<dyn EventStore>, dir: impl Into<PathBuf>) -> Self {
        Self {
            inner: Arc::new(Registry::new(store, dir.into())),
        }
    }

    /// Registers a process manager with the sender of its commands: opens (creating) its
    /// database and, if the host is started, starts its runner.
    pub fn register<P: ProcessManager>(
        &self,
        manager: Arc<P>,
        sender: Arc<dyn CommandSender<P::Command>>,
    ) -> Result<(), ProjectionError> {
        let name = manager.name();
        validate_name(name)?;
        self.inner.check_free(name)?;
        let dir = &self.inner.dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| ProjectionError::io(format!("cannot create {}", dir.display()), e))?;
        let slot = Arc::new(Slot {
            manager: Arc::new(Typed { manager, sender }),
            path: dir.join(format!("{name}.process.sqlite3")),
            lane: Lane::new(Position::ZERO),
            counts: Mutex::new(Counts::default()),
            writer: Mutex::new(None),
        });
        slot.writer()?;
        if let Some(runtime) = self.inner.insert(name, slot.clone())? {
            self.inner.spawn(&runtime, slot);
        }
        Ok(())
    }

    /// Starts every runner on the current tokio runtime (and those registered later).
    /// Outside a tokio runtime nothing starts and an error is logged.
    pub fn start(&self) {
        let Some(runtime) = self.inner.start("process managers") else {
            return;
        };
        for slot in self.inner.all() {
            self.inner.spawn(&runtime, slot);
        }
    }

    /// Stops every runner after its current batch (or send), waits for them and closes
    /// their databases. Unsent commands and pending timeouts stay stored for the next
    /// start.
    pub async fn shutdown(&self) {
        let slots = self.inner.all();
        self.inner
            .stop_and_join(|| {
                for slot in &slots {
                    slot.lane.ask_stop();
                }
            })
            .await;
        for slot in &slots {
            let writer = slot.writer.lock().take();
            if let Some(writer) = writer {
                writer.close_and_join().await;
            }
        }
    }

    /// Restarts a runner that stopped for good (a state it could not decode, a
    /// checkpoint beyond the log's head), from its checkpoint. Does nothing to a running
    /// one. The host must be started.
    pub fn restart(&self, name: &str) -> Result<(), ProjectionError> {
        let slot = self.inner.get(name)?;
        let runtime: Handle = self.inner.started()?;
        self.inner.spawn(&runtime, slot);
        Ok(())
    }

    /// Every process manager's health, by name.
    pub fn status(&self) -> Vec<ProcessStatus> {
        let head = self.inner.head();
        self.inner
            .all()
            .iter()
            .map(|slot| {
                let lane = slot.lane.status(head);
                let counts = *slot.counts.lock();
                ProcessStatus {
                    name: slot.manager.name().to_owned(),
                    rebuildable: false,
                    checkpoint: lane.checkpoint,
                    head,
                    lag_events: lane.lag_events,
                    lag_seconds: lane.lag_seconds,
                    state: lane.info.state,
                    last_error: lane.info.last_error,
                    stopped_by: lane.info.stopped_by,
                    retrying: lane.info.retrying,
                    instances: counts.instances,
                    pending_timeouts: counts.timeouts,
                    outbox: counts.outbox,
                }
            })
            .collect()
    }

    /// Waits until `name` has handled every event up to `position` (its commands are
    /// recorded; sending may still be under way), for at most `timeout`.
    ///
    /// [`ProjectionError::Timeout`] if it does not get there in time (a runner not
    /// started yet is waited for); [`ProjectionError::Stopped`] at once if its runner
    /// stopped for good before `position`.
    pub async fn wait_for(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let slot = self.inner.get(name)?;
        let started = Instant::now();
        let end = slot
            .lane
            .wait_until(position, started + timeout, std::future::pending())
            .await;
        match end {
            WaitEnd::Reached => Ok(()),
            end => {
                Err(wait_error(name, position, end, started).unwrap_or(ProjectionError::ShutDown))
            }
        }
    }
}

/// The instant of a wall-clock deadline.
fn instant_of(deadline: Timestamp) -> Instant {
    let wait = deadline
        .unix_nanos()
        .saturating_sub(now().unix_nanos())
        .max(0);
    Instant::now() + Duration::from_nanos(wait as u64)
}

#[async_trait]
impl Sink for Slot {
    fn name(&self) -> &'static str {
        self.manager.name()
    }

    fn lane(&self) -> &Lane {
        &self.lane
    }

    fn filter(&self) -> Option<ReadFilter> {
        Some(self.manager.filter())
    }

    async fn open(self: Arc<Self>) -> Result<(), String> {
        match tokio::task::spawn_blocking(move || self.writer()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(err) => Err(err.to_string()),
        }
    }

    async fn between_batches(
        &self,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> Result<Option<Instant>, Exit> {
        let writer = self.current_writer()?;
        let mut counts = *self.counts.lock();
        // Due timeouts first (after a restart too): each fires once, in the transaction
        // that records what it leads to.
        if counts.next_deadline.is_some_and(|d| d <= now()) {
            let fired = writer
                .call(|core| core.fire_due(now()).and_then(|_| core.counts()))
                .await;
            counts = match fired {
                Ok(Ok(counts)) => counts,
                Ok(Err(fault)) => return Err(on_fault(fault)),
                Err(err) => return Err(Exit::Retry(err.to_string())),
            };
            self.set_counts(counts);
        }
        if counts.outbox > 0 {
            counts = send_outbox(self, &writer, stop, backoff).await?;
            self.set_counts(counts);
        }
        Ok(counts.next_deadline.map(instant_of))
    }

    async fn apply(&self, events: Vec<RecordedEvent>, through: Position) -> Result<Position, Exit> {
        let writer = self.current_writer()?;
        let applied = writer
            .call(move |core| {
                let checkpoint = core.apply_batch(&events, through)?;
                Ok::<_, Fault>((checkpoint, core.counts()?))
            })
            .await;
        match applied {
            Ok(Ok((checkpoint, counts))) => {
                self.set_counts(counts);
                Ok(checkpoint)
            }
            Ok(Err(fault)) => Err(on_fault(fault)),
            Err(err) => Err(Exit::Retry(err.to_string())),
        }
    }
}

/// Sends the outbox oldest first, deleting each command once sent; a failed send is
/// retried with backoff. Stops between commands when asked.
async fn send_outbox(
    slot: &Slot,
    writer: &Arc<Worker<ProcessCore>>,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Result<Counts, Exit> {
    loop {
        let pending = match writer.call(|core| core.outbox(SEND_BATCH)).await {
            Ok(Ok(pending)) => pending,
            Ok(Err(fault)) => return Err(on_fault(fault)),
            Err(err) => return Err(Exit::Retry(err.to_string())),
        };
        if pending.is_empty() {
            return match writer.call(|core| core.counts()).await {
                Ok(Ok(counts)) => Ok(counts),
                Ok(Err(fault)) => Err(on_fault(fault)),
                Err(err) => Err(Exit::Retry(err.to_string())),
            };
        }
        for entry in pending {
            loop {
                if *stop.borrow() {
                    return Err(Exit::Stop);
                }
                match slot
                    .manager
                    .send(&entry.command, entry.context.clone())
                    .await
                {
                    Ok(()) => {
                        let seq = entry.seq;
                        match writer.call(move |core| core.sent(seq)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(fault)) => return Err(on_fault(fault)),
                            Err(err) => return Err(Exit::Retry(err.to_string())),
                        }
                        backoff.reset();
                        if slot.lane.info().retrying {
                            slot.lane.update(|info| info.retrying = false);
                        }
                        break;
                    }
                    Err(err) => {
                        let message =
                            format!("sending command {} failed: {err}", entry.context.command_id);
                        tracing::warn!(process = slot.manager.name(), error = %message, "process manager retries a send");
                        slot.lane.update(|info| {
                            info.last_error = Some(message);
                            info.retrying = true;
                        });
                        if sleep_or_stop(backoff.next_delay(), stop).await {
                            return Err(Exit::Stop);
                        }
                    }
                }
            }
        }
    }
}
