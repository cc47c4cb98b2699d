//! The crate's error types: [`ProjectionError`] for the hosts and [`ApplyError`] for a
//! projection's own code.

use std::fmt;

use std::time::Duration;

use strata_core::Position;
use strata_domain::CodecError;
use strata_store::StoreError;

use crate::StopCause;

/// Why a projection's `apply` (or a process manager's state) could not take an event.
///
/// A message and a kind, which decides what the runner does:
/// - refused ([`ApplyError::new`]): the event is of a type the projection handles but
///   cannot be applied; it follows the projection's [`crate::FailurePolicy`];
/// - unhandled ([`ApplyError::unhandled`]): the projection does not handle events of
///   this type at all; the runner steps over it (DESIGN §6), parking nothing;
/// - transient (converted from a SQLite storage fault: disk full, I/O, a busy
///   database; or, with the `postgres` feature, from a PostgreSQL fault of the
///   connection or the server): the event is not to blame, so the batch is retried with
///   backoff.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApplyError {
    message: String,
    kind: ApplyErrorKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ApplyErrorKind {
    Refused,
    Unhandled,
    Transient,
}

impl ApplyError {
    /// An error with a message: the event cannot be applied.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            kind: ApplyErrorKind::Refused,
        }
    }

    /// The projection does not handle events of `event_type`: the runner steps over the
    /// event without parking it.
    pub fn unhandled(event_type: impl fmt::Display) -> Self {
        Self {
            message: format!("events of type {event_type} are not handled"),
            kind: ApplyErrorKind::Unhandled,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the failure came from the storage rather than from the event (the runner
    /// retries those with backoff).
    pub fn is_transient(&self) -> bool {
        self.kind == ApplyErrorKind::Transient
    }

    /// Whether the event is of a type the projection does not handle (the runner steps
    /// over it).
    pub fn is_unhandled(&self) -> bool {
        self.kind == ApplyErrorKind::Unhandled
    }
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ApplyError {}

impl From<rusqlite::Error> for ApplyError {
    fn from(err: rusqlite::Error) -> Self {
        Self {
            kind: if is_transient_sqlite(&err) {
                ApplyErrorKind::Transient
            } else {
                ApplyErrorKind::Refused
            },
            message: err.to_string(),
        }
    }
}

/// A PostgreSQL error from a projection's statement: a fault of the connection or the
/// server (connection lost, serialization failure, deadlock, out of resources, shutting
/// down) is transient and retried; anything else (a constraint, bad data, bad SQL) is a
/// refusal that follows the projection's policy.
#[cfg(feature = "postgres")]
impl From<tokio_postgres::Error> for ApplyError {
    fn from(err: tokio_postgres::Error) -> Self {
        Self {
            kind: if is_transient_postgres(&err) {
                ApplyErrorKind::Transient
            } else {
                ApplyErrorKind::Refused
            },
            message: err.to_string(),
        }
    }
}

/// Whether a PostgreSQL error is a fault of the connection or the server rather than of
/// the statement or the data.
#[cfg(feature = "postgres")]
pub(crate) fn is_transient_postgres(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.code() {
        // 08: connection exception; 40: transaction rollback (serialization, deadlock);
        // 53: insufficient resources; 57: operator intervention; 58: system error.
        Some(code) => ["08", "40", "53", "57", "58"]
            .iter()
            .any(|class| code.code().starts_with(class)),
        // No SQLSTATE: the socket failed, or a value did not convert.
        None => std::error::Error::source(err).is_some_and(|s| s.is::<std::io::Error>()),
    }
}

impl From<serde_json::Error> for ApplyError {
    fn from(err: serde_json::Error) -> Self {
        Self::new(err.to_string())
    }
}

/// An event of a type the event enum does not know is unhandled; any other decoding
/// failure (a payload that does not fit, a schema newer than the code) is a refusal.
impl From<CodecError> for ApplyError {
    fn from(err: CodecError) -> Self {
        match err {
            CodecError::UnknownType(event_type) => Self::unhandled(event_type),
            other => Self::new(other.to_string()),
        }
    }
}

impl From<String> for ApplyError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for ApplyError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// Whether a SQLite error is a fault of the storage (worth retrying) rather than of the
/// statement or the data.
pub(crate) fn is_transient_sqlite(err: &rusqlite::Error) -> bool {
    use rusqlite::ErrorCode::*;
    match err.sqlite_error_code() {
        Some(code) => matches!(
            code,
            DatabaseBusy
                | DatabaseLocked
                | SystemIoFailure
                | DiskFull
                | CannotOpen
                | OutOfMemory
                | FileLockingProtocolFailed
        ),
        None => false,
    }
}

/// Why a projection or process-manager operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// No projection (or process manager) of that name is registered. Check the name.
    #[error("no projection or process manager named {0} is registered")]
    Unknown(String),
    /// A projection (or process manager) of that name is already registered.
    #[error("a projection or process manager named {0} is already registered")]
    AlreadyRegistered(String),
    /// The name cannot be used: names become file names (and schema names), so they are
    /// 1 to 64 characters of `a-z`, `0-9` and `_` (at most 38 in a PostgreSQL read
    /// store).
    #[error("invalid projection name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The read model did not reach the position in time. The caller may retry, or answer
    /// with stale data and say so.
    #[error(
        "{name} did not reach position {position} within {} ms (at {checkpoint})",
        waited.as_millis()
    )]
    Timeout {
        /// The projection (or process manager).
        name: String,
        /// The position waited for.
        position: Position,
        /// Where the read model was when the wait ended.
        checkpoint: Position,
        /// How long the wait lasted.
        waited: Duration,
    },
    /// The runner stopped for good (see [`StopCause`]) before reaching what was asked:
    /// waiting longer will not help. Fix the cause, then restart it (or rebuild the
    /// projection); the read model stays where it stopped and keeps answering.
    #[error("{name} is stopped: {cause}")]
    Stopped {
        /// The projection (or process manager).
        name: String,
        /// Why it stopped.
        cause: StopCause,
    },
    /// The operation needs a rebuildable runner, and this one cannot be rebuilt (a
    /// process manager: replaying it would act again).
    #[error("{0} cannot be rebuilt")]
    NotRebuildable(String),
    /// An event could not be applied (by `build_as_of` or when retrying a parked event).
    #[error("projection {name} cannot apply the event at position {position}: {error}")]
    Apply {
        /// The projection.
        name: String,
        /// The event's position.
        position: Position,
        /// Why.
        error: ApplyError,
    },
    /// No parked event of the projection is at that position.
    #[error("projection {name} has no parked event at position {position}")]
    NotParked {
        /// The projection.
        name: String,
        /// The position asked for.
        position: Position,
    },
    /// A query's own statement failed (bad SQL, a missing table...).
    #[error("query on projection {name} failed: {source}")]
    Query {
        /// The projection.
        name: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A read database could not be opened, read or written. Names the file.
    #[error("{context}: {source}")]
    Sqlite {
        /// What was being done, naming the file.
        context: String,
        /// SQLite's error.
        #[source]
        source: rusqlite::Error,
    },
    /// A file operation in the read-model directory failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the file.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Stored state could not be decoded (a process manager's state or command whose
    /// shape changed without a migration).
    #[error("{context}: {source}")]
    Decode {
        /// What was being decoded.
        context: String,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// Redis could not be reached, or refused a command (the `redis` feature). Names
    /// what was being done.
    #[cfg(feature = "redis")]
    #[error("{context}: {source}")]
    Redis {
        /// What was being done.
        context: String,
        /// The client's error.
        #[source]
        source: ::redis::RedisError,
    },
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The generation answering queries was built by an older version of the projection
    /// whose code is no longer registered; it cannot be written until the new version
    /// takes over.
    #[error("projection {name} is answering from version {version} while the new version builds")]
    Stale {
        /// The projection.
        name: String,
        /// The older version still answering.
        version: u32,
    },
    /// A PostgreSQL read store or the PostgreSQL home of runner state could not be
    /// reached, set up, migrated, read or written, or a query's own statement failed
    /// there. Says what was being done.
    #[error("{context}: {source}")]
    Postgres {
        /// What was being done, naming the projection, schema or runner.
        context: String,
        /// The driver's or the pool's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The host is shutting down or its runner stopped; the operation did not happen.
    #[error("the runner is not running (the host is shut down or not started)")]
    ShutDown,
}

impl ProjectionError {
    pub(crate) fn sqlite(context: impl Into<String>, source: rusqlite::Error) -> Self {
        Self::Sqlite {
            context: context.into(),
            source,
        }
    }

    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn postgres(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::Postgres {
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}
