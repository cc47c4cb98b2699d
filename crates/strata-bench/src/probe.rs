//! The ceilings results are compared with, measured with no store code running: how fast
//! this disk makes groups of records durable (one write, then one fdatasync, in the shape
//! a store run actually used: its events per fdatasync and its bytes per event), and how
//! fast the same segment bytes a read scenario read come back with `pread`. They bound
//! what the store could do here at that shape; they model nothing and predict nothing.
//!
//! Each probe runs for a fixed time, not a fixed number of rounds, so a fast disk and a
//! slow one are both sampled for as long as asked.

use std::fs::File;
use std::io::{self, Write as _};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use strata_store_embedded::Options;

use crate::stats::{Summary, rate};

/// Bytes per `pread` of the read ceiling.
pub(crate) const READ_CHUNK_BYTES: usize = 256 * 1024;

/// What one durable group of the write ceiling holds: the shape of a store run's
/// commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyncShape {
    /// Records written before each fdatasync.
    pub(crate) events_per_sync: u64,
    /// Bytes per record.
    pub(crate) record_bytes: u64,
}

impl SyncShape {
    /// The shape a store run used: `events` made durable with `syncs` fdatasyncs, taking
    /// `bytes` of segment files. Rounded to whole records and bytes, at least one of
    /// each; `None` when nothing was synced (there is then nothing to match).
    pub(crate) fn of_run(events: u64, syncs: u64, bytes: u64) -> Option<Self> {
        if syncs == 0 || events == 0 {
            return None;
        }
        let events_per_sync = ((events as f64 / syncs as f64).round() as u64).max(1);
        let record_bytes = bytes.div_ceil(events).max(1);
        Some(Self {
            events_per_sync,
            record_bytes,
        })
    }

    fn group_bytes(self) -> usize {
        usize::try_from(self.events_per_sync.saturating_mul(self.record_bytes))
            .unwrap_or(usize::MAX)
    }
}

/// What [`probe_sync`] measured.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SyncProbe {
    /// The shape written.
    pub(crate) shape: SyncShape,
    /// Records made durable per second.
    pub(crate) events_per_s: f64,
    /// Time of each group's write and fdatasync.
    pub(crate) sync: Summary,
}

/// Appends groups of `shape.events_per_sync` records of `shape.record_bytes` bytes to a
/// file in a temporary directory under `dir`, each group with one write and then one
/// fdatasync, for `duration` (and at least one group), and times them. Like the store,
/// it appends and starts a new file when one reaches the store's segment size (the old
/// one is removed, so the probe's disk use stays bounded). The directory is removed
/// afterwards.
pub(crate) fn probe_sync(
    dir: &Path,
    shape: SyncShape,
    duration: Duration,
) -> io::Result<SyncProbe> {
    write_groups(dir, shape, Until::Elapsed(duration))
}

/// Like [`probe_sync`], but writes `bytes` in all (at least one group) and keeps every
/// file until the end, as a store growing to that size keeps its segments: the ceiling
/// of writing a log of that size, page cache and all, however long it takes.
pub(crate) fn probe_sync_volume(dir: &Path, shape: SyncShape, bytes: u64) -> io::Result<SyncProbe> {
    write_groups(dir, shape, Until::Written(bytes))
}

/// When [`write_groups`] stops.
#[derive(Debug, Clone, Copy)]
enum Until {
    /// After this long; full files are removed as it goes.
    Elapsed(Duration),
    /// Once this many bytes are written; every file is kept until then.
    Written(u64),
}

fn write_groups(dir: &Path, shape: SyncShape, until: Until) -> io::Result<SyncProbe> {
    std::fs::create_dir_all(dir)?;
    let scratch = tempfile::Builder::new()
        .prefix(".strata-bench-disk-")
        .tempdir_in(dir)?;
    let segment_bytes = Options::default().segment_bytes;
    let group = vec![0x5a_u8; shape.group_bytes()];
    let mut segment = 0_u32;
    let mut path = scratch.path().join(format!("probe-{segment}.log"));
    let mut file = File::create(&path)?;
    let mut len = 0_u64;
    let mut written = 0_u64;
    let mut times = Vec::new();
    let started = Instant::now();
    loop {
        let round = Instant::now();
        file.write_all(&group)?;
        file.sync_data()?;
        times.push(round.elapsed());
        len += group.len() as u64;
        written += group.len() as u64;
        let done = match until {
            Until::Elapsed(duration) => started.elapsed() >= duration,
            Until::Written(bytes) => written >= bytes,
        };
        if done {
            break;
        }
        if len >= segment_bytes {
            drop(file);
            if let Until::Elapsed(_) = until {
                std::fs::remove_file(&path)?;
            }
            segment += 1;
            path = scratch.path().join(format!("probe-{segment}.log"));
            file = File::create(&path)?;
            len = 0;
        }
    }
    let elapsed = started.elapsed();
    drop(file);
    scratch.close()?;
    let events = times.len() as u64 * shape.events_per_sync;
    Ok(SyncProbe {
        shape,
        events_per_s: rate(events as f64, elapsed),
        sync: Summary::of(&mut times),
    })
}

/// What [`probe_pread`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ReadProbe {
    /// Bytes of the files read per second.
    pub(crate) bytes_per_s: f64,
    /// Passes over all the files (the last one may be partial).
    pub(crate) passes: f64,
}

impl ReadProbe {
    /// The events per second this is worth when `events` events take `bytes` bytes.
    pub(crate) fn events_per_s(&self, events: u64, bytes: u64) -> f64 {
        if bytes == 0 {
            0.0
        } else {
            self.bytes_per_s * events as f64 / bytes as f64
        }
    }
}

/// Reads `files` whole, in order, with `pread`s of [`READ_CHUNK_BYTES`], over and over
/// for `duration` (and at least one whole pass). The files are the ones a read scenario
/// just read, so they come from where the scenario's reads came from (usually the page
/// cache).
pub(crate) fn probe_pread(files: &[PathBuf], duration: Duration) -> io::Result<ReadProbe> {
    let opened = files
        .iter()
        .map(|path| Ok((File::open(path)?, std::fs::metadata(path)?.len())))
        .collect::<io::Result<Vec<_>>>()?;
    let total: u64 = opened.iter().map(|(_, len)| len).sum();
    let mut buffer = vec![0_u8; READ_CHUNK_BYTES];
    let mut read = 0_u64;
    let started = Instant::now();
    'passes: loop {
        for (file, len) in &opened {
            let mut offset = 0;
            while offset < *len {
                let n = file.read_at(&mut buffer, offset)?;
                if n == 0 {
                    break;
                }
                offset += n as u64;
                read += n as u64;
                if read >= total && started.elapsed() >= duration {
                    break 'passes;
                }
            }
        }
        if total == 0 {
            break;
        }
    }
    let elapsed = started.elapsed();
    Ok(ReadProbe {
        bytes_per_s: rate(read as f64, elapsed),
        passes: if total == 0 {
            0.0
        } else {
            read as f64 / total as f64
        },
    })
}

/// The store's segment files in `dir` (`*.seg`), in name order (which is log order).
pub(crate) fn segment_files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "seg"))
        .collect();
    files.sort();
    Ok(files)
}

/// The bytes of the store's segment files in `dir` (0 when it cannot be listed).
pub(crate) fn segment_bytes(dir: &Path) -> u64 {
    segment_files(dir)
        .map(|files| {
            files
                .iter()
                .filter_map(|path| std::fs::metadata(path).ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
