//! Unit tests of the benchmark module: statistics, the result line, arguments, the
//! generated fixtures, the drivers, and the parsers of what child processes print.

use std::time::Duration;

use clap::Parser as _;
use serde_json::Value;
use strata_core::RecordedEvent;
use strata_domain::EventCodec;
use strata_shop::domain::{InventoryEvent, OrderEvent, PaymentEvent, ProductEvent};

use super::disk::{Ceiling, FsyncLatency};
use super::fixtures::{log_appends, payload, shop_history};
use super::load::{closed_loop, due_count, paced};
use super::report::{Baseline, FsyncAround, ScenarioResult, ratio, round};
use super::stats::{Summary, median, rate};
use super::*;
use crate::args::{BenchScenario, Cli, Command};

fn baseline() -> Baseline {
    Baseline {
        ceiling: Ceiling {
            events_per_s: 1_000_000.0,
            p50_ms: 1.0,
            p99_ms: 2.0,
        },
        fsync: FsyncLatency {
            p50_ms: 0.5,
            p99_ms: 1.0,
        },
        dir: "/nowhere".into(),
        fsync_rounds: 1,
    }
}

// --- statistics ---

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

// --- the result line ---

#[test]
fn a_result_line_has_the_required_fields_and_its_ratios() {
    let mut samples = vec![Duration::from_millis(1), Duration::from_millis(3)];
    let result = ScenarioResult::new(
        "writers_256",
        250_000.0,
        &Summary::of(&mut samples),
        &baseline(),
    )
    .with_fsync(&FsyncAround {
        p50_ms: 0.5,
        before_p50_ms: 0.25,
        after_p50_ms: 4.0,
    })
    .with("writers", 256)
    .with("first_error", None::<String>)
    .with("seconds", 1.0 / 3.0);
    let line: Value = serde_json::to_value(&result).unwrap();
    assert_eq!(line["scenario"], "writers_256");
    assert_eq!(line["events_per_s"], 250_000.0);
    assert_eq!(line["p50_ms"], 1.0);
    assert_eq!(line["p99_ms"], 3.0);
    assert_eq!(line["ratio_to_ceiling"], 0.25);
    assert_eq!(line["ceiling_events_per_s"], 1_000_000.0);
    assert_eq!(line["fsync_p50_ms"], 0.5);
    assert_eq!(line["latency_ratio_to_fsync"], 2.0);
    assert_eq!(line["fsync_after_p50_ms"], 4.0);
    assert_eq!(line["writers"], 256);
    assert_eq!(line["first_error"], Value::Null);
    assert_eq!(line["seconds"], 0.3333);
    assert_eq!(line["samples"], 2);

    let mut out = Vec::new();
    print_result(&mut out, &result).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with('\n') && text.lines().count() == 1, "{text}");
}

#[test]
fn the_baseline_line_is_the_ceiling_with_the_fsync_latency() {
    let line = serde_json::to_value(ScenarioResult::of_baseline(&baseline())).unwrap();
    assert_eq!(line["scenario"], "disk_ceiling");
    assert_eq!(line["ratio_to_ceiling"], 1.0);
    assert_eq!(line["events_per_s"], 1_000_000.0);
    assert_eq!(line["fsync_p50_ms"], 0.5);
}

// --- arguments ---

fn bench(args: &[&str]) -> BenchScenario {
    let cli = Cli::try_parse_from(["strata", "bench"].iter().chain(args)).unwrap();
    match cli.command {
        Command::Bench(bench) => bench.scenario,
        other => panic!("parsed {other:?}"),
    }
}

#[test]
fn scenario_defaults_are_the_issues_sizes() {
    let BenchScenario::AppendBulk(bulk) = bench(&["append-bulk"]) else {
        panic!()
    };
    assert_eq!(
        (bulk.events, bulk.batch, bulk.event_bytes),
        (1_000_000, 1000, 256)
    );
    assert_eq!(bulk.in_flight, [1, 4]);
    assert_eq!(bulk.expected, [Expect::Any, Expect::Exact]);
    assert_eq!(bulk.common.ceiling_rounds, 50);
    let BenchScenario::Writers(writers) = bench(&["writers"]) else {
        panic!()
    };
    assert_eq!(writers.writers, [256, 1]);
    let BenchScenario::Open(open) = bench(&["open"]) else {
        panic!()
    };
    assert_eq!(open.events, 10_000_000);
    let BenchScenario::ShopCommands(shop) = bench(&["shop-commands"]) else {
        panic!()
    };
    assert_eq!(shop.clients, [256, 1]);
    let BenchScenario::Lag(lag) = bench(&["lag"]) else {
        panic!()
    };
    assert_eq!(lag.rate, 10_000.0);
    let BenchScenario::LoadAggregate(load) = bench(&["load-aggregate"]) else {
        panic!()
    };
    assert_eq!(load.events, 10_000);
    assert_eq!(load.shape, [Shape::Receipts, Shape::Checkout]);
    let BenchScenario::Http(http) = bench(&["http"]) else {
        panic!()
    };
    assert_eq!(http.connections, 64);
}

#[test]
fn scenario_flags_take_lists_and_directories() {
    let BenchScenario::Writers(writers) = bench(&[
        "writers",
        "--writers",
        "4,1",
        "--seconds",
        "0.5",
        "--dir",
        "/scratch",
        "--fsync-rounds",
        "7",
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
    assert_eq!(writers.common.fsync_rounds, 7);
    assert_eq!(writers.expected, [Expect::Exact]);
    let BenchScenario::OpenChild(child) = bench(&["open-child", "--store", "/s"]) else {
        panic!()
    };
    assert_eq!(child.store, std::path::Path::new("/s"));
}

#[test]
fn bad_scenario_flags_are_usage_errors() {
    for args in [
        &["bench", "all", "--quick", "--full"][..],
        &["bench", "append-bulk", "--batch", "0"],
        &["bench", "read-all", "--ceiling-rounds", "0"],
        &["bench", "load-aggregate", "--events", "1"],
        &["bench", "load-aggregate", "--shape", "round"],
        &["bench", "writers", "--expected", "maybe"],
    ] {
        let err = Cli::try_parse_from(["strata"].iter().chain(args)).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}");
    }
}

#[test]
fn all_runs_the_quick_scenarios_at_full_size_and_everything_when_asked() {
    let plan = |args: &[&str]| {
        let BenchScenario::All(all) = bench(&[&["all"][..], args].concat()) else {
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
    assert!(quick.common.ceiling_rounds <= 2);
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
        stream: super::fixtures::stream("import-0".to_owned()),
        version: strata_core::Version(1),
        id: strata_core::EventId::new(),
        event_type: super::fixtures::bench_type(),
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
        |_| async { Err::<u64, _>(anyhow::anyhow!("refused")) }
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
        anyhow::ensure!(n != 150, "the 150th failed");
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

#[test]
fn the_fsync_latency_around_a_scenario_pools_before_and_after() {
    let ms = |v: &[u64]| {
        v.iter()
            .map(|&m| Duration::from_millis(m))
            .collect::<Vec<_>>()
    };
    let around = FsyncAround::of(ms(&[1, 1, 1]), ms(&[8, 9, 8]));
    assert_eq!(around.before_p50_ms, 1.0);
    assert_eq!(around.after_p50_ms, 8.0);
    assert_eq!(around.p50_ms, 1.0);
    let around = FsyncAround::of(ms(&[1, 1]), ms(&[8, 9, 8, 8]));
    assert_eq!(around.p50_ms, 8.0);
}
