//! The high-water mark: a small checksummed file in the data directory recording a position
//! up to which every event was acknowledged and is durable, and the position ranges an
//! operator accepted as lost. Opening compares the log with it to tell a torn batch that
//! was never acknowledged from acknowledged events that are gone.
//!
//! It owns only this file's format and its atomic replacement; it must not decide what a
//! mismatch means (opening and `verify` do).
//!
//! ```text
//! mark = "STRATHW1" high_water:u64 gap_count:u32 (first:u64 last:u64)* crc:u32
//! ```
//! Little-endian; `crc` is CRC32C of everything before it. The file is replaced whole
//! (temp file, fsync, rename, fsync of the directory), so a crash leaves the old mark or
//! the new one, never a mix.

use std::path::{Path, PathBuf};

use strata_store::StoreError;

use crate::io::Fs;
use crate::open::sync_dir;

/// The mark's file name inside the data directory.
pub(crate) const MARK_FILE: &str = "HIGH-WATER";
const MARK_TMP: &str = "HIGH-WATER.tmp";
const MAGIC: &[u8; 8] = b"STRATHW1";
/// Bytes of a mark without gaps.
const FIXED_LEN: usize = 8 + 8 + 4 + 4;

/// What the mark file records.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Mark {
    /// Every position up to this one was acknowledged durable (0: nothing known).
    pub(crate) high_water: u64,
    /// Position ranges (inclusive, ascending) whose loss an operator accepted: positions
    /// that hold no event and are never given out again.
    pub(crate) gaps: Vec<(u64, u64)>,
}

impl Mark {
    /// Whether the positions `first..=last` were accepted as lost.
    pub(crate) fn has_gap(&self, first: u64, last: u64) -> bool {
        self.gaps.contains(&(first, last))
    }
}

/// The mark file's path in `dir`.
pub(crate) fn mark_path(dir: &Path) -> PathBuf {
    dir.join(MARK_FILE)
}

/// Reads the mark of `dir`: `Ok(None)` when there is none (a new store, or one written
/// before marks existed), `Err(reason)` when the file exists but cannot be trusted.
pub(crate) fn read_mark(fs: &dyn Fs, dir: &Path) -> Result<Option<Mark>, String> {
    let bytes = match fs.read(&mark_path(dir)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read it: {e}")),
    };
    decode(&bytes).map(Some)
}

/// Decodes and checks the bytes of a mark file.
pub(crate) fn decode(bytes: &[u8]) -> Result<Mark, String> {
    if bytes.len() < FIXED_LEN || &bytes[..8] != MAGIC {
        return Err("not a high-water mark file".to_owned());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_le_bytes(crc.try_into().unwrap_or_default());
    if crc32c::crc32c(body) != stored {
        return Err("high-water mark checksum mismatch".to_owned());
    }
    let u64_at = |at: usize| u64::from_le_bytes(body[at..at + 8].try_into().unwrap_or_default());
    let high_water = u64_at(8);
    let count = u32::from_le_bytes(body[16..20].try_into().unwrap_or_default()) as usize;
    if body.len() - 20 != count.saturating_mul(16) {
        return Err("high-water mark gap table length does not match its count".to_owned());
    }
    let gaps = (0..count)
        .map(|i| (u64_at(20 + 16 * i), u64_at(28 + 16 * i)))
        .collect();
    Ok(Mark { high_water, gaps })
}

fn encode(mark: &Mark) -> Vec<u8> {
    let mut buf = Vec::with_capacity(FIXED_LEN + 16 * mark.gaps.len());
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&mark.high_water.to_le_bytes());
    buf.extend_from_slice(&(mark.gaps.len() as u32).to_le_bytes());
    for (first, last) in &mark.gaps {
        buf.extend_from_slice(&first.to_le_bytes());
        buf.extend_from_slice(&last.to_le_bytes());
    }
    let crc = crc32c::crc32c(&buf);
    buf.extend_from_slice(&crc.to_le_bytes());
    buf
}

/// Replaces the mark of `dir` durably. The caller guarantees that every position up to
/// `mark.high_water` is durable in the log before calling.
pub(crate) fn write_mark(fs: &dyn Fs, dir: &Path, mark: &Mark) -> Result<(), StoreError> {
    let tmp = dir.join(MARK_TMP);
    let path = mark_path(dir);
    let io = |what: &str, p: &Path, e| StoreError::io(format!("cannot {what} {}", p.display()), e);
    let file = fs.create(&tmp).map_err(|e| io("create", &tmp, e))?;
    file.write_all_at(&encode(mark), 0)
        .map_err(|e| io("write", &tmp, e))?;
    file.sync_all().map_err(|e| io("fsync", &tmp, e))?;
    drop(file);
    fs.rename(&tmp, &path).map_err(|e| io("rename", &tmp, e))?;
    sync_dir(fs, dir)
}

#[cfg(test)]
mod tests;
