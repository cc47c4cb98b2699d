//! The write path: the only code that writes the log, in two threads.
//!
//! The *writer* takes every pending append, checks each against the stream heads
//! (published, plus written-but-not-yet-synced), encodes the accepted ones as one batch and
//! writes it with one positioned write. The *syncer* takes every written batch, makes them
//! durable with one fdatasync, publishes them to the index in order, and only then
//! answers every append in them (group commit). Encoding and writing batch N+1 overlaps
//! the fdatasync of batch N.
//!
//! A failed write or fdatasync poisons the store: it is never retried, every batch not yet
//! synced fails, and appends are refused until the store is reopened.
//!
//! The syncer also keeps the high-water mark (see `mark`) close behind what it has
//! acknowledged: after answering, at most every [`MARK_INTERVAL`], when a segment is
//! sealed and when the store closes; never before an answer, so it costs no latency.

use std::collections::VecDeque;

use foldhash::{HashMap, HashMapExt as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use strata_core::{EventId, ExpectedVersion, NewEvent, Position, StreamName, Timestamp, Version};
use strata_store::{AppendCheck, AppendResult, StoreError, check_append, check_unique_ids};
use tokio::sync::{mpsc, oneshot};

use crate::Durability;
use crate::format::{RecordParts, SEGMENT_HEADER_LEN, begin_batch, encode_record, finish_batch};
use crate::index::{Index, SegmentInfo};
use crate::io::FileRef;
use crate::mark::{Mark, write_mark};
use crate::open::{create_segment, open_file, write_segment_index};
use crate::read::{NameCache, decode, read_range};
use crate::room::grow_ahead;
use crate::store::Shared;

/// Stop adding appends to a batch past this many bytes.
const MAX_BATCH_BYTES: usize = 32 << 20;
/// Stop adding appends to a batch past this many requests.
const MAX_BATCH_REQUESTS: usize = 8192;
/// Written batches the writer may be ahead of the syncer.
const SYNC_QUEUE: usize = 4;
/// Events the syncer keeps room for in its per-event tables (the segment index's ids, the
/// index's offsets and fingerprints), made after answering a group so that the next
/// group's publishing does not wait for memory (see [`grow_ahead`]).
const ROOM_AHEAD: usize = 16 * 1024;
/// The longest the high-water mark stays behind acknowledged events while the store is
/// open (a crash loses the mark's lag, never events: it only narrows what opening can
/// tell apart).
pub(crate) const MARK_INTERVAL: Duration = Duration::from_millis(500);

/// One append: a stream, an expectation and its events.
pub(crate) struct Append {
    pub(crate) stream: StreamName,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<NewEvent>,
    /// Recording times given by an import; `None` stamps the commit time.
    pub(crate) recorded_at: Option<Vec<Timestamp>>,
}

impl Append {
    fn bytes(&self) -> usize {
        self.events.iter().map(|e| e.size() + 64).sum()
    }
}

/// Work for the writer: one append, or many answered together (each still atomic and
/// checked on its own).
pub(crate) enum Request {
    One(Append, oneshot::Sender<Result<AppendResult, StoreError>>),
    Many(
        Vec<Append>,
        oneshot::Sender<Vec<Result<AppendResult, StoreError>>>,
    ),
}

impl Request {
    fn bytes(&self) -> usize {
        match self {
            Request::One(append, _) => append.bytes(),
            Request::Many(appends, _) => appends.iter().map(Append::bytes).sum(),
        }
    }

    fn split(self) -> (Vec<Append>, Reply) {
        match self {
            Request::One(append, reply) => (vec![append], Reply::One(reply)),
            Request::Many(appends, reply) => {
                let n = appends.len();
                (appends, Reply::Many(reply, n))
            }
        }
    }
}

/// Where the outcomes of one request go.
enum Reply {
    One(oneshot::Sender<Result<AppendResult, StoreError>>),
    Many(
        oneshot::Sender<Vec<Result<AppendResult, StoreError>>>,
        usize,
    ),
}

impl Reply {
    /// Sends this reply's outcomes, taken in order from `outcomes`.
    fn send(self, outcomes: &mut impl Iterator<Item = Result<AppendResult, StoreError>>) {
        match self {
            Reply::One(tx) => {
                let _ = tx.send(outcomes.next().unwrap_or_else(|| Err(missing_outcome())));
            }
            Reply::Many(tx, n) => {
                let mut all: Vec<_> = outcomes.take(n).collect();
                while all.len() < n {
                    all.push(Err(missing_outcome()));
                }
                let _ = tx.send(all);
            }
        }
    }

    /// Fails every append of this reply with `err()`.
    fn fail(self, err: impl Fn() -> StoreError) {
        match self {
            Reply::One(tx) => {
                let _ = tx.send(Err(err()));
            }
            Reply::Many(tx, n) => {
                let _ = tx.send((0..n).map(|_| Err(err())).collect());
            }
        }
    }
}

/// The error for an append the batch has no outcome for: every append gets one, so this
/// is a fault of the writer.
fn missing_outcome() -> StoreError {
    StoreError::internal("the writer has no outcome for an append of its batch")
}

/// Sends every reply its outcomes, in order.
fn answer(replies: Vec<Reply>, outcomes: Vec<Result<AppendResult, StoreError>>) {
    let mut outcomes = outcomes.into_iter();
    for reply in replies {
        reply.send(&mut outcomes);
    }
}

/// The appends of one request that went into a batch, for the index.
struct Staged {
    stream: StreamName,
    /// The stream's id in the index when the append was decided (`None` for a stream the
    /// index did not hold yet). Ids are never reused, so the syncer publishes with it
    /// instead of looking the name up again.
    id: Option<u32>,
    first_position: u64,
    /// Offsets and ids of the request's events.
    events: Vec<(u64, [u8; 16])>,
}

/// A written batch on its way to the syncer.
struct Written {
    file: FileRef,
    path: Arc<Path>,
    staged: Vec<Staged>,
    /// Committed segment length once this batch is durable.
    end: u64,
    replies: Vec<Reply>,
    outcomes: Vec<Result<AppendResult, StoreError>>,
}

enum SyncMsg {
    Batch(Written),
    /// Write the active segment's index file once everything before is published.
    Seal(PathBuf, oneshot::Sender<()>),
}

/// Starts the writer and syncer threads; they stop when every request sender is gone.
pub(crate) fn spawn(
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    file: FileRef,
    path: PathBuf,
    len: u64,
    active_meta: Vec<(u32, [u8; 16])>,
    mark: Mark,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    let (sync_tx, sync_rx) = std::sync::mpsc::sync_channel(SYNC_QUEUE);
    let syncer = Syncer {
        shared: shared.clone(),
        rx: sync_rx,
        active_meta,
        mark,
        mark_written_at: Instant::now(),
        last_file: None,
        appended: Vec::new(),
    };
    let syncer = std::thread::Builder::new()
        .name("strata-syncer".to_owned())
        .spawn(move || syncer.run())?;
    let writer = Writer {
        shared,
        rx,
        sync: sync_tx,
        file,
        path: Arc::from(path.as_path()),
        len,
        overlay: HashMap::new(),
        unpublished_ids: HashMap::new(),
        written: VecDeque::new(),
    };
    std::thread::Builder::new()
        .name("strata-writer".to_owned())
        .spawn(move || {
            writer.run();
            // The writer dropped its end of the sync queue: the syncer drains and stops.
            let _ = syncer.join();
        })
}

struct Writer {
    shared: Arc<Shared>,
    rx: mpsc::Receiver<Request>,
    sync: std::sync::mpsc::SyncSender<SyncMsg>,
    file: FileRef,
    path: Arc<Path>,
    /// Bytes written to the active segment (synced or not).
    len: u64,
    /// Events written but perhaps not yet published, per stream, in position order: id,
    /// position and recording time (what a repeated append answers).
    overlay: HashMap<StreamName, Vec<(EventId, u64, Timestamp)>>,
    /// The same events by id (any stream), with their positions: the index's id filter
    /// only learns an id when the syncer publishes it, and ids are unique across the log.
    unpublished_ids: HashMap<EventId, u64>,
    /// The appends behind `overlay`, oldest first: last position and stream.
    written: VecDeque<(u64, StreamName)>,
}

impl Writer {
    fn run(mut self) {
        let mut buf = Vec::with_capacity(1 << 20);
        let mut written_head = self.shared.index.read().head;
        while let Some(first) = self.rx.blocking_recv() {
            let mut bytes = first.bytes();
            let mut batch = vec![first];
            while bytes < MAX_BATCH_BYTES && batch.len() < MAX_BATCH_REQUESTS {
                match self.rx.try_recv() {
                    Ok(request) => {
                        bytes += request.bytes();
                        batch.push(request);
                    }
                    Err(_) => break,
                }
            }
            written_head = self.commit(batch, &mut buf, written_head);
        }
    }

    fn fail_all(&self, batch: Vec<Request>) {
        for request in batch {
            request.split().1.fail(|| self.shared.poison_or_closed());
        }
    }

    /// Decides, encodes and writes one batch; returns the last written position.
    fn commit(&mut self, batch: Vec<Request>, buf: &mut Vec<u8>, written_head: u64) -> u64 {
        if self.shared.poison_error().is_some() {
            self.fail_all(batch);
            return written_head;
        }
        if self.len >= self.shared.options.segment_bytes
            && let Err(err) = self.roll(written_head)
        {
            self.shared.poison(&err);
            self.fail_all(batch);
            return written_head;
        }
        let now = Timestamp::from_datetime(::time::OffsetDateTime::now_utc());
        buf.clear();
        let batch_start = begin_batch(buf);
        let first_position = written_head + 1;
        let mut next_position = first_position;
        let mut staged: Vec<Staged> = Vec::new();
        let mut replies = Vec::with_capacity(batch.len());
        let mut outcomes = Vec::with_capacity(batch.len());
        {
            let shared = self.shared.clone();
            let index = shared.index.read();
            self.forget_published(index.head);
            for request in batch {
                let (appends, reply) = request.split();
                for append in &appends {
                    outcomes.push(self.decide(
                        &index,
                        append,
                        &mut next_position,
                        now,
                        buf,
                        &mut staged,
                    ));
                }
                replies.push(reply);
            }
        }
        let count = next_position - first_position;
        let end = if count > 0 {
            finish_batch(buf, batch_start, count as u32, first_position);
            if let Err(err) = self.write(buf) {
                self.shared.poison(&err);
                for reply in replies {
                    reply.fail(|| self.shared.poison_or_closed());
                }
                return written_head;
            }
            self.len += buf.len() as u64;
            self.len
        } else {
            self.len
        };
        // With nothing else to write, the batch's ids go into the index's id filter here,
        // while the syncer's fdatasync runs, rather than after it, when they would
        // lengthen the wait of every client of the batch (see `Index::note_ids`). With
        // more requests waiting, the writer is the busier thread and leaves them to the
        // syncer.
        let ids: Vec<([u8; 16], u64)> = if self.rx.is_empty() {
            staged
                .iter()
                .flat_map(|s| {
                    s.events
                        .iter()
                        .enumerate()
                        .map(|(i, (_, id))| (*id, s.first_position + i as u64))
                })
                .collect()
        } else {
            Vec::new()
        };
        let written = Written {
            file: self.file.clone(),
            path: self.path.clone(),
            staged,
            end,
            replies,
            outcomes,
        };
        if let Err(std::sync::mpsc::SendError(SyncMsg::Batch(written))) =
            self.sync.send(SyncMsg::Batch(written))
        {
            for reply in written.replies {
                reply.fail(|| StoreError::Closed);
            }
            return next_position - 1;
        }
        if !ids.is_empty() {
            self.shared
                .index
                .write()
                .note_ids(ids.iter().map(|(id, position)| (id, *position)));
        }
        next_position - 1
    }

    /// Drops the overlay entries the syncer has published: the index has them now.
    fn forget_published(&mut self, published: u64) {
        // Everything written is published (always so with one append in flight): empty
        // the tables at once rather than id by id, unless the id table is so much larger
        // than its contents (after a burst) that clearing it costs more.
        if self
            .written
            .back()
            .is_some_and(|&(last, _)| last <= published)
            && self.unpublished_ids.capacity() <= 16 * self.unpublished_ids.len().max(1024)
        {
            self.written.clear();
            self.overlay.clear();
            self.unpublished_ids.clear();
            return;
        }
        while let Some(&(last, _)) = self.written.front() {
            if last > published {
                break;
            }
            let Some((_, stream)) = self.written.pop_front() else {
                break;
            };
            if let Some(events) = self.overlay.get_mut(&stream) {
                let done = events.partition_point(|&(_, p, _)| p <= published);
                for (id, _, _) in events.drain(..done) {
                    self.unpublished_ids.remove(&id);
                }
                if events.is_empty() {
                    self.overlay.remove(&stream);
                }
            }
        }
    }

    /// Checks one request and, if it is accepted, encodes its events into `buf`.
    fn decide(
        &mut self,
        index: &Index,
        request: &Append,
        next_position: &mut u64,
        now: Timestamp,
        buf: &mut Vec<u8>,
        staged: &mut Vec<Staged>,
    ) -> Result<AppendResult, StoreError> {
        let found = index.stream_with_id(&request.stream);
        let committed = found.map(|(_, positions)| positions);
        let base = committed.map_or(0, |s| s.len() as u64);
        let unpublished: &[(EventId, u64, Timestamp)] = if self.overlay.is_empty() {
            &[]
        } else {
            self.overlay
                .get(&request.stream)
                .map_or(&[], |v| v.as_slice())
        };
        let current = base + unpublished.len() as u64;
        let check = check_append(
            &request.stream,
            request.expected,
            Version(current),
            &request.events,
            |v| {
                if v.0 <= base {
                    let position = committed
                        .and_then(|s| s.get((v.0 - 1) as usize))
                        .ok_or_else(|| {
                            StoreError::internal(format!(
                                "stream {} has version {base} in the index but no position for version {v}",
                                request.stream
                            ))
                        })?;
                    let (id, recorded_at) = read_id_and_time(index, position)?;
                    Ok((id, Position(position), recorded_at))
                } else {
                    let (id, position, recorded_at) = unpublished[(v.0 - base - 1) as usize];
                    Ok((id, Position(position), recorded_at))
                }
            },
            |id| {
                if let Some(i) = unpublished.iter().position(|(e, _, _)| *e == id) {
                    return Ok(Some(Version(base + i as u64 + 1)));
                }
                if !index.ids.may_contain(id.as_bytes()) {
                    return Ok(None);
                }
                let Some(stream) = committed else {
                    return Ok(None);
                };
                // Only events whose id fingerprint matches are read from disk.
                for position in index.candidates(stream, id.as_bytes()) {
                    if read_id(index, position)? == id {
                        let i = stream.partition_point(position);
                        return Ok(Some(Version(i as u64 + 1)));
                    }
                }
                Ok(None)
            },
        )?;
        let current = match check {
            AppendCheck::Refuse(err) => return Err(err),
            AppendCheck::AlreadyAppended(result) => return Ok(result),
            AppendCheck::Write { current } => current.0,
        };
        // NOTE: only an id the filter may hold costs a search, and only a fingerprint match
        // costs a read: a fresh id (the common case) is decided without I/O.
        let unpublished_ids = &self.unpublished_ids;
        // The filter is asked about the whole batch at once (see
        // `IdFilter::may_contain_each`); the few ids it may hold are searched for below.
        let maybe = index
            .ids
            .may_contain_each(&request.events, |e| e.id.as_bytes());
        let maybe_stored: Vec<EventId> = request
            .events
            .iter()
            .zip(maybe)
            .filter_map(|(e, maybe)| maybe.then_some(e.id))
            .collect();
        check_unique_ids(&request.stream, &request.events, |id| {
            if let Some(&position) = unpublished_ids.get(&id) {
                return Ok(Some(Position(position)));
            }
            if !maybe_stored.contains(&id) {
                return Ok(None);
            }
            for position in index.candidates_in_log(id.as_bytes()) {
                if read_id(index, position)? == id {
                    return Ok(Some(Position(position)));
                }
            }
            Ok(None)
        })?;
        let first = *next_position;
        let mut events = Vec::with_capacity(request.events.len());
        let overlay = self.overlay.entry(request.stream.clone()).or_default();
        for (i, event) in request.events.iter().enumerate() {
            let offset = self.len + buf.len() as u64;
            let recorded_at = request
                .recorded_at
                .as_ref()
                .and_then(|t| t.get(i).copied())
                .unwrap_or(now);
            encode_record(
                buf,
                &RecordParts {
                    stream: request.stream.as_str(),
                    event_type: event.event_type.as_str(),
                    version: current + i as u64 + 1,
                    recorded_at: recorded_at.unix_nanos(),
                    id: event.id.as_bytes(),
                    metadata: &event.metadata,
                    data: &event.data,
                },
            );
            overlay.push((event.id, first + i as u64, recorded_at));
            self.unpublished_ids.insert(event.id, first + i as u64);
            events.push((offset, *event.id.as_bytes()));
        }
        let count = request.events.len() as u64;
        let recorded_at = overlay.last().map_or(now, |&(_, _, at)| at);
        self.written
            .push_back((first + count - 1, request.stream.clone()));
        *next_position += count;
        staged.push(Staged {
            stream: request.stream.clone(),
            id: found.map(|(id, _)| id),
            first_position: first,
            events,
        });
        Ok(AppendResult {
            first_version: Version(current + 1),
            last_version: Version(current + count),
            first_position: Position(first),
            position: Position(first + count - 1),
            recorded_at,
        })
    }

    /// Writes one batch at the end of the active segment.
    fn write(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        #[cfg(feature = "fault-injection")]
        if self.shared.take_injected_failure() {
            return Err(StoreError::io(
                format!("cannot write {}", self.path.display()),
                std::io::Error::other("injected write failure"),
            ));
        }
        self.file.write_all_at(bytes, self.len).map_err(|e| {
            StoreError::io(
                format!(
                    "cannot write {} at offset {}",
                    self.path.display(),
                    self.len
                ),
                e,
            )
        })
    }

    /// Seals the active segment (its index file is written once everything in it is
    /// published) and starts a new one at `written_head + 1`.
    fn roll(&mut self, written_head: u64) -> Result<(), StoreError> {
        let (done, wait) = oneshot::channel();
        if self
            .sync
            .send(SyncMsg::Seal(self.path.to_path_buf(), done))
            .is_err()
            || wait.blocking_recv().is_err()
        {
            return Err(StoreError::Closed);
        }
        if let Some(err) = self.shared.poison_error() {
            return Err(err);
        }
        let next = written_head + 1;
        let fs = &*self.shared.fs;
        let (path, file) = create_segment(fs, &self.shared.dir, next)?;
        let reader = open_file(fs, &path)?;
        self.shared.index.write().segments.push(SegmentInfo {
            first_position: next,
            path: Arc::from(path.as_path()),
            file: reader,
            offsets: Vec::new(),
            fingerprints: Vec::new(),
            len: SEGMENT_HEADER_LEN,
        });
        self.file = file;
        self.path = Arc::from(path.as_path());
        self.len = SEGMENT_HEADER_LEN;
        Ok(())
    }
}

struct Syncer {
    shared: Arc<Shared>,
    rx: std::sync::mpsc::Receiver<SyncMsg>,
    /// Stream id and event id of each published event of the active segment.
    active_meta: Vec<(u32, [u8; 16])>,
    /// The mark as last written.
    mark: Mark,
    mark_written_at: Instant,
    /// The segment of the latest published batch: synced before the mark covers it when
    /// batches are not synced on their own ([`Durability::None`]).
    last_file: Option<(FileRef, Arc<Path>)>,
    /// The streams of the group being published and how many events each took: the next
    /// group is likely to append as many to them (see [`Syncer::make_room`]).
    appended: Vec<(u32, usize)>,
}

impl Syncer {
    fn run(mut self) {
        let mut pending: Vec<Written> = Vec::new();
        loop {
            let interval = self.shared.mark_interval;
            let received = if let Some(interval) = interval.filter(|_| self.mark_behind()) {
                let wait = interval.saturating_sub(self.mark_written_at.elapsed());
                match self.rx.recv_timeout(wait) {
                    Ok(msg) => Some(msg),
                    Err(RecvTimeoutError::Timeout) => {
                        self.update_mark();
                        continue;
                    }
                    Err(RecvTimeoutError::Disconnected) => None,
                }
            } else {
                self.rx.recv().ok()
            };
            let Some(msg) = received else { break };
            let mut next = Some(msg);
            // Take every batch already written: one fdatasync covers them all.
            while let Some(msg) = next.take() {
                match msg {
                    SyncMsg::Batch(written) => {
                        pending.push(written);
                        next = self.rx.try_recv().ok();
                    }
                    SyncMsg::Seal(path, done) => {
                        self.complete(std::mem::take(&mut pending));
                        self.seal(&path);
                        let _ = done.send(());
                    }
                }
            }
            self.complete(std::mem::take(&mut pending));
            if interval.is_some_and(|i| self.mark_written_at.elapsed() >= i) {
                self.update_mark();
            }
        }
        // A clean stop: the mark records everything acknowledged.
        self.update_mark();
    }

    /// Whether acknowledged events are not yet covered by the mark.
    fn mark_behind(&self) -> bool {
        self.shared.index.read().head > self.mark.high_water
    }

    /// Writes the mark up to everything published. Every published batch is durable
    /// (fdatasync'd before publishing) unless batches are not synced, in which case the
    /// segment is synced first. A failure to write the mark leaves the old one, which is
    /// still true, and is retried later.
    fn update_mark(&mut self) {
        self.mark_written_at = Instant::now();
        let head = self.shared.index.read().head;
        if head <= self.mark.high_water {
            return;
        }
        if self.shared.options.durability == Durability::None {
            if self.shared.poison_error().is_some() {
                return;
            }
            if let Some((file, path)) = &self.last_file
                && let Err(e) = file.sync_data()
            {
                self.shared.poison(&StoreError::io(
                    format!("cannot fdatasync {}", path.display()),
                    e,
                ));
                return;
            }
        }
        let next = Mark {
            high_water: head,
            gaps: self.mark.gaps.clone(),
        };
        match write_mark(&*self.shared.fs, &self.shared.dir, &next) {
            Ok(()) => self.mark = next,
            Err(e) => {
                tracing::warn!(error = %e, "cannot write the high-water mark; the previous one stands")
            }
        }
    }

    /// Syncs, publishes and answers the given written batches, in order.
    fn complete(&mut self, batches: Vec<Written>) {
        if batches.is_empty() {
            return;
        }
        // NOTE: the directory is checked once per group, before anything in it is made
        // durable or acknowledged: a store whose directory was deleted would otherwise
        // acknowledge events into files no one can open again.
        if self.shared.poison_error().is_none()
            && let Err(err) = self.shared.check_dir()
        {
            self.shared.poison(&err);
        }
        if self.shared.poison_error().is_none()
            && self.shared.options.durability == Durability::Sync
        {
            // NOTE: fdatasync is never retried: after a failure the kernel may have
            // dropped the dirty pages, so a later success would prove nothing.
            let mut synced: Vec<&FileRef> = Vec::new();
            for batch in &batches {
                if batch.staged.is_empty() || synced.iter().any(|f| Arc::ptr_eq(f, &batch.file)) {
                    continue;
                }
                if let Err(e) = batch.file.sync_data() {
                    self.shared.poison(&StoreError::io(
                        format!("cannot fdatasync {}", batch.path.display()),
                        e,
                    ));
                    break;
                }
                self.shared
                    .fdatasyncs
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                synced.push(&batch.file);
            }
        }
        if self.shared.poison_error().is_some() {
            for batch in batches {
                for reply in batch.replies {
                    reply.fail(|| self.shared.poison_or_closed());
                }
            }
            return;
        }
        let head = {
            let mut index = self.shared.index.write();
            for batch in &batches {
                for staged in &batch.staged {
                    let stream = match staged.id {
                        Some(id) => id,
                        None => index.intern(&staged.stream),
                    };
                    self.appended.push((stream, staged.events.len()));
                    for (i, (offset, id)) in staged.events.iter().enumerate() {
                        index.push(stream, staged.first_position + i as u64, *offset, id);
                        self.active_meta.push((stream, *id));
                    }
                    index.note_published(
                        staged
                            .events
                            .iter()
                            .enumerate()
                            .map(|(i, (_, id))| (id, staged.first_position + i as u64)),
                    );
                }
                if let Some(segment) = index.segments.last_mut() {
                    segment.len = segment.len.max(batch.end);
                }
                if !batch.staged.is_empty() {
                    self.last_file = Some((batch.file.clone(), batch.path.clone()));
                }
            }
            index.head
        };
        self.shared.head.send_replace(Position(head));
        for batch in batches {
            answer(batch.replies, batch.outcomes);
        }
        self.make_room();
    }

    /// Grows the tables publishing pushes to, if they are short of room: the per-event
    /// ones by [`ROOM_AHEAD`] events, the positions of each stream the group appended to
    /// by as many events as it took. Done here, once the group's clients have their
    /// answers, rather than while the next group's clients wait.
    fn make_room(&mut self) {
        grow_ahead(&mut self.active_meta, ROOM_AHEAD);
        let short = {
            let index = self.shared.index.read();
            !index.has_room(ROOM_AHEAD)
                || self
                    .appended
                    .iter()
                    .any(|&(stream, events)| !index.streams.has_room(stream, events))
        };
        if short {
            let mut index = self.shared.index.write();
            index.make_room(ROOM_AHEAD);
            for &(stream, events) in &self.appended {
                index.streams.make_room(stream, events);
            }
        }
        self.appended.clear();
    }

    fn seal(&mut self, path: &Path) {
        // The mark covers the sealed segment before the next one is started.
        self.update_mark();
        let index = self.shared.index.read();
        if let Err(e) = write_segment_index(&*self.shared.fs, &index, path, &self.active_meta) {
            tracing::warn!(file = %path.display(), error = %e, "cannot write segment index; it will be rebuilt on open");
        }
        self.active_meta.clear();
    }
}

/// The id of the committed event at `position`, read from disk.
fn read_id(index: &Index, position: u64) -> Result<EventId, StoreError> {
    Ok(read_id_and_time(index, position)?.0)
}

/// The id and recording time of the event at `position`, read from its segment.
fn read_id_and_time(index: &Index, position: u64) -> Result<(EventId, Timestamp), StoreError> {
    let location = index.location(position)?;
    let bytes = read_range(&location, location.start, location.end)?;
    let event = decode(&bytes, &location, &mut NameCache::default())?;
    Ok((event.id, event.recorded_at))
}
