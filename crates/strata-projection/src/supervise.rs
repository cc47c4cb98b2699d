//! The one supervise loop every runner shares, over a small [`Sink`] seam: open the
//! sink, refuse a checkpoint beyond the log's head, take steps from the shared `feed`,
//! hand each batch to the sink, retry faults with backoff, and publish the checkpoint,
//! the lag and the state on the runner's [`Lane`].
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
    /// Opens its storage (if closed) and publishes the stored checkpoint on the lane.
    async fn open(self: Arc<Self>) -> Result<(), String>;
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
    /// Called each time the runner is caught up with the head.
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
    let lane = sink.lane();
    let mut stop = lane.stop_signal();
    let mut backoff = Backoff::new();
    let mut failed = None;
    loop {
        if *stop.borrow() {
            break;
        }
        let exit = match sink.clone().open().await {
            Ok(()) => follow(&store, &*sink, &mut stop, &mut backoff).await,
            Err(err) => Exit::Retry(err),
        };
        match exit {
            Exit::Stop => break,
            Exit::Failed(cause) => {
                tracing::error!(runner = sink.name(), %cause, "runner stopped until restarted");
                failed = Some(cause);
                break;
            }
            Exit::Retry(err) => {
                tracing::warn!(runner = sink.name(), error = %err, "runner retries after an error");
                lane.update(|info| {
                    info.last_error = Some(err);
                    info.retrying = true;
                });
                if sleep_or_stop(backoff.next_delay(), &mut stop).await {
                    break;
                }
            }
        }
    }
    sink.ended(failed.as_ref()).await;
    match failed {
        Some(cause) => lane.fail(cause),
        None => lane.update(|info| {
            info.state = RunnerState::Stopped;
            info.retrying = false;
        }),
    }
    lane.release();
}

/// Follows the log from the lane's checkpoint until stopped or an error.
async fn follow<S: Sink>(
    store: &Arc<dyn EventStore>,
    sink: &S,
    stop: &mut watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Exit {
    let lane = sink.lane();
    let Some(filter) = sink.filter() else {
        return Exit::Stop;
    };
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
            match sink.apply(events, through).await {
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
            if lane.info().state != RunnerState::Live {
                lane.update(|info| {
                    info.state = RunnerState::Live;
                    info.pending_since = None;
                    info.retrying = false;
                });
            }
            if let Err(exit) = sink.caught_up().await {
                return exit;
            }
        }
    }
}
