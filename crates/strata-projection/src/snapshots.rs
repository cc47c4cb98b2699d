//! [`SqliteSnapshots`]: durable aggregate snapshots in one SQLite table (the latest per
//! stream), for the command side. It must not interpret the snapshot state.

use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use rusqlite::{Connection, OptionalExtension as _, params};
use strata_core::{StreamName, Version};
use strata_domain::{Snapshot, SnapshotError, SnapshotStore};

use crate::worker::{Priority, Worker};
use crate::{ProjectionError, db};

/// Snapshots kept in a SQLite database: one row per stream, replaced only by a snapshot
/// of the same or a later stream version. Saves run on one dedicated writer thread; a
/// load is one read by primary key, run where it is asked on a pooled read-only
/// connection (the database is in WAL mode, so it never waits for a save), cheaper than
/// the two thread hand-offs of a trip to the writer.
pub struct SqliteSnapshots {
    worker: Worker<Connection>,
    /// Read-only connections for loads.
    readers: db::Readers,
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
        let readers = db::Readers::new(path.clone());
        let worker = Worker::spawn("strata-snapshots".to_owned(), Priority::Normal, move || {
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
        Ok(Self { worker, readers })
    }
}

fn storage(err: impl std::error::Error + Send + Sync + 'static) -> SnapshotError {
    SnapshotError::storage(err)
}

#[async_trait]
impl SnapshotStore for SqliteSnapshots {
    // NOTE: inline on the caller's thread: one lookup by primary key, its pages almost
    // always cached, takes less than waking the writer thread and being woken by it.
    async fn load(&self, stream: &StreamName) -> Result<Option<Snapshot>, SnapshotError> {
        self.readers
            .read(|conn| {
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
