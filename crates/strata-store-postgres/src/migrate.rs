//! The schema's versioned migrations: embedded SQL files applied in order, each in the
//! one transaction that records it in `strata.schema_version`. Owns nothing but the
//! schema; it never touches objects outside the `strata` schema.

use tokio_postgres::Client;

use crate::PostgresError;

/// The migrations, in the order they apply; migration `i` brings the schema to version
/// `i + 1`. Append only: an applied migration is never edited.
pub(crate) const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_event_log.sql")];

/// The advisory lock key that serializes migrations of one database between processes
/// (the bytes of "strata-m" as a big-endian integer; any constant would do).
const MIGRATION_LOCK: i64 = 0x7374_7261_7461_2d6d;

/// Brings the schema to the latest version this build knows.
///
/// Safe when several processes start at once: the whole run holds a transaction-scoped
/// advisory lock, so one process migrates and the others then find nothing to do. Refuses
/// a database whose schema is newer than this build.
pub(crate) async fn migrate(client: &mut Client) -> Result<u32, PostgresError> {
    let latest = MIGRATIONS.len() as u32;
    let tx = client.transaction().await.map_err(PostgresError::migrate)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(PostgresError::migrate)?;
    // NOTE: created under the lock, so two processes never race to create them.
    tx.batch_execute(
        "CREATE SCHEMA IF NOT EXISTS strata;
         CREATE TABLE IF NOT EXISTS strata.schema_version (
             version    integer     NOT NULL PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         );",
    )
    .await
    .map_err(PostgresError::migrate)?;
    let row = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM strata.schema_version",
            &[],
        )
        .await
        .map_err(PostgresError::migrate)?;
    let found: i32 = row.try_get(0).map_err(PostgresError::migrate)?;
    let found = u32::try_from(found).unwrap_or(0);
    if found > latest {
        return Err(PostgresError::SchemaTooNew {
            found,
            supported: latest,
        });
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = index as i32 + 1;
        tx.batch_execute(sql)
            .await
            .map_err(|error| PostgresError::Migration {
                version: version as u32,
                error,
            })?;
        tx.execute(
            "INSERT INTO strata.schema_version (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(PostgresError::migrate)?;
    }
    tx.commit().await.map_err(PostgresError::migrate)?;
    Ok(latest)
}
