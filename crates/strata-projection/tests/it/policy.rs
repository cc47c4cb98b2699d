//! Poison events: policy `Stop` keeps what came before and stops; policy `Park` records
//! the event in the dead-letter table and goes on; parked events are listed and retried.
//! Events of types the projection does not handle are stepped over under either policy.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use strata_core::Position;
use strata_projection::{FailurePolicy, ProjectionError, RunnerState, StopCause};

use crate::support::{
    Counter, Fixture, Kind, WAIT, append, both_stores, eventually, expected_model, query_model,
    read_log,
};

both_stores!(
    stop_keeps_what_came_before_and_stops,
    park_records_the_event_and_goes_on,
    unhandled_event_types_are_stepped_over_not_parked
);

async fn stop_keeps_what_came_before_and_stops(kind: Kind) {
    let fx = Fixture::new(kind);
    let store = &*fx.store;
    append(store, "acct-1", "Added", serde_json::json!({"n": 1})).await;
    append(store, "acct-1", "Added", serde_json::json!({"n": 2})).await;
    let poison = append(
        store,
        "acct-2",
        "Added",
        serde_json::json!({"n": 4, "poison": true}),
    )
    .await;
    let after = append(store, "acct-1", "Added", serde_json::json!({"n": 8})).await;

    let counter = Arc::new(Counter::new("counter"));
    let host = fx.host();
    host.register(counter.clone()).unwrap();
    host.start();
    let err = host.wait_for("counter", after, WAIT).await.unwrap_err();
    match err {
        ProjectionError::Stopped {
            name,
            cause: StopCause::PoisonEvent { position, error },
        } => {
            assert_eq!(name, "counter");
            assert_eq!(position, poison);
            assert!(error.contains("poison at"), "{error}");
        }
        other => panic!("expected Stopped on a poison event, got {other}"),
    }
    let status = host.status().remove(0);
    assert_eq!(status.state, RunnerState::Failed);
    assert_eq!(status.checkpoint, Position(poison.0 - 1));
    assert_eq!(status.lag_events, 2);
    assert!(status.last_error.unwrap().contains("poison"));
    // The failed event and everything after it are not applied; what came before is.
    let log = read_log(store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, poison.0 - 1, &[])
    );
    // The lag in time grows while it waits.
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        host.status()[0].lag_seconds >= 0.1,
        "{:?}",
        host.status()[0]
    );

    // After a fix, a restart resumes from the checkpoint.
    counter.refuse.store(false, Ordering::SeqCst);
    host.restart("counter").unwrap();
    host.wait_for("counter", after, WAIT).await.unwrap();
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, after.0, &[])
    );
    assert_ne!(host.status()[0].state, RunnerState::Failed);
    host.shutdown().await;
}

async fn park_records_the_event_and_goes_on(kind: Kind) {
    let fx = Fixture::new(kind);
    let store = &*fx.store;
    append(store, "acct-1", "Added", serde_json::json!({"n": 1})).await;
    let poison1 = append(
        store,
        "acct-2",
        "Added",
        serde_json::json!({"n": 4, "poison": true}),
    )
    .await;
    append(store, "acct-1", "Added", serde_json::json!({"n": 2})).await;
    let poison2 = append(
        store,
        "acct-3",
        "Added",
        serde_json::json!({"n": 16, "poison": true}),
    )
    .await;
    let last = append(store, "acct-1", "Added", serde_json::json!({"n": 8})).await;

    let counter = Arc::new(Counter::new("counter").policy(FailurePolicy::Park));
    let host = fx.host();
    host.register(counter.clone()).unwrap();
    host.start();
    host.wait_for("counter", last, WAIT).await.unwrap();
    let log = read_log(store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, last.0, &[poison1.0, poison2.0])
    );
    let parked = host.parked("counter").unwrap();
    assert_eq!(
        parked.iter().map(|p| p.position).collect::<Vec<_>>(),
        [poison1, poison2]
    );
    assert_eq!(parked[0].stream, "acct-2");
    assert_eq!(parked[0].event_type, "Added");
    assert!(parked[0].error.contains("poison"));
    assert_eq!(host.status()[0].parked, 2);

    // A retry that still fails keeps the event parked and says why.
    let err = host.retry_parked("counter", poison1).await.unwrap_err();
    assert!(matches!(err, ProjectionError::Apply { position, .. } if position == poison1));
    assert_eq!(host.parked("counter").unwrap()[0].attempts, 2);

    // After a fix each retry applies the event once and removes it from the table.
    counter.refuse.store(false, Ordering::SeqCst);
    host.retry_parked("counter", poison1).await.unwrap();
    host.retry_parked("counter", poison2).await.unwrap();
    assert!(host.parked("counter").unwrap().is_empty());
    assert!(eventually(WAIT, || host.status()[0].parked == 0).await);
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, last.0, &[])
    );
    assert!(matches!(
        host.retry_parked("counter", poison1).await,
        Err(ProjectionError::NotParked { .. })
    ));
    host.shutdown().await;
}

async fn unhandled_event_types_are_stepped_over_not_parked(kind: Kind) {
    for policy in [FailurePolicy::Stop, FailurePolicy::Park] {
        let fx = Fixture::new(kind);
        let store = &*fx.store;
        append(store, "acct-1", "Added", serde_json::json!({"n": 1})).await;
        // `A` is a type the counter does not handle (the attack: a raw append of a type
        // no code of the category knows).
        let odd = append(store, "acct-1", "A", serde_json::json!({"n": 2})).await;
        let last = append(store, "acct-2", "Added", serde_json::json!({"n": 4})).await;

        let host = fx.host();
        host.register(Arc::new(Counter::new("counter").policy(policy)))
            .unwrap();
        host.start();
        host.wait_for("counter", last, WAIT).await.unwrap();
        let log = read_log(store).await;
        // Stepped over: its write undone, nothing parked, the runner not stopped.
        assert_eq!(
            query_model(&host, "counter").await,
            expected_model(&log, last.0, &[odd.0]),
            "{policy:?}"
        );
        assert!(host.parked("counter").unwrap().is_empty(), "{policy:?}");
        let status = host.status().remove(0);
        assert_eq!(status.parked, 0);
        assert_eq!(status.stopped_by, None);
        assert_ne!(status.state, RunnerState::Failed);

        // Events after it keep coming.
        let later = append(store, "acct-3", "Added", serde_json::json!({"n": 8})).await;
        host.wait_for("counter", later, WAIT).await.unwrap();
        host.shutdown().await;
    }
}
