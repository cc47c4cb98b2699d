use super::*;
use crate::io::RealFs;

#[test]
fn a_mark_round_trips_with_its_gaps() {
    let mark = Mark {
        high_water: 1234,
        gaps: vec![(10, 12), (900, 1000)],
    };
    assert_eq!(decode(&encode(&mark)), Ok(mark));
    assert_eq!(decode(&encode(&Mark::default())), Ok(Mark::default()));
}

#[test]
fn every_flipped_byte_is_refused() {
    let bytes = encode(&Mark {
        high_water: 77,
        gaps: vec![(3, 4)],
    });
    for i in 0..bytes.len() {
        let mut damaged = bytes.clone();
        damaged[i] ^= 0x40;
        assert!(decode(&damaged).is_err(), "byte {i}");
    }
    for len in 0..bytes.len() {
        assert!(decode(&bytes[..len]).is_err(), "cut to {len}");
    }
}

#[test]
fn writing_replaces_the_file_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(read_mark(&RealFs, dir.path()), Ok(None));
    for high_water in [5, 9] {
        let mark = Mark {
            high_water,
            gaps: Vec::new(),
        };
        write_mark(&RealFs, dir.path(), &mark).unwrap();
        assert_eq!(read_mark(&RealFs, dir.path()), Ok(Some(mark)));
    }
    assert!(!dir.path().join(MARK_TMP).exists());
}
