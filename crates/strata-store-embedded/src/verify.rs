//! `verify`: reads every byte of a data directory and lists what is wrong, changing
//! nothing. Safe while a writer holds the directory.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_store::StoreError;

use crate::format::{SEGMENT_HEADER_LEN, parse_segment_header};
use crate::index::{Index, SegmentInfo, index_path, read_index_file, version_gap};
use crate::io::{FileIo, Fs, RealFs};
use crate::mark::{mark_path, read_mark};
use crate::open::{list_segments, open_file};
use crate::scan::{ScannedRecord, TailMode, scan_segment};
use crate::store::TornTail;

/// One problem found by [`verify`].
#[derive(Debug, Clone)]
pub struct Problem {
    /// The file with the problem.
    pub file: PathBuf,
    /// Byte offset in that file.
    pub offset: u64,
    /// What is wrong.
    pub message: String,
}

/// What [`verify`] found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Segment files read.
    pub segments: usize,
    /// Batches checked.
    pub batches: u64,
    /// Events checked.
    pub events: u64,
    /// Distinct streams.
    pub streams: u64,
    /// Index files checked against the log.
    pub index_files: usize,
    /// An incomplete last batch (a crash mid-write) past the high-water mark: never
    /// acknowledged; the next writer truncates it.
    pub torn_tail: Option<TornTail>,
    /// The high-water mark: every position up to it was acknowledged (0 when the store
    /// has no mark). The log ending below it is a problem: acknowledged events are lost.
    pub high_water: u64,
    /// Everything that is wrong; empty when the store is intact.
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    /// Whether nothing is wrong.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Checks every checksum, batch, stream version and index entry of the store in `dir`.
/// `Err` only when the directory cannot be read at all; damage is listed in
/// [`VerifyReport::problems`].
pub fn verify(dir: impl AsRef<Path>) -> Result<VerifyReport, StoreError> {
    verify_with(&RealFs, dir.as_ref())
}

/// [`verify`] over the given filesystem.
pub(crate) fn verify_with(fs: &dyn Fs, dir: &Path) -> Result<VerifyReport, StoreError> {
    if !fs.is_dir(dir) {
        return Err(StoreError::io(
            format!("no event store at {}", dir.display()),
            std::io::Error::from(std::io::ErrorKind::NotFound),
        ));
    }
    let segments = list_segments(fs, dir)?;
    let mut report = VerifyReport {
        segments: segments.len(),
        ..VerifyReport::default()
    };
    let read = read_mark(fs, dir);
    let mark_known = matches!(read, Ok(Some(_)));
    let mark = match read {
        Ok(mark) => mark.unwrap_or_default(),
        Err(reason) => {
            report.problems.push(problem(
                &mark_path(dir),
                0,
                format!("{reason}: the store cannot tell which events it acknowledged"),
            ));
            crate::mark::Mark::default()
        }
    };
    report.high_water = mark.high_water;
    let mut index = Index::default();
    // Whether the previous segment was damaged, so the next one does not follow on.
    let mut damaged = false;
    // After a gap, per stream seen since: how many of its events the gap hid.
    let mut hidden: Option<HashMap<u32, u64>> = None;
    let count = segments.len();
    for (i, (first, path)) in segments.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let file = match open_file(fs, &path) {
            Ok(file) => file,
            Err(err) => {
                report.problems.push(problem(&path, 0, err.to_string()));
                damaged = true;
                continue;
            }
        };
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        if file.read_exact_at(&mut header, 0).is_err()
            || parse_segment_header(&header) != Some(first)
        {
            if is_last && header.iter().all(|&b| b == 0) {
                report.torn_tail = Some(TornTail {
                    file: path.clone(),
                    offset: 0,
                    bytes: file.len().unwrap_or(0),
                });
            } else {
                report.problems.push(problem(
                    &path,
                    0,
                    "bad segment header (or it disagrees with the file name)".to_owned(),
                ));
                damaged = true;
            }
            continue;
        }
        if first > index.head + 1 && mark.has_gap(index.head + 1, first - 1) {
            // Positions an operator accepted as lost: the streams go on after them.
            index.head = first - 1;
        } else if first != index.head + 1 {
            // A gap right after reported damage is that damage, not a second problem.
            if !damaged {
                report.problems.push(problem(
                    &path,
                    0,
                    format!(
                        "segment starts at position {first} but {} was expected",
                        index.head + 1
                    ),
                ));
            }
            // Go on from this segment's own start so later damage is still found: the
            // streams' events before it are unknown now.
            index.head = first - 1;
            index.streams.clear_positions();
            hidden = Some(HashMap::new());
        }
        damaged = false;
        index.segments.push(SegmentInfo {
            first_position: first,
            path: Arc::from(path.as_path()),
            file: file.clone(),
            offsets: Vec::new(),
            fingerprints: Vec::new(),
            len: SEGMENT_HEADER_LEN,
        });
        let mode = if is_last {
            TailMode::Last {
                acknowledged: mark_known.then_some(mark.high_water),
            }
        } else {
            TailMode::Sealed
        };
        let mut scanned: Vec<(Vec<u8>, u32, [u8; 16])> = Vec::new();
        let mut events = 0u64;
        let result = scan_segment(&path, &*file, SEGMENT_HEADER_LEN, first, mode, |records| {
            match &mut hidden {
                None => index.apply_scanned(&path, records)?,
                Some(hidden) => apply_after_gap(&mut index, hidden, &path, records)?,
            }
            for r in records {
                scanned.push((r.view.stream.to_vec(), r.offset as u32, r.view.id));
                debug_assert_eq!(r.frame.len(), r.view.frame_len);
            }
            events += records.len() as u64;
            Ok(())
        });
        report.events += events;
        match result {
            Ok(end) => {
                report.batches += end.batches;
                if let Some(offset) = end.torn_at {
                    let len = file.len().unwrap_or(offset);
                    report.torn_tail = Some(TornTail {
                        file: path.clone(),
                        offset,
                        bytes: len - offset,
                    });
                }
                if !is_last {
                    check_index_file(&path, first, fs, &*file, &scanned, &mut report);
                }
            }
            Err(StoreError::Corrupt {
                file,
                offset,
                reason,
            }) => {
                report.problems.push(problem(&file, offset, reason));
                damaged = true;
            }
            Err(err) => {
                report.problems.push(problem(&path, 0, err.to_string()));
                damaged = true;
            }
        }
    }
    report.streams = index.streams.len() as u64;
    if mark.high_water > index.head && !damaged {
        let (file, offset) = match (&report.torn_tail, index.segments.last()) {
            (Some(torn), _) => (torn.file.clone(), torn.offset),
            (None, Some(last)) => (last.path.to_path_buf(), last.file.len().unwrap_or(0)),
            (None, None) => (dir.to_owned(), 0),
        };
        // What was cut there had been acknowledged: it is not a harmless torn tail.
        report.torn_tail = None;
        report.problems.push(problem(
            &file,
            offset,
            format!(
                "acknowledged events at positions {} to {} are missing: the log ends at \
                 position {} but the high-water mark records {} as acknowledged",
                index.head + 1,
                mark.high_water,
                index.head,
                mark.high_water
            ),
        ));
    }
    Ok(report)
}

/// Applies a scanned batch after a gap hid some events: a stream's first event since the
/// gap may have any version, and its later ones must follow on.
fn apply_after_gap(
    index: &mut Index,
    hidden: &mut HashMap<u32, u64>,
    path: &Path,
    records: &[ScannedRecord<'_>],
) -> Result<(), StoreError> {
    for record in records {
        let stream = index.intern_bytes(record.view.stream, path, record.offset)?;
        let seen = index.streams.count(stream);
        let skipped = *hidden
            .entry(stream)
            .or_insert(record.view.version.saturating_sub(1));
        let expected = skipped + seen + 1;
        if record.view.version != expected {
            return Err(version_gap(
                path,
                record,
                index.streams.name(stream),
                expected,
            ));
        }
        index.push(stream, record.position, record.offset, &record.view.id);
    }
    index.note_published(records.iter().map(|r| (&r.view.id, r.position)));
    Ok(())
}

fn problem(file: &Path, offset: u64, message: String) -> Problem {
    Problem {
        file: file.to_owned(),
        offset,
        message,
    }
}

/// Compares a sealed segment's index file, if present, with what the scan found.
fn check_index_file(
    segment: &Path,
    first: u64,
    fs: &dyn Fs,
    file: &dyn FileIo,
    scanned: &[(Vec<u8>, u32, [u8; 16])],
    report: &mut VerifyReport,
) {
    let path = index_path(segment);
    if fs
        .open(&path)
        .is_err_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    {
        return;
    }
    report.index_files += 1;
    let idx = match read_index_file(fs, &path) {
        Ok(idx) => idx,
        Err(reason) => {
            report.problems.push(problem(&path, 0, reason));
            return;
        }
    };
    let segment_len = file.len().unwrap_or(0);
    if idx.first_position != first || idx.segment_len != segment_len {
        report.problems.push(problem(
            &path,
            0,
            "index file does not match its segment (first position or length)".to_owned(),
        ));
        return;
    }
    if idx.events().len() != scanned.len() {
        report.problems.push(problem(
            &path,
            0,
            format!(
                "index file lists {} events but the segment holds {}",
                idx.events().len(),
                scanned.len()
            ),
        ));
        return;
    }
    for (i, ((stream, offset, id), (s_stream, s_offset, s_id))) in
        idx.events().zip(scanned).enumerate()
    {
        let name = idx.stream(stream);
        if name != Some(s_stream.as_slice()) || offset != *s_offset || id != s_id {
            report.problems.push(problem(
                &path,
                0,
                format!(
                    "index entry for position {} disagrees with the segment",
                    first + i as u64
                ),
            ));
            return;
        }
    }
}
