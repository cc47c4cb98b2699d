//! `strata export` and `strata import`: a round trip keeps everything.

use serde_json::json;

use crate::support::{Strata, append_line};

fn sample() -> Strata {
    let strata = Strata::new();
    let mut lines = Vec::new();
    for i in 0..60 {
        let stream = format!("order-{}", i % 7);
        let types: Vec<&str> = ["Placed", "Added", "Shipped"][..(i % 3) + 1].to_vec();
        lines.push(append_line(&stream, json!("any"), &types));
    }
    lines.push(json!({"stream": "odd-1", "events": [
        {"type": "Unicode", "data": {"text": "été \u{1F600} \"quoted\"\n"}, "metadata": {"actor": "ann", "n": [1, 2]}},
        {"type": "Scalar", "data": 42},
        {"type": "Null", "data": null},
    ]}));
    strata.append_ok(&lines);
    strata
}

#[test]
fn export_then_import_then_export_is_identical() {
    let source = sample();
    let exported = source.run(&["export"], "");
    exported.assert_success();
    assert_eq!(exported.json_lines().len(), 123);
    assert_eq!(exported.stdout(), source.run(&["read-all"], "").stdout());

    let target = Strata::new();
    let import = target.run(&["import"], &exported.stdout());
    import.assert_success();
    assert!(
        import.stderr().contains("imported 123 events"),
        "{import:?}"
    );
    let again = target.run(&["export"], "");
    again.assert_success();
    assert_eq!(again.stdout(), exported.stdout());
}

#[test]
fn import_reads_a_file_and_a_repeat_is_harmless() {
    let source = sample();
    let file = source.scratch().join("export.jsonl");
    std::fs::write(&file, source.run(&["export"], "").stdout()).unwrap();
    let file = file.to_str().unwrap();

    let target = Strata::new();
    target.run(&["import", "--file", file], "").assert_success();
    target.run(&["import", "--file", file], "").assert_success();
    assert_eq!(
        target.run(&["export"], "").stdout(),
        source.run(&["export"], "").stdout()
    );
}

#[test]
fn a_bad_import_line_stops_the_import_and_names_the_line() {
    let source = sample();
    let exported = source.run(&["export"], "").stdout();
    let mut lines: Vec<&str> = exported.lines().collect();
    lines.insert(10, "{\"stream\": \"order-1\", \"oops\": true}");
    let target = Strata::new();
    let run = target.run(&["import"], &lines.join("\n"));
    run.assert_failure(1, "line 11");
    let imported = target.run(&["export"], "").json_lines();
    assert_eq!(imported.len(), 10, "everything before the bad line stays");
}

#[test]
fn importing_a_missing_file_is_a_clear_error() {
    let target = Strata::new();
    target
        .run(&["import", "--file", "/no/such/export.jsonl"], "")
        .assert_failure(1, "/no/such/export.jsonl");
}

#[test]
fn importing_over_existing_streams_fails_on_the_conflict() {
    let source = sample();
    let exported = source.run(&["export"], "").stdout();
    let target = Strata::new();
    target.append_ok(&[append_line("order-0", json!("any"), &["Other"])]);
    target
        .run(&["import"], &exported)
        .assert_failure(1, "wrong expected version");
}
