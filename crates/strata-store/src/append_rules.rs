//! The rules every backend applies to an append before writing it: sizes, the expected
//! version, idempotent repeats, and event ids unique across the log. Written once so that
//! all backends agree; it must not touch storage (backends answer its lookups).

use foldhash::{HashSet, HashSetExt as _};

use strata_core::{EventId, ExpectedVersion, NewEvent, Position, StreamName, Timestamp, Version};

use crate::{AppendResult, StoreError};

/// What an append must do, given the stream's state.
#[derive(Debug)]
pub enum AppendCheck {
    /// Write the events after version `current`.
    Write {
        /// The stream's version before the append.
        current: Version,
    },
    /// The same events were appended before: answer this without writing.
    AlreadyAppended(AppendResult),
    /// Refuse the append.
    Refuse(StoreError),
}

/// Checks that the append is not empty and that each event is within `max_event_bytes`.
pub fn check_event_sizes(
    stream: &StreamName,
    events: &[NewEvent],
    max_event_bytes: usize,
) -> Result<(), StoreError> {
    if events.is_empty() {
        return Err(StoreError::InvalidAppend {
            stream: stream.clone(),
            reason: "an append needs at least one event".to_owned(),
        });
    }
    for (index, event) in events.iter().enumerate() {
        let size = event.size();
        if size > max_event_bytes {
            return Err(StoreError::EventTooLarge {
                stream: stream.clone(),
                index,
                size,
                limit: max_event_bytes,
            });
        }
    }
    Ok(())
}

/// Decides an append against a stream currently at `current`.
///
/// `lookup(version)` returns the id, position and recording time of the stream's event at
/// `version` (1-based, `1..=current`); `find(id)` returns the version of the stream's event with
/// that id, if any. Backends answer them from their index; they are only called when the
/// append might be a repeat.
pub fn check_append(
    stream: &StreamName,
    expected: ExpectedVersion,
    current: Version,
    events: &[NewEvent],
    mut lookup: impl FnMut(Version) -> Result<(EventId, Position, Timestamp), StoreError>,
    mut find: impl FnMut(EventId) -> Result<Option<Version>, StoreError>,
) -> Result<AppendCheck, StoreError> {
    let conflict = || {
        AppendCheck::Refuse(StoreError::WrongExpectedVersion {
            stream: stream.clone(),
            expected,
            actual: current,
        })
    };
    let Some(first) = events.first() else {
        return Ok(AppendCheck::Refuse(StoreError::InvalidAppend {
            stream: stream.clone(),
            reason: "an append needs at least one event".to_owned(),
        }));
    };
    let start = match expected.exact() {
        Some(v) if v == current.0 => return Ok(AppendCheck::Write { current }),
        Some(v) if v > current.0 => return Ok(conflict()),
        // The stream moved past the expected version: a repeat only if the events after
        // it are exactly these.
        Some(v) => Version(v + 1),
        None => {
            let id_known = if current.0 == 0 {
                None
            } else {
                find(first.id)?
            };
            match id_known {
                Some(version) => version,
                None if expected.accepts(current) => return Ok(AppendCheck::Write { current }),
                None => return Ok(conflict()),
            }
        }
    };
    let last = Version(start.0 + events.len() as u64 - 1);
    if last > current {
        return Ok(conflict());
    }
    let mut first_position = Position::ZERO;
    let mut position = Position::ZERO;
    let mut recorded_at = Timestamp::default();
    for (i, event) in events.iter().enumerate() {
        let (id, pos, at) = lookup(Version(start.0 + i as u64))?;
        if id != event.id {
            return Ok(conflict());
        }
        if i == 0 {
            first_position = pos;
        }
        position = pos;
        recorded_at = at;
    }
    Ok(AppendCheck::AlreadyAppended(AppendResult {
        first_version: start,
        last_version: last,
        first_position,
        position,
        recorded_at,
    }))
}

/// Appends at most this long look for an id given twice pair by pair; longer ones hash.
const PAIRWISE_LIMIT: usize = 16;

/// Refuses an append that [`check_append`] said to write if it would store one event id
/// twice: two of its events share an id, or `find(id)` answers the position of a stored
/// event (in any stream) that already has it.
///
/// Call it only for an append that will be written: an exact repeat was answered by
/// `check_append` before and never reaches here. `find` is called once per event, so a
/// backend should answer a miss without I/O (a filter of the ids it holds, say).
pub fn check_unique_ids(
    stream: &StreamName,
    events: &[NewEvent],
    mut find: impl FnMut(EventId) -> Result<Option<Position>, StoreError>,
) -> Result<(), StoreError> {
    let twice = |id: EventId| StoreError::DuplicateEventId {
        stream: stream.clone(),
        id,
        existing: None,
    };
    if events.len() <= PAIRWISE_LIMIT {
        for (i, event) in events.iter().enumerate() {
            if events[..i].iter().any(|e| e.id == event.id) {
                return Err(twice(event.id));
            }
        }
    } else {
        let mut seen = HashSet::with_capacity(events.len());
        for event in events {
            if !seen.insert(event.id) {
                return Err(twice(event.id));
            }
        }
    }
    for event in events {
        if let Some(position) = find(event.id)? {
            return Err(StoreError::DuplicateEventId {
                stream: stream.clone(),
                id: event.id,
                existing: Some(position),
            });
        }
    }
    Ok(())
}
