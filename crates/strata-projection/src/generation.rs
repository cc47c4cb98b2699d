//! One generation of a projection: its database file, the writer thread that owns the
//! file's one writer connection, a small pool of read-only connections for queries, and
//! the counters its runner publishes. A retired generation removes its file when the
//! last handle to it goes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;
use rusqlite::Connection;
use strata_core::{Position, Timestamp};
use tokio::sync::watch;

use crate::core::ProjectionCore;
use crate::meta::GenerationId;
use crate::worker::Worker;
use crate::{ProjectionError, RunnerState, SqliteProjection, db};

/// Idle read connections kept per generation.
const MAX_IDLE_READERS: usize = 4;

/// What a runner publishes besides its checkpoint.
#[derive(Debug, Clone)]
pub(crate) struct RunInfo {
    pub(crate) state: RunnerState,
    pub(crate) last_error: Option<String>,
    pub(crate) retrying: bool,
    pub(crate) parked: u64,
    /// When the oldest event known to be unapplied was recorded.
    pub(crate) pending_since: Option<Timestamp>,
    /// The event a `Stop` policy stopped at.
    pub(crate) failed_at: Option<Position>,
}

pub(crate) struct Generation {
    pub(crate) name: &'static str,
    pub(crate) id: GenerationId,
    pub(crate) path: PathBuf,
    /// The code that builds this generation; `None` for an older version whose code is
    /// no longer registered (it only answers queries until its successor takes over).
    pub(crate) projection: Option<Arc<dyn SqliteProjection>>,
    /// The committed checkpoint. Also sent (unchanged) when the runner's state changes,
    /// to wake waiters.
    pub(crate) checkpoint: watch::Sender<Position>,
    pub(crate) info: Mutex<RunInfo>,
    /// True asks the runner to stop after its current batch.
    pub(crate) stop: watch::Sender<bool>,
    writer: Mutex<Option<Arc<Worker<ProjectionCore>>>>,
    readers: Mutex<Vec<Connection>>,
    retired: AtomicBool,
    /// Whether a runner task owns this generation.
    running: AtomicBool,
}

impl Generation {
    /// A generation whose file exists (or will be created by [`Generation::writer`]).
    pub(crate) fn new(
        name: &'static str,
        id: GenerationId,
        path: PathBuf,
        projection: Option<Arc<dyn SqliteProjection>>,
        checkpoint: Position,
        parked: u64,
    ) -> Self {
        Self {
            name,
            id,
            path,
            projection,
            checkpoint: watch::Sender::new(checkpoint),
            info: Mutex::new(RunInfo {
                state: RunnerState::Stopped,
                last_error: None,
                retrying: false,
                parked,
                pending_since: None,
                failed_at: None,
            }),
            stop: watch::Sender::new(false),
            writer: Mutex::new(None),
            readers: Mutex::new(Vec::new()),
            retired: AtomicBool::new(false),
            running: AtomicBool::new(false),
        }
    }

    /// Opens (and migrates) the generation's database on a new writer thread, returning
    /// the writer and the database's checkpoint and parked count.
    pub(crate) fn open_writer(
        &self,
    ) -> Result<(Arc<Worker<ProjectionCore>>, Position, u64), ProjectionError> {
        if let Some(writer) = self.writer.lock().clone() {
            let info = writer.call_blocking(|core| (core.checkpoint(), core.parked_count()))?;
            return Ok((writer, info.0, info.1.unwrap_or(0)));
        }
        let Some(projection) = self.projection.clone() else {
            return Err(ProjectionError::Stale {
                name: self.name.to_owned(),
                version: self.id.version,
            });
        };
        let path = self.path.clone();
        let generation = self.id.generation;
        let worker = Worker::spawn(format!("strata-projection-{}", self.name), move || {
            ProjectionCore::open(projection, &path, generation)
        })?;
        let worker = Arc::new(worker);
        let (checkpoint, parked) =
            worker.call_blocking(|core| (core.checkpoint(), core.parked_count()))?;
        let parked = parked.map_err(|e| {
            ProjectionError::sqlite(format!("cannot read {}", self.path.display()), e)
        })?;
        *self.writer.lock() = Some(worker.clone());
        self.checkpoint.send_replace(checkpoint);
        self.info.lock().parked = parked;
        Ok((worker, checkpoint, parked))
    }

    /// The writer, opening it if it is closed.
    pub(crate) fn writer(&self) -> Result<Arc<Worker<ProjectionCore>>, ProjectionError> {
        if let Some(writer) = self.writer.lock().clone() {
            return Ok(writer);
        }
        self.open_writer().map(|(writer, _, _)| writer)
    }

    /// Closes the writer thread (after its queued jobs) and waits for it.
    pub(crate) async fn close_writer(&self) {
        let writer = self.writer.lock().take();
        if let Some(writer) = writer {
            writer.close_and_join().await;
        }
    }

    /// Runs `f` on a pooled read-only connection (blocking the calling thread).
    pub(crate) fn with_reader<T>(
        &self,
        f: impl FnOnce(&Connection) -> T,
    ) -> Result<T, ProjectionError> {
        let conn = self.readers.lock().pop();
        let conn = match conn {
            Some(conn) => conn,
            None => db::open_reader(&self.path)?,
        };
        let out = f(&conn);
        let mut readers = self.readers.lock();
        if readers.len() < MAX_IDLE_READERS && !self.retired.load(Ordering::Acquire) {
            readers.push(conn);
        }
        Ok(out)
    }

    /// Takes the right to run this generation; false if a runner already has it.
    pub(crate) fn claim_runner(&self) -> bool {
        self.running
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Gives the right to run back, when a runner ends.
    pub(crate) fn release_runner(&self) {
        self.running.store(false, Ordering::Release);
    }

    /// Whether the generation was replaced.
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Marks the generation replaced: its runner stops and its file is removed once the
    /// last handle is dropped.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.stop.send_replace(true);
        self.readers.lock().clear();
    }

    /// Updates the runner info and wakes whoever waits on this generation.
    pub(crate) fn update(&self, f: impl FnOnce(&mut RunInfo)) {
        f(&mut self.info.lock());
        self.checkpoint.send_modify(|_| {});
    }

    /// Publishes a new committed checkpoint.
    pub(crate) fn publish_checkpoint(&self, checkpoint: Position) {
        self.checkpoint.send_if_modified(|c| {
            if checkpoint > *c {
                *c = checkpoint;
                true
            } else {
                false
            }
        });
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        self.readers.get_mut().clear();
        if let Some(writer) = self.writer.get_mut().take() {
            // Join the writer so its connection is closed before the file goes.
            if let Some(thread) = writer.close() {
                let _ = thread.join();
            }
        }
        if self.retired.load(Ordering::Acquire)
            && let Err(err) = db::remove_database(&self.path)
        {
            tracing::warn!(file = %self.path.display(), error = %err, "cannot remove a retired read model");
        }
    }
}
