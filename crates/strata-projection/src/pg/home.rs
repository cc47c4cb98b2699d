//! [`PostgresHome`]: the pool and the versioned schemas `strata_lease` and
//! `strata_process` of the runner state that several nodes share.
//!
//! It must not touch anything outside its two schemas, and must not assume it is the
//! database's only client: the event store may live in the same database.

use std::sync::Arc;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use super::{PgLeases, migrate};
use crate::ProjectionError;
use crate::lease::LeaseTimings;

/// How a [`PostgresHome`] connects and leases.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PostgresHomeOptions {
    /// The most pooled connections it opens.
    pub max_connections: usize,
    /// The leases' time to live and renewal and retry intervals.
    pub lease_timings: LeaseTimings,
}

impl Default for PostgresHomeOptions {
    fn default() -> Self {
        Self {
            max_connections: 8,
            lease_timings: LeaseTimings::default(),
        }
    }
}

/// Runner state in a PostgreSQL database shared by several nodes: process managers'
/// instance states, timeouts, outboxes and checkpoints, and the leases that let one node
/// at a time run each of them. Cloning gives another handle to the same pool.
#[derive(Clone)]
pub struct PostgresHome {
    pool: Pool,
    leases: Arc<PgLeases>,
}

impl std::fmt::Debug for PostgresHome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresHome")
            .field("node", &self.leases.node_id())
            .finish()
    }
}

impl PostgresHome {
    /// Connects to the database of `config`, migrates its schemas to this build's
    /// versions, and names this node `node` in the leases it takes (unique per process:
    /// two processes under one id would take each other's leases).
    pub async fn connect(
        config: tokio_postgres::Config,
        node: impl Into<String>,
        options: PostgresHomeOptions,
    ) -> Result<Self, ProjectionError> {
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.max_connections.max(2))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| ProjectionError::postgres("cannot build the connection pool", e))?;
        {
            let mut client = pool
                .get()
                .await
                .map_err(|e| ProjectionError::postgres("cannot connect to postgres", e))?;
            migrate::migrate(&mut client, &migrate::LEASE).await?;
            migrate::migrate(&mut client, &migrate::PROCESS).await?;
        }
        let leases = Arc::new(PgLeases::new(
            pool.clone(),
            node.into(),
            options.lease_timings,
        ));
        Ok(Self { pool, leases })
    }

    /// The leases, for any runner that must run on one node at a time.
    pub fn leases(&self) -> Arc<PgLeases> {
        self.leases.clone()
    }

    /// The connection pool, for runner state that other crates keep beside it (a
    /// schema of their own, migrated with [`crate::migrate_schema`]), such as relay
    /// checkpoints.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Closes the pool: later operations fail, and connections close as they return.
    pub fn close(&self) {
        self.pool.close();
    }
}
