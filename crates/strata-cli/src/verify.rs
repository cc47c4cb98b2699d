//! `strata verify`: runs the embedded engine's check of a data directory and reports it.
//! The checking itself belongs to the engine; this module only words the result.

use std::io::Write;
use std::path::Path;

use anyhow::Context as _;
use strata_store_embedded::VerifyReport;

/// Verifies the store in `dir`. Prints a summary line when it is intact; otherwise
/// prints each problem as `file:offset: message` and fails. `checked` runs once the
/// check is done, before anything is printed (it clears what showed the check going on).
pub(crate) fn run(dir: &Path, out: &mut impl Write, checked: impl FnOnce()) -> anyhow::Result<()> {
    let report = strata_store_embedded::verify(dir);
    checked();
    let report = report.with_context(|| format!("cannot verify the store in {}", dir.display()))?;
    if report.problems.is_empty() {
        writeln!(out, "{}", summary(dir, &report)).context("cannot write to standard output")?;
        return Ok(());
    }
    for problem in &report.problems {
        writeln!(
            out,
            "{}:{}: {}",
            problem.file.display(),
            problem.offset,
            problem.message
        )
        .context("cannot write to standard output")?;
    }
    out.flush().context("cannot write to standard output")?;
    let count = report.problems.len();
    anyhow::bail!(
        "the store in {} has {count} problem{}",
        dir.display(),
        if count == 1 { "" } else { "s" }
    )
}

/// The one-line summary of an intact store.
pub(crate) fn summary(dir: &Path, report: &VerifyReport) -> String {
    let mut line = format!(
        "the store in {} is intact: {}, {}, {}, {}, {}",
        dir.display(),
        counted(report.segments, "segment"),
        counted(report.batches, "batch"),
        counted(report.events, "event"),
        counted(report.streams, "stream"),
        counted(report.index_files, "index file")
    );
    if let Some(torn) = &report.torn_tail {
        line.push_str(&format!(
            "; a torn last batch of {} bytes at {}:{} was never acknowledged and will be cut by the next writer",
            torn.bytes,
            torn.file.display(),
            torn.offset
        ));
    }
    line
}

/// `1 segment`, `2 segments`, `1 batch`, `0 batches`.
fn counted(count: impl std::fmt::Display, thing: &str) -> String {
    let count = count.to_string();
    let plural = if thing.ends_with("ch") { "es" } else { "s" };
    if count == "1" {
        format!("1 {thing}")
    } else {
        format!("{count} {thing}{plural}")
    }
}
