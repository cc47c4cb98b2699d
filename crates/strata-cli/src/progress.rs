//! What a long command shows a person while it works: a progress bar on standard error,
//! drawn only when standard error is a terminal, and whether colour may be used at all.
//! It never writes to standard output, where the data goes, and owns no counting of its
//! own beyond the lines it is handed.

use std::io::{self, IsTerminal, Write};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a spinner turns while nothing else moves it.
const TICK: Duration = Duration::from_millis(120);

/// Whether standard error is a person's terminal (progress and colour are for people).
fn attended() -> bool {
    io::stderr().is_terminal()
}

/// Whether log lines may carry colour codes: only on a terminal, and never when
/// `NO_COLOR` is set to anything (<https://no-color.org>).
pub(crate) fn colour() -> bool {
    attended() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
}

/// What a bar counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Unit {
    /// Events (one per line printed).
    Events,
    /// Bytes of input read.
    Bytes,
}

/// A bar on standard error for `total` units (a spinner with a count when the total is
/// not known), hidden unless standard error is a terminal.
pub(crate) fn bar(total: Option<u64>, unit: Unit) -> ProgressBar {
    if !attended() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr())
        .with_style(style(&bar_template(total.is_some(), unit)));
    bar.enable_steady_tick(TICK);
    bar
}

/// The template of a bar counting `unit`, with a known total or without.
pub(crate) fn bar_template(total: bool, unit: Unit) -> String {
    let (done, all) = match unit {
        Unit::Events => ("{human_pos} events", "{human_len}"),
        Unit::Bytes => ("{bytes}", "{total_bytes}"),
    };
    if total {
        format!("{{bar:40}} {done} of {all} ({{percent}}%, {{eta}} left)")
    } else {
        format!("{{spinner}} {done} ({{elapsed}})")
    }
}

/// The template of a spinner.
pub(crate) const SPINNER_TEMPLATE: &str = "{spinner} {msg} ({elapsed})";

/// A spinner on standard error saying `message`, for work that reports no progress;
/// hidden unless standard error is a terminal.
pub(crate) fn spinner(message: String) -> ProgressBar {
    if !attended() {
        return ProgressBar::hidden();
    }
    let spinner = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
        .with_style(style(SPINNER_TEMPLATE));
    spinner.set_message(message);
    spinner.enable_steady_tick(TICK);
    spinner
}

/// A bar's style. The templates are fixed text, so a bad one is a bug the tests catch;
/// it falls back to the default style rather than failing the command.
pub(crate) fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar())
}

/// A writer that moves `bar` by one for every line written through it (one line is one
/// event in the formats the commands print).
pub(crate) struct CountLines<W> {
    inner: W,
    bar: ProgressBar,
}

impl<W: Write> CountLines<W> {
    pub(crate) fn new(inner: W, bar: ProgressBar) -> Self {
        Self { inner, bar }
    }

    /// What was written through it.
    #[cfg(test)]
    pub(crate) fn inner_for_tests(&self) -> &W {
        &self.inner
    }
}

impl<W: Write> Write for CountLines<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        let lines = buf[..written].iter().filter(|b| **b == b'\n').count();
        self.bar.inc(lines as u64);
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
