//! The SQL of PostgreSQL read stores: the metadata table (`strata_read.generations`,
//! which generation of each projection answers and which one builds), the bookkeeping
//! tables of every generation's schema (`strata_checkpoint`, `strata_parked`,
//! `strata_model`), and schema names.
//!
//! It must only change the metadata in the order that keeps a crash harmless: a schema
//! exists before the metadata names it, and the metadata stops naming one before it is
//! dropped. It knows no projection's own tables.

use bytes::Bytes;
use strata_core::{EventId, EventType, Position, RecordedEvent, StreamName, Timestamp, Version};
use tokio_postgres::{Client, GenericClient, Transaction};

use crate::db::now;
use crate::meta::{Entry, GenerationId};
use crate::{ApplyError, ParkedEvent};

/// The advisory lock (transaction-scoped) taken while schemas are created or dropped, so
/// that two processes setting up the same read store do not race.
const SETUP_LOCK: i64 = 0x7374_7261_7461_7264; // "stratard"

/// The metadata schema and table, created once per database.
const META_DDL: &str = "
CREATE SCHEMA IF NOT EXISTS strata_read;
CREATE TABLE IF NOT EXISTS strata_read.generations (
    name TEXT PRIMARY KEY,
    active_version BIGINT,
    active_generation BIGINT,
    building_version BIGINT,
    building_generation BIGINT
);
";

/// The bookkeeping tables of a generation, created in its schema with the model's own.
const SYSTEM_DDL: &str = "
CREATE TABLE strata_checkpoint (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    position BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
INSERT INTO strata_checkpoint (id, position, updated_at) VALUES (1, 0, 0);
CREATE TABLE strata_parked (
    position BIGINT PRIMARY KEY,
    stream TEXT NOT NULL,
    version BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    data BYTEA NOT NULL,
    metadata BYTEA NOT NULL,
    recorded_at BIGINT NOT NULL,
    error TEXT NOT NULL,
    parked_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL
);
CREATE TABLE strata_model (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    name TEXT NOT NULL,
    version BIGINT NOT NULL,
    generation BIGINT NOT NULL,
    created_at BIGINT NOT NULL
);
";

/// The longest projection name a PostgreSQL read store takes: `rm_`, the name and
/// `_v{u32}_g{generation}` must fit PostgreSQL's 63-byte identifiers.
pub(crate) const MAX_NAME: usize = 38;

/// The schema of a generation of `name`. Names are `a-z`, `0-9` and `_` (validated), so
/// the result needs no quoting.
pub(crate) fn schema_name(name: &str, id: GenerationId) -> String {
    format!("rm_{name}_v{}_g{}", id.version, id.generation)
}

/// The generation a schema of `name` holds, if it is one.
fn generation_of(name: &str, schema: &str) -> Option<GenerationId> {
    let rest = schema
        .strip_prefix("rm_")?
        .strip_prefix(name)?
        .strip_prefix("_v")?;
    let (version, generation) = rest.split_once("_g")?;
    Some(GenerationId {
        version: version.parse().ok()?,
        generation: generation.parse().ok()?,
    })
}

/// Creates the metadata table if it is missing.
pub(crate) async fn setup(client: &mut Client) -> Result<(), tokio_postgres::Error> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SETUP_LOCK])
        .await?;
    tx.batch_execute(META_DDL).await?;
    tx.commit().await
}

fn id_of(version: Option<i64>, generation: Option<i64>) -> Option<GenerationId> {
    match (version, generation) {
        (Some(v), Some(g)) => Some(GenerationId {
            version: v.clamp(0, i64::from(u32::MAX)) as u32,
            generation: g.max(0) as u64,
        }),
        _ => None,
    }
}

/// What the metadata says of `name`.
pub(crate) async fn get_entry(
    client: &impl GenericClient,
    name: &str,
) -> Result<Entry, tokio_postgres::Error> {
    let row = client
        .query_opt(
            "SELECT active_version, active_generation, building_version, building_generation
             FROM strata_read.generations WHERE name = $1",
            &[&name],
        )
        .await?;
    Ok(row.map_or_else(Entry::default, |row| Entry {
        active: id_of(row.get(0), row.get(1)),
        building: id_of(row.get(2), row.get(3)),
    }))
}

/// Replaces what the metadata says of `name`.
pub(crate) async fn set_entry(
    client: &impl GenericClient,
    name: &str,
    entry: Entry,
) -> Result<(), tokio_postgres::Error> {
    let v = |g: Option<GenerationId>| g.map(|g| i64::from(g.version));
    let n = |g: Option<GenerationId>| g.map(|g| g.generation as i64);
    client
        .execute(
            "INSERT INTO strata_read.generations
                (name, active_version, active_generation, building_version, building_generation)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (name) DO UPDATE SET
                active_version = excluded.active_version,
                active_generation = excluded.active_generation,
                building_version = excluded.building_version,
                building_generation = excluded.building_generation",
            &[
                &name,
                &v(entry.active),
                &n(entry.active),
                &v(entry.building),
                &n(entry.building),
            ],
        )
        .await?;
    Ok(())
}

/// The generations of `name` that have a schema.
pub(crate) async fn existing(
    client: &impl GenericClient,
    name: &str,
) -> Result<Vec<GenerationId>, tokio_postgres::Error> {
    let prefix = format!("rm_{name}_v");
    let rows = client
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE left(nspname, length($1)) = $1",
            &[&prefix],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| generation_of(name, row.get(0)))
        .collect())
}

/// Drops every schema of `name` that is not one of `keep`.
pub(crate) async fn drop_leftovers(
    client: &impl GenericClient,
    name: &str,
    keep: &[GenerationId],
) -> Result<(), tokio_postgres::Error> {
    for id in existing(client, name).await? {
        if !keep.contains(&id) {
            drop_schema(client, &schema_name(name, id)).await?;
        }
    }
    Ok(())
}

/// Drops a generation's schema with everything in it (nothing if it is gone).
pub(crate) async fn drop_schema(
    client: &impl GenericClient,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
        .await
}

/// Creates the schema of a generation, its bookkeeping tables, and (through `migrate`)
/// the model's tables, in `tx`, unless the schema exists. Leaves the `search_path` on
/// the schema for the rest of `tx`. Returns whether it created it.
pub(crate) async fn create_generation(
    tx: &Transaction<'_>,
    schema: &str,
    name: &str,
    id: GenerationId,
) -> Result<bool, tokio_postgres::Error> {
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SETUP_LOCK])
        .await?;
    let exists: bool = tx
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .await?
        .get(0);
    if exists {
        set_search_path(tx, schema).await?;
        return Ok(false);
    }
    tx.batch_execute(&format!("CREATE SCHEMA {schema}")).await?;
    set_search_path(tx, schema).await?;
    tx.batch_execute(SYSTEM_DDL).await?;
    tx.execute(
        "INSERT INTO strata_model (id, name, version, generation, created_at)
         VALUES (1, $1, $2, $3, $4)",
        &[
            &name,
            &i64::from(id.version),
            &(id.generation as i64),
            &now().unix_nanos(),
        ],
    )
    .await?;
    Ok(true)
}

/// Points the rest of `tx` at `schema` (the only schema searched, besides the catalog).
pub(crate) async fn set_search_path(
    tx: &Transaction<'_>,
    schema: &str,
) -> Result<(), tokio_postgres::Error> {
    tx.batch_execute(&format!("SET LOCAL search_path TO {schema}"))
        .await
}

/// The stored checkpoint of the schema on the `search_path`; with `lock`, the row stays
/// locked to the end of the transaction, so two writers of one generation take turns.
pub(crate) async fn read_checkpoint(
    client: &impl GenericClient,
    lock: bool,
) -> Result<Position, tokio_postgres::Error> {
    let statement = if lock {
        "SELECT position FROM strata_checkpoint WHERE id = 1 FOR UPDATE"
    } else {
        "SELECT position FROM strata_checkpoint WHERE id = 1"
    };
    let position: Option<i64> = client.query_opt(statement, &[]).await?.map(|r| r.get(0));
    Ok(Position(position.unwrap_or(0).max(0) as u64))
}

/// Stores the checkpoint inside the caller's transaction.
pub(crate) async fn write_checkpoint(
    client: &impl GenericClient,
    position: Position,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "UPDATE strata_checkpoint SET position = $1, updated_at = $2 WHERE id = 1",
            &[&(position.0 as i64), &now().unix_nanos()],
        )
        .await?;
    Ok(())
}

/// The checkpoint and the parked count of `schema` (qualified: no `search_path` needed).
pub(crate) async fn load_state(
    client: &impl GenericClient,
    schema: &str,
) -> Result<(Position, u64), tokio_postgres::Error> {
    let row = client
        .query_one(
            &format!(
                "SELECT (SELECT position FROM {schema}.strata_checkpoint WHERE id = 1),
                        (SELECT count(*) FROM {schema}.strata_parked)"
            ),
            &[],
        )
        .await?;
    let position: Option<i64> = row.get(0);
    let parked: i64 = row.get(1);
    Ok((
        Position(position.unwrap_or(0).max(0) as u64),
        parked.max(0) as u64,
    ))
}

/// Records a refused event in the dead-letter table, inside the batch's transaction.
pub(crate) async fn park(
    client: &impl GenericClient,
    event: &RecordedEvent,
    err: &ApplyError,
) -> Result<(), tokio_postgres::Error> {
    client
        .execute(
            "INSERT INTO strata_parked
                (position, stream, version, event_id, event_type, data, metadata, recorded_at,
                 error, parked_at, attempts)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 1)
             ON CONFLICT (position) DO UPDATE SET error = excluded.error,
                                                  attempts = strata_parked.attempts + 1",
            &[
                &(event.position.0 as i64),
                &event.stream.as_str(),
                &(event.version.0 as i64),
                &event.id.to_string(),
                &event.event_type.as_str(),
                &&event.data[..],
                &&event.metadata[..],
                &event.recorded_at.unix_nanos(),
                &err.to_string(),
                &now().unix_nanos(),
            ],
        )
        .await?;
    Ok(())
}

/// The parked event at `position` of the schema on the `search_path`, rebuilt from its
/// row; `Ok(None)` if there is none, `Err` with a message if the row does not decode.
pub(crate) async fn load_parked(
    client: &impl GenericClient,
    position: Position,
) -> Result<Option<Result<RecordedEvent, String>>, tokio_postgres::Error> {
    let Some(row) = client
        .query_opt(
            "SELECT stream, version, event_id, event_type, data, metadata, recorded_at
             FROM strata_parked WHERE position = $1",
            &[&(position.0 as i64)],
        )
        .await?
    else {
        return Ok(None);
    };
    let bad = |what: &str| format!("parked event at position {position} has an invalid {what}");
    let decode = || -> Result<RecordedEvent, String> {
        let version: i64 = row.get(1);
        let data: Vec<u8> = row.get(4);
        let metadata: Vec<u8> = row.get(5);
        Ok(RecordedEvent {
            position,
            stream: StreamName::new(row.get::<_, &str>(0)).map_err(|_| bad("stream name"))?,
            version: Version(version.max(0) as u64),
            id: row
                .get::<_, &str>(2)
                .parse::<EventId>()
                .map_err(|_| bad("event id"))?,
            event_type: EventType::new(row.get::<_, &str>(3)).map_err(|_| bad("event type"))?,
            data: Bytes::from(data),
            metadata: Bytes::from(metadata),
            recorded_at: Timestamp::from_unix_nanos(row.get(6)),
        })
    };
    Ok(Some(decode()))
}

/// The parked events of `schema`, oldest first.
pub(crate) async fn list_parked(
    client: &impl GenericClient,
    schema: &str,
) -> Result<Vec<ParkedEvent>, tokio_postgres::Error> {
    let rows = client
        .query(
            &format!(
                "SELECT position, stream, event_type, error, parked_at, attempts
                 FROM {schema}.strata_parked ORDER BY position"
            ),
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| ParkedEvent {
            position: Position(row.get::<_, i64>(0).max(0) as u64),
            stream: row.get(1),
            event_type: row.get(2),
            error: row.get(3),
            parked_at: Timestamp::from_unix_nanos(row.get(4)),
            attempts: row.get::<_, i32>(5).max(0) as u32,
        })
        .collect())
}

#[cfg(test)]
mod tests;
