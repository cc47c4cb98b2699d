//! [`ReadModelHost`]: what an edge (the server's operations routes, a domain's
//! read-your-writes waits) needs of a host of read models, whichever database the host
//! keeps them in. The SQLite host implements it, and so does the PostgreSQL host.
//!
//! It must stay a thin delegation: every behaviour lives in the hosts.

use std::time::Duration;

use async_trait::async_trait;
use strata_core::Position;

use crate::{ParkedEvent, ProjectionError, ProjectionStatus, Projections};

/// A host of read models, as the edges use it. Every method behaves as the hosts' own
/// method of the same name.
#[async_trait]
pub trait ReadModelHost: Send + Sync + 'static {
    /// Every projection's health, by name.
    fn status(&self) -> Vec<ProjectionStatus>;

    /// The checkpoint of the answering model of `name` (`None` if there is no such
    /// projection). A host that can read it without building every status says so.
    fn checkpoint(&self, name: &str) -> Option<Position> {
        self.status()
            .into_iter()
            .find(|status| status.name == name)
            .map(|status| status.checkpoint)
    }

    /// Waits until the answering model of `name` has applied everything up to
    /// `position`, for at most `timeout`.
    async fn wait_for(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<(), ProjectionError>;

    /// Rebuilds `name` without downtime; returns once the new generation answers.
    async fn rebuild(&self, name: &str) -> Result<(), ProjectionError>;

    /// Restarts the runners of `name` that stopped for good.
    fn restart(&self, name: &str) -> Result<(), ProjectionError>;

    /// The parked events of the answering model of `name`, oldest first.
    async fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError>;

    /// Applies the parked event at `position` again.
    async fn retry_parked(&self, name: &str, position: Position) -> Result<(), ProjectionError>;

    /// Stops every runner after its current batch.
    async fn shutdown(&self);
}

#[async_trait]
impl ReadModelHost for Projections {
    fn status(&self) -> Vec<ProjectionStatus> {
        Projections::status(self)
    }

    fn checkpoint(&self, name: &str) -> Option<Position> {
        Projections::checkpoint(self, name).ok()
    }

    async fn wait_for(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        Projections::wait_for(self, name, position, timeout).await
    }

    async fn rebuild(&self, name: &str) -> Result<(), ProjectionError> {
        Projections::rebuild(self, name).await
    }

    fn restart(&self, name: &str) -> Result<(), ProjectionError> {
        Projections::restart(self, name)
    }

    async fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError> {
        // It reads a SQLite database: off the runtime's worker.
        let projections = self.clone();
        let name = name.to_owned();
        tokio::task::spawn_blocking(move || projections.parked(&name))
            .await
            .map_err(|_| ProjectionError::ShutDown)?
    }

    async fn retry_parked(&self, name: &str, position: Position) -> Result<(), ProjectionError> {
        Projections::retry_parked(self, name, position).await
    }

    async fn shutdown(&self) {
        Projections::shutdown(self).await;
    }
}

#[cfg(feature = "postgres")]
#[async_trait]
impl ReadModelHost for crate::PostgresProjections {
    fn status(&self) -> Vec<ProjectionStatus> {
        crate::PostgresProjections::status(self)
    }

    async fn wait_for(
        &self,
        name: &str,
        position: Position,
        timeout: Duration,
    ) -> Result<(), ProjectionError> {
        crate::PostgresProjections::wait_for(self, name, position, timeout).await
    }

    async fn rebuild(&self, name: &str) -> Result<(), ProjectionError> {
        crate::PostgresProjections::rebuild(self, name).await
    }

    fn restart(&self, name: &str) -> Result<(), ProjectionError> {
        crate::PostgresProjections::restart(self, name)
    }

    async fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError> {
        crate::PostgresProjections::parked(self, name).await
    }

    async fn retry_parked(&self, name: &str, position: Position) -> Result<(), ProjectionError> {
        crate::PostgresProjections::retry_parked(self, name, position).await
    }

    async fn shutdown(&self) {
        crate::PostgresProjections::shutdown(self).await;
    }
}
