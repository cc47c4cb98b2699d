//! `strata bench`.

use crate::support::Strata;

#[test]
fn bench_has_help_listing_its_scenarios() {
    let run = Strata::new().run(&["bench", "--help"], "");
    run.assert_success();
    for scenario in [
        "disk",
        "append-bulk",
        "writers",
        "read-stream",
        "read-all",
        "open",
        "import",
        "shop-commands",
        "rebuild",
        "lag",
        "load-aggregate",
        "http",
        "postgres",
        "relay",
        "scale",
        "all",
    ] {
        assert!(run.stdout().contains(scenario), "{scenario}: {run:?}");
    }
    assert!(!run.stdout().contains("open-child"), "{run:?}");
    let all = Strata::new().run(&["bench", "all", "--help"], "");
    all.assert_success();
    assert!(
        all.stdout().contains("at the sizes in docs/benchmarks.md"),
        "{all:?}"
    );
}

#[test]
fn the_disk_ceiling_prints_one_json_line_per_group_size() {
    let strata = Strata::new();
    let dir = strata.scratch().join("bench");
    let run = strata.run(
        &[
            "bench",
            "disk",
            "--events-per-sync",
            "1,10",
            "--seconds",
            "0.01",
            "--dir",
            dir.to_str().unwrap(),
        ],
        "",
    );
    run.assert_success();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 2, "{run:?}");
    for (line, events_per_sync) in lines.iter().zip([1, 10]) {
        assert_eq!(line["scenario"], "disk_ceiling");
        assert_eq!(line["events_per_sync"], events_per_sync, "{line}");
        assert_eq!(line["record_bytes"], 256, "{line}");
        assert!(line["events_per_s"].as_f64().unwrap() > 0.0);
        assert!(line["samples"].as_u64().unwrap() >= 1, "{line}");
        assert!(line.get("ratio_to_ceiling").is_none(), "{line}");
    }
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "scratch files are removed"
    );
}

#[test]
fn zero_seconds_is_a_usage_error() {
    Strata::new()
        .run(&["bench", "disk", "--seconds", "0"], "")
        .assert_failure(2, "seconds");
}

/// The scenarios whose lines compare their throughput with the write ceiling.
const DURABLE_WRITES: [&str; 3] = ["append_bulk_", "writers_", "shop_commands_"];

#[test]
fn every_scenario_runs_quickly_and_prints_what_it_did_beside_its_ceiling() {
    let strata = Strata::new();
    let dir = strata.scratch().join("bench");
    let run = strata.run(
        &["bench", "all", "--quick", "--dir", dir.to_str().unwrap()],
        "",
    );
    run.assert_success();
    let lines = run.json_lines();
    let scenarios: Vec<&str> = lines
        .iter()
        .map(|l| l["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        scenarios,
        [
            "append_bulk_x1",
            "append_bulk_x4",
            "append_bulk_x1_exact",
            "append_bulk_x4_exact",
            "writers_8",
            "writers_1",
            "writers_8_exact",
            "writers_1_exact",
            "read_stream",
            "read_all",
            "subscription_catch_up",
            "shop_commands_8",
            "shop_commands_1",
            "read_model_lag",
            "load_aggregate_receipts",
            "load_aggregate_receipts_snapshot",
            "load_aggregate_checkout",
            "load_aggregate_checkout_snapshot",
            "open_store",
            "import",
            "projection_rebuild",
            "http_stack_ceiling",
            "http_shop_commands",
            "http_shop_queries",
            "http_appends",
            "http_append_bulk",
        ],
        "{run:?}"
    );
    for line in &lines {
        let scenario = line["scenario"].as_str().unwrap();
        let samples = line["samples"].as_u64().unwrap_or_else(|| panic!("{line}"));
        assert!(samples >= 1, "{line}");
        // A 99th percentile only from enough samples.
        assert_eq!(line["p99_ms"].is_null(), samples < 1000, "{line}");
        let p50 = line["p50_ms"].as_f64().unwrap_or_else(|| panic!("{line}"));
        assert!(
            line["p99_ms"].as_f64().is_none_or(|p99| p50 <= p99),
            "{line}"
        );
        let durable = DURABLE_WRITES.iter().any(|p| scenario.starts_with(p));
        let ceiling = line["ceiling"].as_str().unwrap();
        if durable {
            assert_eq!(ceiling, "fdatasync", "{line}");
            let expected = line["events_per_s"].as_f64().unwrap()
                / line["ceiling_events_per_s"].as_f64().unwrap();
            let ratio = line["ratio_to_ceiling"].as_f64().unwrap();
            assert!((ratio - expected).abs() <= 1e-4 + expected * 1e-2, "{line}");
            // The probe wrote groups of the size the store used, rounded.
            let store = line["store_events_per_sync"].as_f64().unwrap();
            let probed = line["ceiling_events_per_sync"].as_f64().unwrap();
            assert!((store - probed).abs() <= 0.5, "{line}");
            for key in ["bracket_before_events_per_s", "bracket_after_events_per_s"] {
                assert!(line[key].as_f64().unwrap() > 0.0, "{key} in {line}");
            }
        } else {
            assert!(line.get("ratio_to_ceiling").is_none(), "{line}");
        }
        match scenario {
            "read_model_lag" => assert_eq!(ceiling, "fdatasync", "{line}"),
            "read_stream" | "read_all" | "subscription_catch_up" => {
                assert_eq!(ceiling, "pread", "{line}");
                assert!(line["ratio_to_pread"].as_f64().is_some(), "{line}");
                assert!(line["pread_events_per_s"].as_f64().unwrap() > 0.0, "{line}");
            }
            _ if durable => {}
            _ => {
                assert_eq!(ceiling, "none", "{line}");
                assert!(line["ceiling_note"].is_string(), "{line}");
            }
        }
        assert!(
            line.get("errors").is_none_or(|e| e == 0),
            "a scenario saw errors: {line}"
        );
    }
    let line = |name: &str| lines.iter().find(|l| l["scenario"] == name).unwrap();
    // Every HTTP phase against the stack's ceiling of the same run, and each side's
    // share of the machine.
    let stack = line("http_stack_ceiling")["requests_per_s"]
        .as_f64()
        .unwrap();
    assert!(stack > 0.0);
    for phase in ["http_shop_commands", "http_shop_queries", "http_appends"] {
        let line = line(phase);
        let per_s = line
            .get("commands_per_s")
            .unwrap_or(&line["requests_per_s"])
            .as_f64()
            .unwrap();
        let ratio = line["ratio_to_stack"].as_f64().unwrap();
        assert!(
            (ratio - per_s / stack).abs() <= 1e-4 + ratio * 1e-2,
            "{line}"
        );
        assert!(line["ratio_to_stack_floor"].as_f64().is_some(), "{line}");
    }
    for phase in lines.iter().filter(|l| {
        l["scenario"]
            .as_str()
            .is_some_and(|s| s.starts_with("http_"))
    }) {
        let share = phase["bench_cpu_share"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&share), "{phase}");
    }
    let bulk = line("http_append_bulk");
    assert_eq!(bulk["events_per_request"], 100, "{bulk}");
    assert!(
        bulk["embedded_events_per_s"].as_f64().unwrap() > 0.0,
        "{bulk}"
    );
    assert!(bulk["ratio_to_embedded"].as_f64().unwrap() > 0.0, "{bulk}");
    for latency_bound in ["writers_1", "shop_commands_1", "read_model_lag"] {
        let line = line(latency_bound);
        assert!(line["latency_ratio_to_sync"].as_f64().is_some(), "{line}");
    }
    // Loads report the events they folded, and no events for a snapshot that is current.
    let replay = line("load_aggregate_receipts");
    assert_eq!(replay["events_folded_per_load"], replay["aggregate_events"]);
    assert!(replay["events_per_s"].as_f64().unwrap() > 0.0, "{replay}");
    let snapshot = line("load_aggregate_receipts_snapshot");
    assert_eq!(snapshot["events_folded_per_load"], 0, "{snapshot}");
    assert_eq!(
        snapshot["events_per_s"],
        serde_json::Value::Null,
        "{snapshot}"
    );
    assert!(
        snapshot["loads_per_s"].as_f64().unwrap() > 0.0,
        "{snapshot}"
    );
    // Scratch directories are removed; only the reusable store for `open` stays.
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter()
            .all(|name| name.starts_with("strata-bench-open-")),
        "{left:?}"
    );
}

#[test]
fn scale_prints_the_cost_per_event_at_each_size_and_its_spread() {
    let strata = Strata::new();
    let dir = strata.scratch().join("bench");
    let run = strata.run(
        &[
            "bench",
            "scale",
            "--sizes",
            "200,400",
            "--streams",
            "10,100",
            "--stream-events",
            "300",
            "--settle-seconds",
            "0",
            "--dir",
            dir.to_str().unwrap(),
        ],
        "",
    );
    run.assert_success();
    let lines = run.json_lines();
    let scenarios: Vec<&str> = lines
        .iter()
        .map(|l| l["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        scenarios,
        [
            "scale_append_200",
            "scale_read_all_200",
            "scale_open_200",
            "scale_append_400",
            "scale_read_all_400",
            "scale_open_400",
            "scale_append",
            "scale_read_all",
            "scale_open",
            "scale_rebuild_200",
            "scale_rebuild_400",
            "scale_rebuild",
            "scale_streams_10",
            "scale_streams_100",
            "scale_streams",
        ],
        "{run:?}"
    );
    for line in &lines {
        assert_eq!(line["ceiling"], "none", "{line}");
        if let Some(per_event) = line.get("ns_per_event") {
            assert!(per_event.as_f64().unwrap() > 0.0, "{line}");
            let events = line["events"].as_f64().unwrap();
            let seconds = line["seconds"].as_f64().unwrap();
            // `seconds` is printed to four decimals.
            let got = per_event.as_f64().unwrap();
            assert!(
                (got * events / 1e9 - seconds).abs() <= 1e-4 + 1e-3 * seconds,
                "{line}"
            );
        }
    }
    let summary = |name: &str| lines.iter().find(|l| l["scenario"] == name).unwrap();
    let append = summary("scale_append");
    let by_size = append["ns_per_event_by_events"].as_object().unwrap();
    assert_eq!(
        by_size.keys().collect::<Vec<_>>(),
        ["200", "400"],
        "{append}"
    );
    let costs: Vec<f64> = by_size.values().map(|v| v.as_f64().unwrap()).collect();
    let (low, high) = (costs[0].min(costs[1]), costs[0].max(costs[1]));
    let spread = append["spread"].as_f64().unwrap();
    assert!(
        (spread - (high / low - 1.0)).abs() <= 0.01 * spread + 0.01,
        "{append}"
    );
    assert_eq!(append["within_20_percent"], spread <= 0.2, "{append}");
    let streams = summary("scale_streams");
    assert_eq!(
        streams["ns_per_event_by_streams"]
            .as_object()
            .unwrap()
            .len(),
        2,
        "{streams}"
    );
    assert_eq!(summary("scale_streams_100")["events"], 300);
    assert_eq!(summary("scale_open_400")["events"], 400);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "scratch files are removed"
    );
}

#[test]
fn a_scenario_prints_one_line_per_result_probed_in_its_own_shape() {
    let strata = Strata::new();
    let dir = strata.scratch().join("bench");
    let run = strata.run(
        &[
            "bench",
            "append-bulk",
            "--events",
            "300",
            "--batch",
            "100",
            "--in-flight",
            "1,2,3",
            "--expected",
            "any",
            "--probe-seconds",
            "0.01",
            "--dir",
            dir.to_str().unwrap(),
        ],
        "",
    );
    run.assert_success();
    let lines = run.json_lines();
    let scenarios: Vec<&str> = lines
        .iter()
        .map(|l| l["scenario"].as_str().unwrap())
        .collect();
    assert_eq!(
        scenarios,
        ["append_bulk_x1", "append_bulk_x2", "append_bulk_x3"]
    );
    // One append in flight: each append of 100 events is a group of its own.
    let x1 = &lines[0];
    assert_eq!(x1["store_fdatasyncs"], 3, "{x1}");
    assert_eq!(x1["ceiling_events_per_sync"], 100, "{x1}");
    assert_eq!(x1["bracket_events_per_sync"], 100, "{x1}");
    assert_eq!(lines[2]["bracket_events_per_sync"], 300, "{}", lines[2]);
}
