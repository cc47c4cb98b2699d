//! The store handle: opening, the [`EventStore`] implementation, and shutdown.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::{Mutex, RwLock};
use strata_core::{
    EventId, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName, Timestamp, Version,
};
use strata_store::{
    AllPage, AppendResult, Direction, EventStore, EventStream, ReadFilter, StoreError,
    StreamSummary, catch_up_subscription, check_event_sizes,
};
use tokio::sync::{mpsc, oneshot, watch};

use crate::Options;
use crate::format::parse_record;
use crate::index::{Index, Location};
use crate::io::{Fs, RealFs};
use crate::open::{Access, load, refresh};
use crate::read::{NameCache, read_locations, read_range};
use crate::writer::{Append, Request};

/// Counters of the write path since the store was opened (for benchmarks and
/// monitoring; they never steer the store).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Successful fdatasync calls made to acknowledge appends. One group commit makes one
    /// per segment file it wrote (two when it spans a segment roll); zero under
    /// `Durability::None`.
    pub fdatasyncs: u64,
}

/// What opening the store found and repaired.
#[derive(Debug, Clone, Default)]
pub struct OpenReport {
    /// A torn last batch that was cut off, if there was one.
    pub torn_tail: Option<TornTail>,
    /// Acknowledged events found missing and accepted as lost (only when opened with
    /// [`crate::LostData::Accept`]); their positions are never given out again.
    pub lost: Vec<LostEvents>,
    /// Segment files in the store.
    pub segments: usize,
    /// Events in the store.
    pub events: u64,
}

/// An incomplete last batch, left by a crash during a write; it was never acknowledged.
#[derive(Debug, Clone)]
pub struct TornTail {
    /// The segment file.
    pub file: PathBuf,
    /// Where the incomplete batch started (the file was truncated to this length).
    pub offset: u64,
    /// How many bytes were cut.
    pub bytes: u64,
}

/// Acknowledged events the log no longer holds: the store's high-water mark records them
/// as acknowledged but the log ends before them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LostEvents {
    /// The file where the log ends (or the missing segment's successor).
    pub file: PathBuf,
    /// Where in that file the log ends.
    pub offset: u64,
    /// The first lost position.
    pub first_position: u64,
    /// The last lost position.
    pub last_position: u64,
}

/// Bytes at the end of the log that no read returns and no writer is writing: a damaged or
/// cut last batch, found by [`EmbeddedStore::damaged_tail`].
#[derive(Debug, Clone)]
pub struct DamagedTail {
    /// The segment file.
    pub file: PathBuf,
    /// Where the bytes start: just past the last complete batch.
    pub offset: u64,
    /// How many bytes are not a complete batch.
    pub bytes: u64,
}

/// One append of [`EmbeddedStore::append_batch`].
#[derive(Debug, Clone)]
pub struct BatchAppend {
    /// The stream.
    pub stream: StreamName,
    /// What the append expects of the stream's version.
    pub expected: ExpectedVersion,
    /// The events.
    pub events: Vec<NewEvent>,
    /// Recording times (one per event) given by an import; `None` stamps the commit time.
    pub recorded_at: Option<Vec<Timestamp>>,
}

/// A batch of appends in the writer's queue; [`PendingBatch::wait`] gives their
/// outcomes, in the order they were given, once they are durable (or refused).
pub struct PendingBatch {
    outcomes: Vec<Option<Result<AppendResult, StoreError>>>,
    /// Which outcomes the writer will answer, in order.
    slots: Vec<usize>,
    reply: Option<oneshot::Receiver<Vec<Result<AppendResult, StoreError>>>>,
    shared: Arc<Shared>,
}

impl PendingBatch {
    /// Waits for the writer's answers.
    pub async fn wait(mut self) -> Vec<Result<AppendResult, StoreError>> {
        if let Some(reply) = self.reply.take() {
            let mut results = reply.await.unwrap_or_default().into_iter();
            for &slot in &self.slots {
                self.outcomes[slot] = Some(
                    results
                        .next()
                        .unwrap_or_else(|| Err(self.shared.poison_or_closed())),
                );
            }
        }
        self.outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(StoreError::internal("an append of a batch got no outcome"))
                })
            })
            .collect()
    }
}

/// The largest total size of one append's events.
const MAX_APPEND_BYTES: usize = 64 << 20;
/// Appends waiting for the writer before senders wait.
const QUEUE_DEPTH: usize = 16 * 1024;
/// How often a read-only store looks for new data.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(10);
/// The most events one `read_all` call examines.
const MAX_SCAN_EVENTS: u64 = 65_536;
/// The most bytes one `read_all` call reads at once.
const SCAN_CHUNK_BYTES: u64 = 1 << 20;

/// Slack added to a filtered read's estimate of the records it still needs.
const CHUNK_SLACK: usize = 64;

/// How many records the next read of a `read_all` call should take, at most, when the
/// page still needs `missing` events and `selected` of the `scanned` records so far
/// passed `filter`. Reading what the page will not use costs a copy of every byte (a
/// subscription pages 512 events through chunks of up to a MiB): an unfiltered read
/// takes exactly what it needs; a filtered one first takes as many records as it needs
/// events (they might all pass), then as many as the ratio so far predicts.
fn chunk_records(missing: usize, scanned: usize, selected: usize, filter: &ReadFilter) -> usize {
    if filter.is_all() || scanned == 0 {
        return missing;
    }
    if selected == 0 {
        return usize::MAX;
    }
    missing
        .saturating_mul(scanned)
        .div_ceil(selected)
        .saturating_add(CHUNK_SLACK)
}

/// State shared by handles, the writer thread and the follower thread.
pub(crate) struct Shared {
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) dir: PathBuf,
    pub(crate) options: Options,
    pub(crate) index: RwLock<Index>,
    pub(crate) head: watch::Sender<Position>,
    /// How often the syncer brings the high-water mark up to date while appends go on
    /// (`None`: only when a segment is sealed and when the store closes).
    pub(crate) mark_interval: Option<Duration>,
    poisoned: Mutex<Option<String>>,
    is_poisoned: AtomicBool,
    closed: AtomicBool,
    /// Successful fdatasyncs of the syncer (see [`StoreStats::fdatasyncs`]).
    pub(crate) fdatasyncs: AtomicU64,
    #[cfg(feature = "fault-injection")]
    inject_failure: AtomicBool,
}

impl Shared {
    fn new(
        fs: Arc<dyn Fs>,
        dir: PathBuf,
        options: Options,
        index: Index,
        mark_interval: Option<Duration>,
    ) -> Self {
        let head = Position(index.head);
        Self {
            fs,
            mark_interval,
            dir,
            options,
            index: RwLock::new(index),
            head: watch::Sender::new(head),
            poisoned: Mutex::new(None),
            is_poisoned: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            fdatasyncs: AtomicU64::new(0),
            #[cfg(feature = "fault-injection")]
            inject_failure: AtomicBool::new(false),
        }
    }

    pub(crate) fn poison(&self, err: &StoreError) {
        tracing::error!(error = %err, "event store poisoned: appends are refused until it is reopened");
        let mut reason = self.poisoned.lock();
        if reason.is_none() {
            *reason = Some(err.to_string());
        }
        self.is_poisoned.store(true, Ordering::Release);
    }

    /// The poison error, or `Closed` if the store was not poisoned.
    pub(crate) fn poison_or_closed(&self) -> StoreError {
        self.poison_error().unwrap_or(StoreError::Closed)
    }

    pub(crate) fn poison_error(&self) -> Option<StoreError> {
        if !self.is_poisoned.load(Ordering::Acquire) {
            return None;
        }
        self.poisoned
            .lock()
            .clone()
            .map(|reason| StoreError::Poisoned { reason })
    }

    #[cfg(feature = "fault-injection")]
    pub(crate) fn take_injected_failure(&self) -> bool {
        self.inject_failure.swap(false, Ordering::AcqRel)
    }

    /// The error an append would meet now, if any: closed, poisoned, or the data
    /// directory gone from under the store.
    pub(crate) fn check_writable(&self) -> Result<(), StoreError> {
        self.check_open()?;
        if let Some(err) = self.poison_error() {
            return Err(err);
        }
        self.check_dir()
    }

    /// Whether the data directory is still there: deleting it under a running store
    /// would otherwise let appends be acknowledged into files nobody can open again.
    pub(crate) fn check_dir(&self) -> Result<(), StoreError> {
        if self.fs.is_dir(&self.dir) {
            Ok(())
        } else {
            Err(StoreError::io(
                format!("the data directory {} is gone", self.dir.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ))
        }
    }

    fn check_open(&self) -> Result<(), StoreError> {
        if self.closed.load(Ordering::Acquire) {
            Err(StoreError::Closed)
        } else {
            Ok(())
        }
    }
}

struct Handle {
    shared: Arc<Shared>,
    sender: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    lock: Mutex<Option<File>>,
    report: OpenReport,
    read_only: bool,
}

impl Handle {
    fn shutdown(&self) {
        self.shared.closed.store(true, Ordering::Release);
        drop(self.sender.lock().take());
        if let Some(writer) = self.writer.lock().take() {
            let _ = writer.join();
        }
        drop(self.lock.lock().take());
        // Wake subscribers so they notice the store is closed.
        self.shared.head.send_modify(|_| {});
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// An embedded event store. Cloning gives another handle to the same store; the store
/// closes when the last handle is dropped or [`EmbeddedStore::close`] is called.
#[derive(Clone)]
pub struct EmbeddedStore {
    handle: Arc<Handle>,
}

impl EmbeddedStore {
    /// Opens (creating if needed) the store in `dir` for writing, taking the directory's
    /// lock. Verifies the tail, cuts a torn last batch (see [`EmbeddedStore::open_report`])
    /// and refuses to open on any other corruption.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_owned();
        check_options(&options)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| StoreError::io(format!("cannot create {}", dir.display()), e))?;
        let lock = crate::lock::acquire(&dir)?;
        Self::open_on(
            Arc::new(RealFs),
            dir,
            options,
            Some(lock),
            Some(crate::writer::MARK_INTERVAL),
        )
    }

    /// Opens the store in `dir` of `fs` for writing, holding `lock` (if any) until it
    /// closes.
    pub(crate) fn open_on(
        fs: Arc<dyn Fs>,
        dir: PathBuf,
        options: Options,
        lock: Option<File>,
        mark_interval: Option<Duration>,
    ) -> Result<Self, StoreError> {
        let loaded = load(&*fs, &dir, Access::Write, options.lost_data)?;
        let (path, len) = {
            let last = loaded.index.segments.last().ok_or_else(|| {
                StoreError::internal(format!("opening {} found no segment", dir.display()))
            })?;
            (last.path.clone(), last.len)
        };
        let file = fs
            .open_rw(&path)
            .map_err(|e| StoreError::io(format!("cannot open {}", path.display()), e))?;
        let report = OpenReport {
            torn_tail: loaded.torn_tail,
            lost: loaded.lost,
            segments: loaded.index.segments.len(),
            events: loaded.index.events(),
        };
        let shared = Arc::new(Shared::new(fs, dir, options, loaded.index, mark_interval));
        let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
        let thread = crate::writer::spawn(
            shared.clone(),
            rx,
            file,
            path.to_path_buf(),
            len,
            loaded.active_meta,
            loaded.mark,
        )
        .map_err(|e| StoreError::io("cannot start the writer thread", e))?;
        Ok(Self {
            handle: Arc::new(Handle {
                shared,
                sender: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(thread)),
                lock: Mutex::new(lock),
                report,
                read_only: false,
            }),
        })
    }

    /// Opens (creating if needed) the store in `dir` of a simulated disk for writing, as
    /// [`EmbeddedStore::open`] does on the real one. The high-water mark is brought up to
    /// date only when a segment is sealed and when the store closes, never on a timer, so
    /// a workload replays exactly.
    #[cfg(feature = "simulation")]
    pub fn open_simulated(
        disk: &crate::simulation::SimDisk,
        dir: impl AsRef<Path>,
        options: Options,
    ) -> Result<Self, StoreError> {
        check_options(&options)?;
        Self::open_on(disk.fs(), dir.as_ref().to_owned(), options, None, None)
    }

    /// Opens the store in `dir` for reading while another process may be writing it. No
    /// lock is taken and nothing is repaired; the handle follows the writer's new batches
    /// (polling every few milliseconds) until it is dropped.
    pub fn open_read_only(dir: impl AsRef<Path>, options: Options) -> Result<Self, StoreError> {
        let dir = dir.as_ref().to_owned();
        if !dir.is_dir() {
            return Err(StoreError::io(
                format!("no event store at {}", dir.display()),
                std::io::Error::from(std::io::ErrorKind::NotFound),
            ));
        }
        let fs: Arc<dyn Fs> = Arc::new(RealFs);
        let loaded = load(&*fs, &dir, Access::ReadOnly, options.lost_data)?;
        let report = OpenReport {
            torn_tail: None,
            lost: Vec::new(),
            segments: loaded.index.segments.len(),
            events: loaded.index.events(),
        };
        let shared = Arc::new(Shared::new(fs, dir, options, loaded.index, None));
        let weak = Arc::downgrade(&shared);
        std::thread::Builder::new()
            .name("strata-follower".to_owned())
            .spawn(move || follow(weak))
            .map_err(|e| StoreError::io("cannot start the follower thread", e))?;
        Ok(Self {
            handle: Arc::new(Handle {
                shared,
                sender: Mutex::new(None),
                writer: Mutex::new(None),
                lock: Mutex::new(None),
                report,
                read_only: true,
            }),
        })
    }

    /// What opening found.
    pub fn open_report(&self) -> OpenReport {
        self.handle.report.clone()
    }

    /// The write path's counters since this handle's store was opened.
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            fdatasyncs: self.handle.shared.fdatasyncs.load(Ordering::Relaxed),
        }
    }

    /// For a read-only handle: the bytes past the last complete batch of the log when no
    /// writer holds the directory, so that nothing can be in the middle of writing them —
    /// a damaged or cut last batch that reads stop before. `None` when the log ends with a
    /// complete batch, when a writer holds the directory (its next batch may be half
    /// written) and for the writer's own handle (opening it cut any such tail). Changes
    /// nothing on disk.
    pub fn damaged_tail(&self) -> Result<Option<DamagedTail>, StoreError> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        if !self.handle.read_only || crate::lock::held(&shared.dir)? {
            return Ok(None);
        }
        // NOTE: the follower may not have read the writer's last batches yet; catch up
        // first, now that no writer can add more.
        let (path, file, len) = {
            let mut index = shared.index.write();
            if refresh(&*shared.fs, &shared.dir, &mut index)? {
                shared.head.send_replace(Position(index.head));
            }
            let Some(last) = index.segments.last() else {
                return Ok(None);
            };
            (last.path.clone(), last.file.clone(), last.len)
        };
        let file_len = file
            .len()
            .map_err(|e| StoreError::io(format!("cannot stat {}", path.display()), e))?;
        Ok((file_len > len).then(|| DamagedTail {
            file: path.to_path_buf(),
            offset: len,
            bytes: file_len - len,
        }))
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.handle.shared.dir
    }

    /// Appends events with given recording times (used by import). `recorded_at` must
    /// have one entry per event.
    pub async fn append_with_timestamps(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        recorded_at: Vec<Timestamp>,
    ) -> Result<AppendResult, StoreError> {
        if recorded_at.len() != events.len() {
            return Err(StoreError::InvalidAppend {
                stream: stream.clone(),
                reason: format!(
                    "{} recording times for {} events",
                    recorded_at.len(),
                    events.len()
                ),
            });
        }
        self.submit(stream, expected, events, Some(recorded_at))
            .await
    }

    /// Appends many independent appends with one trip to the writer: each is checked and
    /// atomic on its own, all are made durable together, and the outcomes come back in
    /// order. The fast path for bulk loads (import, relays).
    pub async fn append_batch(
        &self,
        appends: Vec<BatchAppend>,
    ) -> Vec<Result<AppendResult, StoreError>> {
        self.submit_batch(appends).await.wait().await
    }

    /// Queues a batch of appends and returns once it is in the writer's queue, behind
    /// everything queued before it; the returned [`PendingBatch`] resolves to the
    /// outcomes. A caller that submits batch after batch from one task gets them
    /// committed in submission order while many are in flight.
    pub async fn submit_batch(&self, appends: Vec<BatchAppend>) -> PendingBatch {
        let mut outcomes: Vec<Option<Result<AppendResult, StoreError>>> =
            (0..appends.len()).map(|_| None).collect();
        let mut accepted = Vec::with_capacity(appends.len());
        let mut slots = Vec::with_capacity(appends.len());
        for (i, append) in appends.into_iter().enumerate() {
            let checked =
                self.precheck(&append.stream, &append.events)
                    .and_then(|()| match &append.recorded_at {
                        Some(times) if times.len() != append.events.len() => {
                            Err(StoreError::InvalidAppend {
                                stream: append.stream.clone(),
                                reason: format!(
                                    "{} recording times for {} events",
                                    times.len(),
                                    append.events.len()
                                ),
                            })
                        }
                        _ => Ok(()),
                    });
            match checked {
                Ok(()) => {
                    slots.push(i);
                    accepted.push(Append {
                        stream: append.stream,
                        expected: append.expected,
                        events: append.events,
                        recorded_at: append.recorded_at,
                    });
                }
                Err(err) => outcomes[i] = Some(Err(err)),
            }
        }
        let mut reply_rx = None;
        if !accepted.is_empty() {
            let (reply, rx) = oneshot::channel();
            let sent = match self.sender() {
                Ok(sender) => sender
                    .send(Request::Many(accepted, reply))
                    .await
                    .map_err(|_| StoreError::Closed),
                Err(err) => Err(err),
            };
            match sent {
                Ok(()) => reply_rx = Some(rx),
                Err(err) => {
                    for &slot in &slots {
                        outcomes[slot] = Some(Err(match &err {
                            StoreError::ReadOnly { path } => {
                                StoreError::ReadOnly { path: path.clone() }
                            }
                            _ => self.handle.shared.poison_or_closed(),
                        }));
                    }
                    slots.clear();
                }
            }
        }
        PendingBatch {
            outcomes,
            slots,
            reply: reply_rx,
            shared: self.handle.shared.clone(),
        }
    }

    /// Appends from synchronous code (no async runtime needed), waiting for the ack.
    pub fn append_blocking(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        let (reply, rx) = self.enqueue_prepare(stream, &events)?;
        let sender = self.sender()?;
        sender
            .blocking_send(Request::One(
                Append {
                    stream: stream.clone(),
                    expected,
                    events,
                    recorded_at: None,
                },
                reply,
            ))
            .map_err(|_| StoreError::Closed)?;
        rx.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// Closes the store for every handle: waits for the writer to finish the appends it
    /// has, then releases the directory lock. Later calls fail with
    /// [`StoreError::Closed`].
    pub async fn close(self) -> Result<(), StoreError> {
        self.handle.shutdown();
        Ok(())
    }

    /// Makes the next batch write fail as a disk error would (tests only).
    #[cfg(feature = "fault-injection")]
    #[doc(hidden)]
    pub fn inject_write_failure(&self) {
        self.handle
            .shared
            .inject_failure
            .store(true, Ordering::Release);
    }

    fn sender(&self) -> Result<mpsc::Sender<Request>, StoreError> {
        if self.handle.read_only {
            return Err(StoreError::ReadOnly {
                path: self.handle.shared.dir.clone(),
            });
        }
        self.handle.sender.lock().clone().ok_or(StoreError::Closed)
    }

    #[allow(clippy::type_complexity)]
    fn enqueue_prepare(
        &self,
        stream: &StreamName,
        events: &[NewEvent],
    ) -> Result<
        (
            oneshot::Sender<Result<AppendResult, StoreError>>,
            oneshot::Receiver<Result<AppendResult, StoreError>>,
        ),
        StoreError,
    > {
        self.precheck(stream, events)?;
        Ok(oneshot::channel())
    }

    /// The checks an append passes before it goes to the writer.
    fn precheck(&self, stream: &StreamName, events: &[NewEvent]) -> Result<(), StoreError> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        check_event_sizes(stream, events, shared.options.max_event_bytes)?;
        let total: usize = events.iter().map(NewEvent::size).sum();
        if total > MAX_APPEND_BYTES {
            return Err(StoreError::InvalidAppend {
                stream: stream.clone(),
                reason: format!(
                    "the append holds {total} bytes of events, over the limit of {MAX_APPEND_BYTES} per append"
                ),
            });
        }
        if let Some(err) = shared.poison_error() {
            return Err(err);
        }
        Ok(())
    }

    async fn submit(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        recorded_at: Option<Vec<Timestamp>>,
    ) -> Result<AppendResult, StoreError> {
        let (reply, rx) = self.enqueue_prepare(stream, &events)?;
        let sender = self.sender()?;
        sender
            .send(Request::One(
                Append {
                    stream: stream.clone(),
                    expected,
                    events,
                    recorded_at,
                },
                reply,
            ))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Reads a stream synchronously (see [`EventStore::read_stream`]).
    pub fn read_stream_sync(
        &self,
        stream: &StreamName,
        from: Option<Version>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        let locations: Vec<Location> = {
            let index = shared.index.read();
            let Some(positions) = index.stream(stream) else {
                return Ok(Vec::new());
            };
            let selected: Vec<u64> = match direction {
                Direction::Forward => {
                    let start = from.map_or(0, |v| v.0.saturating_sub(1));
                    let start = usize::try_from(start).unwrap_or(usize::MAX);
                    positions
                        .range(start, start.saturating_add(limit))
                        .collect()
                }
                Direction::Backward => {
                    let len = positions.len() as u64;
                    let end = from.map_or(len, |v| v.0.min(len)) as usize;
                    let begin = end.saturating_sub(limit);
                    positions.range(begin, end).collect()
                }
            };
            selected
                .into_iter()
                .map(|p| index.location(p))
                .collect::<Result<_, _>>()?
        };
        let mut events = read_locations(&locations)?;
        if direction == Direction::Backward {
            events.reverse();
        }
        Ok(events)
    }

    /// Finds an event of `stream` by id synchronously (see [`EventStore::event_by_id`]).
    pub fn event_by_id_sync(
        &self,
        stream: &StreamName,
        id: EventId,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        let locations: Vec<Location> = {
            let index = shared.index.read();
            // The id filter answers "certainly not stored" for almost every new id.
            if !index.ids.may_contain(id.as_bytes()) {
                return Ok(None);
            }
            let Some(positions) = index.stream(stream) else {
                return Ok(None);
            };
            // Only events whose id fingerprint matches are read from disk.
            index
                .candidates(positions, id.as_bytes())
                .into_iter()
                .map(|p| index.location(p))
                .collect::<Result<_, _>>()?
        };
        // Newest first: a repeated command is usually a recent one.
        for chunk in locations.rchunks(256) {
            let events = read_locations(chunk)?;
            if let Some(event) = events.into_iter().find(|e| e.id == id) {
                return Ok(Some(event));
            }
        }
        Ok(None)
    }

    /// The position of the event whose id is `id`, in any stream (ids are unique across
    /// the log). The id filter answers almost every fresh id without I/O; on a possible
    /// hit every event's fingerprint is compared in memory and only the events whose
    /// fingerprint matches are read.
    pub fn position_of_id(&self, id: EventId) -> Result<Option<Position>, StoreError> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        let locations: Vec<Location> = {
            let index = shared.index.read();
            if !index.ids.may_contain(id.as_bytes()) {
                return Ok(None);
            }
            index
                .candidates_in_log(id.as_bytes())
                .into_iter()
                .map(|p| index.location(p))
                .collect::<Result<_, _>>()?
        };
        for chunk in locations.chunks(256) {
            if let Some(event) = read_locations(chunk)?.into_iter().find(|e| e.id == id) {
                return Ok(Some(event.position));
            }
        }
        Ok(None)
    }

    /// The versions of `streams` (0 for a stream that does not exist), in order, read
    /// under one look at the index: for bulk loads that ask about many streams at once.
    pub fn stream_versions(&self, streams: &[StreamName]) -> Result<Vec<Version>, StoreError> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        let index = shared.index.read();
        Ok(streams.iter().map(|s| Version(index.version(s))).collect())
    }

    /// The ids among `ids` that the store may hold, in any stream, by its id filter alone,
    /// under one look at the index: an id left out is certainly not stored, one returned
    /// may be (ask [`EmbeddedStore::position_of_id`]). Almost every fresh id is left out.
    pub fn ids_maybe_stored(&self, ids: &[EventId]) -> Result<Vec<EventId>, StoreError> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        let index = shared.index.read();
        let maybe = index.ids.may_contain_each(ids, |id| id.as_bytes());
        Ok(ids
            .iter()
            .zip(maybe)
            .filter_map(|(id, maybe)| maybe.then_some(*id))
            .collect())
    }

    /// Reads the global log synchronously (see [`EventStore::read_all`]).
    pub fn read_all_sync(
        &self,
        from: Position,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<AllPage, StoreError> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        let head = shared.index.read().head;
        let mut next = from.0.max(1);
        let mut names = NameCache::default();
        let scan_end = head.min(next.saturating_add(MAX_SCAN_EVENTS - 1));
        // Without a filter the page's size is known: growing the vector to it moved every
        // event several times.
        let mut events = if filter.is_all() {
            Vec::with_capacity(limit.min((scan_end + 1).saturating_sub(next) as usize))
        } else {
            Vec::new()
        };
        // Records examined and selected so far, to size the next read.
        let (mut scanned, mut selected) = (0usize, 0usize);
        while next <= scan_end && events.len() < limit {
            let wanted = chunk_records(limit - events.len(), scanned, selected, filter);
            // Under the lock: where the next run of records is, inside one segment.
            let (location, offsets) = {
                let index = shared.index.read();
                let Some(segment) = index.segment_of(next) else {
                    break;
                };
                let info = &index.segments[segment];
                let from_i = (next - info.first_position) as usize;
                if from_i >= info.offsets.len() {
                    // Positions accepted as lost hold no event: go on at the next segment.
                    match index.segments.get(segment + 1) {
                        Some(after) => {
                            next = after.first_position;
                            continue;
                        }
                        None => break,
                    }
                }
                let last_pos = scan_end.min(info.first_position + info.offsets.len() as u64 - 1);
                let to_i = (last_pos - info.first_position) as usize;
                let base = u64::from(info.offsets[from_i]);
                // Take records until the chunk is full or holds what the page likely
                // still needs (at least one).
                let mut end_i = from_i;
                while end_i < to_i
                    && end_i - from_i + 1 < wanted
                    && u64::from(info.offsets[end_i + 1]) - base < SCAN_CHUNK_BYTES
                {
                    end_i += 1;
                }
                let end = info
                    .offsets
                    .get(end_i + 1)
                    .map_or(info.len, |&o| u64::from(o));
                let offsets: Vec<u32> = info.offsets[from_i..=end_i].to_vec();
                (
                    Location {
                        position: next,
                        file: info.file.clone(),
                        path: info.path.clone(),
                        start: base,
                        end,
                        segment,
                    },
                    offsets,
                )
            };
            let buf = read_range(&location, location.start, location.end)?;
            // One location moved along the chunk, so no record clones its file handles.
            let mut this = location.clone();
            for (i, &offset) in offsets.iter().enumerate() {
                let position = location.position + i as u64;
                scanned += 1;
                let rel = (u64::from(offset) - location.start) as usize;
                this.position = position;
                this.start = u64::from(offset);
                let frame = buf.slice(rel..);
                if !filter.is_all() {
                    let view = parse_record(&frame).map_err(|e| StoreError::Corrupt {
                        file: this.path.to_path_buf(),
                        offset: this.start,
                        reason: format!("{e:?}"),
                    })?;
                    let stream = std::str::from_utf8(view.stream).unwrap_or_default();
                    let event_type = std::str::from_utf8(view.event_type).unwrap_or_default();
                    if !filter.matches_raw(stream, event_type) {
                        next = position + 1;
                        continue;
                    }
                }
                events.push(crate::read::decode(&frame, &this, &mut names)?);
                selected += 1;
                next = position + 1;
                if events.len() >= limit {
                    break;
                }
            }
        }
        Ok(AllPage {
            events,
            next: Position(next),
        })
    }
}

fn check_options(options: &Options) -> Result<(), StoreError> {
    if options.segment_bytes > 1 << 30 || options.segment_bytes < 4096 {
        return Err(StoreError::io(
            "invalid options",
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "segment_bytes must be between 4 KiB and 1 GiB",
            ),
        ));
    }
    Ok(())
}

/// The read-only follower: polls the directory for new batches until the store is gone.
fn follow(shared: std::sync::Weak<Shared>) {
    loop {
        std::thread::sleep(FOLLOW_INTERVAL);
        let Some(shared) = shared.upgrade() else {
            return;
        };
        if shared.closed.load(Ordering::Acquire) {
            return;
        }
        let result = {
            let mut index = shared.index.write();
            refresh(&*shared.fs, &shared.dir, &mut index).map(|grew| grew.then_some(index.head))
        };
        match result {
            Ok(Some(head)) => {
                shared.head.send_replace(Position(head));
            }
            Ok(None) => {}
            Err(err) => {
                tracing::error!(error = %err, "cannot follow the event store");
                shared.poison(&err);
                shared.head.send_modify(|_| {});
                return;
            }
        }
    }
}

#[async_trait]
impl EventStore for EmbeddedStore {
    async fn append(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    ) -> Result<AppendResult, StoreError> {
        self.submit(stream, expected, events, None).await
    }

    // NOTE: reads run inline: they are positioned reads that almost always hit the page
    // cache, far cheaper than a hop to a blocking thread.
    async fn read_stream(
        &self,
        stream: &StreamName,
        from: Option<Version>,
        direction: Direction,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        self.read_stream_sync(stream, from, direction, limit)
    }

    async fn read_all(
        &self,
        from: Position,
        limit: usize,
        filter: &ReadFilter,
    ) -> Result<AllPage, StoreError> {
        self.read_all_sync(from, limit, filter)
    }

    async fn event_by_id(
        &self,
        stream: &StreamName,
        id: EventId,
    ) -> Result<Option<RecordedEvent>, StoreError> {
        self.event_by_id_sync(stream, id)
    }

    async fn stream_version(&self, stream: &StreamName) -> Result<Version, StoreError> {
        self.handle.shared.check_open()?;
        Ok(Version(self.handle.shared.index.read().version(stream)))
    }

    // NOTE: answered from the in-memory index alone, under its read lock: no segment is
    // read, and the lock is held for the `limit` entries taken, so a bounded page never
    // holds up the syncer's publishing for long. The index only holds published (durable)
    // batches, so every summary is a committed state.
    async fn list_streams(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<StreamSummary>, StoreError> {
        let shared = &self.handle.shared;
        shared.check_open()?;
        if let Some(page) = shared.index.read().list(prefix, after, limit) {
            return Ok(page);
        }
        // The first listing orders the names. The copy is taken under the read lock, but
        // sorted without any lock, and installed under the write lock with only the
        // streams created meanwhile to add: the writer is never held up by the sort.
        let names = shared.index.read().names_to_sort();
        let sorted = names.sorted_ids();
        let spare = shared.index.write().install_names(sorted, names.len());
        drop((spare, names));
        Ok(shared
            .index
            .read()
            .list(prefix, after, limit)
            .unwrap_or_default())
    }

    async fn head(&self) -> Result<Position, StoreError> {
        self.handle.shared.check_open()?;
        Ok(Position(self.handle.shared.index.read().head))
    }

    fn watch_head(&self) -> watch::Receiver<Position> {
        self.handle.shared.head.subscribe()
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.handle.shared.check_writable()
    }

    fn subscribe(&self, after: Position, filter: ReadFilter) -> EventStream {
        catch_up_subscription(self.clone(), after, filter)
    }
}
