//! `strata read` and `strata read-all`.

use serde_json::{Value, json};

use crate::support::{Strata, append_line};

fn versions(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["version"].as_u64().unwrap())
        .collect()
}

fn positions(events: &[Value]) -> Vec<u64> {
    events
        .iter()
        .map(|e| e["position"].as_u64().unwrap())
        .collect()
}

/// order-1: A B C D E at positions 1..=5, invoice-1: X at 6, order-2: A at 7.
fn store() -> Strata {
    let strata = Strata::new();
    strata.append_ok(&[
        append_line("order-1", json!("no_stream"), &["A", "B", "C", "D", "E"]),
        append_line("invoice-1", json!("any"), &["X"]),
        append_line("order-2", json!("any"), &["A"]),
    ]);
    strata
}

#[test]
fn read_forward_backward_from_and_limit() {
    let strata = store();
    let read = |args: &[&str]| {
        let run = strata.run(args, "");
        run.assert_success();
        versions(&run.json_lines())
    };
    assert_eq!(read(&["read", "order-1"]), [1, 2, 3, 4, 5]);
    assert_eq!(read(&["read", "order-1", "--from", "3"]), [3, 4, 5]);
    assert_eq!(
        read(&["read", "order-1", "--from", "2", "--limit", "2"]),
        [2, 3]
    );
    assert_eq!(read(&["read", "order-1", "--backward"]), [5, 4, 3, 2, 1]);
    assert_eq!(
        read(&["read", "order-1", "--backward", "--limit", "1"]),
        [5]
    );
    assert_eq!(
        read(&["read", "order-1", "--backward", "--from", "2"]),
        [2, 1]
    );
    assert_eq!(
        read(&["read", "order-1", "--limit", "0"]),
        Vec::<u64>::new()
    );
    assert_eq!(read(&["read", "order-1", "--from", "9"]), Vec::<u64>::new());
}

#[test]
fn reading_a_missing_stream_says_so_and_exits_3() {
    let strata = store();
    let run = strata.run(&["read", "no-such-stream"], "");
    run.assert_failure(3, "stream no-such-stream does not exist");
    assert_eq!(run.stdout(), "");
    assert!(run.stderr().starts_with("error: "), "{run:?}");
    // A stream that exists but has nothing from --from on is not missing.
    let past = strata.run(&["read", "order-1", "--from", "99"], "");
    past.assert_success();
    assert_eq!(past.stdout(), "");
}

#[test]
fn an_invalid_stream_name_is_a_clear_error() {
    let strata = store();
    strata
        .run(&["read", ""], "")
        .assert_failure(1, "invalid stream name");
    strata
        .run(&["read", "a\u{7}b"], "")
        .assert_failure(1, "control characters");
    let long = "x".repeat(300);
    strata
        .run(&["read", &long], "")
        .assert_failure(1, "at most 255 bytes");
}

#[test]
fn read_all_filters_by_category_and_type_from_a_position() {
    let strata = store();
    let read = |args: &[&str]| {
        let run = strata.run(args, "");
        run.assert_success();
        positions(&run.json_lines())
    };
    assert_eq!(read(&["read-all"]), [1, 2, 3, 4, 5, 6, 7]);
    assert_eq!(read(&["read-all", "--from", "5"]), [5, 6, 7]);
    assert_eq!(
        read(&["read-all", "--from", "2", "--limit", "3"]),
        [2, 3, 4]
    );
    assert_eq!(
        read(&["read-all", "--category", "order"]),
        [1, 2, 3, 4, 5, 7]
    );
    assert_eq!(read(&["read-all", "--category", "invoice"]), [6]);
    assert_eq!(read(&["read-all", "--type", "A"]), [1, 7]);
    assert_eq!(read(&["read-all", "--type", "A", "--type", "X"]), [1, 6, 7]);
    assert_eq!(
        read(&[
            "read-all",
            "--category",
            "order",
            "--category",
            "invoice",
            "--type",
            "X"
        ]),
        [6]
    );
    assert_eq!(
        read(&[
            "read-all",
            "--category",
            "order",
            "--from",
            "2",
            "--limit",
            "2"
        ]),
        [2, 3]
    );
    assert_eq!(read(&["read-all", "--from", "8"]), Vec::<u64>::new());
}

#[test]
fn reads_page_through_more_events_than_one_page() {
    let strata = Strata::new();
    let types: Vec<String> = (0..2500).map(|i| format!("T{}", i % 3)).collect();
    let types: Vec<&str> = types.iter().map(String::as_str).collect();
    strata.append_ok(&[
        append_line("big-1", json!("any"), &types[..1200]),
        append_line("big-1", json!("any"), &types[1200..]),
    ]);
    let run = strata.run(&["read", "big-1"], "");
    assert_eq!(versions(&run.json_lines()), (1..=2500).collect::<Vec<_>>());
    let run = strata.run(&["read", "big-1", "--backward", "--limit", "1500"], "");
    assert_eq!(
        versions(&run.json_lines()),
        (1001..=2500).rev().collect::<Vec<_>>()
    );
    let run = strata.run(&["read-all", "--type", "T1", "--from", "100"], "");
    let all = run.json_lines();
    assert_eq!(all.len(), (100..=2500).filter(|p| (p - 1) % 3 == 1).count());
    assert!(all.iter().all(|e| e["type"] == "T1"));
}

#[test]
fn reading_a_store_that_does_not_exist_is_a_clear_error() {
    let strata = Strata::new();
    for args in [
        &["read", "a-1"][..],
        &["read-all"],
        &["export"],
        &["verify"],
        &["tail"],
    ] {
        strata
            .run(args, "")
            .assert_failure(1, "directory does not exist");
    }
}

#[test]
fn a_data_directory_that_is_a_file_is_a_clear_error() {
    let strata = Strata::new();
    let file = strata.scratch().join("not-a-dir");
    std::fs::write(&file, b"hello").unwrap();
    let file = file.to_str().unwrap();
    for args in [
        &["read", "a-1"][..],
        &["read-all"],
        &["export"],
        &["append"],
        &["import"],
    ] {
        let mut args = args.to_vec();
        args.extend(["--data-dir", file]);
        let run = strata.run(&args, "");
        run.assert_failure(1, "not-a-dir");
    }
}

#[test]
fn closing_the_output_early_is_not_an_error() {
    let strata = Strata::new();
    let types = vec!["T"; 3000];
    strata.append_ok(&[append_line("big-1", json!("any"), &types)]);
    let mut child = strata
        .command(&["read-all"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Read one line, then hang up.
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    drop(stdout);
    let status = crate::support::wait_status(&mut child, crate::support::TIMEOUT);
    assert!(status.success(), "{status:?}");
}
