//! The event store routes: append, read a stream, read the log, list streams.

use axum::http::StatusCode;
use serde_json::json;

use crate::support::{append_one, get, memory_app, post, post_raw};

#[tokio::test]
async fn append_answers_versions_and_position_and_reads_back() {
    let (app, _) = memory_app();
    let answer = post_raw(
        &app,
        "/streams/order-1",
        r#"{"expected_version": "no_stream", "events": [
            {"type": "Opened", "data": {"owner": "ann"}, "metadata": {"actor": "ann"}},
            {"type": "Renamed", "data": [1, 2.50, "x"], "id": "0190f0c4-8a3e-7d2b-9b1e-3c4d5e6f7a8b"}
        ]}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    assert_eq!(
        answer.json(),
        json!({"stream": "order-1", "first_version": 1, "last_version": 2, "position": 2})
    );

    let read = get(&app, "/streams/order-1").await;
    assert_eq!(read.status, StatusCode::OK);
    let events = read.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["type"], "Opened");
    assert_eq!(events[0]["data"], json!({"owner": "ann"}));
    assert_eq!(events[0]["metadata"], json!({"actor": "ann"}));
    assert_eq!(events[1]["id"], "0190f0c4-8a3e-7d2b-9b1e-3c4d5e6f7a8b");
    // The payload's bytes are kept as written (2.50 stays 2.50).
    assert!(read.text().contains("[1, 2.50, \"x\"]"), "{}", read.text());

    let backward = get(&app, "/streams/order-1?direction=backward&limit=1").await;
    let events = backward.json()["events"].as_array().unwrap().clone();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["version"], 2);

    let from = get(&app, "/streams/order-1?from=2").await;
    assert_eq!(from.json()["events"][0]["version"], 2);
}

#[tokio::test]
async fn a_repeated_append_with_the_same_ids_is_idempotent() {
    let (app, _) = memory_app();
    let body = json!({"expected_version": 0, "events": [
        {"type": "Opened", "data": {}, "id": "0190f0c4-8a3e-7d2b-9b1e-3c4d5e6f7a8c"}]});
    let first = post(&app, "/streams/acct-9", body.clone()).await;
    let second = post(&app, "/streams/acct-9", body).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(second.status, StatusCode::OK, "{}", second.text());
    assert_eq!(first.json(), second.json());
}

/// An event id is stored once in the log: reusing one in another stream, at another place
/// in the same stream, or twice in one append is 409 `duplicate_event_id` naming the id,
/// and writes nothing.
#[tokio::test]
async fn an_event_id_reused_is_409_duplicate_event_id() {
    let (app, _) = memory_app();
    let id = "0190f0c4-8a3e-7d2b-9b1e-3c4d5e6f7a9d";
    let event = |kind: &str| json!({"type": kind, "data": {}, "id": id});
    let first = post(
        &app,
        "/streams/acct-1",
        json!({"expected_version": 0, "events": [event("Opened")]}),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text());
    let attempts = [
        (
            "/streams/acct-2",
            json!({"events": [event("Opened")]}),
            true,
        ),
        (
            "/streams/acct-1",
            json!({"expected_version": 1, "events": [event("Closed")]}),
            true,
        ),
        (
            "/streams/acct-3",
            json!({"events": [
                {"type": "A", "data": {}, "id": "0190f0c4-8a3e-7d2b-9b1e-3c4d5e6f7a9e"},
                {"type": "B", "data": {}, "id": "0190f0c4-8a3e-7d2b-9b1e-3c4d5e6f7a9e"}]}),
            false,
        ),
    ];
    for (uri, body, stored) in attempts {
        let answer = post(&app, uri, body).await;
        assert_eq!(
            answer.status,
            StatusCode::CONFLICT,
            "{uri}: {}",
            answer.text()
        );
        let error = &answer.json()["error"];
        assert_eq!(error["code"], "duplicate_event_id");
        if stored {
            assert_eq!(error["id"], id);
            assert_eq!(error["existing_position"], 1);
        }
    }
    assert_eq!(
        get(&app, "/all").await.json()["events"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn a_version_conflict_is_409_with_expected_and_actual() {
    let (app, _) = memory_app();
    append_one(&app, "acct-1", "Opened").await;
    let answer = post(
        &app,
        "/streams/acct-1",
        json!({"expected_version": "no_stream", "events": [{"type": "Opened", "data": {}}]}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::CONFLICT);
    let error = &answer.json()["error"];
    assert_eq!(error["code"], "wrong_expected_version");
    assert_eq!(error["expected"], "no_stream");
    assert_eq!(error["actual"], 1);
    assert!(error["message"].as_str().unwrap().contains("acct-1"));

    let exact = post(
        &app,
        "/streams/acct-1",
        json!({"expected_version": 5, "events": [{"type": "X", "data": {}}]}),
    )
    .await;
    assert_eq!(exact.status, StatusCode::CONFLICT);
    assert_eq!(exact.json()["error"]["expected"], 5);
}

#[tokio::test]
async fn bad_append_bodies_are_400_invalid_input() {
    let (app, _) = memory_app();
    let cases: Vec<(&str, String)> = vec![
        ("not JSON", "{\"events\": [".to_owned()),
        ("wrong type", json!({"events": "many"}).to_string()),
        (
            "no events field",
            json!({"expected_version": "any"}).to_string(),
        ),
        ("empty events", json!({"events": []}).to_string()),
        ("no data", json!({"events": [{"type": "A"}]}).to_string()),
        (
            "empty type",
            json!({"events": [{"type": "", "data": {}}]}).to_string(),
        ),
        (
            "bad id",
            json!({"events": [{"type": "A", "data": {}, "id": "nope"}]}).to_string(),
        ),
        (
            "metadata not an object",
            json!({"events": [{"type": "A", "data": {}, "metadata": [1]}]}).to_string(),
        ),
        (
            "bad expected version",
            json!({"expected_version": "maybe", "events": [{"type": "A", "data": {}}]}).to_string(),
        ),
        (
            "negative expected version",
            json!({"expected_version": -1, "events": [{"type": "A", "data": {}}]}).to_string(),
        ),
        (
            "unknown field",
            json!({"events": [{"type": "A", "data": {}}], "extra": 1}).to_string(),
        ),
        ("a JSON array", "[]".to_owned()),
        (
            "data not JSON",
            r#"{"events": [{"type": "A", "data": {"a": }}]}"#.to_owned(),
        ),
        (
            "data a bare word",
            r#"{"events": [{"type": "A", "data": nope}]}"#.to_owned(),
        ),
        (
            "metadata a string",
            r#"{"events": [{"type": "A", "data": {}, "metadata": "x"}]}"#.to_owned(),
        ),
        (
            "type not a string",
            r#"{"events": [{"type": 5, "data": {}}]}"#.to_owned(),
        ),
        ("an event not an object", r#"{"events": [1]}"#.to_owned()),
        (
            "trailing bytes after the body",
            r#"{"events": [{"type": "A", "data": {}}]} x"#.to_owned(),
        ),
    ];
    for (what, body) in cases {
        let answer = post_raw(&app, "/streams/acct-1", body).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{what}: {}",
            answer.text()
        );
        assert_eq!(answer.code(), "invalid_input", "{what}");
        assert!(
            !answer.json()["error"]["message"]
                .as_str()
                .unwrap()
                .is_empty()
        );
    }
    // Nothing was written.
    assert_eq!(
        get(&app, "/streams/acct-1").await.status,
        StatusCode::NOT_FOUND
    );
}

/// Data and metadata are stored byte for byte as the body spelled them, and an escaped
/// type name is read as the name it spells.
#[tokio::test]
async fn raw_values_are_stored_as_written() {
    let (app, _) = memory_app();
    let answer = post_raw(
        &app,
        "/streams/raw-1",
        r#"{"events": [
            {"type": "A\u0042", "data": { "a" : 1 , "b":"\u00e9" }, "metadata": {"k" :"v"}},
            {"type": "C", "data": 7, "metadata": null}
        ]}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text());
    let read = get(&app, "/streams/raw-1").await;
    let text = read.text();
    assert!(text.contains(r#"{ "a" : 1 , "b":"\u00e9" }"#), "{text}");
    assert!(text.contains(r#"{"k" :"v"}"#), "{text}");
    let events = read.json()["events"].as_array().unwrap().clone();
    assert_eq!(events[0]["type"], "AB");
    assert_eq!(events[1]["data"], 7);
    assert_eq!(events[1]["metadata"], json!({}));
}

#[tokio::test]
async fn bad_stream_names_are_400() {
    let (app, _) = memory_app();
    let long = "a".repeat(256);
    for name in ["bad%00name", "tab%09name", long.as_str(), "%FF%FE"] {
        let answer = get(&app, &format!("/streams/{name}")).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{name}: {}",
            answer.text()
        );
        assert_eq!(answer.code(), "invalid_input");
        let answer = post(
            &app,
            &format!("/streams/{name}"),
            json!({"events": [{"type": "A", "data": {}}]}),
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{name}");
    }
}

#[tokio::test]
async fn an_oversize_body_is_413_and_an_oversize_event_too() {
    let (app, _) = memory_app();
    let big = "x".repeat(3 * 1024 * 1024);
    let answer = post(
        &app,
        "/streams/big-1",
        json!({"events": [{"type": "A", "data": big}]}),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text()
    );
    assert_eq!(answer.code(), "too_large");

    // Under the body limit, over the store's 1 MiB event limit.
    let event = "y".repeat(1024 * 1024 + 10);
    let answer = post(
        &app,
        "/streams/big-1",
        json!({"events": [{"type": "A", "data": event}]}),
    )
    .await;
    assert_eq!(
        answer.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{}",
        answer.text()
    );
    assert_eq!(answer.code(), "too_large");
}

#[tokio::test]
async fn a_missing_stream_is_404_stream_not_found() {
    let (app, _) = memory_app();
    let answer = get(&app, "/streams/none-here").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "stream_not_found");
    // An existing stream read past its end is empty, not missing.
    append_one(&app, "some-1", "A").await;
    let past = get(&app, "/streams/some-1?from=5").await;
    assert_eq!(past.status, StatusCode::OK);
    assert_eq!(past.json()["events"], json!([]));
}

#[tokio::test]
async fn bad_read_parameters_are_400() {
    let (app, _) = memory_app();
    append_one(&app, "acct-1", "A").await;
    for uri in [
        "/streams/acct-1?from=abc",
        "/streams/acct-1?from=-1",
        "/streams/acct-1?limit=0",
        "/streams/acct-1?limit=100000",
        "/streams/acct-1?limit=x",
        "/streams/acct-1?direction=sideways",
        "/streams/acct-1?nonsense=1",
        "/all?from=x",
        "/all?limit=-3",
        "/all?limit=0",
        "/streams?limit=abc",
    ] {
        let answer = get(&app, uri).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            answer.text()
        );
        assert_eq!(answer.code(), "invalid_input", "{uri}");
    }
}

#[tokio::test]
async fn read_all_pages_and_filters_by_category_and_type() {
    let (app, _) = memory_app();
    append_one(&app, "order-1", "Placed").await;
    append_one(&app, "user-1", "Joined").await;
    append_one(&app, "order-2", "Placed").await;
    append_one(&app, "order-2", "Shipped").await;

    let all = get(&app, "/all").await.json();
    assert_eq!(all["events"].as_array().unwrap().len(), 4);
    let page = get(&app, "/all?from=0&limit=2").await.json();
    assert_eq!(page["events"].as_array().unwrap().len(), 2);
    assert_eq!(page["next"], 3);
    let rest = get(&app, "/all?from=3").await.json();
    assert_eq!(rest["events"][0]["position"], 3);

    let orders = get(&app, "/all?category=order").await.json();
    assert_eq!(orders["events"].as_array().unwrap().len(), 3);
    let placed = get(&app, "/all?category=order&type=Placed").await.json();
    assert_eq!(placed["events"].as_array().unwrap().len(), 2);
    let either = get(&app, "/all?type=Joined,Shipped").await.json();
    assert_eq!(either["events"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn streams_are_listed_by_prefix_in_pages() {
    let (app, _) = memory_app();
    for s in ["order-1", "order-2", "user-1", "order-10"] {
        append_one(&app, s, "A").await;
    }
    append_one(&app, "order-2", "B").await;
    let names = |v: &serde_json::Value| -> Vec<String> {
        v["streams"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["stream"].as_str().unwrap().to_owned())
            .collect()
    };
    // The store answers the listing: an append is listed at once.
    let all = get(&app, "/streams").await.json();
    assert_eq!(names(&all), ["order-1", "order-10", "order-2", "user-1"]);
    assert_eq!(all["next"], serde_json::Value::Null, "one page: no cursor");
    assert_eq!(
        (
            &all["streams"][2]["version"],
            &all["streams"][2]["last_position"]
        ),
        (&json!(2), &json!(5)),
        "{all}"
    );
    assert_eq!(
        names(&get(&app, "/streams?prefix=order-1").await.json()),
        ["order-1", "order-10"]
    );
    // Pages of two, each continuing after the previous page's cursor.
    let first = get(&app, "/streams?limit=2").await.json();
    assert_eq!(names(&first), ["order-1", "order-10"]);
    assert_eq!(first["next"], "order-10");
    let second = get(&app, "/streams?limit=2&after=order-10").await.json();
    assert_eq!(names(&second), ["order-2", "user-1"]);
    assert_eq!(
        second["next"],
        serde_json::Value::Null,
        "the page that reaches the end has no cursor: {second}"
    );
    let orders = get(&app, "/streams?prefix=order-&after=order-1&limit=1")
        .await
        .json();
    assert_eq!(names(&orders), ["order-10"]);
    assert_eq!(orders["next"], "order-10");
    let past = get(&app, "/streams?after=zzz").await.json();
    assert_eq!(names(&past), Vec::<String>::new());
}

#[tokio::test]
async fn bad_listing_parameters_are_400() {
    let (app, _) = memory_app();
    let long = "x".repeat(256);
    for uri in [
        "/streams?limit=0".to_owned(),
        "/streams?limit=1001".to_owned(),
        "/streams?q=order".to_owned(),
        format!("/streams?prefix={long}"),
        format!("/streams?after={long}"),
    ] {
        let answer = get(&app, &uri).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            answer.text()
        );
        assert_eq!(answer.code(), "invalid_input", "{uri}");
    }
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let (app, _) = memory_app();
    let answer = get(&app, "/nowhere").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
    assert_eq!(answer.code(), "not_found");
    let answer = post(&app, "/all", json!({})).await;
    assert_eq!(answer.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(answer.code(), "method_not_allowed");
}
