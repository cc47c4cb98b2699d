//! [`Relays`]: runs relays, one task each, and reports their [`RelayStatus`]. A relay's
//! loop: connect, refuse a checkpoint beyond the head, follow the log from the
//! checkpoint in batches, hand each batch to the broker while earlier ones await their
//! confirmations (a [`Window`] of at most [`WINDOW`] events), and store as checkpoint
//! the end of the contiguous confirmed prefix; any fault drops every unconfirmed batch
//! and ends the session, and the next one starts after a backoff from the stored
//! checkpoint.
//!
//! On a database several servers share ([`Relays::on_postgres`]), a relay runs only
//! while this server holds its lease (`relay/<name>`): it stands by until then, reads
//! its checkpoint from the database when it takes the lease, stores it fenced by the
//! grant, and stands by again when it loses the lease.
//!
//! It must not decide how a broker publishes (that is the [`BrokerSink`]'s business) and
//! never writes to the event log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use futures::{FutureExt as _, StreamExt as _};
use parking_lot::Mutex;
use serde::Serialize;
use strata_core::{Position, RecordedEvent};
use strata_projection::{Fence, HeldLease, LeaseStatus, Leases, Taken};
use strata_store::{EventStore, ReadFilter};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::checkpoint::{Checkpoint, CheckpointFile};
use crate::config::validate_name;
use crate::sink::Confirmation;
use crate::window::Window;
use crate::{BrokerSink, Destination, RelayConfig, RelayError};

/// The most events one batch carries: enough to pipeline, few enough that a retried
/// batch is small.
const BATCH: usize = 256;
/// The most events handed to the broker and not yet confirmed: sixteen batches in
/// flight while the next are read and encoded. Everything in it is published again
/// after a fault, so it stays well inside a broker's duplicate window.
const WINDOW: u64 = 16 * BATCH as u64;
/// The first delay after a fault; it doubles up to [`BACKOFF_MAX`].
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
/// The longest delay between sessions.
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// What a relay is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RelayState {
    /// Connecting to its broker.
    Connecting,
    /// Publishing events the log had before it caught up.
    CatchingUp,
    /// Caught up with the head, publishing events as they commit.
    Live,
    /// Waiting to reconnect after a fault (see `last_error`).
    Retrying,
    /// Another server holds its lease and publishes; this one takes over when that
    /// lease is free (see `lease`).
    Standby,
    /// Not running (shut down).
    Stopped,
    /// Stopped for good: see `last_error`; only a restart runs it again.
    Failed,
}

impl RelayState {
    /// The state's name, as it serializes: `connecting`, `catching_up`, `live`,
    /// `retrying`, `standby`, `stopped`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::CatchingUp => "catching_up",
            Self::Live => "live",
            Self::Retrying => "retrying",
            Self::Standby => "standby",
            Self::Stopped => "stopped",
            Self::Failed => "failed",
        }
    }
}

/// A relay's health at one moment.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RelayStatus {
    /// The relay's name.
    pub name: String,
    /// Its broker (`nats`, `amqp`, `sns`).
    pub broker: &'static str,
    /// Where it publishes, without credentials.
    pub target: String,
    /// The last position the broker confirmed (0: nothing yet).
    pub checkpoint: Position,
    /// Events committed to the log and not yet confirmed by the broker.
    pub lag_events: u64,
    /// What it is doing.
    pub state: RelayState,
    /// The last fault it met, if any since it last published.
    pub last_error: Option<String>,
    /// Events confirmed by the broker since the process started (republished ones
    /// count again).
    pub published: u64,
    /// Its lease, when several servers share the relay (`None`: this server alone runs
    /// it).
    pub lease: Option<LeaseStatus>,
}

/// What a relay task shares with the host.
struct Shared {
    name: String,
    broker: &'static str,
    target: String,
    inner: watch::Sender<Inner>,
}

#[derive(Debug, Clone)]
struct Inner {
    checkpoint: Position,
    state: RelayState,
    last_error: Option<String>,
    published: u64,
    lease: Option<LeaseStatus>,
}

impl Shared {
    fn update(&self, f: impl FnOnce(&mut Inner)) {
        self.inner.send_modify(f);
    }

    fn status(&self, head: Position) -> RelayStatus {
        let inner = self.inner.borrow().clone();
        RelayStatus {
            name: self.name.clone(),
            broker: self.broker,
            target: self.target.clone(),
            checkpoint: inner.checkpoint,
            lag_events: head.0.saturating_sub(inner.checkpoint.0),
            state: inner.state,
            last_error: inner.last_error,
            published: inner.published,
            lease: inner.lease,
        }
    }
}

struct Running {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    task: JoinHandle<()>,
}

/// Where the relays keep their checkpoints, and whether they take leases.
#[derive(Clone)]
enum Home {
    /// A SQLite file per relay in the directory; this process alone runs them.
    Local,
    /// Rows of a PostgreSQL database several servers share, each relay under a lease.
    #[cfg(feature = "postgres")]
    Postgres {
        home: strata_projection::PostgresHome,
        leases: Arc<dyn Leases>,
    },
}

/// The relays of one process, over one event store. Cheap to clone.
#[derive(Clone)]
pub struct Relays {
    store: Arc<dyn EventStore>,
    dir: PathBuf,
    home: Home,
    head: watch::Receiver<Position>,
    running: Arc<Mutex<BTreeMap<String, Running>>>,
}

impl Relays {
    /// No relays yet, over `store`, keeping checkpoints in `dir` (created when the first
    /// relay starts).
    pub fn new(store: Arc<dyn EventStore>, dir: impl Into<PathBuf>) -> Self {
        let head = store.watch_head();
        Self {
            store,
            dir: dir.into(),
            home: Home::Local,
            head,
            running: Arc::new(Mutex::new(BTreeMap::new())),
        }
    }

    /// No relays yet, over `store`, for a server that shares `home`'s PostgreSQL
    /// database with others: each relay runs on the one server that holds its lease
    /// (`relay/<name>`, taken through `home`'s leases), and its checkpoint is a row of
    /// the `strata_relay` schema there (migrated now), which every server reads when it
    /// takes the lease over. A checkpoint file a relay left in `dir` (from before it ran
    /// on a shared database) is carried over when the database has none yet.
    #[cfg(feature = "postgres")]
    pub async fn on_postgres(
        store: Arc<dyn EventStore>,
        dir: impl Into<PathBuf>,
        home: &strata_projection::PostgresHome,
    ) -> Result<Self, RelayError> {
        crate::pg::migrate(home).await?;
        let leases: Arc<dyn Leases> = home.leases();
        let mut relays = Self::new(store, dir);
        relays.home = Home::Postgres {
            home: home.clone(),
            leases,
        };
        Ok(relays)
    }

    /// Starts a relay for `config` on the current tokio runtime (call it from inside one),
    /// publishing from its stored checkpoint (once it holds its lease, on a shared
    /// database). Opens the checkpoint file (a short blocking call).
    pub fn start(&self, config: RelayConfig) -> Result<(), RelayError> {
        let sink = sink_for(&config.destination);
        self.start_with(&config.name, sink)
    }

    /// Starts a relay named `name` that publishes through `sink` (a broker of one's own,
    /// or a test's), on the current tokio runtime.
    pub fn start_with(&self, name: &str, sink: Box<dyn BrokerSink>) -> Result<(), RelayError> {
        validate_name(name)?;
        describe_metrics();
        let mut running = self.running.lock();
        if running.get(name).is_some_and(|r| !r.task.is_finished()) {
            return Err(RelayError::AlreadyRunning(name.to_owned()));
        }
        let path = checkpoint_path(&self.dir, name);
        let (checkpoint, position, leases) = match &self.home {
            Home::Local => {
                std::fs::create_dir_all(&self.dir).map_err(|source| RelayError::CheckpointDir {
                    path: self.dir.clone(),
                    source,
                })?;
                let file = CheckpointFile::open(&path)?;
                let position = file.load()?;
                (Checkpoint::File(file), position, None)
            }
            #[cfg(feature = "postgres")]
            Home::Postgres { home, leases } => {
                // NOTE: a file from before is only read, to carry its position over; the
                // database's row is the checkpoint from now on.
                let seed = if path.exists() {
                    Some(CheckpointFile::open(&path)?.load()?)
                } else {
                    None
                };
                let row = crate::pg::PgCheckpoint::new(home, name);
                (
                    Checkpoint::Shared { row, seed },
                    Position::ZERO,
                    Some(leases.clone()),
                )
            }
        };
        let shared = Arc::new(Shared {
            name: name.to_owned(),
            broker: sink.broker(),
            target: sink.target(),
            inner: watch::Sender::new(Inner {
                checkpoint: position,
                state: RelayState::Connecting,
                last_error: None,
                published: 0,
                lease: None,
            }),
        });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(
            self.store.clone(),
            sink,
            checkpoint,
            shared.clone(),
            stop_rx,
            leases,
        ));
        running.insert(name.to_owned(), Running { shared, stop, task });
        Ok(())
    }

    /// Every relay's status, by name.
    pub fn status(&self) -> Vec<RelayStatus> {
        let head = *self.head.borrow();
        self.running
            .lock()
            .values()
            .map(|r| r.shared.status(head))
            .collect()
    }

    /// Waits until `name`'s status satisfies `done`, or until `timeout`; answers the
    /// status that satisfied it. Fails at once when the relay stopped for good.
    pub async fn wait_until(
        &self,
        name: &str,
        timeout: Duration,
        done: impl Fn(&RelayStatus) -> bool,
    ) -> Result<RelayStatus, RelayError> {
        let shared = self
            .running
            .lock()
            .get(name)
            .map(|r| r.shared.clone())
            .ok_or_else(|| RelayError::Unknown(name.to_owned()))?;
        let mut changes = shared.inner.subscribe();
        let mut head = self.head.clone();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let status = shared.status(*head.borrow_and_update());
            changes.borrow_and_update();
            if done(&status) {
                return Ok(status);
            }
            if status.state == RelayState::Failed {
                return Err(RelayError::Stopped {
                    name: name.to_owned(),
                    cause: status.last_error.unwrap_or_default(),
                });
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = head.changed() => {}
                () = tokio::time::sleep_until(deadline) => {
                    return Err(RelayError::Timeout {
                        name: name.to_owned(),
                        position: *head.borrow(),
                        checkpoint: status.checkpoint,
                    });
                }
            }
        }
    }

    /// Waits until `name` has published everything up to `position`.
    pub async fn wait_for(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<RelayStatus, RelayError> {
        self.wait_until(name, timeout, |s| s.checkpoint >= position)
            .await
            .map_err(|err| match err {
                RelayError::Timeout {
                    name, checkpoint, ..
                } => RelayError::Timeout {
                    name,
                    position,
                    checkpoint,
                },
                other => other,
            })
    }

    /// Asks every relay to stop and waits for them. A relay stops sending at once and
    /// stores the checkpoint its broker confirmed so far; what it had sent without a
    /// confirmation yet is published again when it next starts.
    pub async fn shutdown(&self) {
        let running = std::mem::take(&mut *self.running.lock());
        for r in running.values() {
            r.stop.send_replace(true);
        }
        for (_, r) in running {
            let _ = r.task.await;
        }
    }
}

/// Describes the relays' metrics to the recorder installed now (a recorder installed
/// later misses the descriptions, not the values).
fn describe_metrics() {
    metrics::describe_counter!(
        "strata_relay_published_total",
        "Events a relay's broker confirmed (republished events count again)"
    );
    metrics::describe_gauge!(
        "strata_relay_checkpoint",
        "The last position a relay's broker confirmed"
    );
    metrics::describe_counter!(
        "strata_relay_errors_total",
        "Faults that ended a relay's session (it reconnects with backoff)"
    );
}

/// Where relay `name` keeps its checkpoint.
fn checkpoint_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}.sqlite"))
}

/// The sink of a destination this build supports.
fn sink_for(destination: &Destination) -> Box<dyn BrokerSink> {
    match destination {
        #[cfg(feature = "nats")]
        Destination::Nats {
            url,
            subject_prefix,
            stream,
            duplicate_window,
        } => Box::new(crate::nats::NatsSink::new(
            url,
            subject_prefix,
            stream,
            *duplicate_window,
        )),
        #[cfg(feature = "amqp")]
        Destination::Amqp { url, exchange } => Box::new(crate::amqp::AmqpSink::new(url, exchange)),
        #[cfg(feature = "kafka")]
        Destination::Kafka {
            brokers,
            topic,
            partitions,
        } => Box::new(crate::kafka::KafkaSink::new(brokers, topic, *partitions)),
        #[cfg(feature = "sns")]
        Destination::Sns {
            topic_arn,
            endpoint,
            region,
        } => Box::new(crate::sns::SnsSink::new(
            topic_arn,
            endpoint.as_deref(),
            region,
        )),
        #[allow(unreachable_patterns)]
        other => Box::new(Unsupported(other.broker(), other.target())),
    }
}

/// A destination whose broker this build leaves out: every session fails, saying so.
struct Unsupported(&'static str, String);

#[async_trait::async_trait]
impl BrokerSink for Unsupported {
    fn broker(&self) -> &'static str {
        self.0
    }
    fn target(&self) -> String {
        self.1.clone()
    }
    async fn connect(&mut self) -> Result<(), RelayError> {
        Err(RelayError::BrokerNotBuilt {
            url: self.1.clone(),
            broker: self.0,
        })
    }
    async fn send(&mut self, _: &[RecordedEvent]) -> Result<Confirmation, RelayError> {
        Err(RelayError::BrokerNotBuilt {
            url: self.1.clone(),
            broker: self.0,
        })
    }
}

/// How a session ended.
enum End {
    Stopped,
    Fault(RelayError),
}

/// The lease a relay runs under on a shared database.
fn lease_name(relay: &str) -> String {
    format!("relay/{relay}")
}

/// One relay's task: sessions with a backoff between them, until stopped or failed; with
/// `leases`, only while this server holds the relay's lease.
async fn run(
    store: Arc<dyn EventStore>,
    mut sink: Box<dyn BrokerSink>,
    checkpoint: Checkpoint,
    shared: Arc<Shared>,
    stop: watch::Receiver<bool>,
    leases: Option<Arc<dyn Leases>>,
) {
    let mut delay = BACKOFF_FIRST;
    while !*stop.borrow() {
        let held = match &leases {
            None => None,
            Some(leases) => match stand_by(leases, &checkpoint, &shared, &stop).await {
                Some(held) => Some(held),
                None => break,
            },
        };
        // Turns true when asked to stop, or when the lease is lost.
        let mut until = held
            .as_ref()
            .map_or_else(|| stop.clone(), HeldLease::signal);
        let fence = held.as_ref().map(|h| h.fence().clone());
        let failed = sessions(
            &store,
            &mut *sink,
            &checkpoint,
            fence.as_ref(),
            &shared,
            &mut until,
            &mut delay,
        )
        .await;
        if let Some(held) = held {
            held.release().await;
        }
        if failed {
            return;
        }
        if !*stop.borrow() {
            tracing::info!(relay = %shared.name, "relay lost its lease; standing by");
        }
    }
    shared.update(|i| i.state = RelayState::Stopped);
}

/// Asks for the relay's lease every `retry_every` until this server holds it (`None`
/// when asked to stop first), showing meanwhile who holds it and the checkpoint it
/// stored.
async fn stand_by(
    leases: &Arc<dyn Leases>,
    checkpoint: &Checkpoint,
    shared: &Shared,
    stop: &watch::Receiver<bool>,
) -> Option<HeldLease> {
    let name = lease_name(&shared.name);
    let node = leases.node().to_owned();
    let mut stop = stop.clone();
    loop {
        match HeldLease::try_take(leases.clone(), &name, &stop).await {
            Ok(Taken::Held(held)) => {
                let epoch = held.fence().epoch;
                shared.update(|i| {
                    i.lease = Some(LeaseStatus {
                        holder: Some(node.clone()),
                        epoch: Some(epoch),
                        held_here: true,
                        node: node.clone(),
                    });
                    i.state = RelayState::Connecting;
                });
                tracing::info!(relay = %shared.name, epoch, "relay took its lease");
                return Some(held);
            }
            Ok(Taken::HeldBy(fence)) => {
                let stored = checkpoint.load().await;
                shared.update(|i| {
                    i.state = RelayState::Standby;
                    i.lease = Some(LeaseStatus {
                        holder: Some(fence.holder.clone()),
                        epoch: Some(fence.epoch),
                        held_here: false,
                        node: node.clone(),
                    });
                    match stored {
                        Ok(position) => {
                            i.checkpoint = position;
                            i.last_error = None;
                        }
                        Err(err) => i.last_error = Some(err.to_string()),
                    }
                });
            }
            Ok(_) => {}
            Err(err) => {
                tracing::warn!(relay = %shared.name, error = %err, "relay cannot ask for its lease");
                shared.update(|i| {
                    i.state = RelayState::Standby;
                    i.last_error = Some(err.to_string());
                });
            }
        }
        tokio::select! {
            () = tokio::time::sleep(leases.timings().retry_every) => {}
            _ = stop.wait_for(|s| *s) => return None,
        }
    }
}

/// Sessions with a backoff between them until `until` turns true (stopped, or the lease
/// lost) or the relay fails for good (`true`).
async fn sessions(
    store: &Arc<dyn EventStore>,
    sink: &mut dyn BrokerSink,
    checkpoint: &Checkpoint,
    fence: Option<&Fence>,
    shared: &Shared,
    until: &mut watch::Receiver<bool>,
    delay: &mut Duration,
) -> bool {
    loop {
        if *until.borrow() {
            return false;
        }
        match session(store, sink, checkpoint, fence, shared, until, delay).await {
            End::Stopped => return false,
            End::Fault(
                err @ (RelayError::CheckpointAheadOfLog { .. } | RelayError::BrokerNotBuilt { .. }),
            ) => {
                tracing::error!(relay = %shared.name, error = %err, "relay stopped until restarted");
                shared.update(|i| {
                    i.state = RelayState::Failed;
                    i.last_error = Some(err.to_string());
                });
                return true;
            }
            End::Fault(err @ RelayError::LeaseLost { .. }) => {
                tracing::warn!(relay = %shared.name, error = %err, "relay lost its lease");
                shared.update(|i| {
                    i.state = RelayState::Standby;
                    i.last_error = Some(err.to_string());
                });
                return false;
            }
            End::Fault(err) => {
                tracing::warn!(relay = %shared.name, error = %err, "relay reconnects after an error");
                metrics::counter!("strata_relay_errors_total", "relay" => shared.name.clone())
                    .increment(1);
                shared.update(|i| {
                    i.state = RelayState::Retrying;
                    i.last_error = Some(err.to_string());
                });
                let stopped = tokio::select! {
                    () = tokio::time::sleep(*delay) => false,
                    _ = until.wait_for(|s| *s) => true,
                };
                if stopped {
                    return false;
                }
                *delay = (*delay * 2).min(BACKOFF_MAX);
            }
        }
    }
}

/// One connection's worth of publishing, from the stored checkpoint.
async fn session(
    store: &Arc<dyn EventStore>,
    sink: &mut dyn BrokerSink,
    checkpoint: &Checkpoint,
    fence: Option<&Fence>,
    shared: &Shared,
    stop: &mut watch::Receiver<bool>,
    delay: &mut Duration,
) -> End {
    shared.update(|i| i.state = RelayState::Connecting);
    if let Err(err) = sink.connect().await {
        return End::Fault(err);
    }
    // NOTE: read again at every session: on a shared database another server may have
    // moved it while this one stood by.
    let from = match checkpoint.load().await {
        Ok(from) => from,
        Err(err) => return End::Fault(err),
    };
    shared.update(|i| i.checkpoint = from);
    // DESIGN §6, as for projections: a checkpoint beyond the head means the log lost
    // events this relay published; following from it would skip new ones.
    let head = match store.head().await {
        Ok(head) => head,
        Err(err) => return End::Fault(err.into()),
    };
    if from > head {
        return End::Fault(RelayError::CheckpointAheadOfLog {
            checkpoint: from,
            head,
        });
    }
    shared.update(|i| i.state = state_at(from, head));
    let mut publishing = Publishing {
        checkpoint,
        fence: fence.cloned(),
        shared,
        head,
        window: Window::new(from),
        confirmations: FuturesUnordered::new(),
        stored: from,
        storing: None,
    };
    let end = publishing.run(store, sink, stop, delay).await;
    // Whatever ended the session, what the broker confirmed is kept: a new session
    // resumes from the last contiguous confirmed event, not from an older checkpoint.
    match publishing.settle().await {
        Ok(()) => end,
        Err(err) => match end {
            End::Stopped => End::Fault(err),
            fault @ End::Fault(_) => fault,
        },
    }
}

/// The state of a relay whose checkpoint is `position`, in a session that began with
/// the log's head at `head`.
fn state_at(position: Position, head: Position) -> RelayState {
    if position >= head {
        RelayState::Live
    } else {
        RelayState::CatchingUp
    }
}

/// One batch's confirmation, named by its sequence number in the [`Window`].
type Confirming = BoxFuture<'static, (u64, Result<(), RelayError>)>;

/// A session's publishing: the window of unconfirmed batches, their confirmations, and
/// the checkpoint write under way (one at a time, always of the latest confirmed
/// position, so a fast broker costs one fsync per write, not one per batch).
struct Publishing<'a> {
    checkpoint: &'a Checkpoint,
    /// The grant of the relay's lease that every checkpoint write is checked against,
    /// on a shared database.
    fence: Option<Fence>,
    shared: &'a Shared,
    head: Position,
    window: Window,
    confirmations: FuturesUnordered<Confirming>,
    /// The last position stored in the checkpoint file.
    stored: Position,
    /// The checkpoint write under way, and the position it stores.
    storing: Option<(Position, BoxFuture<'static, Result<(), RelayError>>)>,
}

impl Publishing<'_> {
    /// Reads, sends and confirms until stopped or a fault.
    async fn run(
        &mut self,
        store: &Arc<dyn EventStore>,
        sink: &mut dyn BrokerSink,
        stop: &mut watch::Receiver<bool>,
        delay: &mut Duration,
    ) -> End {
        let mut events = store.subscribe(self.window.checkpoint(), ReadFilter::all());
        loop {
            let room = WINDOW.saturating_sub(self.window.in_flight());
            tokio::select! {
                biased;
                () = stop.wait_for(|s| *s).map(|_| ()) => return End::Stopped,
                Some((seq, confirmed)) = self.confirmations.next(),
                    if !self.confirmations.is_empty() =>
                {
                    match self.confirmed(seq, confirmed) {
                        Err(err) => return End::Fault(err),
                        Ok(true) => {
                            *delay = BACKOFF_FIRST;
                            self.shared.update(|i| i.last_error = None);
                        }
                        Ok(false) => {}
                    }
                }
                stored = written(&mut self.storing) => {
                    if let Err(err) = self.stored(stored) {
                        return End::Fault(err);
                    }
                }
                first = events.next(), if room > 0 => {
                    let mut batch = match first {
                        Some(Ok(event)) => vec![event],
                        Some(Err(err)) => return End::Fault(err.into()),
                        // A subscription only ends after an error, or when the store
                        // closes.
                        None => {
                            return End::Fault(RelayError::Store(
                                strata_store::StoreError::Closed,
                            ));
                        }
                    };
                    let most = BATCH.min(usize::try_from(room).unwrap_or(BATCH));
                    let mut read_error = None;
                    while batch.len() < most {
                        match events.next().now_or_never() {
                            Some(Some(Ok(event))) => batch.push(event),
                            Some(Some(Err(err))) => {
                                read_error = Some(err);
                                break;
                            }
                            Some(None) | None => break,
                        }
                    }
                    let confirmation = match sink.send(&batch).await {
                        Ok(confirmation) => confirmation,
                        Err(err) => return End::Fault(err),
                    };
                    let through = batch.last().map_or(Position::ZERO, |e| e.position);
                    let seq = self.window.send(through, batch.len() as u64);
                    self.confirmations.push(confirming(seq, confirmation));
                    if let Some(err) = read_error {
                        // What was read before the error is published and confirmed
                        // first, so the next session starts past it.
                        return self.drain(End::Fault(err.into())).await;
                    }
                }
            }
            self.store_confirmed();
        }
    }

    /// Awaits every outstanding confirmation, then ends with `end` (or with the first
    /// fault met meanwhile).
    async fn drain(&mut self, end: End) -> End {
        while let Some((seq, confirmed)) = self.confirmations.next().await {
            if let Err(err) = self.confirmed(seq, confirmed) {
                return End::Fault(err);
            }
        }
        end
    }

    /// Takes batch `seq`'s confirmation: counts what the confirmed prefix gained;
    /// whether it moved.
    fn confirmed(
        &mut self,
        seq: u64,
        confirmed: Result<(), RelayError>,
    ) -> Result<bool, RelayError> {
        confirmed?;
        let Some(advance) = self.window.confirm(seq) else {
            return Ok(false);
        };
        metrics::counter!("strata_relay_published_total", "relay" => self.shared.name.clone())
            .increment(advance.events);
        self.shared.update(|i| i.published += advance.events);
        Ok(true)
    }

    /// Starts writing the checkpoint when the confirmed prefix passed the stored one and
    /// no write is under way.
    fn store_confirmed(&mut self) {
        let confirmed = self.window.checkpoint();
        if self.storing.is_none() && confirmed > self.stored {
            let checkpoint = self.checkpoint.clone();
            let fence = self.fence.clone();
            self.storing = Some((
                confirmed,
                Box::pin(async move { checkpoint.store(confirmed, fence.as_ref()).await }),
            ));
        }
    }

    /// Records a finished checkpoint write of `position` in the status and metrics.
    fn stored(
        &mut self,
        (position, result): (Position, Result<(), RelayError>),
    ) -> Result<(), RelayError> {
        result?;
        self.stored = position;
        metrics::gauge!("strata_relay_checkpoint", "relay" => self.shared.name.clone())
            .set(position.0 as f64);
        let state = state_at(position, self.head);
        self.shared.update(|i| {
            i.checkpoint = position;
            i.state = state;
        });
        Ok(())
    }

    /// Finishes the checkpoint write under way and stores the confirmed prefix if it is
    /// further; the unconfirmed batches are dropped with the session.
    async fn settle(&mut self) -> Result<(), RelayError> {
        loop {
            if self.storing.is_some() {
                let stored = written(&mut self.storing).await;
                self.stored(stored)?;
            }
            self.store_confirmed();
            if self.storing.is_none() {
                return Ok(());
            }
        }
    }
}

/// The batch `seq`'s confirmation, named.
fn confirming(seq: u64, confirmation: Confirmation) -> Confirming {
    Box::pin(confirmation.map(move |result| (seq, result)))
}

/// The outcome of the checkpoint write under way (taking it), or never when there is
/// none.
async fn written(
    storing: &mut Option<(Position, BoxFuture<'static, Result<(), RelayError>>)>,
) -> (Position, Result<(), RelayError>) {
    match storing {
        Some((position, write)) => {
            let result = write.await;
            let position = *position;
            *storing = None;
            (position, result)
        }
        None => std::future::pending().await,
    }
}
