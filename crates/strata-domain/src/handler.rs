//! The command handler: load (snapshot, then newer events), decide, append with the
//! expected version, retry a bounded number of times on conflict, and de-duplicate by
//! command id. Also loading as of a version or a time, and an aggregate's history.
//!
//! The handler keeps the state it last decided on for recently used aggregates (the
//! aggregate cache), so the next command to one of them skips the load. A cached state is
//! only trusted where the store checks it: its events are appended expecting its version,
//! so a state that another writer made stale is refused and the command is decided again
//! on a fresh load. A command that a cached state refuses or finds nothing to do is
//! decided again on a fresh load too, since nothing written would tell.

use std::any::Any;
use std::sync::Arc;

use bytes::Bytes;
use strata_core::{
    CoreError, EventId, EventType, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName,
    Timestamp, Version, metadata_keys,
};
use strata_store::{AppendResult, Direction, EventStore, StoreError};

use crate::{
    Aggregate, COMMAND_ID_KEY, CodecError, CommandContext, EventCodec, REQUEST_DIGEST_KEY,
    Snapshot, SnapshotError, SnapshotStore, Upcasters, decode_state, derived_event_id,
    encode_state,
};

/// Events read per page while loading.
const LOAD_PAGE: usize = 1024;

/// Why a command was not applied.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError<E> {
    /// A rule of the domain refused the command. Nothing was written.
    #[error("{0}")]
    Domain(E),
    /// Other writers kept changing the aggregate; every attempt conflicted.
    #[error("stream {stream} kept changing: {attempts} attempts conflicted")]
    Conflict {
        /// The aggregate's stream.
        stream: StreamName,
        /// How many times the command was decided.
        attempts: u32,
    },
    /// The aggregate id makes an invalid stream name.
    #[error(transparent)]
    InvalidId(#[from] CoreError),
    /// A stored event could not be decoded.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// The command id was already used for another command: another aggregate (its
    /// event ids are taken in the log), or the same aggregate with another request
    /// digest. Nothing was written; the caller reused an idempotency key and must send
    /// this command under a new one.
    #[error("command id {command_id} was already used for another command ({reason})")]
    CommandIdReused {
        /// The reused command id.
        command_id: uuid::Uuid,
        /// The stream this command was meant for.
        stream: StreamName,
        /// How the reuse showed.
        reason: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a handled command did.
#[derive(Debug, Clone)]
pub struct CommandOutcome {
    /// The aggregate's stream.
    pub stream: StreamName,
    /// The consistency token: the position of the command's last event (for a command that
    /// decided nothing, of the stream's last event, or 0).
    pub position: Position,
    /// The stream's version after the command.
    pub version: Version,
    /// The events the command appended, as stored (`recorded_at` is the store's, from the
    /// append's result).
    pub events: Vec<RecordedEvent>,
    /// Whether the command id had been handled before (nothing was written this time).
    /// A copy racing the first one to the store may also answer `false`: the store
    /// acknowledges a repeated append like the original.
    pub duplicate: bool,
}

/// An aggregate's state as loaded.
#[derive(Debug, Clone)]
pub struct Loaded<A> {
    /// The state.
    pub state: A,
    /// The stream version it includes (0: no events).
    pub version: Version,
    /// The position of the last event it includes (0: none).
    pub position: Position,
    /// The snapshot it started from, if one was used.
    pub snapshot: Option<Version>,
}

/// One event of an aggregate's history: what happened, when, who asked, and why.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HistoryEntry {
    /// Global position.
    pub position: u64,
    /// Version in the stream.
    pub version: u64,
    /// Event id.
    pub id: String,
    /// Event type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it was recorded.
    pub recorded_at: Timestamp,
    /// Who asked (`actor` metadata).
    pub actor: Option<String>,
    /// The command that caused it.
    pub command_id: Option<String>,
    /// What caused the command (an event id for a process manager's command).
    pub causation_id: Option<String>,
    /// The request it belongs to.
    pub correlation_id: Option<String>,
    /// The payload.
    pub data: serde_json::Value,
}

/// An aggregate's full history.
pub type History = Vec<HistoryEntry>;

/// Settings of a [`CommandHandler`].
#[derive(Debug, Clone, Copy)]
pub struct HandlerOptions {
    /// How many times a command is decided on a fresh load before a conflict is given up
    /// on (a decision on a cached state that turned out stale does not count).
    pub max_attempts: u32,
    /// How many aggregates' latest states the handler keeps to decide their next command
    /// without loading them (the least recently used go first); 0 keeps none.
    pub cached_aggregates: usize,
}

impl Default for HandlerOptions {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            cached_aggregates: 1024,
        }
    }
}

/// The aggregate cache: per stream, the state the handler last appended events of or
/// loaded, as a type-erased [`Loaded`]. A command takes its aggregate's entry out while
/// it decides and puts the new state back once its events are appended, so a command
/// never copies one; a command that fails leaves none. [`CommandHandler::load`] starts
/// from a copy of the entry and reads only the events appended after it.
struct AggregateCache {
    /// Per stream, a `Loaded<A>` of the aggregate's type.
    entries: parking_lot::Mutex<hashlink::LruCache<StreamName, Box<dyn Any + Send>>>,
}

impl AggregateCache {
    fn new(capacity: usize) -> Option<Self> {
        (capacity > 0).then(|| Self {
            entries: parking_lot::Mutex::new(hashlink::LruCache::new(capacity)),
        })
    }

    /// Takes `stream`'s state out, if it is cached as an `A`.
    fn take<A: Aggregate>(&self, stream: &StreamName) -> Option<Loaded<A>> {
        let entry = self.entries.lock().remove(stream)?;
        entry.downcast::<Loaded<A>>().ok().map(|loaded| *loaded)
    }

    /// A copy of `stream`'s state, if it is cached as an `A`.
    fn get<A: Aggregate>(&self, stream: &StreamName) -> Option<Loaded<A>> {
        let mut entries = self.entries.lock();
        entries.get(stream)?.downcast_ref::<Loaded<A>>().cloned()
    }

    /// Caches `loaded` as `stream`'s state, unless a command that appended after it put a
    /// newer one already.
    fn put<A: Aggregate>(&self, stream: StreamName, loaded: Loaded<A>) {
        let mut entries = self.entries.lock();
        if entries
            .peek(&stream)
            .and_then(|entry| entry.downcast_ref::<Loaded<A>>())
            .is_some_and(|cached| cached.version > loaded.version)
        {
            return;
        }
        entries.insert(stream, Box::new(loaded));
    }
}

/// Handles commands against aggregates stored in an event store. Clones share the
/// aggregate cache.
#[derive(Clone)]
pub struct CommandHandler {
    store: Arc<dyn EventStore>,
    snapshots: Arc<dyn SnapshotStore>,
    upcasters: Arc<Upcasters>,
    options: HandlerOptions,
    cache: Option<Arc<AggregateCache>>,
}

impl CommandHandler {
    /// A handler over `store`, keeping snapshots in `snapshots`.
    pub fn new(store: Arc<dyn EventStore>, snapshots: Arc<dyn SnapshotStore>) -> Self {
        Self {
            store,
            snapshots,
            upcasters: Arc::new(Upcasters::new()),
            options: HandlerOptions::default(),
            cache: AggregateCache::new(HandlerOptions::default().cached_aggregates).map(Arc::new),
        }
    }

    /// Uses these upcasters when reading events.
    #[must_use]
    pub fn with_upcasters(mut self, upcasters: Upcasters) -> Self {
        self.upcasters = Arc::new(upcasters);
        self
    }

    /// Uses these settings (with a new, empty aggregate cache of their size).
    #[must_use]
    pub fn with_options(mut self, options: HandlerOptions) -> Self {
        self.options = options;
        self.cache = AggregateCache::new(options.cached_aggregates).map(Arc::new);
        self
    }

    /// The store this handler appends to.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// The upcasters this handler reads with.
    pub fn upcasters(&self) -> &Upcasters {
        &self.upcasters
    }

    /// The stream of aggregate `id`.
    pub fn stream_of<A: Aggregate>(id: &str) -> Result<StreamName, CoreError> {
        StreamName::new(format!("{}-{id}", A::CATEGORY))
    }

    /// Handles `command` for aggregate `id`: loads it (or takes its cached state), decides,
    /// and appends the events expecting the version it decided on, deciding again on a
    /// fresh load after a conflict (at most `max_attempts` times). A command id seen
    /// before answers the first outcome.
    pub async fn handle<A: Aggregate>(
        &self,
        id: &str,
        command: &A::Command,
        context: &CommandContext,
    ) -> Result<CommandOutcome, CommandError<A::Error>> {
        let stream = Self::stream_of::<A>(id)?;
        let mut attempts = 0;
        let mut cached = self.cache.as_ref().and_then(|c| c.take::<A>(&stream));
        loop {
            let from_cache = cached.is_some();
            let loaded = match cached.take() {
                Some(loaded) => loaded,
                None => {
                    attempts += 1;
                    let first_id = derived_event_id(context.command_id, 0);
                    let (loaded, seen) = self
                        .load_stream_from::<A>(&stream, None, Some(first_id), None)
                        .await?;
                    // NOTE: look for the command id after loading, never before: a copy of
                    // this command committed between the look and the load would be in the
                    // loaded state, and deciding again would apply it twice (or refuse it).
                    // Looked for after, a copy committed later makes the append conflict or
                    // repeat. A load that replayed the whole stream (no snapshot) and did
                    // not meet the command's first event id has looked already: the store
                    // need not be asked.
                    if (loaded.snapshot.is_some() || seen)
                        && let Some(outcome) = self.previous_outcome(&stream, context).await?
                    {
                        return Ok(outcome);
                    }
                    loaded
                }
            };
            let decided = match loaded.state.decide(command) {
                Ok(decided) if !decided.is_empty() => decided,
                // NOTE: a cached state may be stale, and a refusal or a decision to do
                // nothing writes nothing that would tell: decide again on a fresh load.
                _ if from_cache => continue,
                Err(err) => return Err(CommandError::Domain(err)),
                Ok(_) => {
                    return Ok(CommandOutcome {
                        stream,
                        position: loaded.position,
                        version: loaded.version,
                        events: Vec::new(),
                        duplicate: false,
                    });
                }
            };
            let new_events = encode_all::<A>(&decided, context)?;
            match self
                .store
                .append(
                    &stream,
                    ExpectedVersion::Exact(loaded.version.0),
                    new_events.clone(),
                )
                .await
            {
                Ok(result) => {
                    let snapshotted = self
                        .maybe_snapshot(&stream, &loaded, &decided, result.last_version)
                        .await;
                    let recorded = recorded(&stream, new_events, &result);
                    if let Some(cache) = &self.cache {
                        let snapshot = if snapshotted {
                            Some(result.last_version)
                        } else {
                            loaded.snapshot
                        };
                        let state = decided.iter().fold(loaded.state, |s, e| s.evolve(e));
                        cache.put(
                            stream.clone(),
                            Loaded {
                                state,
                                version: result.last_version,
                                position: result.position,
                                snapshot,
                            },
                        );
                    }
                    return Ok(CommandOutcome {
                        stream,
                        position: result.position,
                        version: result.last_version,
                        events: recorded,
                        duplicate: false,
                    });
                }
                // The cached state was stale (another writer appended), or this very
                // command was applied before and its ids are in the stream: a fresh load
                // tells which, and does not count as an attempt.
                Err(
                    StoreError::WrongExpectedVersion { .. } | StoreError::DuplicateEventId { .. },
                ) if from_cache => {}
                // Someone else appended meanwhile, perhaps this very command: the next
                // attempt looks for it after loading.
                Err(StoreError::WrongExpectedVersion { .. })
                    if attempts < self.options.max_attempts => {}
                Err(StoreError::WrongExpectedVersion { .. }) => {
                    if let Some(outcome) = self.previous_outcome(&stream, context).await? {
                        return Ok(outcome);
                    }
                    return Err(CommandError::Conflict { stream, attempts });
                }
                // Every id of the append derives from the command id: one taken elsewhere
                // in the log means the command id was used for another aggregate.
                Err(StoreError::DuplicateEventId {
                    existing: Some(position),
                    ..
                }) => {
                    return Err(CommandError::CommandIdReused {
                        command_id: context.command_id,
                        stream,
                        reason: format!(
                            "its first event is already stored at position {position}, outside this command's stream"
                        ),
                    });
                }
                Err(err) => return Err(CommandError::Store(err)),
            }
        }
    }

    /// The outcome of `context`'s command if it was already applied to `stream`.
    async fn previous_outcome<E>(
        &self,
        stream: &StreamName,
        context: &CommandContext,
    ) -> Result<Option<CommandOutcome>, CommandError<E>> {
        let first_id = derived_event_id(context.command_id, 0);
        let Some(first) = self.store.event_by_id(stream, first_id).await? else {
            return Ok(None);
        };
        // A command id bound to a request answers only that request's repeats. A first
        // event without a digest bound nothing (a command from a caller that gives none).
        if let Some(digest) = &context.request_digest {
            let metadata = first.metadata_json();
            let stored = metadata.get(REQUEST_DIGEST_KEY).and_then(|v| v.as_str());
            if stored.is_some_and(|stored| stored != digest) {
                return Err(CommandError::CommandIdReused {
                    command_id: context.command_id,
                    stream: stream.clone(),
                    reason: format!(
                        "the event at position {} answered another request to {stream}",
                        first.position
                    ),
                });
            }
        }
        let command_id = context.command_id.to_string();
        let mut events = vec![first.clone()];
        let mut next = first.version.next();
        'pages: loop {
            let page = self
                .store
                .read_stream(stream, Some(next), Direction::Forward, LOAD_PAGE)
                .await?;
            if page.is_empty() {
                break;
            }
            for event in page {
                let same = event
                    .metadata_json()
                    .get(COMMAND_ID_KEY)
                    .and_then(|v| v.as_str())
                    == Some(command_id.as_str());
                if !same {
                    break 'pages;
                }
                next = event.version.next();
                events.push(event);
            }
        }
        let last = events.last().cloned().unwrap_or(first);
        Ok(Some(CommandOutcome {
            stream: stream.clone(),
            position: last.position,
            version: last.version,
            events,
            duplicate: true,
        }))
    }

    /// Takes a snapshot if one is due, reporting (not failing the command on) a snapshot
    /// that cannot be made: the events are already committed. Answers whether one was
    /// saved.
    async fn maybe_snapshot<A: Aggregate>(
        &self,
        stream: &StreamName,
        loaded: &Loaded<A>,
        decided: &[A::Event],
        version: Version,
    ) -> bool {
        match self.snapshot_if_due(stream, loaded, decided, version).await {
            Ok(saved) => return saved,
            // A state that does not serialise never will: say so loudly.
            Err(err @ SnapshotError::Encode { .. }) => {
                tracing::error!(%stream, error = %err, "cannot take a snapshot; loading will replay events until the aggregate's state serialises");
            }
            Err(err) => {
                tracing::warn!(%stream, error = %err, "cannot save a snapshot; loading will replay events");
            }
        }
        false
    }

    /// Saves a snapshot of the state after `decided` if the aggregate takes snapshots and
    /// one is due at `version`; `Ok(false)` if none was due.
    pub(crate) async fn snapshot_if_due<A: Aggregate>(
        &self,
        stream: &StreamName,
        loaded: &Loaded<A>,
        decided: &[A::Event],
        version: Version,
    ) -> Result<bool, SnapshotError> {
        let Some(every) = A::SNAPSHOT_EVERY else {
            return Ok(false);
        };
        let since = loaded.snapshot.unwrap_or_default();
        if every == 0 || version.0 - since.0 < every {
            return Ok(false);
        }
        let state = decided
            .iter()
            .fold(loaded.state.clone(), |s, e| s.evolve(e));
        let bytes = encode_state(&state).map_err(|error| SnapshotError::Encode {
            stream: stream.clone(),
            error,
        })?;
        self.snapshots
            .save(Snapshot {
                stream: stream.clone(),
                version,
                schema_version: A::SNAPSHOT_VERSION,
                state: Bytes::from(bytes),
            })
            .await?;
        Ok(true)
    }

    /// Loads aggregate `id` as it is now.
    pub async fn load<A: Aggregate>(&self, id: &str) -> Result<Loaded<A>, CommandError<A::Error>> {
        let stream = Self::stream_of::<A>(id)?;
        let Some(cache) = &self.cache else {
            return self.load_stream::<A>(&stream, None).await;
        };
        // NOTE: the log only grows, so a cached state (of whatever age) plus the events
        // appended after it is the current state: only those are read and folded.
        let cached = cache.get::<A>(&stream);
        let cached_version = cached.as_ref().map(|c| c.version);
        let (loaded, _) = self
            .load_stream_from::<A>(&stream, None, None, cached)
            .await?;
        if cached_version != Some(loaded.version) {
            cache.put(stream, loaded.clone());
        }
        Ok(loaded)
    }

    /// Loads aggregate `id` as it was at stream version `version` (time travel).
    pub async fn load_at_version<A: Aggregate>(
        &self,
        id: &str,
        version: Version,
    ) -> Result<Loaded<A>, CommandError<A::Error>> {
        let stream = Self::stream_of::<A>(id)?;
        self.load_stream::<A>(&stream, Some(Bound::Version(version)))
            .await
    }

    /// Loads aggregate `id` as it was at global position `position`: every event of its
    /// stream at or below it.
    pub async fn load_at_position<A: Aggregate>(
        &self,
        id: &str,
        position: Position,
    ) -> Result<Loaded<A>, CommandError<A::Error>> {
        let stream = Self::stream_of::<A>(id)?;
        self.load_stream::<A>(&stream, Some(Bound::Position(position)))
            .await
    }

    /// Loads aggregate `id` as it was at time `at`: every event recorded at or before it.
    pub async fn load_at_time<A: Aggregate>(
        &self,
        id: &str,
        at: Timestamp,
    ) -> Result<Loaded<A>, CommandError<A::Error>> {
        let stream = Self::stream_of::<A>(id)?;
        self.load_stream::<A>(&stream, Some(Bound::Time(at))).await
    }

    async fn load_stream<A: Aggregate>(
        &self,
        stream: &StreamName,
        bound: Option<Bound>,
    ) -> Result<Loaded<A>, CommandError<A::Error>> {
        Ok(self.load_stream_from(stream, bound, None, None).await?.0)
    }

    /// Loads the stream as [`CommandHandler::load_stream`] does, and tells whether an
    /// event it replayed (not one folded into the snapshot) has the id `watch`; from
    /// `base` (an earlier state of the stream, used only without a bound) when given,
    /// instead of a snapshot or the first event.
    async fn load_stream_from<A: Aggregate>(
        &self,
        stream: &StreamName,
        bound: Option<Bound>,
        watch: Option<EventId>,
        base: Option<Loaded<A>>,
    ) -> Result<(Loaded<A>, bool), CommandError<A::Error>> {
        let mut seen = false;
        let base = base.filter(|_| bound.is_none());
        let from_base = base.is_some();
        let mut loaded = base.unwrap_or_else(|| Loaded {
            state: A::default(),
            version: Version(0),
            position: Position(0),
            snapshot: None,
        });
        let mut next = loaded.version.next();
        // A snapshot waiting for its last event, which starts the first page: only an
        // event that exists and is within the bound makes the snapshot usable.
        let mut pending = if from_base {
            None
        } else {
            self.usable_snapshot::<A>(stream, bound).await
        };
        if let Some((_, version)) = &pending {
            next = *version;
        }
        // The next page is read on another worker while this one is folded: reading
        // (copying, checking each record's CRC) and decoding then use both cores.
        let mut ahead = ReadAhead(None);
        'pages: loop {
            let page = match ahead.0.take() {
                Some((from, read)) if from == next => match read.await {
                    Ok(page) => page?,
                    Err(_) => read_page(self.store.as_ref(), stream, next).await?,
                },
                Some((_, read)) => {
                    read.abort();
                    read_page(self.store.as_ref(), stream, next).await?
                }
                None => read_page(self.store.as_ref(), stream, next).await?,
            };
            let len = page.len();
            if len == LOAD_PAGE
                && let Some(last) = page.last()
            {
                let from = last.version.next();
                let store = self.store.clone();
                let stream = stream.clone();
                // NOTE: a blocking-pool thread, not `tokio::spawn`: a task spawned from a
                // worker waits in that worker's LIFO slot, which no other worker steals,
                // until this task yields, which it only does once the page is folded.
                let runtime = tokio::runtime::Handle::current();
                ahead.0 = Some((
                    from,
                    tokio::task::spawn_blocking(move || {
                        runtime.block_on(read_page(store.as_ref(), &stream, from))
                    }),
                ));
            }
            let mut page = page.into_iter();
            if let Some((state, version)) = pending.take() {
                match page.next() {
                    Some(last) if bound.is_none_or(|b| b.admits(&last)) => {
                        loaded = Loaded {
                            state,
                            version,
                            position: last.position,
                            snapshot: Some(version),
                        };
                        next = version.next();
                    }
                    Some(_) => {
                        // Taken after the bound: replay from the first event.
                        next = Version(1);
                        continue 'pages;
                    }
                    None => {
                        tracing::warn!(%stream, %version, "a snapshot is beyond the stream's end; replaying events");
                        next = Version(1);
                        continue 'pages;
                    }
                }
            }
            for event in page {
                if bound.is_some_and(|b| !b.admits(&event)) {
                    break 'pages;
                }
                seen |= watch == Some(event.id);
                let decoded: A::Event = self.upcasters.decode(&event)?;
                loaded.state = loaded.state.evolve(&decoded);
                loaded.version = event.version;
                loaded.position = event.position;
                next = event.version.next();
            }
            if len < LOAD_PAGE {
                break;
            }
        }
        Ok((loaded, seen))
    }

    /// The stream's snapshot and its version, if the aggregate takes snapshots, it is of
    /// the code's snapshot version, it decodes, and a version bound does not exclude it.
    async fn usable_snapshot<A: Aggregate>(
        &self,
        stream: &StreamName,
        bound: Option<Bound>,
    ) -> Option<(A, Version)> {
        A::SNAPSHOT_EVERY?;
        let snapshot = match self.snapshots.load(stream).await {
            Ok(snapshot) => snapshot?,
            Err(err) => {
                tracing::warn!(%stream, error = %err, "cannot load a snapshot; replaying events");
                return None;
            }
        };
        if snapshot.schema_version != A::SNAPSHOT_VERSION
            || snapshot.version == Version(0)
            || matches!(bound, Some(Bound::Version(v)) if snapshot.version > v)
        {
            return None;
        }
        match decode_state::<A>(&snapshot.state) {
            Ok(state) => Some((state, snapshot.version)),
            Err(err) => {
                tracing::warn!(%stream, error = %err, "a snapshot does not decode; replaying events");
                None
            }
        }
    }

    /// Every event of `stream` with who, when and why.
    pub async fn history(&self, stream: &StreamName) -> Result<History, StoreError> {
        let mut history = Vec::new();
        let mut next = Version(1);
        loop {
            let page = self
                .store
                .read_stream(stream, Some(next), Direction::Forward, LOAD_PAGE)
                .await?;
            let len = page.len();
            for event in page {
                let metadata = event.metadata_json();
                let text = |key: &str| {
                    metadata
                        .get(key)
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                };
                next = event.version.next();
                history.push(HistoryEntry {
                    position: event.position.0,
                    version: event.version.0,
                    id: event.id.to_string(),
                    event_type: event.event_type.to_string(),
                    recorded_at: event.recorded_at,
                    actor: text(metadata_keys::ACTOR),
                    command_id: text(COMMAND_ID_KEY),
                    causation_id: text(metadata_keys::CAUSATION_ID),
                    correlation_id: text(metadata_keys::CORRELATION_ID),
                    data: event.data_json(),
                });
            }
            if len < LOAD_PAGE {
                break;
            }
        }
        Ok(history)
    }
}

/// How far back in time a load goes.
#[derive(Debug, Clone, Copy)]
enum Bound {
    Version(Version),
    Position(Position),
    Time(Timestamp),
}

impl Bound {
    fn admits(self, event: &RecordedEvent) -> bool {
        match self {
            Bound::Version(v) => event.version <= v,
            Bound::Position(p) => event.position <= p,
            Bound::Time(t) => event.recorded_at <= t,
        }
    }
}

/// Encodes decided events with ids derived from the command id and the command's
/// metadata.
fn encode_all<A: Aggregate>(
    events: &[A::Event],
    context: &CommandContext,
) -> Result<Vec<NewEvent>, CodecError> {
    events
        .iter()
        .enumerate()
        .map(|(i, event)| {
            let (event_type, data) = event.encode_bytes()?;
            let schema = <A::Event as EventCodec>::schema_version(&event_type);
            let event_type =
                EventType::new(&event_type).map_err(|e| CodecError::Encode(e.to_string()))?;
            Ok(NewEvent {
                id: derived_event_id(context.command_id, i as u32),
                event_type,
                data: Bytes::from(data),
                metadata: Bytes::from(context.event_metadata_json(schema)),
            })
        })
        .collect()
}

/// The recorded form of events just appended, as a read would return them: the append's
/// result gives their positions, versions and the store's recording time (one for the
/// whole append).
fn recorded(
    stream: &StreamName,
    events: Vec<NewEvent>,
    result: &AppendResult,
) -> Vec<RecordedEvent> {
    let (first_position, first_version) = (result.first_position, result.first_version);
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| RecordedEvent {
            position: Position(first_position.0 + i as u64),
            stream: stream.clone(),
            version: Version(first_version.0 + i as u64),
            id: e.id,
            event_type: e.event_type,
            data: e.data,
            metadata: e.metadata,
            recorded_at: result.recorded_at,
        })
        .collect()
}

#[cfg(test)]
mod tests;

/// One page of `stream` from `from`, forward.
async fn read_page(
    store: &dyn EventStore,
    stream: &StreamName,
    from: Version,
) -> Result<Vec<RecordedEvent>, StoreError> {
    store
        .read_stream(stream, Some(from), Direction::Forward, LOAD_PAGE)
        .await
}

/// A page being read ahead, from the version it starts at; aborted if it is still running
/// when a load ends (a bound reached, an error), as nobody will wait for it.
struct ReadAhead(Option<(Version, PageRead)>);

/// A page of a stream being read on another thread.
type PageRead = tokio::task::JoinHandle<Result<Vec<RecordedEvent>, StoreError>>;

impl Drop for ReadAhead {
    fn drop(&mut self) {
        if let Some((_, read)) = self.0.take() {
            read.abort();
        }
    }
}
