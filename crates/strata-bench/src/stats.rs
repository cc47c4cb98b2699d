//! Latency samples and what is reported of them: nearest-rank percentiles in
//! milliseconds, and how many samples they come from. A percentile that too few samples
//! cannot support is not reported.

use std::time::Duration;

/// The fewest samples whose 99th percentile is reported. With 1000 samples it is the
/// tenth-slowest; with fewer it is one of the very few slowest, which says more about
/// the one stall that happened than about the tail.
pub const MIN_P99_SAMPLES: usize = 1000;

/// The percentiles and count of a set of latency samples.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub(crate) struct Summary {
    /// Samples.
    pub(crate) count: usize,
    /// Median, in milliseconds.
    pub(crate) p50_ms: f64,
    /// 99th percentile, in milliseconds (whatever the count; see [`Summary::p99`]).
    pub(crate) p99_ms: f64,
    /// Largest sample, in milliseconds.
    pub(crate) max_ms: f64,
    /// Mean, in milliseconds.
    pub(crate) mean_ms: f64,
}

impl Summary {
    /// Summarizes `samples` (sorting them).
    pub(crate) fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        let total: Duration = samples.iter().sum();
        Self {
            count: samples.len(),
            p50_ms: percentile_ms(samples, 50.0),
            p99_ms: percentile_ms(samples, 99.0),
            max_ms: samples.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            mean_ms: if samples.is_empty() {
                0.0
            } else {
                total.as_secs_f64() * 1000.0 / samples.len() as f64
            },
        }
    }

    /// One sample: a one-shot measurement.
    pub(crate) fn single(elapsed: Duration) -> Self {
        Self::of(&mut [elapsed])
    }

    /// The median as reported: none without samples.
    pub(crate) fn p50(&self) -> Option<f64> {
        (self.count > 0).then_some(self.p50_ms)
    }

    /// The 99th percentile as reported: none from fewer than [`MIN_P99_SAMPLES`].
    pub(crate) fn p99(&self) -> Option<f64> {
        (self.count >= MIN_P99_SAMPLES).then_some(self.p99_ms)
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

/// `count` per second over `elapsed` (0 for no time).
pub(crate) fn rate(count: f64, elapsed: Duration) -> f64 {
    let seconds = elapsed.as_secs_f64();
    if seconds > 0.0 { count / seconds } else { 0.0 }
}

/// The median of some numbers (0 when empty).
pub(crate) fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}
