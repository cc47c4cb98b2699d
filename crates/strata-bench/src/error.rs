//! The harness's one error type, and the small helpers that attach to a failure the step
//! it interrupted. It decides nothing about what a failure means for a result: a failed
//! scenario prints no numbers.

use std::error::Error as StdError;
use std::fmt::Display;

use strata_store::StoreError;

/// Why a benchmark could not produce its results.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BenchError {
    /// A step failed: creating a file, opening or writing the store, running a child
    /// process, a request to the server. `what` names the step and its subject; the
    /// source is the cause. Nothing was measured; fix the cause (often the directory given
    /// with `--dir`) and run again.
    #[error("{what}")]
    Step {
        /// The step, e.g. "cannot create the directory /tmp/x".
        what: String,
        /// What went wrong.
        #[source]
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The store answered an operation with an error the scenario did not expect (every
    /// operation of a scenario is meant to succeed).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A scenario found something other than what it set up (fewer events read back than
    /// written, an answer that does not parse, a child process that failed): the store or
    /// the harness misbehaved, and no number would mean anything.
    #[error("{0}")]
    Failed(String),
}

/// The result of the harness's fallible steps.
pub(crate) type Result<T, E = BenchError> = std::result::Result<T, E>;

/// Names the step a failure interrupted.
pub(crate) trait Context<T> {
    /// Wraps a failure as [`BenchError::Step`] (or, for a missing value,
    /// [`BenchError::Failed`]) named `what`.
    fn context(self, what: impl Display) -> Result<T>;

    /// As [`Context::context`], with the name built only on failure.
    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T>;
}

impl<T, E: StdError + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl Display) -> Result<T> {
        self.map_err(|source| BenchError::Step {
            what: what.to_string(),
            source: Box::new(source),
        })
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.map_err(|source| BenchError::Step {
            what: what().to_string(),
            source: Box::new(source),
        })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, what: impl Display) -> Result<T> {
        self.ok_or_else(|| BenchError::Failed(what.to_string()))
    }

    fn with_context<D: Display>(self, what: impl FnOnce() -> D) -> Result<T> {
        self.ok_or_else(|| BenchError::Failed(what().to_string()))
    }
}

/// An error and its causes on one line, `outer: inner: root`, for the `first_error` of a
/// result line.
pub(crate) fn one_line(err: &(dyn StdError + 'static)) -> String {
    let mut line = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        source = cause.source();
    }
    line
}

/// Fails the scenario with a [`BenchError::Failed`] unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            return Err($crate::error::BenchError::Failed(format!($($arg)+)));
        }
    };
}

/// Fails the scenario with a [`BenchError::Failed`].
macro_rules! bail {
    ($($arg:tt)+) => {
        return Err($crate::error::BenchError::Failed(format!($($arg)+)))
    };
}

/// A [`BenchError::Failed`] with a formatted message.
macro_rules! failed {
    ($($arg:tt)+) => {
        $crate::error::BenchError::Failed(format!($($arg)+))
    };
}

pub(crate) use {bail, ensure, failed};
