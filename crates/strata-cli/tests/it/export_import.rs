//! `strata export` and `strata import`: a round trip keeps everything.

use serde_json::json;

use bytes::Bytes;
use strata_core::{EventId, EventType, NewEvent};

use crate::support::{Strata, append_line, read_store, write_store};

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
    let first = target.run(&["import", "--file", file], "");
    first.assert_success();
    assert!(
        first.stderr().starts_with("imported 123 events in ")
            && first
                .stderr()
                .contains(" appends, skipped 0 already present, refused 0 in "),
        "{first:?}"
    );
    let again = target.run(&["import", "--file", file], "");
    again.assert_success();
    assert!(
        again.stderr().starts_with(
            "imported 0 events in 0 appends, skipped 123 already present, refused 0 in "
        ),
        "{again:?}"
    );
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
    run.assert_failure(1, "import stopped at line 11, nothing after it written");
    run.assert_failure(1, "imported 10 events");
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
        .assert_failure(1, "already holds another event at version 1");
}

#[test]
fn export_then_import_gives_back_the_appended_bytes() {
    let payloads: [(&str, &[u8], &[u8]); 10] = [
        (
            "Object",
            br#"{"a":1,"b":[true,null]}"#,
            br#"{"actor":"ann"}"#,
        ),
        (
            "Pretty",
            b"{\n  \"a\": 1,\n  \"b\": [\n    2\n  ]\n}\n",
            b"{\n  \"actor\": \"bob\"\n}",
        ),
        ("String", br#""a string with \"quotes\" and \n""#, b"{}"),
        ("Number", b"-12.50e3", b"{}"),
        ("Array", b"[1, 2,  3]", b"{}"),
        ("Null", b"null", b""),
        ("Padded", b"  {\"padded\": true}\t", b" {} "),
        ("Text", b"not JSON at all", b"{}"),
        ("Binary", b"\x00\xff\xfe\n\r", b"{}"),
        ("Empty", b"", b"{}"),
    ];
    let source = Strata::new();
    let originals: Vec<NewEvent> = payloads
        .iter()
        .map(|(event_type, data, metadata)| NewEvent {
            id: EventId::new(),
            event_type: EventType::new(*event_type).unwrap(),
            data: Bytes::copy_from_slice(data),
            metadata: Bytes::copy_from_slice(metadata),
        })
        .collect();
    let appends = originals
        .iter()
        .enumerate()
        .map(|(i, e)| (if i % 2 == 0 { "odd-1" } else { "odd-2" }, vec![e.clone()]))
        .collect();
    write_store(&source.data_dir(), 1 << 20, appends);
    let recorded = read_store(&source.data_dir());

    let exported = source.run(&["export"], "");
    exported.assert_success();
    assert_eq!(exported.stdout().lines().count(), payloads.len());
    let target = Strata::new();
    target.run(&["import"], &exported.stdout()).assert_success();

    let imported = read_store(&target.data_dir());
    assert_eq!(imported.len(), originals.len());
    for ((event, original), source) in imported.iter().zip(&originals).zip(&recorded) {
        let name = original.event_type.as_str();
        assert_eq!(event.id, original.id, "{name}");
        assert_eq!(event.event_type, original.event_type, "{name}");
        assert_eq!(event.data, original.data, "{name}: data");
        assert_eq!(event.metadata, original.metadata, "{name}: metadata");
        assert_eq!(
            (
                &event.stream,
                event.version,
                event.position,
                event.recorded_at
            ),
            (
                &source.stream,
                source.version,
                source.position,
                source.recorded_at
            ),
            "{name}"
        );
    }
}
