//! [`Lane`]: what one runner (a projection generation, or a process manager) shares with
//! the world while it follows the log: its committed checkpoint, its state and errors,
//! the stop signal, and the right to run. Waiters and the status read it; only the
//! runner that holds the right to run writes it.
//!
//! It must not do I/O: it is counters and signals, nothing else.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use strata_core::{Position, Timestamp};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::db::now;
use crate::lease::LeaseStatus;
use crate::{ProjectionError, RunnerState, StopCause};

/// What a runner publishes besides its checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct RunInfo {
    pub(crate) state: RunnerState,
    /// The last error met: a fault it retries, or the cause it stopped on.
    pub(crate) last_error: Option<String>,
    /// Whether it waits to retry after a fault.
    pub(crate) retrying: bool,
    /// When the oldest event known to be unapplied was recorded.
    pub(crate) pending_since: Option<Timestamp>,
    /// Why it stopped for good, while it is `Failed`.
    pub(crate) stopped_by: Option<StopCause>,
    /// Who holds its lease, as last seen, if it is leased.
    pub(crate) lease: Option<LeaseStatus>,
}

/// The health of a lane at one moment, measured against the store's head.
#[derive(Debug, Clone)]
pub(crate) struct LaneStatus {
    pub(crate) checkpoint: Position,
    pub(crate) lag_events: u64,
    pub(crate) lag_seconds: f64,
    pub(crate) info: RunInfo,
}

/// How a wait on a lane ended.
#[derive(Debug)]
pub(crate) enum WaitEnd {
    /// The checkpoint reached the position.
    Reached,
    /// The runner stopped for good before reaching it.
    Stopped(StopCause),
    /// The caller's other signal fired (the lane may have been replaced).
    Interrupted,
    /// The deadline passed; the checkpoint is where it was.
    TimedOut(Position),
}

/// One runner's shared state. The checkpoint watch is also sent (unchanged) whenever the
/// state changes, so one subscription wakes a waiter for both.
pub(crate) struct Lane {
    checkpoint: watch::Sender<Position>,
    info: Mutex<RunInfo>,
    /// True asks the runner to stop after its current batch.
    stop: watch::Sender<bool>,
    /// Whether a runner task holds the right to run this lane.
    running: AtomicBool,
}

impl Lane {
    /// A lane at `checkpoint`, not running.
    pub(crate) fn new(checkpoint: Position) -> Self {
        Self {
            checkpoint: watch::Sender::new(checkpoint),
            info: Mutex::new(RunInfo {
                state: RunnerState::Stopped,
                last_error: None,
                retrying: false,
                pending_since: None,
                stopped_by: None,
                lease: None,
            }),
            stop: watch::Sender::new(false),
            running: AtomicBool::new(false),
        }
    }

    /// The committed checkpoint.
    pub(crate) fn checkpoint(&self) -> Position {
        *self.checkpoint.borrow()
    }

    /// A copy of the runner's state.
    pub(crate) fn info(&self) -> RunInfo {
        self.info.lock().clone()
    }

    /// Updates the runner's state and wakes whoever waits on this lane.
    pub(crate) fn update(&self, f: impl FnOnce(&mut RunInfo)) {
        f(&mut self.info.lock());
        self.checkpoint.send_modify(|_| {});
    }

    /// Publishes a committed checkpoint (never moves it back).
    pub(crate) fn publish_checkpoint(&self, checkpoint: Position) {
        self.checkpoint.send_if_modified(|c| {
            let newer = checkpoint > *c;
            if newer {
                *c = checkpoint;
            }
            newer
        });
    }

    /// Sets the checkpoint read from the database when it is (re)opened. The database is
    /// the truth, so this may move it back (a lost `synchronous=NORMAL` commit).
    pub(crate) fn reset_checkpoint(&self, checkpoint: Position) {
        self.checkpoint.send_replace(checkpoint);
    }

    /// A receiver woken on every checkpoint or state change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<Position> {
        self.checkpoint.subscribe()
    }

    /// A receiver of the stop signal, for the runner.
    pub(crate) fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Asks the runner to stop after its current batch.
    pub(crate) fn ask_stop(&self) {
        self.stop.send_replace(true);
    }

    /// Takes the right to run and readies the lane for a new runner: false if a runner
    /// already has it.
    pub(crate) fn claim(&self) -> bool {
        if self
            .running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return false;
        }
        self.stop.send_replace(false);
        // NOTE: before the task runs, so a waiter never sees the previous run's failure.
        self.update(|info| {
            info.state = RunnerState::CatchingUp;
            info.stopped_by = None;
            info.retrying = false;
        });
        true
    }

    /// Gives the right to run back, when a runner ends.
    pub(crate) fn release(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// Records that the runner stopped for good on `cause`.
    pub(crate) fn fail(&self, cause: StopCause) {
        self.update(|info| {
            info.state = RunnerState::Failed;
            info.last_error = Some(cause.to_string());
            info.stopped_by = Some(cause);
            info.retrying = false;
        });
    }

    /// Whether it waits to retry after a fault.
    #[cfg(feature = "redis")]
    pub(crate) fn retrying(&self) -> bool {
        self.info.lock().retrying
    }

    /// Why the runner stopped for good, if it did.
    pub(crate) fn stopped_by(&self) -> Option<StopCause> {
        let info = self.info.lock();
        match info.state {
            RunnerState::Failed => info.stopped_by.clone(),
            _ => None,
        }
    }

    /// The lane's health against `head`.
    pub(crate) fn status(&self, head: Position) -> LaneStatus {
        let checkpoint = self.checkpoint();
        let info = self.info();
        let lag_events = head.0.saturating_sub(checkpoint.0);
        let lag_seconds = if lag_events == 0 {
            0.0
        } else {
            info.pending_since.map_or(0.0, seconds_since)
        };
        LaneStatus {
            checkpoint,
            lag_events,
            lag_seconds,
            info,
        }
    }

    /// Waits until the checkpoint reaches `position`, the runner stops for good, the
    /// deadline passes, or `interrupt` fires, whichever comes first.
    ///
    /// NOTE: a runner that is merely not running (not started yet, or shut down) is
    /// waited for: it may be started before the deadline. Only a runner that stopped for
    /// good ends the wait early, since nothing will move it without an operator.
    pub(crate) async fn wait_until(
        &self,
        position: Position,
        deadline: Instant,
        interrupt: impl Future<Output = ()>,
    ) -> WaitEnd {
        let mut rx = self.checkpoint.subscribe();
        tokio::pin!(interrupt);
        loop {
            let checkpoint = *rx.borrow_and_update();
            if checkpoint >= position {
                return WaitEnd::Reached;
            }
            if let Some(cause) = self.stopped_by() {
                return WaitEnd::Stopped(cause);
            }
            tokio::select! {
                changed = rx.changed() => {
                    // The sender lives as long as the lane, which the caller holds.
                    if changed.is_err() {
                        return WaitEnd::TimedOut(checkpoint);
                    }
                }
                () = &mut interrupt => return WaitEnd::Interrupted,
                () = tokio::time::sleep_until(deadline) => {
                    return WaitEnd::TimedOut(self.checkpoint());
                }
            }
        }
    }
}

/// The error for a wait on `name` that did not reach `position`.
pub(crate) fn wait_error(
    name: &str,
    position: Position,
    end: WaitEnd,
    started: Instant,
) -> Option<ProjectionError> {
    match end {
        WaitEnd::Reached | WaitEnd::Interrupted => None,
        WaitEnd::Stopped(cause) => Some(ProjectionError::Stopped {
            name: name.to_owned(),
            cause,
        }),
        WaitEnd::TimedOut(checkpoint) => Some(ProjectionError::Timeout {
            name: name.to_owned(),
            position,
            checkpoint,
            waited: started.elapsed(),
        }),
    }
}

/// Seconds from `t` to now (0 if `t` is in the future).
pub(crate) fn seconds_since(t: Timestamp) -> f64 {
    let nanos = now().unix_nanos().saturating_sub(t.unix_nanos());
    Duration::from_nanos(nanos.max(0) as u64).as_secs_f64()
}
