//! The export line: an event's read line, plus its payloads' exact bytes (base64) wherever
//! the JSON fields cannot carry them verbatim, so that `import` gives back every byte. It
//! owns only the line's form; reading the log is `read`'s business.
//!
//! `data` and `metadata` are embedded as they are when their bytes are one line of JSON
//! with nothing around it (for metadata: a JSON object, the only kind an import takes).
//! Anything else — pretty-printed JSON, surrounding whitespace, text that is not JSON,
//! bytes that are not UTF-8, empty metadata — is still shown in `data`/`metadata` in the
//! read line's form (compacted, or as a string), and its exact bytes travel in
//! `data_base64`/`metadata_base64`, which `import` prefers.

use base64::Engine as _;
use serde_json::value::RawValue;
use strata_core::RecordedEvent;

/// Appends `event`'s export line and a newline to `out`.
pub(crate) fn write_line(event: &RecordedEvent, out: &mut Vec<u8>) {
    let start = out.len();
    event.write_json_line(out);
    let data = (!embeds_verbatim(&event.data)).then_some(("data_base64", &event.data));
    let metadata = (!(event.metadata.first() == Some(&b'{') && embeds_verbatim(&event.metadata)))
        .then_some(("metadata_base64", &event.metadata));
    if data.is_none() && metadata.is_none() {
        return;
    }
    // The read line is one JSON object and a newline: reopen the object to add fields.
    if !out[start..].ends_with(b"}\n") {
        return;
    }
    out.truncate(out.len() - 2);
    for (field, bytes) in data.into_iter().chain(metadata) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(field.as_bytes());
        out.extend_from_slice(b"\":\"");
        let encoded = base64::engine::general_purpose::STANDARD.encode(bytes);
        out.extend_from_slice(encoded.as_bytes());
        out.push(b'"');
    }
    out.extend_from_slice(b"}\n");
}

/// Whether `bytes` are exactly one JSON value on one line, with nothing around it: the
/// read line then holds them byte for byte.
fn embeds_verbatim(bytes: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return false;
    };
    !text.contains(['\n', '\r'])
        && serde_json::from_str::<&RawValue>(text).is_ok_and(|raw| raw.get().len() == text.len())
}
