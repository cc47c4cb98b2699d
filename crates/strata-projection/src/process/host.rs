//! [`ProcessManagers`]: the host of process managers, and each one's runner (a thin async
//! loop over the synchronous `core`): handle events in batches, fire due timeouts, then
//! send the outbox through the [`CommandSender`], retrying failed sends with backoff.
//!
//! It must not decide anything itself: reactions come from the process manager, and
//! whether a command is accepted is the command side's business.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use strata_core::{Position, Timestamp};
use strata_store::EventStore;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::core::{Counts, Fault, ProcessCore};
use super::typed::{DynProcess, Typed};
use super::{CommandSender, ProcessManager};
use crate::backoff::{Backoff, sleep_or_stop};
use crate::db::now;
use crate::feed::{Feed, Next, note_pending};
use crate::host::{seconds_since, validate_name};
use crate::worker::Worker;
use crate::{ProcessStatus, ProjectionError, RunnerState};

/// Outbox entries read per round of sending.
const SEND_BATCH: usize = 64;

/// The host of a set of process managers over one event store. Each keeps its instance
/// states, timeouts, outbox and checkpoint in its own SQLite file in the host's
/// directory. Cloning is cheap and gives another handle to the same host.
#[derive(Clone)]
pub struct ProcessManagers {
    inner: Arc<Host>,
}

struct Host {
    store: Arc<dyn EventStore>,
    dir: PathBuf,
    slots: RwLock<BTreeMap<&'static str, Arc<Slot>>>,
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    head: watch::Receiver<Position>,
}

#[derive(Debug, Clone)]
struct Info {
    state: RunnerState,
    last_error: Option<String>,
    retrying: bool,
    counts: Counts,
    pending_since: Option<Timestamp>,
}

struct Slot {
    manager: Arc<dyn DynProcess>,
    path: PathBuf,
    checkpoint: watch::Sender<Position>,
    info: Mutex<Info>,
    stop: watch::Sender<bool>,
    writer: Mutex<Option<Arc<Worker<ProcessCore>>>>,
    running: AtomicBool,
}

impl Slot {
    fn update(&self, f: impl FnOnce(&mut Info)) {
        f(&mut self.info.lock());
        self.checkpoint.send_modify(|_| {});
    }

    fn publish_checkpoint(&self, checkpoint: Position) {
        self.checkpoint.send_if_modified(|c| {
            let newer = checkpoint > *c;
            if newer {
                *c = checkpoint;
            }
            newer
        });
    }

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
        self.publish_checkpoint(checkpoint);
        self.update(|info| info.counts = counts);
        *self.writer.lock() = Some(worker.clone());
        Ok(worker)
    }
}

fn fault_error(path: &Path, fault: Fault) -> ProjectionError {
    let message = match fault {
        Fault::Transient(m) | Fault::Fatal(m) => m,
    };
    ProjectionError::io(
        format!("cannot read {}", path.display()),
        std::io::Error::other(message),
    )
}

impl ProcessManagers {
    /// A host over `store` whose databases live in `dir` (created on first use).
    pub fn new(store: Arc<dyn EventStore>, dir: impl Into<PathBuf>) -> Self {
        let head = store.watch_head();
        Self {
            inner: Arc::new(Host {
                store,
                dir: dir.into(),
                slots: RwLock::new(BTreeMap::new()),
                runtime: Mutex::new(None),
                tasks: Mutex::new(Vec::new()),
                head,
            }),
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
        if self.inner.slots.read().contains_key(name) {
            return Err(ProjectionError::AlreadyRegistered(name.to_owned()));
        }
        std::fs::create_dir_all(&self.inner.dir).map_err(|e| {
            ProjectionError::io(format!("cannot create {}", self.inner.dir.display()), e)
        })?;
        let slot = Arc::new(Slot {
            manager: Arc::new(Typed { manager, sender }),
            path: self.inner.dir.join(format!("{name}.process.sqlite3")),
            checkpoint: watch::Sender::new(Position::ZERO),
            info: Mutex::new(Info {
                state: RunnerState::Stopped,
                last_error: None,
                retrying: false,
                counts: Counts::default(),
                pending_since: None,
            }),
            stop: watch::Sender::new(false),
            writer: Mutex::new(None),
            running: AtomicBool::new(false),
        });
        slot.writer()?;
        {
            let mut slots = self.inner.slots.write();
            if slots.contains_key(name) {
                return Err(ProjectionError::AlreadyRegistered(name.to_owned()));
            }
            slots.insert(name, slot.clone());
        }
        if let Some(runtime) = self.inner.runtime.lock().clone() {
            self.inner.spawn(&runtime, &slot);
        }
        Ok(())
    }

    /// Starts every runner on the current tokio runtime (and those registered later).
    /// Outside a tokio runtime nothing starts and an error is logged.
    pub fn start(&self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::error!("process managers cannot start outside a tokio runtime");
            return;
        };
        *self.inner.runtime.lock() = Some(runtime.clone());
        let slots: Vec<Arc<Slot>> = self.inner.slots.read().values().cloned().collect();
        for slot in slots {
            self.inner.spawn(&runtime, &slot);
        }
    }

    /// Stops every runner after its current batch (or send), waits for them and closes
    /// their databases. Unsent commands and pending timeouts stay stored for the next
    /// start.
    pub async fn shutdown(&self) {
        self.inner.runtime.lock().take();
        let slots: Vec<Arc<Slot>> = self.inner.slots.read().values().cloned().collect();
        for slot in &slots {
            slot.stop.send_replace(true);
        }
        let tasks = std::mem::take(&mut *self.inner.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
        for slot in &slots {
            let writer = slot.writer.lock().take();
            if let Some(writer) = writer {
                writer.close_and_join().await;
            }
        }
    }

    /// Restarts a runner that stopped on a state it could not decode, from its
    /// checkpoint. Does nothing to a running one.
    pub fn restart(&self, name: &str) -> Result<(), ProjectionError> {
        let slot = self.inner.slot(name)?;
        let runtime = self
            .inner
            .runtime
            .lock()
            .clone()
            .ok_or(ProjectionError::ShutDown)?;
        self.inner.spawn(&runtime, &slot);
        Ok(())
    }

    /// Every process manager's health, by name.
    pub fn status(&self) -> Vec<ProcessStatus> {
        let head = *self.inner.head.borrow();
        let slots: Vec<Arc<Slot>> = self.inner.slots.read().values().cloned().collect();
        slots
            .iter()
            .map(|slot| {
                let checkpoint = *slot.checkpoint.borrow();
                let info = slot.info.lock().clone();
                let lag_events = head.0.saturating_sub(checkpoint.0);
                ProcessStatus {
                    name: slot.manager.name().to_owned(),
                    checkpoint,
                    head,
                    lag_events,
                    lag_seconds: if lag_events == 0 {
                        0.0
                    } else {
                        info.pending_since.map_or(0.0, seconds_since)
                    },
                    state: info.state,
                    last_error: info.last_error,
                    retrying: info.retrying,
                    instances: info.counts.instances,
                    pending_timeouts: info.counts.timeouts,
                    outbox: info.counts.outbox,
                }
            })
            .collect()
    }

    /// Waits until `name` has handled every event up to `position` (its commands are
    /// recorded; sending may still be under way), for at most `timeout`.
    pub async fn wait_for(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        let slot = self.inner.slot(name)?;
        let mut rx = slot.checkpoint.subscribe();
        let waited = tokio::time::timeout(timeout, rx.wait_for(|c| *c >= position)).await;
        match waited {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(_)) => Err(ProjectionError::ShutDown),
            Err(_) => Err(ProjectionError::Timeout {
                name: name.to_owned(),
                position,
                checkpoint: *slot.checkpoint.borrow(),
            }),
        }
    }
}

impl Host {
    fn slot(&self, name: &str) -> Result<Arc<Slot>, ProjectionError> {
        self.slots
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| ProjectionError::Unknown(name.to_owned()))
    }

    fn spawn(self: &Arc<Self>, runtime: &tokio::runtime::Handle, slot: &Arc<Slot>) {
        if slot
            .running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        slot.stop.send_replace(false);
        slot.update(|info| {
            info.state = RunnerState::CatchingUp;
            info.retrying = false;
        });
        let task = runtime.spawn(run(self.store.clone(), slot.clone()));
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }
}

enum Exit {
    Stop,
    Failed,
    Retry(String),
}

/// Runs one process manager until it is stopped or fails.
async fn run(store: Arc<dyn EventStore>, slot: Arc<Slot>) {
    let mut stop = slot.stop.subscribe();
    let mut backoff = Backoff::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let s = slot.clone();
        let writer = match tokio::task::spawn_blocking(move || s.writer()).await {
            Ok(Ok(writer)) => Ok(writer),
            Ok(Err(err)) => Err(err.to_string()),
            Err(err) => Err(err.to_string()),
        };
        let exit = match writer {
            Ok(writer) => follow(&store, &slot, &writer, &mut stop, &mut backoff).await,
            Err(err) => Exit::Retry(err),
        };
        match exit {
            Exit::Stop => break,
            Exit::Failed => {
                slot.running.store(false, Ordering::Release);
                return;
            }
            Exit::Retry(err) => {
                tracing::warn!(process = slot.manager.name(), error = %err, "process manager retries after an error");
                slot.update(|info| {
                    info.last_error = Some(err);
                    info.retrying = true;
                });
                if sleep_or_stop(backoff.next_delay(), &mut stop).await {
                    break;
                }
            }
        }
    }
    slot.update(|info| {
        info.state = RunnerState::Stopped;
        info.retrying = false;
    });
    slot.running.store(false, Ordering::Release);
}

/// Turns a fault into how the session ends.
fn on_fault(slot: &Slot, fault: Fault) -> Exit {
    match fault {
        Fault::Transient(err) => Exit::Retry(err),
        Fault::Fatal(err) => {
            tracing::error!(process = slot.manager.name(), error = %err, "process manager stopped");
            slot.update(|info| {
                info.state = RunnerState::Failed;
                info.last_error = Some(err);
                info.retrying = false;
            });
            Exit::Failed
        }
    }
}

/// The instant of a wall-clock deadline.
fn instant_of(deadline: Timestamp) -> tokio::time::Instant {
    let wait = deadline
        .unix_nanos()
        .saturating_sub(now().unix_nanos())
        .max(0);
    tokio::time::Instant::now() + Duration::from_nanos(wait as u64)
}

async fn follow(
    store: &Arc<dyn EventStore>,
    slot: &Arc<Slot>,
    writer: &Arc<Worker<ProcessCore>>,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Exit {
    let mut counts = match writer.call(|core| core.counts()).await {
        Ok(Ok(counts)) => counts,
        Ok(Err(fault)) => return on_fault(slot, fault),
        Err(err) => return Exit::Retry(err.to_string()),
    };
    let mut feed = Feed::new(
        store.clone(),
        *slot.checkpoint.borrow(),
        slot.manager.filter(),
    );
    loop {
        // Due timeouts first (after a restart too): each fires once, in the transaction
        // that records what it leads to.
        if counts.next_deadline.is_some_and(|d| d <= now()) {
            let fired = writer
                .call(|core| core.fire_due(now()).and_then(|_| core.counts()))
                .await;
            counts = match fired {
                Ok(Ok(counts)) => counts,
                Ok(Err(fault)) => return on_fault(slot, fault),
                Err(err) => return Exit::Retry(err.to_string()),
            };
        }
        slot.update(|info| info.counts = counts);
        if counts.outbox > 0 {
            match send_outbox(slot, writer, stop, backoff).await {
                Ok(c) => counts = c,
                Err(exit) => return exit,
            }
            slot.update(|info| info.counts = counts);
        }

        let checkpoint = *slot.checkpoint.borrow();
        let wake_at = counts.next_deadline.map(instant_of);
        let next = feed
            .next_batch(checkpoint, stop, wake_at, |oldest, full| {
                slot.update(|info| {
                    note_pending(&mut info.pending_since, &mut info.state, oldest, full);
                });
            })
            .await;
        let (events, through, caught_up) = match next {
            Next::Stop => return Exit::Stop,
            Next::Wake => continue,
            Next::Failed(err) => return Exit::Retry(err.to_string()),
            Next::Apply {
                events,
                through,
                caught_up,
            } => (events, through, caught_up),
        };
        if !events.is_empty() || through.is_some() {
            let through = through.unwrap_or(Position::ZERO);
            let applied = writer
                .call(move |core| {
                    let checkpoint = core.apply_batch(&events, through)?;
                    Ok::<_, Fault>((checkpoint, core.counts()?))
                })
                .await;
            match applied {
                Ok(Ok((checkpoint, c))) => {
                    backoff.reset();
                    counts = c;
                    slot.publish_checkpoint(checkpoint);
                    slot.update(|info| {
                        info.counts = counts;
                        info.pending_since = None;
                        info.retrying = false;
                    });
                }
                Ok(Err(fault)) => return on_fault(slot, fault),
                Err(err) => return Exit::Retry(err.to_string()),
            }
        }
        if caught_up && slot.info.lock().state != RunnerState::Live {
            slot.update(|info| {
                info.state = RunnerState::Live;
                info.pending_since = None;
            });
        }
    }
}

/// Sends the outbox oldest first, deleting each command once sent; a failed send is
/// retried with backoff. Stops between commands when asked.
async fn send_outbox(
    slot: &Arc<Slot>,
    writer: &Arc<Worker<ProcessCore>>,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Result<Counts, Exit> {
    loop {
        let pending = match writer.call(|core| core.outbox(SEND_BATCH)).await {
            Ok(Ok(pending)) => pending,
            Ok(Err(fault)) => return Err(on_fault(slot, fault)),
            Err(err) => return Err(Exit::Retry(err.to_string())),
        };
        if pending.is_empty() {
            return match writer.call(|core| core.counts()).await {
                Ok(Ok(counts)) => Ok(counts),
                Ok(Err(fault)) => Err(on_fault(slot, fault)),
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
                            Ok(Err(fault)) => return Err(on_fault(slot, fault)),
                            Err(err) => return Err(Exit::Retry(err.to_string())),
                        }
                        backoff.reset();
                        if slot.info.lock().retrying {
                            slot.update(|info| info.retrying = false);
                        }
                        break;
                    }
                    Err(err) => {
                        let message =
                            format!("sending command {} failed: {err}", entry.context.command_id);
                        tracing::warn!(process = slot.manager.name(), error = %message, "process manager retries a send");
                        slot.update(|info| {
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
