//! One generation of a projection: its database file, the writer thread that owns the
//! file's one writer connection, a small pool of read-only connections for queries, and
//! the lane its runner publishes on. A retired generation removes its file when the
//! last handle to it goes.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::Mutex;
use rusqlite::Connection;
use strata_core::Position;

use crate::core::ProjectionCore;
use crate::lane::Lane;
use crate::meta::GenerationId;
use crate::worker::{Priority, Worker};
use crate::{ProjectionError, SqliteProjection, db};

pub(crate) struct Generation {
    pub(crate) name: &'static str,
    pub(crate) id: GenerationId,
    pub(crate) path: PathBuf,
    /// The code that builds this generation; `None` for an older version whose code is
    /// no longer registered (it only answers queries until its successor takes over).
    pub(crate) projection: Option<Arc<dyn SqliteProjection>>,
    /// The runner's checkpoint, state and stop signal.
    pub(crate) lane: Lane,
    /// Events in the dead-letter table.
    pub(crate) parked: AtomicU64,
    writer: Mutex<Option<Arc<Worker<ProjectionCore>>>>,
    readers: db::Readers,
    retired: AtomicBool,
}

impl Generation {
    /// A generation whose file exists (or will be created by [`Generation::writer`]).
    pub(crate) fn new(
        name: &'static str,
        id: GenerationId,
        path: PathBuf,
        projection: Option<Arc<dyn SqliteProjection>>,
    ) -> Self {
        Self {
            name,
            id,
            readers: db::Readers::new(path.clone()),
            path,
            projection,
            lane: Lane::new(Position::ZERO),
            parked: AtomicU64::new(0),
            writer: Mutex::new(None),
            retired: AtomicBool::new(false),
        }
    }

    /// The writer, opening (and migrating) the database on a new writer thread if it is
    /// closed, and publishing the database's checkpoint and parked count (blocking).
    pub(crate) fn writer(&self) -> Result<Arc<Worker<ProjectionCore>>, ProjectionError> {
        if let Some(writer) = self.writer.lock().clone() {
            return Ok(writer);
        }
        let Some(projection) = self.projection.clone() else {
            return Err(ProjectionError::Stale {
                name: self.name.to_owned(),
                version: self.id.version,
            });
        };
        let path = self.path.clone();
        let generation = self.id.generation;
        let worker = Worker::spawn(
            format!("strata-projection-{}", self.name),
            Priority::Background,
            move || ProjectionCore::open(projection, &path, generation),
        )?;
        let worker = Arc::new(worker);
        let (checkpoint, parked) =
            worker.call_blocking(|core| (core.checkpoint(), core.parked_count()))?;
        let parked = parked.map_err(|e| {
            ProjectionError::sqlite(format!("cannot read {}", self.path.display()), e)
        })?;
        *self.writer.lock() = Some(worker.clone());
        self.lane.reset_checkpoint(checkpoint);
        self.parked.store(parked, Ordering::Release);
        Ok(worker)
    }

    /// The writer if it is open (never blocks).
    pub(crate) fn current_writer(&self) -> Option<Arc<Worker<ProjectionCore>>> {
        self.writer.lock().clone()
    }

    /// Reads the checkpoint and parked count of a generation that has no code (blocking).
    pub(crate) fn load_stale(&self) -> Result<(), ProjectionError> {
        let (checkpoint, parked) = self
            .with_reader(|conn| {
                let checkpoint = db::read_checkpoint(conn)?;
                let parked = crate::core::list_parked(conn)?.len() as u64;
                Ok::<_, rusqlite::Error>((checkpoint, parked))
            })?
            .map_err(|e| {
                ProjectionError::sqlite(format!("cannot read {}", self.path.display()), e)
            })?;
        self.lane.reset_checkpoint(checkpoint);
        self.parked.store(parked, Ordering::Release);
        Ok(())
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
        self.readers.read(f)
    }

    /// Whether the generation was replaced (or given up).
    pub(crate) fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Marks the generation replaced or given up: its runner stops and its file is
    /// removed once the last handle is dropped.
    pub(crate) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.lane.ask_stop();
        self.readers.close();
    }
}

impl Drop for Generation {
    fn drop(&mut self) {
        self.readers.close();
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
