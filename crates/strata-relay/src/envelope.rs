//! The message every broker carries: a versioned JSON envelope of one event. It owns the
//! wire form, its version number and its reading back ([`parse_envelope`]); it must not
//! depend on which broker carries it.
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

use std::io::Write as _;

use bytes::Bytes;
use serde_json::value::RawValue;
use strata_core::{EventId, EventType, Position, RecordedEvent, StreamName, Timestamp, Version};

use crate::RelayError;

/// The version of the envelope this build writes.
pub const ENVELOPE_FORMAT: u32 = 1;

/// The envelope of `event`: one line of JSON, without a trailing newline.
pub fn envelope(event: &RecordedEvent) -> Vec<u8> {
    let mut out = Vec::with_capacity(224 + event.data.len() + event.metadata.len());
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{{\"format\":{ENVELOPE_FORMAT}");
    let open = out.len();
    // NOTE: the event's JSON line is written right behind the format number, in the same
    // buffer; it is an object with at least `position` in it, so it starts with `{`
    // followed by a field, and that `{` becomes the comma after the format field.
    event.write_json_line(&mut out);
    if out.last() == Some(&b'\n') {
        out.pop();
    }
    let fields = out.len() > open + 2;
    match out.get_mut(open) {
        Some(brace @ b'{') if fields => *brace = b',',
        // Unreachable for a serialized event; keep the output valid JSON regardless.
        _ => {
            out.truncate(open);
            out.push(b'}');
        }
    }
    out
}

/// The event an envelope carries, as the relay read it from the log.
///
/// `data` and `metadata` come back as the JSON text the envelope embeds: exact for JSON
/// payloads (the usual case); a payload that was not JSON comes back as a JSON string.
/// Refuses an envelope of another format, or one that is not an event.
pub fn parse_envelope(bytes: &[u8]) -> Result<RecordedEvent, RelayError> {
    let invalid = |reason: String| RelayError::InvalidEnvelope(reason);
    let wire: Wire<'_> =
        serde_json::from_slice(bytes).map_err(|e| invalid(format!("not an envelope: {e}")))?;
    if wire.format != ENVELOPE_FORMAT {
        return Err(invalid(format!(
            "format {} (this build reads format {ENVELOPE_FORMAT})",
            wire.format
        )));
    }
    if wire.position == Position::ZERO || wire.version.0 == 0 {
        return Err(invalid("position and version start at 1".to_owned()));
    }
    let raw = |value: Option<&RawValue>, default: &'static [u8]| {
        value.map_or_else(
            || Bytes::from_static(default),
            |v| Bytes::copy_from_slice(v.get().as_bytes()),
        )
    };
    Ok(RecordedEvent {
        position: wire.position,
        stream: wire.stream,
        version: wire.version,
        id: wire.id,
        event_type: wire.event_type,
        data: raw(wire.data, b"null"),
        metadata: raw(wire.metadata, b"{}"),
        recorded_at: wire.recorded_at,
    })
}

/// The envelope's fields, as read.
#[derive(serde::Deserialize)]
struct Wire<'a> {
    format: u32,
    position: Position,
    stream: StreamName,
    version: Version,
    id: EventId,
    #[serde(rename = "type")]
    event_type: EventType,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    recorded_at: Timestamp,
}
