//! Entry points for the fuzz targets in `fuzz/`: the decoders of on-disk bytes (segment
//! scanning, record decoding, the index and high-water mark files) driven from a byte
//! slice, without a filesystem. Compiled only with the `fuzzing` feature and hidden from
//! the documentation: it is not part of the API.
//!
//! It must not change what the decoders do; it only feeds them. The sealing helpers let
//! a fuzzer reach past the checksums: they rewrite each checksum of a mutated input so
//! that the checks behind them see the mutation.

use std::io;
use std::path::Path;

use bytes::Bytes;
use strata_store::StoreError;

use crate::format::{
    BATCH_HEADER_LEN, PAYLOAD_FIXED_LEN, RECORD_FRAME_LEN, SEGMENT_HEADER_LEN, parse_segment_header,
};
use crate::index::{Index, Location};
use crate::io::FileIo;
use crate::read::{NameCache, decode};
use crate::scan::{TailMode, scan_segment};

/// How a scanned segment's end is judged (the scanner's three modes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tail {
    /// A sealed segment: every invalid byte is corruption.
    Sealed,
    /// The last segment of a store opened for writing without a high-water mark: only a
    /// torn last batch may be cut.
    Last,
    /// The last segment of a store another process writes: stop before an invalid tail.
    Following,
}

/// What a scan of one segment found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scanned {
    /// Events in valid batches, each indexed and decoded.
    pub events: u64,
    /// Offset just past the last valid batch.
    pub end: u64,
    /// Offset of a torn last batch, if the scan found one.
    pub torn_at: Option<u64>,
}

/// A segment file held in memory; it cannot be written.
struct MemFile(Vec<u8>);

impl FileIo for MemFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let start = usize::try_from(offset).map_err(|_| io::ErrorKind::UnexpectedEof)?;
        let end = start
            .checked_add(buf.len())
            .ok_or(io::ErrorKind::UnexpectedEof)?;
        let bytes = self.0.get(start..end).ok_or(io::ErrorKind::UnexpectedEof)?;
        buf.copy_from_slice(bytes);
        Ok(())
    }

    fn write_all_at(&self, _: &[u8], _: u64) -> io::Result<()> {
        Err(io::ErrorKind::PermissionDenied.into())
    }

    fn len(&self) -> io::Result<u64> {
        Ok(self.0.len() as u64)
    }

    fn set_len(&self, _: u64) -> io::Result<()> {
        Err(io::ErrorKind::PermissionDenied.into())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn sync_all(&self) -> io::Result<()> {
        Ok(())
    }
}

/// Scans `segment` (a whole segment file, header included) as opening a store does:
/// every valid batch is applied to an index (which checks stream versions) and each of
/// its events is decoded as a read would decode it.
pub fn scan(segment: &[u8], tail: Tail) -> Result<Scanned, StoreError> {
    let path = Path::new("fuzz.seg");
    let first_position = parse_segment_header(segment).ok_or_else(|| StoreError::Corrupt {
        file: path.to_owned(),
        offset: 0,
        reason: "bad segment header".to_owned(),
    })?;
    let mode = match tail {
        Tail::Sealed => TailMode::Sealed,
        Tail::Last => TailMode::Last { acknowledged: None },
        Tail::Following => TailMode::Following,
    };
    let file: crate::io::FileRef = std::sync::Arc::new(MemFile(segment.to_vec()));
    let shared: std::sync::Arc<Path> = std::sync::Arc::from(path);
    let mut index = Index::default();
    let mut names = NameCache::default();
    let mut events = 0u64;
    let end = scan_segment(
        path,
        file.as_ref(),
        SEGMENT_HEADER_LEN,
        first_position,
        mode,
        |records| {
            index.apply_scanned(path, records)?;
            for record in records {
                let location = Location {
                    position: record.position,
                    file: file.clone(),
                    path: shared.clone(),
                    start: record.offset,
                    end: record.offset + record.frame.len() as u64,
                    segment: 0,
                };
                decode(&Bytes::copy_from_slice(record.frame), &location, &mut names)?;
                events += 1;
            }
            Ok(())
        },
    )?;
    Ok(Scanned {
        events,
        end: end.end,
        torn_at: end.torn_at,
    })
}

/// Rewrites the checksums of every batch header and record that `segment` frames (as far
/// as its lengths let a walk go), so that a mutated segment passes its checksums and
/// reaches the checks behind them.
pub fn seal_segment(segment: &mut [u8]) {
    let mut at = SEGMENT_HEADER_LEN as usize;
    while let Some(header) = segment.get_mut(at..at + BATCH_HEADER_LEN) {
        let crc = crc32c::crc32c(&header[..24]);
        header[24..28].copy_from_slice(&crc.to_le_bytes());
        let count = u32_at(header, 8) as usize;
        let body_len = u32_at(header, 12) as usize;
        let body_start = at + BATCH_HEADER_LEN;
        let body_end = body_start.saturating_add(body_len).min(segment.len());
        let mut cursor = body_start;
        for _ in 0..count {
            let Some(frame) = segment.get_mut(cursor..body_end) else {
                break;
            };
            if frame.len() < RECORD_FRAME_LEN + PAYLOAD_FIXED_LEN {
                break;
            }
            let len = u32_at(frame, 0) as usize;
            let Some(payload) = frame.get(RECORD_FRAME_LEN..RECORD_FRAME_LEN.saturating_add(len))
            else {
                break;
            };
            let crc = crc32c::crc32c(payload);
            frame[4..8].copy_from_slice(&crc.to_le_bytes());
            cursor += RECORD_FRAME_LEN + len;
        }
        at = body_start.saturating_add(body_len);
    }
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

/// Decodes a segment index file (`.idx`) as opening a store reads it.
pub fn decode_index_file(bytes: &[u8]) -> Result<(), String> {
    crate::index::decode_index_file(bytes.to_vec()).map(drop)
}

/// Decodes a high-water mark file as opening a store reads it.
pub fn decode_mark(bytes: &[u8]) -> Result<(), String> {
    crate::mark::decode(bytes).map(drop)
}

/// Rewrites the trailing CRC32C of an index or high-water mark file (the checksum of
/// every byte before it), so that a mutated file reaches the checks behind it.
pub fn seal_trailing_checksum(bytes: &mut [u8]) {
    if let Some(split) = bytes.len().checked_sub(4) {
        let (body, crc) = bytes.split_at_mut(split);
        crc.copy_from_slice(&crc32c::crc32c(body).to_le_bytes());
    }
}
