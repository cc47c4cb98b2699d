//! The seam between the server's operations routes and whatever runs the read side: the
//! server asks a [`ProjectionHost`] for status, rebuilds and parked events, and never
//! runs a projection itself.
//!
//! The values crossing it are strata-projection's own types ([`RunnerStatus`],
//! [`ParkedEvent`], [`ProjectionError`]): they derive `ToSchema`, so the OpenAPI document
//! describes exactly what is served, with typed states and causes, and nothing here
//! copies them. This module only maps their errors to HTTP answers.

use async_trait::async_trait;
use strata_core::Position;
pub use strata_projection::{ParkedEvent, ProjectionError, ProjectionStatus, RunnerStatus};

use crate::ApiError;

/// The code of a 503 answered when a runner stopped for good (a poison event under
/// policy `Stop`, a checkpoint beyond the log's head): waiting will not help.
pub const READ_MODEL_STOPPED: &str = "read_model_stopped";

impl From<ProjectionError> for ApiError {
    fn from(err: ProjectionError) -> Self {
        let message = err.to_string();
        match err {
            ProjectionError::Unknown(_) | ProjectionError::NotParked { .. } => {
                ApiError::not_found("not_found", message)
            }
            ProjectionError::NotRebuildable(_) => ApiError::conflict("not_rebuildable", message),
            ProjectionError::Apply { .. } => ApiError::domain("retry_failed", message),
            ProjectionError::Timeout {
                position, waited, ..
            } => ApiError::consistency_timeout(
                position.0,
                u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            ),
            ProjectionError::Stopped { name, .. } => {
                ApiError::unavailable(READ_MODEL_STOPPED, message).with_detail("read_model", name)
            }
            ProjectionError::ShutDown => ApiError::unavailable("shutting_down", message),
            _ => ApiError::internal(message),
        }
    }
}

/// What runs the projections, as the server needs it. Every name a status lists is
/// accepted by every other method: a runner that cannot do what is asked (rebuild a
/// process manager) answers [`ProjectionError::NotRebuildable`], never "unknown".
#[async_trait]
pub trait ProjectionHost: Send + Sync + 'static {
    /// Every runner's status (projections and process managers), with lag measured
    /// against the store's head.
    async fn status(&self) -> Result<Vec<RunnerStatus>, ProjectionError>;

    /// Starts rebuilding `name` from the beginning of the log; its progress (or its
    /// failure) shows in the status.
    async fn rebuild(&self, name: &str) -> Result<(), ProjectionError>;

    /// The events `name` parked (none for a process manager).
    async fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError>;

    /// Processes the parked event at `position` again; it leaves the parked list if it
    /// succeeds.
    async fn retry_parked(&self, name: &str, position: Position) -> Result<(), ProjectionError>;

    /// Stops the runners after their current batch, their checkpoints stored.
    async fn shutdown(&self);
}

#[cfg(test)]
mod tests;
