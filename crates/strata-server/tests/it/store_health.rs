//! `/health` tells the store's real state: a poisoned store, or one whose data directory
//! was deleted under it, answers 503 with the reason, and appends are refused.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use strata_server::{AppState, app};
use strata_store_embedded::{EmbeddedStore, Options};

use crate::support::{get, post};

fn append_body() -> serde_json::Value {
    json!({"events": [{"type": "Tick", "data": {}}]})
}

#[tokio::test]
async fn a_deleted_data_directory_fails_health_and_refuses_appends() {
    let parent = tempfile::tempdir().unwrap();
    let dir = parent.path().join("data");
    let store = EmbeddedStore::open(&dir, Options::default()).unwrap();
    let app = app(AppState::new(Arc::new(store.clone())));
    assert_eq!(get(&app, "/health").await.status, StatusCode::OK);
    assert_eq!(
        post(&app, "/streams/tick-1", append_body()).await.status,
        StatusCode::OK
    );

    std::fs::remove_dir_all(&dir).unwrap();

    let health = get(&app, "/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        health.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("is gone"),
        "{}",
        health.text()
    );
    let append = post(&app, "/streams/tick-1", append_body()).await;
    assert_eq!(
        append.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        append.text()
    );
    assert_eq!(append.code(), "store_poisoned");
    let health = get(&app, "/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.code(), "store_poisoned");
    let _ = store.close().await;
}

#[tokio::test]
async fn a_poisoned_store_fails_health() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(dir.path(), Options::default()).unwrap();
    let app = app(AppState::new(Arc::new(store.clone())));
    store.inject_write_failure();
    let append = post(&app, "/streams/tick-1", append_body()).await;
    assert_eq!(
        append.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        append.text()
    );
    let health = get(&app, "/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.code(), "store_poisoned");
    let _ = store.close().await;
}
