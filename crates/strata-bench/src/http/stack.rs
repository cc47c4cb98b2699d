//! What bounds the HTTP phases, measured in the same run with the same client: the
//! server stack's own ceiling (`GET /health`, a route that does no work, from the same
//! number of connections) that every HTTP result is set against, the share of the
//! machine the load generator itself used, and bulk appends over HTTP set against the
//! embedded store's bulk appends of the same shape. It adds figures to the other phases'
//! results and never changes what they measure.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use strata_core::ExpectedVersion;
use strata_store::EventStore as _;
use strata_store_embedded::Options;

use super::{CpuMeter, CpuUse, connect_all, report};
use crate::args::HttpArgs;
use crate::error::{Context as _, Result};
use crate::fixtures::{BENCH_TYPE, bench_event, open_store, payload, scratch, stream};
use crate::load::{LoadOutcome, closed_loop};
use crate::report::{ScenarioResult, ratio};

/// Connections of the bulk phases, over HTTP and embedded alike.
pub(crate) const BULK_CONNECTIONS: usize = 4;
/// Events per bulk request (and per embedded bulk append).
pub(crate) const BULK_EVENTS: usize = 100;

/// The least share of the stack's ceiling each HTTP result should reach, by scenario.
pub(crate) fn stack_floor(scenario: &str) -> Option<f64> {
    match scenario {
        "http_shop_queries" => Some(0.5),
        "http_appends" => Some(0.35),
        "http_shop_commands" => Some(0.25),
        _ => None,
    }
}

/// The least share of the embedded bulk-append rate bulk appends over HTTP should reach.
pub(crate) const BULK_FLOOR: f64 = 0.3;

/// The stack's ceiling: `GET /health` from `args.connections` connections for the
/// phases' window.
pub(crate) async fn ceiling(
    addr: std::net::SocketAddr,
    pid: u32,
    args: &HttpArgs,
) -> Result<(LoadOutcome, CpuUse)> {
    let conns = connect_all(addr, args.connections as usize).await?;
    let cpu = CpuMeter::start(pid);
    let outcome = closed_loop(conns.len(), window(args), |c| {
        let conn = conns[c].clone();
        move |_| {
            let conn = conn.clone();
            async move {
                conn.lock_owned()
                    .await
                    .expect_ok(hyper::Method::GET, "/health", None)
                    .await?;
                Ok(0)
            }
        }
    })
    .await;
    Ok((outcome, cpu.stop()))
}

/// The ceiling's own result line, from its runs before and after the other phases.
pub(crate) fn ceiling_result(
    before: &(LoadOutcome, CpuUse),
    after: &(LoadOutcome, CpuUse),
    connections: usize,
) -> ScenarioResult {
    let (outcome, cpu) = after;
    let result = report(
        "http_stack_ceiling",
        outcome,
        *cpu,
        connections,
        "request",
        false,
    );
    with_cpu_share(result)
        .with("route", "GET /health")
        .with("requests_per_s", mean_rate(before, after))
        .with("requests_per_s_before", before.0.ops_per_s())
        .with("requests_per_s_after", after.0.ops_per_s())
        .with(
            "ceiling_note",
            "a route that does no work, from the same client and connections: the stack's own ceiling, run before and after the other phases (their mean)",
        )
}

/// The mean request rate of the ceiling's two runs.
pub(crate) fn mean_rate(before: &(LoadOutcome, CpuUse), after: &(LoadOutcome, CpuUse)) -> f64 {
    (before.0.ops_per_s() + after.0.ops_per_s()) / 2.0
}

/// Sets an HTTP phase's result against the stack's ceiling (`ratio_to_stack`, with the
/// scenario's floor) and adds the load generator's share of the machine.
pub(crate) fn against_stack(result: ScenarioResult, ceiling_per_s: f64) -> ScenarioResult {
    let per_s = ["requests_per_s", "commands_per_s"]
        .iter()
        .find_map(|key| result.extra.get(*key).and_then(serde_json::Value::as_f64));
    let floor = stack_floor(&result.scenario);
    let result = with_cpu_share(result).with("stack_requests_per_s", ceiling_per_s);
    match per_s {
        Some(per_s) => result
            .with("ratio_to_stack", ratio(per_s, ceiling_per_s))
            .with("ratio_to_stack_floor", floor),
        None => result,
    }
}

/// Adds `bench_cpu_share` and `server_cpu_share`: the CPU each side used over the phase
/// as a share of everything the machine's cores could give in that time.
pub(crate) fn with_cpu_share(result: ScenarioResult) -> ScenarioResult {
    let cores = machine_cores();
    let share = |key: &str| {
        result
            .extra
            .get(key)
            .and_then(serde_json::Value::as_f64)
            .map(|used| used / cores as f64)
    };
    let (bench, server) = (share("bench_cpu_cores"), share("server_cpu_cores"));
    result
        .with("machine_cores", cores)
        .with("bench_cpu_share", bench)
        .with("server_cpu_share", server)
}

/// The cores this process may run on.
pub(crate) fn machine_cores() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
}

/// The body of one bulk request: [`BULK_EVENTS`] events of `event_bytes` bytes of data,
/// without ids (the server gives them), appended to whatever the stream holds.
pub(crate) fn bulk_body(event_bytes: usize) -> String {
    let data = payload(event_bytes);
    let data = String::from_utf8_lossy(&data);
    let event = format!(r#"{{"type":"{BENCH_TYPE}","data":{data}}}"#);
    let events = vec![event; BULK_EVENTS].join(",");
    format!(r#"{{"expected_version":"any","events":[{events}]}}"#)
}

/// Bulk appends over HTTP: [`BULK_CONNECTIONS`] connections, each posting
/// [`BULK_EVENTS`] events per request to its own stream.
pub(crate) async fn bulk_over_http(
    addr: std::net::SocketAddr,
    pid: u32,
    args: &HttpArgs,
) -> Result<(LoadOutcome, CpuUse)> {
    let conns = connect_all(addr, BULK_CONNECTIONS).await?;
    let body = bulk_body(args.event_bytes);
    let cpu = CpuMeter::start(pid);
    let outcome = closed_loop(BULK_CONNECTIONS, window(args), |c| {
        let conn = conns[c].clone();
        let body = body.clone();
        move |_| {
            let conn = conn.clone();
            let body = body.clone();
            async move {
                conn.lock_owned()
                    .await
                    .expect_ok(
                        hyper::Method::POST,
                        &format!("/streams/httpbulk-{c}"),
                        Some(body),
                    )
                    .await?;
                Ok(BULK_EVENTS as u64)
            }
        }
    })
    .await;
    Ok((outcome, cpu.stop()))
}

/// Bulk appends to an embedded store in this process, in the shape of
/// [`bulk_over_http`]: [`BULK_CONNECTIONS`] appenders, [`BULK_EVENTS`] events per append,
/// each to its own stream, durable, for the same window. Answers events per second.
pub(crate) async fn bulk_embedded(dir: &Path, args: &HttpArgs) -> Result<LoadOutcome> {
    let scratch = scratch(dir, "http-bulk")?;
    let store = open_store(scratch.path(), Options::default())?;
    let data = payload(args.event_bytes);
    let outcome = closed_loop(BULK_CONNECTIONS, window(args), |c| {
        let store = store.clone();
        let data = data.clone();
        let name = stream(format!("bulk-{c}"));
        move |_| {
            let store = store.clone();
            let name = name.clone();
            let events = (0..BULK_EVENTS).map(|_| bench_event(&data)).collect();
            async move {
                store.append(&name, ExpectedVersion::Any, events).await?;
                Ok(BULK_EVENTS as u64)
            }
        }
    })
    .await;
    store
        .close()
        .await
        .context("cannot close the embedded bulk store")?;
    Ok(outcome)
}

/// The bulk-over-HTTP result, set against the embedded rate of the same run.
pub(crate) fn bulk_result(
    http: &(LoadOutcome, CpuUse),
    embedded: &LoadOutcome,
    event_bytes: usize,
) -> ScenarioResult {
    let (outcome, cpu) = http;
    let result = report(
        "http_append_bulk",
        outcome,
        *cpu,
        BULK_CONNECTIONS,
        "request",
        true,
    );
    with_cpu_share(result)
        .with("requests_per_s", outcome.ops_per_s())
        .with("events_per_request", BULK_EVENTS)
        .with("event_bytes", event_bytes)
        .with("embedded_events_per_s", embedded.events_per_s())
        .with("embedded_p50_ms", embedded.latency.p50())
        .with("embedded_errors", embedded.errors)
        .with(
            "ratio_to_embedded",
            ratio(outcome.events_per_s(), embedded.events_per_s()),
        )
        .with("ratio_to_embedded_floor", BULK_FLOOR)
}

/// The window of every HTTP phase.
fn window(args: &HttpArgs) -> Duration {
    Duration::from_secs_f64(args.seconds)
}

/// Runs the stack's ceiling before and after `phases`, the bulk phases after them, and
/// sets every result against what bounds it.
pub(crate) async fn measured<F>(
    dir: &Path,
    addr: std::net::SocketAddr,
    pid: u32,
    args: &HttpArgs,
    phases: F,
) -> Result<Vec<ScenarioResult>>
where
    F: Future<Output = Result<Vec<ScenarioResult>>>,
{
    let before = ceiling(addr, pid, args).await?;
    let results = phases.await?;
    let bulk = bulk_over_http(addr, pid, args).await?;
    let after = ceiling(addr, pid, args).await?;
    let embedded = bulk_embedded(dir, args).await?;
    let stack = mean_rate(&before, &after);
    let mut out = vec![ceiling_result(&before, &after, args.connections as usize)];
    out.extend(results.into_iter().map(|r| against_stack(r, stack)));
    out.push(bulk_result(&bulk, &embedded, args.event_bytes));
    Ok(out)
}

#[cfg(test)]
mod tests;
