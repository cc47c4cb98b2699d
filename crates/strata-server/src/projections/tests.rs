//! How the read side's errors answer over HTTP.

use std::time::Duration;

use axum::http::StatusCode;
use strata_core::Position;
use strata_projection::{ProjectionError, StopCause};

use crate::ApiError;

#[test]
fn a_timeout_reports_how_long_it_waited() {
    let err = ApiError::from(ProjectionError::Timeout {
        name: "orders".into(),
        position: Position(9),
        checkpoint: Position(4),
        waited: Duration::from_millis(250),
    });
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err.code(), crate::CONSISTENCY_TIMEOUT);
    assert!(err.message().contains("within 250 ms"), "{}", err.message());
}

#[test]
fn a_stopped_runner_is_a_503_naming_it() {
    let err = ApiError::from(ProjectionError::Stopped {
        name: "shop_catalog".into(),
        cause: StopCause::CheckpointAheadOfLog {
            checkpoint: Position(9),
            head: Position(4),
        },
    });
    assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(err.code(), super::READ_MODEL_STOPPED);
    assert!(err.message().contains("shop_catalog"), "{}", err.message());
}

#[test]
fn a_process_manager_is_not_rebuildable_rather_than_unknown() {
    let err = ApiError::from(ProjectionError::NotRebuildable("shop_checkout".into()));
    assert_eq!(err.status(), StatusCode::CONFLICT);
    assert_eq!(err.code(), "not_rebuildable");
}
