//! Time travel for read models: [`build_as_of`] replays the log up to a position into a
//! fresh database. It must not touch the host's databases.

use std::path::Path;

use rusqlite::TransactionBehavior;
use strata_core::{Position, RecordedEvent};
use strata_store::EventStore;

use crate::core::{Savepoint, savepoint};
use crate::{ApplyError, FailurePolicy, ProjectionError, SqliteProjection, db};

/// Events read from the store per page while replaying.
const PAGE: usize = 1000;

/// Builds `projection`'s read model as it was at `position` (every selected event up to
/// and including it) into a fresh database at `path`, replacing any file there, its
/// deferred indexes created last.
///
/// Events the projection refuses follow its policy: under `Park` they land in the new
/// database's `strata_parked` table; under `Stop` the build fails with
/// [`ProjectionError::Apply`]. SQLite work runs on the calling thread (moved off the
/// runtime's worker with `block_in_place` on a multi-threaded runtime).
pub async fn build_as_of(
    store: &dyn EventStore,
    projection: &dyn SqliteProjection,
    position: Position,
    path: &Path,
) -> Result<(), ProjectionError> {
    let name = projection.name();
    let file = path.display().to_string();
    let sqlite = |what: &'static str| {
        let file = file.clone();
        move |e: rusqlite::Error| ProjectionError::sqlite(format!("cannot {what} {file}"), e)
    };
    blocking(|| db::remove_database(path))
        .map_err(|e| ProjectionError::io(format!("cannot replace {file}"), e))?;
    let mut conn = blocking(|| db::open_model_writer(path))?;
    blocking(|| {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        db::create_system_tables(&tx, name, projection.version(), 0)?;
        projection.migrate(&tx)?;
        tx.commit()
    })
    .map_err(sqlite("migrate"))?;

    let filter = projection.filter();
    let mut next = Position(1);
    while next <= position {
        let page = store.read_all(next, PAGE, &filter).await?;
        let events: Vec<&RecordedEvent> = page
            .events
            .iter()
            .filter(|e| e.position <= position)
            .collect();
        let through = Position(page.next.0.saturating_sub(1)).min(position);
        let refused = blocking(|| apply_page(&mut conn, projection, &events, through))
            .map_err(sqlite("write"))?;
        if let Some((at, error)) = refused {
            return Err(ProjectionError::Apply {
                name: name.to_owned(),
                position: at,
                error,
            });
        }
        if page.next <= next {
            break;
        }
        next = page.next;
    }
    // The model is complete: its query indexes are built in one pass each.
    blocking(|| db::create_deferred_indexes(&mut conn, projection.deferred_indexes()))
        .map_err(sqlite("index"))?;
    Ok(())
}

/// Applies one page in one transaction; returns the refused event under `Stop`.
fn apply_page(
    conn: &mut rusqlite::Connection,
    projection: &dyn SqliteProjection,
    events: &[&RecordedEvent],
    through: Position,
) -> rusqlite::Result<Option<(Position, ApplyError)>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for event in events {
        savepoint(&tx, Savepoint::Begin)?;
        match projection.apply(&tx, event) {
            Ok(()) => savepoint(&tx, Savepoint::Release)?,
            Err(err) if err.is_unhandled() => savepoint(&tx, Savepoint::Undo)?,
            Err(err) => {
                savepoint(&tx, Savepoint::Undo)?;
                match projection.policy() {
                    FailurePolicy::Stop => return Ok(Some((event.position, err))),
                    FailurePolicy::Park => crate::core::park(&tx, event, &err)?,
                }
            }
        }
    }
    db::write_checkpoint(&tx, through)?;
    tx.commit()?;
    Ok(None)
}

/// Runs blocking work off the async worker when the runtime allows it.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(f)
        }
        _ => f(),
    }
}
