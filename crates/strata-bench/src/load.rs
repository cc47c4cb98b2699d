//! Load drivers. Closed loop: a fixed number of clients, each sending its next operation
//! when the last one is answered, for a fixed time. Open loop: operations started at a
//! fixed rate whatever happens to earlier ones, each timed from when it was due, so a
//! stall shows up in the latencies instead of quietly lowering the load.
//!
//! Drivers only time and count; what an operation does is the scenario's business.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Result, one_line};
use crate::stats::{Summary, rate};

/// A client gives up after this many failed operations (something is broken; going on
/// would only spin).
const MAX_CLIENT_ERRORS: u64 = 100;

/// The warm-up before the measured window: a tenth of it.
pub(crate) fn warm_up(window: Duration) -> Duration {
    window / 10
}

/// What a closed-loop run measured over its window.
#[derive(Debug, Clone)]
pub(crate) struct LoadOutcome {
    /// Operations that completed inside the window.
    pub(crate) ops: u64,
    /// Events those operations reported.
    pub(crate) events: u64,
    /// Failed operations (in or out of the window).
    pub(crate) errors: u64,
    /// The first failure, for the report.
    pub(crate) first_error: Option<String>,
    /// The measured window.
    pub(crate) window: Duration,
    /// Latencies of the operations counted.
    pub(crate) latency: Summary,
}

impl LoadOutcome {
    /// Operations per second over the window.
    pub(crate) fn ops_per_s(&self) -> f64 {
        rate(self.ops as f64, self.window)
    }

    /// Events per second over the window.
    pub(crate) fn events_per_s(&self) -> f64 {
        rate(self.events as f64, self.window)
    }
}

struct Tally {
    samples: Vec<Duration>,
    events: u64,
    errors: u64,
    first_error: Option<String>,
}

/// Runs `clients` closed-loop clients for a warm-up and then `window`. Client `c` runs
/// `make(c)`'s operation with sequence numbers 0, 1, 2, …; an operation answers how many
/// events it wrote or read. An operation counts if it completes inside the window.
pub(crate) async fn closed_loop<M, F, Fut>(clients: usize, window: Duration, make: M) -> LoadOutcome
where
    M: Fn(usize) -> F,
    F: FnMut(u64) -> Fut + Send + 'static,
    Fut: Future<Output = Result<u64>> + Send + 'static,
{
    let start = Instant::now();
    let window_start = start + warm_up(window);
    let end = window_start + window;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let mut op = make(client);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally {
                samples: Vec::new(),
                events: 0,
                errors: 0,
                first_error: None,
            };
            let mut seq = 0;
            loop {
                let started = Instant::now();
                if started >= end {
                    break;
                }
                let result = op(seq).await;
                seq += 1;
                let done = Instant::now();
                match result {
                    Ok(events) => {
                        if done >= window_start && done < end {
                            tally.samples.push(done - started);
                            tally.events += events;
                        }
                    }
                    Err(err) => {
                        tally.errors += 1;
                        tally.first_error.get_or_insert_with(|| one_line(&err));
                        if tally.errors >= MAX_CLIENT_ERRORS {
                            break;
                        }
                    }
                }
            }
            tally
        }));
    }
    let mut samples = Vec::new();
    let mut events = 0;
    let mut errors = 0;
    let mut first_error = None;
    for task in tasks {
        match task.await {
            Ok(tally) => {
                samples.extend(tally.samples);
                events += tally.events;
                errors += tally.errors;
                if first_error.is_none() {
                    first_error = tally.first_error;
                }
            }
            Err(err) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("a client failed: {err}"));
            }
        }
    }
    LoadOutcome {
        ops: samples.len() as u64,
        events,
        errors,
        first_error,
        window,
        latency: Summary::of(&mut samples),
    }
}

/// What an open-loop run gathered.
#[derive(Debug)]
pub(crate) struct PacedOutcome<T> {
    /// What each operation due inside the window answered, in the order they were due.
    pub(crate) results: Vec<T>,
    /// Operations due inside the window that failed.
    pub(crate) errors: u64,
    /// The first failure, for the report.
    pub(crate) first_error: Option<String>,
    /// Operations due inside the window.
    pub(crate) due: u64,
    /// From the start of the window until the last of its operations completed.
    pub(crate) span: Duration,
}

/// Starts operation `n` at `n / rate` seconds, for a warm-up and then `window`, each on
/// its own task; `op(n, due)` gets the instant it was due. Then waits for all of them.
pub(crate) async fn paced<F, Fut, T>(rate: f64, window: Duration, op: F) -> PacedOutcome<T>
where
    F: Fn(u64, Instant) -> Fut,
    Fut: Future<Output = Result<T>> + Send + 'static,
    T: Send + 'static,
{
    let start = Instant::now();
    let window_start = start + warm_up(window);
    let end = window_start + window;
    let mut issued = 0_u64;
    let mut tasks = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let now = Instant::now();
        let due_by = due_count(rate, now.min(end) - start);
        while issued < due_by {
            let due = start + Duration::from_secs_f64(issued as f64 / rate);
            let task = tokio::spawn(op(issued, due));
            tasks.push((due >= window_start, task));
            issued += 1;
        }
        if now >= end {
            break;
        }
    }
    let mut results = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    let mut due = 0;
    for (counted, task) in tasks {
        let result = task.await;
        if !counted {
            continue;
        }
        due += 1;
        match result {
            Ok(Ok(value)) => results.push(value),
            Ok(Err(err)) => {
                errors += 1;
                first_error.get_or_insert_with(|| one_line(&err));
            }
            Err(err) => {
                errors += 1;
                first_error.get_or_insert_with(|| format!("an operation failed: {err}"));
            }
        }
    }
    PacedOutcome {
        results,
        errors,
        first_error,
        due,
        span: Instant::now() - window_start,
    }
}

/// How many operations are due `elapsed` into a run at `rate` per second: those due at
/// 0, 1/rate, 2/rate, … up to and including `elapsed`.
pub(crate) fn due_count(rate: f64, elapsed: Duration) -> u64 {
    if rate <= 0.0 {
        return 0;
    }
    (elapsed.as_secs_f64() * rate).floor() as u64 + 1
}
