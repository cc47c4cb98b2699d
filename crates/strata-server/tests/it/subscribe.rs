//! `GET /subscribe`: history then live events as server-sent events, resumable with
//! `Last-Event-ID`.

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::Value;
use tower::ServiceExt as _;

use crate::support::{append_one, memory_app};

/// One server-sent event: its id and its data.
#[derive(Debug)]
struct SseEvent {
    id: Option<String>,
    data: Value,
}

/// Opens a subscription and returns its body.
async fn open(app: &Router, uri: &str, last_event_id: Option<&str>) -> (StatusCode, Body) {
    let mut request = Request::get(uri);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = app
        .clone()
        .oneshot(request.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    if status == StatusCode::OK {
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
    }
    (status, response.into_body())
}

/// Reads `n` events from a subscription body, failing after 5 s.
async fn take(body: &mut Body, buffer: &mut String, n: usize) -> Vec<SseEvent> {
    let mut events = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), async {
        while events.len() < n {
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let mut id = None;
                let mut data = None;
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        id = Some(v.trim().to_owned());
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data = Some(serde_json::from_str(v.trim()).unwrap());
                    }
                }
                if let Some(data) = data {
                    events.push(SseEvent { id, data });
                }
            }
            if events.len() >= n {
                break;
            }
            let frame = body.frame().await.expect("the stream goes on").unwrap();
            if let Ok(bytes) = frame.into_data() {
                buffer.push_str(std::str::from_utf8(&bytes).unwrap());
            }
        }
    })
    .await
    .expect("events arrive within 5 s");
    events
}

#[tokio::test]
async fn history_then_live_events_with_positions_as_ids() {
    let (app, _) = memory_app();
    append_one(&app, "order-1", "Placed").await;
    append_one(&app, "order-2", "Placed").await;
    append_one(&app, "order-1", "Shipped").await;

    let (status, mut body) = open(&app, "/subscribe?from=2", None).await;
    assert_eq!(status, StatusCode::OK);
    let mut buffer = String::new();
    let history = take(&mut body, &mut buffer, 2).await;
    assert_eq!(history[0].id.as_deref(), Some("2"));
    assert_eq!(history[0].data["stream"], "order-2");
    assert_eq!(history[0].data["position"], 2);
    assert_eq!(history[1].id.as_deref(), Some("3"));
    assert_eq!(history[1].data["type"], "Shipped");

    append_one(&app, "user-7", "Joined").await;
    let live = take(&mut body, &mut buffer, 1).await;
    assert_eq!(live[0].id.as_deref(), Some("4"));
    assert_eq!(live[0].data["stream"], "user-7");
    assert_eq!(live[0].data["data"], serde_json::json!({"n": 1}));
}

#[tokio::test]
async fn last_event_id_resumes_after_that_position() {
    let (app, _) = memory_app();
    for _ in 0..5 {
        append_one(&app, "acct-1", "Deposited").await;
    }
    // Last-Event-ID wins over from: the client resumes where it stopped.
    let (_, mut body) = open(&app, "/subscribe?from=1", Some("3")).await;
    let mut buffer = String::new();
    let events = take(&mut body, &mut buffer, 2).await;
    assert_eq!(events[0].id.as_deref(), Some("4"));
    assert_eq!(events[1].id.as_deref(), Some("5"));
}

#[tokio::test]
async fn subscriptions_filter_by_category_and_type() {
    let (app, _) = memory_app();
    append_one(&app, "order-1", "Placed").await;
    append_one(&app, "user-1", "Joined").await;
    append_one(&app, "order-1", "Shipped").await;
    let (_, mut body) = open(&app, "/subscribe?category=order&type=Shipped", None).await;
    let mut buffer = String::new();
    let events = take(&mut body, &mut buffer, 1).await;
    assert_eq!(events[0].id.as_deref(), Some("3"));
}

#[tokio::test]
async fn bad_subscription_parameters_are_400() {
    let (app, _) = memory_app();
    for (uri, last) in [
        ("/subscribe?from=abc", None),
        ("/subscribe?from=-2", None),
        ("/subscribe?bogus=1", None),
        ("/subscribe", Some("not-a-number")),
        ("/subscribe", Some("-1")),
    ] {
        let (status, body) = open(&app, uri, last).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri} {last:?}");
        let bytes = body.collect().await.unwrap().to_bytes();
        let json: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(json["error"]["code"], "invalid_input");
    }
}

#[tokio::test]
async fn shutdown_ends_open_subscriptions() {
    let (app, state) = memory_app();
    append_one(&app, "acct-1", "A").await;
    let (_, mut body) = open(&app, "/subscribe", None).await;
    let mut buffer = String::new();
    take(&mut body, &mut buffer, 1).await;
    state.begin_shutdown();
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match body.frame().await {
                None => break,
                Some(Ok(_)) => continue,
                Some(Err(err)) => panic!("{err}"),
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the subscription ended after shutdown began");
}

#[tokio::test]
async fn subscriptions_outlive_the_request_timeout() {
    let state =
        strata_server::AppState::builder(std::sync::Arc::new(strata_store::MemoryStore::new()))
            .limits(strata_server::Limits {
                request_timeout: Duration::from_millis(100),
                ..strata_server::Limits::default()
            })
            .build();
    let app = strata_server::app(state);
    let (_, mut body) = open(&app, "/subscribe", None).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    append_one(&app, "late-1", "Arrived").await;
    let mut buffer = String::new();
    let events = take(&mut body, &mut buffer, 1).await;
    assert_eq!(events[0].data["stream"], "late-1");
}
