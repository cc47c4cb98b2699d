//! Fuzzes the decoders of the store's small files: a sealed segment's index file (`.idx`)
//! and the high-water mark (`HIGH-WATER`).
//!
//! Input: one flag byte, then the file's bytes, decoded as both kinds. Flag bit 0 set: the
//! trailing checksum is rewritten first, so mutations reach the checks behind it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use strata_store_embedded::fuzzing::{decode_index_file, decode_mark, seal_trailing_checksum};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, file)) = data.split_first() else {
        return;
    };
    let mut file = file.to_vec();
    if flags & 1 == 1 {
        seal_trailing_checksum(&mut file);
    }
    let _ = decode_index_file(&file);
    let _ = decode_mark(&file);
});
