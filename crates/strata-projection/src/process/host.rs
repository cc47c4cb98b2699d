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

use super::core::{Counts, Fault, Outgoing, ProcessCore};
use super::typed::{DynProcess, Typed};
use super::{CommandSender, ProcessManager};
use crate::backoff::{Backoff, sleep_or_stop};
use crate::db::now;
use crate::lane::{Lane, WaitEnd, wait_error};
use crate::lease::{Fence, Leases};
use crate::registry::{Registry, validate_name};
use crate::supervise::{Exit, Sink};
use crate::worker::{Priority, Worker};
use crate::{ProcessStatus, ProjectionError, StopCause};

/// Outbox entries read per round of sending.
const SEND_BATCH: usize = 64;

/// The host of a set of process managers over one event store. Each keeps its instance
/// states, timeouts, outbox and checkpoint in its own SQLite file in the host's
/// directory, or (with the `postgres` feature, [`ProcessManagers::on_postgres`]) in a
/// PostgreSQL database that several nodes share, where each runs on the one node that
/// holds its lease. Cloning is cheap and gives another handle to the same host.
#[derive(Clone)]
pub struct ProcessManagers {
    inner: Arc<Registry<Slot>>,
    #[cfg(feature = "postgres")]
    postgres: Option<crate::pg::PostgresHome>,
}

/// One registered process manager: its sink.
struct Slot {
    manager: Arc<dyn DynProcess>,
    home: Home,
    lane: Lane,
    counts: Mutex<Counts>,
}

/// Where a process manager's state lives.
enum Home {
    /// A SQLite file of this node, written by a worker thread.
    Sqlite {
        path: PathBuf,
        writer: Mutex<Option<Arc<Worker<ProcessCore>>>>,
    },
    /// PostgreSQL, shared by every node, under a lease.
    #[cfg(feature = "postgres")]
    Postgres {
        state: crate::pg::PgProcessState,
        leases: Arc<dyn Leases>,
        /// The grant the current session runs under (`None` while standing by).
        fence: Mutex<Option<Fence>>,
    },
}

impl Home {
    /// The SQLite file and its writer, if the state lives in one.
    #[allow(clippy::type_complexity)]
    fn sqlite(&self) -> Option<(&Path, &Mutex<Option<Arc<Worker<ProcessCore>>>>)> {
        match self {
            Home::Sqlite { path, writer } => Some((path, writer)),
            #[cfg(feature = "postgres")]
            Home::Postgres { .. } => None,
        }
    }
}

/// A result of the state's storage, or how the session ends.
type Step<T> = Result<T, Exit>;

impl Slot {
    /// The SQLite writer, opening the database on a new thread if it is closed
    /// (blocking).
    fn writer(
        &self,
        path: &Path,
        writer: &Mutex<Option<Arc<Worker<ProcessCore>>>>,
    ) -> Result<Arc<Worker<ProcessCore>>, ProjectionError> {
        if let Some(writer) = writer.lock().clone() {
            return Ok(writer);
        }
        let manager = self.manager.clone();
        let file = path.to_owned();
        let worker = Arc::new(Worker::spawn(
            format!("strata-process-{}", self.manager.name()),
            Priority::Background,
            move || ProcessCore::open(manager, &file),
        )?);
        let (checkpoint, counts) =
            worker.call_blocking(|core| (core.checkpoint(), core.counts()))?;
        let counts = counts.map_err(|f| fault_error(path, f))?;
        self.lane.reset_checkpoint(checkpoint);
        self.set_counts(counts);
        *writer.lock() = Some(worker.clone());
        Ok(worker)
    }

    /// Opens the state (if closed) and publishes its checkpoint and counts; a leased
    /// state remembers `fence` to commit under.
    async fn open_home(self: Arc<Self>, fence: Option<Fence>) -> Result<(), String> {
        #[cfg(feature = "postgres")]
        if let Home::Postgres {
            state,
            fence: current,
            ..
        } = &self.home
        {
            *current.lock() = fence;
            let (checkpoint, counts) = state.open().await.map_err(|fault| {
                let (Fault::Transient(cause) | Fault::Fatal(cause)) = fault;
                cause.to_string()
            })?;
            self.lane.reset_checkpoint(checkpoint);
            self.set_counts(counts);
            return Ok(());
        }
        // A state of this node's own is not leased.
        let _ = fence;
        let opened = tokio::task::spawn_blocking(move || match self.home.sqlite() {
            Some((path, writer)) => self.writer(path, writer).map(|_| ()),
            None => Ok(()),
        })
        .await;
        match opened {
            Ok(Ok(())) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(err) => Err(err.to_string()),
        }
    }

    /// The SQLite writer if it is open (never blocks).
    fn current_writer(
        &self,
        writer: &Mutex<Option<Arc<Worker<ProcessCore>>>>,
    ) -> Step<Arc<Worker<ProcessCore>>> {
        writer
            .lock()
            .clone()
            .ok_or_else(|| Exit::Retry(format!("the writer of {} is closed", self.manager.name())))
    }

    /// The grant a leased state commits under; a session without one must not commit.
    #[cfg(feature = "postgres")]
    fn fence(&self, fence: &Mutex<Option<Fence>>) -> Step<Fence> {
        fence.lock().clone().ok_or_else(|| {
            Exit::Retry(format!(
                "{} holds no lease to commit under",
                self.manager.name()
            ))
        })
    }

    /// Applies a batch: the committed checkpoint and the counts after it.
    async fn apply_home(
        &self,
        events: Vec<RecordedEvent>,
        through: Position,
    ) -> Step<(Position, Counts)> {
        match &self.home {
            Home::Sqlite { writer, .. } => {
                let writer = self.current_writer(writer)?;
                let applied = writer
                    .call(move |core| {
                        let checkpoint = core.apply_batch(&events, through)?;
                        Ok::<_, Fault>((checkpoint, core.counts()?))
                    })
                    .await;
                worker_step(applied)
            }
            #[cfg(feature = "postgres")]
            Home::Postgres { state, fence, .. } => {
                let fence = self.fence(fence)?;
                state
                    .apply_batch(&events, through, Some(&fence))
                    .await
                    .map_err(on_fault)
            }
        }
    }

    /// Fires the timeouts due now: the counts after.
    async fn fire_due_home(&self) -> Step<Counts> {
        match &self.home {
            Home::Sqlite { writer, .. } => {
                let writer = self.current_writer(writer)?;
                let fired = writer
                    .call(|core| core.fire_due(now()).and_then(|_| core.counts()))
                    .await;
                worker_step(fired)
            }
            #[cfg(feature = "postgres")]
            Home::Postgres { state, fence, .. } => {
                let fence = self.fence(fence)?;
                state.fire_due(now(), Some(&fence)).await.map_err(on_fault)
            }
        }
    }

    /// The oldest commands waiting to be sent.
    async fn outbox_home(&self) -> Step<Vec<Outgoing>> {
        match &self.home {
            Home::Sqlite { writer, .. } => {
                let writer = self.current_writer(writer)?;
                worker_step(writer.call(|core| core.outbox(SEND_BATCH)).await)
            }
            #[cfg(feature = "postgres")]
            Home::Postgres { state, .. } => state.outbox(SEND_BATCH).await.map_err(on_fault),
        }
    }

    /// Forgets a sent command.
    async fn sent_home(&self, seq: i64) -> Step<()> {
        match &self.home {
            Home::Sqlite { writer, .. } => {
                let writer = self.current_writer(writer)?;
                worker_step(writer.call(move |core| core.sent(seq)).await)
            }
            #[cfg(feature = "postgres")]
            Home::Postgres { state, .. } => state.sent(seq).await.map_err(on_fault),
        }
    }

    /// The counts for the status.
    async fn counts_home(&self) -> Step<Counts> {
        match &self.home {
            Home::Sqlite { writer, .. } => {
                let writer = self.current_writer(writer)?;
                worker_step(writer.call(|core| core.counts()).await)
            }
            #[cfg(feature = "postgres")]
            Home::Postgres { state, .. } => state.counts().await.map_err(on_fault),
        }
    }

    fn set_counts(&self, counts: Counts) {
        *self.counts.lock() = counts;
    }
}

/// The answer of a job on the SQLite writer thread as a step.
fn worker_step<T>(answer: Result<Result<T, Fault>, ProjectionError>) -> Step<T> {
    match answer {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(fault)) => Err(on_fault(fault)),
        Err(err) => Err(Exit::Retry(err.to_string())),
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
            #[cfg(feature = "postgres")]
            postgres: None,
        }
    }

    /// A host over `store` whose process managers keep their state in `home`, shared
    /// with every other node on that database: each runs only while this node holds its
    /// lease (`process/<name>`), and stands by otherwise.
    #[cfg(feature = "postgres")]
    pub fn on_postgres(store: Arc<dyn EventStore>, home: crate::pg::PostgresHome) -> Self {
        Self {
            inner: Arc::new(Registry::new(store, PathBuf::new())),
            postgres: Some(home),
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
        let manager: Arc<dyn DynProcess> = Arc::new(Typed { manager, sender });
        let slot = Arc::new(Slot {
            home: self.home_of(&manager)?,
            manager,
            lane: Lane::new(Position::ZERO),
            counts: Mutex::new(Counts::default()),
        });
        if let Some((path, writer)) = slot.home.sqlite() {
            slot.writer(path, writer)?;
        }
        if let Some(runtime) = self.inner.insert(name, slot.clone())? {
            self.inner.spawn(&runtime, slot);
        }
        Ok(())
    }

    /// Where a newly registered process manager keeps its state.
    fn home_of(&self, manager: &Arc<dyn DynProcess>) -> Result<Home, ProjectionError> {
        #[cfg(feature = "postgres")]
        if let Some(home) = &self.postgres {
            return Ok(Home::Postgres {
                state: crate::pg::PgProcessState::new(home.pool().clone(), manager.clone()),
                leases: home.leases(),
                fence: Mutex::new(None),
            });
        }
        let dir = &self.inner.dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| ProjectionError::io(format!("cannot create {}", dir.display()), e))?;
        Ok(Home::Sqlite {
            path: dir.join(format!("{}.process.sqlite3", manager.name())),
            writer: Mutex::new(None),
        })
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
            if let Some((_, writer)) = slot.home.sqlite() {
                let writer = writer.lock().take();
                if let Some(writer) = writer {
                    writer.close_and_join().await;
                }
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
                    lease: lane.info.lease,
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

    fn lease(&self) -> Option<(Arc<dyn Leases>, String)> {
        match &self.home {
            Home::Sqlite { .. } => None,
            #[cfg(feature = "postgres")]
            Home::Postgres { leases, .. } => {
                Some((leases.clone(), format!("process/{}", self.manager.name())))
            }
        }
    }

    async fn open(self: Arc<Self>, fence: Option<Fence>) -> Result<(), String> {
        self.open_home(fence).await
    }

    async fn between_batches(
        &self,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> Result<Option<Instant>, Exit> {
        let mut counts = *self.counts.lock();
        // Due timeouts first (after a restart too): each fires once, in the transaction
        // that records what it leads to.
        if counts.next_deadline.is_some_and(|d| d <= now()) {
            counts = self.fire_due_home().await?;
            self.set_counts(counts);
        }
        if counts.outbox > 0 {
            counts = send_outbox(self, stop, backoff).await?;
            self.set_counts(counts);
        }
        Ok(counts.next_deadline.map(instant_of))
    }

    async fn apply(&self, events: Vec<RecordedEvent>, through: Position) -> Result<Position, Exit> {
        let (checkpoint, counts) = self.apply_home(events, through).await?;
        self.set_counts(counts);
        Ok(checkpoint)
    }
}

/// Sends the outbox oldest first, deleting each command once sent; a failed send is
/// retried with backoff. Stops between commands when asked (or when the lease is lost).
async fn send_outbox(
    slot: &Slot,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Result<Counts, Exit> {
    loop {
        let pending = slot.outbox_home().await?;
        if pending.is_empty() {
            return slot.counts_home().await;
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
                        slot.sent_home(entry.seq).await?;
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
