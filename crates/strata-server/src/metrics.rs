//! What the server measures: Prometheus metrics (through the `metrics` facade and one
//! process-wide recorder) and a few live counters the console charts.
//!
//! Names: `strata_appends_total`, `strata_events_appended_total`,
//! `strata_command_duration_seconds` (histogram, label `command`),
//! `strata_http_requests_total` and `strata_http_request_duration_seconds`,
//! `strata_projection_lag_events` and `strata_projection_checkpoint` (label `projection`),
//! `strata_relay_lag_events` and `strata_relay_up` (label `relay`, set from the relays'
//! status on each scrape), `strata_sse_subscribers`, `strata_head_position`.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parking_lot::RwLock;

/// Upper bounds of the latency buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the console's latency buckets, in microseconds (the last is +inf).
pub(crate) const CONSOLE_BUCKETS_US: [u64; 12] = [
    250,
    500,
    1_000,
    2_000,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    1_000_000,
    u64::MAX,
];

static RECORDER: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The process-wide Prometheus recorder, installed on first use. `None` if another
/// recorder was installed first (then `/metrics` shows only the live counters).
fn handle() -> Option<&'static PrometheusHandle> {
    RECORDER
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
                .ok()?;
            let recorder = builder.build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .as_ref()
}

fn describe() {
    metrics::describe_counter!("strata_appends_total", "Appends acknowledged by the store");
    metrics::describe_counter!(
        "strata_events_appended_total",
        "Events in acknowledged appends"
    );
    metrics::describe_histogram!(
        "strata_command_duration_seconds",
        metrics::Unit::Seconds,
        "Time to handle an append or a command, by command"
    );
    metrics::describe_counter!(
        "strata_http_requests_total",
        "HTTP requests answered, by method and status"
    );
    metrics::describe_histogram!(
        "strata_http_request_duration_seconds",
        metrics::Unit::Seconds,
        "Time to answer an HTTP request (subscriptions excluded)"
    );
    metrics::describe_gauge!(
        "strata_projection_lag_events",
        "Events a projection has yet to process"
    );
    metrics::describe_gauge!(
        "strata_projection_checkpoint",
        "The last position a projection processed"
    );
    metrics::describe_gauge!(
        "strata_relay_lag_events",
        "Events committed to the log and not yet confirmed by a relay's broker"
    );
    metrics::describe_gauge!(
        "strata_relay_up",
        "1 while a relay is publishing (live or catching up), 0 while it connects, retries or stopped"
    );
    metrics::describe_gauge!(
        "strata_sse_subscribers",
        "Open server-sent-event subscriptions"
    );
    metrics::describe_gauge!(
        "strata_head_position",
        "The store's last committed position"
    );
}

/// Requests between two upkeeps of the recorder. It keeps every histogram sample until
/// it folds them into buckets, which only a scrape of `/metrics` or an upkeep does: left
/// to scrapes alone, a server nobody scrapes would hold every request's latency.
const UPKEEP_EVERY: u64 = 4096;

/// Folds the recorder's pending histogram samples into their buckets.
fn upkeep() {
    if let Some(handle) = handle() {
        handle.run_upkeep();
    }
}

/// The methods whose label is a constant, in the order of [`Handles::requests`].
const KNOWN_METHODS: [&str; 9] = [
    "GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "CONNECT", "TRACE",
];

/// The status codes whose label is a constant, in the order of [`Handles::requests`].
const KNOWN_STATUSES: [(u16, &str); 15] = [
    (200, "200"),
    (201, "201"),
    (204, "204"),
    (304, "304"),
    (400, "400"),
    (401, "401"),
    (403, "403"),
    (404, "404"),
    (405, "405"),
    (409, "409"),
    (413, "413"),
    (422, "422"),
    (500, "500"),
    (503, "503"),
    (504, "504"),
];

/// The `method` label: the method's name, without allocating one for the usual ones.
fn method_label(method: &str) -> metrics::SharedString {
    match KNOWN_METHODS.iter().find(|known| **known == method) {
        Some(known) => metrics::SharedString::const_str(known),
        None => metrics::SharedString::from(method.to_owned()),
    }
}

/// The `status` label: the status code's digits, without allocating them for the codes the
/// server answers.
fn status_label(status: u16) -> metrics::SharedString {
    match KNOWN_STATUSES.iter().find(|(code, _)| *code == status) {
        Some((_, text)) => metrics::SharedString::const_str(text),
        None => metrics::SharedString::from(status.to_string()),
    }
}

/// The handles of the metrics recorded on every request, each looked up in the recorder
/// once: a lookup builds the metric's key (its labels in a new vector) and hashes it,
/// which is most of what recording costs.
#[derive(Debug, Default)]
struct Handles {
    /// `strata_http_requests_total` by known method and known status.
    requests: [[OnceLock<metrics::Counter>; KNOWN_STATUSES.len()]; KNOWN_METHODS.len()],
    /// `strata_http_request_duration_seconds`.
    duration: OnceLock<metrics::Histogram>,
    /// `strata_appends_total`.
    appends: OnceLock<metrics::Counter>,
    /// `strata_events_appended_total`.
    events: OnceLock<metrics::Counter>,
    /// `strata_command_duration_seconds` by command.
    commands: RwLock<Vec<(&'static str, metrics::Histogram)>>,
}

impl Handles {
    /// Counts a request in the counter of `method` and `status`, looked up anew (and not
    /// kept) for a method or status outside the known ones.
    fn request(&self, method: &str, status: u16) {
        let register = || {
            metrics::counter!(
                "strata_http_requests_total",
                "method" => method_label(method),
                "status" => status_label(status)
            )
        };
        let m = KNOWN_METHODS.iter().position(|known| *known == method);
        let s = KNOWN_STATUSES.iter().position(|(code, _)| *code == status);
        match (m, s) {
            (Some(m), Some(s)) => self.requests[m][s].get_or_init(register).increment(1),
            _ => register().increment(1),
        }
    }

    fn appended(&self, events: usize) {
        self.appends
            .get_or_init(|| metrics::counter!("strata_appends_total"))
            .increment(1);
        self.events
            .get_or_init(|| metrics::counter!("strata_events_appended_total"))
            .increment(events as u64);
    }

    fn command(&self, command: &'static str, took: Duration) {
        let seconds = took.as_secs_f64();
        if let Some((_, histogram)) = self
            .commands
            .read()
            .iter()
            .find(|(name, _)| *name == command)
        {
            histogram.record(seconds);
            return;
        }
        let mut commands = self.commands.write();
        if !commands.iter().any(|(name, _)| *name == command) {
            let histogram =
                metrics::histogram!("strata_command_duration_seconds", "command" => command);
            commands.push((command, histogram));
        }
        if let Some((_, histogram)) = commands.iter().find(|(name, _)| *name == command) {
            histogram.record(seconds);
        }
    }
}

/// Live counters of one server, for `/stats` and the console.
#[derive(Debug, Default)]
pub struct Stats {
    appends: AtomicU64,
    events: AtomicU64,
    commands: AtomicU64,
    requests: AtomicU64,
    latency_sum_us: AtomicU64,
    latency_buckets: [AtomicU64; CONSOLE_BUCKETS_US.len()],
    subscribers: AtomicI64,
    handles: Handles,
}

impl Stats {
    /// Installs the Prometheus recorder if no one has yet.
    pub(crate) fn new() -> Self {
        let _ = handle();
        Self::default()
    }

    /// An append of `events` events was acknowledged.
    pub(crate) fn appended(&self, events: usize, took: Duration) {
        self.appends.fetch_add(1, Ordering::Relaxed);
        self.events.fetch_add(events as u64, Ordering::Relaxed);
        self.handles.appended(events);
        self.handles.command("append", took);
    }

    /// A command (`command` names it) finished after `took`, having appended `events`.
    pub fn command(&self, command: &'static str, events: usize, took: Duration) {
        self.commands.fetch_add(1, Ordering::Relaxed);
        if events > 0 {
            self.appends.fetch_add(1, Ordering::Relaxed);
            self.events.fetch_add(events as u64, Ordering::Relaxed);
            self.handles.appended(events);
        }
        self.handles.command(command, took);
    }

    /// An HTTP request was answered.
    pub(crate) fn request(&self, method: &str, status: u16, took: Duration) {
        let answered = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        if answered.is_multiple_of(UPKEEP_EVERY) {
            upkeep();
        }
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.latency_sum_us.fetch_add(us, Ordering::Relaxed);
        let bucket = CONSOLE_BUCKETS_US
            .iter()
            .position(|&le| us <= le)
            .unwrap_or(CONSOLE_BUCKETS_US.len() - 1);
        self.latency_buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.handles.request(method, status);
        self.handles
            .duration
            .get_or_init(|| metrics::histogram!("strata_http_request_duration_seconds"))
            .record(took.as_secs_f64());
    }

    /// A subscription opened (`+1`) or closed (`-1`).
    pub(crate) fn subscribers(&self, delta: i64) {
        let now = self.subscribers.fetch_add(delta, Ordering::Relaxed) + delta;
        metrics::gauge!("strata_sse_subscribers").set(now as f64);
    }

    /// A snapshot of the counters.
    pub(crate) fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            appends: self.appends.load(Ordering::Relaxed),
            events_appended: self.events.load(Ordering::Relaxed),
            commands: self.commands.load(Ordering::Relaxed),
            requests: self.requests.load(Ordering::Relaxed),
            latency_sum_us: self.latency_sum_us.load(Ordering::Relaxed),
            latency_buckets: CONSOLE_BUCKETS_US
                .iter()
                .zip(&self.latency_buckets)
                .map(|(&le, n)| LatencyBucket {
                    le_us: (le != u64::MAX).then_some(le),
                    count: n.load(Ordering::Relaxed),
                })
                .collect(),
            sse_subscribers: self.subscribers.load(Ordering::Relaxed).max(0) as u64,
        }
    }
}

/// The live counters at one moment (`GET /stats`).
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct StatsSnapshot {
    /// Appends acknowledged since the server started (raw appends and commands).
    pub appends: u64,
    /// Events in those appends.
    pub events_appended: u64,
    /// Commands handled.
    pub commands: u64,
    /// HTTP requests answered (subscriptions excluded).
    pub requests: u64,
    /// Sum of their latencies, in microseconds.
    pub latency_sum_us: u64,
    /// How many requests fell in each latency bucket (not cumulative).
    pub latency_buckets: Vec<LatencyBucket>,
    /// Open subscriptions.
    pub sse_subscribers: u64,
}

/// One latency bucket.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LatencyBucket {
    /// Upper bound in microseconds; `null` for the last, unbounded bucket.
    pub le_us: Option<u64>,
    /// Requests in the bucket.
    pub count: u64,
}

/// The Prometheus text of every metric.
pub(crate) fn render() -> String {
    match handle() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}

#[cfg(test)]
mod tests;
