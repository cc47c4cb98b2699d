//! How fresh a query must be: the `after` (a command's consistency token) and
//! `timeout_ms` query parameters every read route accepts, their defaults and bounds
//! ([`Freshness`]), their extraction beside a route's own parameters ([`FreshQuery`]),
//! and the wait on a strata-projection read model they ask for.
//!
//! It must not know any domain or read model: the module names the model it waits on.

use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts};
use axum::http::request::Parts;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use strata_core::Position;
use strata_projection::{ProjectionError, Projections};
use utoipa::IntoParams;
use utoipa::openapi::path::{Parameter, ParameterIn};

use crate::{ApiError, ApiResult, AppState};

/// How long a query waits for its read model when `timeout_ms` is not given.
pub const DEFAULT_WAIT: Duration = Duration::from_secs(5);

/// The two parameters, as they arrive.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct FreshnessParams {
    /// A command's position (its consistency token): wait until the read model includes
    /// it.
    after: Option<u64>,
    /// How long to wait for `after`, in milliseconds (default 5000, at most the server's
    /// limit); 503 `consistency_timeout` past it.
    timeout_ms: Option<u64>,
}

/// How fresh a query must be: the position its read model must include (none: as it
/// is), and how long to wait for it, already bounded by the server's limit.
///
/// As an extractor it reads `after` and `timeout_ms` from the query string and refuses
/// any other parameter; routes with parameters of their own use [`FreshQuery`]. Put it
/// in a handler's `params(...)` to document both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    after: Option<Position>,
    timeout: Duration,
}

impl Freshness {
    /// No wait: the read model as it is.
    pub const NOW: Freshness = Freshness {
        after: None,
        timeout: Duration::ZERO,
    };

    /// Waits for `after` up to `timeout` (position 0 asks for nothing).
    pub fn new(after: Option<Position>, timeout: Duration) -> Self {
        Self {
            after: after.filter(|p| p.0 > 0),
            timeout,
        }
    }

    fn from_params(params: &FreshnessParams, max_wait: Duration) -> Self {
        let timeout = params
            .timeout_ms
            .map_or(DEFAULT_WAIT, Duration::from_millis)
            .min(max_wait);
        Self::new(params.after.map(Position), timeout)
    }

    /// The position the read model must include, if any.
    pub fn after(&self) -> Option<Position> {
        self.after
    }

    /// How long to wait for it.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Waits until strata-projection's read model `read_model` has applied everything
    /// up to `after` (at once if no position was asked for). Not in time: 503
    /// `consistency_timeout`; a read model that stopped on an event: 500.
    pub async fn wait(&self, projections: &Projections, read_model: &str) -> ApiResult<()> {
        let Some(position) = self.after else {
            return Ok(());
        };
        match projections
            .wait_for(read_model, position, self.timeout)
            .await
        {
            Ok(()) => Ok(()),
            Err(ProjectionError::Timeout { position, .. }) => Err(ApiError::consistency_timeout(
                position.0,
                u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX),
            )),
            Err(err) => Err(ApiError::internal(format!(
                "cannot wait for read model {read_model}: {err}"
            ))),
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Freshness
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let params: FreshnessParams = parse(parts.uri.query().unwrap_or(""))?;
        Ok(Self::from_params(
            &params,
            AppState::from_ref(state).limits().max_wait,
        ))
    }
}

impl IntoParams for Freshness {
    fn into_params(parameter_in: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        FreshnessParams::into_params(parameter_in)
    }
}

/// A read route's query string: the [`Freshness`] parameters beside the route's own
/// parameters `T` (which may deny unknown fields: `after` and `timeout_ms` never reach
/// it). Document both in `params(...)`: `Freshness` and `T`.
#[derive(Debug, Clone)]
pub struct FreshQuery<T> {
    /// How fresh the answer must be.
    pub freshness: Freshness,
    /// The route's own parameters.
    pub params: T,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for FreshQuery<T>
where
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or("");
        let max_wait = AppState::from_ref(state).limits().max_wait;
        if query.is_empty() {
            // Nothing to split: both sides read the empty query string.
            return Ok(FreshQuery {
                freshness: Freshness::from_params(&FreshnessParams::default(), max_wait),
                params: parse("")?,
            });
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query)
            .map_err(|e| ApiError::invalid(format!("invalid query: {e}")))?;
        let (fresh, own): (Vec<_>, Vec<_>) = pairs
            .into_iter()
            .partition(|(key, _)| key == "after" || key == "timeout_ms");
        let params: FreshnessParams = parse(&encode(&fresh)?)?;
        Ok(FreshQuery {
            freshness: Freshness::from_params(&params, max_wait),
            params: parse(&encode(&own)?)?,
        })
    }
}

fn encode(pairs: &[(String, String)]) -> ApiResult<String> {
    serde_urlencoded::to_string(pairs)
        .map_err(|e| ApiError::internal(format!("cannot re-encode a query string: {e}")))
}

/// Parses a query string into `T`, naming the parameter that is wrong.
fn parse<T: DeserializeOwned>(query: &str) -> ApiResult<T> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        if path == "." {
            ApiError::invalid(format!("invalid query: {inner}"))
        } else {
            ApiError::invalid(format!("invalid query: {path}: {inner}"))
        }
    })
}

#[cfg(test)]
mod tests;
