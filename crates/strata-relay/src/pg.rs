//! Relays on a PostgreSQL database that several servers share (the `postgres` feature):
//! each relay's checkpoint is a row of `strata_relay.checkpoints`, in a versioned schema
//! of its own beside strata-projection's `PostgresHome` (same pool, same migrations
//! machinery), and every checkpoint write first checks the relay's lease fence in the
//! same transaction, so a server that lost the lease cannot move the checkpoint.
//!
//! It must not touch anything outside the `strata_relay` schema, and must not decide who
//! publishes (the lease does).

use strata_core::Position;
use strata_projection::deadpool_postgres::Pool;
use strata_projection::{Fence, LeaseError, PgSchema, PostgresHome, check_fence, migrate_schema};

use crate::RelayError;

/// The relays' schema.
const SCHEMA: PgSchema = PgSchema {
    name: "strata_relay",
    migrations: &[include_str!("../migrations/0001_checkpoints.sql")],
    // The bytes of "strata-r".
    lock: 0x7374_7261_7461_2d72,
};

/// Brings the relays' schema in `home`'s database to this build's version.
pub(crate) async fn migrate(home: &PostgresHome) -> Result<(), RelayError> {
    let mut client = home
        .pool()
        .get()
        .await
        .map_err(|e| RelayError::SharedCheckpoint {
            name: "strata_relay".to_owned(),
            message: format!("cannot connect: {e}"),
        })?;
    migrate_schema(&mut client, &SCHEMA)
        .await
        .map_err(|e| RelayError::SharedCheckpoint {
            name: "strata_relay".to_owned(),
            message: e.to_string(),
        })
}

/// One relay's checkpoint row.
#[derive(Clone)]
pub(crate) struct PgCheckpoint {
    pool: Pool,
    name: String,
}

impl PgCheckpoint {
    pub(crate) fn new(home: &PostgresHome, name: &str) -> Self {
        Self {
            pool: home.pool().clone(),
            name: name.to_owned(),
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> RelayError {
        RelayError::SharedCheckpoint {
            name: self.name.clone(),
            message: message.to_string(),
        }
    }

    /// The stored checkpoint (0 when none is stored).
    pub(crate) async fn load(&self) -> Result<Position, RelayError> {
        let client = self.pool.get().await.map_err(|e| self.error(e))?;
        let row = client
            .query_opt(
                "SELECT position FROM strata_relay.checkpoints WHERE name = $1",
                &[&self.name],
            )
            .await
            .map_err(|e| self.error(e))?;
        let position: i64 = match row {
            Some(row) => row.try_get(0).map_err(|e| self.error(e))?,
            None => 0,
        };
        Ok(Position(u64::try_from(position).unwrap_or(0)))
    }

    /// Stores `position` unless a checkpoint is stored already: how a relay that kept
    /// its checkpoint in a local file before carries it over.
    pub(crate) async fn seed(&self, position: Position) -> Result<(), RelayError> {
        let client = self.pool.get().await.map_err(|e| self.error(e))?;
        client
            .execute(
                "INSERT INTO strata_relay.checkpoints (name, position) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
                &[&self.name, &stored(position)],
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok(())
    }

    /// Stores `position` in a transaction that first checks `fence` (still the current
    /// grant of the relay's lease, its row locked until the commit), when given one.
    pub(crate) async fn store(
        &self,
        position: Position,
        fence: Option<&Fence>,
    ) -> Result<(), RelayError> {
        let mut client = self.pool.get().await.map_err(|e| self.error(e))?;
        let tx = client.transaction().await.map_err(|e| self.error(e))?;
        if let Some(fence) = fence {
            check_fence(&*tx, fence).await.map_err(|e| match e {
                LeaseError::Lost { fence } => RelayError::LeaseLost {
                    name: self.name.clone(),
                    fence: fence.to_string(),
                },
                other => self.error(other),
            })?;
        }
        tx.execute(
            "INSERT INTO strata_relay.checkpoints (name, position) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET position = excluded.position, updated_at = now()",
            &[&self.name, &stored(position)],
        )
        .await
        .map_err(|e| self.error(e))?;
        tx.commit().await.map_err(|e| self.error(e))
    }
}

fn stored(position: Position) -> i64 {
    i64::try_from(position.0).unwrap_or(i64::MAX)
}
