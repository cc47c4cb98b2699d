//! The store's error type, shared by every backend.

use std::path::PathBuf;

use strata_core::{CoreError, EventId, ExpectedVersion, Position, StreamName, Version};

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The stream's version did not satisfy the append's expectation. Nothing was written.
    /// Reload the stream and decide again.
    #[error("wrong expected version for stream {stream}: expected {expected}, actual {actual}")]
    WrongExpectedVersion {
        /// The stream appended to.
        stream: StreamName,
        /// What the append expected.
        expected: ExpectedVersion,
        /// The stream's version when the append was checked.
        actual: Version,
    },
    /// An input broke one of the model's rules (a stream name, an event type...).
    /// Nothing was written; the caller must fix the input.
    #[error(transparent)]
    Invalid(#[from] CoreError),
    /// The append itself is malformed (no events, say). Nothing was written.
    #[error("invalid append to stream {stream}: {reason}")]
    InvalidAppend {
        /// The stream appended to.
        stream: StreamName,
        /// What is wrong.
        reason: String,
    },
    /// An event of the append carries an id the log already holds (in another stream, or
    /// at another place in this one), or two events of the append share one id. Event ids
    /// are unique across the whole log; an exact repeat of an earlier append is not this
    /// error (it answers the first result). Nothing was written: the caller reused an id
    /// it meant for something else and must give the events new ids.
    #[error(
        "event id {id} in the append to stream {stream} {}",
        match existing {
            Some(position) => format!("is already the id of the event at position {position}"),
            None => "is given to two events of the append".to_owned(),
        }
    )]
    DuplicateEventId {
        /// The stream appended to.
        stream: StreamName,
        /// The id used twice.
        id: EventId,
        /// The position of the stored event that has the id; `None` when the append
        /// itself holds it twice.
        existing: Option<Position>,
    },
    /// An event is larger than the store's limit. Nothing was written.
    #[error(
        "event {index} of the append to stream {stream} is {size} bytes, over the limit of {limit} bytes"
    )]
    EventTooLarge {
        /// The stream appended to.
        stream: StreamName,
        /// The event's index inside the append (0-based).
        index: usize,
        /// Its size: type, data and metadata bytes.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The store was closed; no operation can succeed on this handle any more.
    #[error("the event store is closed")]
    Closed,
    /// A write or fsync failed earlier; the store refuses appends until it is reopened,
    /// which re-verifies what reached the disk. Reads of acknowledged events still work.
    #[error("the event store refuses appends after an earlier write failure: {reason}")]
    Poisoned {
        /// The failure that poisoned the store.
        reason: String,
    },
    /// The store was opened read-only (another process holds the writer lock).
    #[error("the event store at {path} is open read-only")]
    ReadOnly {
        /// The data directory.
        path: PathBuf,
    },
    /// Another process holds the data directory's writer lock.
    #[error("the data directory {path} is locked by another process ({holder})")]
    Locked {
        /// The data directory.
        path: PathBuf,
        /// What the lock file says of its holder.
        holder: String,
    },
    /// Stored bytes failed a check. The store refuses to open or read past them; run
    /// `strata verify` to list every problem.
    #[error("corrupt data in {file} at offset {offset}: {reason}")]
    Corrupt {
        /// The file holding the bad bytes.
        file: PathBuf,
        /// Byte offset of the bad record or batch.
        offset: u64,
        /// What check failed.
        reason: String,
    },
    /// An I/O error, with what the store was doing. Its message includes the cause, so it
    /// does not repeat it as a `source`.
    #[error("{context}: {error}")]
    Io {
        /// What the store was doing, naming the file.
        context: String,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A backend-specific failure (a database driver's error, say). Its message is the
    /// driver's.
    #[error("{0}")]
    Backend(Box<dyn std::error::Error + Send + Sync>),
    /// The store found one of its own invariants broken (its index names an event it
    /// cannot locate, an answer went missing): a bug in the store, not the caller's input
    /// nor the disk. Nothing about the log is implied; the operation failed and may be
    /// retried, and reopening the store rebuilds its in-memory state. Report it. Its
    /// message includes the cause, so it does not repeat it as a `source`.
    #[error(
        "internal fault in the event store: {context}{}",
        cause.as_ref().map(|c| format!(": {c}")).unwrap_or_default()
    )]
    Internal {
        /// What was found broken, naming the stream, position or file.
        context: String,
        /// The error that revealed it, when there was one, kept for callers that inspect
        /// it.
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

impl StoreError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        StoreError::Io {
            context: context.into(),
            error: source,
        }
    }

    /// An internal fault found without an underlying error.
    pub fn internal(context: impl Into<String>) -> Self {
        StoreError::Internal {
            context: context.into(),
            cause: None,
        }
    }

    /// An internal fault revealed by `cause`, which is kept.
    pub fn internal_from(
        context: impl Into<String>,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Internal {
            context: context.into(),
            cause: Some(cause.into()),
        }
    }

    /// A short, stable code for the edges (`wrong_expected_version`, `too_large`...).
    pub fn code(&self) -> &'static str {
        match self {
            StoreError::WrongExpectedVersion { .. } => "wrong_expected_version",
            StoreError::Invalid(_) | StoreError::InvalidAppend { .. } => "invalid_input",
            StoreError::EventTooLarge { .. } => "too_large",
            StoreError::DuplicateEventId { .. } => "duplicate_event_id",
            StoreError::Closed => "store_closed",
            StoreError::Poisoned { .. } => "store_poisoned",
            StoreError::ReadOnly { .. } => "store_read_only",
            StoreError::Locked { .. } => "store_locked",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::Io { .. } => "io_error",
            StoreError::Backend(_) => "backend_error",
            StoreError::Internal { .. } => "internal_error",
        }
    }

    /// Whether the error is the caller's to fix (bad input, conflict) rather than the
    /// store's.
    pub fn is_client_error(&self) -> bool {
        matches!(
            self,
            StoreError::WrongExpectedVersion { .. }
                | StoreError::Invalid(_)
                | StoreError::InvalidAppend { .. }
                | StoreError::EventTooLarge { .. }
                | StoreError::DuplicateEventId { .. }
        )
    }
}
