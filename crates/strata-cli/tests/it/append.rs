//! `strata append`: acknowledgements, refusals, and what reaches the store.

use serde_json::json;

use crate::support::{Strata, append_line};

#[test]
fn appended_events_read_back_with_their_ids_payloads_and_metadata() {
    let strata = Strata::new();
    let id = "0190a5b4-3c2d-7e8f-9a0b-1c2d3e4f5a6b";
    let line = json!({
        "stream": "order-1",
        "expected_version": "no_stream",
        "events": [
            {"id": id, "type": "OrderPlaced", "data": {"total": 1200}, "metadata": {"actor": "ann"}},
            {"type": "LineAdded", "data": ["a", 1, null]},
        ],
    });
    let acks = strata.append_ok(&[line]);
    assert_eq!(
        acks[0],
        json!({"stream": "order-1", "first_version": 1, "last_version": 2, "position": 2})
    );

    let read = strata.run(&["read", "order-1"], "");
    read.assert_success();
    let events = read.json_lines();
    assert_eq!(events.len(), 2);
    assert_eq!(events[0]["id"], id);
    assert_eq!(events[0]["position"], 1);
    assert_eq!(events[0]["version"], 1);
    assert_eq!(events[0]["type"], "OrderPlaced");
    assert_eq!(events[0]["data"], json!({"total": 1200}));
    assert_eq!(events[0]["metadata"], json!({"actor": "ann"}));
    assert!(events[0]["recorded_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(events[1]["data"], json!(["a", 1, null]));
    assert_eq!(events[1]["metadata"], json!({}));
    assert_eq!(events[1]["version"], 2);
}

#[test]
fn payload_bytes_are_stored_exactly_as_written() {
    let strata = Strata::new();
    let input =
        "{\"stream\":\"a-1\",\"events\":[{\"type\":\"T\",\"data\":{\"b\": 1,  \"a\": 2.50}}]}\n";
    strata.run(&["append"], input).assert_success();
    let read = strata.run(&["read", "a-1"], "");
    assert!(
        read.stdout().contains("\"data\":{\"b\": 1,  \"a\": 2.50}"),
        "{read:?}"
    );
}

#[test]
fn each_line_gets_one_reply_in_order_and_failures_do_not_stop_the_rest() {
    let strata = Strata::new();
    let big = "x".repeat(1024 * 1024 + 1);
    let input = [
        append_line("order-1", json!("no_stream"), &["A", "B"]).to_string(),
        append_line("order-1", json!(1), &["C"]).to_string(),
        "not json".to_owned(),
        String::new(),
        json!({"stream": "", "events": [{"type": "T", "data": 1}]}).to_string(),
        json!({"stream": "big-1", "events": [{"type": "T", "data": big}]}).to_string(),
        json!({"stream": "order-1", "events": [{"type": "T", "data": 1, "id": "not-a-uuid"}]})
            .to_string(),
        json!({"stream": "order-1", "expected_version": -3, "events": []}).to_string(),
        append_line("order-1", json!(2), &["D"]).to_string(),
        append_line("order-2", json!("exists"), &["E"]).to_string(),
    ]
    .join("\n");
    let run = strata.run(&["append"], &input);
    run.assert_success();
    let replies = run.json_lines();
    assert_eq!(replies.len(), 9, "{run:?}");
    assert_eq!(replies[0]["last_version"], 2);

    let conflict = &replies[1]["error"];
    assert_eq!(conflict["code"], "wrong_expected_version");
    assert_eq!(conflict["expected"], 1);
    assert_eq!(conflict["actual"], 2);
    assert!(conflict["message"].as_str().unwrap().contains("order-1"));

    let codes: Vec<&str> = replies[2..7]
        .iter()
        .map(|r| r["error"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        [
            "invalid_input",
            "invalid_input",
            "too_large",
            "invalid_input",
            "invalid_input"
        ]
    );
    for reply in &replies[1..7] {
        assert!(!reply["error"]["message"].as_str().unwrap().is_empty());
    }
    assert!(
        replies[2]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 3")
    );

    assert_eq!(
        replies[7],
        json!({"stream": "order-1", "first_version": 3, "last_version": 3, "position": 3})
    );
    assert_eq!(replies[8]["error"]["code"], "wrong_expected_version");
    assert_eq!(replies[8]["error"]["expected"], "exists");
    assert_eq!(replies[8]["error"]["actual"], 0);

    let read = strata.run(&["read-all"], "");
    assert_eq!(read.json_lines().len(), 3, "nothing refused was stored");
}

#[test]
fn bad_bytes_and_odd_json_get_error_replies_not_crashes() {
    let strata = Strata::new();
    let mut input = Vec::new();
    input.extend_from_slice(b"{\"stream\": \"a-\xff\xfe\", \"events\": []}\n");
    input.extend_from_slice(b"\x00\x01\x02\n");
    input.extend_from_slice(b"[]\n");
    input.extend_from_slice(
        b"{\"stream\": \"a-1\", \"expected_version\": 99999999999999999999999, \"events\": []}\n",
    );
    input.extend_from_slice(b"{\"stream\": \"a-1\", \"events\": []}\n");
    input.extend_from_slice(b"{\"stream\": \"a-1\", \"events\": [{\"type\": \"T\", \"data\": {}, \"metadata\": \"x\"}]}\r\n");
    let run = crate::support::run(strata.command(&["append"]), &input);
    run.assert_success();
    let replies = run.json_lines();
    assert_eq!(replies.len(), 6, "{run:?}");
    for reply in &replies {
        assert_eq!(reply["error"]["code"], "invalid_input", "{reply}");
    }
}

#[test]
fn many_lines_are_acknowledged_in_input_order() {
    let strata = Strata::new();
    let input: String = (0..20_000)
        .map(|i| {
            format!(
                "{}\n",
                append_line(&format!("s-{}", i % 13), json!("any"), &["T"])
            )
        })
        .collect();
    let run = strata.run(&["append"], &input);
    run.assert_success();
    let replies = run.json_lines();
    assert_eq!(replies.len(), 20_000);
    for (i, reply) in replies.iter().enumerate() {
        assert_eq!(reply["position"], i as u64 + 1, "{reply}");
        assert_eq!(reply["stream"], format!("s-{}", i % 13));
    }
}

#[test]
fn a_second_writer_is_refused_while_the_first_holds_the_store_but_readers_are_not() {
    let strata = Strata::new();
    strata.append_ok(&[append_line("a-1", json!("any"), &["T"])]);
    let mut first = strata
        .command(&["append"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // An acknowledged line proves the first writer has the store open.
    let mut stdin = first.stdin.take().unwrap();
    let lines = crate::support::lines_of(&mut first);
    use std::io::Write as _;
    writeln!(stdin, "{}", append_line("a-1", json!(1), &["T"])).unwrap();
    let ack = lines.recv_timeout(crate::support::TIMEOUT).unwrap();
    assert!(ack.contains("\"last_version\":2"), "{ack}");

    let second = strata.run(&["append"], "");
    second.assert_failure(1, "lock");
    let read = strata.run(&["read", "a-1"], "");
    read.assert_success();
    assert_eq!(read.json_lines().len(), 2, "readers work beside the writer");
    strata.run(&["verify"], "").assert_success();

    drop(stdin);
    assert!(crate::support::wait_status(&mut first, crate::support::TIMEOUT).success());
    strata.run(&["append"], "").assert_success();
}

#[test]
fn unreadable_input_is_an_error() {
    let strata = Strata::new();
    let mut command = strata.command(&["append"]);
    command.stdin(std::fs::File::open("/").unwrap());
    let output = crate::support::wait_output(
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
        crate::support::TIMEOUT,
    );
    crate::support::Run(output).assert_failure(1, "cannot read standard input");
}
