//! Operations routes: health, metrics, live counters, the OpenAPI document, and the
//! projections (status, rebuild, parked events, retry), and the relays' status.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;
use strata_core::Position;
use utoipa::ToSchema;

use crate::api::schema::ErrorEnvelope;
use crate::extract::Path;
use crate::metrics::StatsSnapshot;
use crate::projections::{ParkedEvent, RunnerStatus};
use crate::relays::RelayView;
use crate::{ApiError, ApiResult, AppState};

/// The server's health.
#[derive(Serialize, ToSchema)]
pub(crate) struct Health {
    /// `ok`.
    status: &'static str,
    /// The store's last committed position.
    head: u64,
    /// The server's version.
    version: &'static str,
}

/// Whether the server can read and write its store. A store that is closed, poisoned
/// (after a failed write or fdatasync) or whose data directory is gone answers 503 with
/// the store's own code (`store_closed`, `store_poisoned`, `io_error`) and the reason.
#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    responses(
        (status = 200, description = "Healthy", body = Health),
        (status = 503, description = "The store is closed, poisoned or its data directory is gone", body = ErrorEnvelope),
    )
)]
pub(crate) async fn health(State(state): State<AppState>) -> ApiResult<Json<Health>> {
    let unhealthy = |err: strata_store::StoreError| {
        tracing::warn!(error = %err, "health check: the store cannot take appends");
        ApiError::unavailable(err.code(), err.to_string())
    };
    state.store().check().await.map_err(unhealthy)?;
    let head = state.store().head().await.map_err(unhealthy)?;
    Ok(Json(Health {
        status: "ok",
        head: head.0,
        version: env!("CARGO_PKG_VERSION"),
    }))
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    responses((status = 200, description = "Prometheus text", content_type = "text/plain", body = String))
)]
pub(crate) async fn metrics(State(state): State<AppState>) -> Response {
    if let Ok(head) = state.store().head().await {
        metrics::gauge!("strata_head_position").set(head.0 as f64);
    }
    if let Some(host) = state.projections()
        && let Ok(list) = host.status().await
    {
        for p in list {
            let name = p.name().to_owned();
            metrics::gauge!("strata_projection_lag_events", "projection" => name.clone())
                .set(p.lag_events() as f64);
            metrics::gauge!("strata_projection_checkpoint", "projection" => name)
                .set(p.checkpoint().0 as f64);
        }
    }
    if let Some(host) = state.relays() {
        for r in host.status() {
            metrics::gauge!("strata_relay_lag_events", "relay" => r.name.clone())
                .set(r.lag_events as f64);
            metrics::gauge!("strata_relay_up", "relay" => r.name).set(
                if matches!(r.state.as_str(), "live" | "catching_up") {
                    1.0
                } else {
                    0.0
                },
            );
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}

/// The live counters, for the console's charts.
#[derive(Serialize, ToSchema)]
pub(crate) struct Stats {
    /// The store's last committed position.
    head: u64,
    #[serde(flatten)]
    counters: StatsSnapshot,
}

/// Live counters: head position, appends, events, requests and their latencies.
#[utoipa::path(
    get,
    path = "/stats",
    tag = "operations",
    responses((status = 200, description = "Counters since the server started", body = Stats))
)]
pub(crate) async fn stats(State(state): State<AppState>) -> ApiResult<Json<Stats>> {
    Ok(Json(Stats {
        head: state.store().head().await?.0,
        counters: state.stats().snapshot(),
    }))
}

/// This document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "operations",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
pub(crate) async fn openapi(
    Extension(doc): Extension<Arc<utoipa::openapi::OpenApi>>,
) -> Json<utoipa::openapi::OpenApi> {
    Json((*doc).clone())
}

/// Every projection and process manager, told apart by `kind`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProjectionList {
    projections: Vec<RunnerStatus>,
}

/// Every projection and process manager with its checkpoint, lag, state, why it stopped
/// if it did, and whether it can be rebuilt.
#[utoipa::path(
    get,
    path = "/projections",
    tag = "operations",
    responses((status = 200, description = "The projections", body = ProjectionList))
)]
pub(crate) async fn list_projections(
    State(state): State<AppState>,
) -> ApiResult<Json<ProjectionList>> {
    let projections = match state.projections() {
        Some(host) => host.status().await?,
        None => Vec::new(),
    };
    Ok(Json(ProjectionList { projections }))
}

/// Every relay to a message broker.
#[derive(Serialize, ToSchema)]
pub(crate) struct RelayList {
    relays: Vec<RelayView>,
}

/// Every relay to a message broker with its checkpoint, lag, state and last error
/// (none when the server runs no relay).
#[utoipa::path(
    get,
    path = "/relays",
    tag = "operations",
    responses((status = 200, description = "The relays", body = RelayList))
)]
pub(crate) async fn list_relays(State(state): State<AppState>) -> Json<RelayList> {
    let relays = state.relays().map(|h| h.status()).unwrap_or_default();
    Json(RelayList { relays })
}

fn host(state: &AppState, name: &str) -> ApiResult<Arc<dyn crate::ProjectionHost>> {
    state
        .projections()
        .cloned()
        .ok_or_else(|| ApiError::not_found("not_found", format!("no projection is named {name:?}")))
}

/// A rebuild that started.
#[derive(Serialize, ToSchema)]
pub(crate) struct Rebuilding {
    /// The projection.
    rebuilding: String,
}

/// Rebuilds a projection from the start of the log, beside the current one, which keeps
/// answering; a rebuild that fails is given up and shows as failed in `/projections`.
#[utoipa::path(
    post,
    path = "/projections/{name}/rebuild",
    tag = "operations",
    params(("name" = String, Path, description = "The projection, as `/projections` names it")),
    responses(
        (status = 202, description = "The rebuild started", body = Rebuilding),
        (status = 404, description = "Nothing of that name", body = ErrorEnvelope),
        (status = 409, description = "not_rebuildable: a process manager", body = ErrorEnvelope),
    )
)]
pub(crate) async fn rebuild(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    host(&state, &name)?.rebuild(&name).await?;
    Ok((StatusCode::ACCEPTED, Json(Rebuilding { rebuilding: name })).into_response())
}

/// A projection's parked events.
#[derive(Serialize, ToSchema)]
pub(crate) struct ParkedList {
    parked: Vec<ParkedEvent>,
}

/// The events a projection set aside after they failed.
#[utoipa::path(
    get,
    path = "/projections/{name}/parked",
    tag = "operations",
    params(("name" = String, Path, description = "The projection")),
    responses(
        (status = 200, description = "The parked events", body = ParkedList),
        (status = 404, description = "No such projection", body = ErrorEnvelope),
    )
)]
pub(crate) async fn parked(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ParkedList>> {
    let parked = host(&state, &name)?.parked(&name).await?;
    Ok(Json(ParkedList { parked }))
}

/// A retried event.
#[derive(Serialize, ToSchema)]
pub(crate) struct Retried {
    /// Its position.
    retried: u64,
}

/// Processes a parked event again.
#[utoipa::path(
    post,
    path = "/projections/{name}/parked/{position}/retry",
    tag = "operations",
    params(
        ("name" = String, Path, description = "The projection"),
        ("position" = u64, Path, description = "The parked event's position"),
    ),
    responses(
        (status = 200, description = "Processed; no longer parked", body = Retried),
        (status = 400, description = "Bad position", body = ErrorEnvelope),
        (status = 404, description = "No such projection or parked event", body = ErrorEnvelope),
        (status = 422, description = "retry_failed: the event failed again and stays parked", body = ErrorEnvelope),
    )
)]
pub(crate) async fn retry(
    State(state): State<AppState>,
    Path((name, position)): Path<(String, u64)>,
) -> ApiResult<Json<Retried>> {
    host(&state, &name)?
        .retry_parked(&name, Position(position))
        .await?;
    Ok(Json(Retried { retried: position }))
}
