//! `strata import`: reads export lines and appends them back with their ids, versions and
//! recording times, consecutive events of one stream in one append, many appends in
//! flight. The first bad line or refused append stops it, with nothing after it written.
//!
//! Every group is checked against the store before it is queued: the import holds the
//! store's only writer, so it knows each stream's version and can tell ahead of time
//! which events are already there (skipped, once their ids are compared), which follow on
//! (written) and which cannot be imported (the import stops at their line): a gap, another
//! event at a stored version, or an id the log already holds in another stream (or an
//! earlier line of the input carries), since ids are unique across the log. Only a fault
//! of the store itself is learnt from its answer.

use std::borrow::Cow;
use std::future::Future;
use std::io::Read;
use std::pin::Pin;

use anyhow::Context as _;
use base64::Engine as _;
use bytes::Bytes;
use foldhash::{HashMap, HashMapExt as _, HashSet};
use futures::StreamExt as _;
use futures::stream::FuturesOrdered;
use serde::Deserialize;
use serde_json::value::RawValue;
use strata_core::{EventId, ExpectedVersion, NewEvent, Position, StreamName, Timestamp, Version};
use strata_store::{AppendResult, Direction, EventStore, StoreError};
use strata_store_embedded::{BatchAppend, EmbeddedStore};

use crate::blocks::{self, BlockParser, Piece};
use crate::lines;
use crate::names::Names;
use crate::payload::{self, weight};

/// The most events one append carries; a longer run of one stream is split.
const MAX_GROUP_EVENTS: usize = 1000;
/// The most bytes (as weighed by [`weight`]) one append carries.
const MAX_GROUP_BYTES: usize = 4 * 1024 * 1024;
/// Appends queued in the store with one submission, at most.
const SUBMIT_GROUPS: usize = 2048;
/// Submitted batches waiting for their acknowledgement, at most.
const MAX_BATCHES_IN_FLIGHT: usize = 8;
/// Event bytes waiting for their acknowledgement, at most (roughly).
const MAX_BYTES_IN_FLIGHT: usize = 256 * 1024 * 1024;

/// The outcomes of a batch of appends, once the store has answered them.
pub(crate) type Acks = Pin<Box<dyn Future<Output = Vec<Result<AppendResult, StoreError>>> + Send>>;

/// Where imported events go: a store that queues batches of appends in order, with given
/// recording times, and answers each batch later. The import must be its only writer.
pub(crate) trait ImportTarget: EventStore {
    /// Queues `appends` behind everything queued before; resolves once they are queued,
    /// to the future of their outcomes in order.
    fn submit(&self, appends: Vec<BatchAppend>) -> impl Future<Output = Acks>;

    /// The position of the stored event whose id is `id`, in any stream. Cheap for an id
    /// the store does not hold: it is asked once per event written.
    fn position_of_id(&self, id: EventId) -> Result<Option<Position>, StoreError>;

    /// The versions of `streams` (0 for a stream not there), in order: asked once per
    /// block of input for the streams it names first.
    fn stream_versions(
        &self,
        streams: &[StreamName],
    ) -> impl Future<Output = Result<Vec<u64>, StoreError>> {
        async move {
            let mut versions = Vec::with_capacity(streams.len());
            for stream in streams {
                versions.push(self.stream_version(stream).await?.0);
            }
            Ok(versions)
        }
    }

    /// The ids among `ids` the store may hold; `None` if it cannot tell cheaply, and
    /// [`ImportTarget::position_of_id`] is then asked for each.
    fn ids_maybe_stored(&self, ids: &[EventId]) -> Result<Option<Vec<EventId>>, StoreError> {
        let _ = ids;
        Ok(None)
    }
}

impl ImportTarget for EmbeddedStore {
    async fn submit(&self, appends: Vec<BatchAppend>) -> Acks {
        Box::pin(self.submit_batch(appends).await.wait())
    }

    fn position_of_id(&self, id: EventId) -> Result<Option<Position>, StoreError> {
        EmbeddedStore::position_of_id(self, id)
    }

    async fn stream_versions(&self, streams: &[StreamName]) -> Result<Vec<u64>, StoreError> {
        Ok(EmbeddedStore::stream_versions(self, streams)?
            .into_iter()
            .map(|v| v.0)
            .collect())
    }

    fn ids_maybe_stored(&self, ids: &[EventId]) -> Result<Option<Vec<EventId>>, StoreError> {
        EmbeddedStore::ids_maybe_stored(self, ids).map(Some)
    }
}

/// What an import did, in events.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Events written.
    pub(crate) imported: u64,
    /// Appends made.
    pub(crate) appends: u64,
    /// Events already in the store with the same id, version and stream: not written.
    pub(crate) skipped: u64,
    /// Events refused: the line that stopped the import (or the append the store refused).
    pub(crate) refused: u64,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "imported {} events in {} appends, skipped {} already present, refused {}",
            self.imported, self.appends, self.skipped, self.refused
        )
    }
}

/// Imports every export line of `input` into `target`, in order, refusing events over
/// `max_event_bytes`. Stops at the first bad line or refused append with an error naming
/// the line and the counts; what came before it stays, and nothing after it is written
/// (short of a store fault on appends already queued, which the error then counts).
pub(crate) async fn run<T: ImportTarget + ?Sized>(
    target: &T,
    input: Box<dyn Read + Send>,
    max_event_bytes: usize,
) -> anyhow::Result<Summary> {
    let mut parser = ImportParser::new(max_event_bytes, lines::MAX_LINE_BYTES);
    let mut pieces = blocks::spawn(
        input,
        parser.clone(),
        blocks::worker_count(),
        lines::MAX_LINE_BYTES,
    )
    .context("cannot start the threads reading the import input")?;
    let mut sequence = Sequencer::default();
    let mut import = Importer::new(target);
    // A store that cannot say its head is asked about every stream instead.
    import.fresh = target.head().await.is_ok_and(|head| head == Position::ZERO);
    let mut stop: Option<Stop> = None;
    'read: loop {
        let (jobs, ended) = match pieces.next().await {
            Some(piece) => (sequence.jobs(piece, &mut parser), false),
            None => (sequence.finish().into_iter().collect(), true),
        };
        import.prepare(&jobs).await;
        for job in jobs {
            let placed = match job {
                Job::Append(group) => import.place(group).await,
                Job::Fail { line, message } => Err(Stop::line(line, anyhow::anyhow!(message))),
                Job::ReadFailed(err) => Err(Stop {
                    line: None,
                    refused: 0,
                    cause: anyhow::Error::new(err).context("cannot read the import input"),
                }),
            };
            if let Err(err) = placed {
                stop = Some(err);
                break 'read;
            }
        }
        if ended {
            break;
        }
        if let Err(err) = import.submit().await {
            stop = Some(err);
            break;
        }
    }
    // Everything decided before the stop is written, and everything queued completes
    // whatever happens: the counts say what it did.
    // NOTE: decided appends only wait here when a line stopped the import; a refusal is
    // only learnt while settling, which happens once every decided append is queued.
    let drained = import.submit().await.and(import.drain().await);
    let stop = stop.or(drained.err());
    let summary = import.summary;
    let Some(stop) = stop else {
        return Ok(summary);
    };
    let summary = Summary {
        refused: summary.refused + stop.refused,
        ..summary
    };
    let after = match import.written_after_refusal {
        0 => "nothing after it written".to_owned(),
        n => format!("{n} events queued after it were written"),
    };
    let at = match stop.line {
        Some(line) => format!("import stopped at line {line}, {after}"),
        None => format!("import stopped, {after}"),
    };
    Err(stop.cause.context(format!("{at} ({summary})")))
}

/// Why an import stopped.
struct Stop {
    /// The input line it stopped at, if it was a line's fault.
    line: Option<u64>,
    /// Events refused there.
    refused: u64,
    cause: anyhow::Error,
}

impl Stop {
    fn line(line: u64, cause: anyhow::Error) -> Self {
        Self {
            line: Some(line),
            refused: 1,
            cause,
        }
    }
}

/// A queued append: the line of its first event and its event count and weight.
struct Queued {
    line: u64,
    events: u64,
    bytes: usize,
}

/// A queued batch once the store has answered it.
struct Answered {
    appends: Vec<Queued>,
    /// The event ids of its appends, forgotten from [`Importer::unsettled_ids`] once it
    /// is answered.
    ids: Vec<EventId>,
    bytes: usize,
    outcomes: Vec<Result<AppendResult, StoreError>>,
}

/// Decides each group against the store and keeps appends flowing in input order.
struct Importer<'t, T: ?Sized> {
    target: &'t T,
    /// Each stream's version once everything queued is written, for streams seen so far.
    versions: HashMap<StreamName, u64>,
    /// The ids of the events decided to be written and not yet answered, with their input
    /// lines: the store only knows an id once its append is answered, and ids are unique
    /// across the log.
    unsettled_ids: HashMap<EventId, u64>,
    /// Ids of answered appends, forgotten from `unsettled_ids` only once the next block's
    /// ids have been looked up in the store (which holds them by then).
    settled_ids: Vec<EventId>,
    /// The ids of the current block that the store may hold (`None`: ask for each).
    maybe_stored: Option<HashSet<EventId>>,
    /// Whether the store was empty when the import started: every stream the import has
    /// not written is then known to be empty, without asking.
    fresh: bool,
    /// Appends decided but not yet queued.
    pending: Vec<BatchAppend>,
    pending_meta: Vec<Queued>,
    pending_ids: Vec<EventId>,
    /// Queued batches, oldest first, with their bytes.
    in_flight: FuturesOrdered<Pin<Box<dyn Future<Output = Answered> + Send>>>,
    bytes_in_flight: usize,
    summary: Summary,
    /// Whether the store has refused an append (the import is then stopping).
    refused: bool,
    /// Events written from appends queued behind a refused one.
    written_after_refusal: u64,
}

impl<'t, T: ImportTarget + ?Sized> Importer<'t, T> {
    fn new(target: &'t T) -> Self {
        Self {
            target,
            versions: HashMap::new(),
            unsettled_ids: HashMap::new(),
            settled_ids: Vec::new(),
            maybe_stored: None,
            fresh: false,
            pending: Vec::new(),
            pending_meta: Vec::new(),
            pending_ids: Vec::new(),
            in_flight: FuturesOrdered::new(),
            bytes_in_flight: 0,
            summary: Summary::default(),
            refused: false,
            written_after_refusal: 0,
        }
    }

    /// Looks up what the groups of `jobs` (the next block's) need from the store at once:
    /// the versions of the streams the import has not written yet, and which of their
    /// ids the store may hold. What fails here is asked again group by group.
    async fn prepare(&mut self, jobs: &[Job]) {
        let groups = jobs.iter().filter_map(|job| match job {
            Job::Append(group) => Some(group),
            _ => None,
        });
        let mut streams = Vec::new();
        let mut ids = Vec::new();
        for group in groups {
            if !self.versions.contains_key(&group.stream) {
                if self.fresh {
                    // NOTE: `versions` holds every stream the import has queued, so a
                    // stream missing from it has not been written since the store was
                    // empty.
                    self.versions.insert(group.stream.clone(), 0);
                } else {
                    streams.push(group.stream.clone());
                }
            }
            ids.extend(group.events.iter().map(|e| e.id));
        }
        if !streams.is_empty()
            && let Ok(versions) = self.target.stream_versions(&streams).await
        {
            self.versions.extend(streams.into_iter().zip(versions));
        }
        self.maybe_stored = self
            .target
            .ids_maybe_stored(&ids)
            .ok()
            .flatten()
            .map(|ids| ids.into_iter().collect());
        // NOTE: only now, after the store was asked: an id answered since the last block
        // is in the store, and until then it stays in `unsettled_ids`, so that an id
        // answered while this block is placed is still found.
        for id in self.settled_ids.drain(..) {
            self.unsettled_ids.remove(&id);
        }
    }

    /// Decides `group` against the store: its events already there are skipped, those
    /// that follow on are queued to be written, and anything else stops the import.
    async fn place(&mut self, group: Group) -> Result<(), Stop> {
        let known = match self.versions.get(&group.stream) {
            Some(&known) => known,
            None => {
                let version = self
                    .target
                    .stream_version(&group.stream)
                    .await
                    .with_context(|| format!("cannot read the version of stream {}", group.stream))
                    .map_err(|cause| Stop::line(group.line, cause))?;
                self.versions.insert(group.stream.clone(), version.0);
                version.0
            }
        };
        let Group {
            line,
            stream,
            first_version,
            mut events,
            mut recorded_at,
            bytes,
        } = group;
        if first_version - 1 > known {
            return Err(Stop::line(
                line,
                anyhow::anyhow!(
                    "line {line}: stream {stream} holds {known} events, so version {first_version} cannot follow on: the input lacks the events between"
                ),
            ));
        }
        // Events at versions the stream already holds must be the same events.
        let present = usize::try_from(known.saturating_sub(first_version - 1))
            .unwrap_or(usize::MAX)
            .min(events.len());
        if present > 0 {
            self.check_present(line, &stream, first_version, &events[..present])
                .await?;
            self.summary.skipped += present as u64;
            events.drain(..present);
            recorded_at.drain(..present);
        }
        if events.is_empty() {
            return Ok(());
        }
        // An id the log (or this import, ahead of it) already holds stops the import at
        // its line; the events before it in the group are still written.
        let line = line + present as u64;
        let taken = self.first_taken_id(line, &events)?;
        if let Some((at, _)) = &taken {
            let good = usize::try_from(at - line).unwrap_or(usize::MAX);
            events.truncate(good);
            recorded_at.truncate(good);
        }
        if !events.is_empty() {
            self.queue(
                stream,
                first_version + present as u64,
                events,
                recorded_at,
                line,
                bytes,
            )
            .await?;
        }
        match taken {
            Some((at, cause)) => Err(Stop::line(at, cause)),
            None => Ok(()),
        }
    }

    /// The line of the first of `events` (starting at input line `line`) whose id is
    /// already taken, by a stored event or by one this import is writing, and why; the
    /// ids before it are recorded as this import's.
    fn first_taken_id(
        &mut self,
        line: u64,
        events: &[NewEvent],
    ) -> Result<Option<(u64, anyhow::Error)>, Stop> {
        for (i, event) in events.iter().enumerate() {
            let at = line + i as u64;
            if let Some(&earlier) = self.unsettled_ids.get(&event.id) {
                return Ok(Some((
                    at,
                    anyhow::anyhow!(
                        "line {at}: event id {} is already the id of line {earlier}",
                        event.id
                    ),
                )));
            }
            let maybe = self
                .maybe_stored
                .as_ref()
                .is_none_or(|ids| ids.contains(&event.id));
            let stored = if maybe {
                self.target
                    .position_of_id(event.id)
                    .with_context(|| format!("cannot look up event id {}", event.id))
                    .map_err(|cause| Stop::line(at, cause))?
            } else {
                None
            };
            if let Some(position) = stored {
                return Ok(Some((
                    at,
                    anyhow::anyhow!(
                        "line {at}: event id {} is already the id of the stored event at position {position}",
                        event.id
                    ),
                )));
            }
            self.unsettled_ids.insert(event.id, at);
        }
        Ok(None)
    }

    /// Queues `events` of `stream` from version `first` (from input line `line`) to be
    /// written.
    async fn queue(
        &mut self,
        stream: StreamName,
        first: u64,
        events: Vec<NewEvent>,
        recorded_at: Vec<Timestamp>,
        line: u64,
        bytes: usize,
    ) -> Result<(), Stop> {
        self.versions
            .insert(stream.clone(), first - 1 + events.len() as u64);
        self.pending_meta.push(Queued {
            line,
            events: events.len() as u64,
            bytes,
        });
        self.pending_ids.extend(events.iter().map(|e| e.id));
        self.pending.push(BatchAppend {
            stream,
            expected: ExpectedVersion::Exact(first - 1),
            events,
            recorded_at: Some(recorded_at),
        });
        if self.pending.len() >= SUBMIT_GROUPS {
            self.submit().await?;
        }
        Ok(())
    }

    /// Compares the ids of `events` (of `stream` from version `first`, starting at input
    /// line `line`) with the stream's stored events at those versions.
    async fn check_present(
        &mut self,
        line: u64,
        stream: &StreamName,
        first: u64,
        events: &[NewEvent],
    ) -> Result<(), Stop> {
        // What is queued must be stored before the stream can be read.
        self.submit().await?;
        self.drain().await?;
        let stored = self
            .target
            .read_stream(
                stream,
                Some(Version(first)),
                Direction::Forward,
                events.len(),
            )
            .await
            .with_context(|| format!("cannot read stream {stream}"))
            .map_err(|cause| Stop::line(line, cause))?;
        for (i, event) in events.iter().enumerate() {
            let at = line + i as u64;
            let version = first + i as u64;
            match stored.get(i) {
                Some(stored) if stored.id == event.id => {}
                Some(stored) => {
                    self.summary.skipped += i as u64;
                    return Err(Stop::line(
                        at,
                        anyhow::anyhow!(
                            "line {at}: stream {stream} already holds another event at version {version} (id {}, not {})",
                            stored.id,
                            event.id
                        ),
                    ));
                }
                None => {
                    self.summary.skipped += i as u64;
                    return Err(Stop::line(
                        at,
                        anyhow::anyhow!(
                            "line {at}: stream {stream} has no event at version {version}"
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Queues the decided appends as one batch, then waits while too much is in flight.
    async fn submit(&mut self) -> Result<(), Stop> {
        if !self.pending.is_empty() {
            let appends = std::mem::take(&mut self.pending);
            let meta = std::mem::take(&mut self.pending_meta);
            let ids = std::mem::take(&mut self.pending_ids);
            let bytes: usize = meta.iter().map(|q| q.bytes).sum();
            self.bytes_in_flight += bytes;
            // NOTE: the batch is queued here, in input order, before the next one is built.
            let acks = self.target.submit(appends).await;
            self.in_flight.push_back(Box::pin(async move {
                Answered {
                    appends: meta,
                    ids,
                    bytes,
                    outcomes: acks.await,
                }
            }));
        }
        while self.in_flight.len() > MAX_BATCHES_IN_FLIGHT
            || self.bytes_in_flight > MAX_BYTES_IN_FLIGHT
        {
            self.settle_next().await?;
        }
        Ok(())
    }

    /// Waits for everything queued.
    async fn drain(&mut self) -> Result<(), Stop> {
        let mut first_stop = None;
        while !self.in_flight.is_empty() {
            if let Err(stop) = self.settle_next().await {
                first_stop.get_or_insert(stop);
            }
        }
        first_stop.map_or(Ok(()), Err)
    }

    /// Counts the oldest queued batch's outcomes; its first refused append stops the
    /// import.
    async fn settle_next(&mut self) -> Result<(), Stop> {
        let Some(answered) = self.in_flight.next().await else {
            return Ok(());
        };
        self.bytes_in_flight -= answered.bytes;
        self.settled_ids.extend(answered.ids);
        let mut stop = None;
        for (queued, outcome) in answered.appends.into_iter().zip(answered.outcomes) {
            match outcome {
                Ok(_) => {
                    self.summary.imported += queued.events;
                    self.summary.appends += 1;
                    if self.refused {
                        self.written_after_refusal += queued.events;
                    }
                }
                Err(err) if !self.refused => {
                    self.refused = true;
                    stop = Some(Stop {
                        line: Some(queued.line),
                        refused: queued.events,
                        cause: anyhow::Error::new(err)
                            .context(format!("cannot import line {}", queued.line)),
                    });
                }
                Err(_) => {}
            }
        }
        stop.map_or(Ok(()), Err)
    }
}

/// One unit of work for the async side.
#[derive(Debug)]
enum Job {
    Append(Group),
    /// A bad line: the message names it. Nothing after it is read.
    Fail {
        /// The line's number.
        line: u64,
        message: String,
    },
    /// Reading the input failed. Nothing after it is read.
    ReadFailed(std::io::Error),
}

/// Puts the parsed blocks back into one sequence of jobs: numbers their lines from the
/// start of the input and joins a run of one stream that the cut between two blocks
/// split.
#[derive(Default)]
struct Sequencer {
    /// Lines in the blocks so far.
    before: u64,
    /// The last group so far, held until the next block says whether it goes on.
    last: Option<Group>,
}

impl Sequencer {
    /// The jobs of the next piece of the input, in order (none while a run goes on).
    fn jobs(&mut self, piece: Piece<Parsed>, parser: &mut ImportParser) -> Vec<Job> {
        let mut jobs = Vec::new();
        match piece {
            Piece::Parsed(parsed) => {
                let base = self.before;
                self.before += parsed.lines;
                for (i, mut group) in parsed.groups.into_iter().enumerate() {
                    group.line += base;
                    match &mut self.last {
                        Some(last) if i == 0 && last.joins(&group) => last.join(group),
                        _ => jobs.extend(self.last.replace(group).map(Job::Append)),
                    }
                }
                if let Some((number, line)) = parsed.bad {
                    jobs.extend(self.last.take().map(Job::Append));
                    let line_number = base + number;
                    jobs.push(Job::Fail {
                        line: line_number,
                        message: parser.fault(line_number, &line),
                    });
                }
            }
            Piece::TooLong { bytes, limit } => {
                jobs.extend(self.last.take().map(Job::Append));
                let line = self.before + 1;
                jobs.push(Job::Fail {
                    line,
                    message: format!(
                        "line {line} is {bytes} bytes, over the limit of {limit} bytes"
                    ),
                });
            }
            Piece::Failed(err) => {
                jobs.extend(self.last.take().map(Job::Append));
                jobs.push(Job::ReadFailed(err));
            }
        }
        jobs
    }

    /// The last group, once the input has ended.
    fn finish(&mut self) -> Option<Job> {
        self.last.take().map(Job::Append)
    }
}

/// Consecutive events of one stream with consecutive versions, on consecutive input lines
/// (so that event `i` is on line `line + i`).
#[derive(Debug)]
struct Group {
    /// The input line of the first event.
    line: u64,
    stream: StreamName,
    first_version: u64,
    events: Vec<NewEvent>,
    recorded_at: Vec<Timestamp>,
    bytes: usize,
}

impl Group {
    fn accepts(&self, line: u64, stream: &str, version: u64) -> bool {
        self.line + self.events.len() as u64 == line
            && self.stream.as_str() == stream
            && self.first_version.checked_add(self.events.len() as u64) == Some(version)
            && self.events.len() < MAX_GROUP_EVENTS
            && self.bytes < MAX_GROUP_BYTES
    }

    /// Whether `next`, which follows this group in the input, goes on with it within
    /// the limits of one append.
    fn joins(&self, next: &Group) -> bool {
        self.accepts(next.line, next.stream.as_str(), next.first_version)
            && self.events.len() + next.events.len() <= MAX_GROUP_EVENTS
    }

    /// Appends `next`'s events (see [`Group::joins`]).
    fn join(&mut self, next: Group) {
        self.bytes += next.bytes;
        self.events.extend(next.events);
        self.recorded_at.extend(next.recorded_at);
    }
}

/// An export line as written; `position` is ignored (the target assigns its own).
#[derive(Deserialize)]
struct ExportLine<'a> {
    #[serde(borrow)]
    stream: Cow<'a, str>,
    version: u64,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    /// The payload's exact bytes, when `data` could not carry them (see `export`).
    #[serde(borrow, default)]
    data_base64: Option<Cow<'a, str>>,
    /// The metadata's exact bytes, when `metadata` could not carry them.
    #[serde(borrow, default)]
    metadata_base64: Option<Cow<'a, str>>,
    #[serde(borrow)]
    recorded_at: Cow<'a, str>,
}

/// `strata import`'s reading and parsing of `input` on this thread, without a store: cut
/// into blocks of about `block_bytes` as the reader thread cuts them, each parsed and the
/// results put back in sequence, lines of at most `max_line` bytes and events of at most
/// `max_event_bytes`. Returns every job, in order.
#[cfg(any(test, fuzzing))]
fn parse_all_jobs(
    input: &[u8],
    max_line: usize,
    max_event_bytes: usize,
    block_bytes: usize,
) -> Vec<Job> {
    let mut parser = ImportParser::new(max_event_bytes, max_line);
    let mut sequence = Sequencer::default();
    let mut jobs = Vec::new();
    for piece in blocks::parse_all(input, parser.clone(), max_line, block_bytes) {
        jobs.extend(sequence.jobs(piece, &mut parser));
        // As the import does, nothing after a bad line is taken.
        if matches!(jobs.last(), Some(Job::Fail { .. } | Job::ReadFailed(_))) {
            return jobs;
        }
    }
    jobs.extend(sequence.finish());
    jobs
}

/// What the parsing of an input gave, flattened for tests: every event as (input line,
/// stream, version, id), the events of each append, and the bad line it stopped at with
/// its message.
#[cfg(test)]
#[derive(Debug, PartialEq)]
pub(crate) struct ParsedInput {
    pub(crate) events: Vec<(u64, String, u64, EventId)>,
    pub(crate) appends: Vec<usize>,
    pub(crate) stopped: Option<(u64, String)>,
}

/// Parses `input` as `strata import` does, in blocks of about `block_bytes` (see
/// `parse_all_jobs`).
#[cfg(test)]
pub(crate) fn parse_input(
    input: &[u8],
    max_line: usize,
    max_event_bytes: usize,
    block_bytes: usize,
) -> ParsedInput {
    let mut parsed = ParsedInput {
        events: Vec::new(),
        appends: Vec::new(),
        stopped: None,
    };
    for job in parse_all_jobs(input, max_line, max_event_bytes, block_bytes) {
        match job {
            Job::Append(group) => {
                parsed.appends.push(group.events.len());
                for (i, event) in group.events.iter().enumerate() {
                    parsed.events.push((
                        group.line + i as u64,
                        group.stream.to_string(),
                        group.first_version + i as u64,
                        event.id,
                    ));
                }
            }
            Job::Fail { line, message } => parsed.stopped = Some((line, message)),
            Job::ReadFailed(err) => parsed.stopped = Some((0, err.to_string())),
        }
    }
    parsed
}

/// `strata import`'s reading and parsing of `input`, without a store, in small blocks so
/// that runs and lines cross the cuts between them. Returns the events taken and the bad
/// line it stopped at, and checks on the way what the importer relies on: nothing
/// follows a refusal, every group is a non-empty run of one stream's consecutive
/// versions, from version 1 on, and the groups' lines ascend.
///
/// The entry point of the `import_lines` fuzz target in `fuzz/`, which builds this module
/// with `--cfg fuzzing`; it is not part of the binary.
#[cfg(fuzzing)]
pub(crate) fn parse_for_fuzzing(
    input: &[u8],
    max_line: usize,
    max_event_bytes: usize,
) -> (u64, Option<u64>) {
    let mut events = 0u64;
    let mut stopped = None;
    let mut next_line = 1;
    for job in parse_all_jobs(input, max_line, max_event_bytes, 97) {
        assert!(
            stopped.is_none(),
            "a job follows the refusal of line {stopped:?}"
        );
        match job {
            Job::Append(group) => {
                assert!(!group.events.is_empty(), "an empty group");
                assert_eq!(group.events.len(), group.recorded_at.len());
                assert!(
                    group.events.len() <= MAX_GROUP_EVENTS,
                    "a group over the limit"
                );
                assert!(group.first_version >= 1, "a group from version 0");
                assert!(
                    group.line >= next_line,
                    "a group before the last one's lines"
                );
                next_line = group.line + group.events.len() as u64;
                assert!(
                    group
                        .first_version
                        .checked_add(group.events.len() as u64 - 1)
                        .is_some(),
                    "a group past the last version"
                );
                for event in &group.events {
                    assert!(event.size() <= max_event_bytes, "an event over the limit");
                }
                events += group.events.len() as u64;
            }
            Job::Fail { line, .. } => {
                assert!(line >= next_line, "a refusal before the last group's lines");
                stopped = Some(line);
            }
            Job::ReadFailed(err) => panic!("reading a slice failed: {err}"),
        }
    }
    (events, stopped)
}

/// Parses blocks of export lines and groups them, on a worker thread.
#[derive(Clone)]
struct ImportParser {
    names: Names,
    /// The largest event the store takes: a larger one is a bad line.
    max_event_bytes: usize,
    /// The longest line taken: a longer one is a bad line.
    max_line: usize,
}

/// One block of lines, parsed.
#[derive(Debug)]
struct Parsed {
    /// Lines in the block, blank ones included (up to the bad line, if there is one).
    lines: u64,
    /// Its runs of one stream's events, numbered from the block's first line (1).
    groups: Vec<Group>,
    /// The block's first bad line, by its number in the block, and its text: nothing
    /// after it was parsed. [`ImportParser::add`] says again what is wrong with it, given
    /// its number in the input.
    bad: Option<(u64, Bytes)>,
}

impl BlockParser for ImportParser {
    type Parsed = Parsed;

    fn parse(&mut self, block: Bytes) -> Parsed {
        let mut parsed = Parsed {
            lines: 0,
            groups: Vec::new(),
            bad: None,
        };
        let mut group = None;
        for (number, line) in blocks::lines(&block) {
            parsed.lines = number;
            match self.add(number, &line, &mut group) {
                Ok(Some(full)) => parsed.groups.push(full),
                Ok(None) => {}
                Err(_) => {
                    parsed.bad = Some((number, line));
                    break;
                }
            }
        }
        parsed.groups.extend(group);
        parsed
    }
}

impl ImportParser {
    fn new(max_event_bytes: usize, max_line: usize) -> Self {
        Self {
            names: Names::default(),
            max_event_bytes,
            max_line,
        }
    }

    /// Adds line `number` to `group`, returning the previous group if this line starts a
    /// new one; `Err` says what is wrong with the line (a fault of the line alone: the
    /// same line fails the same way in any group).
    fn add(
        &mut self,
        number: u64,
        line: &Bytes,
        group: &mut Option<Group>,
    ) -> Result<Option<Group>, String> {
        if line.len() > self.max_line {
            return Err(format!(
                "line {number} is {} bytes, over the limit of {} bytes",
                line.len(),
                self.max_line
            ));
        }
        if line.trim_ascii().is_empty() {
            return Ok(None);
        }
        let text = lines::utf8(number, line)?;
        let parsed: ExportLine<'_> =
            serde_json::from_str(text).map_err(|err| lines::json_error(number, &err))?;
        let at = |err| format!("line {number}: {err}");
        let exact = |field: &str, text: &str| {
            base64::engine::general_purpose::STANDARD
                .decode(text)
                .map(Bytes::from)
                .map_err(|err| format!("line {number}: {field} is not base64: {err}"))
        };
        let event = NewEvent {
            id: parsed.id.parse().map_err(at)?,
            event_type: self.names.event_type(&parsed.event_type).map_err(at)?,
            data: match &parsed.data_base64 {
                Some(text) => exact("data_base64", text)?,
                None => payload::part(line, parsed.data),
            },
            // Exact bytes from an export are taken as they are: the store held them.
            metadata: match &parsed.metadata_base64 {
                Some(text) => exact("metadata_base64", text)?,
                None => payload::metadata(line, parsed.metadata).map_err(at)?,
            },
        };
        if event.size() > self.max_event_bytes {
            return Err(format!(
                "line {number}: the event is {} bytes (type, data and metadata), over the limit of {} bytes",
                event.size(),
                self.max_event_bytes
            ));
        }
        let recorded_at = Timestamp::parse_rfc3339(&parsed.recorded_at).map_err(at)?;
        if let Some(group) = group
            .as_mut()
            .filter(|g| g.accepts(number, &parsed.stream, parsed.version))
        {
            group.bytes += weight(&event);
            group.events.push(event);
            group.recorded_at.push(recorded_at);
            return Ok(None);
        }
        let stream = self.names.stream(&parsed.stream).map_err(at)?;
        if parsed.version == 0 {
            return Err(format!(
                "line {number}: version 0 of stream {stream} is not an event's version (versions start at 1)"
            ));
        }
        let new = Group {
            line: number,
            stream,
            first_version: parsed.version,
            bytes: weight(&event),
            events: vec![event],
            recorded_at: vec![recorded_at],
        };
        Ok(group.replace(new))
    }

    /// What is wrong with `line`, line `number` of the input, which a worker found bad.
    fn fault(&mut self, number: u64, line: &Bytes) -> String {
        match self.add(number, line, &mut None) {
            Err(message) => message,
            Ok(_) => format!("line {number} cannot be imported"),
        }
    }
}
