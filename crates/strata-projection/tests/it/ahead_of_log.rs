//! A checkpoint beyond the log's head (the log lost acknowledged events, or the read
//! models belong to another store) is a fault: the runner reports it and refuses to run
//! from it; a rebuild recovers a projection. (Process managers: `process`.)

use std::sync::Arc;

use strata_core::Position;
use strata_projection::{FailurePolicy, ProjectionError, Projections, RunnerState, StopCause};

use crate::support::{
    Counter, Fixture, Kind, WAIT, append_many, both_stores, expected_model, query_model, read_log,
};

both_stores!(a_projection_refuses_a_checkpoint_beyond_the_head);

async fn a_projection_refuses_a_checkpoint_beyond_the_head(kind: Kind) {
    let fx = Fixture::new(kind);
    let head = append_many(&*fx.store, 5, 2).await;
    let host = fx.host();
    host.register(Arc::new(
        Counter::new("counter").policy(FailurePolicy::Park),
    ))
    .unwrap();
    host.start();
    host.wait_for("counter", head, WAIT).await.unwrap();
    host.shutdown().await;
    drop(host);

    // The same read models over a log that holds less than they applied.
    let short = Fixture::new(kind);
    let short_head = append_many(&*short.store, 2, 2).await;
    let host = Projections::new(short.store.clone(), fx.read_dir());
    host.register(Arc::new(
        Counter::new("counter").policy(FailurePolicy::Park),
    ))
    .unwrap();
    host.start();
    // A wait past the checkpoint fails at once with the cause, not after its timeout.
    let err = host
        .wait_for("counter", Position(head.0 + 1), WAIT)
        .await
        .unwrap_err();
    let expected = StopCause::CheckpointAheadOfLog {
        checkpoint: head,
        head: short_head,
    };
    assert!(
        matches!(&err, ProjectionError::Stopped { name, cause } if name == "counter" && *cause == expected),
        "{err}"
    );
    let status = host.status().remove(0);
    assert_eq!(status.state, RunnerState::Failed);
    assert_eq!(status.stopped_by, Some(expected));
    assert_eq!(status.checkpoint, head);
    assert!(status.last_error.unwrap().contains("beyond the log's head"));
    // Nothing was applied from the wrong place: the model is the one of the first log.
    let first = read_log(&*fx.store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&first, head.0, &[])
    );

    // A rebuild builds from the log as it is, and takes over.
    host.rebuild("counter").await.unwrap();
    let log = read_log(&*short.store).await;
    assert_eq!(
        query_model(&host, "counter").await,
        expected_model(&log, short_head.0, &[])
    );
    let status = host.status().remove(0);
    assert_eq!(status.stopped_by, None);
    assert_eq!(status.checkpoint, short_head);
    host.shutdown().await;
}
