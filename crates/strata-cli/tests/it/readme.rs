//! README.md's session with curl, run as written against a fresh `strata serve`: every
//! answer the README shows (a `# {...}` line under its command) must be the real one, so
//! the README cannot drift from the server.
//!
//! In a shown answer `...` stands for what is left out: `[...]` any array, a last `,...]`
//! any further elements, a last `,...}` any further members. Everything else is compared
//! exactly, members and array lengths included.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{Strata, TIMEOUT, signal, wait_status};

/// Stands for an elided array tail (as an element) or object rest (as a key).
const ELIDED: &str = "\u{2026}";

/// How long `curl -N` (a live stream that never ends by itself) is left to read.
const STREAM_SECONDS: &str = "3";

/// One command of the session and the answer the README shows for it, if any.
#[derive(Debug)]
struct Step {
    command: String,
    shown: Option<String>,
}

/// The commands of the README's `## A session with curl` code block, with the `# {...}`
/// lines that follow them.
fn session(readme: &str) -> Vec<Step> {
    let section = readme
        .split("\n## A session with curl")
        .nth(1)
        .expect("README.md has a session with curl");
    let block = section
        .split("```sh\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("the session is a sh code block");
    let mut steps: Vec<Step> = Vec::new();
    let mut lines = block.lines();
    while let Some(line) = lines.next() {
        let line = line.trim();
        if line.starts_with("curl ") {
            let mut command = line.to_owned();
            while command.ends_with('\\') {
                command.pop();
                command.push_str(lines.next().expect("a continued line").trim());
            }
            steps.push(Step {
                command,
                shown: None,
            });
        } else if let Some(answer) = line.strip_prefix("# {") {
            let step = steps.last_mut().expect("an answer follows a command");
            assert!(step.shown.is_none(), "two answers for {}", step.command);
            step.shown = Some(format!("{{{answer}"));
        } else {
            assert!(
                line.is_empty(),
                "a line of the session not understood: {line}"
            );
        }
    }
    steps
}

/// The JSON object at the start of `text` (a shown answer may be followed by prose), with
/// its `...` elisions turned into [`ELIDED`] markers.
fn shown_json(text: &str) -> Value {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut end = None;
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            '{' | '[' if !in_string => depth += 1,
            '}' | ']' if !in_string => {
                depth -= 1;
                if depth == 0 {
                    end = Some(i + 1);
                    break;
                }
            }
            _ => {}
        }
    }
    let json = &text[..end.unwrap_or_else(|| panic!("an unclosed answer: {text}"))];
    let marked = json
        .replace("[...]", &format!("[\"{ELIDED}\"]"))
        .replace(",...]", &format!(",\"{ELIDED}\"]"))
        .replace(",...}", &format!(",\"{ELIDED}\":true}}"));
    serde_json::from_str(&marked).unwrap_or_else(|e| panic!("a shown answer {json}: {e}"))
}

/// Whether `actual` is what `shown` shows; on a difference, the path to it.
fn matches(shown: &Value, actual: &Value, path: &str) -> Result<(), String> {
    match (shown, actual) {
        (Value::Object(shown), Value::Object(actual)) => {
            let partial = shown.contains_key(ELIDED);
            for (key, value) in shown.iter().filter(|(k, _)| *k != ELIDED) {
                let inner = format!("{path}.{key}");
                let Some(found) = actual.get(key) else {
                    return Err(format!("{inner} is missing"));
                };
                matches(value, found, &inner)?;
            }
            if !partial && let Some(extra) = actual.keys().find(|k| !shown.contains_key(*k)) {
                return Err(format!("{path}.{extra} is not shown"));
            }
            Ok(())
        }
        (Value::Array(shown), Value::Array(actual)) => {
            let partial = shown.last() == Some(&Value::String(ELIDED.to_owned()));
            let listed = if partial {
                &shown[..shown.len() - 1]
            } else {
                &shown[..]
            };
            let counts_fit = if partial {
                actual.len() >= listed.len()
            } else {
                actual.len() == listed.len()
            };
            if !counts_fit {
                return Err(format!(
                    "{path} has {} elements, {} shown",
                    actual.len(),
                    listed.len()
                ));
            }
            for (i, (value, found)) in listed.iter().zip(actual).enumerate() {
                matches(value, found, &format!("{path}[{i}]"))?;
            }
            Ok(())
        }
        _ if shown == actual => Ok(()),
        _ => Err(format!("{path} is {actual}, {shown} shown")),
    }
}

/// A free loopback port (another process could take it before the server does; the
/// server then fails to start and the test says so).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binds a loopback port");
    listener.local_addr().expect("a local address").port()
}

/// `strata serve`, stopped (SIGTERM, then waited for) when dropped.
struct Server {
    child: Child,
}

impl Server {
    fn start(strata: &Strata, port: u16) -> Self {
        let listen = format!("127.0.0.1:{port}");
        let child = strata
            .command(&["serve", "--listen", &listen])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("strata serve starts");
        let mut server = Self { child };
        let deadline = Instant::now() + TIMEOUT;
        while TcpStream::connect(&listen).is_err() {
            if let Some(status) = server.child.try_wait().expect("the server's status") {
                panic!("strata serve exited with {status} before listening on {listen}");
            }
            assert!(
                Instant::now() < deadline,
                "strata serve did not listen on {listen} within {TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        signal(self.child.id(), "TERM");
        wait_status(&mut self.child, TIMEOUT);
    }
}

/// Runs one command of the session with `sh`, against `port`, quietly and bounded.
fn curl(command: &str, port: u16) -> (Option<i32>, String) {
    let stream = command.contains(" -N ");
    let max_time = if stream { STREAM_SECONDS } else { "60" };
    let command = command
        .replacen("curl ", &format!("curl -sS --max-time {max_time} "), 1)
        .replace("localhost:7700", &format!("127.0.0.1:{port}"));
    let output = Command::new("sh")
        .args(["-c", &command])
        .stdin(Stdio::null())
        .output()
        .expect("sh runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.stderr.is_empty() || stream,
        "{command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), stdout)
}

#[test]
fn the_readme_session_with_curl_answers_what_it_shows() {
    let found = Command::new("curl").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "this test runs README.md's curl commands: install curl"
    );
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README.md reads");
    let steps = session(&readme);
    assert!(
        steps.iter().filter(|s| s.shown.is_some()).count() >= 5,
        "the session shows answers: {steps:?}"
    );

    let strata = Strata::new();
    let port = free_port();
    let _server = Server::start(&strata, port);
    for step in &steps {
        let (code, stdout) = curl(&step.command, port);
        if step.command.contains(" -N ") {
            // A live stream: cut by curl's time limit, after the history it sent first.
            assert_eq!(code, Some(28), "{}: {stdout}", step.command);
            assert!(stdout.starts_with("id: 1\n"), "{}: {stdout}", step.command);
            continue;
        }
        assert_eq!(code, Some(0), "{}: {stdout}", step.command);
        let actual: Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{}: {e}: {stdout}", step.command));
        assert!(actual.get("error").is_none(), "{}: {actual}", step.command);
        if let Some(shown) = &step.shown
            && let Err(difference) = matches(&shown_json(shown), &actual, "")
        {
            panic!(
                "README.md shows another answer for\n  {}\n{difference}\nshown:  {shown}\nactual: {actual}",
                step.command
            );
        }
    }
}

#[test]
fn an_elided_answer_matches_only_what_it_leaves_out() {
    let shown = shown_json(r#"{"a":1,"b":[...],"c":[{"d":2,...},...],...} <- prose"#);
    let actual: Value =
        serde_json::from_str(r#"{"a":1,"b":[9,9],"c":[{"d":2,"e":3},{}],"z":0}"#).unwrap();
    assert_eq!(matches(&shown, &actual, ""), Ok(()));
    let exact = shown_json(r#"{"a":1,"c":[{"d":2}]}"#);
    assert!(matches(&exact, &actual, "").is_err());
    let fewer: Value = serde_json::from_str(r#"{"a":1,"c":[{"d":2}]}"#).unwrap();
    assert_eq!(matches(&exact, &fewer, ""), Ok(()));
    let other: Value = serde_json::from_str(r#"{"a":2,"c":[{"d":2}]}"#).unwrap();
    assert_eq!(
        matches(&exact, &other, ""),
        Err(".a is 2, 1 shown".to_owned())
    );
}
