//! The embedded store's scenarios: bulk appends, many single-event writers, reading a
//! stream, reading the whole log and a subscription catching up. Each works on a new
//! store in a scratch directory that is removed afterwards.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use strata_core::{ExpectedVersion, NewEvent, Position};
use strata_store::{Direction, EventStore, ReadFilter};
use strata_store_embedded::Options;
use tokio::time::Instant;

use crate::args::{BulkArgs, Expect, ReadAllArgs, ReadStreamArgs, WritersArgs};
use crate::error::{BenchError, Context as _, Result, ensure};
use crate::fixtures::{
    append_all, bench_event, dir_bytes, fixture_options, log_appends, open_store, payload,
    progress_printer, scratch, stream,
};
use crate::load::closed_loop;
use crate::probe::SyncShape;
use crate::report::{Ceiling, Probes, ScenarioResult};
use crate::stats::{Summary, rate};

/// Events per page a subscription's latency is reported for.
const SUBSCRIPTION_CHUNK: u64 = 1000;

/// Durable bulk appends: batches of `batch` events to one stream each, `in_flight`
/// appends at once (each task its own stream). One result per way of expecting and
/// `in_flight` value.
pub(crate) async fn append_bulk(
    dir: &Path,
    args: &BulkArgs,
    probes: &Probes,
) -> Result<Vec<ScenarioResult>> {
    let mut results = Vec::new();
    for &expect in &args.expected {
        for &in_flight in &args.in_flight {
            let in_flight = in_flight.max(1);
            results.push(append_bulk_once(dir, args, expect, in_flight, probes).await?);
        }
    }
    Ok(results)
}

async fn append_bulk_once(
    dir: &Path,
    args: &BulkArgs,
    expect: Expect,
    in_flight: usize,
    probes: &Probes,
) -> Result<ScenarioResult> {
    let scratch = scratch(dir, "bulk")?;
    let store = open_store(scratch.path(), Options::default())?;
    let data = payload(args.event_bytes);
    // Every event gets its id before the clock starts.
    let batches = args.events.div_ceil(args.batch);
    let mut work: Vec<Vec<Vec<NewEvent>>> = vec![Vec::new(); in_flight];
    for b in 0..batches {
        let count = args.batch.min(args.events - b * args.batch);
        work[(b % in_flight as u64) as usize]
            .push((0..count).map(|_| bench_event(&data)).collect());
    }
    // The largest group these appends allow: every append in flight in one fdatasync.
    let planned = SyncShape {
        events_per_sync: args.batch * in_flight as u64,
        record_bytes: args.event_bytes as u64,
    };
    let bracket = probes.before(&store, planned).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (t, batches) in work.into_iter().enumerate() {
        let store = store.clone();
        let name = stream(format!("bulk-{t}"));
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(batches.len());
            let mut version = 0;
            for batch in batches {
                let count = batch.len() as u64;
                let sent = Instant::now();
                store
                    .append(&name, expected(expect, version), batch)
                    .await?;
                samples.push(sent.elapsed());
                version += count;
            }
            Ok::<_, BenchError>(samples)
        }));
    }
    let mut samples = Vec::new();
    for task in tasks {
        samples.extend(task.await.context("an appending task failed")??);
    }
    let elapsed = started.elapsed();
    let ceiling = bracket.after(&store).await?;
    store.close().await?;
    let on_disk = dir_bytes(scratch.path());
    let latency = Summary::of(&mut samples);
    Ok(ScenarioResult::new(
        named(format!("append_bulk_x{in_flight}"), expect),
        Some(rate(args.events as f64, elapsed)),
        &latency,
        "append",
    )
    .against(&Ceiling::Writes(ceiling))
    .with("in_flight", in_flight)
    .with("expected", expect.as_str())
    .with("batch", args.batch)
    .with("event_bytes", args.event_bytes)
    .with("events", args.events)
    .with("seconds", elapsed.as_secs_f64())
    .with("disk_bytes_per_event", on_disk as f64 / args.events as f64))
}

/// Concurrent writers, each appending one event to its own stream and waiting for its
/// durable acknowledgement before the next. One result per way of expecting and writer
/// count.
pub(crate) async fn writers(
    dir: &Path,
    args: &WritersArgs,
    probes: &Probes,
) -> Result<Vec<ScenarioResult>> {
    let mut results = Vec::new();
    let runs = args
        .expected
        .iter()
        .flat_map(|&e| args.writers.iter().map(move |&w| (e, w.max(1))));
    for (expect, writers) in runs {
        let scratch = scratch(dir, "writers")?;
        let store = open_store(scratch.path(), Options::default())?;
        let data = payload(args.event_bytes);
        let window = Duration::from_secs_f64(args.seconds);
        // The largest group: every writer's append in one fdatasync.
        let planned = SyncShape {
            events_per_sync: writers as u64,
            record_bytes: args.event_bytes as u64,
        };
        let bracket = probes.before(&store, planned).await?;
        let outcome = closed_loop(writers, window, |w| {
            let store = store.clone();
            let data = data.clone();
            let name = stream(format!("writer-{w}"));
            // One writer per stream, one append at a time: it knows the version.
            let version = Arc::new(AtomicU64::new(0));
            move |_| {
                let store = store.clone();
                let name = name.clone();
                let event = bench_event(&data);
                let version = version.clone();
                async move {
                    let expected = expected(expect, version.load(Ordering::Relaxed));
                    let appended = store.append(&name, expected, vec![event]).await?;
                    version.store(appended.last_version.0, Ordering::Relaxed);
                    Ok(1)
                }
            }
        })
        .await;
        let ceiling = bracket.after(&store).await?;
        store.close().await?;
        results.push(
            ScenarioResult::new(
                named(format!("writers_{writers}"), expect),
                Some(outcome.events_per_s()),
                &outcome.latency,
                "append",
            )
            .against(&Ceiling::Writes(ceiling))
            .with("writers", writers)
            .with("expected", expect.as_str())
            .with("event_bytes", args.event_bytes)
            .with("seconds", window.as_secs_f64())
            .with("errors", outcome.errors)
            .with("first_error", outcome.first_error),
        );
    }
    Ok(results)
}

/// A scenario's name, marked when its appends expect exact versions.
fn named(name: String, expect: Expect) -> String {
    match expect {
        Expect::Any => name,
        Expect::Exact => format!("{name}_exact"),
    }
}

/// What an append of a writer that last saw `version` expects.
fn expected(expect: Expect, version: u64) -> ExpectedVersion {
    match expect {
        Expect::Any => ExpectedVersion::Any,
        Expect::Exact => ExpectedVersion::Exact(version),
    }
}

/// Reads one stream of `events` events, whole, `reads` times.
pub(crate) async fn read_stream(
    dir: &Path,
    args: &ReadStreamArgs,
    probes: &Probes,
) -> Result<ScenarioResult> {
    let scratch = scratch(dir, "read-stream")?;
    let store = open_store(scratch.path(), fixture_options())?;
    let name = stream("long-1".to_owned());
    let data = payload(args.event_bytes);
    let mut written = 0;
    while written < args.events {
        let count = 1000.min(args.events - written);
        let batch = (0..count).map(|_| bench_event(&data)).collect();
        store.append(&name, ExpectedVersion::Any, batch).await?;
        written += count;
    }
    let mut samples = Vec::with_capacity(args.reads as usize);
    let started = Instant::now();
    for _ in 0..args.reads {
        let sent = Instant::now();
        let events = store
            .read_stream(&name, None, Direction::Forward, usize::MAX)
            .await?;
        samples.push(sent.elapsed());
        ensure!(
            events.len() as u64 == args.events,
            "read {} events of a stream of {}",
            events.len(),
            args.events
        );
    }
    let elapsed = started.elapsed();
    let ceiling = probes.pread(scratch.path(), args.events)?;
    store.close().await?;
    let latency = Summary::of(&mut samples);
    let events = args.events * u64::from(args.reads);
    Ok(ScenarioResult::new(
        "read_stream",
        Some(rate(events as f64, elapsed)),
        &latency,
        "read of the whole stream",
    )
    .against(&Ceiling::Reads(ceiling))
    .with("stream_events", args.events)
    .with("reads", args.reads)
    .with("event_bytes", args.event_bytes))
}

/// Reads the whole log with `read_all` pages, then catches a subscription up with it,
/// `passes` times each. The log is written before anything is timed.
pub(crate) async fn read_all(
    dir: &Path,
    args: &ReadAllArgs,
    probes: &Probes,
) -> Result<Vec<ScenarioResult>> {
    let scratch = scratch(dir, "read-all")?;
    let store = open_store(scratch.path(), fixture_options())?;
    let appends = log_appends(
        "log",
        args.events,
        args.events_per_stream,
        payload(args.event_bytes),
    );
    append_all(
        &store,
        appends,
        progress_printer("read-all log", args.events),
    )
    .await?;
    let filter = ReadFilter::all();

    let mut pages = Vec::new();
    let started = Instant::now();
    for _ in 0..args.passes {
        let mut from = Position(1);
        let mut read = 0;
        while read < args.events {
            let sent = Instant::now();
            let page = store.read_all(from, args.page as usize, &filter).await?;
            pages.push(sent.elapsed());
            ensure!(!page.events.is_empty(), "the log ended after {read} events");
            read += page.events.len() as u64;
            from = page.next;
        }
    }
    let read_all_elapsed = started.elapsed();

    let mut chunks = Vec::new();
    let started = Instant::now();
    for _ in 0..args.passes {
        let mut subscription = store.subscribe(Position::ZERO, filter.clone());
        let mut chunk_started = Instant::now();
        for n in 1..=args.events {
            subscription
                .next()
                .await
                .context("the subscription ended early")??;
            if n.is_multiple_of(SUBSCRIPTION_CHUNK) || n == args.events {
                chunks.push(chunk_started.elapsed());
                chunk_started = Instant::now();
            }
        }
    }
    let subscription_elapsed = started.elapsed();
    let ceiling = Ceiling::Reads(probes.pread(scratch.path(), args.events)?);
    store.close().await?;

    let total = args.events * u64::from(args.passes);
    let read_all = ScenarioResult::new(
        "read_all",
        Some(rate(total as f64, read_all_elapsed)),
        &Summary::of(&mut pages),
        &format!("page of {} events", args.page),
    )
    .against(&ceiling)
    .with("log_events", args.events)
    .with("page_events", args.page)
    .with("passes", args.passes)
    .with("event_bytes", args.event_bytes);
    let catch_up = ScenarioResult::new(
        "subscription_catch_up",
        Some(rate(total as f64, subscription_elapsed)),
        &Summary::of(&mut chunks),
        &format!("{SUBSCRIPTION_CHUNK} events"),
    )
    .against(&ceiling)
    .with("log_events", args.events)
    .with("passes", args.passes)
    .with("event_bytes", args.event_bytes);
    Ok(vec![read_all, catch_up])
}
