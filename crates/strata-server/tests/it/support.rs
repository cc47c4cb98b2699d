//! Helpers: an app over a fresh store, requests, and JSON answers.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::Value;
use strata_server::{AppState, app};
use strata_store::MemoryStore;
use tower::ServiceExt as _;

/// An app over an empty in-memory store.
pub(crate) fn memory_app() -> (Router, AppState) {
    let state = AppState::new(Arc::new(MemoryStore::new()));
    (app(state.clone()), state)
}

/// An answer: status, headers and body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: axum::http::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Answer {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "answer is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    /// The error code of an error answer.
    pub(crate) fn code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("no error code in {}", String::from_utf8_lossy(&self.body)))
            .to_owned()
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub(crate) async fn send(app: &Router, request: Request<Body>) -> Answer {
    let response = app
        .clone()
        .oneshot(request)
        .await
        .expect("the router is infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the body is readable")
        .to_bytes()
        .to_vec();
    Answer {
        status,
        headers,
        body,
    }
}

pub(crate) async fn get(app: &Router, uri: &str) -> Answer {
    send(app, Request::get(uri).body(Body::empty()).unwrap()).await
}

pub(crate) async fn post_raw(app: &Router, uri: &str, body: impl Into<Body>) -> Answer {
    send(
        app,
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(body.into())
            .unwrap(),
    )
    .await
}

pub(crate) async fn post(app: &Router, uri: &str, body: Value) -> Answer {
    post_raw(app, uri, body.to_string()).await
}

/// Appends one event of `event_type` to `stream`, expecting success.
pub(crate) async fn append_one(app: &Router, stream: &str, event_type: &str) -> Value {
    let answer = post(
        app,
        &format!("/streams/{stream}"),
        serde_json::json!({"events": [{"type": event_type, "data": {"n": 1}}]}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    answer.json()
}
