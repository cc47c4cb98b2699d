//! Opening read databases, pooling read-only connections to them ([`Readers`]), and the
//! bookkeeping tables every one of them holds (`strata_checkpoint`, `strata_parked`,
//! `strata_model`).
//!
//! NOTE: read databases run in WAL mode with `synchronous=NORMAL`: a power loss may lose
//! the last few commits, but never tears one, and the checkpoint lives in the same
//! database as the model, so a lost commit only rewinds both together and the runner
//! re-applies those events from the event log, which is the source of truth.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};
use strata_core::{Position, Timestamp};

use crate::ProjectionError;

/// How long a connection waits for another's lock before failing with `SQLITE_BUSY`.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The bookkeeping tables, created in the migration transaction of a fresh database.
const SYSTEM_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS strata_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
INSERT OR IGNORE INTO strata_checkpoint (id, position, updated_at) VALUES (1, 0, 0);
CREATE TABLE IF NOT EXISTS strata_parked (
    position INTEGER PRIMARY KEY,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    data BLOB NOT NULL,
    metadata BLOB NOT NULL,
    recorded_at INTEGER NOT NULL,
    error TEXT NOT NULL,
    parked_at INTEGER NOT NULL,
    attempts INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS strata_model (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
";

/// Prepared statements a writer connection keeps: a model's few statements, the
/// savepoint's and the checkpoint's, with room to spare, so none is parsed again per
/// event.
const STATEMENT_CACHE: usize = 64;

/// The page cache of a writer connection, in KiB (SQLite reads a negative `cache_size`
/// as KiB): a model's hot pages (its indexes' right edges, the rows a batch touches)
/// stay in memory while it is rebuilt, instead of being read back from the file and
/// the WAL after the default 2 MiB. It grows only as far as the database does.
const WRITER_CACHE_KIB: i64 = -32 * 1024;

/// The `user_version` of a database whose model has been migrated.
const MIGRATED: i64 = 1;

/// The page size of a read model's database, set when the file is created (an existing
/// file keeps its own). Half SQLite's default: a model's rows are small and each commit
/// writes every page it dirtied to the WAL (and a checkpoint copies it again), so a
/// live model that touches a few scattered rows per batch writes half the bytes. Rows up
/// to about 480 bytes still fit a page of a `WITHOUT ROWID` table.
const MODEL_PAGE_SIZE: i64 = 2048;

/// Opens (creating) a database for writing, in WAL mode.
pub(crate) fn open_writer(path: &Path) -> Result<Connection, ProjectionError> {
    open_writer_with(path, None)
}

/// Opens (creating, with [`MODEL_PAGE_SIZE`]) a read model's database for writing, in WAL
/// mode.
pub(crate) fn open_model_writer(path: &Path) -> Result<Connection, ProjectionError> {
    open_writer_with(path, Some(MODEL_PAGE_SIZE))
}

fn open_writer_with(path: &Path, page_size: Option<i64>) -> Result<Connection, ProjectionError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| ProjectionError::sqlite(format!("cannot open {}", path.display()), e))?;
    // NOTE: before the journal mode, which writes the first page of a new file; SQLite
    // ignores it for a file that already has pages.
    if let Some(size) = page_size {
        conn.pragma_update(None, "page_size", size).map_err(|e| {
            ProjectionError::sqlite(format!("cannot configure {}", path.display()), e)
        })?;
    }
    conn.busy_timeout(BUSY_TIMEOUT)
        .and_then(|()| conn.pragma_update(None, "journal_mode", "WAL"))
        .and_then(|()| conn.pragma_update(None, "synchronous", "NORMAL"))
        .map_err(|e| ProjectionError::sqlite(format!("cannot configure {}", path.display()), e))?;
    conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)
        .map_err(|e| ProjectionError::sqlite(format!("cannot configure {}", path.display()), e))?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    Ok(conn)
}

/// Opens a database for queries: read-only, sharing the writer's WAL.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, ProjectionError> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|e| ProjectionError::sqlite(format!("cannot open {} to read", path.display()), e))?;
    conn.busy_timeout(BUSY_TIMEOUT)
        .map_err(|e| ProjectionError::sqlite(format!("cannot configure {}", path.display()), e))?;
    Ok(conn)
}

/// Idle read-only connections kept per database.
const MAX_IDLE_READERS: usize = 4;

/// Read-only connections to one database, opened when none is idle and kept (up to
/// [`MAX_IDLE_READERS`]) for the next read until [`Readers::close`].
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    closed: AtomicBool,
}

impl Readers {
    /// No connection yet; the first read opens one.
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
            closed: AtomicBool::new(false),
        }
    }

    /// Runs `f` on an idle connection, or on a new one if none is idle (blocking the
    /// calling thread). The connection is kept for the next read unless closed.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection) -> T) -> Result<T, ProjectionError> {
        let idle = self.idle.lock().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => open_reader(&self.path)?,
        };
        let out = f(&conn);
        let mut idle = self.idle.lock();
        if idle.len() < MAX_IDLE_READERS && !self.closed.load(Ordering::Acquire) {
            idle.push(conn);
        }
        Ok(out)
    }

    /// Closes the idle connections; a read still running closes its own when it ends.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.idle.lock().clear();
    }
}

/// Whether the database was already migrated.
pub(crate) fn is_migrated(conn: &Connection) -> rusqlite::Result<bool> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0))?;
    Ok(version >= MIGRATED)
}

/// Creates the bookkeeping tables and marks the database migrated, inside `tx` (the
/// caller adds its own tables to the same transaction).
pub(crate) fn create_system_tables(
    tx: &rusqlite::Transaction<'_>,
    name: &str,
    version: u32,
    generation: u64,
) -> rusqlite::Result<()> {
    tx.execute_batch(SYSTEM_SCHEMA)?;
    tx.execute(
        "INSERT OR REPLACE INTO strata_model (id, name, version, generation, created_at)
         VALUES (1, ?1, ?2, ?3, ?4)",
        params![name, version, generation as i64, now().unix_nanos()],
    )?;
    tx.pragma_update(None, "user_version", MIGRATED)?;
    Ok(())
}

/// The stored checkpoint.
pub(crate) fn read_checkpoint(conn: &Connection) -> rusqlite::Result<Position> {
    let position: Option<i64> = conn
        .prepare_cached("SELECT position FROM strata_checkpoint WHERE id = 1")?
        .query_row([], |row| row.get(0))
        .optional()?;
    Ok(Position(position.unwrap_or(0).max(0) as u64))
}

/// Stores the checkpoint inside the caller's transaction. Like the read above, it runs
/// once per batch, so its statement stays prepared.
pub(crate) fn write_checkpoint(conn: &Connection, position: Position) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO strata_checkpoint (id, position, updated_at) VALUES (1, ?1, ?2)
         ON CONFLICT (id) DO UPDATE SET position = excluded.position,
                                        updated_at = excluded.updated_at",
    )?
    .execute(params![position.0 as i64, now().unix_nanos()])?;
    Ok(())
}

/// The wall clock as a [`Timestamp`].
pub(crate) fn now() -> Timestamp {
    Timestamp::from_datetime(time::OffsetDateTime::now_utc())
}

/// Removes a database file with its WAL and shared-memory files; missing files are fine.
pub(crate) fn remove_database(path: &Path) -> std::io::Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Runs a projection's deferred index statements (each leaves an existing index as it
/// is) in one transaction; nothing at all when there are none.
pub(crate) fn create_deferred_indexes(
    conn: &mut Connection,
    statements: &[&str],
) -> rusqlite::Result<()> {
    if statements.is_empty() {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    for sql in statements {
        tx.execute_batch(sql)?;
    }
    tx.commit()
}
