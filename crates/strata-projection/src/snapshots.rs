//! [`SqliteSnapshots`]: durable aggregate snapshots in one SQLite table (the latest per
//! stream), for the command side. It must not interpret the snapshot state.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension as _, params};
use strata_core::{StreamName, Version};
use strata_domain::{Snapshot, SnapshotError, SnapshotStore};

use crate::worker::{Priority, Worker};
use crate::{ProjectionError, db};

/// Read-only connections kept open for loads.
const MAX_IDLE_READERS: usize = 4;

/// Snapshots kept in a SQLite database: one row per stream, replaced only by a snapshot
/// of the same or a later stream version. Saves run on one dedicated writer thread; a
/// load is one read by primary key, run where it is asked on a pooled read-only
/// connection (the database is in WAL mode, so it never waits for a save), cheaper than
/// the two thread hand-offs of a trip to the writer.
pub struct SqliteSnapshots {
    worker: Worker<Connection>,
    path: PathBuf,
    /// Idle read-only connections.
    readers: Mutex<Vec<Connection>>,
}

impl SqliteSnapshots {
    /// Opens (creating) the snapshot database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ProjectionError> {
        let path = path.as_ref().to_owned();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| {
                ProjectionError::io(format!("cannot create {}", parent.display()), e)
            })?;
        }
        let file = path.clone();
        let worker = Worker::spawn("strata-snapshots".to_owned(), Priority::Normal, move || {
            let path = file;
            let conn = db::open_writer(&path)?;
            conn.execute_batch(
                "CREATE TABLE IF NOT EXISTS snapshots (
                    stream TEXT PRIMARY KEY,
                    version INTEGER NOT NULL,
                    schema_version INTEGER NOT NULL,
                    state BLOB NOT NULL
                )",
            )
            .map_err(|e| ProjectionError::sqlite(format!("cannot set up {}", path.display()), e))?;
            Ok(conn)
        })?;
        Ok(Self {
            worker,
            path,
            readers: Mutex::new(Vec::new()),
        })
    }

    /// Runs `f` on an idle read-only connection, opening one if none is idle.
    fn with_reader<T>(&self, f: impl FnOnce(&Connection) -> T) -> Result<T, ProjectionError> {
        let idle = self.readers.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => db::open_reader(&self.path)?,
        };
        let out = f(&conn);
        let mut readers = self.readers.lock();
        if readers.len() < MAX_IDLE_READERS {
            readers.push(conn);
        }
        Ok(out)
    }
}

fn storage(err: impl std::error::Error + Send + Sync + 'static) -> SnapshotError {
    SnapshotError::storage(err)
}

#[async_trait]
impl SnapshotStore for SqliteSnapshots {
    // NOTE: inline on the caller's thread: one lookup by primary key in a small table,
    // answered from SQLite's page cache, takes less than waking the writer thread and
    // being woken by it.
    async fn load(&self, stream: &StreamName) -> Result<Option<Snapshot>, SnapshotError> {
        self.with_reader(|conn| {
            conn.prepare_cached(
                "SELECT version, schema_version, state FROM snapshots WHERE stream = ?1",
            )?
            .query_row([stream.as_str()], |row| {
                Ok(Snapshot {
                    stream: stream.clone(),
                    version: Version(row.get::<_, i64>(0)?.max(0) as u64),
                    schema_version: row.get::<_, i64>(1)?.clamp(0, i64::from(u32::MAX)) as u32,
                    state: Bytes::from(row.get::<_, Vec<u8>>(2)?),
                })
            })
            .optional()
        })
        .map_err(storage)?
        .map_err(storage)
    }

    async fn save(&self, snapshot: Snapshot) -> Result<(), SnapshotError> {
        self.worker
            .call(move |conn| {
                conn.prepare_cached(
                    "INSERT INTO snapshots (stream, version, schema_version, state)
                     VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (stream) DO UPDATE SET
                        version = excluded.version,
                        schema_version = excluded.schema_version,
                        state = excluded.state
                     WHERE excluded.version >= snapshots.version",
                )?
                .execute(params![
                    snapshot.stream.as_str(),
                    snapshot.version.0 as i64,
                    i64::from(snapshot.schema_version),
                    &snapshot.state[..],
                ])
            })
            .await
            .map_err(storage)?
            .map_err(storage)?;
        Ok(())
    }
}
