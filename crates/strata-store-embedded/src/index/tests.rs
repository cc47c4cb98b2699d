//! Unit tests of the index's ordered stream names (built on the first listing, they must
//! also hold the streams registered while they were being sorted, and stay up to date)
//! and of its index files.

use strata_core::StreamName;

use super::Index;

fn name(text: &str) -> StreamName {
    StreamName::new(text).unwrap()
}

/// Registers `stream` with one event at `position`, as publishing a batch does.
fn add(index: &mut Index, stream: &str, position: u64) {
    let id = index.intern(&name(stream));
    index.streams.push(id, position);
    index.head = position;
}

fn listed(index: &Index, prefix: &str, after: Option<&str>) -> Vec<(String, u64, u64)> {
    index
        .list(prefix, after, 100)
        .expect("the names are built")
        .into_iter()
        .map(|s| (s.stream.as_str().to_owned(), s.version.0, s.last_position.0))
        .collect()
}

#[test]
fn streams_registered_while_the_names_are_sorted_are_listed() {
    let mut index = Index::default();
    add(&mut index, "b-1", 1);
    add(&mut index, "d-1", 2);
    assert!(
        index.list("", None, 10).is_none(),
        "nothing is ordered before the first listing"
    );
    let names = index.names_to_sort();
    // Published between the copy and the install.
    add(&mut index, "a-1", 3);
    add(&mut index, "c-1", 4);
    add(&mut index, "b-1", 5);
    let spare = index.install_names(names.sorted_ids(), names.len());
    assert!(spare.is_none(), "the first install is kept");
    assert_eq!(
        listed(&index, "", None),
        [
            ("a-1".to_owned(), 1, 3),
            ("b-1".to_owned(), 2, 5),
            ("c-1".to_owned(), 1, 4),
            ("d-1".to_owned(), 1, 2),
        ]
    );
    // Once built, registering a stream keeps the order.
    add(&mut index, "bb-1", 6);
    assert_eq!(
        listed(&index, "b", Some("b-1")),
        [("bb-1".to_owned(), 1, 6)]
    );
    // A second install (a racing listing) is given back, and changes nothing.
    let spare = index.install_names(Vec::new(), 0);
    assert!(spare.is_some(), "a later install is given back");
    assert_eq!(listed(&index, "", None).len(), 5);
}

#[test]
fn a_stream_interned_without_an_event_is_not_listed() {
    let mut index = Index::default();
    let names = index.names_to_sort();
    assert!(
        index
            .install_names(names.sorted_ids(), names.len())
            .is_none()
    );
    // Opening interns a segment's stream table before it pushes the events.
    index.intern(&name("pending-1"));
    add(&mut index, "done-1", 1);
    assert_eq!(listed(&index, "", None), [("done-1".to_owned(), 1, 1)]);
}

/// An index file whose checksum holds but whose event count is absurd: found by the
/// `index_files` fuzz target (the table length `count * 24` overflowed, and a count that
/// wrapped to the table's real length asked for an impossible allocation).
#[test]
fn an_index_file_with_an_overflowing_event_count_is_refused() {
    for count in [u64::MAX, u64::MAX / 8, (1u64 << 61) + 1] {
        let mut file = Vec::new();
        file.extend_from_slice(b"STRATIX1");
        file.extend_from_slice(&1u64.to_le_bytes()); // first position
        file.extend_from_slice(&count.to_le_bytes());
        file.extend_from_slice(&4096u64.to_le_bytes()); // segment length
        file.extend_from_slice(&1u32.to_le_bytes()); // one stream
        file.push(3);
        file.extend_from_slice(b"a-1");
        // One event's worth of table.
        file.extend_from_slice(&0u32.to_le_bytes());
        file.extend_from_slice(&16u32.to_le_bytes());
        file.extend_from_slice(&[9u8; 16]);
        let crc = crc32c::crc32c(&file);
        file.extend_from_slice(&crc.to_le_bytes());
        assert_eq!(
            super::decode_index_file(file).err().as_deref(),
            Some("event table length does not match its count"),
            "count {count}"
        );
    }
}

#[test]
fn matching_slots_finds_every_match_in_blocks_and_the_remainder() {
    // 64-entry blocks and a remainder: matches at both ends of a block, in adjacent
    // entries, and in the last partial block.
    let mut fingerprints = vec![7_u16; 64 * 3 + 5];
    let matches = [0, 63, 64, 65, 127, 128 + 40, 64 * 3, 64 * 3 + 4];
    for &slot in &matches {
        fingerprints[slot] = 0xbeef;
    }
    let mut found = Vec::new();
    super::matching_slots(&fingerprints, 0xbeef, |slot| found.push(slot));
    assert_eq!(found, matches);
    let mut none = Vec::new();
    super::matching_slots(&fingerprints, 0xdead, |slot| none.push(slot));
    assert!(none.is_empty());
    super::matching_slots(&[], 7, |_| panic!("an empty array matches nothing"));
}

#[test]
fn the_writer_notes_only_a_run_that_follows_and_publishing_notes_past_a_gap() {
    let ids: Vec<[u8; 16]> = (1..=10u8).map(|i| [i; 16]).collect();
    let at = |from: u64, to: u64| {
        (from..=to)
            .map(|p| (&ids[p as usize - 1], p))
            .collect::<Vec<_>>()
    };
    let mut index = Index::default();
    // Positions 3 and 4 do not follow the last noted one (none): the writer leaves them.
    index.note_ids(at(3, 4));
    assert_eq!(index.ids_through, 0);
    assert!(!index.ids.may_contain(&ids[2]));
    index.note_ids(at(1, 2));
    assert_eq!(index.ids_through, 2);
    // Publishing skips what is noted and goes on past positions accepted as lost (5, 6).
    let mut published = at(1, 4);
    published.extend(at(7, 8));
    index.note_published(published);
    assert_eq!(index.ids_through, 8);
    for p in [1, 2, 3, 4, 7, 8] {
        assert!(index.ids.may_contain(&ids[p - 1]), "position {p}");
    }
    assert_eq!(index.ids.maybe_ranges(&ids[0]), [(1, 8)]);
}

#[test]
fn growing_ahead_keeps_the_contents_and_leaves_the_room_asked_for() {
    let mut v: Vec<u32> = vec![7, 8, 9];
    crate::room::grow_ahead(&mut v, 100);
    assert_eq!(v, [7, 8, 9]);
    assert!(v.capacity() >= 103, "capacity {}", v.capacity());

    // With room enough, nothing moves.
    let capacity = v.capacity();
    let before = v.as_ptr();
    let room = capacity - v.len();
    crate::room::grow_ahead(&mut v, room);
    assert_eq!((v.capacity(), v.as_ptr()), (capacity, before));

    // Short of room, it at least doubles, so pushes stay amortized O(1).
    v.resize(capacity - 1, 1);
    crate::room::grow_ahead(&mut v, 2);
    assert!(
        v.capacity() >= 2 * (capacity - 1),
        "capacity {}",
        v.capacity()
    );
    assert_eq!(v.len(), capacity - 1);
    assert_eq!(&v[..3], [7, 8, 9]);
}

#[test]
fn an_index_makes_room_in_its_active_segment_only() {
    let mut index = Index::default();
    assert!(index.has_room(1_000_000), "no segment, nothing to grow");
    index.segments.push(super::SegmentInfo {
        first_position: 1,
        path: std::sync::Arc::from(std::path::Path::new("0.seg")),
        file: std::sync::Arc::new(std::fs::File::open("/dev/null").unwrap()),
        offsets: vec![1, 2],
        fingerprints: vec![3, 4],
        len: 0,
    });
    assert!(!index.has_room(64));
    index.make_room(64);
    assert!(index.has_room(64));
    let segment = &index.segments[0];
    assert_eq!(
        (segment.offsets.as_slice(), segment.fingerprints.as_slice()),
        (&[1, 2][..], &[3, 4][..])
    );
}

#[test]
fn an_index_file_larger_than_its_write_chunks_reads_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("00000000000000000001.idx");
    let streams: [&[u8]; 3] = [b"order-1", b"product-x", b"order-2"];
    // Over 24 bytes each, far more than one chunk's worth, and not a multiple of it.
    let events: Vec<(u32, u32, [u8; 16])> = (0..25_003u32)
        .map(|i| (i % 3, 64 + i * 300, [(i % 251) as u8; 16]))
        .collect();
    super::write_index_file(
        &crate::io::RealFs,
        &path,
        7,
        123_456,
        &streams,
        events.iter().map(|(s, o, id)| (*s, *o, id)),
    )
    .unwrap();
    let read = super::read_index_file(&crate::io::RealFs, &path).unwrap();
    assert_eq!((read.first_position, read.segment_len), (7, 123_456));
    assert_eq!(read.streams().collect::<Vec<_>>(), streams);
    assert_eq!(
        read.events()
            .map(|(s, o, id)| (s, o, *id))
            .collect::<Vec<_>>(),
        events
    );
    assert_eq!(read.stream(streams.len() as u32), None);
    assert!(!path.with_extension("idx.tmp").exists());
}
