//! Versioned migrations of PostgreSQL schemas (this crate's, and those of other crates
//! that keep runner state beside them, through [`PgSchema`] and [`migrate_schema`]):
//! embedded SQL files applied in order, each recorded in its schema's `schema_version`
//! table, the whole run under a transaction-scoped advisory lock so that nodes starting
//! at once migrate once.
//!
//! It must not touch objects outside the schema it migrates.

use tokio_postgres::Client;

use crate::ProjectionError;

/// One schema and its migrations (migration `i` brings it to version `i + 1`; append
/// only: an applied migration is never edited).
#[derive(Debug, Clone, Copy)]
pub struct PgSchema {
    /// The schema's name; its migrations create their objects in it, qualified.
    pub name: &'static str,
    /// The SQL of each migration, in order.
    pub migrations: &'static [&'static str],
    /// The advisory lock key serializing its migrations between processes (one per
    /// schema).
    pub lock: i64,
}

/// The leases.
pub(crate) const LEASE: PgSchema = PgSchema {
    name: "strata_lease",
    migrations: &[include_str!("../../migrations/lease/0001_leases.sql")],
    // The bytes of "strata-l".
    lock: 0x7374_7261_7461_2d6c,
};

/// The process managers' state.
pub(crate) const PROCESS: PgSchema = PgSchema {
    name: "strata_process",
    migrations: &[include_str!(
        "../../migrations/process/0001_process_state.sql"
    )],
    // The bytes of "strata-p".
    lock: 0x7374_7261_7461_2d70,
};

/// Brings `schema` to the latest version this build knows; refuses one that is newer.
pub async fn migrate_schema(client: &mut Client, schema: &PgSchema) -> Result<(), ProjectionError> {
    migrate(client, schema).await
}

/// Brings `schema` to the latest version this build knows; refuses one that is newer.
pub(crate) async fn migrate(client: &mut Client, schema: &PgSchema) -> Result<(), ProjectionError> {
    let name = schema.name;
    let fail = |e| ProjectionError::postgres(format!("cannot migrate the {name} schema"), e);
    let latest = schema.migrations.len() as i32;
    let tx = client.transaction().await.map_err(fail)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&schema.lock])
        .await
        .map_err(fail)?;
    // NOTE: created under the lock, so two processes never race to create them.
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {name};
         CREATE TABLE IF NOT EXISTS {name}.schema_version (
             version    integer     NOT NULL PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(fail)?;
    let found: i32 = tx
        .query_one(
            &format!("SELECT coalesce(max(version), 0) FROM {name}.schema_version"),
            &[],
        )
        .await
        .and_then(|row| row.try_get(0))
        .map_err(fail)?;
    if found > latest {
        return Err(ProjectionError::postgres(
            format!("cannot use the {name} schema"),
            format!(
                "it is at version {found}, newer than version {latest} that this build supports"
            ),
        ));
    }
    for (index, sql) in schema.migrations.iter().enumerate().skip(found as usize) {
        let version = index as i32 + 1;
        tx.batch_execute(sql).await.map_err(|e| {
            ProjectionError::postgres(
                format!("migration {version} of the {name} schema failed"),
                e,
            )
        })?;
        tx.execute(
            &format!("INSERT INTO {name}.schema_version (version) VALUES ($1)"),
            &[&version],
        )
        .await
        .map_err(fail)?;
    }
    tx.commit().await.map_err(fail)
}
