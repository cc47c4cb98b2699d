//! The seam between the server's operations routes and whatever runs the read side: the
//! server asks a [`ProjectionHost`] for status, rebuilds and parked events, and never
//! runs a projection itself.

use async_trait::async_trait;
use serde::Serialize;
use strata_core::Position;
use utoipa::ToSchema;

use crate::ApiError;

/// One projection as the operations routes show it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// `projection` or `process_manager`.
    pub kind: String,
    /// Its version (a new version rebuilds beside the old one).
    pub version: u32,
    /// The last position it processed (0: nothing yet).
    pub checkpoint: u64,
    /// Events committed after its checkpoint that it has yet to process.
    pub lag_events: u64,
    /// Seconds between the newest event and the last processed one.
    pub lag_seconds: f64,
    /// `running`, `catching_up`, `rebuilding`, `stopped` or `failed`.
    pub state: String,
    /// Events parked after failing.
    pub parked: u64,
    /// The last error, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// An event a projection could not process and set aside.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ParkedEvent {
    /// The event's global position.
    pub position: u64,
    /// Its stream.
    pub stream: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// The error it met.
    pub error: String,
    /// How many times it was tried.
    pub attempts: u32,
    /// When it was parked (RFC 3339).
    pub parked_at: String,
}

/// Why an operation on projections failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProjectionError {
    /// No projection has this name.
    #[error("no projection is named {0:?}")]
    UnknownProjection(String),
    /// The projection has no parked event at this position.
    #[error("projection {name:?} has no parked event at position {position}")]
    NotParked {
        /// The projection.
        name: String,
        /// The position asked for.
        position: u64,
    },
    /// A parked event failed again when retried; it stays parked.
    #[error("{0}")]
    RetryFailed(String),
    /// The read side did not reach the position in time.
    #[error("the read models did not reach position {position} within {waited_ms} ms")]
    Timeout {
        /// The position waited for.
        position: u64,
        /// How long the wait lasted.
        waited_ms: u64,
    },
    /// The read side failed (a database error, say).
    #[error("{0}")]
    Failed(String),
}

impl From<ProjectionError> for ApiError {
    fn from(err: ProjectionError) -> Self {
        match err {
            ProjectionError::UnknownProjection(_) | ProjectionError::NotParked { .. } => {
                ApiError::not_found("not_found", err.to_string())
            }
            ProjectionError::RetryFailed(message) => ApiError::domain("retry_failed", message),
            ProjectionError::Timeout {
                position,
                waited_ms,
            } => ApiError::consistency_timeout(position, waited_ms),
            ProjectionError::Failed(message) => ApiError::internal(message),
        }
    }
}

/// What runs the projections, as the server needs it.
#[async_trait]
pub trait ProjectionHost: Send + Sync + 'static {
    /// Every projection's status, with lag measured against the store's head.
    async fn status(&self) -> Result<Vec<ProjectionStatus>, ProjectionError>;

    /// Starts rebuilding `name` from the beginning of the log.
    async fn rebuild(&self, name: &str) -> Result<(), ProjectionError>;

    /// The events `name` parked.
    async fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError>;

    /// Processes the parked event at `position` again; it leaves the parked list if it
    /// succeeds.
    async fn retry_parked(&self, name: &str, position: Position) -> Result<(), ProjectionError>;

    /// Stops the projections after their current batch, their checkpoints stored.
    async fn shutdown(&self);
}
