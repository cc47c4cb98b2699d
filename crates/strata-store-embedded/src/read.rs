//! Reading events by location: positioned reads of byte ranges, never under the index
//! lock, with every record's checksum verified.

use bytes::Bytes;
use strata_core::{EventType, RecordedEvent, StreamName};
use strata_store::StoreError;

use crate::format::parse_record;
use crate::index::Location;

/// Adjacent records closer than this are fetched with one read.
const COALESCE_GAP: u64 = 64 * 1024;
/// The largest single read.
const MAX_READ: u64 = 8 << 20;

/// Reads the events at `locations` (in ascending position order), coalescing neighbours
/// into one read.
pub(crate) fn read_locations(locations: &[Location]) -> Result<Vec<RecordedEvent>, StoreError> {
    let mut events = Vec::with_capacity(locations.len());
    let mut names = NameCache::default();
    let mut i = 0;
    while i < locations.len() {
        let first = &locations[i];
        let mut j = i + 1;
        let mut end = first.end;
        while j < locations.len() {
            let next = &locations[j];
            if next.segment != first.segment
                || next.start < end
                || next.start - end > COALESCE_GAP
                || next.end - first.start > MAX_READ
            {
                break;
            }
            end = next.end;
            j += 1;
        }
        let buf = read_range(first, first.start, end)?;
        for location in &locations[i..j] {
            let rel = (location.start - first.start) as usize;
            let frame = buf.slice(rel..);
            events.push(decode(&frame, location, &mut names)?);
        }
        i = j;
    }
    Ok(events)
}

/// Reads bytes `start..end` of the segment of `location`.
pub(crate) fn read_range(location: &Location, start: u64, end: u64) -> Result<Bytes, StoreError> {
    let buf = location
        .file
        .read_vec_at((end - start) as usize, start)
        .map_err(|e| {
            StoreError::io(
                format!("cannot read {} at offset {start}", location.path.display()),
                e,
            )
        })?;
    Ok(Bytes::from(buf))
}

/// Reuses the last stream name and the last few event types, so decoding a run of
/// events does not allocate a name per event.
#[derive(Default)]
pub(crate) struct NameCache {
    last: Option<StreamName>,
    types: Vec<EventType>,
}

/// Event types remembered by a [`NameCache`].
const TYPE_CACHE: usize = 8;

impl NameCache {
    pub(crate) fn get(&mut self, bytes: &[u8]) -> Result<StreamName, String> {
        if let Some(last) = &self.last
            && last.as_str().as_bytes() == bytes
        {
            return Ok(last.clone());
        }
        let name = StreamName::from_utf8(bytes).map_err(|e| e.to_string())?;
        self.last = Some(name.clone());
        Ok(name)
    }

    pub(crate) fn event_type(&mut self, bytes: &[u8]) -> Result<EventType, String> {
        if let Some(known) = self.types.iter().find(|t| t.as_str().as_bytes() == bytes) {
            return Ok(known.clone());
        }
        let text = std::str::from_utf8(bytes).map_err(|_| "event type is not UTF-8".to_owned())?;
        let event_type = EventType::new(text).map_err(|e| e.to_string())?;
        if self.types.len() >= TYPE_CACHE {
            self.types.remove(0);
        }
        self.types.push(event_type.clone());
        Ok(event_type)
    }
}

/// Decodes the record at the start of `frame`, which must be `location`'s.
pub(crate) fn decode(
    frame: &Bytes,
    location: &Location,
    names: &mut NameCache,
) -> Result<RecordedEvent, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        file: location.path.to_path_buf(),
        offset: location.start,
        reason,
    };
    let view = parse_record(frame).map_err(|e| {
        corrupt(match e {
            crate::format::FrameError::Short => "record is cut short".to_owned(),
            crate::format::FrameError::Bad(reason) => reason,
        })
    })?;
    let stream = names.get(view.stream).map_err(&corrupt)?;
    let event_type = names.event_type(view.event_type).map_err(corrupt)?;
    Ok(crate::format::to_event(
        frame,
        &view,
        location.position,
        stream,
        event_type,
    ))
}
