//! A module written outside the server, the way a user's own domain would be: typed
//! state, roles declared per route, its own error type mapped through `ErrorMapping`,
//! and queries that wait for a read model through `Freshness`.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use serde::Serialize;
use strata_core::RecordedEvent;
use strata_projection::{ApplyError, Projections, SqliteProjection};
use strata_server::{
    ApiError, AppState, ErrorEnvelope, ErrorMapping, Freshness, Module, ModuleError, ModuleRoutes,
    ModuleState, Role, Routes, Tokens, app,
};
use strata_store::{EventStore, MemoryStore, ReadFilter};
use utoipa::ToSchema;
use utoipa_axum::routes;

use crate::support::{append_one, get, send};

/// Counts every event.
struct Counter;

impl SqliteProjection for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }

    fn version(&self) -> u32 {
        1
    }

    fn filter(&self) -> ReadFilter {
        ReadFilter::all()
    }

    fn migrate(&self, tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("CREATE TABLE seen (position INTEGER PRIMARY KEY)")
    }

    fn apply(
        &self,
        tx: &rusqlite::Transaction<'_>,
        event: &RecordedEvent,
    ) -> Result<(), ApplyError> {
        tx.execute(
            "INSERT INTO seen (position) VALUES (?1)",
            [event.position.0 as i64],
        )?;
        Ok(())
    }
}

/// The module's own error, from its own crate.
#[derive(Debug)]
enum CountError {
    Busy,
    Broken(String),
}

#[derive(Clone)]
struct CountModule {
    projections: Projections,
}

impl ErrorMapping<CountError> for CountModule {
    fn api_error(error: CountError) -> ApiError {
        match error {
            CountError::Busy => ApiError::conflict("busy", "the counter is busy"),
            CountError::Broken(cause) => ApiError::internal(cause),
        }
    }
}

type CountState = ModuleState<CountModule>;

/// How many events the counter has seen.
#[derive(Serialize, ToSchema)]
struct Count {
    count: u64,
}

/// The count, once the counter has reached `after`.
#[utoipa::path(
    get,
    path = "/count",
    params(Freshness),
    responses(
        (status = 200, description = "The count", body = Count),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
async fn count(State(state): State<CountState>, fresh: Freshness) -> Result<Json<Count>, ApiError> {
    let projections = &state.module().projections;
    fresh.wait(projections, "counter").await?;
    let count = projections
        .query("counter", |conn| {
            conn.query_row("SELECT COUNT(*) FROM seen", [], |row| row.get::<_, i64>(0))
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    Ok(Json(Count {
        count: count as u64,
    }))
}

/// Fails with the module's own error.
#[utoipa::path(
    post,
    path = "/count/reset",
    responses((status = 409, description = "busy", body = ErrorEnvelope))
)]
async fn reset(
    State(_state): State<CountState>,
) -> Result<Json<Count>, ModuleError<CountError, CountModule>> {
    Err(CountError::Busy)?
}

/// Fails with an internal error whose cause must not reach the client.
#[utoipa::path(
    get,
    path = "/count/broken",
    responses((status = 500, description = "internal", body = ErrorEnvelope))
)]
async fn broken() -> Result<Json<Count>, ModuleError<CountError, CountModule>> {
    Err(CountError::Broken("cannot open /srv/secret/counter.sqlite".to_owned()).into())
}

impl Module for CountModule {
    fn name(&self) -> &str {
        "count"
    }

    fn routes(&self, host: &AppState) -> ModuleRoutes {
        Routes::<CountState>::new()
            .route(Role::Read, routes!(count))
            .route(Role::Admin, routes!(reset))
            .route(Role::Read, routes!(broken))
            .with_state(ModuleState::new(host.clone(), self.clone()))
    }
}

#[tokio::test]
async fn a_module_from_outside_mounts_with_its_state_roles_errors_and_freshness() {
    let dir = tempfile::tempdir().unwrap();
    let store: Arc<dyn EventStore> = Arc::new(MemoryStore::new());
    let projections = Projections::new(store.clone(), dir.path());
    projections.register(Arc::new(Counter)).unwrap();
    projections.start();
    let module = CountModule {
        projections: projections.clone(),
    };
    let open = app(AppState::builder(store.clone())
        .module(Arc::new(module.clone()))
        .build());

    append_one(&open, "tally-1", "Counted").await;
    let head = append_one(&open, "tally-1", "Counted").await["position"]
        .as_u64()
        .unwrap();
    let counted = get(&open, &format!("/count?after={head}")).await;
    assert_eq!(counted.status, StatusCode::OK, "{}", counted.text());
    assert_eq!(counted.json()["count"], 2);
    let late = get(&open, "/count?after=999&timeout_ms=20").await;
    assert_eq!(
        late.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        late.text()
    );
    assert_eq!(late.code(), "consistency_timeout");
    assert_eq!(late.json()["error"]["after"], 999);
    assert_eq!(
        get(&open, "/count?x=1").await.status,
        StatusCode::BAD_REQUEST
    );

    let busy = send(
        &open,
        Request::post("/count/reset").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(
        (busy.status, busy.code()),
        (StatusCode::CONFLICT, "busy".to_owned())
    );
    let broken = get(&open, "/count/broken").await;
    assert_eq!(broken.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        broken.json()["error"]["error_id"].is_string(),
        "{}",
        broken.text()
    );
    assert!(!broken.text().contains("/srv/secret"), "{}", broken.text());

    // The roles are the ones the module declared.
    let tokens = Tokens::parse(
        "writer-0123456789 write\nadmin-0123456789 admin\n",
        "tokens",
    )
    .unwrap();
    let secured = app(AppState::builder(store)
        .module(Arc::new(module))
        .tokens(Some(tokens))
        .build());
    let reset_as = |token: &str| {
        Request::post("/count/reset")
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(
        send(&secured, reset_as("writer-0123456789")).await.status,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(&secured, reset_as("admin-0123456789")).await.status,
        StatusCode::CONFLICT
    );
    let doc = get(&open, "/openapi.json").await.json();
    assert_eq!(
        doc["paths"]["/count/reset"]["post"]["security"][0]["bearer"][0],
        "admin"
    );
    projections.shutdown().await;
}
