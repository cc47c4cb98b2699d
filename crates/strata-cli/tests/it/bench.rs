//! `strata bench`.

use crate::support::Strata;

#[test]
fn bench_has_help_listing_its_scenarios() {
    let run = Strata::new().run(&["bench", "--help"], "");
    run.assert_success();
    assert!(run.stdout().contains("disk"), "{run:?}");
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
