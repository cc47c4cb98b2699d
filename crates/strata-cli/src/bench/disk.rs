//! The disk ceiling: how fast this disk takes batches of small records when each batch is
//! made durable with one fdatasync, and how long one small write and its fdatasync take.
//! No store code runs, so these bound what any append path with the same batch size and
//! durability could do here.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// Records per synced batch.
pub(crate) const BATCH_RECORDS: usize = 1000;
/// Bytes per record.
pub(crate) const RECORD_BYTES: usize = 256;

/// What [`measure_disk_ceiling`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Ceiling {
    /// Records made durable per second over all rounds.
    pub(crate) events_per_s: f64,
    /// Median time to write and sync one batch, in milliseconds.
    pub(crate) p50_ms: f64,
    /// 99th percentile of the same, in milliseconds.
    pub(crate) p99_ms: f64,
}

/// Writes `rounds` batches of [`BATCH_RECORDS`] records of [`RECORD_BYTES`] bytes to a
/// new file in a temporary directory under `dir`, each batch with one write and then one
/// fdatasync, and times them. The directory is removed afterwards.
pub(crate) fn measure_disk_ceiling(dir: &Path, rounds: u32) -> io::Result<Ceiling> {
    std::fs::create_dir_all(dir)?;
    let scratch = tempfile::Builder::new()
        .prefix(".strata-bench-disk-")
        .tempdir_in(dir)?;
    let mut file = File::create(scratch.path().join("ceiling.log"))?;
    let batch = vec![0x5a_u8; BATCH_RECORDS * RECORD_BYTES];
    let mut times = Vec::with_capacity(rounds as usize);
    let started = Instant::now();
    for _ in 0..rounds {
        let round = Instant::now();
        file.write_all(&batch)?;
        file.sync_data()?;
        times.push(round.elapsed());
    }
    let total = started.elapsed();
    drop(file);
    scratch.close()?;
    Ok(ceiling_of(&mut times, total))
}

/// What [`measure_fsync_latency`] measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct FsyncLatency {
    /// Median time of one write and its fdatasync, in milliseconds.
    pub(crate) p50_ms: f64,
    /// 99th percentile of the same, in milliseconds.
    pub(crate) p99_ms: f64,
}

/// Appends one [`RECORD_BYTES`]-byte record and fdatasyncs it, `rounds` times, to a new
/// file in a temporary directory under `dir`, and answers each round's time, unsorted.
/// The directory is removed afterwards.
pub(crate) fn fsync_samples(dir: &Path, rounds: u32) -> io::Result<Vec<Duration>> {
    std::fs::create_dir_all(dir)?;
    let scratch = tempfile::Builder::new()
        .prefix(".strata-bench-fsync-")
        .tempdir_in(dir)?;
    let mut file = File::create(scratch.path().join("fsync.log"))?;
    let record = [0x5a_u8; RECORD_BYTES];
    let mut times = Vec::with_capacity(rounds as usize);
    for _ in 0..rounds {
        let round = Instant::now();
        file.write_all(&record)?;
        file.sync_data()?;
        times.push(round.elapsed());
    }
    drop(file);
    scratch.close()?;
    Ok(times)
}

impl FsyncLatency {
    /// Summarizes round times (sorting them).
    pub(crate) fn of(times: &mut [Duration]) -> Self {
        times.sort_unstable();
        Self {
            p50_ms: percentile_ms(times, 50.0),
            p99_ms: percentile_ms(times, 99.0),
        }
    }
}

/// Summarizes per-round times and the total time.
pub(crate) fn ceiling_of(times: &mut [Duration], total: Duration) -> Ceiling {
    times.sort_unstable();
    let events = (times.len() * BATCH_RECORDS) as f64;
    let seconds = total.as_secs_f64();
    Ceiling {
        events_per_s: if seconds > 0.0 { events / seconds } else { 0.0 },
        p50_ms: percentile_ms(times, 50.0),
        p99_ms: percentile_ms(times, 99.0),
    }
}

/// The nearest-rank percentile of sorted durations, in milliseconds (0 when empty).
pub(crate) fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let index = rank.clamp(1, sorted.len()) - 1;
    sorted[index].as_secs_f64() * 1000.0
}
