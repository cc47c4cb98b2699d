//! Time travel: a read model as of a position, replayed into a temporary database.

use strata_core::Position;
use strata_projection::{FailurePolicy, ProjectionError, build_as_of};

use crate::support::{
    Counter, Fixture, Kind, append, append_many, both_stores, expected_model, read_log, read_model,
};

both_stores!(
    builds_the_model_as_of_a_position,
    refused_events_follow_the_policy
);

async fn builds_the_model_as_of_a_position(kind: Kind) {
    let fx = Fixture::new(kind);
    append_many(&*fx.store, 1_200, 6).await;
    for i in 0..50 {
        append(
            &*fx.store,
            &format!("noise-{i}"),
            "Other",
            serde_json::json!({}),
        )
        .await;
    }
    let log = read_log(&*fx.store).await;
    let counter = Counter::new("counter");
    let path = fx.dir.path().join("as-of.sqlite3");
    for at in [0, 1, 517, 1_100, 1_250] {
        build_as_of(&*fx.store, &counter, Position(at), &path)
            .await
            .unwrap();
        let conn = rusqlite::Connection::open(&path).unwrap();
        let model = read_model(&conn).unwrap();
        assert_eq!(
            model,
            expected_model(&log, at.min(1_250), &[]),
            "as of {at}"
        );
    }
}

async fn refused_events_follow_the_policy(kind: Kind) {
    let fx = Fixture::new(kind);
    append(&*fx.store, "acct-1", "Added", serde_json::json!({"n": 1})).await;
    let poison = append(
        &*fx.store,
        "acct-1",
        "Added",
        serde_json::json!({"n": 2, "poison": true}),
    )
    .await;
    let last = append(&*fx.store, "acct-1", "Added", serde_json::json!({"n": 4})).await;
    let path = fx.dir.path().join("as-of.sqlite3");

    let err = build_as_of(&*fx.store, &Counter::new("counter"), last, &path)
        .await
        .unwrap_err();
    assert!(matches!(err, ProjectionError::Apply { position, .. } if position == poison));

    let parking = Counter::new("counter").policy(FailurePolicy::Park);
    build_as_of(&*fx.store, &parking, last, &path)
        .await
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let log = read_log(&*fx.store).await;
    assert_eq!(
        read_model(&conn).unwrap(),
        expected_model(&log, last.0, &[poison.0])
    );
    let parked: i64 = conn
        .query_row("SELECT position FROM strata_parked", [], |r| r.get(0))
        .unwrap();
    assert_eq!(parked as u64, poison.0);
}
