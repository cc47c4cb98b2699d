//! `strata tail`: history, then live events written by another process, until a signal.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;

use serde_json::{Value, json};

use crate::support::{Strata, TIMEOUT, append_line, lines_of, signal, wait_status};

#[test]
fn tail_prints_history_then_events_appended_by_another_process() {
    let strata = Strata::new();
    strata.append_ok(&[
        append_line("order-1", json!("any"), &["A", "B"]),
        append_line("invoice-1", json!("any"), &["X"]),
    ]);
    let mut tail = strata
        .command(&["tail", "--from", "2", "--category", "order"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut tail);
    let next = || -> Value {
        let line = lines
            .recv_timeout(TIMEOUT)
            .expect("tail should print the next event");
        serde_json::from_str(&line).unwrap()
    };
    let first = next();
    assert_eq!(
        (first["position"].as_u64(), first["type"].as_str()),
        (Some(2), Some("B"))
    );

    strata.append_ok(&[
        append_line("invoice-2", json!("any"), &["Y"]),
        append_line("order-2", json!("any"), &["C", "D"]),
    ]);
    let live: Vec<u64> = (0..2)
        .map(|_| next()["position"].as_u64().unwrap())
        .collect();
    assert_eq!(live, [5, 6]);

    // Another category's event, then one of ours: the next line is ours.
    strata.append_ok(&[
        append_line("invoice-3", json!("any"), &["Z"]),
        append_line("order-3", json!("any"), &["E"]),
    ]);
    let after = next();
    assert_eq!(
        (after["position"].as_u64(), after["stream"].as_str()),
        (Some(8), Some("order-3")),
        "the filter drops other categories"
    );

    signal(tail.id(), "TERM");
    let status = wait_status(&mut tail, TIMEOUT);
    assert!(status.success(), "{status:?}");
}

#[test]
fn tail_of_an_empty_store_waits_and_stops_on_interrupt() {
    let strata = Strata::new();
    strata.run(&["append"], "").assert_success();
    let mut tail = strata
        .command(&["tail"])
        .env("RUST_LOG", "strata::tail=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(&mut tail);
    wait_for_stderr(&mut tail, "waiting for new events");
    strata.append_ok(&[append_line("a-1", json!("any"), &["T"])]);
    let line = lines.recv_timeout(TIMEOUT).expect("the live event");
    assert!(line.contains("\"position\":1"), "{line}");
    signal(tail.id(), "INT");
    let status = wait_status(&mut tail, TIMEOUT);
    assert!(status.success(), "{status:?}");
}

#[test]
fn tail_ends_quietly_when_its_reader_hangs_up() {
    let strata = Strata::new();
    strata.append_ok(&[append_line("a-1", json!("any"), &["T"])]);
    let mut tail = strata
        .command(&["tail"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(tail.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut first).unwrap();
    assert!(first.contains("\"position\":1"), "{first}");
    drop(stdout);
    // The next event's write finds the pipe closed.
    strata.append_ok(&[append_line("a-1", json!("any"), &["T"])]);
    let status = wait_status(&mut tail, TIMEOUT);
    assert!(status.success(), "{status:?}");
}

/// Waits until a line of `child`'s standard error contains `needle`: the child's own word
/// that it got there. Fails the test after [`TIMEOUT`] or if standard error ends first.
fn wait_for_stderr(child: &mut Child, needle: &str) {
    let stderr = child.stderr.take().expect("stderr is piped");
    let (found, seen) = mpsc::channel();
    let wanted = needle.to_owned();
    // Reads to the end, so the child never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if line.contains(&wanted) {
                let _ = found.send(());
            }
        }
    });
    seen.recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| panic!("strata never said {needle:?} on stderr"));
}
