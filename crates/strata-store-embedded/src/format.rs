//! The on-disk format: segment headers, batch headers and record frames, with their
//! encoding and checked decoding. Pure functions over byte slices; no I/O here.
//!
//! ```text
//! segment  = "STRATSG1" first_position:u64 batch*
//! batch    = header(32) record*
//! header   = magic:u32 format:u8 flags:u8 reserved:u16 count:u32 body_len:u32
//!            first_position:u64 header_crc:u32 reserved:u32
//! record   = len:u32 crc:u32 payload(len)
//! payload  = format:u8 stream_len:u8 type_len:u8 reserved:u8 version:u64
//!            recorded_at:i64 id:[16] metadata_len:u32 stream type metadata data
//! ```
//! All integers are little-endian. `header_crc` is CRC32C of the header's first 24 bytes;
//! each record's `crc` is CRC32C of its payload. The position of a batch's i-th record is
//! `first_position + i`.

use strata_core::{EventId, Position, RecordedEvent, StreamName, Timestamp, Version};

/// The segment file's magic and format tag.
pub(crate) const SEGMENT_MAGIC: &[u8; 8] = b"STRATSG1";
/// Bytes before the first batch of a segment.
pub(crate) const SEGMENT_HEADER_LEN: u64 = 16;
/// A batch header's magic ("STB1").
pub(crate) const BATCH_MAGIC: u32 = 0x3142_5453;
/// The format version written by this code.
pub(crate) const FORMAT_VERSION: u8 = 1;
/// Bytes of a batch header.
pub(crate) const BATCH_HEADER_LEN: usize = 32;
/// Bytes of a record frame before its payload.
pub(crate) const RECORD_FRAME_LEN: usize = 8;
/// Bytes of a payload before its variable parts.
pub(crate) const PAYLOAD_FIXED_LEN: usize = 40;

/// Encodes a segment header.
pub(crate) fn segment_header(first_position: u64) -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut out = [0u8; SEGMENT_HEADER_LEN as usize];
    out[..8].copy_from_slice(SEGMENT_MAGIC);
    out[8..].copy_from_slice(&first_position.to_le_bytes());
    out
}

/// Decodes a segment header, returning its first position.
pub(crate) fn parse_segment_header(bytes: &[u8]) -> Option<u64> {
    if bytes.len() < SEGMENT_HEADER_LEN as usize || &bytes[..8] != SEGMENT_MAGIC {
        return None;
    }
    Some(u64::from_le_bytes(bytes[8..16].try_into().ok()?))
}

/// A decoded batch header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) count: u32,
    pub(crate) body_len: u32,
    pub(crate) first_position: u64,
}

/// Why a header or record failed its checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FrameError {
    /// Fewer bytes than the frame needs.
    Short,
    /// The bytes are not a valid frame; the reason says which check failed.
    Bad(String),
}

/// Starts a batch: reserves the header, to be filled by [`finish_batch`].
pub(crate) fn begin_batch(buf: &mut Vec<u8>) -> usize {
    let start = buf.len();
    buf.resize(start + BATCH_HEADER_LEN, 0);
    start
}

/// Fills in the header of the batch that starts at `start` in `buf`.
pub(crate) fn finish_batch(buf: &mut [u8], start: usize, count: u32, first_position: u64) {
    let body_len = (buf.len() - start - BATCH_HEADER_LEN) as u32;
    let h = &mut buf[start..start + BATCH_HEADER_LEN];
    h[0..4].copy_from_slice(&BATCH_MAGIC.to_le_bytes());
    h[4] = FORMAT_VERSION;
    h[5] = 0;
    h[6..8].copy_from_slice(&0u16.to_le_bytes());
    h[8..12].copy_from_slice(&count.to_le_bytes());
    h[12..16].copy_from_slice(&body_len.to_le_bytes());
    h[16..24].copy_from_slice(&first_position.to_le_bytes());
    let crc = crc32c::crc32c(&h[..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h[28..32].copy_from_slice(&0u32.to_le_bytes());
}

/// Decodes and checks a batch header.
pub(crate) fn parse_batch_header(bytes: &[u8]) -> Result<BatchHeader, FrameError> {
    if bytes.len() < BATCH_HEADER_LEN {
        return Err(FrameError::Short);
    }
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap_or_default());
    if magic != BATCH_MAGIC {
        return Err(FrameError::Bad(format!("bad batch magic {magic:#010x}")));
    }
    let stored = u32::from_le_bytes(bytes[24..28].try_into().unwrap_or_default());
    let actual = crc32c::crc32c(&bytes[..24]);
    if stored != actual {
        return Err(FrameError::Bad(format!(
            "batch header checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
        )));
    }
    if bytes[4] != FORMAT_VERSION {
        return Err(FrameError::Bad(format!(
            "unknown batch format version {}",
            bytes[4]
        )));
    }
    Ok(BatchHeader {
        count: u32::from_le_bytes(bytes[8..12].try_into().unwrap_or_default()),
        body_len: u32::from_le_bytes(bytes[12..16].try_into().unwrap_or_default()),
        first_position: u64::from_le_bytes(bytes[16..24].try_into().unwrap_or_default()),
    })
}

/// The parts of one event to encode.
pub(crate) struct RecordParts<'a> {
    pub(crate) stream: &'a str,
    pub(crate) event_type: &'a str,
    pub(crate) version: u64,
    pub(crate) recorded_at: i64,
    pub(crate) id: &'a [u8; 16],
    pub(crate) metadata: &'a [u8],
    pub(crate) data: &'a [u8],
}

/// Appends one record frame to `buf`.
pub(crate) fn encode_record(buf: &mut Vec<u8>, parts: &RecordParts<'_>) {
    let start = buf.len();
    let payload_len = PAYLOAD_FIXED_LEN
        + parts.stream.len()
        + parts.event_type.len()
        + parts.metadata.len()
        + parts.data.len();
    buf.reserve(RECORD_FRAME_LEN + payload_len);
    buf.extend_from_slice(&(payload_len as u32).to_le_bytes());
    buf.extend_from_slice(&[0u8; 4]); // crc, filled below
    buf.push(FORMAT_VERSION);
    // Stream names and event types are at most 255 bytes (checked by strata-core).
    buf.push(parts.stream.len() as u8);
    buf.push(parts.event_type.len() as u8);
    buf.push(0);
    buf.extend_from_slice(&parts.version.to_le_bytes());
    buf.extend_from_slice(&parts.recorded_at.to_le_bytes());
    buf.extend_from_slice(parts.id);
    buf.extend_from_slice(&(parts.metadata.len() as u32).to_le_bytes());
    buf.extend_from_slice(parts.stream.as_bytes());
    buf.extend_from_slice(parts.event_type.as_bytes());
    buf.extend_from_slice(parts.metadata);
    buf.extend_from_slice(parts.data);
    let crc = crc32c::crc32c(&buf[start + RECORD_FRAME_LEN..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// A checked view of one record inside a buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordView<'a> {
    /// Bytes of the whole frame.
    pub(crate) frame_len: usize,
    pub(crate) stream: &'a [u8],
    pub(crate) event_type: &'a [u8],
    pub(crate) version: u64,
    pub(crate) recorded_at: i64,
    pub(crate) id: [u8; 16],
    /// Range of the metadata inside the frame.
    pub(crate) metadata: (usize, usize),
    /// Range of the data inside the frame.
    pub(crate) data: (usize, usize),
}

/// Decodes and checks the record frame at the start of `bytes`.
pub(crate) fn parse_record(bytes: &[u8]) -> Result<RecordView<'_>, FrameError> {
    if bytes.len() < RECORD_FRAME_LEN {
        return Err(FrameError::Short);
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().unwrap_or_default()) as usize;
    let stored = u32::from_le_bytes(bytes[4..8].try_into().unwrap_or_default());
    if len < PAYLOAD_FIXED_LEN {
        return Err(FrameError::Bad(format!("record length {len} is too small")));
    }
    let Some(payload) = bytes.get(RECORD_FRAME_LEN..RECORD_FRAME_LEN + len) else {
        return Err(FrameError::Short);
    };
    let actual = crc32c::crc32c(payload);
    if stored != actual {
        return Err(FrameError::Bad(format!(
            "record checksum mismatch (stored {stored:#010x}, computed {actual:#010x})"
        )));
    }
    if payload[0] != FORMAT_VERSION {
        return Err(FrameError::Bad(format!(
            "unknown record format version {}",
            payload[0]
        )));
    }
    let stream_len = payload[1] as usize;
    let type_len = payload[2] as usize;
    let version = u64::from_le_bytes(payload[4..12].try_into().unwrap_or_default());
    let recorded_at = i64::from_le_bytes(payload[12..20].try_into().unwrap_or_default());
    let id: [u8; 16] = payload[20..36].try_into().unwrap_or_default();
    let metadata_len = u32::from_le_bytes(payload[36..40].try_into().unwrap_or_default()) as usize;
    let stream_start = PAYLOAD_FIXED_LEN;
    let type_start = stream_start + stream_len;
    let meta_start = type_start + type_len;
    let data_start = meta_start + metadata_len;
    if data_start > len {
        return Err(FrameError::Bad(format!(
            "record fields ({data_start} bytes) overrun its length {len}"
        )));
    }
    let base = RECORD_FRAME_LEN;
    Ok(RecordView {
        frame_len: RECORD_FRAME_LEN + len,
        stream: &payload[stream_start..type_start],
        event_type: &payload[type_start..meta_start],
        version,
        recorded_at,
        id,
        metadata: (base + meta_start, base + data_start),
        data: (base + data_start, base + len),
    })
}

/// Builds a [`RecordedEvent`] from a checked record inside `frame` (a buffer starting at
/// the record's frame).
pub(crate) fn to_event(
    frame: &bytes::Bytes,
    view: &RecordView<'_>,
    position: u64,
    stream: StreamName,
    event_type: strata_core::EventType,
) -> RecordedEvent {
    RecordedEvent {
        position: Position(position),
        stream,
        version: Version(view.version),
        id: EventId::from_bytes(view.id),
        event_type,
        data: frame.slice(view.data.0..view.data.1),
        metadata: frame.slice(view.metadata.0..view.metadata.1),
        recorded_at: Timestamp::from_unix_nanos(view.recorded_at),
    }
}

#[cfg(test)]
mod tests;
