//! Fuzzes `POST /streams/{stream}`: the stream name and the request body go through the
//! whole router (over an in-memory store), which must answer every one of them, and never
//! with a 5xx: a client's mistake is a 4xx.
//!
//! Input: the stream name up to the first newline (percent-encoded into the path), then
//! the body.

#![no_main]

use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use strata_server::{AppState, app};
use strata_store::{EventStore, MemoryStore};
use tower::ServiceExt as _;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime")
    })
}

fuzz_target!(|data: &[u8]| {
    let (name, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b"orders-1"[..], data),
    };
    let mut uri = String::from("/streams/");
    for &b in name {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            uri.push(b as char);
        } else {
            let _ = write!(uri, "%{b:02X}");
        }
    }
    let store = Arc::new(MemoryStore::new());
    let router = app(AppState::new(store.clone()));
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    runtime().block_on(async {
        let response = router
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let answer = response
            .into_body()
            .collect()
            .await
            .expect("the body is readable")
            .to_bytes();
        assert!(
            !status.is_server_error(),
            "{status}: {}",
            String::from_utf8_lossy(&answer)
        );
        let head = store.head().await.expect("the store answers");
        if status == StatusCode::OK {
            let ack: serde_json::Value = serde_json::from_slice(&answer).expect("a JSON ack");
            assert_eq!(ack["position"].as_u64(), Some(head.0), "{ack}");
        } else {
            // A refused append writes nothing.
            assert_eq!(head.0, 0, "{status} after writing");
        }
    });
});
