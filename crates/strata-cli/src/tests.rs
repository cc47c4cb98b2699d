//! Unit tests of the commands' logic against the in-memory store: line parsing, the
//! result and error lines, paging, the tail loop, import grouping.

use std::future::Future;
use std::io::{Cursor, Write};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::{Value, json};
use strata_core::{
    CoreError, EventId, EventType, ExpectedVersion, NewEvent, Position, StreamName, Version,
};
use strata_store::{AppendResult, Direction, EventStore, MemoryStore, ReadFilter, StoreError};

use crate::append::{self, ErrorBody, INVALID_INPUT, Job, TOO_LARGE};
use crate::import::{self, ImportTarget};
use crate::lines::{self, Line, LineParser};
use crate::read::{LineForm, OnDamage};
use crate::{read, tail, verify};

const READ: LineForm = LineForm::Read;
const STOP: OnDamage = OnDamage::Stop;
const MAX_EVENT: usize = strata_store::DEFAULT_MAX_EVENT_BYTES;

fn stream(name: &str) -> StreamName {
    StreamName::new(name).unwrap()
}

fn event(event_type: &str, data: Value) -> NewEvent {
    NewEvent::json(EventType::new(event_type).unwrap(), &data)
}

fn json_lines(out: &[u8]) -> Vec<Value> {
    std::str::from_utf8(out)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn refused(job: Result<Job, ErrorBody>) -> ErrorBody {
    match job {
        Err(body) => body,
        Ok(job) => panic!("expected a refusal, got {job:?}"),
    }
}

async fn run_append(store: &MemoryStore, input: &str) -> (append::Summary, Vec<Value>) {
    let mut out = Vec::new();
    let summary = append::run(store, Box::new(Cursor::new(input.to_owned())), &mut out)
        .await
        .unwrap();
    (summary, json_lines(&out))
}

// --- append line parsing ---

#[test]
fn an_append_line_keeps_the_payload_bytes_as_written() {
    let id = EventId::new();
    let line = format!(
        r#"{{"stream": "order-1", "expected_version": 3, "events": [{{"type": "OrderPlaced", "data": {{"total":  1200}}, "metadata": {{"actor": "ann"}}, "id": "{id}"}}, {{"type": "LineAdded", "data": [1, 2]}}]}}"#
    );
    let Ok(Job::Append {
        stream: name,
        expected,
        events,
    }) = append::parse_line(&mut Default::default(), 1, line.clone().into_bytes())
    else {
        panic!("the line should parse");
    };
    assert_eq!(name, stream("order-1"));
    assert_eq!(expected, ExpectedVersion::Exact(3));
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].id, id);
    assert_eq!(events[0].event_type.as_str(), "OrderPlaced");
    assert_eq!(&events[0].data[..], br#"{"total":  1200}"#);
    assert_eq!(&events[0].metadata[..], br#"{"actor": "ann"}"#);
    assert_eq!(&events[1].data[..], b"[1, 2]");
    assert_eq!(&events[1].metadata[..], b"{}");
    assert_ne!(events[1].id, id);
}

#[test]
fn expected_version_defaults_to_any_and_accepts_its_words() {
    for (text, expected) in [
        ("", ExpectedVersion::Any),
        (r#""expected_version": "any","#, ExpectedVersion::Any),
        (
            r#""expected_version": "no_stream","#,
            ExpectedVersion::NoStream,
        ),
        (r#""expected_version": "exists","#, ExpectedVersion::Exists),
        (r#""expected_version": 0,"#, ExpectedVersion::Exact(0)),
    ] {
        let line =
            format!(r#"{{{text} "stream": "a-1", "events": [{{"type": "T", "data": null}}]}}"#);
        match append::parse_line(&mut Default::default(), 1, line.clone().into_bytes()) {
            Ok(Job::Append { expected: got, .. }) => assert_eq!(got, expected, "{line}"),
            other => panic!("{line}: {other:?}"),
        }
    }
}

#[test]
fn bad_append_lines_are_refused_with_a_message_naming_the_line() {
    let cases: &[(&[u8], &str)] = &[
        (b"not json", "invalid JSON on line 7"),
        (b"{\"stream\": \"a-1\"}", "missing field `events`"),
        (br#"{"events": []}"#, "missing field `stream`"),
        (br#"{"stream": "", "events": []}"#, "invalid stream name"),
        (
            b"{\"stream\": \"a\\u0001\", \"events\": []}",
            "must not contain control characters",
        ),
        (
            br#"{"stream": "a-1", "expected_version": -1, "events": []}"#,
            "must not be negative",
        ),
        (
            br#"{"stream": "a-1", "expected_version": "maybe", "events": []}"#,
            "invalid expected version",
        ),
        (
            br#"{"stream": "a-1", "events": [{"type": "T", "data": 1, "id": "nope"}]}"#,
            "line 7, event 0: invalid event id",
        ),
        (
            br#"{"stream": "a-1", "events": [{"type": "T", "data": 1, "metadata": [1]}]}"#,
            "must be a JSON object, not an array",
        ),
        (
            br#"{"stream": "a-1", "events": [{"type": "", "data": 1}]}"#,
            "invalid event type",
        ),
        (
            br#"{"stream": "a-1", "events": [{"type": "T"}]}"#,
            "missing field `data`",
        ),
        (
            br#"{"stream": "a-1", "expected": 1, "events": []}"#,
            "unknown field `expected`",
        ),
        (b"{\"stream\": \"a-1\xff\"}", "line 7 is not valid UTF-8"),
        (b"{\"stream\": \"a-1\", \"events\": [", "EOF while parsing"),
        (b"[1, 2]", "invalid type"),
    ];
    for (line, needle) in cases {
        let body = refused(append::parse_line(
            &mut Default::default(),
            7,
            line.to_vec(),
        ));
        assert_eq!(body.code, INVALID_INPUT);
        assert!(
            body.message.contains(needle),
            "{:?}: {:?} should contain {needle:?}",
            String::from_utf8_lossy(line),
            body.message
        );
        assert!(body.message.contains("line 7"), "{}", body.message);
    }
}

#[test]
fn json_errors_name_the_input_line_not_the_json_line() {
    let err = serde_json::from_str::<Value>("{").unwrap_err();
    let message = lines::json_error(12, &err);
    assert!(
        message.starts_with("invalid JSON on line 12, column 1: "),
        "{message}"
    );
    assert!(!message.contains("at line 1"), "{message}");
}

// --- result and error lines ---

#[test]
fn a_conflict_reports_expected_and_actual_versions() {
    let err = StoreError::WrongExpectedVersion {
        stream: stream("order-1"),
        expected: ExpectedVersion::NoStream,
        actual: Version(2),
    };
    let mut out = Vec::new();
    append::Reply::Failed(ErrorBody::from_store(&err))
        .write_to(&mut out)
        .unwrap();
    let line = json_lines(&out).remove(0);
    assert_eq!(line["error"]["code"], "wrong_expected_version");
    assert_eq!(line["error"]["expected"], "no_stream");
    assert_eq!(line["error"]["actual"], 2);
    assert!(
        line["error"]["message"]
            .as_str()
            .unwrap()
            .contains("order-1")
    );
}

#[test]
fn other_errors_have_only_code_and_message() {
    let body = ErrorBody::from_store(&StoreError::Closed);
    let text = serde_json::to_value(&body).unwrap();
    assert_eq!(
        text,
        json!({"code": "store_closed", "message": "the event store is closed"})
    );
}

#[test]
fn the_commands_codes_are_the_stores_codes() {
    assert_eq!(
        StoreError::Invalid(CoreError::InvalidMetadata(String::new())).code(),
        INVALID_INPUT
    );
    let too_large = StoreError::EventTooLarge {
        stream: stream("a"),
        index: 0,
        size: 2,
        limit: 1,
    };
    assert_eq!(too_large.code(), TOO_LARGE);
}

#[test]
fn an_ack_has_stream_versions_and_position() {
    let mut out = Vec::new();
    append::Reply::Done {
        stream: stream("order-1"),
        result: AppendResult {
            first_version: Version(1),
            last_version: Version(2),
            first_position: Position(4),
            position: Position(5),
            recorded_at: strata_core::Timestamp::from_unix_nanos(1),
        },
    }
    .write_to(&mut out)
    .unwrap();
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "{\"stream\":\"order-1\",\"first_version\":1,\"last_version\":2,\"position\":5}\n"
    );
}

// --- line reading ---

struct Collect;

impl LineParser for Collect {
    type Item = String;
    fn line(
        &mut self,
        number: u64,
        line: Line,
        out: &mut Vec<String>,
    ) -> std::ops::ControlFlow<()> {
        out.push(match line {
            Line::Text(text) => format!("{number}:{}", String::from_utf8_lossy(&text)),
            Line::TooLong { bytes, limit } => format!("{number}: too long {bytes}>{limit}"),
        });
        std::ops::ControlFlow::Continue(())
    }
}

#[test]
fn lines_are_split_on_newlines_with_crlf_and_a_last_line_without_newline() {
    let items = lines::read_all_lines(b"a\r\n\nbcdefghijkl\nlast", Collect, 1024);
    assert_eq!(items, ["1:a", "2:", "3:bcdefghijkl", "4:last"]);
    assert!(lines::read_all_lines(b"", Collect, 1024).is_empty());
}

#[test]
fn an_overlong_line_is_skipped_and_reported_and_reading_goes_on() {
    let items = lines::read_all_lines(b"short\n0123456789abcdef\nok\n", Collect, 8);
    assert_eq!(items, ["1:short", "2: too long 16>8", "3:ok"]);
}

// --- append against a store ---

#[tokio::test]
async fn append_prints_one_line_per_input_line_in_order() {
    let store = MemoryStore::new();
    let input = [
        r#"{"stream": "order-1", "expected_version": "no_stream", "events": [{"type": "A", "data": {}}, {"type": "B", "data": {}}]}"#,
        "",
        "   ",
        r#"{"stream": "order-1", "expected_version": 1, "events": [{"type": "C", "data": {}}]}"#,
        "not json",
        r#"{"stream": "order-2", "events": [{"type": "C", "data": {}}]}"#,
        r#"{"stream": "order-1", "events": []}"#,
    ]
    .join("\n");
    let (summary, out) = run_append(&store, &input).await;
    assert_eq!(out.len(), 5);
    assert_eq!(
        out[0],
        json!({"stream": "order-1", "first_version": 1, "last_version": 2, "position": 2})
    );
    assert_eq!(out[1]["error"]["code"], "wrong_expected_version");
    assert_eq!(out[1]["error"]["expected"], 1);
    assert_eq!(out[1]["error"]["actual"], 2);
    assert_eq!(out[2]["error"]["code"], "invalid_input");
    assert!(
        out[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 5")
    );
    assert_eq!(
        out[3],
        json!({"stream": "order-2", "first_version": 1, "last_version": 1, "position": 3})
    );
    assert_eq!(out[4]["error"]["code"], "invalid_input");
    assert_eq!(
        summary,
        append::Summary {
            appended: 2,
            failed: 3
        }
    );
}

#[tokio::test]
async fn an_oversize_event_is_refused_as_too_large() {
    let store = MemoryStore::with_max_event_bytes(64);
    let big = "x".repeat(100);
    let input = format!(r#"{{"stream": "a-1", "events": [{{"type": "T", "data": "{big}"}}]}}"#);
    let (_, out) = run_append(&store, &input).await;
    assert_eq!(out[0]["error"]["code"], "too_large");
    assert_eq!(store.head().await.unwrap(), Position(0));
}

#[tokio::test]
async fn many_appends_keep_their_input_order() {
    let store = MemoryStore::new();
    let input: String = (0..5000)
        .map(|i| {
            format!(
                "{{\"stream\": \"s-{}\", \"events\": [{{\"type\": \"T\", \"data\": {i}}}]}}\n",
                i % 7
            )
        })
        .collect();
    let (summary, out) = run_append(&store, &input).await;
    assert_eq!(summary.appended, 5000);
    for (i, line) in out.iter().enumerate() {
        assert_eq!(line["position"], i as u64 + 1);
        assert_eq!(line["stream"], format!("s-{}", i % 7));
    }
}

// --- reads ---

async fn store_with(streams: &[(&str, usize)]) -> MemoryStore {
    let store = MemoryStore::new();
    for (name, count) in streams {
        for i in 0..*count {
            store
                .append(
                    &stream(name),
                    ExpectedVersion::Any,
                    vec![event(if i % 2 == 0 { "Even" } else { "Odd" }, json!(i))],
                )
                .await
                .unwrap();
        }
    }
    store
}

fn field(lines: &[Value], name: &str) -> Vec<u64> {
    lines.iter().map(|l| l[name].as_u64().unwrap()).collect()
}

#[tokio::test]
async fn read_pages_through_a_long_stream() {
    let store = store_with(&[("a-1", 2 * read::PAGE + 5), ("b-1", 3)]).await;
    let mut out = Vec::new();
    let printed = read::stream(
        &store,
        &stream("a-1"),
        None,
        Direction::Forward,
        None,
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(printed, 2 * read::PAGE as u64 + 5);
    let versions = field(&json_lines(&out), "version");
    assert_eq!(
        versions,
        (1..=2 * read::PAGE as u64 + 5).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn read_backward_from_and_limit() {
    let store = store_with(&[("a-1", read::PAGE + 10)]).await;
    let mut out = Vec::new();
    read::stream(
        &store,
        &stream("a-1"),
        None,
        Direction::Backward,
        Some(1),
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(
        field(&json_lines(&out), "version"),
        [read::PAGE as u64 + 10]
    );

    let mut out = Vec::new();
    read::stream(
        &store,
        &stream("a-1"),
        Some(5),
        Direction::Backward,
        None,
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(field(&json_lines(&out), "version"), [5, 4, 3, 2, 1]);

    let mut out = Vec::new();
    read::stream(
        &store,
        &stream("a-1"),
        Some(999),
        Direction::Forward,
        Some(1005),
        &mut out,
    )
    .await
    .unwrap();
    let versions = field(&json_lines(&out), "version");
    assert_eq!(versions, (999..=read::PAGE as u64 + 10).collect::<Vec<_>>());
}

#[tokio::test]
async fn reading_a_missing_stream_prints_nothing() {
    let store = store_with(&[("a-1", 2)]).await;
    let mut out = Vec::new();
    let printed = read::stream(
        &store,
        &stream("nope"),
        None,
        Direction::Forward,
        None,
        &mut out,
    )
    .await
    .unwrap();
    assert_eq!(printed, 0);
    assert!(out.is_empty());
}

#[tokio::test]
async fn read_all_filters_pages_and_limits() {
    let store = store_with(&[("a-1", 1500), ("b-1", 600), ("a-2", 3)]).await;
    let mut out = Vec::new();
    let filter = ReadFilter::all().category("b");
    read::all(&store, 1, None, &filter, READ, STOP, &mut out)
        .await
        .unwrap();
    let positions = field(&json_lines(&out), "position");
    assert_eq!(positions, (1501..=2100).collect::<Vec<_>>());

    let mut out = Vec::new();
    let filter = ReadFilter::all().event_type("Odd").category("a");
    read::all(&store, 1400, Some(60), &filter, READ, STOP, &mut out)
        .await
        .unwrap();
    let lines = json_lines(&out);
    assert_eq!(lines.len(), 52);
    assert!(lines.iter().all(|l| l["type"] == "Odd"));
    assert_eq!(lines.last().unwrap()["stream"], "a-2");

    let mut out = Vec::new();
    read::all(&store, 0, None, &ReadFilter::all(), READ, STOP, &mut out)
        .await
        .unwrap();
    assert_eq!(json_lines(&out).len(), 2103);
}

#[tokio::test]
async fn read_all_stops_at_the_head_seen_when_it_started() {
    let store = store_with(&[("a-1", 3)]).await;
    let mut out = Vec::new();
    read::all(&store, 10, None, &ReadFilter::all(), READ, STOP, &mut out)
        .await
        .unwrap();
    assert!(out.is_empty());
}

// --- tail ---

/// An output shared with the test, to watch what the tail printed so far. Every write
/// wakes the tasks waiting for lines.
#[derive(Clone, Default)]
struct SharedOut(Arc<(Mutex<Vec<u8>>, tokio::sync::Notify)>);

impl Write for SharedOut {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.0.lock().extend_from_slice(buf);
        self.0.1.notify_waiters();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl SharedOut {
    fn lines(&self) -> Vec<Value> {
        json_lines(&self.0.0.lock())
    }

    /// Completes once `count` lines have been written.
    fn until_lines(&self, count: usize) -> impl Future<Output = ()> + use<> {
        let out = self.clone();
        async move {
            loop {
                let written = out.0.1.notified();
                let mut written = std::pin::pin!(written);
                // Registered before the check, so a write between the two is not missed.
                written.as_mut().enable();
                if out.lines().len() >= count {
                    return;
                }
                written.await;
            }
        }
    }
}

#[tokio::test]
async fn tail_prints_history_from_a_position_then_live_events() {
    let store = store_with(&[("a-1", 3), ("b-1", 2)]).await;
    let out = SharedOut::default();
    let writer = store.clone();
    let history_printed = out.until_lines(1);
    let live = tokio::spawn(async move {
        // The history is out: what comes now reaches the tail live.
        history_printed.await;
        for i in 0..3 {
            writer
                .append(
                    &stream("b-2"),
                    ExpectedVersion::Any,
                    vec![event("Live", json!(i))],
                )
                .await
                .unwrap();
        }
    });
    let filter = ReadFilter::all().category("b");
    let printed = tokio::time::timeout(
        Duration::from_secs(10),
        tail::run(&store, 5, filter, &mut out.clone(), out.until_lines(4)),
    )
    .await
    .expect("the tail should stop when told")
    .unwrap();
    live.await.unwrap();
    assert!(printed >= 4);
    let lines = out.lines();
    assert_eq!(lines[0]["position"], 5);
    assert_eq!(lines[1]["type"], "Live");
    assert_eq!(field(&lines, "position")[..4], [5, 6, 7, 8]);
}

#[tokio::test]
async fn tail_stops_on_the_signal_while_waiting() {
    let store = MemoryStore::new();
    let mut out = Vec::new();
    // Pending when first polled, ready when polled again: the signal comes while the
    // tail waits for an event that never comes.
    let signal = tokio::task::yield_now();
    let printed = tokio::time::timeout(
        Duration::from_secs(10),
        tail::run(&store, 0, ReadFilter::all(), &mut out, signal),
    )
    .await
    .expect("the tail should stop when told")
    .unwrap();
    assert_eq!(printed, 0);
    assert!(out.is_empty());
}

// --- import ---

impl ImportTarget for MemoryStore {
    async fn submit(&self, appends: Vec<strata_store_embedded::BatchAppend>) -> import::Acks {
        let mut outcomes = Vec::with_capacity(appends.len());
        for append in appends {
            assert_eq!(
                append.recorded_at.as_ref().map(Vec::len),
                Some(append.events.len())
            );
            outcomes.push(
                self.append(&append.stream, append.expected, append.events)
                    .await,
            );
        }
        Box::pin(std::future::ready(outcomes))
    }

    fn position_of_id(
        &self,
        id: strata_core::EventId,
    ) -> Result<Option<strata_core::Position>, strata_store::StoreError> {
        Ok(MemoryStore::position_of_id(self, id))
    }
}

async fn export(store: &MemoryStore) -> Vec<u8> {
    let mut out = Vec::new();
    read::all(
        store,
        1,
        None,
        &ReadFilter::all(),
        LineForm::Export,
        STOP,
        &mut out,
    )
    .await
    .unwrap();
    out
}

/// An export line without its recording time, which the in-memory store sets itself.
fn without_time(lines: &[u8]) -> Vec<Value> {
    let mut lines = json_lines(lines);
    for line in &mut lines {
        line.as_object_mut().unwrap().remove("recorded_at");
    }
    lines
}

#[tokio::test]
async fn import_of_an_export_keeps_streams_versions_ids_and_payloads() {
    let source = MemoryStore::new();
    for i in 0..50u64 {
        let name = stream(&format!("s-{}", i % 3));
        let events = (0..=(i % 4))
            .map(|j| {
                event("T", json!({"i": i, "j": j}))
                    .with_metadata(json!({"actor": "ann"}).as_object().unwrap())
            })
            .collect();
        source
            .append(&name, ExpectedVersion::Any, events)
            .await
            .unwrap();
    }
    let exported = export(&source).await;
    let target = MemoryStore::new();
    let summary = import::run(&target, Box::new(Cursor::new(exported.clone())), MAX_EVENT)
        .await
        .unwrap();
    assert_eq!(summary.imported, source.head().await.unwrap().0);
    assert_eq!(summary.appends, 50);
    assert_eq!(
        without_time(&export(&target).await),
        without_time(&exported)
    );
}

#[tokio::test]
async fn import_splits_long_runs_of_one_stream() {
    let source = store_with(&[("a-1", 2500)]).await;
    let target = MemoryStore::new();
    let summary = import::run(
        &target,
        Box::new(Cursor::new(export(&source).await)),
        MAX_EVENT,
    )
    .await
    .unwrap();
    assert_eq!(summary.imported, 2500);
    assert_eq!(summary.appends, 3);
    assert_eq!(
        target.stream_version(&stream("a-1")).await.unwrap(),
        Version(2500)
    );
}

#[tokio::test]
async fn a_bad_import_line_stops_the_import_naming_the_line() {
    let source = store_with(&[("a-1", 3)]).await;
    let mut input = export(&source).await;
    input.extend_from_slice(b"{\"stream\": \"a-1\"}\n");
    input.extend_from_slice(&export(&source).await);
    let target = MemoryStore::new();
    let err = import::run(&target, Box::new(Cursor::new(input)), MAX_EVENT)
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("line 4"), "{message}");
    assert!(message.contains("imported 3 events"), "{message}");
    assert!(message.contains("nothing after it written"), "{message}");
    assert_eq!(target.head().await.unwrap(), Position(3));
}

#[tokio::test]
async fn an_import_into_a_store_holding_the_stream_fails_on_the_conflict() {
    let source = store_with(&[("a-1", 2)]).await;
    let target = store_with(&[("b-1", 1), ("a-1", 1)]).await;
    let mut input = export(&source).await;
    // Drop the first event: the import starts at version 2, expecting version 1.
    let first_end = input.iter().position(|&b| b == b'\n').unwrap() + 1;
    input.drain(..first_end);
    let summary = import::run(&target, Box::new(Cursor::new(input)), MAX_EVENT)
        .await
        .unwrap();
    assert_eq!(summary.imported, 1);

    let err = import::run(
        &target,
        Box::new(Cursor::new(export(&source).await)),
        MAX_EVENT,
    )
    .await
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("line 1"), "{message}");
    assert!(
        message.contains("already holds another event at version 1"),
        "{message}"
    );
}

/// An export of `count` events over `streams` streams, one line per event, in position
/// order (streams interleaved, so that many appends are in flight at once).
async fn interleaved_export(count: usize, streams: usize) -> Vec<u8> {
    let source = MemoryStore::new();
    for i in 0..count {
        source
            .append(
                &stream(&format!("s-{}", i % streams)),
                ExpectedVersion::Any,
                vec![event("T", json!(i))],
            )
            .await
            .unwrap();
    }
    export(&source).await
}

/// The stream and id of every event of `store`, in position order.
async fn log_of(store: &MemoryStore) -> Vec<(String, String)> {
    json_lines(&export(store).await)
        .iter()
        .map(|l| (l["stream"].to_string(), l["id"].to_string()))
        .collect()
}

fn lines_of(bytes: &[u8]) -> Vec<&[u8]> {
    bytes.split_inclusive(|&b| b == b'\n').collect()
}

#[tokio::test]
async fn an_import_stops_at_a_bad_line_with_nothing_after_it_written() {
    let exported = interleaved_export(1000, 50).await;
    let mut lines = lines_of(&exported);
    lines[499] = b"{\"stream\": \"s-9\", \"oops\": true}\n";
    let target = MemoryStore::new();
    let err = import::run(&target, Box::new(Cursor::new(lines.concat())), MAX_EVENT)
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("import stopped at line 500, nothing after it written"),
        "{message}"
    );
    assert!(
        message
            .contains("imported 499 events in 499 appends, skipped 0 already present, refused 1"),
        "{message}"
    );
    assert_eq!(target.head().await.unwrap(), Position(499));
}

#[tokio::test]
async fn an_import_stops_at_a_refused_event_with_nothing_after_it_written() {
    // 500 streams: line 500 is the first event of the last one, and lines 501 to 1000
    // are the second events of all of them.
    let exported = interleaved_export(1000, 500).await;
    // The target already holds another first event of the stream of line 500.
    let target = MemoryStore::new();
    let taken = json_lines(lines_of(&exported)[499])[0]["stream"]
        .as_str()
        .unwrap()
        .to_owned();
    target
        .append(
            &stream(&taken),
            ExpectedVersion::Any,
            vec![event("T", json!(0))],
        )
        .await
        .unwrap();
    // Line 500 is that stream's first event only if no earlier line is of that stream.
    let earlier = lines_of(&exported)[..499]
        .iter()
        .any(|l| json_lines(l)[0]["stream"] == taken);
    assert!(!earlier, "the fixture should give line 500 a new stream");

    let err = import::run(&target, Box::new(Cursor::new(exported.clone())), MAX_EVENT)
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("import stopped at line 500"), "{message}");
    assert!(message.contains("imported 499 events"), "{message}");
    assert!(
        message.contains("already holds another event at version 1"),
        "{message}"
    );
    assert_eq!(target.head().await.unwrap(), Position(500));
}

/// Event ids are unique across the log: a line whose id the store holds in another
/// stream, or an earlier line of the input already carries, stops the import at that
/// line with everything before it written and nothing after it.
#[tokio::test]
async fn an_import_stops_at_a_reused_event_id_with_nothing_after_it_written() {
    let exported = interleaved_export(1000, 50).await;
    let id_of = |line: &[u8]| json_lines(line)[0]["id"].as_str().unwrap().to_owned();
    let with_id = |line: &[u8], id: &str| {
        let mut value = json_lines(line).remove(0);
        value["id"] = json!(id);
        let mut text = serde_json::to_vec(&value).unwrap();
        text.push(b'\n');
        text
    };
    let lines: Vec<Vec<u8>> = lines_of(&exported).iter().map(|l| l.to_vec()).collect();

    // The store holds line 500's id in a stream the input does not name.
    let target = MemoryStore::new();
    let taken: strata_core::EventId = id_of(&lines[499]).parse().unwrap();
    target
        .append(
            &stream("elsewhere-1"),
            ExpectedVersion::Any,
            vec![event("T", json!(0)).with_id(taken)],
        )
        .await
        .unwrap();
    let err = import::run(&target, Box::new(Cursor::new(exported.clone())), MAX_EVENT)
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("import stopped at line 500, nothing after it written"),
        "{message}"
    );
    assert!(
        message.contains("is already the id of the stored event at position 1"),
        "{message}"
    );
    assert!(message.contains("imported 499 events"), "{message}");
    assert_eq!(target.head().await.unwrap(), Position(500));

    // Line 700 carries line 300's id.
    let mut reused = lines.clone();
    reused[699] = with_id(&lines[699], &id_of(&lines[299]));
    let target = MemoryStore::new();
    let err = import::run(&target, Box::new(Cursor::new(reused.concat())), MAX_EVENT)
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("import stopped at line 700, nothing after it written"),
        "{message}"
    );
    assert!(
        message.contains("is already the id of line 300"),
        "{message}"
    );
    assert!(message.contains("imported 699 events"), "{message}");
    assert_eq!(target.head().await.unwrap(), Position(699));
}

#[tokio::test]
async fn an_import_rerun_after_a_fix_keeps_the_order_and_counts_exactly() {
    let exported = interleaved_export(1000, 50).await;
    let good = lines_of(&exported);
    let mut bad = good.clone();
    bad[499] = b"not json\n";
    let target = MemoryStore::new();
    import::run(&target, Box::new(Cursor::new(bad.concat())), MAX_EVENT)
        .await
        .unwrap_err();
    assert_eq!(target.head().await.unwrap(), Position(499));

    // The fixed input: the first 499 lines are there already, the rest follows on.
    let summary = import::run(&target, Box::new(Cursor::new(exported.clone())), MAX_EVENT)
        .await
        .unwrap();
    assert_eq!(
        (summary.imported, summary.skipped, summary.refused),
        (501, 499, 0)
    );
    let source_order: Vec<(String, String)> = json_lines(&exported)
        .iter()
        .map(|l| (l["stream"].to_string(), l["id"].to_string()))
        .collect();
    assert_eq!(log_of(&target).await, source_order);

    // Once more: everything is there.
    let summary = import::run(&target, Box::new(Cursor::new(exported.clone())), MAX_EVENT)
        .await
        .unwrap();
    assert_eq!(
        (
            summary.imported,
            summary.appends,
            summary.skipped,
            summary.refused
        ),
        (0, 0, 1000, 0)
    );
    assert_eq!(
        summary.to_string(),
        "imported 0 events in 0 appends, skipped 1000 already present, refused 0"
    );
    assert_eq!(target.head().await.unwrap(), Position(1000));
}

#[tokio::test]
async fn an_import_writes_the_part_of_a_run_that_is_not_there_yet() {
    let source = store_with(&[("a-1", 30)]).await;
    let exported = export(&source).await;
    let target = MemoryStore::new();
    let first_ten = lines_of(&exported)[..10].concat();
    import::run(&target, Box::new(Cursor::new(first_ten)), MAX_EVENT)
        .await
        .unwrap();
    let summary = import::run(&target, Box::new(Cursor::new(exported.clone())), MAX_EVENT)
        .await
        .unwrap();
    assert_eq!((summary.imported, summary.skipped), (20, 10));
    assert_eq!(log_of(&target).await, log_of(&source).await);
}

#[tokio::test]
async fn an_import_names_the_line_of_a_refused_event_across_blank_lines() {
    let source = store_with(&[("a-1", 3)]).await;
    let exported = export(&source).await;
    let lines = lines_of(&exported);
    let target = MemoryStore::new();
    import::run(
        &target,
        Box::new(Cursor::new(lines[..2].concat())),
        MAX_EVENT,
    )
    .await
    .unwrap();
    // Version 2 comes back with another id, after a blank line.
    let other = String::from_utf8(lines[1].to_vec()).unwrap().replace(
        &json_lines(lines[1])[0]["id"].as_str().unwrap().to_owned(),
        &EventId::new().to_string(),
    );
    let input = [lines[0], b"\n", other.as_bytes(), lines[2]].concat();
    let err = import::run(&target, Box::new(Cursor::new(input)), MAX_EVENT)
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("import stopped at line 3"), "{message}");
    assert!(
        message.contains("skipped 1 already present, refused 1"),
        "{message}"
    );
    assert_eq!(target.head().await.unwrap(), Position(2));
}

#[tokio::test]
async fn an_import_refuses_a_gap_in_a_stream() {
    let source = store_with(&[("a-1", 3)]).await;
    let exported = export(&source).await;
    let mut lines = lines_of(&exported);
    lines.remove(1);
    let target = MemoryStore::new();
    let err = import::run(&target, Box::new(Cursor::new(lines.concat())), MAX_EVENT)
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("import stopped at line 2"), "{message}");
    assert!(
        message.contains("holds 1 events, so version 3"),
        "{message}"
    );
    assert_eq!(target.head().await.unwrap(), Position(1));
}

#[tokio::test]
async fn an_import_refuses_an_event_over_the_size_limit_by_its_line() {
    let source = store_with(&[("a-1", 3)]).await;
    let exported = export(&source).await;
    let err = import::run(&MemoryStore::new(), Box::new(Cursor::new(exported)), 3)
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("line 1"), "{message}");
    assert!(message.contains("over the limit of 3 bytes"), "{message}");
}

/// An export with runs of one stream longer than one append, interleaved streams, blank
/// lines and CRLF line ends, and no line end after its last line.
async fn mixed_export() -> Vec<u8> {
    let source = store_with(&[("run-1", 1500), ("b-1", 3)]).await;
    let mut input = export(&source).await;
    input.extend_from_slice(b"\n  \n");
    let interleaved = interleaved_export(200, 7).await;
    for (i, line) in lines_of(&interleaved).iter().enumerate() {
        let line = String::from_utf8(line.to_vec()).unwrap();
        let line = line.replace("\"s-", "\"t-");
        if i % 3 == 0 {
            input.extend_from_slice(line.replace('\n', "\r\n").as_bytes());
        } else {
            input.extend_from_slice(line.as_bytes());
        }
    }
    input.pop();
    input
}

#[tokio::test]
async fn import_parsing_gives_the_same_events_and_lines_whatever_the_block_size() {
    let input = mixed_export().await;
    let whole = import::parse_input(&input, 1 << 20, MAX_EVENT, 1 << 24);
    assert_eq!(whole.stopped, None);
    assert_eq!(whole.events.len(), 1703);
    assert_eq!(&whole.appends[..3], [1000, 500, 3]);
    // Lines 1504 and 1505 are blank.
    assert_eq!(whole.events[1503].0, 1506);
    assert_eq!(whole.events.last().unwrap().0, 1705);
    for block in [1, 100, 333, 4096, 65_536] {
        let cut = import::parse_input(&input, 1 << 20, MAX_EVENT, block);
        assert_eq!(cut.events, whole.events, "blocks of {block} bytes");
        assert_eq!(cut.stopped, None, "blocks of {block} bytes");
        assert!(
            cut.appends.iter().all(|&n| n <= 1000),
            "blocks of {block} bytes"
        );
    }
}

#[tokio::test]
async fn a_bad_line_is_named_by_its_line_in_the_input_whatever_the_block_size() {
    let input = mixed_export().await;
    let mut lines = lines_of(&input);
    lines[1599] = b"{\"stream\": \"t-1\", \"version\": 0}\n";
    let input = lines.concat();
    for block in [1, 100, 4096, 1 << 24] {
        let parsed = import::parse_input(&input, 1 << 20, MAX_EVENT, block);
        let (line, message) = parsed.stopped.expect("a bad line");
        assert_eq!(line, 1600, "blocks of {block} bytes");
        assert!(
            message.starts_with("invalid JSON on line 1600"),
            "{message}"
        );
        // Every event before it, and none after.
        assert_eq!(parsed.events.len(), 1597, "blocks of {block} bytes");
        assert!(parsed.events.iter().all(|e| e.0 < 1600));
    }
}

#[tokio::test]
async fn a_line_over_the_limit_is_named_whether_or_not_a_block_holds_it() {
    let source = store_with(&[("a-1", 3)]).await;
    let exported = export(&source).await;
    let lines = lines_of(&exported);
    let long = format!("{}\n", "x".repeat(5000));
    let input = [lines[0], lines[1], long.as_bytes(), lines[2]].concat();
    let limit = lines.iter().map(|l| l.len()).max().unwrap() + 10;
    // Blocks larger than the line (a worker refuses it) and smaller (the reader does).
    for block in [64, 1 << 20] {
        let parsed = import::parse_input(&input, limit, MAX_EVENT, block);
        assert_eq!(
            parsed.stopped,
            Some((
                3,
                format!("line 3 is 5000 bytes, over the limit of {limit} bytes")
            )),
            "blocks of {block} bytes"
        );
        assert_eq!(parsed.events.len(), 2, "blocks of {block} bytes");
    }
}

#[test]
fn an_export_line_carries_bytes_that_data_cannot_hold_verbatim() {
    use strata_core::{RecordedEvent, Timestamp};
    let event = |data: &[u8], metadata: &[u8]| RecordedEvent {
        position: Position(1),
        stream: stream("a-1"),
        version: Version(1),
        id: EventId::new(),
        event_type: EventType::new("T").unwrap(),
        data: bytes::Bytes::copy_from_slice(data),
        metadata: bytes::Bytes::copy_from_slice(metadata),
        recorded_at: Timestamp::parse_rfc3339("2026-01-02T03:04:05Z").unwrap(),
    };
    let line = |event: &RecordedEvent| {
        let mut out = Vec::new();
        crate::export::write_line(event, &mut out);
        assert_eq!(out.iter().filter(|&&b| b == b'\n').count(), 1);
        json_lines(&out).remove(0)
    };
    for verbatim in [&b"{\"a\":1}"[..], b"42", b"\"text\"", b"[1, 2]", b"null"] {
        let l = line(&event(verbatim, b"{}"));
        assert!(l.get("data_base64").is_none(), "{l}");
        assert!(l.get("metadata_base64").is_none(), "{l}");
    }
    for (data, base64) in [
        (&b"{\n  \"a\": 1\n}"[..], "ewogICJhIjogMQp9"),
        (b" 42", "IDQy"),
        (b"not json", "bm90IGpzb24="),
        (b"\xff\x00", "/wA="),
        (b"", ""),
    ] {
        let l = line(&event(data, b"{}"));
        assert_eq!(l["data_base64"], base64, "{l}");
    }
    let l = line(&event(b"1", b""));
    assert_eq!(l["metadata_base64"], "", "{l}");
    let l = line(&event(b"1", b"[1]"));
    assert_eq!(l["metadata_base64"], "WzFd", "{l}");
}

#[tokio::test]
async fn import_rejects_version_zero_and_bad_fields() {
    let good = String::from_utf8(export(&store_with(&[("a-1", 1)]).await).await).unwrap();
    let cases = [
        (good.replace("\"version\":1", "\"version\":0"), "version 0"),
        (
            good.replace("\"version\":1", "\"version\":-1"),
            "invalid value",
        ),
        (good.replace("\"id\":\"", "\"id\":\"x"), "invalid event id"),
        (
            good.replace("\"recorded_at\":\"", "\"recorded_at\":\"yesterday"),
            "invalid timestamp",
        ),
        (
            good.replace("\"stream\":\"a-1\"", "\"stream\":\"\""),
            "invalid stream name",
        ),
    ];
    for (input, needle) in cases {
        let err = import::run(
            &MemoryStore::new(),
            Box::new(Cursor::new(input.clone())),
            MAX_EVENT,
        )
        .await
        .unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("line 1"), "{input}: {message}");
        assert!(message.contains(needle), "{input}: {message}");
    }
}

// --- verify ---

#[test]
fn the_verify_summary_counts_everything_and_mentions_a_torn_tail() {
    let mut report = strata_store_embedded::VerifyReport {
        segments: 2,
        batches: 10,
        events: 30,
        streams: 4,
        index_files: 1,
        ..Default::default()
    };
    let dir = std::path::Path::new("/data");
    let line = verify::summary(dir, &report);
    assert_eq!(
        line,
        "the store in /data is intact: 2 segments, 10 batches, 30 events, 4 streams, 1 index file"
    );
    report.torn_tail = Some(strata_store_embedded::TornTail {
        file: "/data/1.seg".into(),
        offset: 4096,
        bytes: 17,
    });
    let line = verify::summary(dir, &report);
    assert!(
        line.contains("torn last batch of 17 bytes at /data/1.seg:4096"),
        "{line}"
    );
}

// --- the error line ---

#[test]
fn the_error_line_joins_causes_and_says_a_repeated_source_once() {
    let io = std::io::Error::new(std::io::ErrorKind::NotFound, "entity not found");
    let err = anyhow::Error::new(StoreError::io("no event store at f", io))
        .context("cannot open the event store in f");
    assert_eq!(
        crate::one_line(&err),
        "cannot open the event store in f: no event store at f: entity not found"
    );
    let err = anyhow::anyhow!("first\nsecond").context("outer");
    assert_eq!(crate::one_line(&err), "outer: first second");
}

// --- the ordered pipeline ---

#[tokio::test]
async fn pipelined_work_starts_in_input_order_and_yields_in_input_order() {
    use futures::StreamExt as _;
    let started = Arc::new(Mutex::new(Vec::new()));
    let items = futures::stream::iter(0..5000u32);
    let results: Vec<u32> = crate::pipeline::in_order(
        items,
        |_| 10,
        |i| {
            let started = Arc::clone(&started);
            async move {
                // Spends cooperative budget before "enqueueing", as a store's append does.
                tokio::task::consume_budget().await;
                started.lock().push(i);
                // Finish out of order.
                if i % 3 == 0 {
                    tokio::task::yield_now().await;
                }
                i
            }
        },
    )
    .collect()
    .await;
    assert_eq!(results, (0..5000).collect::<Vec<_>>());
    assert_eq!(*started.lock(), (0..5000).collect::<Vec<_>>());
}

#[tokio::test]
async fn work_heavier_than_the_whole_budget_still_runs() {
    use futures::StreamExt as _;
    let results: Vec<u32> = crate::pipeline::in_order(
        futures::stream::iter(0..10u32),
        |_| usize::MAX,
        |i| async move { i },
    )
    .collect()
    .await;
    assert_eq!(results, (0..10).collect::<Vec<_>>());
}

// --- payloads and names ---

#[test]
fn payloads_share_the_lines_buffer_and_foreign_ones_are_copied() {
    let line = bytes::Bytes::from_static(br#"{"data": {"a": [1, 2]}, "metadata": null}"#);
    #[derive(serde::Deserialize)]
    struct Parts<'a> {
        #[serde(borrow)]
        data: &'a serde_json::value::RawValue,
        #[serde(borrow)]
        metadata: Option<&'a serde_json::value::RawValue>,
    }
    let parts: Parts<'_> = serde_json::from_slice(&line).unwrap();
    let data = crate::payload::part(&line, parts.data);
    assert_eq!(&data[..], br#"{"a": [1, 2]}"#);
    assert!(line.as_ptr_range().contains(&data.as_ptr()));
    assert_eq!(
        &crate::payload::metadata(&line, parts.metadata).unwrap()[..],
        b"{}"
    );

    let elsewhere = serde_json::value::RawValue::from_string("[3]".to_owned()).unwrap();
    assert_eq!(&crate::payload::part(&line, &elsewhere)[..], b"[3]");
}

#[test]
fn names_are_validated_once_and_bad_ones_every_time() {
    let mut names = crate::names::Names::default();
    let first = names.stream("order-1").unwrap();
    assert_eq!(names.stream("order-1").unwrap(), first);
    assert!(names.stream("").is_err());
    assert!(names.stream("").is_err());
    assert_eq!(names.event_type("Placed").unwrap().as_str(), "Placed");
    assert!(names.event_type("a\nb").is_err());
}

// --- serve ---

#[test]
fn a_store_url_is_shown_without_its_password() {
    use crate::serve::redacted;
    assert_eq!(
        redacted("postgres://ann:secret@db.example:5432/shop"),
        "postgres://ann@db.example:5432/shop"
    );
    assert_eq!(
        redacted("postgres://ann@db.example/shop"),
        "postgres://ann@db.example/shop"
    );
    assert_eq!(
        redacted("postgres://db.example/shop"),
        "postgres://db.example/shop"
    );
}

#[test]
fn every_progress_template_parses() {
    use crate::progress::{SPINNER_TEMPLATE, Unit, bar_template};
    for total in [true, false] {
        for unit in [Unit::Events, Unit::Bytes] {
            let template = bar_template(total, unit);
            assert!(
                indicatif::ProgressStyle::with_template(&template).is_ok(),
                "{template}"
            );
        }
    }
    assert!(indicatif::ProgressStyle::with_template(SPINNER_TEMPLATE).is_ok());
}

#[test]
fn a_line_counting_writer_moves_the_bar_once_per_line_and_passes_the_bytes_on() {
    let bar = indicatif::ProgressBar::hidden();
    let mut out = crate::progress::CountLines::new(Vec::new(), bar.clone());
    out.write_all(b"{\"a\":1}\n{\"b\":2}\n{\"c\"").unwrap();
    out.write_all(b":3}\n").unwrap();
    out.flush().unwrap();
    assert_eq!(bar.position(), 3);
    assert_eq!(
        String::from_utf8(out.inner_for_tests().clone()).unwrap(),
        "{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"
    );
}

/// `strata serve` parsed from `args` with the config applied: the data directory and
/// the serve arguments.
fn serve_with_config(
    args: &[&str],
) -> anyhow::Result<(std::path::PathBuf, crate::serve::ServeArgs)> {
    use clap::{CommandFactory as _, FromArgMatches as _};
    let matches = crate::args::Cli::command().try_get_matches_from(args)?;
    let cli = crate::args::Cli::from_arg_matches(&matches)?;
    let crate::args::Cli {
        mut data_dir,
        command: crate::args::Command::Serve(mut serve),
    } = cli
    else {
        panic!("not serve: {args:?}");
    };
    crate::config::apply(&mut data_dir, &mut serve, &matches)?;
    Ok((data_dir, *serve))
}

#[test]
fn the_example_config_file_loads_and_matches_the_defaults() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/strata.toml");
    let (dir, serve) = serve_with_config(&["strata", "serve", "--config", example]).unwrap();
    assert!(dir.ends_with("docs/../strata-data"), "{dir:?}");
    assert_eq!(serve.listen.to_string(), "127.0.0.1:7700");
    assert_eq!(serve.tokens, None);
    assert!(!serve.insecure);
    assert!(!serve.write.accept_data_loss);
}

#[test]
fn a_flag_wins_over_the_config_file_and_the_file_over_the_default() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("strata.toml");
    std::fs::write(
        &file,
        "data-dir = \"data\"\nlisten = \"127.0.0.1:9001\"\ntokens = \"/etc/tokens\"\nlog-format = \"json\"\naccept-data-loss = true\nread-store = \"postgres://reader@db/read\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (dir, serve) = serve_with_config(&["strata", "serve", "--config", path]).unwrap();
    assert_eq!(dir, scratch.path().join("data"));
    assert_eq!(serve.listen.to_string(), "127.0.0.1:9001");
    assert_eq!(serve.tokens, Some("/etc/tokens".into()));
    assert_eq!(serve.log_format, crate::serve::LogFormat::Json);
    assert!(serve.write.accept_data_loss);
    assert_eq!(
        serve.read_store.as_deref(),
        Some("postgres://reader@db/read")
    );

    let (dir, serve) = serve_with_config(&[
        "strata",
        "--data-dir",
        "/elsewhere",
        "serve",
        "--config",
        path,
        "--listen",
        "127.0.0.1:9002",
        "--log-format",
        "text",
        "--read-store",
        "postgres://other@db/read",
    ])
    .unwrap();
    assert_eq!(
        serve.read_store.as_deref(),
        Some("postgres://other@db/read")
    );
    assert_eq!(dir, std::path::PathBuf::from("/elsewhere"));
    assert_eq!(serve.listen.to_string(), "127.0.0.1:9002");
    assert_eq!(serve.log_format, crate::serve::LogFormat::Text);
    assert_eq!(serve.tokens, Some("/etc/tokens".into()));
}

#[test]
fn a_config_file_with_an_unknown_key_or_a_bad_value_is_refused_naming_it() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("strata.toml");
    for (text, needle) in [
        ("listn = \"127.0.0.1:1\"\n", "listn"),
        ("listen = \"nowhere\"\n", "listen"),
    ] {
        std::fs::write(&file, text).unwrap();
        let err = serve_with_config(&["strata", "serve", "--config", file.to_str().unwrap()])
            .unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("is not valid"), "{message}");
        assert!(message.contains(needle), "{needle}: {message}");
    }
    let missing = scratch.path().join("none.toml");
    let err =
        serve_with_config(&["strata", "serve", "--config", missing.to_str().unwrap()]).unwrap_err();
    assert!(
        format!("{err:#}").contains("cannot read the config file"),
        "{err:#}"
    );
}

#[test]
fn the_config_file_names_the_store_and_its_replica_and_a_flag_wins() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("strata.toml");
    std::fs::write(
        &file,
        "store = \"postgres://app@primary/shop\"\nreplica = \"postgres://app@standby/shop\"\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (_, serve) = serve_with_config(&["strata", "serve", "--config", path]).unwrap();
    assert_eq!(serve.store.as_deref(), Some("postgres://app@primary/shop"));
    assert_eq!(
        serve.replica.as_deref(),
        Some("postgres://app@standby/shop")
    );

    let (_, serve) = serve_with_config(&[
        "strata",
        "serve",
        "--config",
        path,
        "--replica",
        "postgres://app@other/shop",
    ])
    .unwrap();
    assert_eq!(serve.store.as_deref(), Some("postgres://app@primary/shop"));
    assert_eq!(serve.replica.as_deref(), Some("postgres://app@other/shop"));
}

#[test]
fn the_redis_url_comes_from_the_config_file_unless_a_flag_gives_one() {
    let scratch = tempfile::tempdir().unwrap();
    let file = scratch.path().join("strata.toml");
    std::fs::write(&file, "redis = \"redis://127.0.0.1:6379\"\n").unwrap();
    let path = file.to_str().unwrap();
    let (_, serve) = serve_with_config(&["strata", "serve", "--config", path]).unwrap();
    assert_eq!(serve.redis.as_deref(), Some("redis://127.0.0.1:6379"));
    let (_, serve) = serve_with_config(&[
        "strata",
        "serve",
        "--config",
        path,
        "--redis",
        "redis://10.0.0.1:6380",
    ])
    .unwrap();
    assert_eq!(serve.redis.as_deref(), Some("redis://10.0.0.1:6380"));
}
