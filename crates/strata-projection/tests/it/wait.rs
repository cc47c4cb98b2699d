//! Read-your-writes: `wait_for` returns once the model has the position, or times out.

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_core::Position;
use strata_projection::ProjectionError;

use crate::support::{Counter, Fixture, Kind, WAIT, append, both_stores};

both_stores!(
    wait_for_sees_the_write,
    wait_for_times_out_when_the_position_is_not_reached,
    a_point_query_reads_what_a_query_reads
);

async fn wait_for_sees_the_write(kind: Kind) {
    let fx = Fixture::new(kind);
    let host = fx.host();
    host.register(Arc::new(Counter::new("counter"))).unwrap();
    host.start();
    for i in 0..20 {
        let position = append(&*fx.store, "acct-7", "Added", serde_json::json!({"n": i})).await;
        host.wait_for("counter", position, WAIT).await.unwrap();
        let events: i64 = host
            .query("counter", |conn| {
                conn.query_row(
                    "SELECT events FROM totals WHERE stream = 'acct-7'",
                    [],
                    |r| r.get(0),
                )
            })
            .await
            .unwrap();
        assert_eq!(events, i + 1, "the read after the wait sees the write");
    }
    host.shutdown().await;
}

async fn a_point_query_reads_what_a_query_reads(kind: Kind) {
    let fx = Fixture::new(kind);
    let host = fx.host();
    host.register(Arc::new(Counter::new("counter"))).unwrap();
    host.start();
    let events = |conn: &rusqlite::Connection| {
        conn.query_row(
            "SELECT events FROM totals WHERE stream = 'acct-3'",
            [],
            |r| r.get::<_, i64>(0),
        )
    };
    for i in 0..5 {
        let position = append(&*fx.store, "acct-3", "Added", serde_json::json!({"n": i})).await;
        host.wait_for("counter", position, WAIT).await.unwrap();
        let point = host.point_query("counter", events).unwrap();
        assert_eq!(point, i + 1, "the point read after the wait sees the write");
        assert_eq!(point, host.query("counter", events).await.unwrap());
    }
    // It fails as a query fails: a bad statement, a write, an unknown read model.
    let err = host
        .point_query("counter", |conn| {
            conn.execute_batch("SELECT * FROM missing")
        })
        .unwrap_err();
    assert!(matches!(err, ProjectionError::Query { .. }), "{err}");
    let err = host
        .point_query("counter", |conn| conn.execute_batch("DELETE FROM totals"))
        .unwrap_err();
    assert!(matches!(err, ProjectionError::Query { .. }), "{err}");
    let err = host.point_query("nope", events).unwrap_err();
    assert!(matches!(err, ProjectionError::Unknown(_)), "{err}");
    host.shutdown().await;
}

async fn wait_for_times_out_when_the_position_is_not_reached(kind: Kind) {
    let fx = Fixture::new(kind);
    let host = fx.host();
    host.register(Arc::new(Counter::new("counter"))).unwrap();
    host.start();
    let head = append(&*fx.store, "acct-1", "Added", serde_json::json!({"n": 1})).await;
    let started = Instant::now();
    let err = host
        .wait_for("counter", Position(head.0 + 5), Duration::from_millis(150))
        .await
        .unwrap_err();
    assert!(started.elapsed() >= Duration::from_millis(150));
    match err {
        ProjectionError::Timeout {
            name,
            position,
            checkpoint,
            waited,
        } => {
            assert_eq!(name, "counter");
            assert_eq!(position, Position(head.0 + 5));
            assert!(checkpoint <= head);
            assert!(waited >= Duration::from_millis(150), "{waited:?}");
        }
        other => panic!("expected a timeout, got {other}"),
    }
    assert!(matches!(
        host.wait_for("nope", head, Duration::from_millis(10)).await,
        Err(ProjectionError::Unknown(_))
    ));
    host.shutdown().await;
}
