//! Deferred indexes: a fresh model is built without them and gets them when its runner
//! first reaches the head, before it says it is live and before a rebuilt generation
//! takes over; a model as of a position gets them once it is complete.

use std::sync::Arc;

use strata_core::Position;
use strata_projection::{Projections, RunnerState, build_as_of};

use crate::support::{
    Counter, Fixture, Kind, TOTALS_INDEX, WAIT, append, append_many, both_stores, eventually,
    expected_model, query_model, read_log,
};

both_stores!(
    a_model_gets_its_deferred_indexes_at_the_head_and_a_rebuild_before_it_answers,
    a_model_as_of_a_position_gets_its_deferred_indexes
);

/// Whether `conn`'s database has the counter's deferred index, with its checkpoint, read
/// in one transaction.
fn indexed_at(conn: &rusqlite::Connection) -> rusqlite::Result<(bool, u64)> {
    let tx = conn.unchecked_transaction()?;
    let indexed: i64 = tx.query_row(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?1",
        [TOTALS_INDEX],
        |r| r.get(0),
    )?;
    let checkpoint: i64 =
        tx.query_row("SELECT position FROM strata_checkpoint", [], |r| r.get(0))?;
    Ok((indexed == 1, checkpoint as u64))
}

async fn answering_indexed_at(host: &Projections) -> (bool, u64) {
    host.query("counter", indexed_at).await.unwrap()
}

fn state(host: &Projections) -> RunnerState {
    host.status().remove(0).state
}

async fn a_model_gets_its_deferred_indexes_at_the_head_and_a_rebuild_before_it_answers(kind: Kind) {
    let fx = Fixture::new(kind);
    let head = append_many(&*fx.store, 1_200, 7).await;
    let host = fx.host();
    // Slow enough to be seen catching up.
    host.register(Arc::new(
        Counter::new("counter").deferred_index().delay(300),
    ))
    .unwrap();
    host.start();
    let mut seen_behind = false;
    while state(&host) != RunnerState::Live {
        // An index before the model reached the head would have been kept up to date
        // row by row all along.
        let (indexed, checkpoint) = answering_indexed_at(&host).await;
        assert!(!indexed || checkpoint >= head.0, "indexed at {checkpoint}");
        seen_behind |= !indexed && checkpoint < head.0;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert!(seen_behind, "the model was never seen catching up");
    // Live means indexed.
    assert_eq!(answering_indexed_at(&host).await, (true, head.0));
    let log = read_log(&*fx.store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, head.0, &[])
    );

    // A rebuilt generation answers only once it has its index.
    let rebuild = tokio::spawn({
        let host = host.clone();
        async move { host.rebuild("counter").await }
    });
    while !rebuild.is_finished() {
        assert!(answering_indexed_at(&host).await.0);
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    rebuild.await.unwrap().unwrap();
    assert_eq!(host.status().remove(0).generation, 2);
    assert!(answering_indexed_at(&host).await.0);

    // Live events go on reaching the indexed model, and a restart finds it as it was.
    let last = append(
        &*fx.store,
        "acct-live",
        "Added",
        serde_json::json!({"n": 3}),
    )
    .await;
    host.wait_for("counter", last, WAIT).await.unwrap();
    host.shutdown().await;
    let host = fx.host();
    host.register(Arc::new(Counter::new("counter").deferred_index()))
        .unwrap();
    host.start();
    assert!(eventually(WAIT, || state(&host) == RunnerState::Live).await);
    assert_eq!(answering_indexed_at(&host).await, (true, last.0));
    let log = read_log(&*fx.store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, last.0, &[])
    );
    host.shutdown().await;
}

async fn a_model_as_of_a_position_gets_its_deferred_indexes(kind: Kind) {
    let fx = Fixture::new(kind);
    append_many(&*fx.store, 300, 3).await;
    let counter = Counter::new("counter").deferred_index();
    let path = fx.dir.path().join("as-of.sqlite3");
    build_as_of(&*fx.store, &counter, Position(200), &path)
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(indexed_at(&conn).unwrap(), (true, 200));
}
