//! The [`ProjectionHost`] over strata-projection: the read models (any
//! [`ReadModelHost`]: SQLite's `Projections`, or PostgreSQL's) and the process managers
//! ([`ProcessManagers`]) as the operations routes show them. Both are listed; rebuilds
//! and parked events concern projections, and a process manager answers them plainly (it
//! cannot be rebuilt, it parks nothing) rather than as an unknown name.

use std::sync::Arc;

use async_trait::async_trait;
use strata_core::Position;
use strata_projection::{ProcessManagers, ReadModelHost};

use crate::projections::RunnerStatus;
use crate::{ParkedEvent, ProjectionError, ProjectionHost};

/// The read side of a server: its projections and, if any, its process managers.
#[derive(Clone)]
pub struct ReadSide {
    projections: Arc<dyn ReadModelHost>,
    processes: Option<ProcessManagers>,
}

/// What a name designates.
enum Runner {
    Projection,
    ProcessManager,
}

impl ReadSide {
    /// The read side made of these hosts (started by the caller).
    pub fn new(projections: impl ReadModelHost, processes: Option<ProcessManagers>) -> Self {
        Self {
            projections: Arc::new(projections),
            processes,
        }
    }

    /// The projections host.
    pub fn projections(&self) -> &dyn ReadModelHost {
        &*self.projections
    }

    /// What `name` designates, or [`ProjectionError::Unknown`].
    fn find(&self, name: &str) -> Result<Runner, ProjectionError> {
        if self.projections.status().iter().any(|p| p.name == name) {
            return Ok(Runner::Projection);
        }
        let managed = self
            .processes
            .as_ref()
            .is_some_and(|pms| pms.status().iter().any(|p| p.name == name));
        if managed {
            Ok(Runner::ProcessManager)
        } else {
            Err(ProjectionError::Unknown(name.to_owned()))
        }
    }
}

#[async_trait]
impl ProjectionHost for ReadSide {
    async fn status(&self) -> Result<Vec<RunnerStatus>, ProjectionError> {
        let mut list: Vec<RunnerStatus> = self
            .projections
            .status()
            .into_iter()
            .map(RunnerStatus::Projection)
            .collect();
        if let Some(processes) = &self.processes {
            list.extend(
                processes
                    .status()
                    .into_iter()
                    .map(RunnerStatus::ProcessManager),
            );
        }
        Ok(list)
    }

    async fn rebuild(&self, name: &str) -> Result<(), ProjectionError> {
        if let Runner::ProcessManager = self.find(name)? {
            return Err(ProjectionError::NotRebuildable(name.to_owned()));
        }
        // A rebuild returns when the new generation answers, which may take long: run
        // it in the background; its progress, or its failure, shows in the status.
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
        if let Runner::ProcessManager = self.find(name)? {
            return Ok(Vec::new());
        }
        self.projections.parked(name).await
    }

    async fn retry_parked(&self, name: &str, position: Position) -> Result<(), ProjectionError> {
        if let Runner::ProcessManager = self.find(name)? {
            return Err(ProjectionError::NotParked {
                name: name.to_owned(),
                position,
            });
        }
        self.projections.retry_parked(name, position).await
    }

    async fn shutdown(&self) {
        if let Some(processes) = &self.processes {
            processes.shutdown().await;
        }
        self.projections.shutdown().await;
    }
}
