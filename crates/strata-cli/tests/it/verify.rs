//! `strata verify`: a summary for an intact store, the problems for a damaged one.

use serde_json::json;

use crate::support::{Strata, append_line};

#[test]
fn verify_summarizes_an_intact_store() {
    let strata = Strata::new();
    strata.append_ok(&[
        append_line("order-1", json!("any"), &["A", "B"]),
        append_line("order-2", json!("any"), &["C"]),
    ]);
    let run = strata.run(&["verify"], "");
    run.assert_success();
    let out = run.stdout();
    assert_eq!(out.lines().count(), 1, "{run:?}");
    assert!(out.contains("intact"), "{run:?}");
    assert!(out.contains("3 events"), "{run:?}");
    assert!(out.contains("2 streams"), "{run:?}");
}

#[test]
fn verify_lists_damage_with_file_and_offset_and_fails() {
    let strata = Strata::new();
    let payload = "p".repeat(2000);
    let lines: Vec<_> = (0..20)
        .map(|i| json!({"stream": format!("s-{i}"), "events": [{"type": "T", "data": payload}]}))
        .collect();
    strata.append_ok(&lines);
    let segment = std::fs::read_dir(strata.data_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "seg"))
        .expect("a segment file");
    let mut bytes = std::fs::read(&segment).unwrap();
    // Inside an early event's payload, so a checksum must catch it.
    let at = bytes
        .windows(100)
        .position(|w| w.iter().all(|&b| b == b'p'))
        .unwrap();
    bytes[at + 50] = b'q';
    std::fs::write(&segment, &bytes).unwrap();

    let run = strata.run(&["verify"], "");
    run.assert_failure(1, "problem");
    let name = segment.file_name().unwrap().to_str().unwrap();
    let out = run.stdout();
    assert!(!out.is_empty(), "{run:?}");
    for line in out.lines() {
        let (file, rest) = line.split_once(':').expect("file:offset: message");
        let (offset, message) = rest.split_once(": ").expect("file:offset: message");
        assert!(
            file.ends_with(name) || file.contains(".idx") || !file.is_empty(),
            "{line}"
        );
        assert!(offset.parse::<u64>().is_ok(), "{line}");
        assert!(!message.is_empty(), "{line}");
    }
    assert!(out.contains(name), "{run:?}");
}
