//! The writer thread: the only code that writes the log. It takes every pending append,
//! checks each against the stream heads (committed plus earlier appends of the same
//! batch), encodes the accepted ones as one batch, writes it with one positioned write,
//! fdatasyncs once, publishes the batch to the index, and only then answers everyone in
//! it (group commit). A failed write or fsync poisons the store; it is never retried.

use std::collections::HashMap;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

use strata_core::{EventId, ExpectedVersion, NewEvent, Position, StreamName, Timestamp, Version};
use strata_store::{AppendCheck, AppendResult, StoreError, check_append};
use tokio::sync::{mpsc, oneshot};

use crate::Durability;
use crate::format::{RecordParts, begin_batch, encode_record, finish_batch};
use crate::open::{create_segment, write_segment_index};
use crate::read::{NameCache, decode, read_range};
use crate::store::Shared;

/// Stop adding appends to a batch past this many bytes.
const MAX_BATCH_BYTES: usize = 32 << 20;
/// Stop adding appends to a batch past this many requests.
const MAX_BATCH_REQUESTS: usize = 8192;

/// One append waiting for the writer.
pub(crate) struct Request {
    pub(crate) stream: StreamName,
    pub(crate) expected: ExpectedVersion,
    pub(crate) events: Vec<NewEvent>,
    /// Recording times given by an import; `None` stamps the commit time.
    pub(crate) recorded_at: Option<Vec<Timestamp>>,
    pub(crate) reply: oneshot::Sender<Result<AppendResult, StoreError>>,
}

impl Request {
    fn bytes(&self) -> usize {
        self.events.iter().map(|e| e.size() + 64).sum()
    }
}

pub(crate) struct Writer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) rx: mpsc::Receiver<Request>,
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    /// Committed length of the active segment.
    pub(crate) len: u64,
    /// Stream id and event id of each event in the active segment, for its index file.
    pub(crate) active_meta: Vec<(u32, [u8; 16])>,
}

/// An event accepted into the batch being built.
struct Staged {
    stream: StreamName,
    position: u64,
    offset: u64,
    id: [u8; 16],
}

/// What the batch being built has done to one stream.
struct PendingStream {
    /// The stream's committed version.
    base: u64,
    /// Ids and positions of this batch's events for the stream, in version order.
    events: Vec<(EventId, u64)>,
}

impl Writer {
    pub(crate) fn run(mut self) {
        let mut buf = Vec::with_capacity(1 << 20);
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
            self.commit(batch, &mut buf);
        }
    }

    fn commit(&mut self, batch: Vec<Request>, buf: &mut Vec<u8>) {
        if self.shared.poison_error().is_some() {
            for request in batch {
                let _ = request.reply.send(Err(self
                    .shared
                    .poison_error()
                    .unwrap_or(StoreError::Closed)));
            }
            return;
        }
        if self.len >= self.shared.options.segment_bytes
            && let Err(err) = self.roll()
        {
            self.shared.poison(&err);
            for request in batch {
                let _ = request.reply.send(Err(self
                    .shared
                    .poison_error()
                    .unwrap_or(StoreError::Closed)));
            }
            return;
        }
        let now = Timestamp::from_datetime(time_now());
        buf.clear();
        let batch_start = begin_batch(buf);
        let mut staged: Vec<Staged> = Vec::new();
        let mut outcomes: Vec<Result<AppendResult, StoreError>> = Vec::with_capacity(batch.len());
        let first_position;
        {
            let index = self.shared.index.read();
            first_position = index.head + 1;
            let mut pending: HashMap<StreamName, PendingStream> = HashMap::new();
            for request in &batch {
                let base = pending
                    .get(&request.stream)
                    .map_or_else(|| index.version(&request.stream), |p| p.base);
                let pending_events: &[(EventId, u64)] = pending
                    .get(&request.stream)
                    .map_or(&[], |p| p.events.as_slice());
                let current = base + pending_events.len() as u64;
                let committed = index.stream(&request.stream);
                let check = check_append(
                    &request.stream,
                    request.expected,
                    Version(current),
                    &request.events,
                    |v| {
                        if v.0 <= base {
                            let position = committed
                                .and_then(|s| s.positions.get((v.0 - 1) as usize).copied())
                                .ok_or(StoreError::Closed)?;
                            let event = read_one(&index, position)?;
                            Ok((event, Position(position)))
                        } else {
                            let (id, position) = pending_events[(v.0 - base - 1) as usize];
                            Ok((id, Position(position)))
                        }
                    },
                    |id| {
                        if let Some(i) = pending_events.iter().position(|(e, _)| *e == id) {
                            return Ok(Some(Version(base + i as u64 + 1)));
                        }
                        if !index.ids.may_contain(id.as_bytes()) {
                            return Ok(None);
                        }
                        let Some(stream) = committed else {
                            return Ok(None);
                        };
                        for (i, &position) in stream.positions.iter().enumerate() {
                            if read_one(&index, position)? == id {
                                return Ok(Some(Version(i as u64 + 1)));
                            }
                        }
                        Ok(None)
                    },
                );
                let current = match check {
                    Err(err) | Ok(AppendCheck::Refuse(err)) => {
                        outcomes.push(Err(err));
                        continue;
                    }
                    Ok(AppendCheck::AlreadyAppended(result)) => {
                        outcomes.push(Ok(result));
                        continue;
                    }
                    Ok(AppendCheck::Write { current }) => current.0,
                };
                let first = first_position + staged.len() as u64;
                let entry =
                    pending
                        .entry(request.stream.clone())
                        .or_insert_with(|| PendingStream {
                            base,
                            events: Vec::new(),
                        });
                for (i, event) in request.events.iter().enumerate() {
                    let position = first + i as u64;
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
                    entry.events.push((event.id, position));
                    staged.push(Staged {
                        stream: request.stream.clone(),
                        position,
                        offset,
                        id: *event.id.as_bytes(),
                    });
                }
                let count = request.events.len() as u64;
                outcomes.push(Ok(AppendResult {
                    first_version: Version(current + 1),
                    last_version: Version(current + count),
                    first_position: Position(first),
                    position: Position(first + count - 1),
                }));
            }
        }
        if !staged.is_empty() {
            finish_batch(buf, batch_start, staged.len() as u32, first_position);
            if let Err(err) = self.write(buf) {
                self.shared.poison(&err);
                for request in batch {
                    let _ = request.reply.send(Err(self
                        .shared
                        .poison_error()
                        .unwrap_or(StoreError::Closed)));
                }
                return;
            }
            self.publish(&staged, buf.len() as u64);
        }
        for (request, outcome) in batch.into_iter().zip(outcomes) {
            let _ = request.reply.send(outcome);
        }
    }

    /// Writes and (by default) fdatasyncs one batch at the end of the active segment.
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
        })?;
        if self.shared.options.durability == Durability::Sync {
            // NOTE: fdatasync is never retried: after a failure the kernel may have
            // dropped the dirty pages, so a second success would prove nothing.
            self.file.sync_data().map_err(|e| {
                StoreError::io(format!("cannot fdatasync {}", self.path.display()), e)
            })?;
        }
        Ok(())
    }

    /// Makes a durable batch visible to readers, then wakes subscribers.
    fn publish(&mut self, staged: &[Staged], batch_len: u64) {
        self.len += batch_len;
        let head = {
            let mut index = self.shared.index.write();
            for event in staged {
                let stream = index.intern(&event.stream);
                index.push(stream, event.position, event.offset, &event.id);
                self.active_meta.push((stream, event.id));
            }
            if let Some(segment) = index.segments.last_mut() {
                segment.len = self.len;
            }
            index.head
        };
        self.shared.head.send_replace(Position(head));
    }

    /// Seals the active segment (writing its index file) and starts a new one.
    fn roll(&mut self) -> Result<(), StoreError> {
        let next = {
            let index = self.shared.index.read();
            if let Err(e) = write_segment_index(&index, &self.path, &self.active_meta) {
                tracing::warn!(file = %self.path.display(), error = %e, "cannot write segment index; it will be rebuilt on open");
            }
            index.head + 1
        };
        let (path, file) = create_segment(&self.shared.dir, next)?;
        let reader = crate::open::open_file(&path)?;
        {
            let mut index = self.shared.index.write();
            index.segments.push(crate::index::SegmentInfo {
                first_position: next,
                path: path.clone(),
                file: Arc::new(reader),
                offsets: Vec::new(),
                len: crate::format::SEGMENT_HEADER_LEN,
            });
        }
        self.file = file;
        self.path = path;
        self.len = crate::format::SEGMENT_HEADER_LEN;
        self.active_meta.clear();
        Ok(())
    }
}

/// The id of the committed event at `position`, read from disk.
fn read_one(index: &crate::index::Index, position: u64) -> Result<EventId, StoreError> {
    let location = index.locate(position).ok_or(StoreError::Closed)?;
    let bytes = read_range(&location, location.start, location.end)?;
    let event = decode(&bytes, &location, &mut NameCache::default())?;
    Ok(event.id)
}

fn time_now() -> ::time::OffsetDateTime {
    ::time::OffsetDateTime::now_utc()
}
