//! `strata import` of a generated export file, run as the real command in a child
//! process and timed from outside: process start, opening, importing and closing.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Context as _, Result, ensure};
use bytes::Bytes;
use strata_core::{EventId, Position, RecordedEvent, Timestamp, Version};

use crate::args::ImportArgs;
use crate::fixtures::{bench_type, payload, scratch, stream};
use crate::report::{Ceiling, Probes, ScenarioResult};
use crate::stats::{Summary, rate};

/// Imports a generated file of `events` events into a new store with `strata import`.
pub(crate) async fn import(
    dir: &Path,
    args: &ImportArgs,
    _probes: &Probes,
) -> Result<ScenarioResult> {
    let scratch = scratch(dir, "import")?;
    let file = scratch.path().join("export.jsonl");
    let data_dir = scratch.path().join("data");
    let file_bytes = write_export(&file, args)?;
    let (elapsed, reported) = {
        let file = file.clone();
        let data_dir = data_dir.clone();
        tokio::task::spawn_blocking(move || run_import(&file, &data_dir))
            .await
            .context("the import failed")??
    };
    ensure!(
        reported.events == args.events,
        "strata import imported {} events of {}",
        reported.events,
        args.events
    );
    Ok(ScenarioResult::new(
        "import",
        Some(rate(args.events as f64, elapsed)),
        &Summary::single(elapsed),
        "whole import",
    )
    .against(&Ceiling::None(
        "strata import runs in a child process whose fdatasyncs are not counted",
    ))
    .with("events", args.events)
    .with("events_per_stream", args.events_per_stream)
    .with("event_bytes", args.event_bytes)
    .with("file_bytes", file_bytes)
    .with("seconds", elapsed.as_secs_f64())
    .with("import_reported_events_per_s", reported.events_per_s))
}

/// Writes `args.events` export lines: streams of `events_per_stream` consecutive events.
fn write_export(path: &Path, args: &ImportArgs) -> Result<u64> {
    let file = File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let data: Bytes = payload(args.event_bytes);
    let metadata = Bytes::from_static(b"{}");
    let event_type = bench_type();
    let now = now();
    let mut line = Vec::with_capacity(1024);
    let mut bytes = 0;
    for p in 0..args.events {
        let s = p / args.events_per_stream;
        let event = RecordedEvent {
            position: Position(p + 1),
            stream: stream(format!("import-{s}")),
            version: Version(p % args.events_per_stream + 1),
            id: EventId::new(),
            event_type: event_type.clone(),
            data: data.clone(),
            metadata: metadata.clone(),
            recorded_at: now,
        };
        line.clear();
        event.write_json_line(&mut line);
        out.write_all(&line)
            .with_context(|| format!("cannot write {}", path.display()))?;
        bytes += line.len() as u64;
    }
    out.flush()
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(bytes)
}

fn now() -> Timestamp {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Timestamp::from_unix_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
}

/// What `strata import` said it did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ImportReport {
    /// Events imported.
    pub(crate) events: u64,
    /// Its own rate (excluding process start and opening the store).
    pub(crate) events_per_s: f64,
}

/// Runs `strata --data-dir DIR import --file FILE`, timing it.
fn run_import(file: &Path, data_dir: &Path) -> Result<(Duration, ImportReport)> {
    let exe = std::env::current_exe().context("cannot find the strata binary")?;
    let started = Instant::now();
    let output = Command::new(exe)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["import", "--file"])
        .arg(file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .env_remove("RUST_LOG")
        .output()
        .context("cannot run strata import")?;
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    ensure!(
        output.status.success(),
        "strata import failed ({}): {}",
        output.status,
        stderr.trim()
    );
    let report = parse_import_summary(&stderr)
        .with_context(|| format!("strata import said {:?}", stderr.trim()))?;
    Ok((elapsed, report))
}

/// Reads `imported N events in M appends in S s (R events/s)`.
pub(crate) fn parse_import_summary(stderr: &str) -> Option<ImportReport> {
    let line = stderr.lines().rev().find(|l| l.starts_with("imported "))?;
    let events = line
        .strip_prefix("imported ")?
        .split(' ')
        .next()?
        .parse()
        .ok()?;
    let events_per_s = line.rsplit_once('(')?.1.split(' ').next()?.parse().ok()?;
    Some(ImportReport {
        events,
        events_per_s,
    })
}
