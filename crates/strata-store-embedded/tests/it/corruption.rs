//! Damaged bytes on disk: corruption anywhere but a torn last batch is refused with an
//! error naming the file and offset, and listed by `verify`; a torn last batch that the
//! high-water mark does not cover (never acknowledged) is cut; a bad index file is rebuilt
//! by rescanning its segment.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use strata_core::{EventId, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName};
use strata_store::{Direction, EventStore, ReadFilter, StoreError};
use strata_store_embedded::{EmbeddedStore, VerifyReport, verify};

use crate::basics::{event, small_segments};

/// Bytes before a segment's first batch.
const SEGMENT_HEADER: u64 = 16;
/// Bytes of a batch header.
const BATCH_HEADER: u64 = 32;
/// Bytes of a record frame before its payload (length and checksum).
const RECORD_FRAME: u64 = 8;

/// A store of several segments, each append its own batch; the last append holds three
/// events. Closed, so its files can be damaged.
struct Fixture {
    dir: tempfile::TempDir,
    /// Every appended event, in position order.
    events: Vec<(StreamName, EventId)>,
    /// How many events the last append wrote.
    last_append: usize,
    /// The high-water mark file as it stood before the last append.
    mark_before_last: Vec<u8>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
        let mut events = Vec::new();
        rt.block_on(async {
            for i in 0..60u64 {
                let stream = StreamName::new(format!("acct-{}", i % 4)).unwrap();
                let e = padded("Deposited", i);
                events.push((stream.clone(), e.id));
                store
                    .append(&stream, ExpectedVersion::Any, vec![e])
                    .await
                    .unwrap();
            }
        });
        drop(store);
        let mark_before_last = std::fs::read(dir.path().join("HIGH-WATER")).unwrap();
        let store = EmbeddedStore::open(dir.path(), small_segments()).unwrap();
        rt.block_on(async {
            let stream = StreamName::new("acct-last").unwrap();
            let last: Vec<NewEvent> = (0..3).map(|i| padded("Closed", i)).collect();
            events.extend(last.iter().map(|e| (stream.clone(), e.id)));
            store
                .append(&stream, ExpectedVersion::NoStream, last)
                .await
                .unwrap();
            store.close().await.unwrap();
        });
        let fixture = Self {
            dir,
            events,
            last_append: 3,
            mark_before_last,
        };
        assert!(fixture.segments().len() >= 3, "{:?}", fixture.segments());
        fixture
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Puts back the high-water mark as a crash right after the last append would have
    /// left it: written before that append, so the append's batch is not known to have
    /// been acknowledged.
    fn crash_before_the_mark_covered_the_last_append(&self) {
        std::fs::write(self.path().join("HIGH-WATER"), &self.mark_before_last).unwrap();
    }

    /// The segment files, oldest first.
    fn segments(&self) -> Vec<PathBuf> {
        files_with_extension(self.path(), "seg")
    }

    fn first_segment(&self) -> PathBuf {
        self.segments()[0].clone()
    }

    fn last_segment(&self) -> PathBuf {
        self.segments().last().unwrap().clone()
    }

    /// Opens the store and reads every event.
    fn open_and_read_all(&self) -> (EmbeddedStore, Vec<RecordedEvent>) {
        let store = EmbeddedStore::open(self.path(), small_segments()).expect("the store opens");
        let page = store
            .read_all_sync(Position(1), 10_000, &ReadFilter::all())
            .unwrap();
        (store, page.events)
    }

    /// Checks that the first `count` events are exactly the fixture's.
    fn assert_intact(&self, events: &[RecordedEvent], count: usize) {
        assert_eq!(events.len(), count);
        for (i, (event, (stream, id))) in events.iter().zip(&self.events).enumerate() {
            assert_eq!(event.position, Position(i as u64 + 1));
            assert_eq!(&event.stream, stream);
            assert_eq!(&event.id, id);
        }
    }
}

fn padded(kind: &str, n: u64) -> NewEvent {
    let e = event(kind, n);
    let data = serde_json::json!({ "n": n, "pad": "p".repeat(150) });
    NewEvent::json(e.event_type, &data)
}

fn files_with_extension(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    files
}

fn read_at(path: &Path, offset: u64, len: usize) -> Vec<u8> {
    let file = std::fs::File::open(path).unwrap();
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset).unwrap();
    buf
}

fn write_at(path: &Path, offset: u64, bytes: &[u8]) {
    let file = OpenOptions::new().write(true).open(path).unwrap();
    file.write_all_at(bytes, offset).unwrap();
}

/// Inverts the byte at `offset`.
fn flip(path: &Path, offset: u64) {
    let byte = read_at(path, offset, 1)[0];
    write_at(path, offset, &[!byte]);
}

fn u32_at(path: &Path, offset: u64) -> u64 {
    u64::from(u32::from_le_bytes(
        read_at(path, offset, 4).try_into().unwrap(),
    ))
}

/// Offsets of the batches of a segment, walking their headers.
fn batch_offsets(path: &Path) -> Vec<u64> {
    let len = std::fs::metadata(path).unwrap().len();
    let mut offsets = Vec::new();
    let mut at = SEGMENT_HEADER;
    while at < len {
        offsets.push(at);
        at += BATCH_HEADER + u32_at(path, at + 12);
    }
    assert_eq!(at, len, "batches fill {}", path.display());
    offsets
}

fn index_of(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// Asserts that `result` is a corruption error naming `file` and `offset`.
fn assert_corrupt<T>(result: Result<T, StoreError>, file: &Path, offset: u64) {
    match result {
        Err(StoreError::Corrupt {
            file: f, offset: o, ..
        }) => assert_eq!((f.as_path(), o), (file, offset)),
        Err(other) => panic!(
            "expected corruption in {} at {offset}, got {other}",
            file.display()
        ),
        Ok(_) => panic!(
            "expected corruption in {} at {offset}, got Ok",
            file.display()
        ),
    }
}

/// Asserts that `verify` lists exactly one problem, naming `file` and `offset`.
fn assert_one_problem(report: &VerifyReport, file: &Path, offset: u64) {
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    let problem = &report.problems[0];
    assert_eq!(
        (problem.file.as_path(), problem.offset),
        (file, offset),
        "{problem:?}"
    );
    assert!(!report.is_intact());
}

#[test]
fn the_fixture_is_intact() {
    let fixture = Fixture::new();
    let report = verify(fixture.path()).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert!(report.torn_tail.is_none());
    assert_eq!(report.events, fixture.events.len() as u64);
    assert_eq!(report.segments, fixture.segments().len());
    assert_eq!(report.index_files, fixture.segments().len() - 1);
    let (_store, events) = fixture.open_and_read_all();
    fixture.assert_intact(&events, fixture.events.len());
}

#[test]
fn a_flipped_payload_byte_in_a_sealed_segment_is_named_by_file_and_offset() {
    let fixture = Fixture::new();
    let segment = fixture.first_segment();
    // The first record: after the segment header and the first batch header.
    let record = SEGMENT_HEADER + BATCH_HEADER;
    flip(&segment, record + RECORD_FRAME + 50);

    assert_one_problem(&verify(fixture.path()).unwrap(), &segment, record);

    // The sealed segment's index file spares opening a rescan, so the damage is found
    // when the event is read.
    let store = EmbeddedStore::open(fixture.path(), small_segments()).unwrap();
    let stream = &fixture.events[0].0;
    assert_corrupt(
        store.read_stream_sync(stream, None, Direction::Forward, 10),
        &segment,
        record,
    );
    assert_corrupt(
        store.read_all_sync(Position(1), 10, &ReadFilter::all()),
        &segment,
        record,
    );
    // Events elsewhere still read.
    let page = store
        .read_all_sync(Position(2), 10_000, &ReadFilter::all())
        .unwrap();
    assert_eq!(page.events.len(), fixture.events.len() - 1);
    drop(store);

    // Without the index file, opening scans the segment and refuses.
    std::fs::remove_file(index_of(&segment)).unwrap();
    assert_corrupt(
        EmbeddedStore::open(fixture.path(), small_segments()),
        &segment,
        record,
    );
}

#[test]
fn a_flipped_batch_header_byte_in_a_sealed_segment_is_named_by_file_and_offset() {
    let fixture = Fixture::new();
    let segment = fixture.first_segment();
    let second_batch = batch_offsets(&segment)[1];
    // The batch's record count.
    flip(&segment, second_batch + 8);

    assert_one_problem(&verify(fixture.path()).unwrap(), &segment, second_batch);
    std::fs::remove_file(index_of(&segment)).unwrap();
    let err = EmbeddedStore::open(fixture.path(), small_segments())
        .err()
        .expect("opening must fail");
    let text = err.to_string();
    assert!(text.contains("checksum"), "{text}");
    assert!(text.contains(&segment.display().to_string()), "{text}");
    assert!(text.contains(&format!("offset {second_batch}")), "{text}");
    assert_corrupt(Err::<(), _>(err), &segment, second_batch);
}

#[test]
fn a_flipped_byte_inside_the_last_segment_refuses_to_open() {
    let fixture = Fixture::new();
    let segment = fixture.last_segment();
    let batches = batch_offsets(&segment);
    assert!(batches.len() >= 3, "{batches:?}");
    // A record in the middle of the last segment, not in its final batch.
    let record = batches[1] + BATCH_HEADER;
    flip(&segment, record + RECORD_FRAME + 20);

    assert_one_problem(&verify(fixture.path()).unwrap(), &segment, record);
    assert_corrupt(
        EmbeddedStore::open(fixture.path(), small_segments()),
        &segment,
        record,
    );
    // Nothing was repaired or cut.
    assert_one_problem(&verify(fixture.path()).unwrap(), &segment, record);
}

#[test]
fn a_flipped_byte_in_the_final_batch_is_corruption_not_a_torn_tail() {
    // A complete batch with a wrong byte was written whole and may have been
    // acknowledged: cutting it would lose acknowledged events.
    let fixture = Fixture::new();
    let segment = fixture.last_segment();
    let last = *batch_offsets(&segment).last().unwrap();
    let record = last + BATCH_HEADER;
    flip(&segment, record + RECORD_FRAME + 30);

    let report = verify(fixture.path()).unwrap();
    assert_one_problem(&report, &segment, record);
    assert!(report.torn_tail.is_none());
    assert_corrupt(
        EmbeddedStore::open(fixture.path(), small_segments()),
        &segment,
        record,
    );
}

/// Checks a store whose final batch was cut: verify reports the torn tail without a
/// problem, opening cuts it, the earlier events are intact and the cut append is gone
/// whole, and the store appends after them.
fn assert_torn_final_batch_is_cut(fixture: &Fixture, segment: &Path, batch: u64, file_len: u64) {
    fixture.crash_before_the_mark_covered_the_last_append();
    let before = verify(fixture.path()).unwrap();
    assert!(before.is_intact(), "{:?}", before.problems);
    let torn = before.torn_tail.expect("verify reports the torn tail");
    assert_eq!((torn.file.as_path(), torn.offset), (segment, batch));

    let (store, events) = fixture.open_and_read_all();
    let torn = store
        .open_report()
        .torn_tail
        .expect("open reports the torn tail");
    assert_eq!((torn.file.as_path(), torn.offset), (segment, batch));
    assert_eq!(torn.bytes, file_len - batch);
    assert_eq!(std::fs::metadata(segment).unwrap().len(), batch);
    let kept = fixture.events.len() - fixture.last_append;
    fixture.assert_intact(&events, kept);
    let cut_stream = StreamName::new("acct-last").unwrap();
    let cut = store
        .read_stream_sync(&cut_stream, None, Direction::Forward, 10)
        .unwrap();
    assert!(
        cut.is_empty(),
        "no event of the cut append is visible: {cut:?}"
    );

    let result = store
        .append_blocking(
            &cut_stream,
            ExpectedVersion::NoStream,
            vec![event("Reopened", 0)],
        )
        .unwrap();
    assert_eq!(result.position, Position(kept as u64 + 1));
    drop(store);
    let after = verify(fixture.path()).unwrap();
    assert!(after.is_intact() && after.torn_tail.is_none(), "{after:?}");
}

#[test]
fn a_final_batch_cut_short_is_a_torn_tail() {
    let fixture = Fixture::new();
    let segment = fixture.last_segment();
    let batch = *batch_offsets(&segment).last().unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(len - 5).unwrap();
    assert_torn_final_batch_is_cut(&fixture, &segment, batch, len - 5);
}

#[test]
fn a_final_batch_cut_inside_its_header_is_a_torn_tail() {
    let fixture = Fixture::new();
    let segment = fixture.last_segment();
    let batch = *batch_offsets(&segment).last().unwrap();
    let file = OpenOptions::new().write(true).open(&segment).unwrap();
    file.set_len(batch + 20).unwrap();
    assert_torn_final_batch_is_cut(&fixture, &segment, batch, batch + 20);
}

#[test]
fn a_final_batch_whose_records_never_reached_the_disk_is_a_torn_tail() {
    // The file grew but the batch's records read as zeros.
    let fixture = Fixture::new();
    let segment = fixture.last_segment();
    let batch = *batch_offsets(&segment).last().unwrap();
    let len = std::fs::metadata(&segment).unwrap().len();
    let body = batch + BATCH_HEADER;
    write_at(&segment, body, &vec![0u8; (len - body) as usize]);
    assert_torn_final_batch_is_cut(&fixture, &segment, batch, len);
}

#[test]
fn zeros_after_the_last_batch_are_a_torn_tail() {
    let fixture = Fixture::new();
    let segment = fixture.last_segment();
    let len = std::fs::metadata(&segment).unwrap().len();
    write_at(&segment, len, &[0u8; 100]);

    let before = verify(fixture.path()).unwrap();
    assert!(before.is_intact(), "{:?}", before.problems);
    let torn = before.torn_tail.expect("verify reports the torn tail");
    assert_eq!((torn.file.as_path(), torn.offset), (segment.as_path(), len));

    let (store, events) = fixture.open_and_read_all();
    let torn = store
        .open_report()
        .torn_tail
        .expect("open reports the torn tail");
    assert_eq!(
        (torn.file.as_path(), torn.offset, torn.bytes),
        (segment.as_path(), len, 100)
    );
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), len);
    fixture.assert_intact(&events, fixture.events.len());
}

#[test]
fn garbage_past_the_high_water_mark_is_an_unacknowledged_tail() {
    // A crash may keep any part of writes that were not synced, in any order: past the
    // mark nothing was acknowledged, so whatever follows the last valid batch is cut.
    let fixture = Fixture::new();
    let segment = fixture.last_segment();
    let len = std::fs::metadata(&segment).unwrap().len();
    write_at(&segment, len, &[0xAB; 40]);
    let report = verify(fixture.path()).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.torn_tail.map(|t| t.offset), Some(len));
    let (store, events) = fixture.open_and_read_all();
    assert_eq!(store.open_report().torn_tail.map(|t| t.bytes), Some(40));
    assert_eq!(std::fs::metadata(&segment).unwrap().len(), len);
    fixture.assert_intact(&events, fixture.events.len());
}

#[test]
fn without_a_high_water_mark_garbage_after_the_last_batch_is_corruption() {
    // Bytes that are neither a batch nor zeros were not left by an interrupted append as
    // far as a store that cannot tell what it acknowledged knows.
    let fixture = Fixture::new();
    std::fs::remove_file(fixture.path().join("HIGH-WATER")).unwrap();
    let segment = fixture.last_segment();
    let len = std::fs::metadata(&segment).unwrap().len();
    write_at(&segment, len, &[0xAB; 40]);
    assert_one_problem(&verify(fixture.path()).unwrap(), &segment, len);
    assert_corrupt(
        EmbeddedStore::open(fixture.path(), small_segments()),
        &segment,
        len,
    );
}

#[test]
fn a_damaged_index_file_is_reported_and_rebuilt() {
    let fixture = Fixture::new();
    let idx = index_of(&fixture.first_segment());
    let len = std::fs::metadata(&idx).unwrap().len();
    flip(&idx, len / 2);

    let report = verify(fixture.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].file, idx);

    let (store, events) = fixture.open_and_read_all();
    fixture.assert_intact(&events, fixture.events.len());
    drop(store);
    // Opening rescanned the segment and wrote a good index file.
    assert!(verify(fixture.path()).unwrap().is_intact());
}

#[test]
fn a_stale_index_file_is_reported_and_rebuilt() {
    let fixture = Fixture::new();
    let segments = fixture.segments();
    // The first segment's index file replaced by the second's: it describes other
    // positions and another length.
    let idx = index_of(&segments[0]);
    std::fs::copy(index_of(&segments[1]), &idx).unwrap();

    let report = verify(fixture.path()).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert_eq!(report.problems[0].file, idx);

    let (store, events) = fixture.open_and_read_all();
    fixture.assert_intact(&events, fixture.events.len());
    // Streams read through the rebuilt index, idempotency included.
    let (stream, id) = &fixture.events[0];
    let first = store
        .read_stream_sync(stream, None, Direction::Forward, 1)
        .unwrap();
    assert_eq!(&first[0].id, id);
    drop(store);
    assert!(verify(fixture.path()).unwrap().is_intact());
}

#[test]
fn a_missing_index_file_is_rebuilt() {
    let fixture = Fixture::new();
    let idx = index_of(&fixture.first_segment());
    std::fs::remove_file(&idx).unwrap();
    // A missing index file is not damage: writing it is best effort.
    let report = verify(fixture.path()).unwrap();
    assert!(report.is_intact(), "{:?}", report.problems);
    assert_eq!(report.index_files, fixture.segments().len() - 2);

    let (store, events) = fixture.open_and_read_all();
    fixture.assert_intact(&events, fixture.events.len());
    drop(store);
    assert!(idx.exists(), "opening writes the missing index file");
    assert_eq!(
        verify(fixture.path()).unwrap().index_files,
        fixture.segments().len() - 1
    );
}

#[test]
fn a_foreign_file_with_a_bad_segment_header_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("{:020}.seg", 1));
    std::fs::write(&path, b"this is not a strata segment, it is a letter\n").unwrap();
    let err = EmbeddedStore::open(dir.path(), small_segments())
        .err()
        .expect("opening must fail");
    assert!(err.to_string().contains("not a strata segment"), "{err}");
    assert_corrupt(Err::<(), _>(err), &path, 0);
    assert_one_problem(&verify(dir.path()).unwrap(), &path, 0);
}

#[test]
fn a_sealed_segment_with_a_damaged_header_refuses_to_open() {
    let fixture = Fixture::new();
    let segment = fixture.first_segment();
    flip(&segment, 2);
    assert_corrupt(
        EmbeddedStore::open(fixture.path(), small_segments()),
        &segment,
        0,
    );
    assert_one_problem(&verify(fixture.path()).unwrap(), &segment, 0);
}

#[test]
fn a_segment_header_that_disagrees_with_its_file_name_refuses_to_open() {
    let fixture = Fixture::new();
    let segment = fixture.segments()[1].clone();
    // The first position stored in the header.
    flip(&segment, 8);
    assert_corrupt(
        EmbeddedStore::open(fixture.path(), small_segments()),
        &segment,
        8,
    );
    assert_one_problem(&verify(fixture.path()).unwrap(), &segment, 0);
}

#[test]
fn verify_lists_damage_in_every_segment_not_only_the_first() {
    // Damage in one segment hides the events after it; the segments after it are still
    // checked on their own, without a follow-on problem for each.
    let fixture = Fixture::new();
    let segments = fixture.segments();
    let first = &segments[0];
    let first_damage = batch_offsets(first)[2];
    flip(first, first_damage + 10);
    let third = &segments[2];
    let third_damage = batch_offsets(third)[3] + BATCH_HEADER;
    flip(third, third_damage + RECORD_FRAME + 60);

    let report = verify(fixture.path()).unwrap();
    let found: Vec<(&Path, u64)> = report
        .problems
        .iter()
        .map(|p| (p.file.as_path(), p.offset))
        .collect();
    assert_eq!(
        found,
        vec![
            (first.as_path(), first_damage),
            (third.as_path(), third_damage)
        ],
        "{:?}",
        report.problems
    );
}
