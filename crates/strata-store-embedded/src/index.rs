//! The in-memory index: stream → event positions, position → segment and offset, and the
//! id filter; plus the per-segment index files (`.idx`) that let a store open without
//! rescanning sealed segments.
//!
//! The index only ever grows, and only by whole batches that are already durable; readers
//! see a batch completely or not at all.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use strata_core::{Position, StreamName, Version};
use strata_store::{StoreError, StreamSummary};

use crate::bloom::IdFilter;
use crate::io::{FileRef, Fs};
use crate::room::{grow_ahead, spare};
use crate::scan::ScannedRecord;
use crate::streams::{NameOrder, NameSnapshot, Positions, StreamTable};

/// A segment file and where its events are.
pub(crate) struct SegmentInfo {
    pub(crate) first_position: u64,
    pub(crate) path: Arc<Path>,
    /// A read handle shared by all readers.
    pub(crate) file: FileRef,
    /// Offset of each event's record frame, by `position - first_position`.
    pub(crate) offsets: Vec<u32>,
    /// A 16-bit fingerprint of each event's id, by `position - first_position`: lets an
    /// id search skip reading all but about one in 65,536 events whose id differs.
    pub(crate) fingerprints: Vec<u16>,
    /// Bytes of the segment that hold committed batches.
    pub(crate) len: u64,
}

impl SegmentInfo {
    /// The file offset of `position`'s record and the end of the byte range holding it
    /// (the next record's start or the committed end).
    fn span(&self, position: u64) -> Option<(u64, u64)> {
        let i = position.checked_sub(self.first_position)? as usize;
        let start = u64::from(*self.offsets.get(i)?);
        let end = self.offsets.get(i + 1).map_or(self.len, |&o| u64::from(o));
        Some((start, end))
    }
}

/// Where one event's bytes are.
#[derive(Clone)]
pub(crate) struct Location {
    pub(crate) position: u64,
    pub(crate) file: FileRef,
    pub(crate) path: Arc<Path>,
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) segment: usize,
}

#[derive(Default)]
pub(crate) struct Index {
    pub(crate) segments: Vec<SegmentInfo>,
    /// Every stream's name and event positions (see [`StreamTable`]).
    pub(crate) streams: StreamTable,
    /// The stream ids ordered by name, for listings; `None` until the first listing builds
    /// it (see [`Index::names_to_sort`]), then kept up to date by [`Index::intern`]. Kept
    /// beside the hash table rather than instead of it: appends and reads look streams up
    /// by name far more often than anyone lists them, and an ordered insert per stream
    /// would cost several times a hash insert when opening a large store that is never
    /// listed. It holds ids, not names: 4 to 8 bytes per stream once built.
    pub(crate) names: Option<NameOrder>,
    /// The last committed position (0 when empty).
    pub(crate) head: u64,
    pub(crate) ids: IdFilter,
    /// The last position whose id [`Index::ids`] holds: the writer notes a batch's ids
    /// while the syncer makes it durable (see [`Index::note_ids`]), so it may be past
    /// `head`, never short of it.
    pub(crate) ids_through: u64,
}

impl Index {
    /// The id of `stream`, registering it if new.
    pub(crate) fn intern(&mut self, stream: &StreamName) -> u32 {
        let known = self.streams.len();
        let id = self.streams.intern(stream.as_str());
        if id as usize >= known
            && let Some(names) = &mut self.names
        {
            names.insert(&self.streams, id);
        }
        id
    }

    /// The id of a stream given as bytes from disk, registering it if new.
    pub(crate) fn intern_bytes(
        &mut self,
        bytes: &[u8],
        path: &Path,
        offset: u64,
    ) -> Result<u32, StoreError> {
        if let Some(id) = self.streams.id(bytes) {
            return Ok(id);
        }
        let name = StreamName::from_utf8(bytes).map_err(|e| StoreError::Corrupt {
            file: path.to_owned(),
            offset,
            reason: e.to_string(),
        })?;
        Ok(self.intern(&name))
    }

    /// The positions of `name`'s events, if the stream is known.
    pub(crate) fn stream(&self, name: &StreamName) -> Option<Positions<'_>> {
        self.stream_with_id(name).map(|(_, positions)| positions)
    }

    /// The id of stream `name` and the positions of its events, if the stream is known.
    pub(crate) fn stream_with_id(&self, name: &StreamName) -> Option<(u32, Positions<'_>)> {
        self.streams
            .id(name.as_str().as_bytes())
            .map(|id| (id, self.streams.positions(id)))
    }

    /// The stream's version (0 if it does not exist).
    pub(crate) fn version(&self, name: &StreamName) -> u64 {
        self.stream(name).map_or(0, |s| s.len() as u64)
    }

    /// Up to `limit` streams for [`strata_store::EventStore::list_streams`], or `None`
    /// if the ordered names are not built yet. Only streams with a published event are
    /// listed: the index registers a stream with the batch that holds its first event,
    /// but a stream may be interned before that (opening reads a segment's stream table
    /// first).
    pub(crate) fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Option<Vec<StreamSummary>> {
        let names = self.names.as_ref()?;
        // Every name with the prefix sorts at or after the prefix itself, so the listing
        // starts at whichever of the two bounds is later.
        let (from, inclusive) = match after {
            Some(after) if after >= prefix => (after, false),
            _ => (prefix, true),
        };
        Some(
            names
                .from(&self.streams, from, inclusive)
                .map(|id| (self.streams.name(id), id))
                .take_while(|(name, _)| name.starts_with(prefix))
                .filter_map(|(name, id)| {
                    let positions = self.streams.positions(id);
                    let last_position = Position(positions.last()?);
                    Some(StreamSummary {
                        stream: StreamName::new(name).ok()?,
                        version: Version(positions.len() as u64),
                        last_position,
                    })
                })
                .take(limit)
                .collect(),
        )
    }

    /// A copy of every stream's name, to sort outside the lock into the ordered names
    /// ([`NameSnapshot::sorted_ids`]); it holds the ids `0..len`. The ids are dense and
    /// only grow, so the streams interned after this copy are exactly the ids from its
    /// length on.
    pub(crate) fn names_to_sort(&self) -> NameSnapshot {
        self.streams.snapshot_names()
    }

    /// Installs the ordered names built from [`Index::names_to_sort`]: `sorted` holds the
    /// ids `0..known` in name order; the streams interned since are added. If another
    /// listing installed its own first, gives `sorted` back, for the caller to drop
    /// outside the lock.
    pub(crate) fn install_names(&mut self, sorted: Vec<u32>, known: usize) -> Option<Vec<u32>> {
        if self.names.is_some() {
            return Some(sorted);
        }
        let mut names = NameOrder::from_sorted(&sorted);
        for id in known..self.streams.len() {
            names.insert(&self.streams, id as u32);
        }
        self.names = Some(names);
        None
    }

    /// Records one event of the last segment. Events arrive in position order. Its id goes
    /// into the id filter with [`Index::note_published`], which the caller calls for a run
    /// of events at a time, under the same lock.
    pub(crate) fn push(&mut self, stream: u32, position: u64, offset: u64, id: &[u8; 16]) {
        self.streams.push(stream, position);
        if let Some(segment) = self.segments.last_mut() {
            segment.offsets.push(offset as u32);
            segment.fingerprints.push(fingerprint(id));
        }
        self.head = position;
    }

    /// Whether the active segment's tables have room for `events` more events without
    /// growing.
    pub(crate) fn has_room(&self, events: usize) -> bool {
        self.segments.last().is_none_or(|segment| {
            spare(&segment.offsets) >= events && spare(&segment.fingerprints) >= events
        })
    }

    /// Grows the active segment's tables, if needed, so that the next `events` pushes
    /// find their memory allocated and mapped (see [`grow_ahead`]).
    pub(crate) fn make_room(&mut self, events: usize) {
        if let Some(segment) = self.segments.last_mut() {
            grow_ahead(&mut segment.offsets, events);
            grow_ahead(&mut segment.fingerprints, events);
        }
    }

    /// Adds the ids of events at `positions` (ascending) to the id filter, skipping any
    /// already there. The writer calls it for a batch it has written, while the syncer's
    /// fdatasync runs, so publishing the batch has its ids to skip; whichever of the two
    /// takes the index first adds them, under the same lock that publishes, so a
    /// published id is always in the filter. An id of an event never published (its
    /// fdatasync failed) stays in the filter: a false "may hold" costs a search, no more.
    ///
    /// It stops at the first position that does not follow the last noted one: a batch
    /// written while an earlier one's ids were left to the syncer waits for the syncer
    /// too, since noting it would mark the earlier positions as noted.
    pub(crate) fn note_ids<'a>(&mut self, ids: impl IntoIterator<Item = (&'a [u8; 16], u64)>) {
        self.note(ids, true);
    }

    /// Adds the ids of events just published or loaded (ascending positions) to the id
    /// filter, skipping those [`Index::note_ids`] added already. Unlike it, a gap in the
    /// positions (events accepted as lost) does not stop it.
    pub(crate) fn note_published<'a>(
        &mut self,
        ids: impl IntoIterator<Item = (&'a [u8; 16], u64)>,
    ) {
        self.note(ids, false);
    }

    /// Hands the filter the ids above the last noted position, all at once, stopping at
    /// the first that does not follow on if `stop_at_gap`.
    fn note<'a>(&mut self, ids: impl IntoIterator<Item = (&'a [u8; 16], u64)>, stop_at_gap: bool) {
        let mut through = self.ids_through;
        let mut ids = ids.into_iter();
        let fresh = std::iter::from_fn(|| {
            for (id, position) in ids.by_ref() {
                if position <= through {
                    continue;
                }
                if stop_at_gap && position != through + 1 {
                    return None;
                }
                through = position;
                return Some((id, position));
            }
            None
        });
        self.ids.insert_all(fresh);
        self.ids_through = through;
    }

    /// Applies a scanned batch of the last segment, checking that every stream's versions
    /// continue without a gap.
    pub(crate) fn apply_scanned(
        &mut self,
        path: &Path,
        records: &[ScannedRecord<'_>],
    ) -> Result<(), StoreError> {
        // The ids of the records pushed go to the filter together, also when a record
        // is refused partway: the index stays in use after a failed refresh.
        let mut pushed = 0;
        let result = (|| {
            for record in records {
                let stream = self.intern_bytes(record.view.stream, path, record.offset)?;
                let expected = self.streams.count(stream) + 1;
                if record.view.version != expected {
                    return Err(version_gap(
                        path,
                        record,
                        self.streams.name(stream),
                        expected,
                    ));
                }
                self.push(stream, record.position, record.offset, &record.view.id);
                pushed += 1;
            }
            Ok(())
        })();
        self.note_published(records[..pushed].iter().map(|r| (&r.view.id, r.position)));
        result
    }

    /// The positions among `positions` (ascending) whose event id may be `id`: those whose
    /// stored fingerprint matches. Found without I/O.
    pub(crate) fn candidates(&self, positions: Positions<'_>, id: &[u8; 16]) -> Vec<u64> {
        let wanted = fingerprint(id);
        let mut out = Vec::new();
        let mut segment = 0usize;
        for position in positions.iter() {
            // Positions ascend, so the segment only ever moves forward.
            while segment + 1 < self.segments.len()
                && self.segments[segment + 1].first_position <= position
            {
                segment += 1;
            }
            let Some(info) = self.segments.get(segment) else {
                break;
            };
            let slot = position
                .checked_sub(info.first_position)
                .map(|i| i as usize);
            if slot.and_then(|i| info.fingerprints.get(i)) == Some(&wanted) {
                out.push(position);
            }
        }
        out
    }

    /// Every committed position whose event id may be `id` (its fingerprint matches), in
    /// any stream, ascending; empty when the id filter says the id was never stored. Found
    /// without I/O, in one pass over the fingerprints of only the positions the filter's
    /// generations that may hold the id cover (see [`IdFilter::maybe_ranges`]).
    pub(crate) fn candidates_in_log(&self, id: &[u8; 16]) -> Vec<u64> {
        let wanted = fingerprint(id);
        let mut out = Vec::new();
        for (low, high) in self.ids.maybe_ranges(id) {
            let first = self.segment_of(low).unwrap_or(0);
            for segment in self.segments.iter().skip(first) {
                if segment.first_position > high {
                    break;
                }
                let from = low.saturating_sub(segment.first_position) as usize;
                let to = (high - segment.first_position)
                    .saturating_add(1)
                    .min(segment.fingerprints.len() as u64) as usize;
                if let Some(slots) = segment.fingerprints.get(from..to) {
                    matching_slots(slots, wanted, |slot| {
                        out.push(segment.first_position + (from + slot) as u64);
                    });
                }
            }
        }
        out
    }

    /// How many events the store holds (fewer than `head` after an accepted loss).
    pub(crate) fn events(&self) -> u64 {
        self.segments.iter().map(|s| s.offsets.len() as u64).sum()
    }

    /// Finds the segment holding `position`.
    pub(crate) fn segment_of(&self, position: u64) -> Option<usize> {
        let i = self
            .segments
            .partition_point(|s| s.first_position <= position);
        i.checked_sub(1)
    }

    /// Where `position`'s bytes are, if it is committed.
    pub(crate) fn locate(&self, position: u64) -> Option<Location> {
        if position == 0 || position > self.head {
            return None;
        }
        let segment = self.segment_of(position)?;
        let info = &self.segments[segment];
        let (start, end) = info.span(position)?;
        Some(Location {
            position,
            file: info.file.clone(),
            path: info.path.clone(),
            start,
            end,
            segment,
        })
    }

    /// Where the event at `position` is, for a position the index itself listed (in a
    /// stream's positions): a missing location is an internal fault, not a closed store.
    pub(crate) fn location(&self, position: u64) -> Result<Location, StoreError> {
        self.locate(position).ok_or_else(|| {
            StoreError::internal(format!(
                "the index lists position {position} but has no location for it (head {})",
                self.head
            ))
        })
    }
}

/// The error for a scanned record whose version does not follow its stream's last one.
pub(crate) fn version_gap(
    path: &Path,
    record: &ScannedRecord<'_>,
    stream: &str,
    expected: u64,
) -> StoreError {
    StoreError::Corrupt {
        file: path.to_owned(),
        offset: record.offset,
        reason: format!(
            "event at position {} has version {} in stream {stream} but {expected} was expected",
            record.position, record.view.version,
        ),
    }
}

/// The fingerprint of an event id kept in memory per event.
pub(crate) fn fingerprint(id: &[u8; 16]) -> u16 {
    let word = |i: usize| u32::from_le_bytes([id[i], id[i + 1], id[i + 2], id[i + 3]]);
    // UUIDv7 ids share their leading (time) bytes: mix all four words.
    let mixed =
        (word(0) ^ word(4).rotate_left(7) ^ word(8).rotate_left(13) ^ word(12).rotate_left(19))
            .wrapping_mul(0x9e37_79b1);
    (mixed >> 16) as u16
}

/// Calls `found` with every slot of `fingerprints` that holds `wanted`, ascending.
///
/// NOTE: the fingerprints of a whole generation of the id filter are scanned on each of
/// its false positives, so this runs over up to millions of entries. Blocks are first tested with a comparison that
/// has no early exit, which the compiler turns into a few vector instructions per block;
/// only a block that holds a match (about one in a thousand) is walked entry by entry.
pub(crate) fn matching_slots(fingerprints: &[u16], wanted: u16, mut found: impl FnMut(usize)) {
    const BLOCK: usize = 64;
    let mut blocks = fingerprints.chunks_exact(BLOCK);
    let mut base = 0;
    for block in &mut blocks {
        if block.iter().fold(false, |any, &f| any | (f == wanted)) {
            for (i, &f) in block.iter().enumerate() {
                if f == wanted {
                    found(base + i);
                }
            }
        }
        base += BLOCK;
    }
    for (i, &f) in blocks.remainder().iter().enumerate() {
        if f == wanted {
            found(base + i);
        }
    }
}

/// Magic of an index file.
const INDEX_MAGIC: &[u8; 8] = b"STRATIX1";

/// The path of the index file of a segment.
pub(crate) fn index_path(segment: &Path) -> PathBuf {
    segment.with_extension("idx")
}

/// What a sealed segment's index file holds, read from the file's checked bytes where
/// they lie: opening a store reads one of these per segment, and a copy of its tables
/// (about the file's size again, and an allocation per stream name) would be freed
/// memory the allocator keeps resident after the open.
pub(crate) struct SegmentIndexFile {
    pub(crate) first_position: u64,
    pub(crate) segment_len: u64,
    bytes: Vec<u8>,
    /// Where each stream's name lies in `bytes`.
    names: Vec<(u32, u8)>,
    /// Where the event table starts in `bytes`.
    table: usize,
}

impl SegmentIndexFile {
    /// The name of stream number `stream`.
    pub(crate) fn stream(&self, stream: u32) -> Option<&[u8]> {
        let &(at, len) = self.names.get(stream as usize)?;
        self.bytes.get(at as usize..at as usize + len as usize)
    }

    /// The stream names, in number order.
    pub(crate) fn streams(&self) -> impl ExactSizeIterator<Item = &[u8]> {
        self.names
            .iter()
            .map(|&(at, len)| &self.bytes[at as usize..at as usize + len as usize])
    }

    /// Per event: its stream's number, its record's offset, its id.
    pub(crate) fn events(&self) -> impl ExactSizeIterator<Item = (u32, u32, &[u8; 16])> {
        let table = &self.bytes[self.table..self.bytes.len() - 4];
        table.chunks_exact(24).map(|chunk| {
            let (stream, rest) = chunk.split_at(4);
            let (offset, id) = rest.split_at(4);
            (
                u32::from_le_bytes(stream.try_into().unwrap_or_default()),
                u32::from_le_bytes(offset.try_into().unwrap_or_default()),
                id.try_into().unwrap_or(&[0; 16]),
            )
        })
    }
}

/// Bytes of an index file written with one `pwrite`.
const INDEX_CHUNK: usize = 256 * 1024;

/// Writes a sealed segment's index file (atomically: temp file, then rename): `streams`
/// are the names its events refer to by number, `events` each event's stream number,
/// record offset and id, in position order. The file is not fsync'd: a missing or torn
/// index file is detected by its checksum and rebuilt by scanning the segment.
///
/// It is written in chunks through one small buffer: a segment's table runs to tens of
/// MiB, and a buffer of its size would be fresh memory, every page of it zeroed by the
/// kernel, while the syncer seals and the next batches wait.
pub(crate) fn write_index_file<'a>(
    fs: &dyn Fs,
    path: &Path,
    first_position: u64,
    segment_len: u64,
    streams: &[&[u8]],
    events: impl ExactSizeIterator<Item = (u32, u32, &'a [u8; 16])>,
) -> std::io::Result<()> {
    let tmp = path.with_extension("idx.tmp");
    let mut out = ChunkedWriter {
        file: fs.create(&tmp)?,
        buf: Vec::with_capacity(INDEX_CHUNK + 256),
        offset: 0,
        crc: 0,
    };
    out.put(INDEX_MAGIC)?;
    out.put(&first_position.to_le_bytes())?;
    out.put(&(events.len() as u64).to_le_bytes())?;
    out.put(&segment_len.to_le_bytes())?;
    out.put(&(streams.len() as u32).to_le_bytes())?;
    for name in streams {
        out.put(&[name.len() as u8])?;
        out.put(name)?;
    }
    for (stream, offset, id) in events {
        out.put(&stream.to_le_bytes())?;
        out.put(&offset.to_le_bytes())?;
        out.put(id)?;
    }
    out.finish()?;
    fs.rename(&tmp, path)
}

/// Writes a file front to back through one buffer, keeping the CRC32C of what it wrote.
struct ChunkedWriter {
    file: FileRef,
    buf: Vec<u8>,
    offset: u64,
    crc: u32,
}

impl ChunkedWriter {
    fn put(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.buf.extend_from_slice(bytes);
        if self.buf.len() >= INDEX_CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.crc = crc32c::crc32c_append(self.crc, &self.buf);
        self.file.write_all_at(&self.buf, self.offset)?;
        self.offset += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes what is buffered, then the CRC32C of everything before it.
    fn finish(mut self) -> std::io::Result<()> {
        self.flush()?;
        self.file.write_all_at(&self.crc.to_le_bytes(), self.offset)
    }
}

/// Reads and checks an index file; `Err` says why it cannot be used.
pub(crate) fn read_index_file(fs: &dyn Fs, path: &Path) -> Result<SegmentIndexFile, String> {
    let bytes = fs.read(path).map_err(|e| e.to_string())?;
    decode_index_file(bytes)
}

/// Checks the bytes of an index file and finds its tables in them.
pub(crate) fn decode_index_file(bytes: Vec<u8>) -> Result<SegmentIndexFile, String> {
    if bytes.len() < 40 || &bytes[..8] != INDEX_MAGIC {
        return Err("not an index file".to_owned());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(crc.try_into().unwrap_or_default());
    if crc32c::crc32c(body) != stored {
        return Err("index file checksum mismatch".to_owned());
    }
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap_or_default());
    let first_position = u64_at(8);
    let count = u64_at(16) as usize;
    let segment_len = u64_at(24);
    let stream_count = u32::from_le_bytes(body[32..36].try_into().unwrap_or_default()) as usize;
    let mut at = 36;
    let mut names = Vec::with_capacity(stream_count.min(body.len()));
    for _ in 0..stream_count {
        let len = *body.get(at).ok_or("truncated stream table")?;
        if body.len() < at + 1 + len as usize {
            return Err("truncated stream table".to_owned());
        }
        let start = u32::try_from(at + 1).map_err(|_| "index file too large".to_owned())?;
        names.push((start, len));
        at += 1 + len as usize;
    }
    // A count so large that its table's length overflows is as wrong as any other.
    if count.checked_mul(24) != Some(body.len() - at) {
        return Err("event table length does not match its count".to_owned());
    }
    for chunk in body[at..].chunks_exact(24) {
        let stream = u32::from_le_bytes(chunk[0..4].try_into().unwrap_or_default());
        if stream as usize >= names.len() {
            return Err("event names a stream outside the table".to_owned());
        }
    }
    Ok(SegmentIndexFile {
        first_position,
        segment_len,
        bytes,
        names,
        table: at,
    })
}

#[cfg(test)]
mod tests;
