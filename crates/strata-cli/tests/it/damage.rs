//! Reading a damaged store: `read`, `read-all` and `export` stop with an error naming
//! the position, and `export --salvage` exports every readable event and says what it skipped.
//! Each test damages a real data directory the way a bad disk or a bad copy would.

use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use strata_core::{EventType, NewEvent};

use crate::support::{Strata, write_store};

/// An event whose payload names it, so that its bytes can be found in a segment.
fn marked(i: usize) -> NewEvent {
    NewEvent::raw(
        EventType::new("Marked").unwrap(),
        Bytes::from(format!(
            "{{\"marker\":\"event-{i:05}\",\"pad\":\"{}\"}}",
            "x".repeat(200)
        )),
    )
}

/// A store of `count` events, one append (one batch) each, in segments of
/// `segment_bytes`.
fn store(count: usize, segment_bytes: u64) -> Strata {
    let strata = Strata::new();
    let appends = (0..count)
        .map(|i| (if i % 2 == 0 { "a-1" } else { "b-1" }, vec![marked(i)]))
        .collect();
    write_store(&strata.data_dir(), segment_bytes, appends);
    strata
}

/// The segment files, in order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    segments.sort();
    segments
}

/// Flips one byte inside the payload of the event marked `i`.
fn flip_payload_of(dir: &Path, i: usize) -> PathBuf {
    let needle = format!("event-{i:05}");
    for segment in segments(dir) {
        let bytes = std::fs::read(&segment).unwrap();
        if let Some(at) = bytes
            .windows(needle.len())
            .position(|w| w == needle.as_bytes())
        {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&segment)
                .unwrap();
            file.write_all_at(&[bytes[at] ^ 0x20], at as u64).unwrap();
            return segment;
        }
    }
    panic!("no segment holds {needle}");
}

fn positions(run: &crate::support::Run) -> Vec<u64> {
    run.json_lines()
        .iter()
        .map(|l| l["position"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_cut_last_batch_stops_export_and_read_all_with_the_position() {
    let strata = store(10, 1 << 20);
    let last = segments(&strata.data_dir()).pop().unwrap();
    let len = std::fs::metadata(&last).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(len - 7)
        .unwrap();

    for command in ["export", "read-all"] {
        let run = strata.run(&[command], "");
        run.assert_failure(
            1,
            "the read stopped after position 9, having printed 9 events",
        );
        assert!(run.stderr().contains("not a complete batch"), "{run:?}");
        assert_eq!(positions(&run), (1..=9).collect::<Vec<_>>(), "{command}");
    }
    // Reading changed nothing on disk.
    assert_eq!(std::fs::metadata(&last).unwrap().len(), len - 7);

    let salvage = strata.run(&["export", "--salvage"], "");
    salvage.assert_success();
    assert_eq!(positions(&salvage), (1..=9).collect::<Vec<_>>());
    let stderr = salvage.stderr();
    assert!(stderr.contains("bytes after position 9"), "{salvage:?}");
    assert!(
        stderr.contains("salvaged 9 events; skipped 0 unreadable events and a damaged last batch"),
        "{salvage:?}"
    );
}

#[test]
fn a_damaged_event_in_a_sealed_segment_stops_the_read_at_its_position() {
    let strata = store(200, 8 * 1024);
    assert!(
        segments(&strata.data_dir()).len() > 3,
        "the store should roll segments"
    );
    let damaged = flip_payload_of(&strata.data_dir(), 20);
    assert_ne!(Some(&damaged), segments(&strata.data_dir()).last());

    for command in ["export", "read-all"] {
        let run = strata.run(&[command], "");
        run.assert_failure(
            1,
            "the read stopped at position 21, which cannot be read, after 20 events",
        );
        assert_eq!(positions(&run), (1..=20).collect::<Vec<_>>(), "{command}");
    }

    // Position 21 is version 11 of a-1.
    let read = strata.run(&["read", "a-1"], "");
    read.assert_failure(
        1,
        "the read of stream a-1 stopped at version 11, which cannot be read, after 10 events",
    );
    assert_eq!(read.json_lines().len(), 10);
    let backward = strata.run(&["read", "a-1", "--backward"], "");
    backward.assert_failure(
        1,
        "stopped at version 11, which cannot be read, after 89 events",
    );

    let salvage = strata.run(&["export", "--salvage"], "");
    salvage.assert_success();
    let expected: Vec<u64> = (1..=200).filter(|&p| p != 21).collect();
    assert_eq!(positions(&salvage), expected);
    let stderr = salvage.stderr();
    assert!(stderr.contains("skipped position 21: "), "{salvage:?}");
    assert!(
        stderr.contains("salvaged 199 events; skipped 1 unreadable events\n"),
        "{salvage:?}"
    );

    // What was salvaged imports into a new store.
    let target = Strata::new();
    target.run(&["import"], &salvage.stdout()).assert_failure(
        1,
        "stream a-1 holds 10 events, so version 12 cannot follow on",
    );
}

#[test]
fn an_intact_store_exports_without_a_word_on_stderr() {
    let strata = store(30, 8 * 1024);
    let run = strata.run(&["export", "--salvage"], "");
    run.assert_success();
    assert_eq!(run.stderr(), "");
    assert_eq!(positions(&run), (1..=30).collect::<Vec<_>>());
}
