//! [`ReplicatedStore`] against a real hot standby: appends on the primary, subscribers
//! and reads on the standby. Needs `STRATA_TEST_POSTGRES_URL` and
//! `STRATA_TEST_POSTGRES_REPLICA_URL` (a standby of that server; scripts/services.sh makes
//! one); says it is skipped when either is unset. Each test's database is made on the
//! primary and reaches the standby by replication.

use std::str::FromStr as _;
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::json;
use strata_core::{
    EventType, ExpectedVersion, NewEvent, Position, RecordedEvent, StreamName, Version,
};
use strata_store::{Direction, EventStore, ReadFilter, StoreError};
use strata_store_postgres::{PostgresError, ReplayError, ReplicaOptions, ReplicatedStore};

use crate::support::{Databases, connect, options};

/// The variable naming the standby of the test server.
const REPLICA_VARIABLE: &str = "STRATA_TEST_POSTGRES_REPLICA_URL";
/// Every wait below is bounded by this, so a lost event fails the test instead of hanging.
const DEADLINE: Duration = Duration::from_secs(30);

const WRITERS: usize = 4;
const APPENDS_PER_WRITER: usize = 30;

/// The primary's databases and the standby's settings, or `None` after saying why the
/// test is skipped.
fn servers(test: &str) -> Option<(Databases, tokio_postgres::Config)> {
    let databases = Databases::new(test)?;
    let standby = match std::env::var(REPLICA_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            println!(
                "skipped {test}: {REPLICA_VARIABLE} is unset (a standby's postgres:// URL runs it)"
            );
            return None;
        }
    };
    let standby = tokio_postgres::Config::from_str(&standby)
        .unwrap_or_else(|err| panic!("{REPLICA_VARIABLE} is not a PostgreSQL URL: {err}"));
    Some((databases, standby))
}

fn replica_options() -> ReplicaOptions {
    let mut replica = ReplicaOptions::default();
    replica.store = options(Duration::from_millis(200));
    replica.catch_up_timeout = DEADLINE;
    replica
}

/// A replicated store on a fresh database of the primary and the same database on the
/// standby (opening waits for it to be replayed there).
async fn replicated(databases: &Databases, standby: &tokio_postgres::Config) -> ReplicatedStore {
    let primary = databases.create().await;
    let mut standby = standby.clone();
    standby.dbname(primary.get_dbname().expect("a database name"));
    ReplicatedStore::connect_with(primary, standby, replica_options())
        .await
        .unwrap_or_else(|err| panic!("open the primary and its standby: {err}"))
}

fn event(n: usize) -> NewEvent {
    NewEvent::json(
        EventType::new("Replicated").expect("a valid type"),
        &json!({"n": n}),
    )
}

/// Collects `total` events of a subscription on the replicated store.
async fn collect(store: ReplicatedStore, total: usize) -> Vec<RecordedEvent> {
    let mut subscription = store.subscribe(Position::ZERO, ReadFilter::default());
    let mut seen = Vec::with_capacity(total);
    while seen.len() < total {
        match tokio::time::timeout(DEADLINE, subscription.next()).await {
            Ok(Some(Ok(event))) => seen.push(event),
            Ok(Some(Err(err))) => panic!("the subscription on the standby failed: {err}"),
            Ok(None) => panic!("the subscription on the standby ended"),
            Err(_) => panic!(
                "the subscription on the standby saw {} of {total} events in {DEADLINE:?}",
                seen.len()
            ),
        }
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_on_the_standby_sees_every_event_of_the_primary_once_in_order() {
    let Some((databases, standby)) = servers("the replica subscription test") else {
        return;
    };
    let store = replicated(&databases, &standby).await;
    // One subscriber from before the first append, one started while the writers run.
    let early = tokio::spawn(collect(store.clone(), WRITERS * APPENDS_PER_WRITER * 2));
    let writers: Vec<_> = (0..WRITERS)
        .map(|writer| {
            let store = store.clone();
            tokio::spawn(async move {
                for append in 0..APPENDS_PER_WRITER {
                    let stream = StreamName::new(format!("replica-{}", (writer + append) % 5))
                        .expect("a valid stream name");
                    let events = vec![event(append), event(append + 1000)];
                    store
                        .append(&stream, ExpectedVersion::Any, events)
                        .await
                        .unwrap_or_else(|err| panic!("append to {stream}: {err}"));
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let late = tokio::spawn(collect(store.clone(), WRITERS * APPENDS_PER_WRITER * 2));
    for writer in writers {
        writer.await.expect("a writer");
    }

    let expected = store
        .primary()
        .read_all(Position::ZERO, usize::MAX, &ReadFilter::default())
        .await
        .expect("the primary's log")
        .events;
    assert_eq!(expected.len(), WRITERS * APPENDS_PER_WRITER * 2);
    for (name, subscriber) in [("early", early), ("late", late)] {
        let seen = subscriber.await.expect("a subscriber");
        let positions: Vec<u64> = seen.iter().map(|e| e.position.0).collect();
        let wanted: Vec<u64> = (1..=expected.len() as u64).collect();
        assert_eq!(positions, wanted, "the {name} subscriber's positions");
        for (seen, stored) in seen.iter().zip(&expected) {
            assert_eq!(
                (seen.id, &seen.stream, seen.version),
                (stored.id, &stored.stream, stored.version),
                "the {name} subscriber's event at position {}",
                stored.position
            );
        }
    }
    store.close();
}

#[tokio::test]
async fn a_write_is_readable_through_the_standby_once_it_is_replayed() {
    let Some((databases, standby)) = servers("the replica read-your-writes test") else {
        return;
    };
    let store = replicated(&databases, &standby).await;
    let stream = StreamName::new("replica-ryw").expect("a valid stream name");
    let events = vec![event(1), event(2)];
    let appended = store
        .append(&stream, ExpectedVersion::NoStream, events.clone())
        .await
        .expect("the first append");

    let replayed = store
        .wait_replayed(appended.position, DEADLINE)
        .await
        .expect("the standby replays the append");
    assert!(replayed >= appended.position);
    assert!(store.head().await.expect("the standby's head") >= appended.position);
    let read = store
        .read_stream(&stream, None, Direction::Forward, 10)
        .await
        .expect("read the stream on the standby");
    assert_eq!(
        read.iter().map(|e| e.id).collect::<Vec<_>>(),
        events.iter().map(|e| e.id).collect::<Vec<_>>(),
        "the standby serves the replayed events"
    );
    assert_eq!(
        store.stream_version(&stream).await.expect("its version"),
        Version(2)
    );

    // Repeats and conflicts are the primary's to decide, even before the standby knows.
    let repeated = store
        .append(&stream, ExpectedVersion::NoStream, events)
        .await
        .expect("an idempotent repeat");
    assert_eq!(repeated, appended, "a repeat answers the first result");
    match store
        .append(&stream, ExpectedVersion::NoStream, vec![event(3)])
        .await
    {
        Err(StoreError::WrongExpectedVersion { actual, .. }) => assert_eq!(actual, Version(2)),
        other => panic!("a conflicting append answered {other:?}"),
    }

    // A position nobody wrote: the wait ends at its bound, saying how far the standby is.
    let beyond = Position(appended.position.0 + 1000);
    match store
        .wait_replayed(beyond, Duration::from_millis(300))
        .await
    {
        Err(ReplayError::Lagging {
            position, replayed, ..
        }) => {
            assert_eq!(position, beyond);
            assert_eq!(replayed, appended.position);
        }
        other => panic!("waiting beyond the log answered {other:?}"),
    }
    store.close();
}

#[tokio::test]
async fn opening_says_why_the_standby_is_not_ready() {
    let Some((databases, standby)) = servers("the replica readiness test") else {
        return;
    };
    let primary = databases.create().await;
    let mut missing = standby.clone();
    missing.dbname(format!(
        "strata_test_missing_{}",
        uuid::Uuid::new_v4().simple()
    ));
    let mut replica = replica_options();
    replica.catch_up_timeout = Duration::from_millis(300);
    match ReplicatedStore::connect_with(primary, missing, replica).await {
        Err(PostgresError::StandbyNotReady { reason, .. }) => {
            assert!(reason.contains("does not exist"), "the reason: {reason}");
        }
        Err(other) => panic!("opening on a missing database answered {other}"),
        Ok(_) => panic!("opening on a missing database succeeded"),
    }
}

/// Replay on the standby paused until dropped (a test that dies in between leaves it
/// paused; scripts/services.sh resumes it).
struct ReplayPaused(tokio_postgres::Config);

impl ReplayPaused {
    async fn new(standby: &tokio_postgres::Config) -> Self {
        connect(standby)
            .await
            .batch_execute("SELECT pg_wal_replay_pause()")
            .await
            .expect("pause replay on the standby");
        Self(standby.clone())
    }
}

impl Drop for ReplayPaused {
    fn drop(&mut self) {
        let standby = self.0.clone();
        // Drop may run inside the test's runtime, which cannot be blocked on.
        let resumer = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to resume replay");
            runtime.block_on(async {
                connect(&standby)
                    .await
                    .batch_execute("SELECT pg_wal_replay_resume()")
                    .await
            })
        });
        if !matches!(resumer.join(), Ok(Ok(_))) {
            eprintln!("could not resume replay on the standby");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_waits_until_the_standby_has_replayed_the_primarys_head() {
    let Some((databases, standby)) = servers("the replica catch-up test") else {
        return;
    };
    // Opened once so that the standby has the database and the schema.
    let first = replicated(&databases, &standby).await;
    let (primary, mut standby) = (first.primary().clone(), standby.clone());
    standby.dbname(primary.config().get_dbname().expect("a database name"));

    // Written through the primary alone while the standby does not replay, as by a node
    // that ran without the replica.
    let paused = ReplayPaused::new(&standby).await;
    let stream = StreamName::new("replica-before").expect("a valid stream name");
    let written = primary
        .append(
            &stream,
            ExpectedVersion::NoStream,
            (0..50).map(event).collect(),
        )
        .await
        .expect("a batch on the primary");
    let mut impatient = replica_options();
    impatient.catch_up_timeout = Duration::from_millis(300);
    match ReplicatedStore::connect_with(primary.config().clone(), standby.clone(), impatient).await
    {
        Err(PostgresError::StandbyNotReady { reason, .. }) => assert!(
            reason.contains(&format!("of the primary's {}", written.position)),
            "the reason: {reason}"
        ),
        Err(other) => panic!("opening on a paused standby answered {other}"),
        Ok(_) => panic!("opening on a paused standby did not wait for the primary's head"),
    }
    let opening = tokio::spawn(ReplicatedStore::connect_with(
        primary.config().clone(),
        standby,
        replica_options(),
    ));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !opening.is_finished(),
        "opening waits while replay is paused"
    );
    drop(paused);
    let store = opening
        .await
        .expect("the opening task")
        .unwrap_or_else(|err| panic!("open once replay resumed: {err}"));
    // No wait here: a checkpoint taken from the primary is never ahead of the standby.
    assert!(store.head().await.expect("the standby's head") >= written.position);
    assert_eq!(
        store.stream_version(&stream).await.expect("its version"),
        Version(50)
    );
    store.close();
    first.close();
}
