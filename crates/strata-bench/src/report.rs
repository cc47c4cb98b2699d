//! What a scenario reports: one JSON line with what it did (events per second only for
//! events it really wrote, read or folded; latency with its sample count) beside the
//! ceiling that bounds it, and a ratio only where one means something.
//!
//! The ceilings are measured here, around each scenario: durable writes against the disk
//! written in the shape the store used in that very run, reads against `pread` of the
//! same bytes. Nothing here runs a scenario.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};
use strata_store::EventStore as _;
use strata_store_embedded::EmbeddedStore;

use crate::error::{Context as _, Result};
use crate::probe::{ReadProbe, SyncProbe, SyncShape, probe_pread, probe_sync, segment_bytes};
use crate::stats::Summary;

/// Where and for how long the ceilings are probed.
#[derive(Debug, Clone)]
pub(crate) struct Probes {
    /// Probes work in temporary directories under this one.
    pub(crate) dir: PathBuf,
    /// How long each probe runs.
    pub(crate) duration: Duration,
}

impl Probes {
    /// Starts bracketing a durable-write scenario on `store`: probes the disk now in the
    /// shape the scenario plans (usually its largest possible group) and notes the store's
    /// counters, so that [`Bracket::after`] can tell what the run really did.
    pub(crate) async fn before(
        &self,
        store: &EmbeddedStore,
        planned: SyncShape,
    ) -> Result<Bracket> {
        let before = self.sync(planned)?;
        Ok(Bracket {
            probes: self.clone(),
            before,
            start: StoreCounters::read(store).await?,
        })
    }

    /// The write ceiling in `shape`.
    fn sync(&self, shape: SyncShape) -> Result<SyncProbe> {
        probe_sync(&self.dir, shape, self.duration).with_context(|| {
            format!(
                "cannot measure the disk (write and fdatasync) in {}",
                self.dir.display()
            )
        })
    }

    /// The read ceiling of a read scenario over the store in `store_dir`, which holds
    /// `events` events: its segment files read back with `pread`.
    pub(crate) fn pread(&self, store_dir: &Path, events: u64) -> Result<ReadCeiling> {
        let files = crate::probe::segment_files(store_dir)
            .with_context(|| format!("cannot list the segments in {}", store_dir.display()))?;
        let bytes = segment_bytes(store_dir);
        let probe = probe_pread(&files, self.duration)
            .with_context(|| format!("cannot pread the segments in {}", store_dir.display()))?;
        Ok(ReadCeiling {
            events_per_s: probe.events_per_s(events, bytes),
            probe,
        })
    }
}

/// What the store had done when a bracket opened or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct StoreCounters {
    fdatasyncs: u64,
    head: u64,
    segment_bytes: u64,
}

impl StoreCounters {
    async fn read(store: &EmbeddedStore) -> Result<Self> {
        Ok(Self {
            fdatasyncs: store.stats().fdatasyncs,
            head: store.head().await?.0,
            segment_bytes: segment_bytes(store.dir()),
        })
    }
}

/// A durable-write scenario in progress between its two probes.
#[derive(Debug)]
pub(crate) struct Bracket {
    probes: Probes,
    before: SyncProbe,
    start: StoreCounters,
}

impl Bracket {
    /// Closes the bracket once the scenario is done: reads what the store did since
    /// [`Probes::before`] (events, fdatasyncs, segment bytes), probes the disk again in
    /// the planned shape, and probes it in the shape the store really used when that
    /// differs.
    pub(crate) async fn after(self, store: &EmbeddedStore) -> Result<SyncCeiling> {
        let end = StoreCounters::read(store).await?;
        let events = end.head - self.start.head;
        let syncs = end.fdatasyncs - self.start.fdatasyncs;
        let bytes = end.segment_bytes.saturating_sub(self.start.segment_bytes);
        let after = self.probes.sync(self.before.shape)?;
        let matched = match SyncShape::of_run(events, syncs, bytes) {
            Some(shape) if shape == after.shape => Some(after.clone()),
            Some(shape) => Some(self.probes.sync(shape)?),
            None => None,
        };
        Ok(SyncCeiling {
            store_events: events,
            store_syncs: syncs,
            store_bytes: bytes,
            matched,
            before: self.before,
            after,
        })
    }
}

/// The write ceiling of one durable-write run.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncCeiling {
    /// Events the store appended during the run.
    pub(crate) store_events: u64,
    /// fdatasyncs the store made during the run.
    pub(crate) store_syncs: u64,
    /// Segment bytes the store wrote during the run.
    pub(crate) store_bytes: u64,
    /// The disk in the shape the store used (probed after the run); none when the store
    /// synced nothing.
    pub(crate) matched: Option<SyncProbe>,
    /// The disk in the planned shape before the run.
    pub(crate) before: SyncProbe,
    /// The same shape after the run: beside `before`, says whether the disk changed.
    pub(crate) after: SyncProbe,
}

/// The read ceiling of one read run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ReadCeiling {
    /// The probe's bytes per second, as events of the run per second.
    pub(crate) events_per_s: f64,
    /// The probe.
    pub(crate) probe: ReadProbe,
}

/// What bounds a scenario, and so what its result is compared with.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Ceiling {
    /// Durable appends as fast as the store takes them: throughput against the disk
    /// written in the same shape (`ratio_to_ceiling`), latency against one group's write
    /// and fdatasync.
    Writes(SyncCeiling),
    /// Durable appends at a pace the scenario sets: its throughput is what was offered,
    /// so only its latency is compared.
    PacedWrites(SyncCeiling),
    /// Reads of the log: against `pread` of the same bytes (`ratio_to_pread`).
    Reads(ReadCeiling),
    /// Writes to PostgreSQL: against raw INSERTs of the same rows into the same table
    /// (`ratio_to_ceiling`).
    RawInsert(RawCeiling),
    /// Nothing measured here bounds it in a way a ratio would mean; the reason is printed.
    None(&'static str),
}

/// The ceiling of a PostgreSQL run: the same event rows inserted into `strata.events`
/// with plain INSERTs, no event-store logic.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RawCeiling {
    /// Rows inserted per second.
    pub(crate) events_per_s: f64,
    /// Median latency of one INSERT statement, in milliseconds.
    pub(crate) p50_ms: f64,
    /// Connections inserting at once.
    pub(crate) clients: usize,
    /// Rows per INSERT statement (each statement its own commit).
    pub(crate) rows_per_statement: u64,
}

impl Ceiling {
    /// The ratio of `events_per_s` to the write ceiling: only for [`Ceiling::Writes`]
    /// whose store synced.
    pub(crate) fn ratio_to_ceiling(&self, events_per_s: Option<f64>) -> Option<f64> {
        match self {
            Ceiling::Writes(sync) => {
                Some(ratio(events_per_s?, sync.matched.as_ref()?.events_per_s))
            }
            Ceiling::RawInsert(raw) => Some(ratio(events_per_s?, raw.events_per_s)),
            _ => None,
        }
    }
}

/// The result line every scenario prints: `scenario`, `events_per_s`, `p50_ms`,
/// `p99_ms`, `samples` and `ceiling` always (`events_per_s` is null where the scenario
/// did not write, read or fold events; a percentile is null where too few samples
/// support it), `ratio_to_ceiling` only for durable writes, then the ceiling's and the
/// scenario's own figures.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ScenarioResult {
    /// The scenario's name.
    pub(crate) scenario: String,
    /// Events written, read or folded per second.
    pub(crate) events_per_s: Option<f64>,
    /// Median latency of one operation (named by `latency_is_per`), in milliseconds.
    pub(crate) p50_ms: Option<f64>,
    /// 99th percentile latency, in milliseconds: null from fewer than
    /// [`MIN_P99_SAMPLES`](crate::stats::MIN_P99_SAMPLES) samples.
    pub(crate) p99_ms: Option<f64>,
    /// The latency samples the percentiles come from.
    pub(crate) samples: usize,
    /// `events_per_s` ÷ the write ceiling in the same shape: durable writes only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ratio_to_ceiling: Option<f64>,
    /// What bounds it: `fdatasync`, `pread` or `none` (absent on a probe's own line).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) ceiling: Option<&'static str>,
    /// The ceiling's figures and the scenario's own (printed sorted by name).
    #[serde(flatten)]
    pub(crate) extra: Map<String, Value>,
}

impl ScenarioResult {
    /// A scenario's result, before its ceiling is attached: what it did and how long
    /// each `latency_is_per` took.
    pub(crate) fn new(
        scenario: impl Into<String>,
        events_per_s: Option<f64>,
        latency: &Summary,
        latency_is_per: &str,
    ) -> Self {
        Self {
            scenario: scenario.into(),
            events_per_s: events_per_s.map(|v| round(v, 1)),
            p50_ms: latency.p50().map(|v| round(v, 4)),
            p99_ms: latency.p99().map(|v| round(v, 4)),
            samples: latency.count,
            ratio_to_ceiling: None,
            ceiling: Some("none"),
            extra: Map::new(),
        }
        .with("latency_is_per", latency_is_per)
        .with("max_ms", latency.max_ms)
    }

    /// A write probe's own line (`strata bench disk`).
    pub(crate) fn of_probe(probe: &SyncProbe) -> Self {
        Self {
            ceiling: None,
            ..Self::new(
                "disk_ceiling",
                Some(probe.events_per_s),
                &probe.sync,
                "write and fdatasync of one group",
            )
        }
        .with("events_per_sync", probe.shape.events_per_sync)
        .with("record_bytes", probe.shape.record_bytes)
    }

    /// Attaches what bounds the scenario: its figures, and the ratios that mean
    /// something for it.
    pub(crate) fn against(mut self, ceiling: &Ceiling) -> Self {
        self.ratio_to_ceiling = ceiling
            .ratio_to_ceiling(self.events_per_s)
            .map(|r| round(r, 4));
        match ceiling {
            Ceiling::Writes(sync) | Ceiling::PacedWrites(sync) => self.with_sync(sync),
            Ceiling::Reads(read) => {
                self.ceiling = Some("pread");
                let ratio_to_pread = self.events_per_s.map(|e| ratio(e, read.events_per_s));
                self.with("pread_events_per_s", round(read.events_per_s, 1))
                    .with("pread_bytes_per_s", round(read.probe.bytes_per_s, 0))
                    .with("pread_passes", read.probe.passes)
                    .with("ratio_to_pread", ratio_to_pread)
            }
            Ceiling::RawInsert(raw) => {
                self.ceiling = Some("raw_insert");
                self.with("ceiling_events_per_s", round(raw.events_per_s, 1))
                    .with("ceiling_p50_ms", raw.p50_ms)
                    .with("ceiling_clients", raw.clients)
                    .with("ceiling_rows_per_statement", raw.rows_per_statement)
            }
            Ceiling::None(why) => {
                self.ceiling = Some("none");
                self.with("ceiling_note", *why)
            }
        }
    }

    fn with_sync(mut self, sync: &SyncCeiling) -> Self {
        self = self
            .with("store_fdatasyncs", sync.store_syncs)
            .with(
                "store_events_per_sync",
                ratio(sync.store_events as f64, sync.store_syncs as f64),
            )
            .with(
                "store_bytes_per_event",
                ratio(sync.store_bytes as f64, sync.store_events as f64),
            )
            .with("bracket_events_per_sync", sync.before.shape.events_per_sync)
            .with("bracket_record_bytes", sync.before.shape.record_bytes)
            .with(
                "bracket_before_events_per_s",
                round(sync.before.events_per_s, 1),
            )
            .with(
                "bracket_after_events_per_s",
                round(sync.after.events_per_s, 1),
            )
            .with("bracket_before_sync_p50_ms", sync.before.sync.p50_ms)
            .with("bracket_after_sync_p50_ms", sync.after.sync.p50_ms);
        let Some(matched) = &sync.matched else {
            self.ceiling = Some("none");
            return self.with("ceiling_note", "the store made no fdatasync in this run");
        };
        self.ceiling = Some("fdatasync");
        let latency_ratio = self.p50_ms.map(|p50| ratio(p50, matched.sync.p50_ms));
        self.with("ceiling_events_per_sync", matched.shape.events_per_sync)
            .with("ceiling_record_bytes", matched.shape.record_bytes)
            .with("ceiling_events_per_s", round(matched.events_per_s, 1))
            .with("ceiling_sync_p50_ms", matched.sync.p50_ms)
            .with("ceiling_syncs", matched.sync.count)
            .with("latency_ratio_to_sync", latency_ratio)
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
pub(crate) fn print_result(out: &mut impl Write, result: &ScenarioResult) -> Result<()> {
    const STDOUT: &str = "cannot write to standard output";
    serde_json::to_writer(&mut *out, result).context(STDOUT)?;
    writeln!(out).context(STDOUT)?;
    out.flush().context(STDOUT)
}
