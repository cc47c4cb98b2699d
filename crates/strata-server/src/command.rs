//! What every domain's command routes share: the command headers read into a
//! [`CommandContext`] ([`CommandHeaders`]), the digest that binds an `Idempotency-Key` to
//! the request it came with ([`digest_request`]), and the answer built from a
//! [`CommandOutcome`] ([`CommandAnswer`], through [`run_command`], which also counts the
//! command in the metrics).
//!
//! It must not know any domain: the command itself is the module's to run.

use std::future::Future;
use std::time::Instant;

use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use strata_core::RecordedEvent;
use strata_domain::{CommandContext, CommandOutcome};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{ObjectBuilder, Required, Type};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::auth::Caller;
use crate::{ApiError, ApiResult, AppState, Body};

/// The header that names a command: a UUID, or any other string (hashed to one).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";
/// The header that groups a command with the request it belongs to.
pub const CORRELATION_ID: &str = "x-correlation-id";
/// The header that names who asks, when the server has no tokens (with tokens, the
/// actor is the name the tokens file gives the bearer token).
pub const ACTOR: &str = "x-actor";

/// The code of the 422 a module answers for an `Idempotency-Key` reused for another
/// request (a `strata_domain::CommandError::CommandIdReused`).
pub const IDEMPOTENCY_KEY_REUSED: &str = "idempotency_key_reused";

/// The namespace of command ids derived from idempotency keys that are not UUIDs.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6a1c_0d4e_5b2f_4c1a_9e3d_7f80_2b5c_91e4);
/// The namespace of request digests.
const DIGEST_NAMESPACE: Uuid = Uuid::from_u128(0x0b7e_2f6a_91c4_4d3e_8a15_c2d9_6e40_f371);
/// The longest header value accepted.
const MAX_HEADER_BYTES: usize = 255;

/// The digest of a request that carries an `Idempotency-Key`, left in its extensions by
/// [`digest_request`] for [`CommandHeaders`].
#[derive(Debug, Clone)]
struct RequestDigest(String);

/// Middleware: for a request with an `Idempotency-Key`, reads its body (under the body
/// limit) and records a digest of its method, path, query and body bytes, which
/// [`CommandHeaders`] puts in the command context. The domain stores it with the
/// command's first event and refuses the key for any request with another digest, so a
/// key stays bound to its first request after a restart too.
///
/// The digest is a name-based UUID (SHA-1): it tells a retry from another request sent
/// under the same key, nothing more; a client can only collide with its own key. A
/// request without the header passes untouched, its body unread.
pub(crate) async fn digest_request(request: Request, next: Next) -> Response {
    if !request.headers().contains_key(IDEMPOTENCY_KEY) {
        return next.run(request).await;
    }
    let (mut parts, body) = request.into_parts();
    let bytes = match Body::from_request(Request::from_parts(parts.clone(), body), &()).await {
        Ok(Body(bytes)) => bytes,
        Err(err) => return err.into_response(),
    };
    let target = parts.uri.path_and_query().map_or("", |p| p.as_str());
    let mut named =
        Vec::with_capacity(parts.method.as_str().len() + target.len() + bytes.len() + 2);
    named.extend_from_slice(parts.method.as_str().as_bytes());
    named.push(b' ');
    named.extend_from_slice(target.as_bytes());
    named.push(b'\n');
    named.extend_from_slice(&bytes);
    let digest = Uuid::new_v5(&DIGEST_NAMESPACE, &named);
    parts.extensions.insert(RequestDigest(digest.to_string()));
    next.run(Request::from_parts(parts, axum::body::Body::from(bytes)))
        .await
}

/// The command context of a request, read from its headers:
///
/// - the command id from `Idempotency-Key` (a UUID as given; any other string is hashed
///   to a UUID v5, so repeating a key repeats the command id); a fresh id without it;
/// - the request digest (see [`digest_request`]), binding the key to this request: the
///   key reused for another route, target or body answers 422
///   [`IDEMPOTENCY_KEY_REUSED`] (the module maps the domain's refusal to it);
/// - the correlation id from `X-Correlation-Id`;
/// - the actor: with tokens configured, the name the tokens file gives the bearer token
///   (a request that also sends `X-Actor` is refused, so nobody can act as someone
///   else); without tokens, `X-Actor`.
///
/// A malformed header is 400 `invalid_input`. Put it in a handler's `params(...)` to
/// document the headers.
#[derive(Debug, Clone)]
pub struct CommandHeaders(pub CommandContext);

impl<S: Send + Sync> FromRequestParts<S> for CommandHeaders {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<Caller>();
        let mut context = context(&parts.headers, caller)?;
        if parts.headers.contains_key(IDEMPOTENCY_KEY) {
            context.request_digest = parts.extensions.get::<RequestDigest>().map(|d| d.0.clone());
        }
        Ok(CommandHeaders(context))
    }
}

fn context(headers: &HeaderMap, caller: Option<&Caller>) -> ApiResult<CommandContext> {
    let header = |name: &str| -> ApiResult<Option<String>> {
        let Some(value) = headers.get(name) else {
            return Ok(None);
        };
        let text = value
            .to_str()
            .map_err(|_| ApiError::invalid(format!("the {name} header must be visible ASCII")))?
            .trim();
        if text.is_empty() || text.len() > MAX_HEADER_BYTES {
            return Err(ApiError::invalid(format!(
                "the {name} header must hold 1 to {MAX_HEADER_BYTES} bytes"
            )));
        }
        Ok(Some(text.to_owned()))
    };
    let mut context = match header(IDEMPOTENCY_KEY)? {
        Some(key) => CommandContext::with_id(
            Uuid::parse_str(&key)
                .unwrap_or_else(|_| Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, key.as_bytes())),
        ),
        None => CommandContext::new(),
    };
    let claimed = header(ACTOR)?;
    context.actor = match caller {
        None => claimed,
        Some(_) if claimed.is_some() => {
            return Err(ApiError::invalid(format!(
                "the {ACTOR} header is not accepted on a server with tokens: the actor is the name of the bearer token"
            )));
        }
        Some(caller) => caller.name.clone(),
    };
    context.correlation_id = header(CORRELATION_ID)?;
    Ok(context)
}

impl IntoParams for CommandHeaders {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let header = |name: &str, description: &str| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .max_length(Some(MAX_HEADER_BYTES)),
                ))
                .build()
        };
        vec![
            header(
                "Idempotency-Key",
                "The command id: a UUID, or any string (hashed to one). Repeating it with the \
                 same request applies the command once and answers its first outcome; \
                 reusing it for another request (route, target or body) answers 422 \
                 `idempotency_key_reused`.",
            ),
            header(
                "X-Correlation-Id",
                "Groups the command's events with the request they belong to.",
            ),
            header(
                "X-Actor",
                "Who asks, recorded on the events; only without tokens (with tokens, the \
                 actor is the bearer token's name).",
            ),
        ]
    }
}

/// What a command answers: `{"position", "events", "duplicate"}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct CommandAnswer {
    /// The consistency token: the position of the command's last event. Pass it as
    /// `after` to a query to read your own write.
    pub position: u64,
    /// The events the command appended (those of the first time, for a repeated
    /// `Idempotency-Key`).
    #[schema(value_type = Vec<crate::api::schema::EventJson>)]
    pub events: Vec<RecordedEvent>,
    /// Whether this `Idempotency-Key` had been handled before.
    pub duplicate: bool,
}

impl From<CommandOutcome> for CommandAnswer {
    fn from(outcome: CommandOutcome) -> Self {
        Self {
            position: outcome.position.0,
            events: outcome.events,
            duplicate: outcome.duplicate,
        }
    }
}

impl IntoResponse for CommandAnswer {
    fn into_response(self) -> Response {
        Json(self).into_response()
    }
}

/// Runs a command of a module, counts it in the metrics as `name` (with the events it
/// appended and how long it took), and answers its outcome. The module's error passes
/// through untouched.
pub async fn run_command<E>(
    host: &AppState,
    name: &'static str,
    command: impl Future<Output = Result<CommandOutcome, E>>,
) -> Result<CommandAnswer, E> {
    let started = Instant::now();
    let outcome = command.await?;
    let appended = if outcome.duplicate {
        0
    } else {
        outcome.events.len()
    };
    host.stats().command(name, appended, started.elapsed());
    Ok(CommandAnswer::from(outcome))
}

#[cfg(test)]
mod tests;
