//! Crash consistency: a child process (this test binary, re-executed) appends from several
//! tasks and a thread and prints every acknowledged append; the parent kills it with
//! SIGKILL at a random moment, reopens the store and checks that every acknowledged event
//! is there, whole, that nothing is half-visible, and that the store still takes appends.
//! Every round reuses the same directory, so recovery runs on top of earlier recoveries.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use strata_core::{EventId, EventType, ExpectedVersion, NewEvent, Position, StreamName, Version};
use strata_store::{AppendResult, EventStore, ReadFilter, StoreError};
use strata_store_embedded::{Durability, EmbeddedStore, Options, verify};

/// Set in the child's environment to the data directory it appends to.
const CHILD_ENV: &str = "STRATA_CRASH_CHILD";
/// Set in the child's environment to `none` to acknowledge before fdatasync.
const DURABILITY_ENV: &str = "STRATA_CRASH_DURABILITY";
/// Kill-and-recover rounds on one directory.
const ROUNDS: u64 = 15;
/// Small segments, so that rolls happen while the child is killed.
const SEGMENT_BYTES: u64 = 64 * 1024;
/// Async tasks appending in the child (besides one thread using the blocking API).
const CHILD_TASKS: u64 = 4;
/// The child stops by itself after this long, so a parent that failed to kill it leaves
/// no process behind (the parent treats such an exit as a failure).
const CHILD_LIFETIME: Duration = Duration::from_secs(20);

fn options() -> Options {
    Options {
        segment_bytes: SEGMENT_BYTES,
        ..Options::default()
    }
}

/// What the child runs with: `Durability::None` promises survival of a process crash too.
fn child_options() -> Options {
    let durability = match std::env::var(DURABILITY_ENV).as_deref() {
        Ok("none") => Durability::None,
        _ => Durability::Sync,
    };
    Options {
        durability,
        ..options()
    }
}

/// A small xorshift generator: the child and the parent need cheap randomness, not a
/// reproducible sequence (the kill moment is not reproducible anyway).
struct Rng(u64);

impl Rng {
    fn seeded(salt: u64) -> Self {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 32) ^ salt.wrapping_mul(0x9E37_79B9);
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// One acknowledged append, as the child reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ack {
    stream: String,
    first_version: u64,
    last_version: u64,
    first_position: u64,
    position: u64,
    ids: Vec<EventId>,
}

impl Ack {
    fn new(stream: &StreamName, result: &AppendResult, events: &[NewEvent]) -> Self {
        Self {
            stream: stream.as_str().to_owned(),
            first_version: result.first_version.0,
            last_version: result.last_version.0,
            first_position: result.first_position.0,
            position: result.position.0,
            ids: events.iter().map(|e| e.id).collect(),
        }
    }

    fn to_line(&self) -> String {
        let ids: Vec<String> = self.ids.iter().map(ToString::to_string).collect();
        format!(
            "ACK {} {} {} {} {} {}\n",
            self.stream,
            self.first_version,
            self.last_version,
            self.first_position,
            self.position,
            ids.join(",")
        )
    }

    fn parse(line: &str) -> Option<Self> {
        let mut parts = line.strip_prefix("ACK ")?.trim_end().split(' ');
        let ack = Self {
            stream: parts.next()?.to_owned(),
            first_version: parts.next()?.parse().ok()?,
            last_version: parts.next()?.parse().ok()?,
            first_position: parts.next()?.parse().ok()?,
            position: parts.next()?.parse().ok()?,
            ids: parts
                .next()?
                .split(',')
                .map(str::parse)
                .collect::<Result<_, _>>()
                .ok()?,
        };
        parts.next().is_none().then_some(ack)
    }
}

/// The events of one append. Each carries the append's token, its index and the count,
/// so that the parent can tell from the log alone whether an append is whole.
fn batch(n: u64, rng: &mut Rng) -> Vec<NewEvent> {
    let token = EventId::new().to_string();
    (0..n)
        .map(|i| {
            let pad = "x".repeat(rng.below(1500) as usize);
            NewEvent::json(
                EventType::new(if i == 0 { "Started" } else { "Continued" }).unwrap(),
                &serde_json::json!({ "append": token, "i": i, "n": n, "pad": pad }),
            )
        })
        .collect()
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).unwrap();
    out.flush().unwrap();
}

/// The child's entry point: does nothing in a normal test run.
#[test]
fn child_entry() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    // A failed check anywhere in the child ends it, so that the parent sees it exit.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        std::process::exit(101);
    }));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let store =
        EmbeddedStore::open(Path::new(&dir), child_options()).expect("the child opens the store");
    print_line("READY\n");
    let blocking = {
        let store = store.clone();
        std::thread::spawn(move || blocking_appender(&store))
    };
    runtime.block_on(async {
        for task in 0..CHILD_TASKS {
            tokio::spawn(task_appender(store.clone(), task));
        }
        tokio::time::sleep(CHILD_LIFETIME).await;
    });
    drop(blocking);
    std::process::exit(3);
}

/// Appends forever: single and multi-event appends to shared streams (`Any`), to the
/// task's own stream (exact versions, sometimes repeated to exercise idempotency) and to a
/// stream every task races for (exact versions; conflicts are expected).
async fn task_appender(store: EmbeddedStore, task: u64) {
    let mut rng = Rng::seeded(task + 1);
    let own = StreamName::new(format!("own-{task}")).unwrap();
    let race = StreamName::new("race-0").unwrap();
    let mut own_version = store.stream_version(&own).await.unwrap().0;
    loop {
        let choice = rng.below(10);
        let (stream, expected, n) = match choice {
            0..=3 => (shared_stream(&mut rng), ExpectedVersion::Any, 1),
            4..=5 => (
                shared_stream(&mut rng),
                ExpectedVersion::Any,
                2 + rng.below(4),
            ),
            6..=8 => (
                own.clone(),
                ExpectedVersion::Exact(own_version),
                1 + rng.below(5),
            ),
            _ => {
                let current = store.stream_version(&race).await.unwrap().0;
                (
                    race.clone(),
                    ExpectedVersion::Exact(current),
                    1 + rng.below(3),
                )
            }
        };
        let events = batch(n, &mut rng);
        match store.append(&stream, expected, events.clone()).await {
            Ok(result) => {
                print_line(&Ack::new(&stream, &result, &events).to_line());
                if stream == own {
                    own_version = result.last_version.0;
                    if rng.below(6) == 0 {
                        let again = store.append(&stream, expected, events.clone()).await;
                        let again = again.expect("a repeated append is idempotent");
                        assert_eq!(again, result, "a repeat returns the original result");
                        print_line(&Ack::new(&stream, &again, &events).to_line());
                    }
                }
            }
            Err(StoreError::WrongExpectedVersion { .. }) if stream == race => {}
            Err(err) => panic!("append to {stream} failed: {err}"),
        }
    }
}

fn shared_stream(rng: &mut Rng) -> StreamName {
    StreamName::new(format!("shared-{}", rng.below(3))).unwrap()
}

/// Appends single events with exact versions through the blocking API.
fn blocking_appender(store: &EmbeddedStore) {
    let mut rng = Rng::seeded(99);
    let stream = StreamName::new("blocking-0").unwrap();
    let mut version = store
        .read_stream_sync(&stream, None, strata_store::Direction::Backward, 1)
        .unwrap()
        .first()
        .map_or(0, |e| e.version.0);
    loop {
        let events = batch(1, &mut rng);
        let result = store
            .append_blocking(&stream, ExpectedVersion::Exact(version), events.clone())
            .unwrap_or_else(|err| panic!("blocking append failed: {err}"));
        version = result.last_version.0;
        print_line(&Ack::new(&stream, &result, &events).to_line());
    }
}

/// Starts a child on `dir`, kills it `delay` after it is ready (or after it starts, when
/// `before_ready`), and returns what it acknowledged.
fn run_child(
    dir: &Path,
    durability: &str,
    delay: Duration,
    before_ready: bool,
    logs: &Path,
) -> Vec<Ack> {
    let stderr_path = logs.join("child.stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::child_entry",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, dir)
        .env(DURABILITY_ENV, durability)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(stderr))
        .spawn()
        .expect("the test binary re-executes itself");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        let mut reader = BufReader::new(stdout);
        let mut line = Vec::new();
        loop {
            line.clear();
            match reader.read_until(b'\n', &mut line) {
                // A fragment without its newline was cut by the kill: it is not an ack
                // the parent could rely on.
                Ok(0) => return,
                Ok(_) if line.last() != Some(&b'\n') => return,
                Ok(_) => {
                    if tx
                        .send(String::from_utf8_lossy(&line).into_owned())
                        .is_err()
                    {
                        return;
                    }
                }
                Err(_) => return,
            }
        }
    });
    let mut lines = Vec::new();
    if !before_ready {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                // libtest prints the test's name on the same line before it.
                Ok(line) if line.ends_with("READY\n") => break,
                Ok(line) => lines.push(line),
                Err(err) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "the child never became ready ({err}); stderr:\n{}",
                        std::fs::read_to_string(&stderr_path).unwrap_or_default()
                    );
                }
            }
        }
    }
    std::thread::sleep(delay);
    let exited_early = child.try_wait().unwrap();
    // Child::kill sends SIGKILL: no destructor, no flush, no fsync runs in the child.
    let _ = child.kill();
    let status = child.wait().unwrap();
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    assert!(
        exited_early.is_none() && status.signal() == Some(9),
        "the child must die by SIGKILL, not exit by itself ({status:?}); stderr:\n{}",
        std::fs::read_to_string(&stderr_path).unwrap_or_default()
    );
    lines.iter().filter_map(|l| Ack::parse(l)).collect()
}

/// Reopens the store after a crash and checks it against every append acknowledged so
/// far; then appends once more (recorded as acknowledged too) and closes it.
fn check_recovered(dir: &Path, acked: &mut Vec<Ack>, rng: &mut Rng) -> u64 {
    // Before reopening: the only damage a crash may leave is a torn tail.
    let before = verify(dir).unwrap();
    assert!(
        before.problems.is_empty(),
        "verify after a crash: {:?}",
        before.problems
    );
    let store = EmbeddedStore::open(dir, options()).expect("the store reopens after a crash");
    let report = store.open_report();
    if let (Some(seen), Some(cut)) = (&before.torn_tail, &report.torn_tail) {
        assert_eq!(
            (&seen.file, seen.offset),
            (&cut.file, cut.offset),
            "verify and open agree on the torn tail"
        );
    }
    let events = read_everything(&store);
    let head = events.len() as u64;
    assert_eq!(report.events, head, "the open report counts every event");

    // Positions are 1..=head without a gap; each stream's versions count up from 1.
    let mut versions: HashMap<&str, u64> = HashMap::new();
    for (i, event) in events.iter().enumerate() {
        assert_eq!(
            event.position,
            Position(i as u64 + 1),
            "positions are contiguous"
        );
        let version = versions.entry(event.stream.as_str()).or_default();
        *version += 1;
        assert_eq!(
            event.version,
            Version(*version),
            "versions of {} are contiguous",
            event.stream
        );
    }

    // Atomicity: every append in the log is whole, acknowledged or not.
    let mut appends: BTreeMap<String, Vec<(u64, u64, &strata_core::RecordedEvent)>> =
        BTreeMap::new();
    for event in &events {
        let data = event.data_json();
        let token = data["append"]
            .as_str()
            .expect("every event names its append");
        let i = data["i"].as_u64().unwrap();
        let n = data["n"].as_u64().unwrap();
        appends
            .entry(token.to_owned())
            .or_default()
            .push((i, n, event));
    }
    for (token, parts) in &appends {
        let n = parts[0].1;
        assert_eq!(
            parts.len() as u64,
            n,
            "append {token} is half-visible: {} of its {n} events are in the log",
            parts.len()
        );
        for (k, (i, _, event)) in parts.iter().enumerate() {
            assert_eq!(*i, k as u64, "append {token} is in order");
            assert_eq!(event.stream, parts[0].2.stream);
            assert_eq!(event.position.0, parts[0].2.position.0 + k as u64);
            assert_eq!(event.version.0, parts[0].2.version.0 + k as u64);
        }
    }

    // Durability: every acknowledged event is there, where the acknowledgement said.
    for ack in acked.iter() {
        let count = ack.ids.len() as u64;
        assert_eq!(ack.last_version + 1 - ack.first_version, count, "{ack:?}");
        assert_eq!(ack.position + 1 - ack.first_position, count, "{ack:?}");
        assert!(
            ack.position <= head,
            "acknowledged append lost: {ack:?} (head is {head})"
        );
        for (k, id) in ack.ids.iter().enumerate() {
            let event = &events[(ack.first_position - 1) as usize + k];
            assert_eq!(event.stream.as_str(), ack.stream, "{ack:?}");
            assert_eq!(
                event.version,
                Version(ack.first_version + k as u64),
                "{ack:?}"
            );
            assert_eq!(&event.id, id, "{ack:?}");
        }
    }

    // The recovered store takes appends where the log ends.
    let stream = StreamName::new("parent-0").unwrap();
    let current = versions.get("parent-0").copied().unwrap_or(0);
    let new = batch(1 + rng.below(3), rng);
    let result = store
        .append_blocking(&stream, ExpectedVersion::Exact(current), new.clone())
        .expect("the recovered store takes appends");
    assert_eq!(result.first_position, Position(head + 1));
    acked.push(Ack::new(&stream, &result, &new));
    drop(store);

    let after = verify(dir).unwrap();
    assert!(after.problems.is_empty(), "{:?}", after.problems);
    assert!(after.torn_tail.is_none(), "{:?}", after.torn_tail);
    assert_eq!(after.events, result.position.0);
    head
}

fn read_everything(store: &EmbeddedStore) -> Vec<strata_core::RecordedEvent> {
    let mut events = Vec::new();
    let mut next = Position(1);
    loop {
        let page = store.read_all_sync(next, 500, &ReadFilter::all()).unwrap();
        if page.events.is_empty() {
            return events;
        }
        next = page.next;
        events.extend(page.events);
    }
}

#[test]
fn acknowledged_appends_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut rng = Rng::seeded(0);
    let mut acked: Vec<Ack> = Vec::new();
    let mut torn = 0;
    let started = Instant::now();
    for round in 0..ROUNDS {
        // Mostly kill while appending; every fifth round, possibly during open and
        // recovery of the previous crash.
        let before_ready = round % 5 == 4;
        let delay = Duration::from_millis(if before_ready {
            rng.below(40)
        } else {
            20 + rng.below(281)
        });
        // Every third round acknowledges without fdatasync: still safe from a process
        // crash, and the writer takes another path.
        let durability = if round % 3 == 2 { "none" } else { "sync" };
        acked.extend(run_child(
            dir.path(),
            durability,
            delay,
            before_ready,
            logs.path(),
        ));
        torn += u64::from(verify(dir.path()).unwrap().torn_tail.is_some());
        let head = check_recovered(dir.path(), &mut acked, &mut rng);
        eprintln!(
            "round {round} ({durability}): killed after {delay:?}, head {head}, {} acks so far",
            acked.len()
        );
    }
    // The test proves nothing unless the children acknowledged appends and rolled
    // segments before dying.
    let children_acked = acked.iter().filter(|a| a.stream != "parent-0").count();
    assert!(
        children_acked > 100,
        "only {children_acked} acknowledged appends"
    );
    let segments = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.path().extension().is_some_and(|x| x == "seg"))
        })
        .count();
    assert!(segments > 2, "only {segments} segments");
    eprintln!(
        "{ROUNDS} rounds in {:?}: {} acks, {segments} segments, {torn} torn tails",
        started.elapsed(),
        acked.len()
    );
}
