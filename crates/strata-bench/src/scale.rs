//! How the cost per event grows with the log: appending, reading the whole log, opening
//! and rebuilding the read models, each at several log sizes, and appending against a
//! growing number of streams. Each prints its cost per event (ns/event) at every size,
//! then one line per phase with the spread between its cheapest and dearest size.
//! Nothing here asserts that the cost stays flat: the lines say how far it moved.

use std::path::Path;
use std::time::Duration;

use strata_core::{ExpectedVersion, Position};
use strata_store::{EventStore, ReadFilter};
use strata_store_embedded::{BatchAppend, Options};
use tokio::time::Instant;

use crate::args::{RebuildArgs, ScaleArgs, ScalePhase};
use crate::error::{Context as _, Result, ensure};
use crate::fixtures::{
    append_all, bench_event, log_appends, open_store, payload, progress_printer, scratch, stream,
};
use crate::probe::{SyncShape, probe_sync_volume, segment_bytes};
use crate::report::{Ceiling, Probes, ScenarioResult};
use crate::stats::{Summary, rate};

/// Events per `read_all` page.
const PAGE: usize = 4096;
/// Products in the catalog of the rebuilt shop history.
const PRODUCTS: u64 = 1000;

/// One measured cost: a phase at one size.
pub(crate) struct Cost {
    size: u64,
    elapsed: Duration,
    events: u64,
    /// What the disk alone took per event for the same work, where it was measured.
    ceiling_ns_per_event: Option<f64>,
    /// What a bare hash map took per event for the same lookups (see [`bare_index`]).
    pub(crate) bare_ns_per_event: Option<f64>,
}

impl Cost {
    pub(crate) fn new(size: u64, elapsed: Duration, events: u64) -> Self {
        Self {
            size,
            elapsed,
            events,
            ceiling_ns_per_event: None,
            bare_ns_per_event: None,
        }
    }

    fn ns_per_event(&self) -> f64 {
        self.elapsed.as_secs_f64() * 1e9 / self.events.max(1) as f64
    }

    /// The cost per event above the disk's own for the same work: what the store adds.
    fn own_ns_per_event(&self) -> Option<f64> {
        self.ceiling_ns_per_event
            .map(|ceiling| (self.ns_per_event() - ceiling).max(0.0))
    }
}

/// Runs the phases of `args` at each size and prints what each event cost.
pub(crate) async fn scale(
    dir: &Path,
    args: &ScaleArgs,
    probes: &Probes,
) -> Result<Vec<ScenarioResult>> {
    let wants = |phase| args.phases.contains(&phase);
    let mut results = Vec::new();
    let log_phases = [ScalePhase::Append, ScalePhase::ReadAll, ScalePhase::Open];
    if log_phases.into_iter().any(wants) {
        let mut append = Vec::new();
        let mut read = Vec::new();
        let mut open = Vec::new();
        for &size in &args.sizes {
            let log = log_at(dir, args, size).await?;
            if wants(ScalePhase::Append) {
                results.push(line("append", "append", &log.append, "events"));
            }
            if wants(ScalePhase::ReadAll) {
                results.push(line("read_all", "read_all", &log.read, "events"));
            }
            if wants(ScalePhase::Open) {
                results.push(
                    line("open", "open", &log.open, "events")
                        .with("open_bytes_per_event", log.open_bytes_per_event),
                );
            }
            append.push(log.append);
            read.push(log.read);
            open.push(log.open);
        }
        for (phase, costs) in [
            (ScalePhase::Append, append),
            (ScalePhase::ReadAll, read),
            (ScalePhase::Open, open),
        ] {
            if wants(phase) {
                results.push(spread(phase.as_str(), &costs, "events"));
            }
        }
    }
    if wants(ScalePhase::Rebuild) {
        let mut costs = Vec::new();
        for &size in &args.sizes {
            let rebuilt = crate::shop::rebuild(
                dir,
                &RebuildArgs {
                    events: size,
                    products: PRODUCTS.min(size / 4).max(1),
                    common: args.common.clone(),
                },
                probes,
            )
            .await?;
            let per_s = rebuilt
                .events_per_s
                .filter(|&per_s| per_s > 0.0)
                .context("the rebuild reported no rate")?;
            let cost = Cost::new(size, Duration::from_secs_f64(size as f64 / per_s), size);
            results.push(line("rebuild", "rebuild", &cost, "events"));
            costs.push(cost);
        }
        results.push(spread("rebuild", &costs, "events"));
    }
    if wants(ScalePhase::Streams) {
        let mut costs = Vec::new();
        for &streams in &args.streams {
            let cost = append_over_streams(dir, args, streams).await?;
            results.push(line("streams", "append", &cost, "streams"));
            costs.push(cost);
        }
        results.push(spread("streams", &costs, "streams"));
    }
    Ok(results)
}

/// What one log size cost to append, read whole and open.
struct LogCosts {
    append: Cost,
    read: Cost,
    open: Cost,
    open_bytes_per_event: f64,
}

/// Appends a log of `size` events durably (streams of `--events-per-stream`), reads it
/// whole, closes it and opens it in a fresh process. Then, with the store removed, the
/// disk alone writes the same bytes in the same groups, each made durable as the store's
/// were, and keeps them as the store kept its segments: the page cache a log of this size
/// fills is the machine's cost, not the store's, and the append's line says both.
async fn log_at(dir: &Path, args: &ScaleArgs, size: u64) -> Result<LogCosts> {
    let scratch = scratch(dir, "scale")?;
    let store = open_store(scratch.path(), Options::default())?;
    let appends = log_appends(
        "scale",
        size,
        args.events_per_stream,
        payload(args.event_bytes),
    );
    settle(args).await;
    let syncs_before = store.stats().fdatasyncs;
    let started = Instant::now();
    let written = append_all(&store, appends, progress_printer("scale log", size)).await?;
    let mut append = Cost::new(size, started.elapsed(), written);
    let shape = SyncShape::of_run(
        written,
        store.stats().fdatasyncs - syncs_before,
        segment_bytes(store.dir()),
    );

    let filter = ReadFilter::all();
    let started = Instant::now();
    let mut from = Position(1);
    let mut read = 0;
    while read < size {
        let page = store.read_all(from, PAGE, &filter).await?;
        ensure!(!page.events.is_empty(), "the log ended after {read} events");
        read += page.events.len() as u64;
        from = page.next;
    }
    let read = Cost::new(size, started.elapsed(), read);
    store.close().await?;

    let store_dir = scratch.path().to_owned();
    let measure = tokio::task::spawn_blocking(move || crate::open::open_in_child(&store_dir))
        .await
        .context("the open measurement failed")??;
    ensure!(
        measure.events == size,
        "the store holds {} events, not {size}",
        measure.events
    );
    let open = Cost::new(
        size,
        Duration::from_secs_f64(measure.open_ms / 1000.0),
        size,
    );
    let open_bytes = measure
        .rss_after_bytes
        .saturating_sub(measure.rss_before_bytes);
    drop(scratch);
    if let Some(shape) = shape {
        append.ceiling_ns_per_event = Some(disk_ns_per_event(dir, args, shape, written).await?);
    }
    Ok(LogCosts {
        append,
        read,
        open,
        open_bytes_per_event: open_bytes as f64 / size as f64,
    })
}

/// Waits `--settle-seconds` (see [`ScaleArgs::settle_seconds`]).
async fn settle(args: &ScaleArgs) {
    tokio::time::sleep(Duration::from_secs_f64(args.settle_seconds)).await;
}

/// Appends `--stream-events` events one per append, round-robin over `streams` streams
/// that already exist, durably, in calls of many appends: the same appends whatever the
/// stream count, so what changes is only how many streams the index holds and looks up.
/// The streams are created first, one event each, untimed: creating a stream is not
/// appending to one. Then, with the store removed, the disk alone writes the timed
/// appends' bytes in the store's groups, as [`log_at`] does.
async fn append_over_streams(dir: &Path, args: &ScaleArgs, streams: u64) -> Result<Cost> {
    let scratch = scratch(dir, "scale-streams")?;
    let store = open_store(scratch.path(), Options::default())?;
    let data = payload(args.event_bytes);
    let streams = streams.max(1);
    let single = |n: u64| BatchAppend {
        stream: stream(format!("many-{}", n % streams)),
        expected: ExpectedVersion::Any,
        events: vec![bench_event(&data)],
        recorded_at: None,
    };
    let created = append_all(
        &store,
        (0..streams).map(single),
        progress_printer("scale streams (creating)", streams),
    )
    .await?;
    ensure!(
        created == streams,
        "created {created} streams, not {streams}"
    );
    settle(args).await;
    let syncs_before = store.stats().fdatasyncs;
    let bytes_before = segment_bytes(store.dir());
    let started = Instant::now();
    let written = append_all(
        &store,
        (0..args.stream_events).map(single),
        progress_printer("scale streams", args.stream_events),
    )
    .await?;
    let elapsed = started.elapsed();
    let shape = SyncShape::of_run(
        written,
        store.stats().fdatasyncs - syncs_before,
        segment_bytes(store.dir()).saturating_sub(bytes_before),
    );
    store.close().await?;
    drop(scratch);
    let mut cost = Cost::new(streams, elapsed, written);
    if let Some(shape) = shape {
        cost.ceiling_ns_per_event = Some(disk_ns_per_event(dir, args, shape, written).await?);
    }
    let appends = args.stream_events;
    cost.bare_ns_per_event = Some(
        tokio::task::spawn_blocking(move || bare_index(streams, appends))
            .await
            .context("the bare index probe failed")?,
    );
    Ok(cost)
}

/// The machine's side of appending against many streams: what one lookup and update of
/// a bare hash map from stream name to version costs per append, for `appends` appends
/// round-robin over `streams` names built as the timed appends build theirs. It is the
/// least any index does to check an expected version, and its cost grows with the
/// streams only as the map falls out of the CPU's caches; the store's growth is compared
/// with it in lookups (see [`spread`]).
fn bare_index(streams: u64, appends: u64) -> f64 {
    let mut versions: foldhash::HashMap<String, u64> = foldhash::HashMap::default();
    for n in 0..streams {
        versions.insert(format!("many-{n}"), 1);
    }
    let started = std::time::Instant::now();
    for n in 0..appends {
        let name = format!("many-{}", n % streams);
        if let Some(version) = versions.get_mut(std::hint::black_box(name.as_str())) {
            *version += 1;
        }
    }
    let elapsed = started.elapsed();
    std::hint::black_box(&versions);
    elapsed.as_secs_f64() * 1e9 / appends.max(1) as f64
}

/// What the disk alone takes per event to write `events` records in `shape`, keeping
/// every file, after `--settle-seconds`.
async fn disk_ns_per_event(
    dir: &Path,
    args: &ScaleArgs,
    shape: SyncShape,
    events: u64,
) -> Result<f64> {
    settle(args).await;
    let bytes = shape.record_bytes * events;
    let probe_dir = dir.to_owned();
    let probe = tokio::task::spawn_blocking(move || probe_sync_volume(&probe_dir, shape, bytes))
        .await
        .context("the disk probe failed")?
        .with_context(|| format!("cannot measure the disk in {}", dir.display()))?;
    Ok(1e9 / probe.events_per_s.max(f64::MIN_POSITIVE))
}

/// The line of one phase at one size.
fn line(name: &str, what: &str, cost: &Cost, size_is: &str) -> ScenarioResult {
    ScenarioResult::new(
        format!("scale_{name}_{}", cost.size),
        Some(rate(cost.events as f64, cost.elapsed)),
        &Summary::single(cost.elapsed),
        &format!("whole {what}"),
    )
    .against(&Ceiling::None(if cost.ceiling_ns_per_event.is_some() {
        "the cost per event is compared across sizes; disk_ns_per_event is the disk alone \
         writing the same bytes in the same durable groups"
    } else {
        "the cost per event is compared across sizes, not with the disk"
    }))
    .with("ns_per_event", cost.ns_per_event())
    .with("events", cost.events)
    .with(size_is, cost.size)
    .with("seconds", cost.elapsed.as_secs_f64())
    .with("disk_ns_per_event", cost.ceiling_ns_per_event)
    .with("bare_index_ns_per_event", cost.bare_ns_per_event)
    .with("own_ns_per_event", cost.own_ns_per_event())
    .with(
        "ratio_to_disk",
        cost.ceiling_ns_per_event
            .map(|ceiling| ceiling / cost.ns_per_event().max(f64::MIN_POSITIVE)),
    )
}

/// The phase's summary: its cost per event at each size, and how far the dearest is
/// above the cheapest (`spread`, 0.2 = 20 %); where the disk's own cost was measured, the
/// same for the cost above it (`own_spread`).
pub(crate) fn spread(name: &str, costs: &[Cost], size_is: &str) -> ScenarioResult {
    let per_event: Vec<f64> = costs.iter().map(Cost::ns_per_event).collect();
    let own: Option<Vec<f64>> = costs.iter().map(Cost::own_ns_per_event).collect();
    let spread = spread_of(&per_event);
    let by_size =
        |value: &dyn Fn(&Cost) -> Option<f64>| -> serde_json::Map<String, serde_json::Value> {
            costs
                .iter()
                .filter_map(|c| {
                    let v = value(c)?;
                    Some((
                        c.size.to_string(),
                        serde_json::Value::from(crate::report::round(v, 1)),
                    ))
                })
                .collect()
        };
    let mut samples: Vec<Duration> = costs.iter().map(|c| c.elapsed).collect();
    let mut result = ScenarioResult::new(
        format!("scale_{name}"),
        None,
        &Summary::of(&mut samples),
        &format!("run at one {}", size_is.trim_end_matches('s')),
    )
    .against(&Ceiling::None(
        "the cost per event is compared across sizes, not with the disk",
    ))
    .with(
        &format!("ns_per_event_by_{size_is}"),
        by_size(&|c| Some(c.ns_per_event())),
    )
    .with("spread", spread)
    .with("within_20_percent", spread <= 0.2);
    if let Some(own) = own {
        let own_spread = spread_of(&own);
        result = result
            .with(
                &format!("disk_ns_per_event_by_{size_is}"),
                by_size(&|c| c.ceiling_ns_per_event),
            )
            .with(
                &format!("own_ns_per_event_by_{size_is}"),
                by_size(&Cost::own_ns_per_event),
            )
            .with("own_spread", own_spread)
            .with("own_within_20_percent", own_spread <= 0.2);
    }
    let bare: Option<Vec<f64>> = costs.iter().map(|c| c.bare_ns_per_event).collect();
    if let (Some(bare), Some(first), Some(last)) = (bare, per_event.first(), per_event.last()) {
        // How many bare-map lookups the step from the fewest streams to the most is worth:
        // the dependent memory accesses per append that the larger table makes miss.
        let step = last - first;
        let bare_step = bare.last().unwrap_or(&0.0) - bare.first().unwrap_or(&0.0);
        result = result
            .with(
                &format!("bare_index_ns_per_event_by_{size_is}"),
                by_size(&|c| c.bare_ns_per_event),
            )
            .with("bare_index_spread", spread_of(&bare))
            .with("step_ns_per_event", step)
            .with("bare_index_step_ns_per_event", bare_step)
            .with(
                "step_in_bare_lookups",
                (bare_step > 0.0).then(|| step / bare_step),
            );
    }
    result
}

/// How far the largest of `values` is above the smallest (0.2 = 20 %); 0 when empty.
fn spread_of(values: &[f64]) -> f64 {
    let low = values.iter().copied().fold(f64::INFINITY, f64::min);
    let high = values.iter().copied().fold(0.0, f64::max);
    if low > 0.0 && low.is_finite() {
        high / low - 1.0
    } else {
        0.0
    }
}
