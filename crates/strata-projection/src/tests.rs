//! Unit tests of the synchronous pieces: the projection state machine's batch rule
//! (model, parked events and checkpoint in one transaction), the process-manager state
//! machine, the metadata's leftovers rule, names and backoff.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use rusqlite::params;
use strata_core::{EventId, EventType, Position, RecordedEvent, StreamName, Timestamp, Version};
use strata_store::ReadFilter;

use crate::backoff::Backoff;
use crate::core::{BatchOutcome, ProjectionCore};
use crate::meta::{self, GenerationId};
use crate::{ApplyError, FailurePolicy, SqliteProjection};

/// Sums `data.n` per stream; refuses events whose data has `"bad": true` while
/// `refuse` is set.
struct Sums {
    policy: FailurePolicy,
    refuse: AtomicBool,
}

impl Sums {
    fn new(policy: FailurePolicy) -> Arc<Self> {
        Arc::new(Self {
            policy,
            refuse: AtomicBool::new(true),
        })
    }
}

impl SqliteProjection for Sums {
    fn name(&self) -> &'static str {
        "sums"
    }
    fn version(&self) -> u32 {
        1
    }
    fn filter(&self) -> ReadFilter {
        ReadFilter::all()
    }
    fn policy(&self) -> FailurePolicy {
        self.policy
    }
    fn migrate(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE sums (stream TEXT PRIMARY KEY, total INTEGER NOT NULL)")
    }
    fn apply(
        &self,
        tx: &rusqlite::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError> {
        let data: serde_json::Value = serde_json::from_slice(&event.data)?;
        // Write first, so a refusal has something to roll back.
        tx.execute(
            "INSERT INTO sums (stream, total) VALUES (?1, ?2)
             ON CONFLICT (stream) DO UPDATE SET total = total + excluded.total",
            params![event.stream.as_str(), data["n"].as_i64().unwrap_or(0)],
        )?;
        if data["bad"].as_bool() == Some(true) && self.refuse.load(Ordering::SeqCst) {
            return Err(ApplyError::new("bad event"));
        }
        Ok(())
    }
}

fn event(position: u64, stream: &str, data: serde_json::Value) -> RecordedEvent {
    RecordedEvent {
        position: Position(position),
        stream: StreamName::new(stream).unwrap(),
        version: Version(position),
        id: EventId::new(),
        event_type: EventType::new("Added").unwrap(),
        data: Bytes::from(serde_json::to_vec(&data).unwrap()),
        metadata: Bytes::from_static(b"{}"),
        recorded_at: Timestamp::from_unix_nanos(position as i64),
    }
}

fn total(path: &std::path::Path, stream: &str) -> Option<i64> {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.query_row("SELECT total FROM sums WHERE stream = ?1", [stream], |r| {
        r.get(0)
    })
    .ok()
}

#[test]
fn a_batch_moves_the_model_and_the_checkpoint_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sums.sqlite3");
    let mut core = ProjectionCore::open(Sums::new(FailurePolicy::Stop), &path, 1).unwrap();
    assert_eq!(core.checkpoint(), Position(0));
    let batch = vec![
        event(1, "a-1", serde_json::json!({"n": 2})),
        event(3, "a-1", serde_json::json!({"n": 5})),
    ];
    let outcome = core.apply_batch(&batch, Position(4)).unwrap();
    assert_eq!(
        outcome,
        BatchOutcome::Applied {
            checkpoint: Position(4),
            parked: 0
        }
    );
    // Events at or below the checkpoint are never applied twice.
    core.apply_batch(&batch, Position::ZERO).unwrap();
    assert_eq!(total(&path, "a-1"), Some(7));
    drop(core);
    let core = ProjectionCore::open(Sums::new(FailurePolicy::Stop), &path, 1).unwrap();
    assert_eq!(core.checkpoint(), Position(4));
}

#[test]
fn stop_commits_the_events_before_the_refused_one_and_nothing_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sums.sqlite3");
    let mut core = ProjectionCore::open(Sums::new(FailurePolicy::Stop), &path, 1).unwrap();
    let batch = vec![
        event(1, "a-1", serde_json::json!({"n": 1})),
        event(2, "a-1", serde_json::json!({"n": 10})),
        event(5, "a-1", serde_json::json!({"n": 100, "bad": true})),
        event(6, "a-1", serde_json::json!({"n": 1000})),
    ];
    let outcome = core.apply_batch(&batch, Position::ZERO).unwrap();
    assert_eq!(
        outcome,
        BatchOutcome::Stopped {
            checkpoint: Position(4),
            parked: 0,
            position: Position(5),
            error: "bad event".into()
        }
    );
    assert_eq!(total(&path, "a-1"), Some(11));
    assert_eq!(core.checkpoint(), Position(4));
}

#[test]
fn park_records_the_refused_event_in_the_same_transaction_and_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sums.sqlite3");
    let sums = Sums::new(FailurePolicy::Park);
    let mut core = ProjectionCore::open(sums.clone(), &path, 1).unwrap();
    let batch = vec![
        event(1, "a-1", serde_json::json!({"n": 1})),
        event(2, "a-1", serde_json::json!({"n": 10, "bad": true})),
        event(3, "a-1", serde_json::json!({"n": 100})),
    ];
    let outcome = core.apply_batch(&batch, Position::ZERO).unwrap();
    assert_eq!(
        outcome,
        BatchOutcome::Applied {
            checkpoint: Position(3),
            parked: 1
        }
    );
    assert_eq!(total(&path, "a-1"), Some(101));
    assert_eq!(core.parked_count().unwrap(), 1);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let parked = crate::core::list_parked(&conn).unwrap();
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].position, Position(2));
    assert_eq!(parked[0].error, "bad event");
    assert_eq!(parked[0].attempts, 1);

    // A retry that fails again counts the attempt and keeps nothing of it.
    let again = core.retry_parked(Position(2)).unwrap();
    assert!(again.is_err());
    assert_eq!(total(&path, "a-1"), Some(101));
    assert_eq!(crate::core::list_parked(&conn).unwrap()[0].attempts, 2);

    sums.refuse.store(false, Ordering::SeqCst);
    core.retry_parked(Position(2)).unwrap().unwrap();
    assert_eq!(total(&path, "a-1"), Some(111));
    assert_eq!(core.parked_count().unwrap(), 0);
    assert!(matches!(
        core.retry_parked(Position(2)),
        Err(crate::ProjectionError::NotParked { .. })
    ));
}

/// Batches are applied whole first, and again with a savepoint per event when one is
/// refused: whichever way a batch went, a refused event leaves nothing behind and every
/// other event is applied once, batch after batch.
#[test]
fn a_refused_event_in_any_batch_leaves_nothing_whichever_way_the_batch_went() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sums.sqlite3");
    let mut core = ProjectionCore::open(Sums::new(FailurePolicy::Park), &path, 1).unwrap();
    let mut expected = 0;
    let mut parked = Vec::new();
    // Clean, refused, clean, clean, refused at the end, clean: each batch follows one
    // of either kind.
    for (b, bad_at) in [None, Some(1), None, None, Some(2), None]
        .into_iter()
        .enumerate()
    {
        let first = b as u64 * 3 + 1;
        let batch: Vec<_> = (0..3)
            .map(|i| {
                let n = 1 << (first + i);
                let bad = bad_at == Some(i);
                if bad {
                    parked.push(Position(first + i));
                } else {
                    expected += n;
                }
                event(first + i, "a-1", serde_json::json!({"n": n, "bad": bad}))
            })
            .collect();
        let outcome = core.apply_batch(&batch, Position::ZERO).unwrap();
        assert_eq!(
            outcome,
            BatchOutcome::Applied {
                checkpoint: Position(first + 2),
                parked: u64::from(bad_at.is_some())
            },
            "batch {b}"
        );
        assert_eq!(total(&path, "a-1"), Some(expected), "batch {b}");
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let listed: Vec<_> = crate::core::list_parked(&conn)
        .unwrap()
        .into_iter()
        .map(|p| p.position)
        .collect();
    assert_eq!(listed, parked);
}

#[test]
fn a_storage_fault_in_apply_commits_nothing() {
    struct Broken;
    impl SqliteProjection for Broken {
        fn name(&self) -> &'static str {
            "broken"
        }
        fn version(&self) -> u32 {
            1
        }
        fn filter(&self) -> ReadFilter {
            ReadFilter::all()
        }
        fn policy(&self) -> FailurePolicy {
            FailurePolicy::Park
        }
        fn migrate(&self, _: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
            Ok(())
        }
        fn apply(
            &self,
            _: &rusqlite::Transaction<'_>,
            _: &RecordedEvent,
        ) -> Result<(), ApplyError> {
            Err(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
                None,
            )
            .into())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.sqlite3");
    let mut core = ProjectionCore::open(Arc::new(Broken), &path, 1).unwrap();
    let batch = vec![event(1, "a-1", serde_json::json!({}))];
    assert!(core.apply_batch(&batch, Position::ZERO).is_err());
    assert_eq!(core.checkpoint(), Position(0));
    assert_eq!(core.parked_count().unwrap(), 0);
}

#[test]
fn apply_errors_from_sqlite_know_whether_storage_failed() {
    let full =
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL), None);
    assert!(ApplyError::from(full).is_transient());
    let constraint = rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT),
        None,
    );
    assert!(!ApplyError::from(constraint).is_transient());
    assert!(!ApplyError::from("no such order".to_owned()).is_transient());
    assert_eq!(ApplyError::new("x").to_string(), "x");
}

#[test]
fn leftover_files_are_removed_and_named_ones_kept() {
    let dir = tempfile::tempdir().unwrap();
    let keep = GenerationId {
        version: 2,
        generation: 5,
    };
    for name in [
        "orders-v2-g5.sqlite3",
        "orders-v2-g5.sqlite3-wal",
        "orders-v1-g4.sqlite3",
        "orders-v1-g4.sqlite3-shm",
        "orders_x-v1-g1.sqlite3",
        "notes.txt",
    ] {
        std::fs::write(dir.path().join(name), b"").unwrap();
    }
    meta::remove_leftovers(dir.path(), "orders", &[keep]).unwrap();
    let mut left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [
            "notes.txt",
            "orders-v2-g5.sqlite3",
            "orders-v2-g5.sqlite3-wal",
            "orders_x-v1-g1.sqlite3"
        ]
    );
}

#[test]
fn names_become_file_names_so_they_are_checked() {
    use crate::registry::validate_name;
    assert!(validate_name("order_summaries").is_ok());
    assert!(validate_name("v2").is_ok());
    assert!(validate_name("").is_err());
    assert!(validate_name("Orders").is_err());
    assert!(validate_name("a-b").is_err());
    assert!(validate_name("../x").is_err());
    assert!(validate_name(&"a".repeat(65)).is_err());
}

#[test]
fn backoff_doubles_up_to_five_seconds_and_resets() {
    let mut backoff = Backoff::new();
    let delays: Vec<u128> = (0..10).map(|_| backoff.next_delay().as_millis()).collect();
    assert_eq!(
        delays,
        [50, 100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]
    );
    backoff.reset();
    assert_eq!(backoff.next_delay().as_millis(), 50);
}

#[test]
fn a_send_error_keeps_its_cause_and_says_it() {
    let err = crate::SendError::caused_by("sending to order-1", std::io::Error::other("bus down"));
    assert_eq!(err.to_string(), "sending to order-1: bus down");
    assert_eq!(err.message(), "sending to order-1: bus down");
    assert!(
        err.cause()
            .and_then(|c| c.downcast_ref::<std::io::Error>())
            .is_some(),
        "the cause is kept as the error it was"
    );
    assert!(crate::SendError::new("the bus is down").cause().is_none());
}

/// A projection that keeps every default.
struct Defaults;

impl SqliteProjection for Defaults {
    fn name(&self) -> &'static str {
        "defaults"
    }
    fn version(&self) -> u32 {
        1
    }
    fn filter(&self) -> ReadFilter {
        ReadFilter::all()
    }
    fn migrate(&self, _: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        Ok(())
    }
    fn apply(&self, _: &rusqlite::Transaction<'_>, _: &RecordedEvent) -> Result<(), ApplyError> {
        Ok(())
    }
}

#[test]
fn parking_is_the_default_policy() {
    assert_eq!(Defaults.policy(), FailurePolicy::Park);
    assert_eq!(FailurePolicy::default(), FailurePolicy::Park);
}

#[test]
fn an_unknown_event_type_is_unhandled_and_a_bad_payload_refused() {
    use strata_domain::CodecError;
    let unknown = ApplyError::from(CodecError::UnknownType("A".to_owned()));
    assert!(unknown.is_unhandled() && !unknown.is_transient());
    assert!(unknown.message().contains('A'), "{unknown}");
    let malformed = ApplyError::from(CodecError::Malformed {
        event_type: "ProductCreated".to_owned(),
        reason: "price must not be negative".to_owned(),
    });
    assert!(!malformed.is_unhandled() && !malformed.is_transient());
    assert!(!ApplyError::new("refused").is_unhandled());
}

#[test]
fn an_unhandled_event_is_stepped_over_under_stop_with_nothing_left_behind() {
    /// Handles only events whose data has `n`; writes before refusing the others.
    struct Picky;
    impl SqliteProjection for Picky {
        fn name(&self) -> &'static str {
            "picky"
        }
        fn version(&self) -> u32 {
            1
        }
        fn filter(&self) -> ReadFilter {
            ReadFilter::all()
        }
        fn policy(&self) -> FailurePolicy {
            FailurePolicy::Stop
        }
        fn migrate(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
            tx.execute_batch("CREATE TABLE seen (position INTEGER PRIMARY KEY)")
        }
        fn apply(
            &self,
            tx: &rusqlite::Transaction<'_>,
            event: &RecordedEvent,
        ) -> Result<(), ApplyError> {
            tx.execute("INSERT INTO seen VALUES (?1)", [event.position.0 as i64])?;
            let data: serde_json::Value = serde_json::from_slice(&event.data)?;
            if data.get("n").is_none() {
                return Err(ApplyError::unhandled(&event.event_type));
            }
            Ok(())
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("picky.sqlite3");
    let mut core = ProjectionCore::open(Arc::new(Picky), &path, 1).unwrap();
    let batch = vec![
        event(1, "a-1", serde_json::json!({"n": 1})),
        event(2, "a-1", serde_json::json!({})),
        event(3, "a-1", serde_json::json!({"n": 3})),
    ];
    assert_eq!(
        core.apply_batch(&batch, Position::ZERO).unwrap(),
        BatchOutcome::Applied {
            checkpoint: Position(3),
            parked: 0
        }
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let seen: Vec<i64> = conn
        .prepare("SELECT position FROM seen ORDER BY position")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(seen, [1, 3]);
    assert_eq!(core.parked_count().unwrap(), 0);
}

#[test]
fn a_writer_connection_uses_the_wal_and_checkpoints_it_often() {
    let dir = tempfile::tempdir().unwrap();
    let conn = crate::db::open_writer(&dir.path().join("model.db")).unwrap();
    let pragma = |name: &str| -> String {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| {
            row.get::<_, rusqlite::types::Value>(0)
        })
        .map(|v| match v {
            rusqlite::types::Value::Integer(i) => i.to_string(),
            rusqlite::types::Value::Text(t) => t,
            other => format!("{other:?}"),
        })
        .unwrap()
    };
    assert_eq!(pragma("journal_mode"), "wal");
    // NORMAL: a commit is not synced on its own (the model is rebuilt from the log if
    // the last commits are lost); a checkpoint is.
    assert_eq!(pragma("synchronous"), "1");
    // SQLite's default: it bounds how many pages a checkpoint copies, and so how long it
    // holds the commit that runs it (and the events waiting behind that commit).
    assert_eq!(pragma("wal_autocheckpoint"), "1000");
}

#[test]
fn a_new_model_database_has_small_pages_and_an_old_one_keeps_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let page_size = |conn: &rusqlite::Connection| -> i64 {
        conn.pragma_query_value(None, "page_size", |row| row.get(0))
            .unwrap()
    };
    let fresh = dir.path().join("fresh.db");
    let conn = crate::db::open_model_writer(&fresh).unwrap();
    conn.execute_batch("CREATE TABLE t (x)").unwrap();
    assert_eq!(page_size(&conn), 2048);
    let journal: String = conn
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(journal, "wal");
    drop(conn);
    // A database made with SQLite's default pages opens as it is, rows and all.
    let old = dir.path().join("old.db");
    let conn = rusqlite::Connection::open(&old).unwrap();
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    assert_eq!(page_size(&conn), 4096);
    drop(conn);
    let conn = crate::db::open_model_writer(&old).unwrap();
    assert_eq!(page_size(&conn), 4096);
    let x: i64 = conn.query_row("SELECT x FROM t", [], |r| r.get(0)).unwrap();
    assert_eq!(x, 1);
    // Other databases (process managers, snapshots) keep SQLite's default.
    let other = crate::db::open_writer(&dir.path().join("other.db")).unwrap();
    other.execute_batch("CREATE TABLE t (x)").unwrap();
    assert_eq!(page_size(&other), 4096);
}
