//! The high-water mark: acknowledged events cut from the log behind the store's back are
//! told from a torn batch that was never acknowledged; opening refuses over them unless the
//! loss is accepted, and positions are never given out twice.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use strata_core::{EventId, ExpectedVersion, Position, StreamName};
use strata_store::{EventStore, ReadFilter, StoreError};
use strata_store_embedded::{EmbeddedStore, LostData, Options, verify};

use crate::basics::{event, small_segments};

/// The mark's file name in the data directory.
const MARK_FILE: &str = "HIGH-WATER";

fn accepting() -> Options {
    Options {
        lost_data: LostData::Accept,
        ..small_segments()
    }
}

/// Appends `count` single-event appends to `acct-{i % 3}` and returns their ids.
fn append(store: &EmbeddedStore, from: u64, count: u64) -> Vec<EventId> {
    (from..from + count)
        .map(|i| {
            let stream = StreamName::new(format!("acct-{}", i % 3)).unwrap();
            let e = event("Deposited", i);
            let id = e.id;
            let result = store
                .append_blocking(&stream, ExpectedVersion::Any, vec![e])
                .unwrap();
            assert_eq!(result.position, Position(i + 1));
            id
        })
        .collect()
}

fn last_segment(dir: &Path) -> PathBuf {
    let mut segments: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    segments.pop().unwrap()
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

/// `truncate -s -n`.
fn cut(path: &Path, n: u64) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.set_len(len(path) - n).unwrap();
}

/// The offset of the last batch of a segment, walking the batch headers.
fn last_batch(path: &Path) -> u64 {
    let file = std::fs::File::open(path).unwrap();
    let end = len(path);
    let (mut at, mut last) = (16u64, 16u64);
    while at < end {
        let mut body = [0u8; 4];
        file.read_exact_at(&mut body, at + 12).unwrap();
        last = at;
        at += 32 + u64::from(u32::from_le_bytes(body));
    }
    last
}

fn all_ids(store: &EmbeddedStore) -> Vec<(Position, EventId)> {
    store
        .read_all_sync(Position(1), 10_000, &ReadFilter::all())
        .unwrap()
        .events
        .into_iter()
        .map(|e| (e.position, e.id))
        .collect()
}

/// A store of 20 events closed cleanly, then its last 7 bytes cut: the last append was
/// acknowledged, so this is lost data, never a torn tail.
fn cut_after_clean_stop() -> (tempfile::TempDir, Vec<EventId>, PathBuf, u64) {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let ids = append(&store, 0, 20);
    drop(store);
    let segment = last_segment(dir.path());
    let batch = last_batch(&segment);
    cut(&segment, 7);
    (dir, ids, segment, batch)
}

#[test]
fn a_cut_acknowledged_batch_refuses_to_open_and_verify_says_so() {
    let (dir, _, segment, batch) = cut_after_clean_stop();
    let cut_len = len(&segment);

    let report = verify(dir.path()).unwrap();
    assert!(!report.is_intact());
    assert!(report.torn_tail.is_none(), "{report:?}");
    assert_eq!(report.high_water, 20);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert_eq!(
        (problem.file.as_path(), problem.offset),
        (segment.as_path(), batch)
    );
    assert!(
        problem.message.contains("positions 20 to 20"),
        "{}",
        problem.message
    );

    let err = EmbeddedStore::open(dir.path(), small_segments())
        .err()
        .expect("opening over lost acknowledged events must fail");
    match &err {
        StoreError::Corrupt {
            file,
            offset,
            reason,
        } => {
            assert_eq!((file.as_path(), *offset), (segment.as_path(), batch));
            assert!(reason.contains("positions 20 to 20"), "{reason}");
            assert!(reason.contains("accept-data-loss"), "{reason}");
        }
        other => panic!("expected corruption, got {other}"),
    }
    assert_eq!(len(&segment), cut_len, "a refused open changes nothing");
    // A reader still reads what is there.
    let reader = EmbeddedStore::open_read_only(dir.path(), small_segments()).unwrap();
    assert_eq!(all_ids(&reader).len(), 19);
}

#[test]
fn an_accepted_loss_opens_and_never_reuses_a_position() {
    let (dir, ids, segment, batch) = cut_after_clean_stop();

    let store = EmbeddedStore::open(dir.path(), accepting()).unwrap();
    let report = store.open_report();
    assert_eq!(report.lost.len(), 1, "{report:?}");
    let lost = &report.lost[0];
    assert_eq!(
        (
            lost.file.as_path(),
            lost.offset,
            lost.first_position,
            lost.last_position
        ),
        (segment.as_path(), batch, 20, 20)
    );
    assert!(
        report.torn_tail.is_none(),
        "an acknowledged batch is not torn"
    );
    assert_eq!(report.events, 19);
    let kept: Vec<_> = (1..=19)
        .map(Position)
        .zip(ids[..19].iter().copied())
        .collect();
    assert_eq!(all_ids(&store), kept);

    let stream = StreamName::new("acct-9").unwrap();
    let fresh = store
        .append_blocking(&stream, ExpectedVersion::NoStream, vec![event("Opened", 0)])
        .unwrap();
    assert_eq!(
        fresh.position,
        Position(21),
        "position 20 is never given out again"
    );
    drop(store);

    // The accepted gap is recorded: a plain open and verify find nothing wrong.
    let report = verify(dir.path()).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.events, 20);
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let after = all_ids(&store);
    assert_eq!(after.len(), 20);
    assert_eq!(after[19].0, Position(21));
    let next = store
        .append_blocking(&stream, ExpectedVersion::Exact(1), vec![event("Used", 1)])
        .unwrap();
    assert_eq!(next.position, Position(22));
    drop(store);

    // A reader opened before the gap's segment is read follows across it.
    let reader = EmbeddedStore::open_read_only(dir.path(), small_segments()).unwrap();
    assert_eq!(all_ids(&reader).len(), 21);
}

#[test]
fn a_subscription_reads_across_an_accepted_gap() {
    use futures::StreamExt as _;
    let (dir, _, _, _) = cut_after_clean_stop();
    let store = EmbeddedStore::open(dir.path(), accepting()).unwrap();
    let stream = StreamName::new("acct-9").unwrap();
    store
        .append_blocking(&stream, ExpectedVersion::NoStream, vec![event("Opened", 0)])
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let positions: Vec<u64> = rt.block_on(async {
        let mut sub = store.subscribe(Position(0), ReadFilter::all());
        let mut seen = Vec::new();
        while seen.len() < 20 {
            let event = sub.next().await.unwrap().unwrap();
            seen.push(event.position.0);
        }
        seen
    });
    let expected: Vec<u64> = (1..=19).chain([21]).collect();
    assert_eq!(positions, expected);
}

#[test]
fn a_torn_batch_past_the_high_water_mark_is_still_cut_silently() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    append(&store, 0, 10);
    drop(store);
    // The mark as a crash would have left it: written before the next appends.
    let mark = std::fs::read(dir.path().join(MARK_FILE)).unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    append(&store, 10, 5);
    drop(store);
    std::fs::write(dir.path().join(MARK_FILE), mark).unwrap();
    let segment = last_segment(dir.path());
    let batch = last_batch(&segment);
    cut(&segment, 7);

    let report = verify(dir.path()).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.high_water, 10);
    assert_eq!(report.torn_tail.as_ref().map(|t| t.offset), Some(batch));

    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let report = store.open_report();
    assert!(report.lost.is_empty(), "{report:?}");
    assert_eq!(report.torn_tail.as_ref().map(|t| t.offset), Some(batch));
    assert_eq!(all_ids(&store).len(), 14);
    // Never acknowledged, so its position is free: the log continues without a gap.
    let next = append(&store, 14, 1);
    assert_eq!(next.len(), 1);
}

#[test]
fn a_damaged_high_water_file_refuses_to_open_until_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    let ids = append(&store, 0, 8);
    drop(store);
    let path = dir.path().join(MARK_FILE);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[9] ^= 0x01;
    std::fs::write(&path, bytes).unwrap();

    let report = verify(dir.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].file, path);

    match EmbeddedStore::open(dir.path(), small_segments()) {
        Err(StoreError::Corrupt { file, offset, .. }) => {
            assert_eq!((file, offset), (path.clone(), 0))
        }
        Err(other) => panic!("expected corruption of the mark, got {other}"),
        Ok(_) => panic!("expected corruption of the mark, got Ok"),
    }

    let store = EmbeddedStore::open(dir.path(), accepting()).unwrap();
    assert_eq!(all_ids(&store).len(), ids.len());
    drop(store);
    // Rebuilt from the log and brought up to date at the clean stop.
    let report = verify(dir.path()).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.high_water, 8);
    EmbeddedStore::open(dir.path(), small_segments()).unwrap();
}

#[test]
fn a_removed_last_segment_is_lost_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
    append(&store, 0, 60);
    drop(store);
    let segment = last_segment(dir.path());
    std::fs::remove_file(&segment).unwrap();
    let remaining = last_segment(dir.path());
    let first_lost = segment
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse::<u64>().ok())
        .unwrap();

    match EmbeddedStore::open(dir.path(), small_segments()) {
        Err(StoreError::Corrupt { file, reason, .. }) => {
            assert_eq!(file, remaining);
            assert!(
                reason.contains(&format!("positions {first_lost} to 60")),
                "{reason}"
            );
        }
        Err(other) => panic!("expected lost data, got {other}"),
        Ok(_) => panic!("expected lost data, got Ok"),
    }
    assert!(!verify(dir.path()).unwrap().is_intact());

    let store = EmbeddedStore::open(dir.path(), accepting()).unwrap();
    let stream = StreamName::new("acct-9").unwrap();
    let fresh = store
        .append_blocking(&stream, ExpectedVersion::NoStream, vec![event("Opened", 0)])
        .unwrap();
    assert_eq!(fresh.position, Position(61));
}

#[test]
fn a_reader_follows_the_writer_across_an_accepted_gap() {
    let (dir, _, _, _) = cut_after_clean_stop();
    let reader = EmbeddedStore::open_read_only(dir.path(), small_segments()).unwrap();
    assert_eq!(all_ids(&reader).len(), 19);
    let writer = EmbeddedStore::open(dir.path(), accepting()).unwrap();
    let stream = StreamName::new("acct-9").unwrap();
    writer
        .append_blocking(&stream, ExpectedVersion::NoStream, vec![event("Opened", 0)])
        .unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut head = reader.watch_head();
    rt.block_on(async {
        tokio::time::timeout(
            std::time::Duration::from_secs(30),
            head.wait_for(|p| p.0 >= 21),
        )
        .await
        .expect("the reader sees the new event")
        .unwrap();
    });
    let positions: Vec<u64> = all_ids(&reader).iter().map(|(p, _)| p.0).collect();
    assert_eq!(positions.last(), Some(&21));
    assert_eq!(positions.len(), 20);
}
