//! strata's HTTP server: the event store API (append, read, list, subscribe over
//! server-sent events), operations (health, Prometheus metrics, projections), bearer-token
//! access control, the OpenAPI document, the web console, and the [`Module`] seam through
//! which a domain (the shop, or a user's own) mounts its routes.
//!
//! Only this crate knows HTTP. It holds no domain logic and runs no projection: it
//! translates requests into calls on the store, a [`ProjectionHost`] and modules, and
//! their results into answers.

mod api;
mod auth;
mod catalog;
mod console;
mod error;
mod extract;
mod metrics;
mod module;
mod projections;
mod read_side;
mod serve;
mod shop;
mod state;

pub use api::{api_router, app};
pub use auth::{Role, Tokens, TokensError, required_role};
pub use catalog::StreamSummary;
pub use error::{ApiError, ApiResult, CONSISTENCY_TIMEOUT, INVALID_INPUT, TOO_LARGE};
pub use extract::{Body, JsonBody, Path, Query, json_error, parse_json};
pub use metrics::{LatencyBucket, Stats, StatsSnapshot};
pub use module::Module;
pub use projections::{
    ParkedEvent, ProjectionError, ProjectionHost, ProjectionStatus, RunnerStatus,
};
pub use read_side::ReadSide;
pub use serve::{SHUTDOWN_GRACE, ServeError, check_exposure, serve};
pub use shop::ShopModule;
pub use state::{AppState, AppStateBuilder, DEFAULT_BODY_LIMIT, DEFAULT_REQUEST_TIMEOUT, Limits};
