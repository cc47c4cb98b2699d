//! The read-model directory's metadata database: which generation of each projection
//! answers queries and which one is being built. Restarts read it to pick the right
//! files; files it does not name are leftovers and are removed.
//!
//! It must only be changed in the order that keeps a crash harmless: a generation's file
//! exists before the metadata names it, and the metadata stops naming a file before the
//! file is removed.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::ProjectionError;

/// The metadata database's file name inside the read-model directory.
pub(crate) const META_FILE: &str = "strata-meta.sqlite3";

/// A generation: one database file of one projection version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GenerationId {
    /// The projection version it was built by.
    pub(crate) version: u32,
    /// Its number, unique per projection name.
    pub(crate) generation: u64,
}

/// What the metadata says of one name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Entry {
    /// The generation answering queries.
    pub(crate) active: Option<GenerationId>,
    /// The generation being built.
    pub(crate) building: Option<GenerationId>,
}

impl Entry {
    /// The number for a new generation.
    pub(crate) fn next_generation(&self) -> u64 {
        let a = self.active.map_or(0, |g| g.generation);
        let b = self.building.map_or(0, |g| g.generation);
        a.max(b) + 1
    }
}

/// The metadata database (one connection; its writes are tiny and rare).
pub(crate) struct Meta {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl Meta {
    /// Opens (creating) the metadata database of `dir` under `table`.
    pub(crate) fn open(dir: &Path) -> Result<Self, ProjectionError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ProjectionError::io(format!("cannot create {}", dir.display()), e))?;
        let path = dir.join(META_FILE);
        let conn = crate::db::open_writer(&path)?;
        // The pointer to the answering file is worth an fsync per change.
        conn.pragma_update(None, "synchronous", "FULL")
            .and_then(|()| {
                conn.execute_batch(
                    "CREATE TABLE IF NOT EXISTS generations (
                        name TEXT PRIMARY KEY,
                        active_version INTEGER,
                        active_generation INTEGER,
                        building_version INTEGER,
                        building_generation INTEGER
                    )",
                )
            })
            .map_err(|e| ProjectionError::sqlite(format!("cannot set up {}", path.display()), e))?;
        Ok(Self {
            conn: Mutex::new(conn),
            path,
        })
    }

    fn error(&self, e: rusqlite::Error) -> ProjectionError {
        ProjectionError::sqlite(format!("cannot update {}", self.path.display()), e)
    }

    /// What the metadata says of `name`.
    pub(crate) fn get(&self, name: &str) -> Result<Entry, ProjectionError> {
        let conn = self.conn.lock();
        let row = conn
            .query_row(
                "SELECT active_version, active_generation, building_version, building_generation
                 FROM generations WHERE name = ?1",
                [name],
                |row| {
                    Ok((
                        row.get::<_, Option<i64>>(0)?,
                        row.get::<_, Option<i64>>(1)?,
                        row.get::<_, Option<i64>>(2)?,
                        row.get::<_, Option<i64>>(3)?,
                    ))
                },
            )
            .optional()
            .map_err(|e| self.error(e))?;
        let pair = |v: Option<i64>, g: Option<i64>| match (v, g) {
            (Some(v), Some(g)) => Some(GenerationId {
                version: v.clamp(0, i64::from(u32::MAX)) as u32,
                generation: g.max(0) as u64,
            }),
            _ => None,
        };
        Ok(row.map_or_else(Entry::default, |(av, ag, bv, bg)| Entry {
            active: pair(av, ag),
            building: pair(bv, bg),
        }))
    }

    /// Replaces what the metadata says of `name`.
    pub(crate) fn set(&self, name: &str, entry: Entry) -> Result<(), ProjectionError> {
        let conn = self.conn.lock();
        let v = |g: Option<GenerationId>| g.map(|g| i64::from(g.version));
        let n = |g: Option<GenerationId>| g.map(|g| g.generation as i64);
        conn.execute(
            "INSERT INTO generations
                (name, active_version, active_generation, building_version, building_generation)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (name) DO UPDATE SET
                active_version = excluded.active_version,
                active_generation = excluded.active_generation,
                building_version = excluded.building_version,
                building_generation = excluded.building_generation",
            params![
                name,
                v(entry.active),
                n(entry.active),
                v(entry.building),
                n(entry.building)
            ],
        )
        .map_err(|e| self.error(e))?;
        Ok(())
    }
}

/// The file of a generation of `name` in `dir`.
pub(crate) fn generation_path(dir: &Path, name: &str, id: GenerationId) -> PathBuf {
    dir.join(format!("{name}-v{}-g{}.sqlite3", id.version, id.generation))
}

/// Removes every database file of `name` in `dir` that is not one of `keep`.
pub(crate) fn remove_leftovers(
    dir: &Path,
    name: &str,
    keep: &[GenerationId],
) -> Result<(), ProjectionError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| ProjectionError::io(format!("cannot list {}", dir.display()), e))?;
    let prefix = format!("{name}-v");
    let kept: Vec<String> = keep
        .iter()
        .map(|&id| format!("{name}-v{}-g{}.sqlite3", id.version, id.generation))
        .collect();
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        // `{version}-g{generation}.sqlite3`, maybe with a WAL/shm suffix.
        let Some((version, rest)) = rest.split_once("-g") else {
            continue;
        };
        let Some((generation, _)) = rest.split_once(".sqlite3") else {
            continue;
        };
        if version.parse::<u32>().is_err() || generation.parse::<u64>().is_err() {
            continue;
        }
        let base = &file_name[..file_name.find(".sqlite3").map_or(0, |i| i + 8)];
        if kept.iter().any(|k| k == base) {
            continue;
        }
        let path = entry.path();
        std::fs::remove_file(&path)
            .map_err(|e| ProjectionError::io(format!("cannot remove {}", path.display()), e))?;
    }
    Ok(())
}
