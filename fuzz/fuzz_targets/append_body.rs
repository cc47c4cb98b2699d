//! Fuzzes `POST /streams/{stream}`: the stream name and the request body go through the
//! whole router (over an in-memory store), which must answer every one of them, and never
//! with a 5xx: a client's mistake is a 4xx.
//!
//! Input: the stream name up to the first newline (percent-encoded into the path), then
//! the body.

#![no_main]

use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use libfuzzer_sys::fuzz_target;
use strata_server::{AppState, app};
use strata_store::{EventStore, MemoryStore};
use tower::ServiceExt as _;

/// Building the router (its OpenAPI document, the console) costs far more than a request,
/// so one app and its store serve many inputs; a fresh pair every `REUSE` keeps memory flat.
const REUSE: u64 = 10_000;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    app: Mutex<(u64, Router, Arc<MemoryStore>)>,
}

fn fresh() -> (Router, Arc<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    (app(AppState::new(store.clone())), store)
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let (router, store) = fresh();
        Fixture {
            runtime,
            app: Mutex::new((0, router, store)),
        }
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
    let fixture = fixture();
    let (router, store) = {
        let mut app = fixture.app.lock().expect("not poisoned");
        app.0 += 1;
        if app.0 % REUSE == 0 {
            (app.1, app.2) = fresh();
        }
        (app.1.clone(), app.2.clone())
    };
    let request = Request::post(uri)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_vec()))
        .expect("a request");
    fixture.runtime.block_on(async {
        let before = store.head().await.expect("the store answers");
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
            let position = ack["position"].as_u64().expect("a position");
            // The last event's position, or (nothing appended) the stream's last one.
            assert!(position <= head.0, "{ack} beyond head {head:?}");
        } else {
            // A refused append writes nothing.
            assert_eq!(head, before, "{status} after writing");
        }
    });
});
