//! Errors raised when outside input does not satisfy the model's rules.

/// Why a value could not be turned into one of strata's model types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The stream name is empty, longer than 255 bytes, or holds a control character.
    /// The caller should pick another name; no stream can ever have this one.
    #[error("invalid stream name {name:?}: {reason}")]
    InvalidStreamName {
        /// The rejected name (lossy if it was not printable).
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// The event type is empty, longer than 255 bytes, or holds a control character.
    #[error("invalid event type {name:?}: {reason}")]
    InvalidEventType {
        /// The rejected type.
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// An expected version could not be parsed from its textual form.
    #[error("invalid expected version {0:?}: use a number, \"any\", \"no_stream\" or \"exists\"")]
    InvalidExpectedVersion(String),
    /// An event id is not a UUID.
    #[error("invalid event id {0:?}: expected a UUID")]
    InvalidEventId(String),
    /// Metadata must be a JSON object.
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),
    /// A timestamp could not be parsed as RFC 3339.
    #[error("invalid timestamp {0:?}: expected RFC 3339")]
    InvalidTimestamp(String),
}
