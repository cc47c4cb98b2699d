//! The message every broker carries: a versioned JSON envelope of one event. It owns the
//! wire form and its version number; it must not depend on which broker carries it.
//!
//! Format 1 is the event's JSON line (the form `strata read` and `strata export` print)
//! with a `format` field first:
//!
//! ```json
//! {"format":1,"position":42,"stream":"order-7","version":3,"id":"0190…","type":"OrderPlaced",
//!  "data":{…},"metadata":{…},"recorded_at":"2026-11-30T06:00:00.123456Z"}
//! ```
//!
//! `data` and `metadata` are embedded as JSON when they are JSON, and as a JSON string
//! otherwise. A new field may be added within a format; a change to the meaning or shape
//! of an existing field gets a new `format` number.

use strata_core::RecordedEvent;

/// The version of the envelope this build writes.
pub const ENVELOPE_FORMAT: u32 = 1;

/// The envelope of `event`: one line of JSON, without a trailing newline.
pub fn envelope(event: &RecordedEvent) -> Vec<u8> {
    let mut line = Vec::with_capacity(256 + event.data.len() + event.metadata.len());
    event.write_json_line(&mut line);
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    let head = format!("{{\"format\":{ENVELOPE_FORMAT},");
    let mut out = Vec::with_capacity(head.len() + line.len());
    out.extend_from_slice(head.as_bytes());
    // NOTE: the JSON line is an object with at least `position` in it, so it starts with
    // `{` followed by a field; the format field goes in front of that field.
    match line.split_first() {
        Some((b'{', rest)) => out.extend_from_slice(rest),
        // Unreachable for a serialized event; keep the output valid JSON regardless.
        _ => {
            out.truncate(head.len() - 1);
            out.push(b'}');
        }
    }
    out
}
