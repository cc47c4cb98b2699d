//! A relay's checkpoint: the last position a broker confirmed, in a small SQLite file of
//! its own. It must not be written before the broker confirmed everything up to it, and
//! it never runs SQLite on an async runtime worker.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension as _};
use strata_core::Position;

use crate::RelayError;

/// One relay's checkpoint file.
#[derive(Clone)]
pub(crate) struct CheckpointFile {
    path: PathBuf,
    conn: Arc<Mutex<Connection>>,
}

impl CheckpointFile {
    /// Opens (creating it if missing) the checkpoint at `path`. Blocking.
    pub(crate) fn open(path: &Path) -> Result<Self, RelayError> {
        let err = |source| RelayError::Checkpoint {
            path: path.to_owned(),
            source,
        };
        let conn = Connection::open(path).map_err(err)?;
        // NOTE: FULL, not NORMAL: a lost checkpoint write only republishes (the broker or
        // the consumer drops the duplicates), but the cost is one fsync per confirmed
        // batch and it keeps republishing inside the broker's duplicate window.
        conn.execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = FULL;
             CREATE TABLE IF NOT EXISTS strata_checkpoint (
                 id INTEGER PRIMARY KEY CHECK (id = 0),
                 position INTEGER NOT NULL
             );",
        )
        .map_err(err)?;
        Ok(Self {
            path: path.to_owned(),
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// The stored checkpoint (0 when nothing was published yet). Blocking.
    pub(crate) fn load(&self) -> Result<Position, RelayError> {
        let position: Option<i64> = self
            .conn
            .lock()
            .query_row(
                "SELECT position FROM strata_checkpoint WHERE id = 0",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|source| self.error(source))?;
        Ok(Position(
            position.map_or(0, |p| u64::try_from(p).unwrap_or(0)),
        ))
    }

    /// Stores `position` durably, on a blocking thread.
    pub(crate) async fn store(&self, position: Position) -> Result<(), RelayError> {
        let this = self.clone();
        let value = i64::try_from(position.0).unwrap_or(i64::MAX);
        let joined = tokio::task::spawn_blocking(move || {
            this.conn
                .lock()
                .execute(
                    "INSERT INTO strata_checkpoint (id, position) VALUES (0, ?1)
                     ON CONFLICT (id) DO UPDATE SET position = excluded.position",
                    [value],
                )
                .map(|_| ())
                .map_err(|source| this.error(source))
        })
        .await;
        match joined {
            Ok(result) => result,
            // The closure does not panic; a cancelled runtime is the only other end.
            Err(join) => Err(self.error(rusqlite::Error::ToSqlConversionFailure(Box::new(join)))),
        }
    }

    fn error(&self, source: rusqlite::Error) -> RelayError {
        RelayError::Checkpoint {
            path: self.path.clone(),
            source,
        }
    }
}

/// Where a relay's checkpoint lives: its own file, or a row of a database several
/// servers share (written only under the relay's lease).
#[derive(Clone)]
pub(crate) enum Checkpoint {
    /// A file in the data directory.
    File(CheckpointFile),
    /// A row of `strata_relay.checkpoints`, and the position of a file from before to
    /// carry over while the row is missing.
    #[cfg(feature = "postgres")]
    Shared {
        row: crate::pg::PgCheckpoint,
        seed: Option<Position>,
    },
}

impl Checkpoint {
    /// The stored checkpoint (0 when none is stored).
    pub(crate) async fn load(&self) -> Result<Position, RelayError> {
        match self {
            Checkpoint::File(file) => {
                let file = file.clone();
                let path = file.path.clone();
                tokio::task::spawn_blocking(move || file.load())
                    .await
                    .unwrap_or_else(|join| {
                        Err(RelayError::Checkpoint {
                            path,
                            source: rusqlite::Error::ToSqlConversionFailure(Box::new(join)),
                        })
                    })
            }
            #[cfg(feature = "postgres")]
            Checkpoint::Shared { row, seed } => {
                if let Some(seed) = seed {
                    row.seed(*seed).await?;
                }
                row.load().await
            }
        }
    }

    /// Stores `position` durably; on a shared database only while `fence` is still the
    /// current grant of the relay's lease.
    #[cfg_attr(not(feature = "postgres"), allow(unused_variables))]
    pub(crate) async fn store(
        &self,
        position: Position,
        fence: Option<&strata_projection::Fence>,
    ) -> Result<(), RelayError> {
        match self {
            Checkpoint::File(file) => file.store(position).await,
            #[cfg(feature = "postgres")]
            Checkpoint::Shared { row, .. } => row.store(position, fence).await,
        }
    }
}
