//! Facts about the system the harness reads instead of assuming: the page size that
//! `/proc/<pid>/statm` counts in and the clock ticks that `/proc/<pid>/stat` counts CPU
//! time in.

/// Bytes per page of memory, as the kernel counts resident pages.
pub(crate) fn page_bytes() -> u64 {
    rustix::param::page_size() as u64
}

/// Clock ticks per second of `/proc/<pid>/stat` CPU times (`USER_HZ`).
pub(crate) fn clock_ticks_per_s() -> f64 {
    rustix::param::clock_ticks_per_second() as f64
}
