//! What a scenario reports: one JSON line with its throughput and latency, both put in
//! proportion to the disk baseline measured in the same process just before it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context as _;
use serde::Serialize;
use serde_json::{Map, Value};

use super::disk::{Ceiling, FsyncLatency, fsync_samples, measure_disk_ceiling};
use super::stats::Summary;
use crate::bench::args::Common;

/// The disk as measured in this process: the batch ceiling and the latency of one sync.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Baseline {
    /// Batches of 1000 × 256 bytes, each written then fdatasync'd.
    pub(crate) ceiling: Ceiling,
    /// One 256-byte write then fdatasync.
    pub(crate) fsync: FsyncLatency,
    /// Where it was measured, to measure the fsync latency again.
    pub(crate) dir: PathBuf,
    /// Rounds of each fsync measurement.
    pub(crate) fsync_rounds: u32,
}

impl Baseline {
    /// Measures both in temporary directories under `dir`.
    pub(crate) fn measure(dir: &Path, common: &Common) -> anyhow::Result<Self> {
        let ceiling = measure_disk_ceiling(dir, common.ceiling_rounds)
            .with_context(|| format!("cannot measure the disk ceiling in {}", dir.display()))?;
        let mut baseline = Self {
            ceiling,
            fsync: FsyncLatency {
                p50_ms: 0.0,
                p99_ms: 0.0,
            },
            dir: dir.to_owned(),
            fsync_rounds: common.fsync_rounds,
        };
        baseline.fsync = FsyncLatency::of(&mut baseline.fsync_samples()?);
        Ok(baseline)
    }

    fn fsync_samples(&self) -> anyhow::Result<Vec<Duration>> {
        fsync_samples(&self.dir, self.fsync_rounds)
            .with_context(|| format!("cannot measure the fsync latency in {}", self.dir.display()))
    }

    /// Starts bracketing a latency measurement with fsync measurements: the disk's
    /// latency changes by an order of magnitude when neighbours write, so it is taken
    /// right before and right after the scenario it is compared with.
    pub(crate) fn fsync_before(&self) -> anyhow::Result<FsyncBracket> {
        Ok(FsyncBracket {
            before: self.fsync_samples()?,
        })
    }
}

/// The fsync latency measured before a scenario, waiting for the measure after.
#[derive(Debug)]
pub(crate) struct FsyncBracket {
    before: Vec<Duration>,
}

impl FsyncBracket {
    /// Measures again and summarizes both.
    pub(crate) fn after(self, baseline: &Baseline) -> anyhow::Result<FsyncAround> {
        Ok(FsyncAround::of(self.before, baseline.fsync_samples()?))
    }
}

/// The fsync latency around a scenario.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FsyncAround {
    /// Median over the rounds before and after.
    pub(crate) p50_ms: f64,
    /// Median of the rounds before.
    pub(crate) before_p50_ms: f64,
    /// Median of the rounds after.
    pub(crate) after_p50_ms: f64,
}

impl FsyncAround {
    /// Summarizes the rounds before and after.
    pub(crate) fn of(mut before: Vec<Duration>, mut after: Vec<Duration>) -> Self {
        let before_p50_ms = FsyncLatency::of(&mut before).p50_ms;
        let after_p50_ms = FsyncLatency::of(&mut after).p50_ms;
        before.append(&mut after);
        Self {
            p50_ms: FsyncLatency::of(&mut before).p50_ms,
            before_p50_ms,
            after_p50_ms,
        }
    }
}

/// The result line every scenario prints: `scenario`, `events_per_s`, `p50_ms`, `p99_ms`
/// and `ratio_to_ceiling` always, then the disk baseline it was compared with and the
/// scenario's own figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScenarioResult {
    /// The scenario's name.
    pub(crate) scenario: String,
    /// Events per second (for requests that are not events, the equivalent: one event
    /// per command, one per query answered).
    pub(crate) events_per_s: f64,
    /// Median latency of one operation, in milliseconds.
    pub(crate) p50_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub(crate) p99_ms: f64,
    /// `events_per_s` divided by the disk ceiling's.
    pub(crate) ratio_to_ceiling: f64,
    /// The rest: the baseline it was compared with and the scenario's own figures
    /// (printed sorted by name).
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

impl ScenarioResult {
    /// The disk ceiling's own result: its ratio to itself is 1.
    pub(crate) fn of_ceiling(ceiling: &Ceiling) -> Self {
        Self {
            scenario: "disk_ceiling".to_owned(),
            events_per_s: round(ceiling.events_per_s, 1),
            p50_ms: round(ceiling.p50_ms, 4),
            p99_ms: round(ceiling.p99_ms, 4),
            ratio_to_ceiling: 1.0,
            extra: Map::new(),
        }
    }

    /// The baseline as a line of its own, printed before the scenarios of a run.
    pub(crate) fn of_baseline(baseline: &Baseline) -> Self {
        Self::of_ceiling(&baseline.ceiling)
            .with("fsync_p50_ms", round(baseline.fsync.p50_ms, 4))
            .with("fsync_p99_ms", round(baseline.fsync.p99_ms, 4))
    }

    /// A scenario's result: its throughput and latencies, compared with `baseline`.
    pub(crate) fn new(
        scenario: impl Into<String>,
        events_per_s: f64,
        latency: &Summary,
        baseline: &Baseline,
    ) -> Self {
        let ceiling = baseline.ceiling.events_per_s;
        Self {
            scenario: scenario.into(),
            events_per_s: round(events_per_s, 1),
            p50_ms: round(latency.p50_ms, 4),
            p99_ms: round(latency.p99_ms, 4),
            ratio_to_ceiling: round(ratio(events_per_s, ceiling), 4),
            extra: Map::new(),
        }
        .with("ceiling_events_per_s", round(ceiling, 1))
        .with("samples", latency.count)
        .with("max_ms", round(latency.max_ms, 4))
    }

    /// Adds the fsync latency measured around the scenario and `p50_ms` in proportion
    /// to it: for scenarios whose latency one sync bounds from below.
    pub(crate) fn with_fsync(self, fsync: &FsyncAround) -> Self {
        let ratio_to_fsync = ratio(self.p50_ms, fsync.p50_ms);
        self.with("fsync_p50_ms", round(fsync.p50_ms, 4))
            .with("fsync_before_p50_ms", round(fsync.before_p50_ms, 4))
            .with("fsync_after_p50_ms", round(fsync.after_p50_ms, 4))
            .with("latency_ratio_to_fsync", round(ratio_to_fsync, 3))
    }

    /// Adds a figure (a float is rounded to 4 decimals).
    pub(crate) fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        let value = match value.into() {
            Value::Number(n) if n.is_f64() => {
                n.as_f64().map_or(Value::Null, |f| Value::from(round(f, 4)))
            }
            other => other,
        };
        self.extra.insert(key.to_owned(), value);
        self
    }
}

/// `a / b`, or 0 when `b` is not positive.
pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

/// `value` rounded to `decimals` places (non-finite values become 0).
pub(crate) fn round(value: f64, decimals: i32) -> f64 {
    if !value.is_finite() {
        return 0.0;
    }
    let scale = 10f64.powi(decimals);
    (value * scale).round() / scale
}

/// Prints a scenario's result as one JSON line.
pub(crate) fn print_result(out: &mut impl Write, result: &ScenarioResult) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, result).context("cannot write to standard output")?;
    writeln!(out).context("cannot write to standard output")?;
    out.flush().context("cannot write to standard output")
}
