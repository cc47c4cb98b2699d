//! What the hosts report about their runners: plain serializable values, built on demand
//! from the runners' lanes. They derive `utoipa::ToSchema` (a description of their JSON
//! shape, nothing of HTTP) so that an HTTP edge documents these very types instead of
//! copying them.

use serde::Serialize;
use strata_core::{Position, Timestamp};
use utoipa::ToSchema;

use crate::lease::LeaseStatus;

/// Where a runner is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunnerState {
    /// Behind the log, applying history in batches.
    CatchingUp,
    /// At the head of the log, following new events as they commit.
    Live,
    /// Not running (not started yet, or shut down).
    Stopped,
    /// Stopped for good on a fault no retry fixes; `stopped_by` says which. It stays
    /// stopped until restarted (a projection's rebuild starts a new generation instead).
    Failed,
    /// A new generation is being built beside the one that answers queries.
    Rebuilding,
    /// Leased, and another node holds the lease: it waits to take over (its checkpoint
    /// is the one the holder committed).
    Standby,
}

/// Why a runner stopped for good. Storage faults are never a cause: they are retried.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema, thiserror::Error)]
#[serde(tag = "cause", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StopCause {
    /// A projection under policy `Stop` met an event of a type it handles but could not
    /// apply. Fix the code (or the event's cause) and restart it.
    #[error("the event at position {position} cannot be applied: {error}")]
    PoisonEvent {
        /// The event's position; the checkpoint is just before it.
        #[schema(value_type = u64)]
        position: Position,
        /// Why it was refused.
        error: String,
    },
    /// The stored checkpoint is beyond the log's head: the log lost events the runner
    /// had already applied, or the read model belongs to another store. Running from it
    /// would skip events, so the runner refuses; rebuild the read model from the log.
    #[error("the checkpoint {checkpoint} is beyond the log's head {head}")]
    CheckpointAheadOfLog {
        /// The stored checkpoint.
        #[schema(value_type = u64)]
        checkpoint: Position,
        /// The log's head when the runner started.
        #[schema(value_type = u64)]
        head: Position,
    },
    /// A process manager's stored state, reaction or outbox entry cannot be decoded (a
    /// shape changed without a migration).
    #[error("{error}")]
    Undecodable {
        /// What could not be decoded, and why.
        error: String,
    },
}

/// One runner's health, as an operations page lists it: a projection or a process
/// manager, told apart by `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunnerStatus {
    /// A projection (read model).
    Projection(ProjectionStatus),
    /// A process manager.
    ProcessManager(ProcessStatus),
}

impl RunnerStatus {
    /// The runner's name.
    pub fn name(&self) -> &str {
        match self {
            Self::Projection(p) => &p.name,
            Self::ProcessManager(p) => &p.name,
        }
    }

    /// The last position it processed.
    pub fn checkpoint(&self) -> Position {
        match self {
            Self::Projection(p) => p.checkpoint,
            Self::ProcessManager(p) => p.checkpoint,
        }
    }

    /// Events committed after its checkpoint.
    pub fn lag_events(&self) -> u64 {
        match self {
            Self::Projection(p) => p.lag_events,
            Self::ProcessManager(p) => p.lag_events,
        }
    }

    /// Whether it can be rebuilt from the log.
    pub fn rebuildable(&self) -> bool {
        match self {
            Self::Projection(p) => p.rebuildable,
            Self::ProcessManager(p) => p.rebuildable,
        }
    }
}

/// One projection's health.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProjectionStatus {
    /// The projection's name: the one every operation on it takes.
    pub name: String,
    /// The version of the model that answers queries.
    pub version: u32,
    /// The generation (database file) that answers queries; always 1 for a Redis
    /// projection (one generation per version).
    pub generation: u64,
    /// Whether it can be rebuilt in place from the log: true for a SQLite projection;
    /// false for a Redis one, whose new version builds its own keys instead.
    pub rebuildable: bool,
    /// The last position the answering model has applied (or stepped over).
    #[schema(value_type = u64)]
    pub checkpoint: Position,
    /// The store's head when the status was taken.
    #[schema(value_type = u64)]
    pub head: Position,
    /// Events committed after the checkpoint: `head - checkpoint`.
    pub lag_events: u64,
    /// How long the oldest unapplied event has waited, in seconds (0 when caught up).
    pub lag_seconds: f64,
    /// The answering model's runner state, or `rebuilding` while a new generation builds.
    pub state: RunnerState,
    /// The last error the runner met (a fault it retries, or the cause it stopped on).
    pub last_error: Option<String>,
    /// Why the answering model's runner stopped for good, while it is `failed`.
    pub stopped_by: Option<StopCause>,
    /// Whether the runner is waiting to retry after a storage fault.
    pub retrying: bool,
    /// Events parked in the dead-letter table.
    pub parked: u64,
    /// The generation being built, if a rebuild or version bump is in progress, or the
    /// last one that failed (its state `failed`; the answering model kept answering).
    pub rebuild: Option<RebuildStatus>,
}

/// A generation being built beside the answering one.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RebuildStatus {
    /// The version it builds.
    pub version: u32,
    /// Its generation number.
    pub generation: u64,
    /// Its checkpoint.
    #[schema(value_type = u64)]
    pub checkpoint: Position,
    /// `head - checkpoint`.
    pub lag_events: u64,
    /// Its runner's state; `failed` when the rebuild was given up.
    pub state: RunnerState,
    /// The last error its runner met.
    pub last_error: Option<String>,
    /// Why it stopped, when it failed.
    pub stopped_by: Option<StopCause>,
}

/// An event in a projection's dead-letter table.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, ToSchema)]
pub struct ParkedEvent {
    /// The event's position.
    #[schema(value_type = u64)]
    pub position: Position,
    /// Its stream.
    pub stream: String,
    /// Its type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// Why `apply` refused it (the latest attempt).
    pub error: String,
    /// When it was first parked (RFC 3339).
    #[schema(value_type = String, format = DateTime)]
    pub parked_at: Timestamp,
    /// How many times it was tried (1 when parked, more after failed retries).
    pub attempts: u32,
}

/// One process manager's health.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct ProcessStatus {
    /// The process manager's name.
    pub name: String,
    /// Whether it can be rebuilt from the log: never. Replaying a process manager would
    /// fire its timeouts and commands again; its state is its own history, not a view.
    pub rebuildable: bool,
    /// The last position it has handled.
    #[schema(value_type = u64)]
    pub checkpoint: Position,
    /// The store's head when the status was taken.
    #[schema(value_type = u64)]
    pub head: Position,
    /// `head - checkpoint`.
    pub lag_events: u64,
    /// How long the oldest unhandled event has waited, in seconds (0 when caught up).
    pub lag_seconds: f64,
    /// The runner's state (never `rebuilding`).
    pub state: RunnerState,
    /// The last error met (a failed send or a storage fault, retried; or the cause it
    /// stopped on).
    pub last_error: Option<String>,
    /// Why it stopped for good, while it is `failed`.
    pub stopped_by: Option<StopCause>,
    /// Whether the runner is waiting to retry a failed send or a storage fault.
    pub retrying: bool,
    /// Instances still running (not done).
    pub instances: u64,
    /// Durable timeouts not yet fired.
    pub pending_timeouts: u64,
    /// Commands decided but not yet sent.
    pub outbox: u64,
    /// Who holds its lease when it runs on one node at a time (state shared by several
    /// nodes); absent when it runs on every node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseStatus>,
}
