//! Exponential backoff for storage faults: 50 ms doubling to 5 s, reset by a success.

use std::time::Duration;

/// The first delay.
const FIRST: Duration = Duration::from_millis(50);
/// The longest delay.
const MAX: Duration = Duration::from_secs(5);

/// The delay before the next retry.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    /// A backoff whose first delay is the shortest.
    pub(crate) fn new() -> Self {
        Self { next: FIRST }
    }

    /// The delay to wait now; the one after it is twice as long, up to the maximum.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(MAX);
        delay
    }

    /// Back to the shortest delay, after a success.
    pub(crate) fn reset(&mut self) {
        self.next = FIRST;
    }
}

/// Sleeps for `delay` unless `stop` turns true first; returns whether it was stopped.
pub(crate) async fn sleep_or_stop(
    delay: Duration,
    stop: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    if *stop.borrow() {
        return true;
    }
    let stopped = tokio::select! {
        () = tokio::time::sleep(delay) => false,
        _ = stop.wait_for(|s| *s) => true,
    };
    stopped || *stop.borrow()
}
