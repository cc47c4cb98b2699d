//! Unit tests of the scanner against segments whose checksums hold but whose contents
//! cannot be: each was found by the `segment` fuzz target.

use std::io::Write as _;

use strata_store::StoreError;

use super::{TailMode, scan_segment};
use crate::format::{RecordParts, begin_batch, encode_record, finish_batch, segment_header};

/// A segment starting at `first_position` holding one batch of `records` events, its
/// header claiming `count`.
fn segment(first_position: u64, records: u64, count: u32) -> Vec<u8> {
    let mut buf = segment_header(first_position).to_vec();
    let start = begin_batch(&mut buf);
    for version in 1..=records {
        encode_record(
            &mut buf,
            &RecordParts {
                stream: "order-1",
                event_type: "Placed",
                version,
                recorded_at: 42,
                id: &[7u8; 16],
                metadata: b"{}",
                data: b"{}",
            },
        );
    }
    finish_batch(&mut buf, start, count, first_position);
    buf
}

fn scan(bytes: &[u8], mode: TailMode) -> Result<u64, StoreError> {
    let mut file = tempfile::tempfile().unwrap();
    file.write_all(bytes).unwrap();
    let first = crate::format::parse_segment_header(bytes).unwrap();
    let mut events = 0;
    scan_segment(
        std::path::Path::new("x.seg"),
        &file,
        0,
        first,
        mode,
        |records| {
            events += records.len() as u64;
            Ok(())
        },
    )
    .map(|_| events)
}

#[test]
fn a_batch_past_the_last_position_is_corrupt() {
    for (first, records) in [(u64::MAX, 1), (u64::MAX - 1, 2)] {
        for mode in [
            TailMode::Sealed,
            TailMode::Last { acknowledged: None },
            TailMode::Last {
                acknowledged: Some(0),
            },
            TailMode::Following,
        ] {
            let found = scan(&segment(first, records, records as u32), mode);
            assert!(
                matches!(&found, Err(StoreError::Corrupt { reason, .. }) if reason.contains("runs past the last position")),
                "{mode:?} from {first}: {found:?}"
            );
        }
    }
    // The last position that fits is still a position.
    assert_eq!(
        scan(&segment(u64::MAX - 2, 2, 2), TailMode::Sealed).unwrap(),
        2
    );
}

#[test]
fn a_batch_claiming_more_events_than_its_bytes_hold_is_corrupt() {
    // Not an impossible allocation: the claim is bounded by the bytes there are.
    let found = scan(&segment(1, 1, u32::MAX), TailMode::Sealed);
    assert!(
        matches!(&found, Err(StoreError::Corrupt { .. })),
        "{found:?}"
    );
}
