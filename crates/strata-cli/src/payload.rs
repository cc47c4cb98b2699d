//! Event payloads taken from an input line: `data` and `metadata` are kept as the exact
//! bytes written, as slices of the line's one buffer, never parsed into values and
//! written out again.

use bytes::Bytes;
use serde_json::value::RawValue;
use strata_core::{CoreError, EMPTY_METADATA, NewEvent};

/// The bytes of `part`, a JSON value borrowed from `line`, sharing `line`'s buffer.
pub(crate) fn part(line: &Bytes, part: &RawValue) -> Bytes {
    let text = part.get().as_bytes();
    let start = (text.as_ptr() as usize).wrapping_sub(line.as_ptr() as usize);
    match start.checked_add(text.len()) {
        Some(end) if end <= line.len() => line.slice(start..end),
        // Not from this line after all: a copy is as good, only slower.
        _ => Bytes::copy_from_slice(text),
    }
}

/// The metadata's bytes as written, `{}` when absent or null; anything but a JSON
/// object is refused.
pub(crate) fn metadata(line: &Bytes, metadata: Option<&RawValue>) -> Result<Bytes, CoreError> {
    match metadata {
        None => Ok(Bytes::from_static(EMPTY_METADATA)),
        Some(raw) => match raw.get().as_bytes().first() {
            Some(b'{') => Ok(part(line, raw)),
            Some(b'n') => Ok(Bytes::from_static(EMPTY_METADATA)),
            first => Err(CoreError::InvalidMetadata(format!(
                "must be a JSON object, not {}",
                match first {
                    Some(b'[') => "an array",
                    Some(b'"') => "a string",
                    Some(b't' | b'f') => "a boolean",
                    _ => "a number",
                }
            ))),
        },
    }
}

/// What an event costs in memory while its append is in flight, roughly.
pub(crate) fn weight(event: &NewEvent) -> usize {
    event.size() + 128
}
