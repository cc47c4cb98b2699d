//! The data directory's writer lock: one writing process at a time, and a clear error
//! naming the holder for the second one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use strata_store::StoreError;

/// The lock file's name inside the data directory.
pub(crate) const LOCK_FILE: &str = "LOCK";

/// How long a held lock is retried before it is reported as held. A child process this
/// process is starting holds a copy of the lock's descriptor from fork until exec, so a
/// store closed and opened again meanwhile finds its own lock held for a moment.
const HELD_RETRY: Duration = Duration::from_millis(250);

/// Takes the directory's exclusive lock; it is held until the returned file is dropped.
pub(crate) fn acquire(dir: &Path) -> Result<File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| StoreError::io(format!("cannot open lock file {}", path.display()), e))?;
    let deadline = Instant::now() + HELD_RETRY;
    let mut locked = file.try_lock();
    while matches!(locked, Err(std::fs::TryLockError::WouldBlock)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
        locked = file.try_lock();
    }
    match locked {
        Ok(()) => {
            let holder = format!(
                "process {} ({})\n",
                std::process::id(),
                std::env::args().next().unwrap_or_default()
            );
            let written = file
                .set_len(0)
                .and_then(|()| file.seek(SeekFrom::Start(0)))
                .and_then(|_| file.write_all(holder.as_bytes()));
            written.map_err(|e| {
                StoreError::io(format!("cannot write lock file {}", path.display()), e)
            })?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            Err(StoreError::Locked {
                path: dir.to_owned(),
                holder: if holder.is_empty() {
                    "unknown holder".to_owned()
                } else {
                    holder.to_owned()
                },
            })
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(StoreError::io(format!("cannot lock {}", path.display()), e))
        }
    }
}

/// Whether a writer holds the directory's lock at this moment. A shared probe: it takes
/// nothing for longer than the check and writes nothing (a missing lock file means no
/// writer ever opened the directory).
pub(crate) fn held(dir: &Path) -> Result<bool, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => {
            return Err(StoreError::io(
                format!("cannot open lock file {}", path.display()),
                e,
            ));
        }
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(false)
        }
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(StoreError::io(
            format!("cannot probe lock file {}", path.display()),
            e,
        )),
    }
}
