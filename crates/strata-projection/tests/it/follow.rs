//! Catching up from history in batches, then following live events; stepping over
//! events the filter skips; what the status reports on the way.

use std::sync::Arc;

use strata_projection::{ProjectionStatus, RunnerState};

use crate::support::{
    Counter, Fixture, Kind, WAIT, append, append_many, both_stores, expected_model, query_model,
    read_log,
};

both_stores!(
    catches_up_then_follows_live,
    steps_over_filtered_events_so_lag_is_zero,
    status_reports_lag_before_and_after
);

fn status_of(host: &strata_projection::Projections, name: &str) -> ProjectionStatus {
    host.status().into_iter().find(|s| s.name == name).unwrap()
}

async fn catches_up_then_follows_live(kind: Kind) {
    let fx = Fixture::new(kind);
    // More than two batches of history.
    let head = append_many(&*fx.store, 2_500, 7).await;
    let host = fx.host();
    host.register(Arc::new(Counter::new("counter"))).unwrap();
    host.start();
    host.wait_for("counter", head, WAIT).await.unwrap();
    let log = read_log(&*fx.store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, head.0, &[])
    );

    // Live: new events arrive after the runner has caught up.
    let mut last = head;
    for i in 0..50 {
        last = append(
            &*fx.store,
            &format!("acct-live{}", i % 3),
            "Added",
            serde_json::json!({"n": i}),
        )
        .await;
    }
    host.wait_for("counter", last, WAIT).await.unwrap();
    let log = read_log(&*fx.store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, last.0, &[])
    );
    let status = status_of(&host, "counter");
    assert_eq!(status.checkpoint, last);
    assert_eq!(status.lag_events, 0);
    assert_eq!(status.state, RunnerState::Live);
    host.shutdown().await;
    assert_eq!(status_of(&host, "counter").state, RunnerState::Stopped);
}

async fn steps_over_filtered_events_so_lag_is_zero(kind: Kind) {
    let fx = Fixture::new(kind);
    let host = fx.host();
    host.register(Arc::new(Counter::new("counter"))).unwrap();
    host.start();
    let wanted = append(&*fx.store, "acct-1", "Added", serde_json::json!({"n": 1})).await;
    host.wait_for("counter", wanted, WAIT).await.unwrap();
    // Events of another category only: the checkpoint still reaches the head.
    let mut head = wanted;
    for i in 0..300 {
        head = append(
            &*fx.store,
            &format!("noise-{i}"),
            "Other",
            serde_json::json!({}),
        )
        .await;
    }
    host.wait_for("counter", head, WAIT).await.unwrap();
    let status = status_of(&host, "counter");
    assert_eq!(status.checkpoint, head);
    assert_eq!(status.lag_events, 0);
    assert_eq!(status.lag_seconds, 0.0);
    let log = read_log(&*fx.store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, head.0, &[])
    );
    host.shutdown().await;
}

async fn status_reports_lag_before_and_after(kind: Kind) {
    let fx = Fixture::new(kind);
    let head = append_many(&*fx.store, 40, 4).await;
    let host = fx.host();
    host.register(Arc::new(Counter::new("counter"))).unwrap();
    let before = status_of(&host, "counter");
    assert_eq!(before.version, 1);
    assert_eq!(before.checkpoint.0, 0);
    assert_eq!(before.head, head);
    assert_eq!(before.lag_events, 40);
    assert_eq!(before.state, RunnerState::Stopped);
    assert_eq!(before.parked, 0);
    assert!(before.rebuild.is_none());
    // The status is what the HTTP layer serializes.
    let json = serde_json::to_value(&before).unwrap();
    assert_eq!(json["state"], "stopped");
    assert_eq!(json["lag_events"], 40);

    host.start();
    host.wait_for("counter", head, WAIT).await.unwrap();
    let ok = crate::support::eventually(WAIT, || {
        status_of(&host, "counter").state == RunnerState::Live
    })
    .await;
    assert!(ok, "never live: {:?}", status_of(&host, "counter"));
    let after = status_of(&host, "counter");
    assert_eq!((after.lag_events, after.lag_seconds), (0, 0.0));
    host.shutdown().await;
}
