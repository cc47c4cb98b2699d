//! Opening a data directory: list the segments, load sealed ones from their index files
//! (scanning those whose index is missing or stale), scan the last one, and cut a torn
//! last batch when opening for writing. Also the read-only follower's refresh.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use foldhash::HashMap;
use strata_store::StoreError;

use crate::LostData;
use crate::format::{SEGMENT_HEADER_LEN, parse_segment_header, segment_header};
use crate::index::{Index, SegmentInfo, index_path, read_index_file, write_index_file};
use crate::io::{FileRef, Fs};
use crate::mark::{Mark, mark_path, read_mark, write_mark};
use crate::scan::{TailMode, scan_segment};
use crate::store::{LostEvents, TornTail};

/// Whether the opener may repair and write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    Write,
    ReadOnly,
}

/// A store loaded from disk.
pub(crate) struct Loaded {
    pub(crate) index: Index,
    pub(crate) torn_tail: Option<TornTail>,
    /// Per event of the last segment: stream id and event id (for sealing it later).
    pub(crate) active_meta: Vec<(u32, [u8; 16])>,
    /// The high-water mark as the store stands after opening.
    pub(crate) mark: Mark,
    /// Acknowledged events accepted as lost while opening.
    pub(crate) lost: Vec<LostEvents>,
}

/// The file name of the segment whose first position is `first_position`.
pub(crate) fn segment_path(dir: &Path, first_position: u64) -> PathBuf {
    dir.join(format!("{first_position:020}.seg"))
}

/// The segment files in `dir`, by first position.
pub(crate) fn list_segments(fs: &dyn Fs, dir: &Path) -> Result<Vec<(u64, PathBuf)>, StoreError> {
    let entries = fs
        .list(dir)
        .map_err(|e| StoreError::io(format!("cannot list {}", dir.display()), e))?;
    let mut segments = Vec::new();
    for name in entries {
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".seg") else {
            continue;
        };
        if let Ok(first) = stem.parse::<u64>() {
            segments.push((first, dir.join(name)));
        }
    }
    segments.sort();
    Ok(segments)
}

pub(crate) fn open_file(fs: &dyn Fs, path: &Path) -> Result<FileRef, StoreError> {
    fs.open(path)
        .map_err(|e| StoreError::io(format!("cannot open {}", path.display()), e))
}

/// Creates a segment file with its header, durably (file and directory entry).
pub(crate) fn create_segment(
    fs: &dyn Fs,
    dir: &Path,
    first_position: u64,
) -> Result<(PathBuf, FileRef), StoreError> {
    let path = segment_path(dir, first_position);
    let io = |what: &str, e| StoreError::io(format!("cannot {what} {}", path.display()), e);
    let file = fs.create(&path).map_err(|e| io("create", e))?;
    file.write_all_at(&segment_header(first_position), 0)
        .map_err(|e| io("write", e))?;
    file.sync_all().map_err(|e| io("fsync", e))?;
    sync_dir(fs, dir)?;
    Ok((path, file))
}

/// fsyncs a directory so that created, renamed or removed entries are durable.
pub(crate) fn sync_dir(fs: &dyn Fs, dir: &Path) -> Result<(), StoreError> {
    fs.sync_dir(dir)
        .map_err(|e| StoreError::io(format!("cannot fsync directory {}", dir.display()), e))
}

/// Loads every segment of `dir`. When opening for writing, compares the log with the
/// high-water mark before repairing anything: a torn batch past the mark is cut, lost
/// acknowledged events refuse the open unless `lost_data` accepts them.
pub(crate) fn load(
    fs: &dyn Fs,
    dir: &Path,
    access: Access,
    lost_data: LostData,
) -> Result<Loaded, StoreError> {
    let accept = access == Access::Write && lost_data == LostData::Accept;
    let mut lost = Vec::new();
    // Whether the mark must be rewritten before the store is used.
    let mut mark_dirty = false;
    // Whether the store has a mark to judge its tail by.
    let mut mark_known = true;
    let mut mark = match read_mark(fs, dir) {
        Ok(Some(mark)) => mark,
        Ok(None) => {
            mark_known = false;
            Mark::default()
        }
        Err(reason) if access == Access::ReadOnly => {
            tracing::warn!(file = %mark_path(dir).display(), %reason, "ignoring a damaged high-water mark");
            mark_known = false;
            Mark::default()
        }
        Err(reason) if accept => {
            tracing::warn!(file = %mark_path(dir).display(), %reason, "rebuilding a damaged high-water mark from the log, as asked");
            mark_dirty = true;
            mark_known = false;
            Mark::default()
        }
        Err(reason) => {
            return Err(StoreError::Corrupt {
                file: mark_path(dir),
                offset: 0,
                reason: format!(
                    "{reason}: the store cannot tell which events it acknowledged; \
                     `strata verify` lists what the log holds, and opening with \
                     the accept-data-loss option rebuilds the mark from the log"
                ),
            });
        }
    };
    let mut segments = list_segments(fs, dir)?;
    let mut index = Index::default();
    let mut torn_tail = None;
    // A last segment whose header never reached the disk, to be written again.
    let mut blank_last = None;
    let mut active_meta = Vec::new();
    if segments.is_empty() {
        if access == Access::ReadOnly {
            return Ok(Loaded {
                index,
                torn_tail,
                active_meta,
                mark,
                lost,
            });
        }
        if mark.high_water > 0 && !accept {
            return Err(lost_error(dir.to_owned(), 0, 1, mark.high_water, 0));
        }
        // After an accepted loss of every segment, positions continue above the mark.
        create_segment(fs, dir, mark.high_water + 1)?;
        segments = list_segments(fs, dir)?;
    }
    let count = segments.len();
    for (i, (first, path)) in segments.into_iter().enumerate() {
        let is_last = i + 1 == count;
        let file = open_file(fs, &path)?;
        let len = file
            .len()
            .map_err(|e| StoreError::io(format!("cannot stat {}", path.display()), e))?;
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        let header_ok = len >= SEGMENT_HEADER_LEN
            && file.read_exact_at(&mut header, 0).is_ok()
            && parse_segment_header(&header).is_some();
        if !header_ok {
            // A crash right after creating the last segment can leave its header short
            // or zeroed; nothing was ever acknowledged in it.
            let blank = header.iter().all(|&b| b == 0);
            if is_last && (len < SEGMENT_HEADER_LEN || blank) {
                if access == Access::Write {
                    blank_last = Some(first);
                    torn_tail = Some(TornTail {
                        file: path.clone(),
                        offset: 0,
                        bytes: len,
                    });
                } else {
                    continue;
                }
            } else {
                return Err(StoreError::Corrupt {
                    file: path,
                    offset: 0,
                    reason: "not a strata segment (bad header)".to_owned(),
                });
            }
        }
        let file = open_file(fs, &path)?;
        let header_first = first;
        if header_ok && parse_segment_header(&header) != Some(first) {
            return Err(StoreError::Corrupt {
                file: path,
                offset: 8,
                reason: "segment header disagrees with the file name".to_owned(),
            });
        }
        if header_first != index.head + 1 {
            let (from, to) = (index.head + 1, header_first.saturating_sub(1));
            let known = header_first > from && mark.has_gap(from, to);
            if header_first > from && !known && accept {
                tracing::error!(
                    file = %path.display(),
                    first = from,
                    last = to,
                    "accepting the loss of events whose segment is missing, as asked"
                );
                mark.gaps.push((from, to));
                mark_dirty = true;
                lost.push(LostEvents {
                    file: path.clone(),
                    offset: 0,
                    first_position: from,
                    last_position: to,
                });
            } else if !known {
                return Err(StoreError::Corrupt {
                    file: path,
                    offset: 0,
                    reason: format!(
                        "segment starts at position {header_first} but {} was expected",
                        index.head + 1
                    ),
                });
            }
            // Positions accepted as lost are never given out again.
            index.head = to;
        }
        index.segments.push(SegmentInfo {
            first_position: first,
            path: Arc::from(path.as_path()),
            file,
            offsets: Vec::new(),
            fingerprints: Vec::new(),
            len: SEGMENT_HEADER_LEN,
        });
        if !is_last && load_index_file(fs, &mut index, &path).is_ok() {
            continue;
        }
        let mode = match (is_last, access) {
            (false, _) => TailMode::Sealed,
            (true, Access::Write) => TailMode::Last {
                acknowledged: mark_known.then_some(mark.high_water),
            },
            (true, Access::ReadOnly) => TailMode::Following,
        };
        if blank_last.is_some() {
            continue;
        }
        let scan_file = index.segments.last().map(|s| s.file.clone());
        let Some(scan_file) = scan_file else { continue };
        let mut meta = Vec::new();
        let end = scan_segment(
            &path,
            &*scan_file,
            SEGMENT_HEADER_LEN,
            first,
            mode,
            |records| {
                index.apply_scanned(&path, records)?;
                for r in records {
                    let stream = index.streams.id(r.view.stream).ok_or_else(|| {
                        StoreError::internal("a scanned event's stream is not in the index")
                    })?;
                    meta.push((stream, r.view.id));
                }
                Ok(())
            },
        )?;
        if let Some(segment) = index.segments.last_mut() {
            segment.len = end.end;
        }
        if let Some(offset) = end.torn_at {
            let file_len = scan_file.len().unwrap_or(offset);
            torn_tail = Some(TornTail {
                file: path.clone(),
                offset,
                bytes: file_len - offset,
            });
        }
        if is_last {
            active_meta = meta;
        } else if access == Access::Write {
            let written = write_segment_index(fs, &index, &path, &meta);
            if let Err(e) = written {
                tracing::warn!(file = %path.display(), error = %e, "cannot write segment index");
            }
        }
    }
    // Loading replayed the streams' growth as it happened: slots that streams grown in
    // lockstep left behind are packed away before the store is used.
    index.streams.compact();
    if access == Access::ReadOnly {
        return Ok(Loaded {
            index,
            torn_tail,
            active_meta,
            mark,
            lost,
        });
    }
    // Nothing was changed on disk so far: decide before repairing.
    let missing = mark.high_water > index.head;
    if missing {
        let (file, offset) = match (&torn_tail, index.segments.last()) {
            (Some(torn), _) => (torn.file.clone(), torn.offset),
            (None, Some(last)) => (last.path.to_path_buf(), last.len),
            (None, None) => (dir.to_owned(), 0),
        };
        if !accept {
            return Err(lost_error(
                file,
                offset,
                index.head + 1,
                mark.high_water,
                index.head,
            ));
        }
        tracing::error!(
            file = %file.display(),
            offset,
            first = index.head + 1,
            last = mark.high_water,
            "accepting the loss of acknowledged events, as asked"
        );
        lost.push(LostEvents {
            file,
            offset,
            first_position: index.head + 1,
            last_position: mark.high_water,
        });
    }
    if let Some(first) = blank_last {
        create_segment(fs, dir, first)?;
    } else if let Some(torn) = &torn_tail {
        truncate(fs, &torn.file, torn.offset)?;
        if !missing {
            tracing::warn!(
                file = %torn.file.display(),
                offset = torn.offset,
                bytes = torn.bytes,
                "cut a torn last batch left by an interrupted write; it was never acknowledged"
            );
        }
    }
    if missing {
        // The cut segment is sealed where it ends now; the next one starts above the
        // mark, so no lost position is ever given out again.
        if let Some(last) = index.segments.last() {
            let path = last.path.clone();
            if let Err(e) = write_segment_index(fs, &index, &path, &active_meta) {
                tracing::warn!(file = %path.display(), error = %e, "cannot write segment index");
            }
        }
        mark.gaps.push((index.head + 1, mark.high_water));
        let next = mark.high_water + 1;
        let (path, _) = create_segment(fs, dir, next)?;
        index.segments.push(SegmentInfo {
            first_position: next,
            path: Arc::from(path.as_path()),
            file: open_file(fs, &path)?,
            offsets: Vec::new(),
            fingerprints: Vec::new(),
            len: SEGMENT_HEADER_LEN,
        });
        index.head = mark.high_water;
        active_meta.clear();
        mark_dirty = true;
        // What was cut had been acknowledged: it is reported as lost, not as torn.
        torn_tail = None;
    }
    // What the last segment holds may still be only in the page cache, written by an
    // earlier process whose fdatasync failed: it becomes durable before anything is
    // published or appended after it.
    if let Some(last) = index.segments.last() {
        last.file
            .sync_data()
            .map_err(|e| StoreError::io(format!("cannot fdatasync {}", last.path.display()), e))?;
    }
    if !mark_known {
        // A store without a mark (new, written before marks existed, or whose mark was
        // rebuilt) gets one now: everything it holds is made durable and recorded, so
        // its tail is judged by the mark from the next open on.
        for segment in &index.segments {
            segment.file.sync_data().map_err(|e| {
                StoreError::io(format!("cannot fdatasync {}", segment.path.display()), e)
            })?;
        }
        mark.high_water = mark.high_water.max(index.head);
        mark_dirty = true;
    }
    if mark_dirty {
        write_mark(fs, dir, &mark)?;
    }
    // An earlier process may have created the last segment and failed before syncing its
    // directory entry; nothing may be acknowledged in a file whose name a crash can lose.
    sync_dir(fs, dir)?;
    Ok(Loaded {
        index,
        torn_tail,
        active_meta,
        mark,
        lost,
    })
}

/// The error for acknowledged events that the log no longer holds.
fn lost_error(file: PathBuf, offset: u64, first: u64, last: u64, head: u64) -> StoreError {
    StoreError::Corrupt {
        file,
        offset,
        reason: format!(
            "acknowledged events at positions {first} to {last} are missing: the log ends at \
             position {head} but the high-water mark records {last} as acknowledged; nothing \
             was changed (opening with the accept-data-loss option cuts the log here and \
             continues at position {})",
            last + 1
        ),
    }
}

fn truncate(fs: &dyn Fs, path: &Path, len: u64) -> Result<(), StoreError> {
    let file = fs
        .open_rw(path)
        .map_err(|e| StoreError::io(format!("cannot open {}", path.display()), e))?;
    file.set_len(len)
        .and_then(|()| file.sync_all())
        .map_err(|e| StoreError::io(format!("cannot truncate {}", path.display()), e))
}

/// Applies a sealed segment's index file, if it exists and matches the segment.
fn load_index_file(fs: &dyn Fs, index: &mut Index, segment: &Path) -> Result<(), String> {
    let file = read_index_file(fs, &index_path(segment))?;
    let Some(info) = index.segments.last() else {
        return Err("no segment".to_owned());
    };
    let segment_len = info.file.len().map_err(|e| e.to_string())?;
    if file.first_position != info.first_position || file.segment_len != segment_len {
        return Err("index file does not match its segment".to_owned());
    }
    let mut previous = 0u32;
    for (_, offset, _) in file.events() {
        if u64::from(offset) < SEGMENT_HEADER_LEN
            || u64::from(offset) >= segment_len
            || offset <= previous
        {
            return Err("index file offsets are out of order".to_owned());
        }
        previous = offset;
    }
    let mut ids = Vec::with_capacity(file.streams().len());
    for name in file.streams() {
        ids.push(
            index
                .intern_bytes(name, segment, 0)
                .map_err(|e| e.to_string())?,
        );
    }
    let first = file.first_position;
    for (i, (stream, offset, id)) in file.events().enumerate() {
        index.push(
            ids[stream as usize],
            first + i as u64,
            u64::from(offset),
            id,
        );
    }
    index.note_published(
        file.events()
            .enumerate()
            .map(|(i, (_, _, id))| (id, first + i as u64)),
    );
    if let Some(info) = index.segments.last_mut() {
        info.len = segment_len;
        info.offsets.shrink_to_fit();
        info.fingerprints.shrink_to_fit();
    }
    Ok(())
}

/// Writes the index file of the last segment in `index`, given each event's stream id and
/// event id.
pub(crate) fn write_segment_index(
    fs: &dyn Fs,
    index: &Index,
    segment: &Path,
    meta: &[(u32, [u8; 16])],
) -> std::io::Result<()> {
    let Some(info) = index.segments.last() else {
        return Ok(());
    };
    let meta = &meta[..meta.len().min(info.offsets.len())];
    let mut first_seen = StreamNumbers::default();
    let streams: Vec<&[u8]> = meta
        .iter()
        .filter_map(|&(stream, _)| {
            let (_, new) = first_seen.number(stream);
            new.then(|| index.streams.name(stream).as_bytes())
        })
        .collect();
    let mut numbers = StreamNumbers::default();
    let events = meta
        .iter()
        .zip(&info.offsets)
        .map(move |((stream, id), &offset)| (numbers.number(*stream).0, offset, id));
    write_index_file(
        fs,
        &index_path(segment),
        info.first_position,
        info.len,
        &streams,
        events,
    )
}

/// Numbers the streams of a segment's index file in the order they first appear.
#[derive(Default)]
struct StreamNumbers {
    numbers: HashMap<u32, u32>,
    /// The last stream asked about and its number: neighbouring events mostly share one.
    last: Option<(u32, u32)>,
}

impl StreamNumbers {
    /// The number of the stream with index id `stream`, and whether it is new.
    fn number(&mut self, stream: u32) -> (u32, bool) {
        if let Some((id, number)) = self.last
            && id == stream
        {
            return (number, false);
        }
        let next = self.numbers.len() as u32;
        let number = *self.numbers.entry(stream).or_insert(next);
        self.last = Some((stream, number));
        (number, number == next)
    }
}

/// Brings a read-only index up to date with what the writing process has committed since.
/// Returns whether anything new was found.
pub(crate) fn refresh(fs: &dyn Fs, dir: &Path, index: &mut Index) -> Result<bool, StoreError> {
    let before = index.head;
    let segments = list_segments(fs, dir)?;
    loop {
        let known_last = index.segments.last().map(|s| s.first_position);
        let newer: Vec<_> = segments
            .iter()
            .filter(|(first, _)| known_last.is_none_or(|k| *first > k))
            .cloned()
            .collect();
        // Finish the current last segment: sealed if a newer one exists.
        if let Some(info) = index.segments.last() {
            let mode = if newer.is_empty() {
                TailMode::Following
            } else {
                TailMode::Sealed
            };
            let path = info.path.clone();
            let file = info.file.clone();
            let start = info.len;
            let next = index.head + 1;
            let end = scan_segment(&path, &*file, start, next, mode, |records| {
                index.apply_scanned(&path, records)
            })?;
            if let Some(info) = index.segments.last_mut() {
                info.len = end.end;
            }
        }
        let Some((first, path)) = newer.into_iter().next() else {
            break;
        };
        if first != index.head + 1 {
            // Either the writer has not finished the previous segment as far as we can see
            // yet, or the positions between were accepted as lost when it opened.
            let (from, to) = (index.head + 1, first.saturating_sub(1));
            let accepted = first > from
                && read_mark(fs, dir)
                    .ok()
                    .flatten()
                    .is_some_and(|mark| mark.has_gap(from, to));
            if !accepted {
                break;
            }
            index.head = to;
        }
        let file = open_file(fs, &path)?;
        let mut header = [0u8; SEGMENT_HEADER_LEN as usize];
        if file.read_exact_at(&mut header, 0).is_err()
            || parse_segment_header(&header) != Some(first)
        {
            break;
        }
        index.segments.push(SegmentInfo {
            first_position: first,
            path: Arc::from(path.as_path()),
            file,
            offsets: Vec::new(),
            fingerprints: Vec::new(),
            len: SEGMENT_HEADER_LEN,
        });
    }
    Ok(index.head != before)
}
