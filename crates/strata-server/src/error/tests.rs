use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::IntoResponse;
use http_body_util::BodyExt as _;
use serde_json::Value;

use super::ApiError;

/// A log sink the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

fn body(response: axum::response::Response) -> Value {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let bytes = runtime
        .block_on(response.into_body().collect())
        .unwrap()
        .to_bytes();
    serde_json::from_slice(&bytes).unwrap()
}

#[test]
fn a_500_answers_an_error_id_and_logs_the_details_under_it() {
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(log.clone())
        .with_ansi(false)
        .finish();
    let secret = "cannot open /var/lib/strata/read/shop_orders.sqlite: SELECT * FROM orders";
    let response = tracing::subscriber::with_default(subscriber, || {
        ApiError::internal(secret)
            .with_detail("sql", "SELECT 1")
            .into_response()
    });
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let answer = body(response);
    let error = &answer["error"];
    assert_eq!(error["code"], "internal");
    let id = error["error_id"].as_str().expect("an error id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    let shown = answer.to_string();
    assert!(
        !shown.contains("/var/lib") && !shown.contains("SELECT"),
        "{shown}"
    );
    assert!(error["message"].as_str().unwrap().contains(id));

    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line = logged
        .lines()
        .find(|line| line.contains(id))
        .unwrap_or_else(|| panic!("no log line names {id}: {logged}"));
    assert!(line.contains(secret) && line.contains("SELECT 1"), "{line}");
}

#[test]
fn other_errors_keep_their_message() {
    let response = ApiError::not_found("not_found", "no order \"o-1\"").into_response();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let answer = body(response);
    assert_eq!(answer["error"]["message"], "no order \"o-1\"");
    assert!(answer["error"].get("error_id").is_none());
}
