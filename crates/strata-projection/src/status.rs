//! What the hosts report about their runners: plain serializable values, built on demand
//! from the runners' shared counters.

use serde::Serialize;
use strata_core::{Position, Timestamp};

/// Where a runner is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunnerState {
    /// Behind the log, applying history in batches.
    CatchingUp,
    /// At the head of the log, following new events as they commit.
    Live,
    /// Not running (not started yet, or shut down).
    Stopped,
    /// Stopped on an event it could not apply (policy `Stop`); see `last_error`.
    Failed,
    /// A new generation is being built beside the one that answers queries.
    Rebuilding,
}

/// One projection's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProjectionStatus {
    /// The projection's name.
    pub name: String,
    /// The version of the model that answers queries.
    pub version: u32,
    /// The generation (database file) that answers queries.
    pub generation: u64,
    /// The last position the answering model has applied (or stepped over).
    pub checkpoint: Position,
    /// The store's head when the status was taken.
    pub head: Position,
    /// Events committed after the checkpoint: `head - checkpoint`.
    pub lag_events: u64,
    /// How long the oldest unapplied event has waited, in seconds (0 when caught up).
    pub lag_seconds: f64,
    /// The answering model's runner state, or `rebuilding` while a new generation builds.
    pub state: RunnerState,
    /// The last error the runner met (a poison event, or a storage fault it retries).
    pub last_error: Option<String>,
    /// Whether the runner is waiting to retry after a storage fault.
    pub retrying: bool,
    /// Events parked in the dead-letter table.
    pub parked: u64,
    /// The generation being built, if a rebuild or version bump is in progress.
    pub rebuild: Option<RebuildStatus>,
}

/// A generation being built beside the answering one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RebuildStatus {
    /// The version it builds.
    pub version: u32,
    /// Its generation number.
    pub generation: u64,
    /// Its checkpoint.
    pub checkpoint: Position,
    /// `head - checkpoint`.
    pub lag_events: u64,
    /// Its runner's state.
    pub state: RunnerState,
    /// The last error its runner met.
    pub last_error: Option<String>,
}

/// An event in a projection's dead-letter table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ParkedEvent {
    /// The event's position.
    pub position: Position,
    /// Its stream.
    pub stream: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Why `apply` refused it (the latest attempt).
    pub error: String,
    /// When it was first parked.
    pub parked_at: Timestamp,
    /// How many times it was tried (1 when parked, more after failed retries).
    pub attempts: u32,
}

/// One process manager's health.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProcessStatus {
    /// The process manager's name.
    pub name: String,
    /// The last position it has handled.
    pub checkpoint: Position,
    /// The store's head when the status was taken.
    pub head: Position,
    /// `head - checkpoint`.
    pub lag_events: u64,
    /// How long the oldest unhandled event has waited, in seconds (0 when caught up).
    pub lag_seconds: f64,
    /// The runner's state (never `rebuilding`).
    pub state: RunnerState,
    /// The last error met (a failed send is retried; a state that cannot be decoded
    /// fails the runner).
    pub last_error: Option<String>,
    /// Whether the runner is waiting to retry a failed send or a storage fault.
    pub retrying: bool,
    /// Instances still running (not done).
    pub instances: u64,
    /// Durable timeouts not yet fired.
    pub pending_timeouts: u64,
    /// Commands decided but not yet sent.
    pub outbox: u64,
}
