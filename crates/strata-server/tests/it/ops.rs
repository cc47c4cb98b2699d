//! Operations: health, metrics, stats, projections, the OpenAPI document and the console.

use std::sync::Arc;

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use parking_lot::Mutex;
use serde_json::json;
use strata_core::{Position, Timestamp};
use strata_projection::RunnerState;
use strata_server::{
    AppState, ParkedEvent, ProjectionError, ProjectionHost, ProjectionStatus, RunnerStatus, app,
};
use strata_store::MemoryStore;

use crate::support::{append_one, get, memory_app, post, send};

/// A projections host with one projection, `sample`, holding one parked event at 7.
#[derive(Default)]
struct FakeHost {
    calls: Mutex<Vec<String>>,
}

#[async_trait]
impl ProjectionHost for FakeHost {
    async fn status(&self) -> Result<Vec<RunnerStatus>, ProjectionError> {
        Ok(vec![RunnerStatus::Projection(ProjectionStatus {
            name: "sample".into(),
            version: 2,
            generation: 1,
            rebuildable: true,
            checkpoint: Position(5),
            head: Position(8),
            lag_events: 3,
            lag_seconds: 0.5,
            state: RunnerState::Live,
            last_error: None,
            stopped_by: None,
            retrying: false,
            parked: 1,
            rebuild: None,
        })])
    }

    async fn rebuild(&self, name: &str) -> Result<(), ProjectionError> {
        self.known(name)?;
        self.calls.lock().push(format!("rebuild {name}"));
        Ok(())
    }

    async fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError> {
        self.known(name)?;
        Ok(vec![ParkedEvent {
            position: Position(7),
            stream: "order-1".into(),
            event_type: "Placed".into(),
            error: "boom".into(),
            attempts: 3,
            parked_at: Timestamp::parse_rfc3339("2026-01-01T00:00:00Z").unwrap(),
        }])
    }

    async fn retry_parked(&self, name: &str, position: Position) -> Result<(), ProjectionError> {
        self.known(name)?;
        if position.0 != 7 {
            return Err(ProjectionError::NotParked {
                name: name.into(),
                position,
            });
        }
        self.calls
            .lock()
            .push(format!("retry {name} {}", position.0));
        Ok(())
    }

    async fn shutdown(&self) {}
}

impl FakeHost {
    fn known(&self, name: &str) -> Result<(), ProjectionError> {
        if name == "sample" {
            Ok(())
        } else {
            Err(ProjectionError::Unknown(name.into()))
        }
    }
}

fn with_host() -> (Router, Arc<FakeHost>) {
    let host = Arc::new(FakeHost::default());
    let state = AppState::builder(Arc::new(MemoryStore::new()))
        .projections(host.clone())
        .build();
    (app(state), host)
}

#[tokio::test]
async fn health_reports_the_head() {
    let (app, _) = memory_app();
    append_one(&app, "acct-1", "A").await;
    let answer = get(&app, "/health").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json()["status"], "ok");
    assert_eq!(answer.json()["head"], 1);
}

#[tokio::test]
async fn metrics_are_prometheus_text_with_the_named_series() {
    let (app, _) = with_host();
    append_one(&app, "acct-1", "A").await;
    assert_eq!(
        get(&app, "/streams/acct-2").await.status,
        StatusCode::NOT_FOUND
    );
    let answer = get(&app, "/metrics").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = answer.text();
    for series in [
        "strata_appends_total",
        "strata_events_appended_total",
        "strata_command_duration_seconds_bucket",
        "strata_projection_lag_events{projection=\"sample\"} 3",
        "strata_head_position",
        "strata_http_requests_total",
        r#"strata_http_requests_total{method="POST",status="200"}"#,
        r#"strata_http_requests_total{method="GET",status="404"}"#,
    ] {
        assert!(text.contains(series), "{series} missing from:\n{text}");
    }
}

#[tokio::test]
async fn stats_count_appends_and_requests() {
    let (app, _) = memory_app();
    append_one(&app, "acct-1", "A").await;
    get(&app, "/streams/acct-1").await;
    let stats = get(&app, "/stats").await.json();
    assert_eq!(stats["head"], 1);
    assert!(stats["appends"].as_u64().unwrap() >= 1);
    assert!(stats["requests"].as_u64().unwrap() >= 2);
    assert_eq!(stats["latency_buckets"].as_array().unwrap().len(), 12);
}

#[tokio::test]
async fn projections_are_listed_rebuilt_and_retried() {
    let (app, host) = with_host();
    let list = get(&app, "/projections").await;
    assert_eq!(list.status, StatusCode::OK);
    let listed = &list.json()["projections"][0];
    assert_eq!(listed["name"], "sample");
    assert_eq!(listed["kind"], "projection");
    assert_eq!(listed["state"], "live");
    assert_eq!(listed["rebuildable"], true);
    assert_eq!(listed["lag_events"], 3);

    let rebuild = post(&app, "/projections/sample/rebuild", json!({})).await;
    assert_eq!(rebuild.status, StatusCode::ACCEPTED);
    let parked = get(&app, "/projections/sample/parked").await;
    assert_eq!(parked.json()["parked"][0]["position"], 7);
    assert_eq!(
        parked.json()["parked"][0]["parked_at"],
        "2026-01-01T00:00:00Z"
    );
    let retry = post(&app, "/projections/sample/parked/7/retry", json!({})).await;
    assert_eq!(retry.status, StatusCode::OK, "{}", retry.text());
    assert_eq!(*host.calls.lock(), ["rebuild sample", "retry sample 7"]);

    let unknown = post(&app, "/projections/nope/rebuild", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown.code(), "not_found");
    assert_eq!(
        get(&app, "/projections/nope/parked").await.status,
        StatusCode::NOT_FOUND
    );
    let not_parked = post(&app, "/projections/sample/parked/8/retry", json!({})).await;
    assert_eq!(not_parked.status, StatusCode::NOT_FOUND);
    let bad = post(&app, "/projections/sample/parked/seven/retry", json!({})).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.code(), "invalid_input");
}

#[tokio::test]
async fn without_a_projections_host_the_list_is_empty() {
    let (app, _) = memory_app();
    let list = get(&app, "/projections").await;
    assert_eq!(list.status, StatusCode::OK);
    assert_eq!(list.json()["projections"], json!([]));
    let rebuild = post(&app, "/projections/any/rebuild", json!({})).await;
    assert_eq!(rebuild.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_console_is_served_from_the_binary() {
    let (app, _) = memory_app();
    let page = get(&app, "/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().contains("/console/app.js"));
    let script = get(&app, "/console/app.js").await;
    assert_eq!(script.status, StatusCode::OK);
    assert!(
        script.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    assert_eq!(
        get(&app, "/console/secret.txt").await.status,
        StatusCode::NOT_FOUND
    );
}

/// Fills a documented path's parameters with values the fake host and store accept.
fn concrete(path: &str) -> String {
    path.replace("{stream}", "sample-1")
        .replace("{name}", "sample")
        .replace("{position}", "7")
        .replace("{file}", "app.js")
}

#[tokio::test]
async fn the_openapi_document_describes_every_route_and_only_routes() {
    let (app, _) = with_host();
    let doc = get(&app, "/openapi.json").await.json();
    let paths = doc["paths"].as_object().expect("paths");

    // Every route the issue names is documented.
    for (method, path) in [
        ("post", "/streams/{stream}"),
        ("get", "/streams/{stream}"),
        ("get", "/streams"),
        ("get", "/all"),
        ("get", "/subscribe"),
        ("get", "/health"),
        ("get", "/metrics"),
        ("get", "/stats"),
        ("get", "/openapi.json"),
        ("get", "/projections"),
        ("get", "/relays"),
        ("post", "/projections/{name}/rebuild"),
        ("get", "/projections/{name}/parked"),
        ("post", "/projections/{name}/parked/{position}/retry"),
        ("get", "/"),
        ("get", "/console/{file}"),
    ] {
        assert!(
            paths.get(path).and_then(|p| p.get(method)).is_some(),
            "{method} {path} is not documented"
        );
    }

    // Every documented operation is routed: the router answers it with something other
    // than its no-route or wrong-method answer.
    let mut operations = 0;
    for (path, item) in paths {
        for method in ["get", "post", "put", "delete", "patch"] {
            if item.get(method).is_none() {
                continue;
            }
            operations += 1;
            let uri = concrete(path);
            let request = Request::builder()
                .method(Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
                .uri(&uri)
                .body(Body::from("{}"))
                .unwrap();
            if path == "/subscribe" {
                // An endless stream: only its status matters.
                let response = tower::ServiceExt::oneshot(app.clone(), request)
                    .await
                    .unwrap();
                assert_eq!(response.status(), StatusCode::OK);
                continue;
            }
            let answer = send(&app, request).await;
            assert_ne!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}"
            );
            let unrouted =
                answer.status == StatusCode::NOT_FOUND && answer.text().contains("no route for");
            assert!(!unrouted, "{method} {path} is documented but not routed");
        }
    }
    assert!(operations >= 15);
    // Each operation has a 2xx answer described.
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(
                responses.keys().any(|k| k.starts_with('2')),
                "{method} {path} documents no success"
            );
        }
    }
}

#[tokio::test]
async fn every_reference_in_the_openapi_document_resolves() {
    fn refs(value: &serde_json::Value, out: &mut Vec<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, v) in map {
                    match (key.as_str(), v) {
                        ("$ref", serde_json::Value::String(target)) => out.push(target.clone()),
                        _ => refs(v, out),
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let (app, _) = with_host();
    let doc = get(&app, "/openapi.json").await.json();
    let mut found = Vec::new();
    refs(&doc, &mut found);
    assert!(!found.is_empty(), "the document uses references");
    for target in found {
        let pointer = target
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{target} is not a local reference"));
        assert!(
            doc.pointer(pointer).is_some(),
            "{target} does not resolve in the OpenAPI document"
        );
    }
}

/// A relays host with one relay that is retrying.
struct OneRelay;

impl strata_server::RelayHost for OneRelay {
    fn status(&self) -> Vec<strata_server::RelayView> {
        vec![strata_server::RelayView {
            name: "kafka_127_0_0_1_9092".to_owned(),
            broker: "kafka".to_owned(),
            target: "kafka://127.0.0.1:9092/strata-events".to_owned(),
            checkpoint: 40,
            lag_events: 2,
            state: "retrying".to_owned(),
            last_error: Some("kafka at kafka://127.0.0.1:9092/strata-events: gone".to_owned()),
            published: 40,
            lease: None,
        }]
    }
}

#[tokio::test]
async fn relays_are_listed_with_their_lag_and_error_and_measured() {
    let (bare, _) = memory_app();
    assert_eq!(get(&bare, "/relays").await.json(), json!({ "relays": [] }));

    let state = AppState::builder(Arc::new(MemoryStore::new()))
        .relays(Arc::new(OneRelay))
        .build();
    let app = app(state);
    let list = get(&app, "/relays").await;
    assert_eq!(list.status, StatusCode::OK);
    let relay = &list.json()["relays"][0];
    assert_eq!(relay["name"], "kafka_127_0_0_1_9092");
    assert_eq!(relay["state"], "retrying");
    assert_eq!(relay["lag_events"], 2);
    assert_eq!(relay["checkpoint"], 40);
    assert!(relay["last_error"].as_str().unwrap().contains("gone"));

    let text = get(&app, "/metrics").await.text();
    assert!(
        text.contains(r#"strata_relay_lag_events{relay="kafka_127_0_0_1_9092"} 2"#),
        "{text}"
    );
    assert!(
        text.contains(r#"strata_relay_up{relay="kafka_127_0_0_1_9092"} 0"#),
        "{text}"
    );
    assert!(text.contains("# HELP strata_relay_lag_events"), "{text}");
}
