//! `strata bench`: performance scenarios, each printing one JSON line of results.
//! Benchmarks measure; they never assert a time.

mod disk;

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use crate::args::{BenchScenario, DiskArgs};

#[cfg(test)]
pub(crate) use disk::percentile_ms;
pub(crate) use disk::{Ceiling, measure_disk_ceiling};

/// Runs one scenario and prints its result line.
pub(crate) fn run(
    data_dir: &Path,
    scenario: &BenchScenario,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match scenario {
        BenchScenario::Disk(args) => disk(data_dir, args, out),
    }
}

fn disk(data_dir: &Path, args: &DiskArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let dir = args.dir.as_deref().unwrap_or(data_dir);
    let ceiling = measure_disk_ceiling(dir, args.rounds)
        .with_context(|| format!("cannot measure the disk ceiling in {}", dir.display()))?;
    print_result(out, &ScenarioResult::of_ceiling(&ceiling))
}

/// The result line every scenario prints.
#[derive(Debug, serde::Serialize)]
pub(crate) struct ScenarioResult {
    /// The scenario's name.
    pub(crate) scenario: &'static str,
    /// Events made durable per second.
    pub(crate) events_per_s: f64,
    /// Median latency of one operation, in milliseconds.
    pub(crate) p50_ms: f64,
    /// 99th percentile latency, in milliseconds.
    pub(crate) p99_ms: f64,
    /// `events_per_s` divided by the disk ceiling's.
    pub(crate) ratio_to_ceiling: f64,
}

impl ScenarioResult {
    /// The disk ceiling's own result: its ratio to itself is 1.
    pub(crate) fn of_ceiling(ceiling: &Ceiling) -> Self {
        Self {
            scenario: "disk_ceiling",
            events_per_s: ceiling.events_per_s,
            p50_ms: ceiling.p50_ms,
            p99_ms: ceiling.p99_ms,
            ratio_to_ceiling: 1.0,
        }
    }
}

/// Prints a scenario's result as one JSON line.
pub(crate) fn print_result(out: &mut impl Write, result: &ScenarioResult) -> anyhow::Result<()> {
    serde_json::to_writer(&mut *out, result).context("cannot write to standard output")?;
    writeln!(out).context("cannot write to standard output")?;
    out.flush().context("cannot write to standard output")
}
