//! Fuzzes the segment scanner and the batch and record decoder: a segment file's bytes,
//! scanned in each of the three tail modes as opening, following and verifying a store
//! would, with every valid batch indexed and every event decoded.
//!
//! Input: one flag byte, then the segment file. Flag bit 0 set: the batch and record
//! checksums are rewritten first, so mutations reach the checks behind them.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_store_embedded::fuzzing::{Tail, scan, seal_segment};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, segment)) = data.split_first() else {
        return;
    };
    let mut segment = segment.to_vec();
    if flags & 1 == 1 {
        seal_segment(&mut segment);
    }
    let sealed = scan(&segment, Tail::Sealed);
    let last = scan(&segment, Tail::Last);
    let following = scan(&segment, Tail::Following);
    if let Ok(sealed) = &sealed {
        // Nothing invalid anywhere: every mode reads the same whole segment.
        assert_eq!(sealed.torn_at, None);
        assert_eq!(last.as_ref().ok(), Some(sealed));
        assert_eq!(following.as_ref().ok(), Some(sealed));
    }
    if let Ok(last) = &last {
        // A torn tail is cut exactly where the valid batches end.
        if let Some(torn_at) = last.torn_at {
            assert_eq!(torn_at, last.end);
        }
        // What opening accepts, a follower reads the same way.
        let following = following
            .as_ref()
            .expect("a follower refuses what opening accepts");
        assert_eq!((following.events, following.end), (last.events, last.end));
    }
});
