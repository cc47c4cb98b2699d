//! Unit tests of the harness: statistics and their sample counts, the ceilings and which
//! results print a ratio, the result line, arguments, the generated fixtures, the
//! drivers, and the parsers of what child processes print.

use std::time::Duration;

use clap::Parser as _;
use serde_json::Value;
use serde_json::json;
use strata_core::RecordedEvent;
use strata_domain::EventCodec;
use strata_shop::domain::{InventoryEvent, OrderEvent, PaymentEvent, ProductEvent};

use super::*;
use crate::fixtures::{log_appends, payload, shop_history};
use crate::load::{closed_loop, due_count, paced};
use crate::probe::{ReadProbe, SyncProbe, probe_pread, probe_sync, segment_files};
use crate::report::{
    Ceiling, ReadCeiling, ScenarioResult, SyncCeiling, print_result, ratio, round,
};
use crate::stats::{Summary, median, percentile_ms, rate};

// --- statistics ---

#[test]
fn percentiles_use_the_nearest_rank() {
    let times: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
    assert_eq!(percentile_ms(&times, 50.0), 50.0);
    assert_eq!(percentile_ms(&times, 99.0), 99.0);
    assert_eq!(percentile_ms(&times[..1], 99.0), 1.0);
    assert_eq!(percentile_ms(&[], 50.0), 0.0);
}

#[test]
fn a_summary_has_nearest_rank_percentiles_max_and_mean() {
    let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
    let summary = Summary::of(&mut samples);
    assert_eq!(summary.count, 100);
    assert_eq!(summary.p50_ms, 50.0);
    assert_eq!(summary.p99_ms, 99.0);
    assert_eq!(summary.max_ms, 100.0);
    assert!((summary.mean_ms - 50.5).abs() < 1e-9);
    assert_eq!(Summary::of(&mut []), Summary::default());
    let one = Summary::single(Duration::from_millis(7));
    assert_eq!((one.p50_ms, one.p99_ms, one.count), (7.0, 7.0, 1));
}

#[test]
fn medians_rates_and_ratios_handle_the_edges() {
    assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
    assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
    assert_eq!(median(&[]), 0.0);
    assert_eq!(rate(10.0, Duration::from_millis(500)), 20.0);
    assert_eq!(rate(10.0, Duration::ZERO), 0.0);
    assert_eq!(ratio(3.0, 0.0), 0.0);
    assert_eq!(round(1.23456, 2), 1.23);
    assert_eq!(round(f64::NAN, 2), 0.0);
}

// --- percentiles and their sample counts ---

#[test]
fn a_p99_is_reported_only_from_enough_samples() {
    let mut few: Vec<Duration> = (1..MIN_P99_SAMPLES as u64)
        .map(Duration::from_micros)
        .collect();
    let summary = Summary::of(&mut few);
    assert_eq!(summary.count, MIN_P99_SAMPLES - 1);
    assert!(summary.p50().is_some());
    assert_eq!(summary.p99(), None);
    let few = line(ScenarioResult::new("few", Some(1.0), &summary, "op"));
    assert_eq!(few["samples"], MIN_P99_SAMPLES - 1);
    assert_eq!(few["p99_ms"], Value::Null);
    assert!(few["p50_ms"].as_f64().is_some(), "{few}");

    let mut enough: Vec<Duration> = (1..=MIN_P99_SAMPLES as u64)
        .map(Duration::from_micros)
        .collect();
    let summary = Summary::of(&mut enough);
    assert_eq!(summary.p99(), Some(percentile_ms(&enough, 99.0)));
    let enough = line(ScenarioResult::new("enough", Some(1.0), &summary, "op"));
    assert_eq!(enough["samples"], MIN_P99_SAMPLES);
    assert_eq!(enough["p99_ms"], json!(round(summary.p99_ms, 4)));

    let none = line_of_empty();
    assert_eq!(none["samples"], 0);
    assert_eq!(
        (&none["p50_ms"], &none["p99_ms"]),
        (&Value::Null, &Value::Null)
    );
}

fn line_of_empty() -> Value {
    line(ScenarioResult::new(
        "empty",
        None,
        &Summary::default(),
        "op",
    ))
}

fn line(result: ScenarioResult) -> Value {
    serde_json::to_value(result).unwrap()
}

// --- the scale phases ---

#[test]
fn the_streams_step_is_counted_in_bare_map_lookups() {
    // 1,000 ns/event at the fewest streams, 1,300 at the most; a bare map's lookup
    // 40 ns, then 240: the step of 300 ns is worth 1.5 lookups.
    let cost = |streams, ns: u64, bare| {
        let mut cost = crate::scale::Cost::new(streams, Duration::from_nanos(ns * 1000), 1000);
        cost.bare_ns_per_event = Some(bare);
        cost
    };
    let costs = [cost(1_000, 1_000, 40.0), cost(1_000_000, 1_300, 240.0)];
    let summary = line(crate::scale::spread("streams", &costs, "streams"));
    assert_eq!(summary["step_ns_per_event"], json!(300.0));
    assert_eq!(summary["bare_index_step_ns_per_event"], json!(200.0));
    assert_eq!(summary["step_in_bare_lookups"], json!(1.5));
    assert_eq!(summary["bare_index_spread"], json!(5.0));
    assert_eq!(summary["within_20_percent"], json!(false));

    // Without the bare map's figures the summary has no step.
    let plain = [crate::scale::Cost::new(1_000, Duration::from_secs(1), 1000)];
    let summary = line(crate::scale::spread("streams", &plain, "streams"));
    assert!(summary.get("step_in_bare_lookups").is_none());
}

// --- matching the write ceiling to the store's run ---

#[test]
fn a_run_shape_is_its_events_per_fdatasync_and_bytes_per_event() {
    let shape = |events_per_sync, record_bytes| SyncShape {
        events_per_sync,
        record_bytes,
    };
    // One group of four appends of 1000 events.
    assert_eq!(
        SyncShape::of_run(4000, 1, 1_300_000),
        Some(shape(4000, 325))
    );
    // Groups of about 57 writers' events; bytes round up.
    assert_eq!(
        SyncShape::of_run(5700, 100, 5700 * 300 + 1),
        Some(shape(57, 301))
    );
    // More syncs than events (a group spanning a segment roll syncs twice).
    assert_eq!(SyncShape::of_run(3, 4, 900), Some(shape(1, 300)));
    // Nothing synced, or nothing appended: nothing to match.
    assert_eq!(SyncShape::of_run(500, 0, 1000), None);
    assert_eq!(SyncShape::of_run(0, 2, 0), None);
}

fn probe(events_per_sync: u64, events_per_s: f64, sync_p50_ms: f64) -> SyncProbe {
    SyncProbe {
        shape: SyncShape {
            events_per_sync,
            record_bytes: 300,
        },
        events_per_s,
        sync: Summary {
            count: 10,
            p50_ms: sync_p50_ms,
            p99_ms: sync_p50_ms,
            max_ms: sync_p50_ms,
            mean_ms: sync_p50_ms,
        },
    }
}

fn sync_ceiling(matched: Option<SyncProbe>) -> SyncCeiling {
    SyncCeiling {
        store_events: 5000,
        store_syncs: 50,
        store_bytes: 5000 * 300,
        matched,
        before: probe(256, 400_000.0, 0.5),
        after: probe(256, 200_000.0, 1.0),
    }
}

fn result_against(ceiling: &Ceiling) -> Value {
    let mut samples = vec![Duration::from_millis(1), Duration::from_millis(3)];
    line(
        ScenarioResult::new("s", Some(50_000.0), &Summary::of(&mut samples), "append")
            .against(ceiling),
    )
}

#[test]
fn only_durable_writes_print_a_ratio_to_the_ceiling() {
    let writes = result_against(&Ceiling::Writes(sync_ceiling(Some(probe(
        100, 100_000.0, 0.5,
    )))));
    assert_eq!(writes["ceiling"], "fdatasync");
    assert_eq!(writes["ratio_to_ceiling"], 0.5);
    assert_eq!(writes["ceiling_events_per_sync"], 100);
    assert_eq!(writes["ceiling_events_per_s"], 100_000.0);
    assert_eq!(writes["store_events_per_sync"], 100.0);
    assert_eq!(writes["store_bytes_per_event"], 300.0);
    assert_eq!(writes["latency_ratio_to_sync"], 2.0);
    // The bracket: the planned shape before and after, both reported.
    assert_eq!(writes["bracket_events_per_sync"], 256);
    assert_eq!(writes["bracket_before_events_per_s"], 400_000.0);
    assert_eq!(writes["bracket_after_events_per_s"], 200_000.0);

    let paced = result_against(&Ceiling::PacedWrites(sync_ceiling(Some(probe(
        1, 2000.0, 0.5,
    )))));
    assert_eq!(paced["ceiling"], "fdatasync");
    assert!(paced.get("ratio_to_ceiling").is_none(), "{paced}");
    assert_eq!(paced["latency_ratio_to_sync"], 2.0);

    let unsynced = result_against(&Ceiling::Writes(sync_ceiling(None)));
    assert_eq!(unsynced["ceiling"], "none");
    assert!(unsynced.get("ratio_to_ceiling").is_none(), "{unsynced}");
    assert!(
        unsynced["ceiling_note"]
            .as_str()
            .unwrap()
            .contains("no fdatasync")
    );

    let reads = result_against(&Ceiling::Reads(ReadCeiling {
        events_per_s: 200_000.0,
        probe: ReadProbe {
            bytes_per_s: 6e7,
            passes: 3.0,
        },
    }));
    assert_eq!(reads["ceiling"], "pread");
    assert!(reads.get("ratio_to_ceiling").is_none(), "{reads}");
    assert_eq!(reads["ratio_to_pread"], 0.25);

    let none = result_against(&Ceiling::None("because"));
    assert_eq!(none["ceiling"], "none");
    assert_eq!(none["ceiling_note"], "because");
    assert!(none.get("ratio_to_ceiling").is_none(), "{none}");

    // A write scenario that reports no events has no ratio either.
    let ceiling = Ceiling::Writes(sync_ceiling(Some(probe(1, 10.0, 1.0))));
    assert_eq!(ceiling.ratio_to_ceiling(None), None);
    assert_eq!(ceiling.ratio_to_ceiling(Some(5.0)), Some(0.5));
}

#[test]
fn a_probe_line_is_the_disk_alone() {
    let line = line(ScenarioResult::of_probe(&probe(1000, 2e6, 0.5)));
    assert_eq!(line["scenario"], "disk_ceiling");
    assert_eq!(line["events_per_s"], 2e6);
    assert_eq!(line["events_per_sync"], 1000);
    assert_eq!(line["record_bytes"], 300);
    assert_eq!(line["samples"], 10);
    assert!(line.get("ceiling").is_none() && line.get("ratio_to_ceiling").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bracket_probes_the_shape_the_store_really_used() {
    use strata_core::{EventType, ExpectedVersion, NewEvent, StreamName};
    use strata_store::EventStore as _;
    let dir = tempfile::tempdir().unwrap();
    let probes = report::Probes {
        dir: dir.path().join("probes"),
        duration: Duration::from_millis(5),
    };
    let store = strata_store_embedded::EmbeddedStore::open(
        dir.path().join("store"),
        strata_store_embedded::Options::default(),
    )
    .unwrap();
    let planned = SyncShape {
        events_per_sync: 8,
        record_bytes: 64,
    };
    let bracket = probes.before(&store, planned).await.unwrap();
    let stream = StreamName::new("bench-1").unwrap();
    // Three appends of two events, each waiting for its fdatasync: groups of two.
    for _ in 0..3 {
        let events = (0..2)
            .map(|_| NewEvent::raw(EventType::new("E").unwrap(), payload(64)))
            .collect();
        store
            .append(&stream, ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
    let ceiling = bracket.after(&store).await.unwrap();
    assert_eq!((ceiling.store_events, ceiling.store_syncs), (6, 3));
    assert_eq!(ceiling.before.shape, planned);
    assert_eq!(ceiling.after.shape, planned);
    let matched = ceiling.matched.expect("the store synced");
    assert_eq!(matched.shape.events_per_sync, 2);
    assert!(matched.shape.record_bytes > 64, "{matched:?}");
    assert_eq!(matched.shape.record_bytes, ceiling.store_bytes.div_ceil(6));
    store.close().await.unwrap();
    assert!(
        std::fs::read_dir(&probes.dir).unwrap().next().is_none(),
        "the probes' scratch files are removed"
    );
}

#[test]
fn the_write_probe_runs_at_least_one_group_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let shape = SyncShape {
        events_per_sync: 3,
        record_bytes: 100,
    };
    let probe = probe_sync(dir.path(), shape, Duration::ZERO).unwrap();
    assert_eq!(probe.shape, shape);
    assert_eq!(probe.sync.count, 1);
    assert!(probe.events_per_s > 0.0);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[test]
fn the_read_probe_reads_the_segments_whole_and_counts_them_as_events() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000000000000000001.seg"), vec![1; 1000]).unwrap();
    std::fs::write(dir.path().join("00000000000000000100.seg"), vec![2; 3000]).unwrap();
    std::fs::write(dir.path().join("00000000000000000001.idx"), vec![3; 50]).unwrap();
    let files = segment_files(dir.path()).unwrap();
    assert_eq!(files.len(), 2);
    assert!(files[0] < files[1]);
    assert_eq!(probe::segment_bytes(dir.path()), 4000);
    let read = probe_pread(&files, Duration::ZERO).unwrap();
    assert!(read.passes >= 1.0, "{read:?}");
    assert!(read.bytes_per_s > 0.0);
    let per = ReadProbe {
        bytes_per_s: 4000.0,
        passes: 1.0,
    };
    assert_eq!(per.events_per_s(200, 4000), 200.0);
    assert_eq!(per.events_per_s(200, 0), 0.0);
}

#[test]
fn a_result_line_is_one_json_line_with_rounded_figures() {
    let mut samples = vec![Duration::from_millis(1), Duration::from_millis(3)];
    let result = ScenarioResult::new(
        "writers_256",
        Some(250_000.0),
        &Summary::of(&mut samples),
        "append",
    )
    .with("writers", 256)
    .with("first_error", None::<String>)
    .with("seconds", 1.0 / 3.0);
    let value = line(result.clone());
    assert_eq!(value["scenario"], "writers_256");
    assert_eq!(value["events_per_s"], 250_000.0);
    assert_eq!(value["p50_ms"], 1.0);
    assert_eq!(value["samples"], 2);
    assert_eq!(value["latency_is_per"], "append");
    assert_eq!(value["max_ms"], 3.0);
    assert_eq!(value["writers"], 256);
    assert_eq!(value["first_error"], Value::Null);
    assert_eq!(value["seconds"], 0.3333);
    assert_eq!(value["ceiling"], "none");
    let mut out = Vec::new();
    print_result(&mut out, &result).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
}

#[test]
fn system_facts_come_from_the_system() {
    let page = system::page_bytes();
    assert!(page >= 4096 && page.is_power_of_two(), "{page}");
    assert!(system::clock_ticks_per_s() > 0.0);
}

// --- arguments ---

/// The command line of `strata bench` as the binary parses it.
#[derive(Debug, clap::Parser)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
}

fn parse(args: &[&str]) -> Result<Scenario, clap::Error> {
    Cli::try_parse_from(["bench"].iter().chain(args)).map(|cli| cli.scenario)
}

fn bench(args: &[&str]) -> Scenario {
    parse(args).unwrap()
}

#[test]
fn scenario_defaults_are_the_documented_sizes() {
    let Scenario::AppendBulk(bulk) = bench(&["append-bulk"]) else {
        panic!()
    };
    assert_eq!(
        (bulk.events, bulk.batch, bulk.event_bytes),
        (1_000_000, 1000, 256)
    );
    assert_eq!(bulk.in_flight, [1, 4]);
    assert_eq!(bulk.expected, [Expect::Any, Expect::Exact]);
    assert_eq!(bulk.common.probe_seconds, 1.0);
    let Scenario::Writers(writers) = bench(&["writers"]) else {
        panic!()
    };
    assert_eq!(writers.writers, [256, 1]);
    let Scenario::Open(open) = bench(&["open"]) else {
        panic!()
    };
    assert_eq!(open.events, 10_000_000);
    let Scenario::ShopCommands(shop) = bench(&["shop-commands"]) else {
        panic!()
    };
    assert_eq!(shop.clients, [256, 1]);
    let Scenario::Lag(lag) = bench(&["lag"]) else {
        panic!()
    };
    assert_eq!(lag.rate, 10_000.0);
    let Scenario::LoadAggregate(load) = bench(&["load-aggregate"]) else {
        panic!()
    };
    assert_eq!(load.events, 10_000);
    assert_eq!(load.shape, [Shape::Receipts, Shape::Checkout]);
    let Scenario::Http(http) = bench(&["http"]) else {
        panic!()
    };
    assert_eq!(http.connections, 64);
}

#[test]
fn scenario_flags_take_lists_and_directories() {
    let Scenario::Writers(writers) = bench(&[
        "writers",
        "--writers",
        "4,1",
        "--seconds",
        "0.5",
        "--dir",
        "/scratch",
        "--probe-seconds",
        "0.25",
        "--expected",
        "exact",
    ]) else {
        panic!()
    };
    assert_eq!(writers.writers, [4, 1]);
    assert_eq!(writers.seconds, 0.5);
    assert_eq!(
        writers.common.dir.as_deref(),
        Some(std::path::Path::new("/scratch"))
    );
    assert_eq!(writers.common.probe_seconds, 0.25);
    assert_eq!(writers.expected, [Expect::Exact]);
    let Scenario::OpenChild(child) = bench(&["open-child", "--store", "/s"]) else {
        panic!()
    };
    assert_eq!(child.store, std::path::Path::new("/s"));
}

#[test]
fn bad_scenario_flags_are_usage_errors() {
    for args in [
        &["all", "--quick", "--full"][..],
        &["append-bulk", "--batch", "0"],
        &["read-all", "--probe-seconds", "0"],
        &["read-all", "--probe-seconds", "soon"],
        &["disk", "--events-per-sync", "0"],
        &["disk", "--seconds", "-1"],
        &["load-aggregate", "--events", "1"],
        &["load-aggregate", "--shape", "round"],
        &["writers", "--expected", "maybe"],
    ] {
        let err = parse(args).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn all_runs_the_quick_scenarios_at_full_size_and_everything_when_asked() {
    let plan = |args: &[&str]| {
        let Scenario::All(all) = bench(&[&["all"][..], args].concat()) else {
            panic!()
        };
        Plan::new(&all)
    };
    let default = plan(&[]);
    assert!(default.long.is_none());
    assert_eq!(default.bulk.events, 1_000_000);
    assert_eq!(default.writers.writers, [256, 1]);
    let full = plan(&["--full"]);
    let long = full.long.expect("the long scenarios");
    assert_eq!(long.open.events, 10_000_000);
    assert_eq!(long.import.events, 1_000_000);
    assert_eq!(long.rebuild.events, 1_000_000);
    assert_eq!(long.http.connections, 64);
    let quick = plan(&["--quick"]);
    assert!(quick.long.is_some());
    assert!(quick.bulk.events < 10_000 && quick.writers.seconds < 1.0);
    assert!(quick.common.probe_seconds <= QUICK_PROBE_SECONDS);
    assert_eq!(default.read_stream.reads, 1000, "enough samples for a p99");
    assert_eq!(
        default.load_aggregate.loads, 1000,
        "enough samples for a p99"
    );
}

// --- fixtures ---

#[test]
fn payloads_are_json_objects_of_the_exact_size() {
    for bytes in [8, 9, 256, 1000] {
        let data = payload(bytes);
        assert_eq!(data.len(), bytes);
        assert!(serde_json::from_slice::<Value>(&data).unwrap().is_object());
    }
    assert_eq!(payload(3).len(), 3);
}

#[test]
fn a_generated_log_has_the_asked_streams_and_events() {
    let appends: Vec<_> = log_appends("log", 25, 10, payload(16)).collect();
    let sizes: Vec<usize> = appends.iter().map(|a| a.events.len()).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(appends[2].stream.as_str(), "log-2");
}

#[test]
fn a_shop_history_is_the_asked_size_and_every_event_decodes() {
    let history: Vec<_> = shop_history(1000, 5).collect();
    assert_eq!(history.len(), 1000);
    assert!(history.iter().all(|a| a.events.len() == 1));
    assert_eq!(history[0].stream.as_str(), "product-sku0");
    assert_eq!(history[1].stream.as_str(), "inventory-sku0");
    let mut order_types = Vec::new();
    for append in &history {
        let event = &append.events[0];
        let data: Value = serde_json::from_slice(&event.data).unwrap();
        let kind = event.event_type.as_str();
        let decoded = match append.stream.category() {
            "product" => ProductEvent::decode(kind, data).map(drop),
            "inventory" => InventoryEvent::decode(kind, data).map(drop),
            "payment" => PaymentEvent::decode(kind, data).map(drop),
            "order" => {
                if append.stream.as_str() == "order-o0" {
                    order_types.push(kind.to_owned());
                }
                OrderEvent::decode(kind, data).map(drop)
            }
            other => panic!("unexpected category {other}"),
        };
        decoded.unwrap_or_else(|e| panic!("{kind} does not decode: {e}"));
        let metadata: Value = serde_json::from_slice(&event.metadata).unwrap();
        assert_eq!(metadata["schema_version"], 1);
    }
    assert_eq!(
        order_types,
        [
            "OrderCreated",
            "OrderLineAdded",
            "OrderLineAdded",
            "OrderPlaced",
            "OrderConfirmed"
        ]
    );
}

#[test]
fn generated_export_lines_are_what_import_reads() {
    let event = RecordedEvent {
        position: strata_core::Position(1),
        stream: crate::fixtures::stream("import-0".to_owned()),
        version: strata_core::Version(1),
        id: strata_core::EventId::new(),
        event_type: crate::fixtures::bench_type(),
        data: payload(64),
        metadata: bytes::Bytes::from_static(b"{}"),
        recorded_at: strata_core::Timestamp::from_unix_nanos(1),
    };
    let mut line = Vec::new();
    event.write_json_line(&mut line);
    let value: Value = serde_json::from_slice(&line).unwrap();
    assert_eq!(value["stream"], "import-0");
    assert_eq!(value["data"]["p"].as_str().unwrap().len(), 64 - 8);
}

// --- drivers ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_counts_what_completes_in_its_window() {
    let outcome = closed_loop(3, Duration::from_millis(100), |client| {
        move |seq| async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            Ok(if client == 0 { 2 } else { seq.min(1) })
        }
    })
    .await;
    assert!(outcome.ops > 10, "{outcome:?}");
    assert!(outcome.events >= outcome.ops / 2, "{outcome:?}");
    assert_eq!(outcome.errors, 0);
    assert!(outcome.latency.p50_ms >= 2.0, "{outcome:?}");
    assert!(outcome.ops_per_s() > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_loop_client_gives_up_after_repeated_failures() {
    let outcome = closed_loop(2, Duration::from_secs(30), |_| {
        |_| async { Err::<u64, _>(BenchError::Failed("refused".to_owned())) }
    })
    .await;
    assert_eq!(outcome.ops, 0);
    assert_eq!(outcome.errors, 200);
    assert_eq!(outcome.first_error.as_deref(), Some("refused"));
}

#[test]
fn operations_fall_due_at_the_rate() {
    assert_eq!(due_count(1000.0, Duration::ZERO), 1);
    assert_eq!(due_count(1000.0, Duration::from_micros(999)), 1);
    assert_eq!(due_count(1000.0, Duration::from_millis(1)), 2);
    assert_eq!(due_count(1000.0, Duration::from_secs(1)), 1001);
    assert_eq!(due_count(0.0, Duration::from_secs(1)), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_run_starts_every_operation_due_in_its_window() {
    let outcome = paced(2000.0, Duration::from_millis(100), |n, due| async move {
        error::ensure!(n != 150, "the 150th failed");
        Ok(tokio::time::Instant::now() - due)
    })
    .await;
    // 2000/s for 100 ms after a 10 ms warm-up: 200 operations, give or take the edges.
    assert!((195..=205).contains(&outcome.due), "{}", outcome.due);
    assert_eq!(outcome.results.len() as u64 + outcome.errors, outcome.due);
    assert_eq!(outcome.errors, 1);
    assert!(outcome.span >= Duration::from_millis(100));
}

// --- what child processes print ---

#[test]
fn the_import_summary_is_read_from_standard_error() {
    let report = importing::parse_import_summary(
        "warning: something\nimported 1000000 events in 100000 appends in 1.52 s (657894 events/s)\n",
    )
    .unwrap();
    assert_eq!(report.events, 1_000_000);
    assert_eq!(report.events_per_s, 657_894.0);
    assert!(importing::parse_import_summary("error: no such file").is_none());
}

#[test]
fn the_server_address_is_read_from_its_coloured_log() {
    let line = "\u{1b}[2m2025-01-01T00:00:00Z\u{1b}[0m \u{1b}[32m INFO\u{1b}[0m strata is serving on http://127.0.0.1:41234 (console at http://127.0.0.1:41234/) \u{1b}[3mdata_dir\u{1b}[0m=/tmp/x";
    let plain = http::strip_ansi(line);
    assert!(!plain.contains('\u{1b}'), "{plain}");
    assert_eq!(
        http::listen_address(&plain),
        Some("127.0.0.1:41234".parse().unwrap())
    );
    assert_eq!(http::listen_address("strata stopped"), None);
}

#[test]
fn cpu_times_and_resident_pages_are_read_from_proc() {
    let stat =
        "4242 (strata serve x) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 9 0 1 2 3";
    assert_eq!(http::parse_cpu_ticks(stat), Some(300));
    assert_eq!(http::parse_cpu_ticks("garbage"), None);
    assert_eq!(
        open::resident_pages("5000 1234 300 10 0 900 0\n"),
        Some(1234)
    );
    assert_eq!(open::resident_pages(""), None);
}

#[test]
fn queries_ask_for_completed_orders_and_products_in_turn() {
    let known = [0, 5, 0];
    for seq in 0..50 {
        let path = http::query_path(&known, 0, seq, 10);
        if seq.is_multiple_of(2) {
            let n: u64 = path
                .strip_prefix("/shop/orders/h1-")
                .unwrap_or_else(|| panic!("{path}"))
                .parse()
                .unwrap();
            assert!(n < 5);
        } else {
            assert!(path.starts_with("/shop/products/sku"), "{path}");
        }
    }
    assert!(http::query_path(&[0, 0], 1, 0, 3).starts_with("/shop/products/sku"));
}

// --- PostgreSQL ---

#[test]
fn a_postgres_write_is_compared_with_raw_inserts_of_the_same_rows() {
    let raw = result_against(&Ceiling::RawInsert(crate::report::RawCeiling {
        events_per_s: 200_000.0,
        p50_ms: 4.0,
        clients: 1,
        rows_per_statement: 1000,
    }));
    assert_eq!(raw["ceiling"], "raw_insert");
    assert_eq!(raw["ratio_to_ceiling"], 0.25);
    assert_eq!(raw["ceiling_events_per_s"], 200_000.0);
    assert_eq!(raw["ceiling_rows_per_statement"], 1000);
    assert_eq!(raw["ceiling_clients"], 1);
}

#[test]
fn the_postgres_scenario_defaults_to_the_documented_sizes() {
    let Scenario::Postgres(pg) = bench(&["postgres", "--url", "postgres://x@127.0.0.1/db"]) else {
        panic!()
    };
    assert_eq!(pg.url, "postgres://x@127.0.0.1/db");
    assert_eq!(pg.clients, vec![1, 8, 32]);
    assert_eq!(pg.seconds, 5.0);
    assert_eq!((pg.bulk_events, pg.batch), (200_000, 1000));
    assert!(parse(&["postgres", "--url", "u", "--batch", "9000"]).is_err());
}

#[test]
fn every_bank_command_of_a_client_is_accepted_in_turn() {
    use strata_domain::Aggregate as _;
    let mut accounts: std::collections::BTreeMap<String, bank::Account> = Default::default();
    for seq in 0..3 * bank::COMMANDS_PER_ACCOUNT {
        let (account, command) = bank::command(3, seq);
        let state = accounts.entry(account.clone()).or_default();
        let events = state
            .decide(&command)
            .unwrap_or_else(|err| panic!("command {seq} to {account}: {err}"));
        assert_eq!(events.len(), 1, "one event per command");
        *state = events.iter().fold(state.clone(), |s, e| s.evolve(e));
    }
    assert_eq!(accounts.len(), 3, "a new account every ten commands");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_postgres_scenario_prints_commands_and_bulk_beside_their_ceilings() {
    let url = match std::env::var("STRATA_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            println!("skipped the postgres scenario: STRATA_TEST_POSTGRES_URL is unset");
            return;
        }
    };
    let Scenario::Postgres(args) = bench(&[
        "postgres",
        "--url",
        &url,
        "--clients",
        "2",
        "--seconds",
        "0.3",
        "--bulk-events",
        "1500",
        "--batch",
        "500",
    ]) else {
        panic!()
    };
    let results = crate::postgres::postgres(&args)
        .await
        .expect("the scenario runs");
    let lines: Vec<Value> = results.into_iter().map(line).collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let commands = &lines[0];
    assert_eq!(commands["scenario"], "pg_bank_commands_2");
    assert_eq!(commands["errors"], 0, "{commands}");
    assert!(
        commands["commands_per_s"].as_f64().unwrap() > 0.0,
        "{commands}"
    );
    assert!(
        commands["ceiling_events_per_s"].as_f64().unwrap() > 0.0,
        "{commands}"
    );
    let bulk = &lines[1];
    assert_eq!(bulk["scenario"], "pg_append_bulk");
    assert_eq!(bulk["events"], 1500);
    assert_eq!(bulk["samples"], 3, "three appends of 500");
    assert!(bulk["ratio_to_ceiling"].as_f64().unwrap() > 0.0, "{bulk}");
}

#[test]
fn relay_defaults_are_the_documented_sizes() {
    let Scenario::Relay(relay) = bench(&["relay"]) else {
        panic!()
    };
    assert_eq!((relay.events, relay.event_bytes), (100_000, 200));
    assert_eq!((relay.rate, relay.seconds), (1000.0, 5.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_scenario_prints_throughput_and_latency_for_each_broker_given() {
    for (flag, var) in [
        ("--nats", "STRATA_TEST_NATS_URL"),
        ("--amqp", "STRATA_TEST_AMQP_URL"),
        ("--kafka", "STRATA_TEST_KAFKA_URL"),
    ] {
        let url = match std::env::var(var) {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                println!("skipped the relay scenario {flag}: {var} is unset");
                continue;
            }
        };
        if flag == "--kafka" && !cfg!(feature = "kafka") {
            println!("skipped the relay scenario --kafka: built without the kafka feature");
            continue;
        }
        let Scenario::Relay(args) = bench(&[
            "relay",
            flag,
            &url,
            "--events",
            "2000",
            "--rate",
            "200",
            "--seconds",
            "0.5",
        ]) else {
            panic!()
        };
        let dir = tempfile::tempdir().unwrap();
        let probes = Probes {
            dir: dir.path().to_owned(),
            duration: Duration::from_millis(10),
        };
        let results = crate::relay::relay(dir.path(), &args, &probes)
            .await
            .expect("the scenario runs");
        let lines: Vec<Value> = results.into_iter().map(line).collect();
        let broker = &flag[2..];
        let names: Vec<&str> = lines
            .iter()
            .map(|l| l["scenario"].as_str().unwrap())
            .collect();
        assert!(
            names.contains(&format!("relay_{broker}_throughput").as_str())
                && names.contains(&format!("relay_{broker}_latency").as_str()),
            "{lines:?}"
        );
        let throughput = &lines[names.len() - 2];
        assert_eq!(throughput["events"], 2000, "{throughput}");
        assert!(throughput["events_per_s"].as_f64().unwrap() > 0.0);
        assert!(throughput["floor_events_per_s"].as_f64().unwrap() > 0.0);
        let latency = &lines[names.len() - 1];
        assert!(latency["samples"].as_u64().unwrap() > 0, "{latency}");
        assert_eq!(latency["missing"], 0, "{latency}");
        assert!(
            latency["p99_ms"].is_null(),
            "too few samples for a p99: {latency}"
        );
    }
}
