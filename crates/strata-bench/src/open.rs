//! Opening a large store: how long it takes and how much resident memory the open store
//! holds. The store is built once under the bench directory and reused; each open runs
//! in a fresh process (this binary, re-run with a hidden subcommand), so nothing of the
//! build is still in memory.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Context as _, Result, ensure};
use serde::{Deserialize, Serialize};
use strata_store_embedded::{EmbeddedStore, Options};

use crate::args::{OpenArgs, OpenChildArgs};
use crate::fixtures::{
    append_all, fixture_options, log_appends, open_store, payload, progress_printer,
};
use crate::report::{Ceiling, Probes, ScenarioResult};
use crate::stats::{Summary, median, rate};

/// What one open in a child process measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct OpenMeasure {
    /// Time to open, in milliseconds.
    pub(crate) open_ms: f64,
    /// Resident memory of the process before opening, in bytes.
    pub(crate) rss_before_bytes: u64,
    /// Resident memory of the process with the store open, in bytes.
    pub(crate) rss_after_bytes: u64,
    /// Events in the store.
    pub(crate) events: u64,
}

/// Builds (or reuses) a store of `events` events and opens it `opens` times, each in a
/// fresh process.
pub(crate) async fn open(dir: &Path, args: &OpenArgs, _probes: &Probes) -> Result<ScenarioResult> {
    let (store_dir, built) = prepared_store(dir, args).await?;
    let mut measures = Vec::new();
    for _ in 0..args.opens {
        let child_dir = store_dir.clone();
        let measure = tokio::task::spawn_blocking(move || open_in_child(&child_dir))
            .await
            .context("the open measurement failed")??;
        ensure!(
            measure.events == args.events,
            "the store in {} holds {} events, not {}: remove it to rebuild it",
            store_dir.display(),
            measure.events,
            args.events
        );
        measures.push(measure);
    }
    let mut times: Vec<Duration> = measures
        .iter()
        .map(|m| Duration::from_secs_f64(m.open_ms / 1000.0))
        .collect();
    let latency = Summary::of(&mut times);
    let deltas: Vec<f64> = measures
        .iter()
        .map(|m| m.rss_after_bytes.saturating_sub(m.rss_before_bytes) as f64)
        .collect();
    let totals: Vec<f64> = measures.iter().map(|m| m.rss_after_bytes as f64).collect();
    let delta = median(&deltas);
    let events = args.events as f64;
    Ok(ScenarioResult::new("open_store", None, &latency, "open")
        .against(&Ceiling::None(
            "opening reads index files and the log's tail; no probe does the same",
        ))
        .with(
            "events_indexed_per_s",
            rate(events, Duration::from_secs_f64(latency.p50_ms / 1000.0)),
        )
        .with("events", args.events)
        .with("events_per_stream", args.events_per_stream)
        .with("opens", args.opens)
        .with("open_ms", latency.p50_ms)
        .with("rss_open_bytes", delta)
        .with("bytes_per_event", delta / events)
        .with("process_rss_bytes", median(&totals))
        .with(
            "store_bytes_on_disk",
            crate::fixtures::dir_bytes(&store_dir),
        )
        .with("built_now", built)
        .with("store", store_dir.display().to_string()))
}

/// The store to open: built now unless a finished build is there already.
async fn prepared_store(dir: &Path, args: &OpenArgs) -> Result<(PathBuf, bool)> {
    let name = format!(
        "strata-bench-open-{}-{}-{}",
        args.events, args.events_per_stream, args.event_bytes
    );
    let store_dir = dir.join(&name);
    // The marker sits beside the store: the store's directory holds only its own files.
    let marker = dir.join(format!("{name}.complete"));
    if marker.exists() && store_dir.is_dir() {
        return Ok((store_dir, false));
    }
    if store_dir.exists() {
        std::fs::remove_dir_all(&store_dir)
            .with_context(|| format!("cannot remove the unfinished {}", store_dir.display()))?;
    }
    eprintln!(
        "bench: building a store of {} events in {} (kept for later runs)",
        args.events,
        store_dir.display()
    );
    let store = open_store(&store_dir, fixture_options())?;
    let appends = log_appends(
        "open",
        args.events,
        args.events_per_stream,
        payload(args.event_bytes),
    );
    append_all(&store, appends, progress_printer("open store", args.events)).await?;
    store.close().await?;
    // The build is not timed, so nothing waited for its syncs; make it durable before
    // calling it complete.
    sync_dir_files(&store_dir)?;
    std::fs::write(&marker, format!("{}\n", args.events))
        .with_context(|| format!("cannot write {}", marker.display()))?;
    Ok((store_dir, true))
}

fn sync_dir_files(dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("cannot list {}", dir.display()))?
            .path();
        if path.is_file() {
            std::fs::File::open(&path)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("cannot sync {}", path.display()))?;
        }
    }
    Ok(())
}

/// Runs `strata bench open-child --store DIR` and reads its answer.
pub(crate) fn open_in_child(store: &Path) -> Result<OpenMeasure> {
    let exe = std::env::current_exe().context("cannot find the strata binary")?;
    let output = Command::new(exe)
        .args(["bench", "open-child", "--store"])
        .arg(store)
        .stdin(Stdio::null())
        .output()
        .context("cannot run the open measurement")?;
    ensure!(
        output.status.success(),
        "the open measurement failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr).trim()
    );
    serde_json::from_slice(&output.stdout).with_context(|| {
        format!(
            "the open measurement printed {:?}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

/// The child's side: opens the store, measuring the time and the resident memory before
/// and after, and prints an [`OpenMeasure`].
pub(crate) fn child(args: &OpenChildArgs, out: &mut impl Write) -> Result<()> {
    let before = resident_bytes()?;
    let started = Instant::now();
    let store = EmbeddedStore::open(&args.store, Options::default())
        .with_context(|| format!("cannot open the event store in {}", args.store.display()))?;
    let elapsed = started.elapsed();
    let after = resident_bytes()?;
    let measure = OpenMeasure {
        open_ms: elapsed.as_secs_f64() * 1000.0,
        rss_before_bytes: before,
        rss_after_bytes: after,
        events: store.open_report().events,
    };
    drop(store);
    serde_json::to_writer(&mut *out, &measure).context("cannot write to standard output")?;
    writeln!(out).context("cannot write to standard output")?;
    out.flush().context("cannot write to standard output")
}

/// This process's resident memory, from `/proc/self/statm`.
fn resident_bytes() -> Result<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm")
        .context("cannot read /proc/self/statm (the open benchmark needs Linux)")?;
    resident_pages(&statm)
        .map(|pages| pages * crate::system::page_bytes())
        .with_context(|| format!("cannot read /proc/self/statm: {statm:?}"))
}

/// The resident page count: the second field of `statm`.
pub(crate) fn resident_pages(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}
