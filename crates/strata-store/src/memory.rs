//! An in-memory [`EventStore`]: the reference model the conformance suite and property
//! tests compare real backends against, and a store for unit tests of code above it.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;
use strata_core::{
    EventId, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName, Timestamp, Version,
};
use tokio::sync::watch;

use crate::{
    AllPage, AppendCheck, AppendResult, DEFAULT_MAX_EVENT_BYTES, Direction, EventStore,
    EventStream, ReadFilter, StoreError, StreamSummary, catch_up_subscription, check_append,
    check_event_sizes, check_unique_ids, listed,
};

/// An event store that keeps everything in memory. Cloning gives another handle to the
/// same store. Nothing survives the process.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    head: watch::Sender<Position>,
    max_event_bytes: usize,
}

#[derive(Default)]
struct State {
    /// Every event; the event at position p is at index p - 1.
    log: Vec<RecordedEvent>,
    /// Each stream's event positions, version v at index v - 1; ordered by name for
    /// listings.
    streams: BTreeMap<StreamName, Vec<Position>>,
    /// The position of every event by its id: ids are unique across the log.
    ids: HashMap<EventId, Position>,
}

impl MemoryStore {
    /// An empty store with the default event size limit.
    pub fn new() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }

    /// An empty store with a given event size limit.
    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        Self {
            inner: Arc::new(Inner {
                state: Mutex::new(State::default()),
                head: watch::Sender::new(Position::ZERO),
                max_event_bytes,
            }),
        }
    }

    /// The position of the event whose id is `id`, in any stream (ids are unique across
    /// the log).
    pub fn position_of_id(&self, id: EventId) -> Option<Position> {
        self.inner.state.lock().ids.get(&id).copied()
    }

    /// Appends synchronously (the in-memory store never waits).
    pub fn append_now(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        check_event_sizes(stream, &events, self.inner.max_event_bytes)?;
        let mut state = self.inner.state.lock();
        let positions = state.streams.get(stream).map(Vec::as_slice).unwrap_or(&[]);
        let current = Version(positions.len() as u64);
        let log = &state.log;
        let check = check_append(
            stream,
            expected,
            current,
            &events,
            |v| {
                let event = &log[(positions[(v.0 - 1) as usize].0 - 1) as usize];
                Ok((event.id, event.position, event.recorded_at))
            },
            |id| {
                Ok(positions
                    .iter()
                    .position(|p| log[(p.0 - 1) as usize].id == id)
                    .map(|i| Version(i as u64 + 1)))
            },
        )?;
        match check {
            AppendCheck::Refuse(err) => Err(err),
            AppendCheck::AlreadyAppended(result) => Ok(result),
            AppendCheck::Write { current } => {
                check_unique_ids(stream, &events, |id| Ok(state.ids.get(&id).copied()))?;
                let now = Timestamp::from_datetime(time_now());
                let first_position = Position(state.log.len() as u64 + 1);
                let count = events.len() as u64;
                let mut new_positions = Vec::with_capacity(events.len());
                for (i, event) in events.into_iter().enumerate() {
                    let position = Position(first_position.0 + i as u64);
                    new_positions.push(position);
                    state.ids.insert(event.id, position);
                    state.log.push(RecordedEvent {
                        position,
                        stream: stream.clone(),
                        version: Version(current.0 + i as u64 + 1),
                        id: event.id,
                        event_type: event.event_type,
                        data: event.data,
                        metadata: event.metadata,
                        recorded_at: now,
                    });
                }
                state
                    .streams
                    .entry(stream.clone())
                    .or_default()
                    .extend(new_positions);
                let last = Position(first_position.0 + count - 1);
                // NOTE: publish the head while still holding the lock. Published after it,
                // two racing appends could publish out of order (the head would go back)
                // and a read could see events the head does not cover yet.
                self.inner.head.send_replace(last);
                drop(state);
                Ok(AppendResult {
                    first_version: Version(current.0 + 1),
                    last_version: Version(current.0 + count),
                    first_position,
                    position: last,
                    recorded_at: now,
                })
            }
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

fn time_now() -> ::time::OffsetDateTime {
    ::time::OffsetDateTime::now_utc()
}

#[async_trait]
impl EventStore for MemoryStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.append_now(stream, expected, events)
    }

    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Version>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let state = self.inner.state.lock();
        let Some(positions) = state.streams.get(stream) else {
            return Ok(Vec::new());
        };
        let pick = |p: &Position| state.log[(p.0 - 1) as usize].clone();
        Ok(match direction {
            Direction::Forward => {
                let start = from.map_or(0, |v| v.0.saturating_sub(1)) as usize;
                positions.iter().skip(start).take(limit).map(pick).collect()
            }
            Direction::Backward => {
                let len = positions.len() as u64;
                let end = from.map_or(len, |v| v.0.min(len)) as usize;
                positions[..end]
                    .iter()
                    .rev()
                    .take(limit)
                    .map(pick)
                    .collect()
            }
        })
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<AllPage, StoreError> {
        let state = self.inner.state.lock();
        let start = from.0.max(1);
        let mut events = Vec::new();
        let mut next = start;
        for event in state.log.iter().skip((start - 1) as usize) {
            if events.len() >= limit {
                break;
            }
            next = event.position.0 + 1;
            if filter.matches(&event.stream, event.event_type.as_str()) {
                events.push(event.clone());
            }
        }
        Ok(AllPage {
            events,
            next: Position(next.max(start)),
        })
    }

    async fn event_by_id(
        &self,
        stream: &StreamName,
        id: EventId,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        let state = self.inner.state.lock();
        Ok(state
            .ids
            .get(&id)
            .map(|p| &state.log[(p.0 - 1) as usize])
            .filter(|event| event.stream == *stream)
            .cloned())
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Version, StoreError> {
        let state = self.inner.state.lock();
        Ok(Version(
            state.streams.get(stream).map_or(0, |p| p.len() as u64),
        ))
    }

    async fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        let state = self.inner.state.lock();
        Ok(listed(&state.streams, prefix, after)
            .take(limit)
            .filter_map(|(name, positions)| {
                Some(StreamSummary {
                    stream: name.clone(),
                    version: Version(positions.len() as u64),
                    last_position: *positions.last()?,
                })
            })
            .collect())
    }

    async fn head(&self) -> Result<Position, StoreError> {
        Ok(*self.inner.head.borrow())
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.inner.head.subscribe()
    }

    fn subscribe(&self, after: Position, filter: ReadFilter) -> EventStream {
        catch_up_subscription(self.clone(), after, filter)
    }
}
