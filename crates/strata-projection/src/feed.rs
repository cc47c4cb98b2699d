//! The input side every runner shares: events from the store's subscription in
//! batches, steps over positions the filter skips (so the checkpoint, and the lag, move
//! while nothing selected arrives), and noticing being caught up.
//!
//! It only reads the store; it never writes a checkpoint (the caller commits what it
//! is handed, then asks for the next step with the new checkpoint).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::{FutureExt as _, StreamExt as _};
use strata_core::{Position, RecordedEvent, Timestamp};
use strata_store::{EventStore, EventStream, ReadFilter, StoreError};

use crate::RunnerState;
use tokio::sync::watch;
use tokio::time::Instant;

/// The most events handed over in one batch (one transaction). A batch is only this
/// large while the runner is behind (a rebuild, a burst); live it holds what arrived
/// since the last one. Each commit of a read model writes every page the batch dirtied,
/// so a large model's scattered index pages (one per customer, say) are written once
/// per batch rather than once per event that touches them.
pub(crate) const MAX_BATCH: usize = 10_000;
/// The most bytes (data and metadata) of the events waiting to be handed over: a batch
/// of large events ends before [`MAX_BATCH`] events.
const MAX_BATCH_BYTES: usize = 16 << 20;
/// The shortest time between two steps over skipped positions (each is a small write).
const SKIP_INTERVAL: Duration = Duration::from_millis(20);

/// What the caller should do next.
#[derive(Debug)]
pub(crate) enum Step {
    /// Apply these events (in position order), then ask again.
    Events(Vec<RecordedEvent>),
    /// Nothing selected lies between the checkpoint and `to`: store `to` as the
    /// checkpoint. `caught_up` says whether that reaches the head.
    SkipTo {
        /// The new checkpoint.
        to: Position,
        /// Whether it is the head of the log.
        caught_up: bool,
    },
    /// Nothing is left to apply: the runner is live.
    CaughtUp,
    /// The caller's own deadline passed.
    Wake,
    /// Stop was asked.
    Stop,
    /// The store failed; start a new feed from the checkpoint after a backoff.
    Failed(StoreError),
}

/// A step as the runners act on it: stop, wake, fail, or apply a batch (possibly empty)
/// and store a checkpoint.
pub(crate) enum Next {
    /// Stop was asked.
    Stop,
    /// The caller's own deadline passed.
    Wake,
    /// The store failed; start a new feed from the checkpoint after a backoff.
    Failed(StoreError),
    /// Apply `events` (in position order); store `through` as the checkpoint if given.
    Apply {
        events: Vec<RecordedEvent>,
        through: Option<Position>,
        /// Whether nothing is left to apply after this.
        caught_up: bool,
    },
}

/// Records an unapplied event recorded at `oldest` in a runner's status: the age of the
/// oldest one is the lag in seconds, and a full batch means the runner is catching up.
pub(crate) fn note_pending(
    pending_since: &mut Option<Timestamp>,
    state: &mut RunnerState,
    oldest: Timestamp,
    full_batch: bool,
) {
    *pending_since = Some(pending_since.map_or(oldest, |t| t.min(oldest)));
    if full_batch {
        *state = RunnerState::CatchingUp;
    }
}

/// A subscription plus the head watch, from a checkpoint.
pub(crate) struct Feed {
    store: Arc<dyn EventStore>,
    filter: ReadFilter,
    subscription: EventStream,
    head: watch::Receiver<Position>,
    /// Events taken from the subscription and not handed over yet, in position order.
    ready: VecDeque<RecordedEvent>,
    /// The bytes (data and metadata) of the `ready` events.
    ready_bytes: usize,
    /// A subscription error met after the `ready` events; handed over once they are.
    failure: Option<StoreError>,
    last_skip: Option<Instant>,
    reported_caught_up: bool,
    /// The recording time of an unapplied selected event seen while stepping, for the
    /// lag in seconds; the caller takes it.
    pending_hint: Option<Timestamp>,
}

impl Feed {
    /// The next step folded into what a runner does with it. Unapplied events it sees are
    /// reported to `pending` with their recording time and whether they fill a batch.
    pub(crate) async fn next_batch(
        &mut self,
        checkpoint: Position,
        stop: &mut watch::Receiver<bool>,
        wake_at: Option<Instant>,
        mut pending: impl FnMut(Timestamp, bool),
    ) -> Next {
        let step = self.next(checkpoint, stop, wake_at).await;
        if let Some(oldest) = self.pending_hint.take() {
            pending(oldest, false);
        }
        match step {
            Step::Stop => Next::Stop,
            Step::Wake => Next::Wake,
            Step::Failed(err) => Next::Failed(err),
            Step::CaughtUp => Next::Apply {
                events: Vec::new(),
                through: None,
                caught_up: true,
            },
            Step::SkipTo { to, caught_up } => Next::Apply {
                events: Vec::new(),
                through: Some(to),
                caught_up,
            },
            Step::Events(events) => {
                if let Some(first) = events.first() {
                    pending(first.recorded_at, is_full(&events));
                }
                Next::Apply {
                    events,
                    through: None,
                    caught_up: false,
                }
            }
        }
    }

    /// Follows `store` from after `checkpoint`.
    pub(crate) fn new(
        store: Arc<dyn EventStore>,
        checkpoint: Position,
        filter: ReadFilter,
    ) -> Self {
        let head = store.watch_head();
        let subscription = store.subscribe(checkpoint, filter.clone());
        Self {
            store,
            filter,
            subscription,
            head,
            ready: VecDeque::new(),
            ready_bytes: 0,
            failure: None,
            last_skip: None,
            reported_caught_up: false,
            pending_hint: None,
        }
    }

    fn push_ready(&mut self, event: RecordedEvent) {
        self.ready_bytes += event_bytes(&event);
        self.ready.push_back(event);
    }

    /// Takes from the subscription what it has ready without waiting, until a batch is
    /// waiting or it fails. The runner calls it while its previous batch is being
    /// applied, so that reading the log and writing the model overlap; nothing taken is
    /// skipped, it is handed over by the next step.
    pub(crate) fn prefetch(&mut self) {
        while self.failure.is_none()
            && self.ready.len() < MAX_BATCH
            && self.ready_bytes < MAX_BATCH_BYTES
        {
            match self.subscription.next().now_or_never() {
                Some(Some(Ok(event))) => self.push_ready(event),
                Some(Some(Err(err))) => self.failure = Some(err),
                Some(None) => self.failure = Some(StoreError::Closed),
                None => break,
            }
        }
    }

    /// Waits for the next step, given the checkpoint committed so far. `wake_at` is the
    /// caller's own deadline (a timer), answered with [`Step::Wake`].
    pub(crate) async fn next(
        &mut self,
        checkpoint: Position,
        stop: &mut watch::Receiver<bool>,
        wake_at: Option<Instant>,
    ) -> Step {
        loop {
            if *stop.borrow() {
                return Step::Stop;
            }
            if wake_at.is_some_and(|at| at <= Instant::now()) {
                return Step::Wake;
            }
            // Take what the subscription has ready, up to a batch.
            self.prefetch();
            if !self.ready.is_empty() {
                // An error after the events waits for the next call.
                let take = self.ready.len().min(MAX_BATCH);
                self.reported_caught_up = false;
                let events: Vec<RecordedEvent> = self.ready.drain(..take).collect();
                self.ready_bytes -= events.iter().map(event_bytes).sum::<usize>();
                return Step::Events(events);
            }
            if let Some(err) = self.failure.take() {
                return Step::Failed(err);
            }

            // Nothing ready: step over what the filter skips, and notice being caught up.
            let head = *self.head.borrow_and_update();
            let mut wake = wake_at;
            if head <= checkpoint {
                if !self.reported_caught_up {
                    self.reported_caught_up = true;
                    return Step::CaughtUp;
                }
            } else if self.last_skip.is_none_or(|t| t.elapsed() >= SKIP_INTERVAL) {
                self.last_skip = Some(Instant::now());
                let page = match self
                    .store
                    .read_all(checkpoint.next(), 1, &self.filter)
                    .await
                {
                    Ok(page) => page,
                    Err(err) => return Step::Failed(err),
                };
                // NOTE: positions below the first selected event (or below `next` when
                // none was selected) hold nothing the runner wants, and the subscription
                // only yields selected events, so a checkpoint stepped there never
                // passes an event the subscription has yet to deliver.
                let (to, caught_up) = match page.events.first() {
                    Some(event) => {
                        self.pending_hint = Some(event.recorded_at);
                        (Position(event.position.0.saturating_sub(1)), false)
                    }
                    None => (
                        Position(page.next.0.saturating_sub(1)),
                        page.next.0 > head.0,
                    ),
                };
                if to > checkpoint {
                    self.reported_caught_up = caught_up;
                    return Step::SkipTo { to, caught_up };
                }
                if caught_up && !self.reported_caught_up {
                    self.reported_caught_up = true;
                    return Step::CaughtUp;
                }
            } else {
                let at = self.last_skip.map(|t| t + SKIP_INTERVAL);
                wake = match (wake, at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
            }

            tokio::select! {
                biased;
                _ = stop.wait_for(|s| *s) => return Step::Stop,
                item = self.subscription.next() => match item {
                    Some(Ok(event)) => self.push_ready(event),
                    Some(Err(err)) => self.failure = Some(err),
                    None => self.failure = Some(StoreError::Closed),
                },
                changed = self.head.changed() => {
                    if changed.is_err() {
                        return Step::Failed(StoreError::Closed);
                    }
                }
                () = sleep_until_some(wake) => {}
            }
        }
    }
}

/// Sleeps until `at`, or forever without one.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => futures::future::pending().await,
    }
}

/// What an event weighs against [`MAX_BATCH_BYTES`].
fn event_bytes(event: &RecordedEvent) -> usize {
    event.data.len() + event.metadata.len()
}

/// Whether a batch is as large as one may be: more events were likely waiting.
fn is_full(events: &[RecordedEvent]) -> bool {
    events.len() >= MAX_BATCH || events.iter().map(event_bytes).sum::<usize>() >= MAX_BATCH_BYTES
}

#[cfg(test)]
mod tests;
