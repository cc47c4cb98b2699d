//! The [`ProjectionHost`] over strata-projection: the SQLite read models
//! ([`Projections`]) and the process managers ([`ProcessManagers`]) as the operations
//! routes show them. Process managers are listed beside the projections; rebuilds and
//! parked events concern projections only.

use async_trait::async_trait;
use strata_core::Position;
use strata_projection::{ProcessManagers, Projections, RunnerState};

use crate::{ParkedEvent, ProjectionError, ProjectionHost, ProjectionStatus};

/// The read side of a server: its projections and, if any, its process managers.
#[derive(Clone)]
pub struct ReadSide {
    projections: Projections,
    processes: Option<ProcessManagers>,
}

impl ReadSide {
    /// The read side made of these hosts (started by the caller).
    pub fn new(projections: Projections, processes: Option<ProcessManagers>) -> Self {
        Self {
            projections,
            processes,
        }
    }

    /// The projections host.
    pub fn projections(&self) -> &Projections {
        &self.projections
    }

    fn known(&self, name: &str) -> Result<(), ProjectionError> {
        if self.projections.status().iter().any(|p| p.name == name) {
            Ok(())
        } else {
            Err(ProjectionError::UnknownProjection(name.to_owned()))
        }
    }
}

fn state_name(state: RunnerState) -> &'static str {
    match state {
        RunnerState::CatchingUp => "catching_up",
        RunnerState::Live => "running",
        RunnerState::Stopped => "stopped",
        RunnerState::Failed => "failed",
        RunnerState::Rebuilding => "rebuilding",
    }
}

fn convert(err: strata_projection::ProjectionError) -> ProjectionError {
    use strata_projection::ProjectionError as E;
    match err {
        E::Unknown(name) => ProjectionError::UnknownProjection(name),
        E::NotParked { name, position } => ProjectionError::NotParked {
            name,
            position: position.0,
        },
        E::Timeout { position, .. } => ProjectionError::Timeout {
            position: position.0,
            waited_ms: 0,
        },
        err @ E::Apply { .. } => ProjectionError::RetryFailed(err.to_string()),
        other => ProjectionError::Failed(other.to_string()),
    }
}

#[async_trait]
impl ProjectionHost for ReadSide {
    async fn status(&self) -> Result<Vec<ProjectionStatus>, ProjectionError> {
        let mut list: Vec<ProjectionStatus> = self
            .projections
            .status()
            .into_iter()
            .map(|p| ProjectionStatus {
                name: p.name,
                kind: "projection".to_owned(),
                version: p.version,
                checkpoint: p.checkpoint.0,
                lag_events: p.lag_events,
                lag_seconds: p.lag_seconds,
                state: state_name(p.state).to_owned(),
                parked: p.parked,
                last_error: p.last_error,
            })
            .collect();
        if let Some(processes) = &self.processes {
            list.extend(processes.status().into_iter().map(|p| ProjectionStatus {
                name: p.name,
                kind: "process_manager".to_owned(),
                version: 0,
                checkpoint: p.checkpoint.0,
                lag_events: p.lag_events,
                lag_seconds: p.lag_seconds,
                state: state_name(p.state).to_owned(),
                parked: 0,
                last_error: p.last_error,
            }));
        }
        Ok(list)
    }

    async fn rebuild(&self, name: &str) -> Result<(), ProjectionError> {
        self.known(name)?;
        // A rebuild returns when the new generation answers, which may take long: run
        // it in the background; its progress shows in the status.
        let projections = self.projections.clone();
        let name = name.to_owned();
        tokio::spawn(async move {
            if let Err(err) = projections.rebuild(&name).await {
                tracing::warn!(projection = %name, error = %err, "rebuild failed");
            }
        });
        Ok(())
    }

    async fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError> {
        let projections = self.projections.clone();
        let owned = name.to_owned();
        let parked = tokio::task::spawn_blocking(move || projections.parked(&owned))
            .await
            .map_err(|e| ProjectionError::Failed(e.to_string()))?
            .map_err(convert)?;
        Ok(parked
            .into_iter()
            .map(|p| ParkedEvent {
                position: p.position.0,
                stream: p.stream,
                event_type: p.event_type,
                error: p.error,
                attempts: p.attempts,
                parked_at: p.parked_at.to_string(),
            })
            .collect())
    }

    async fn retry_parked(&self, name: &str, position: Position) -> Result<(), ProjectionError> {
        self.projections
            .retry_parked(name, position)
            .await
            .map_err(convert)
    }

    async fn shutdown(&self) {
        if let Some(processes) = &self.processes {
            processes.shutdown().await;
        }
        self.projections.shutdown().await;
    }
}
