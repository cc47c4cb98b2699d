//! The one supervise loop every runner shares, over a small [`Sink`] seam: open the
//! sink, refuse a checkpoint beyond the log's head, take steps from the shared `feed`,
//! hand each batch to the sink, retry faults with backoff, and publish the checkpoint,
//! the lag and the state on the runner's [`Lane`]. A leased sink runs a session only
//! while this node holds its lease: meanwhile it stands by, and a lost lease ends the
//! session.
//!
//! It must not know what a sink does with a batch (a read model, a process manager's
//! outbox): that is the sink's business. It stops only between batches.

use std::sync::Arc;

use async_trait::async_trait;
use strata_core::{Position, RecordedEvent};
use strata_store::{EventStore, ReadFilter};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::backoff::{Backoff, sleep_or_stop};
use crate::feed::{Feed, Next, note_pending};
use crate::lane::Lane;
use crate::lease::{Fence, HeldLease, LeaseStatus, Leases, Taken};
use crate::{RunnerState, StopCause};

/// How a sink's step ends a following session.
#[derive(Debug)]
pub(crate) enum Exit {
    /// Asked to stop.
    Stop,
    /// A fault no retry fixes (a poison event under policy `Stop`, an undecodable
    /// state): the runner stops until restarted.
    Failed(StopCause),
    /// A storage fault: retry from the checkpoint after a backoff.
    Retry(String),
}

/// What a runner feeds: one checkpointed consumer of the log.
///
/// Every method but [`Sink::lane`] and [`Sink::filter`] may wait; none may run SQLite on
/// the calling (runtime) thread.
#[async_trait]
pub(crate) trait Sink: Send + Sync + 'static {
    /// The name it reports under.
    fn name(&self) -> &'static str;
    /// Its shared state.
    fn lane(&self) -> &Lane;
    /// The events it wants; `None` means it has nothing to run (an answering generation
    /// whose code is no longer registered).
    fn filter(&self) -> Option<ReadFilter>;
    /// The leases it runs under and its lease's name, if it must run on one node at a
    /// time (its state is shared by several nodes); `None` runs it on every node.
    fn lease(&self) -> Option<(Arc<dyn Leases>, String)> {
        None
    }
    /// Opens its storage (if closed) and publishes the stored checkpoint on the lane.
    /// `fence` is the lease grant the session runs under (`None` while standing by, or
    /// when not leased): every commit of a leased sink checks it in its transaction.
    async fn open(self: Arc<Self>, fence: Option<Fence>) -> Result<(), String>;
    /// Work due between batches (timeouts, an outbox); returns when to wake for more.
    async fn between_batches(
        &self,
        stop: &mut watch::Receiver<bool>,
        backoff: &mut Backoff,
    ) -> Result<Option<Instant>, Exit> {
        let _ = (stop, backoff);
        Ok(None)
    }
    /// Applies `events` (in position order) and stores `through` as the checkpoint if it
    /// is later, in one transaction; returns the committed checkpoint.
    async fn apply(&self, events: Vec<RecordedEvent>, through: Position) -> Result<Position, Exit>;
    /// Called each time the runner is caught up with the head, before the lane says
    /// it is live.
    async fn caught_up(&self) -> Result<(), Exit> {
        Ok(())
    }
    /// Called once when the runner ends, before it gives up the right to run: `failed`
    /// is the cause it stopped on for good, if it did. It runs before the lane says
    /// `failed`, so whoever waits on the lane sees the sink's clean-up done.
    async fn ended(&self, failed: Option<&StopCause>) {
        let _ = failed;
    }
}

/// Runs `sink` until it is stopped or fails.
pub(crate) async fn supervise<S: Sink>(store: Arc<dyn EventStore>, sink: Arc<S>) {
    let failed = match sink.filter() {
        Some(filter) => sessions(&store, &sink, filter).await,
        // No code to run (and no writer it could open): nothing to do.
        None => None,
    };
    sink.ended(failed.as_ref()).await;
    let lane = sink.lane();
    match failed {
        Some(cause) => lane.fail(cause),
        None => lane.update(|info| {
            info.state = RunnerState::Stopped;
            info.retrying = false;
        }),
    }
    lane.release();
}

/// Follows the log session after session, with a backoff between sessions that end on
/// a fault, until stopped (`None`) or failed for good (the cause). A leased sink waits
/// for its lease before each session, and its session ends when the lease is lost.
async fn sessions<S: Sink>(
    store: &Arc<dyn EventStore>,
    sink: &Arc<S>,
    filter: ReadFilter,
) -> Option<StopCause> {
    let lane = sink.lane();
    let mut stop = lane.stop_signal();
    let mut backoff = Backoff::new();
    loop {
        if *stop.borrow() {
            return None;
        }
        let held = match sink.lease() {
            None => None,
            Some((leases, name)) => Some(stand_by(sink, leases, &name, &stop).await?),
        };
        let mut session_stop = held
            .as_ref()
            .map_or_else(|| stop.clone(), HeldLease::signal);
        let fence = held.as_ref().map(|held| held.fence().clone());
        let exit = match sink.clone().open(fence).await {
            Ok(()) => {
                follow(
                    store,
                    &**sink,
                    filter.clone(),
                    &mut session_stop,
                    &mut backoff,
                )
                .await
            }
            Err(err) => Exit::Retry(err),
        };
        // NOTE: released before any backoff, so another node may take over meanwhile.
        if let Some(held) = held {
            held.release().await;
        }
        match exit {
            Exit::Stop if *stop.borrow() => return None,
            Exit::Stop => {
                // Only a lost lease ends a session this way: stand by again.
                tracing::warn!(runner = sink.name(), "runner lost its lease and stands by");
                lane.update(|info| {
                    info.last_error = Some("the lease was lost".to_owned());
                    if let Some(lease) = info.lease.as_mut() {
                        lease.held_here = false;
                    }
                });
            }
            Exit::Failed(cause) => {
                tracing::error!(runner = sink.name(), %cause, "runner stopped until restarted");
                return Some(cause);
            }
            Exit::Retry(err) => {
                tracing::warn!(runner = sink.name(), error = %err, "runner retries after an error");
                lane.update(|info| {
                    info.last_error = Some(err);
                    info.retrying = true;
                });
                if sleep_or_stop(backoff.next_delay(), &mut stop).await {
                    return None;
                }
            }
        }
    }
}

/// Waits until this node holds the lease `name`, standing by meanwhile: the lane says
/// who holds it, and the sink is reopened without a fence each time so that the lane
/// shows the checkpoint the holder committed. `None` when asked to stop first.
async fn stand_by<S: Sink>(
    sink: &Arc<S>,
    leases: Arc<dyn Leases>,
    name: &str,
    stop: &watch::Receiver<bool>,
) -> Option<HeldLease> {
    let lane = sink.lane();
    let node = leases.node().to_owned();
    let retry = leases.timings().retry_every;
    let mut stop = stop.clone();
    loop {
        if *stop.borrow() {
            return None;
        }
        match HeldLease::try_take(leases.clone(), name, &stop).await {
            Ok(Taken::Held(held)) => {
                let fence = held.fence();
                tracing::info!(runner = sink.name(), %fence, "runner took its lease");
                let lease = lease_status(&node, fence, true);
                lane.update(|info| {
                    info.lease = Some(lease);
                    info.state = RunnerState::CatchingUp;
                });
                return Some(held);
            }
            Ok(Taken::HeldBy(other)) => {
                let lease = lease_status(&node, &other, false);
                let refreshed = sink.clone().open(None).await;
                lane.update(|info| {
                    info.lease = Some(lease);
                    info.state = RunnerState::Standby;
                    info.retrying = false;
                    info.pending_since = None;
                    if let Err(err) = refreshed {
                        info.last_error = Some(err);
                    }
                });
            }
            Err(err) => {
                tracing::warn!(runner = sink.name(), error = %err, "runner cannot ask for its lease");
                lane.update(|info| {
                    info.state = RunnerState::Standby;
                    info.last_error = Some(err.to_string());
                });
            }
        }
        if sleep_or_stop(retry, &mut stop).await {
            return None;
        }
    }
}

fn lease_status(node: &str, fence: &Fence, held_here: bool) -> LeaseStatus {
    LeaseStatus {
        holder: Some(fence.holder.clone()),
        epoch: Some(fence.epoch),
        held_here,
        node: node.to_owned(),
    }
}

/// Follows the log from the lane's checkpoint until stopped or an error.
async fn follow<S: Sink>(
    store: &Arc<dyn EventStore>,
    sink: &S,
    filter: ReadFilter,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Exit {
    let lane = sink.lane();
    // DESIGN §6: a checkpoint beyond the head means the log lost events the runner had
    // applied (or the read model belongs to another store); running from it would skip
    // every event appended until the head passes it again.
    let checkpoint = lane.checkpoint();
    let head = match store.head().await {
        Ok(head) => head,
        Err(err) => return Exit::Retry(err.to_string()),
    };
    if checkpoint > head {
        return Exit::Failed(StopCause::CheckpointAheadOfLog { checkpoint, head });
    }
    let mut feed = Feed::new(store.clone(), checkpoint, filter);
    loop {
        let wake_at = match sink.between_batches(stop, backoff).await {
            Ok(wake_at) => wake_at,
            Err(exit) => return exit,
        };
        let next = feed
            .next_batch(lane.checkpoint(), stop, wake_at, |oldest, full| {
                lane.update(|info| {
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
            // NOTE: the next batch is read while this one is applied (a SQLite sink
            // applies on its own thread, so it is handed the batch first); it is handed
            // over only after this one committed.
            let (applied, ()) = tokio::join!(biased; sink.apply(events, through), async {
                feed.prefetch();
            });
            match applied {
                Ok(checkpoint) => {
                    backoff.reset();
                    lane.publish_checkpoint(checkpoint);
                    lane.update(|info| {
                        info.pending_since = None;
                        info.retrying = false;
                    });
                }
                Err(exit) => return exit,
            }
        }
        if caught_up {
            // The sink's work at the head (deferred indexes, a rebuild's promotion) is
            // done before the runner says it is live.
            if let Err(exit) = sink.caught_up().await {
                return exit;
            }
            if lane.info().state != RunnerState::Live {
                lane.update(|info| {
                    info.state = RunnerState::Live;
                    info.pending_since = None;
                    info.retrying = false;
                });
            }
        }
    }
}
