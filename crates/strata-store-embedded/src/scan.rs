//! Sequential scanning of a segment file: the one place that walks batches on disk, shared
//! by recovery on open, read-only followers and `verify`. A batch is handed to the caller
//! only once all of it has passed its checks, so half a batch is never applied.

use std::path::Path;

use strata_store::StoreError;

use crate::format::{
    BATCH_HEADER_LEN, FrameError, PAYLOAD_FIXED_LEN, RECORD_FRAME_LEN, RecordView,
    SEGMENT_HEADER_LEN, parse_batch_header, parse_record,
};
use crate::io::FileIo;

/// How the caller treats an invalid batch at the end of the last segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TailMode {
    /// The segment is not the last one: every invalid byte is corruption.
    Sealed,
    /// The last segment of a store being opened for writing or verified. With the
    /// high-water mark known, an invalid batch past it starts an unacknowledged tail,
    /// whatever follows (a crash may keep any part of unsynced writes); below it, or
    /// without a mark, only an incomplete last batch (or zeros) is a torn tail and
    /// anything else is corruption.
    Last {
        /// The high-water mark, when the store has one.
        acknowledged: Option<u64>,
    },
    /// The last segment of a store another process is writing: an invalid tail is a batch
    /// still being written; stop before it.
    Following,
}

impl TailMode {
    /// Whether a batch starting at `position` lies past the high-water mark, so that it
    /// was never acknowledged as far as the store knows.
    fn past_mark(self, position: u64) -> bool {
        matches!(self, TailMode::Last { acknowledged: Some(mark) } if position > mark)
    }
}

/// Where a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ScanEnd {
    /// Offset just past the last valid batch.
    pub(crate) end: u64,
    /// The position the next batch must start at.
    pub(crate) next_position: u64,
    /// Batches scanned.
    pub(crate) batches: u64,
    /// Offset of a torn last batch (only in [`TailMode::Last`]): the file is cut there.
    pub(crate) torn_at: Option<u64>,
}

/// One record of a valid batch, as handed to the caller.
pub(crate) struct ScannedRecord<'a> {
    pub(crate) position: u64,
    /// Offset of the record frame in the file.
    pub(crate) offset: u64,
    pub(crate) view: RecordView<'a>,
    /// The whole frame's bytes.
    pub(crate) frame: &'a [u8],
}

const CHUNK: usize = 4 << 20;

/// Scans `file` from `start` (a batch boundary at or after the segment header), expecting
/// the first batch to start at `next_position`, and calls `on_batch` with the records of
/// each valid batch in order.
pub(crate) fn scan_segment(
    path: &Path,
    file: &dyn FileIo,
    start: u64,
    next_position: u64,
    mode: TailMode,
    mut on_batch: impl FnMut(&[ScannedRecord<'_>]) -> Result<(), StoreError>,
) -> Result<ScanEnd, StoreError> {
    let file_len = file
        .len()
        .map_err(|e| StoreError::io(format!("cannot stat {}", path.display()), e))?;
    let start = start.max(SEGMENT_HEADER_LEN);
    let mut outcome = ScanEnd {
        end: start,
        next_position,
        batches: 0,
        torn_at: None,
    };
    let mut buf: Vec<u8> = Vec::new();
    // File offset of buf[0].
    let mut buf_offset = start;
    loop {
        let offset = outcome.end;
        if offset >= file_len {
            return Ok(outcome);
        }
        // Make sure the header is in the buffer.
        let rel = (offset - buf_offset) as usize;
        if buf.len() < rel + BATCH_HEADER_LEN {
            refill(
                path,
                file,
                &mut buf,
                &mut buf_offset,
                offset,
                BATCH_HEADER_LEN,
                file_len,
            )?;
        }
        let rel = (offset - buf_offset) as usize;
        if mode.past_mark(outcome.next_position) && parse_batch_header(&buf[rel..]).is_err() {
            outcome.torn_at = Some(offset);
            return Ok(outcome);
        }
        let header = match parse_batch_header(&buf[rel..]) {
            Ok(header) => header,
            Err(err) => {
                return tail_or_corrupt(path, file, offset, file_len, mode, err, &mut outcome);
            }
        };
        let total = BATCH_HEADER_LEN + header.body_len as usize;
        if mode.past_mark(outcome.next_position)
            && (offset + total as u64 > file_len || header.first_position != outcome.next_position)
        {
            outcome.torn_at = Some(offset);
            return Ok(outcome);
        }
        if offset + total as u64 > file_len {
            return tail_or_corrupt(
                path,
                file,
                offset,
                file_len,
                mode,
                FrameError::Short,
                &mut outcome,
            );
        }
        if buf.len() < rel + total {
            refill(
                path,
                file,
                &mut buf,
                &mut buf_offset,
                offset,
                total,
                file_len,
            )?;
        }
        let rel = (offset - buf_offset) as usize;
        if header.first_position != outcome.next_position {
            return Err(StoreError::Corrupt {
                file: path.to_owned(),
                offset,
                reason: format!(
                    "batch starts at position {} but {} was expected",
                    header.first_position, outcome.next_position
                ),
            });
        }
        // Positions are u64: a batch whose last position would not fit is corrupt (only a
        // damaged or crafted segment header starts that close to the end).
        let Some(next_position) = header.first_position.checked_add(u64::from(header.count)) else {
            return Err(StoreError::Corrupt {
                file: path.to_owned(),
                offset,
                reason: format!(
                    "batch of {} events from position {} runs past the last position",
                    header.count, header.first_position
                ),
            });
        };
        let body = &buf[rel + BATCH_HEADER_LEN..rel + total];
        // The count is the header's claim: no more records fit than the body has bytes for.
        let fit = body.len() / (RECORD_FRAME_LEN + PAYLOAD_FIXED_LEN);
        let mut records = Vec::with_capacity((header.count as usize).min(fit));
        let mut cursor = 0usize;
        let mut failure = None;
        for i in 0..header.count as usize {
            match parse_record(&body[cursor..]) {
                Ok(view) => {
                    let frame = &body[cursor..cursor + view.frame_len];
                    records.push(ScannedRecord {
                        position: header.first_position + i as u64,
                        offset: offset + (BATCH_HEADER_LEN + cursor) as u64,
                        view,
                        frame,
                    });
                    cursor += view.frame_len;
                }
                Err(err) => {
                    let at = offset + (BATCH_HEADER_LEN + cursor) as u64;
                    failure = Some((at, err));
                    break;
                }
            }
        }
        if failure.is_none() && cursor != body.len() {
            failure = Some((
                offset + (BATCH_HEADER_LEN + cursor) as u64,
                FrameError::Bad(format!(
                    "batch of {} records leaves {} unexplained bytes",
                    header.count,
                    body.len() - cursor
                )),
            ));
        }
        if let Some((at, err)) = failure {
            let last_batch = offset + total as u64 == file_len;
            // A record that fails inside the final batch is torn only if everything from
            // it to the end of the file is zeros (a write that did not reach the disk).
            let zeros = last_batch && all_zero(path, file, at, file_len)?;
            if mode == TailMode::Following && last_batch {
                return Ok(outcome);
            }
            if matches!(mode, TailMode::Last { .. })
                && (zeros || mode.past_mark(header.first_position))
            {
                outcome.torn_at = Some(offset);
                return Ok(outcome);
            }
            let reason = match err {
                FrameError::Short => "record runs past the end of its batch".to_owned(),
                FrameError::Bad(reason) => reason,
            };
            return Err(StoreError::Corrupt {
                file: path.to_owned(),
                offset: at,
                reason,
            });
        }
        on_batch(&records)?;
        outcome.end = offset + total as u64;
        outcome.next_position = next_position;
        outcome.batches += 1;
    }
}

/// Reads so that `buf` holds at least `need` bytes starting at file offset `at`.
fn refill(
    path: &Path,
    file: &dyn FileIo,
    buf: &mut Vec<u8>,
    buf_offset: &mut u64,
    at: u64,
    need: usize,
    file_len: u64,
) -> Result<(), StoreError> {
    // Never past the end of the file: a short buffer makes the parser report `Short`.
    let want = need.max(CHUNK).min((file_len - at) as usize);
    buf.clear();
    buf.resize(want, 0);
    *buf_offset = at;
    read_exact_at(path, file, buf, at)?;
    Ok(())
}

fn read_exact_at(
    path: &Path,
    file: &dyn FileIo,
    buf: &mut [u8],
    at: u64,
) -> Result<(), StoreError> {
    file.read_exact_at(buf, at)
        .map_err(|e| StoreError::io(format!("cannot read {} at offset {at}", path.display()), e))
}

fn all_zero(path: &Path, file: &dyn FileIo, from: u64, to: u64) -> Result<bool, StoreError> {
    let mut at = from;
    let mut chunk = vec![0u8; 64 * 1024];
    while at < to {
        let n = ((to - at) as usize).min(chunk.len());
        read_exact_at(path, file, &mut chunk[..n], at)?;
        if chunk[..n].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        at += n as u64;
    }
    Ok(true)
}

fn tail_or_corrupt(
    path: &Path,
    file: &dyn FileIo,
    offset: u64,
    file_len: u64,
    mode: TailMode,
    err: FrameError,
    outcome: &mut ScanEnd,
) -> Result<ScanEnd, StoreError> {
    match (mode, &err) {
        (TailMode::Following, _) => Ok(*outcome),
        (TailMode::Last { .. }, FrameError::Short) => {
            outcome.torn_at = Some(offset);
            Ok(*outcome)
        }
        (TailMode::Last { .. }, FrameError::Bad(_)) if all_zero(path, file, offset, file_len)? => {
            outcome.torn_at = Some(offset);
            Ok(*outcome)
        }
        (_, FrameError::Short) => Err(StoreError::Corrupt {
            file: path.to_owned(),
            offset,
            reason: "incomplete batch in a sealed segment".to_owned(),
        }),
        (_, FrameError::Bad(reason)) => Err(StoreError::Corrupt {
            file: path.to_owned(),
            offset,
            reason: reason.clone(),
        }),
    }
}

#[cfg(test)]
mod tests;
