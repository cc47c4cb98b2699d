//! PostgreSQL read models (`PostgresProjections`) against a real server: a batch and its
//! checkpoint commit together, a restart resumes without skipping or repeating, refused
//! events are parked in the same transaction, a rebuild takes over and drops the old
//! schema, a commit fence that refuses keeps the checkpoint where it was, and a leased
//! model runs on one node at a time and is taken over without a repeat. Needs
//! `STRATA_TEST_POSTGRES_URL`; each test makes a database of its own and drops it.

use std::str::FromStr as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt as _;
use strata_core::{Position, RecordedEvent};
use strata_projection::deadpool_postgres::Transaction;
use strata_projection::tokio_postgres::{self, Client, NoTls};
use strata_projection::{
    ApplyError, CommitFence, FailurePolicy, LeaseTimings, PostgresHome, PostgresHomeOptions,
    PostgresProjection, PostgresProjections, RunnerState,
};
use strata_store::{EventStore, MemoryStore, ReadFilter};

use crate::support::{Model, WAIT, append, append_many, eventually, expected_model, read_log};

/// A database made for one test, dropped (with its connections) when the test ends.
struct Database {
    admin: tokio_postgres::Config,
    config: tokio_postgres::Config,
    name: String,
}

impl Database {
    /// A fresh database, or `None` (after saying the test is skipped) without a server.
    async fn create(test: &str) -> Option<Self> {
        let url = match std::env::var("STRATA_TEST_POSTGRES_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                println!("skipped {test}: STRATA_TEST_POSTGRES_URL is unset");
                return None;
            }
        };
        let admin = tokio_postgres::Config::from_str(&url).expect("a PostgreSQL URL");
        let name = format!("strata_rm_test_{}", uuid::Uuid::new_v4().simple());
        connect(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create a test database");
        let mut config = admin.clone();
        config.dbname(&name);
        Some(Self {
            admin,
            config,
            name,
        })
    }

    async fn host(&self, store: &Arc<dyn EventStore>) -> PostgresProjections {
        PostgresProjections::connect_with(store.clone(), self.config.clone())
            .await
            .expect("a read store on the test database")
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let _ = connect(&admin)
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

async fn connect(config: &tokio_postgres::Config) -> Client {
    let (client, connection) = config.connect(NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// The counter of `support`, in PostgreSQL: every applied position with how many times
/// it was applied, and per-stream totals; refuses `"poison": true` while `refuse` is set.
struct PgCounter {
    version: u32,
    policy: FailurePolicy,
    refuse: AtomicBool,
}

impl PgCounter {
    fn new(version: u32, policy: FailurePolicy) -> Arc<Self> {
        Arc::new(Self {
            version,
            policy,
            refuse: AtomicBool::new(true),
        })
    }
}

const NAME: &str = "counter";

#[async_trait]
impl PostgresProjection for PgCounter {
    fn name(&self) -> &'static str {
        NAME
    }
    fn version(&self) -> u32 {
        self.version
    }
    fn filter(&self) -> ReadFilter {
        ReadFilter::all().category("acct")
    }
    fn policy(&self) -> FailurePolicy {
        self.policy
    }
    async fn migrate(&self, tx: &Transaction<'_>) -> Result<(), tokio_postgres::Error> {
        tx.batch_execute(
            "CREATE TABLE applied (position BIGINT PRIMARY KEY, times BIGINT NOT NULL);
             CREATE TABLE totals (stream TEXT PRIMARY KEY, events BIGINT NOT NULL, sum BIGINT NOT NULL);",
        )
        .await
    }
    async fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ApplyError> {
        let data: serde_json::Value = serde_json::from_slice(&event.data)?;
        let applied = tx
            .prepare_cached(
                "INSERT INTO applied (position, times) VALUES ($1, 1)
                 ON CONFLICT (position) DO UPDATE SET times = applied.times + 1",
            )
            .await?;
        tx.execute(&applied, &[&(event.position.0 as i64)]).await?;
        let totals = tx
            .prepare_cached(
                "INSERT INTO totals (stream, events, sum) VALUES ($1, 1, $2)
                 ON CONFLICT (stream) DO UPDATE
                 SET events = totals.events + 1, sum = totals.sum + excluded.sum",
            )
            .await?;
        tx.execute(
            &totals,
            &[&event.stream.as_str(), &data["n"].as_i64().unwrap_or(0)],
        )
        .await?;
        if event.event_type.as_str() != "Added" {
            return Err(ApplyError::unhandled(&event.event_type));
        }
        if data["poison"].as_bool() == Some(true) && self.refuse.load(Ordering::SeqCst) {
            return Err(ApplyError::new(format!("poison at {}", event.position)));
        }
        Ok(())
    }
}

/// The counter model as the host's query sees it.
async fn query_model(host: &PostgresProjections) -> Model {
    host.query(NAME, |client| {
        async move {
            let checkpoint: i64 = client
                .query_one("SELECT position FROM strata_checkpoint", &[])
                .await?
                .get(0);
            let applied = client
                .query("SELECT position, times FROM applied ORDER BY position", &[])
                .await?
                .iter()
                .map(|r| (r.get::<_, i64>(0) as u64, r.get(1)))
                .collect();
            let totals = client
                .query(
                    "SELECT stream, events, sum FROM totals ORDER BY stream",
                    &[],
                )
                .await?
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            Ok(Model {
                checkpoint: checkpoint as u64,
                applied,
                totals,
            })
        }
        .boxed()
    })
    .await
    .expect("query the counter")
}

/// The schemas of the read store, by name.
async fn schemas(db: &Database) -> Vec<String> {
    connect(&db.config)
        .await
        .query(
            "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'rm\\_%' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_resumes_from_the_stored_checkpoint_without_skipping_or_repeating() {
    let Some(db) = Database::create("pg restart").await else {
        return;
    };
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let first = append_many(&*store, 120, 7).await;
    let host = db.host(&store).await;
    host.register(PgCounter::new(1, FailurePolicy::Stop))
        .await
        .unwrap();
    host.start();
    host.wait_for(NAME, first, WAIT).await.unwrap();
    host.shutdown().await;

    // Events appended while no runner runs, then a new host (a restarted process).
    let head = append_many(&*store, 80, 5).await;
    let host = db.host(&store).await;
    host.register(PgCounter::new(1, FailurePolicy::Stop))
        .await
        .unwrap();
    assert_eq!(
        host.status()[0].checkpoint,
        first,
        "the stored checkpoint is where the first host stopped"
    );
    host.start();
    host.wait_for(NAME, head, WAIT).await.unwrap();
    let log = read_log(&*store).await;
    assert_eq!(query_model(&host).await, expected_model(&log, head.0, &[]));
    assert_eq!(
        schemas(&db).await,
        vec!["rm_counter_v1_g1".to_owned()],
        "one schema per generation"
    );
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_events_are_parked_with_the_batch_and_can_be_retried() {
    let Some(db) = Database::create("pg parking").await else {
        return;
    };
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    append_many(&*store, 10, 3).await;
    let poison = append(
        &*store,
        "acct-9",
        "Added",
        serde_json::json!({"n": 1000, "poison": true}),
    )
    .await;
    let other = append(&*store, "acct-9", "Renamed", serde_json::json!({"n": 5})).await;
    let head = append_many(&*store, 10, 3).await;
    let host = db.host(&store).await;
    let counter = PgCounter::new(1, FailurePolicy::Park);
    host.register(counter.clone()).await.unwrap();
    host.start();
    host.wait_for(NAME, head, WAIT).await.unwrap();

    let log = read_log(&*store).await;
    let model = query_model(&host).await;
    assert_eq!(
        model,
        expected_model(&log, head.0, &[poison.0, other.0]),
        "neither the parked event nor the unhandled one left a write behind"
    );
    let parked = host.parked(NAME).await.unwrap();
    assert_eq!(
        parked.len(),
        1,
        "only the refused event is parked: {parked:?}"
    );
    assert_eq!(parked[0].position, poison);
    assert!(parked[0].error.contains("poison"), "{:?}", parked[0].error);
    assert_eq!(host.status()[0].parked, 1);

    // Retried while still refused: it stays, its attempt counted.
    assert!(host.retry_parked(NAME, poison).await.is_err());
    assert_eq!(host.parked(NAME).await.unwrap()[0].attempts, 2);
    // Once the code accepts it, it applies and leaves the table.
    counter.refuse.store(false, Ordering::SeqCst);
    host.retry_parked(NAME, poison).await.unwrap();
    assert!(host.parked(NAME).await.unwrap().is_empty());
    assert_eq!(host.status()[0].parked, 0);
    let model = query_model(&host).await;
    assert!(model.applied.contains(&(poison.0, 1)), "{model:?}");
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_event_under_policy_stop_stops_the_runner_just_before_it() {
    let Some(db) = Database::create("pg stop").await else {
        return;
    };
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let before = append_many(&*store, 5, 2).await;
    let poison = append(
        &*store,
        "acct-1",
        "Added",
        serde_json::json!({"poison": true}),
    )
    .await;
    append_many(&*store, 5, 2).await;
    let host = db.host(&store).await;
    host.register(PgCounter::new(1, FailurePolicy::Stop))
        .await
        .unwrap();
    host.start();
    let err = host.wait_for(NAME, poison, WAIT).await.unwrap_err();
    assert!(
        matches!(err, strata_projection::ProjectionError::Stopped { .. }),
        "{err}"
    );
    let status = &host.status()[0];
    assert_eq!(status.state, RunnerState::Failed);
    assert_eq!(status.checkpoint, before);
    assert_eq!(query_model(&host).await.checkpoint, before.0);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_builds_a_new_schema_takes_over_and_drops_the_old_one() {
    let Some(db) = Database::create("pg rebuild").await else {
        return;
    };
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let head = append_many(&*store, 60, 4).await;
    let host = db.host(&store).await;
    host.register(PgCounter::new(1, FailurePolicy::Stop))
        .await
        .unwrap();
    host.start();
    host.wait_for(NAME, head, WAIT).await.unwrap();
    host.rebuild(NAME).await.unwrap();
    let status = &host.status()[0];
    assert_eq!((status.version, status.generation), (1, 2));
    let log = read_log(&*store).await;
    assert_eq!(query_model(&host).await, expected_model(&log, head.0, &[]));
    assert!(
        tokio::time::timeout(WAIT, async {
            while schemas(&db).await != ["rm_counter_v1_g2"] {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .is_ok(),
        "the old schema is dropped: {:?}",
        schemas(&db).await
    );
    host.shutdown().await;

    // A new version registered on restart builds beside the answering one.
    let host = db.host(&store).await;
    host.register(PgCounter::new(2, FailurePolicy::Stop))
        .await
        .unwrap();
    host.start();
    let deadline = tokio::time::Instant::now() + WAIT;
    while host.status()[0].version != 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(host.status()[0].version, 2, "{:?}", host.status());
    assert_eq!(query_model(&host).await, expected_model(&log, head.0, &[]));
    host.shutdown().await;
}

/// A fence that refuses while `open` is false, and counts its checks.
struct Gate {
    open: AtomicBool,
}

#[async_trait]
impl CommitFence for Gate {
    async fn check(
        &self,
        runner: &str,
        tx: &tokio_postgres::Transaction<'_>,
    ) -> Result<(), String> {
        // It runs inside the batch's transaction: the checkpoint written is visible.
        tx.query_one("SELECT position FROM strata_checkpoint", &[])
            .await
            .map_err(|e| e.to_string())?;
        if self.open.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(format!("{runner} holds no lease"))
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refusing_commit_fence_keeps_the_batch_and_its_checkpoint_out() {
    let Some(db) = Database::create("pg fence").await else {
        return;
    };
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let head = append_many(&*store, 20, 3).await;
    let host = db.host(&store).await;
    let gate = Arc::new(Gate {
        open: AtomicBool::new(false),
    });
    host.set_fence(Some(gate.clone()));
    host.register(PgCounter::new(1, FailurePolicy::Stop))
        .await
        .unwrap();
    host.start();
    assert!(
        eventually(WAIT, || host.status()[0].last_error.is_some()).await,
        "the refusal shows in the status"
    );
    let status = &host.status()[0];
    assert!(
        status
            .last_error
            .as_deref()
            .unwrap()
            .contains("holds no lease"),
        "{status:?}"
    );
    assert_eq!(status.checkpoint, Position::ZERO);
    let model = query_model(&host).await;
    assert!(
        model.applied.is_empty() && model.checkpoint == 0,
        "{model:?}"
    );

    gate.open.store(true, Ordering::SeqCst);
    host.wait_for(NAME, head, WAIT).await.unwrap();
    let log = read_log(&*store).await;
    assert_eq!(query_model(&host).await, expected_model(&log, head.0, &[]));
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_beyond_the_head_is_refused_on_postgresql_too() {
    let Some(db) = Database::create("pg ahead of log").await else {
        return;
    };
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let head = append_many(&*store, 12, 2).await;
    let host = db.host(&store).await;
    host.register(PgCounter::new(1, FailurePolicy::Stop))
        .await
        .unwrap();
    host.start();
    host.wait_for(NAME, head, WAIT).await.unwrap();
    host.shutdown().await;

    // The same read store over a log that lost events.
    let shorter: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    append_many(&*shorter, 5, 2).await;
    let host = db.host(&shorter).await;
    host.register(PgCounter::new(1, FailurePolicy::Stop))
        .await
        .unwrap();
    host.start();
    // Reaching past the stored checkpoint needs the runner, which refuses to run.
    let err = host
        .wait_for(NAME, Position(head.0 + 1), WAIT)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            strata_projection::ProjectionError::Stopped {
                cause: strata_projection::StopCause::CheckpointAheadOfLog { .. },
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(host.status()[0].state, RunnerState::Failed);
    host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leased_read_model_runs_on_one_node_and_another_takes_over_without_repeating() {
    let Some(db) = Database::create("pg leased read model").await else {
        return;
    };
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let first = append_many(&*store, 100, 7).await;
    let mut nodes = Vec::new();
    for node in ["node-a", "node-b"] {
        let mut options = PostgresHomeOptions::default();
        options.lease_timings = LeaseTimings::with_ttl(Duration::from_secs(2));
        let home = PostgresHome::connect(db.config.clone(), node, options)
            .await
            .expect("leases on the test database");
        let host = db.host(&store).await;
        host.set_leases(Some(home.leases()));
        host.register(PgCounter::new(1, FailurePolicy::Stop))
            .await
            .unwrap();
        host.start();
        nodes.push(host);
    }

    // Both answer read-your-writes waits: the holder applies, the other follows the
    // stored checkpoint.
    for host in &nodes {
        host.wait_for(NAME, first, WAIT).await.unwrap();
    }
    // The standby refreshes its state once a second; give it a moment to say so.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let running: Vec<_> = nodes
        .iter()
        .map(|host| host.status()[0].state != RunnerState::Standby)
        .collect();
    assert_eq!(
        running.iter().filter(|r| **r).count(),
        1,
        "exactly one node runs the projection: {running:?}"
    );
    let holder = running.iter().position(|r| *r).unwrap();
    let other = nodes.remove(1 - holder);
    nodes.remove(0).shutdown().await;

    // The holder is gone: the other takes the lease over and goes on from the checkpoint.
    let head = append_many(&*store, 60, 5).await;
    other
        .wait_for(NAME, head, Duration::from_secs(20))
        .await
        .expect("the other node takes over");
    let log = read_log(&*store).await;
    assert_eq!(
        query_model(&other).await,
        expected_model(&log, head.0, &[]),
        "every event applied exactly once across the two nodes"
    );
    other.shutdown().await;
}
