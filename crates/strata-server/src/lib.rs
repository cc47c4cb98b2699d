//! strata's HTTP server: the event store API (append, read, list, subscribe over
//! server-sent events), operations (health, Prometheus metrics, projections, relays), bearer-token
//! access control, the OpenAPI document, the web console, and the [`Module`] seam through
//! which a domain (the shop, or a user's own) mounts its routes from its own crate.
//!
//! What a module needs is public here: [`Routes`] (each route with the [`Role`] it needs,
//! typed state such as [`ModuleState`]), [`CommandHeaders`] and [`CommandAnswer`] for
//! commands, [`Freshness`] and [`FreshQuery`] for queries, [`ErrorMapping`] and
//! [`ModuleError`] for its errors, and the extractors that answer malformed input in the
//! server's error shape.
//!
//! Only this crate (and the modules' HTTP crates) know HTTP. It depends on no domain,
//! holds no domain logic and runs no projection: it translates requests into calls on the
//! store, a [`ProjectionHost`] and modules, and their results into answers.

mod api;
mod auth;
mod body_timeout;
mod command;
mod console;
mod error;
mod extract;
mod freshness;
mod metrics;
mod module;
mod projections;
mod read_side;
mod relays;
mod serve;
mod state;

pub use api::app;
pub use api::schema::{ErrorDetail, ErrorEnvelope};
pub use auth::{MIN_TOKEN_BYTES, Role, Tokens, TokensError};
pub use command::{
    ACTOR, CORRELATION_ID, CommandAnswer, CommandHeaders, IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_REUSED,
    run_command,
};
pub use error::{
    ApiError, ApiResult, CONSISTENCY_TIMEOUT, ErrorMapping, INTERNAL, INVALID_INPUT, ModuleError,
    TOO_LARGE,
};
pub use extract::{Body, JsonBody, Path, Query, json_error, parse_json};
pub use freshness::{DEFAULT_WAIT, FreshQuery, Freshness};
pub use metrics::{LatencyBucket, Stats, StatsSnapshot};
pub use module::{CATEGORY_OWNED, Module, ModuleRoutes, ModuleState, Routes};
pub use projections::{
    ParkedEvent, ProjectionError, ProjectionHost, ProjectionStatus, READ_MODEL_STOPPED,
    RunnerStatus,
};
pub use read_side::ReadSide;
pub use relays::{RelayHost, RelayView};
pub use serve::{
    RESERVED_FDS, SHUTDOWN_GRACE, ServeError, check_exposure, derived_max_connections, serve,
};
pub use state::{
    AppState, AppStateBuilder, DEFAULT_BODY_LIMIT, DEFAULT_BODY_TIMEOUT, DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_SUBSCRIBERS, DEFAULT_REQUEST_TIMEOUT, DEFAULT_SEND_TIMEOUT,
    DEFAULT_SUBSCRIBER_STALL, Limits,
};
