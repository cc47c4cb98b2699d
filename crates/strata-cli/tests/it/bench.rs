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
        "all",
    ] {
        assert!(run.stdout().contains(scenario), "{scenario}: {run:?}");
    }
    assert!(!run.stdout().contains("open-child"), "{run:?}");
}

#[test]
fn the_disk_ceiling_prints_one_json_line() {
    let strata = Strata::new();
    let dir = strata.scratch().join("bench");
    let run = strata.run(
        &[
            "bench",
            "disk",
            "--rounds",
            "3",
            "--dir",
            dir.to_str().unwrap(),
        ],
        "",
    );
    run.assert_success();
    let lines = run.json_lines();
    assert_eq!(lines.len(), 1, "{run:?}");
    let line = &lines[0];
    assert_eq!(line["scenario"], "disk_ceiling");
    assert!(line["events_per_s"].as_f64().unwrap() > 0.0);
    assert!(line["p50_ms"].as_f64().unwrap() <= line["p99_ms"].as_f64().unwrap());
    assert_eq!(line["ratio_to_ceiling"], 1.0);
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        0,
        "scratch files are removed"
    );
}

#[test]
fn zero_rounds_is_a_usage_error() {
    Strata::new()
        .run(&["bench", "disk", "--rounds", "0"], "")
        .assert_failure(2, "rounds");
}

#[test]
fn every_scenario_runs_quickly_and_prints_json_lines_in_proportion_to_the_disk() {
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
        .filter(|s| *s != "disk_ceiling")
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
            "http_shop_commands",
            "http_shop_queries",
            "http_appends",
        ],
        "{run:?}"
    );
    // Each family starts with the disk baseline it is compared with.
    assert_eq!(lines[0]["scenario"], "disk_ceiling", "{run:?}");
    let mut ceiling = 0.0;
    for line in &lines {
        for field in ["events_per_s", "p50_ms", "p99_ms", "ratio_to_ceiling"] {
            assert!(line[field].as_f64().is_some(), "{field} in {line}");
        }
        assert!(line["p50_ms"].as_f64() <= line["p99_ms"].as_f64(), "{line}");
        if line["scenario"] == "disk_ceiling" {
            ceiling = line["events_per_s"].as_f64().unwrap();
            assert!(line["fsync_p50_ms"].as_f64().unwrap() > 0.0, "{line}");
            continue;
        }
        assert_eq!(
            line["ceiling_events_per_s"].as_f64(),
            Some(ceiling),
            "{line}"
        );
        let expected = line["events_per_s"].as_f64().unwrap() / ceiling;
        let ratio = line["ratio_to_ceiling"].as_f64().unwrap();
        assert!((ratio - expected).abs() <= 1e-4 + expected * 1e-3, "{line}");
        assert!(
            line.get("errors").is_none_or(|e| e == 0),
            "a scenario saw errors: {line}"
        );
    }
    for latency_bound in [
        "writers_1",
        "shop_commands_1",
        "read_model_lag",
        "http_appends",
    ] {
        let line = lines
            .iter()
            .find(|l| l["scenario"] == latency_bound)
            .unwrap();
        assert!(line["latency_ratio_to_fsync"].as_f64().is_some(), "{line}");
    }
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
fn a_scenario_prints_the_disk_baseline_then_one_line_per_result() {
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
            "--ceiling-rounds",
            "1",
            "--fsync-rounds",
            "1",
            "--dir",
            dir.to_str().unwrap(),
        ],
        "",
    );
    run.assert_success();
    let scenarios: Vec<String> = run
        .json_lines()
        .iter()
        .map(|l| l["scenario"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        scenarios,
        [
            "disk_ceiling",
            "append_bulk_x1",
            "append_bulk_x2",
            "append_bulk_x3"
        ]
    );
}
