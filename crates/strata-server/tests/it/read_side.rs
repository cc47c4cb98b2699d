//! The operations routes over a real strata-projection host: a poison event is parked,
//! listed, retried (failing, then succeeding once fixed), and a rebuild starts; a process
//! manager is listed under the name every route accepts, and says it cannot be rebuilt.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::http::StatusCode;
use serde_json::{Value, json};
use strata_core::RecordedEvent;
use strata_domain::CommandContext;
use strata_projection::{
    ApplyError, CommandSender, FailurePolicy, ProcessManager, ProcessManagers, Projections,
    Reaction, SendError, SqliteProjection,
};
use strata_server::{AppState, ReadSide, app};
use strata_store::{EventStore, MemoryStore, ReadFilter};

use crate::support::{append_one, get, post};

/// Counts events; refuses `Poison` until fixed.
struct Picky {
    fixed: Arc<AtomicBool>,
}

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
        FailurePolicy::Park
    }

    fn migrate(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE seen (position INTEGER PRIMARY KEY)")
    }

    fn apply(
        &self,
        tx: &rusqlite::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError> {
        if event.event_type.as_str() == "Poison" && !self.fixed.load(Ordering::SeqCst) {
            return Err(ApplyError::new("poison is not digestible"));
        }
        tx.execute(
            "INSERT INTO seen (position) VALUES (?1)",
            [event.position.0 as i64],
        )?;
        Ok(())
    }
}

async fn status(app: &Router) -> Value {
    get(app, "/projections").await.json()["projections"][0].clone()
}

async fn eventually(app: &Router, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..200 {
        let s = status(app).await;
        if check(&s) {
            return s;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{what}: {}", status(app).await);
}

#[tokio::test]
async fn a_parked_event_is_listed_retried_and_a_rebuild_starts() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let fixed = Arc::new(AtomicBool::new(false));
    let projections = Projections::new(store.clone(), dir.path());
    projections
        .register(Arc::new(Picky {
            fixed: fixed.clone(),
        }))
        .unwrap();
    projections.start();
    let app = app(AppState::builder(store)
        .projections(Arc::new(ReadSide::new(projections.clone(), None)))
        .build());

    append_one(&app, "meal-1", "Good").await;
    append_one(&app, "meal-1", "Poison").await;
    append_one(&app, "meal-1", "Good").await;
    let s = eventually(&app, "the poison is parked and the rest applied", |s| {
        s["parked"] == 1 && s["checkpoint"] == 3
    })
    .await;
    assert_eq!(s["name"], "picky");
    assert_eq!(s["kind"], "projection");
    assert_eq!(s["lag_events"], 0);

    let parked = get(&app, "/projections/picky/parked").await.json();
    assert_eq!(parked["parked"][0]["position"], 2);
    assert_eq!(parked["parked"][0]["type"], "Poison");
    assert!(
        parked["parked"][0]["error"]
            .as_str()
            .unwrap()
            .contains("poison")
    );

    let again = post(&app, "/projections/picky/parked/2/retry", json!({})).await;
    assert_eq!(
        again.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        again.text()
    );
    assert_eq!(again.code(), "retry_failed");
    let wrong = post(&app, "/projections/picky/parked/3/retry", json!({})).await;
    assert_eq!(wrong.status, StatusCode::NOT_FOUND, "{}", wrong.text());

    fixed.store(true, Ordering::SeqCst);
    let retried = post(&app, "/projections/picky/parked/2/retry", json!({})).await;
    assert_eq!(retried.status, StatusCode::OK, "{}", retried.text());
    let parked = get(&app, "/projections/picky/parked").await.json();
    assert_eq!(parked["parked"], json!([]));
    assert_eq!(status(&app).await["parked"], 0);

    let rebuild = post(&app, "/projections/picky/rebuild", json!({})).await;
    assert_eq!(rebuild.status, StatusCode::ACCEPTED);
    eventually(&app, "the rebuild finishes", |s| {
        s["state"] == "live" && s["checkpoint"] == 3
    })
    .await;
    let metrics = get(&app, "/metrics").await.text();
    assert!(
        metrics.contains("strata_projection_lag_events{projection=\"picky\"} 0"),
        "{metrics}"
    );
    projections.shutdown().await;
}

/// A process manager that reacts to nothing.
struct Idle;

impl ProcessManager for Idle {
    type State = ();
    type Command = String;

    fn name(&self) -> &'static str {
        "idle_process"
    }
    fn filter(&self) -> ReadFilter {
        ReadFilter::all().category("idle")
    }
    fn correlate(&self, _: &RecordedEvent) -> Option<String> {
        None
    }
    fn react(&self, state: (), _: &RecordedEvent) -> Reaction<(), String> {
        Reaction::new(state)
    }
    fn on_timeout(&self, state: (), _: &str) -> Reaction<(), String> {
        Reaction::new(state)
    }
}

#[async_trait]
impl CommandSender<String> for Idle {
    async fn send(&self, _: String, _: CommandContext) -> Result<(), SendError> {
        Ok(())
    }
}

#[tokio::test]
async fn a_process_manager_is_listed_under_a_name_every_route_accepts() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let projections = Projections::new(store.clone(), dir.path().join("read"));
    let processes = ProcessManagers::new(store.clone(), dir.path().join("process"));
    processes.register(Arc::new(Idle), Arc::new(Idle)).unwrap();
    projections.start();
    processes.start();
    let app = app(AppState::builder(store)
        .projections(Arc::new(ReadSide::new(
            projections.clone(),
            Some(processes.clone()),
        )))
        .build());

    let list = get(&app, "/projections").await.json();
    let listed = &list["projections"][0];
    assert_eq!(listed["name"], "idle_process", "{list}");
    assert_eq!(listed["kind"], "process_manager");
    assert_eq!(listed["rebuildable"], false);

    let rebuild = post(&app, "/projections/idle_process/rebuild", json!({})).await;
    assert_eq!(rebuild.status, StatusCode::CONFLICT, "{}", rebuild.text());
    assert_eq!(rebuild.code(), "not_rebuildable");
    let parked = get(&app, "/projections/idle_process/parked").await;
    assert_eq!(parked.status, StatusCode::OK, "{}", parked.text());
    assert_eq!(parked.json()["parked"], json!([]));
    let unknown = post(&app, "/projections/nothing/rebuild", json!({})).await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
    processes.shutdown().await;
    projections.shutdown().await;
}
