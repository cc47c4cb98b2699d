//! Fuzzes `strata import`'s block reader and parser: the input, cut into blocks of whole
//! lines as the reader thread cuts it, each line decoded as an export line, grouped into
//! appends and the blocks' groups put back in sequence
//! (`import::parse_for_fuzzing` checks what the importer relies on).
//!
//! strata-cli is a binary, so this target compiles its input modules itself.

#![no_main]
#![allow(dead_code, unused_imports)]

#[path = "../../crates/strata-cli/src/blocks.rs"]
mod blocks;
#[path = "../../crates/strata-cli/src/import.rs"]
mod import;
#[path = "../../crates/strata-cli/src/lines.rs"]
mod lines;
#[path = "../../crates/strata-cli/src/names.rs"]
mod names;
#[path = "../../crates/strata-cli/src/payload.rs"]
mod payload;

use libfuzzer_sys::fuzz_target;

/// Small limits, so that inputs of a few KiB reach the too-long and too-large refusals.
const MAX_LINE: usize = 2048;
const MAX_EVENT: usize = 512;

fuzz_target!(|data: &[u8]| {
    let (events, stopped) = import::parse_for_fuzzing(data, MAX_LINE, MAX_EVENT);
    let lines = data.split(|&b| b == b'\n').count() as u64;
    assert!(events <= lines, "{events} events from {lines} lines");
    if let Some(line) = stopped {
        assert!(
            (1..=lines).contains(&line),
            "stopped at line {line} of {lines}"
        );
    }
});
