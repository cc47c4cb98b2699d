//! The one error type of the HTTP edge: every failure a handler meets becomes an
//! [`ApiError`], answered as `{"error": {"code", "message", ...}}` with a status that says
//! whose fault it was. A client's mistake is never a 500, and a 500 tells the client
//! nothing but an error id: its details (paths, SQL, causes) go to the log under that id.
//!
//! A module maps its own error type through [`ErrorMapping`] and returns
//! [`ModuleError`] from its handlers.

use std::borrow::Cow;
use std::marker::PhantomData;

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};
use strata_store::StoreError;
use uuid::Uuid;

/// The code of a request the server cannot make sense of (bad JSON, a bad parameter, an
/// invalid stream name).
pub const INVALID_INPUT: &str = "invalid_input";
/// The code of a body over the size limit.
pub const TOO_LARGE: &str = "too_large";
/// The code of a read model that did not reach the asked position in time.
pub const CONSISTENCY_TIMEOUT: &str = "consistency_timeout";
/// The code of the server's own failure (HTTP 500).
pub const INTERNAL: &str = "internal";

/// An error answered to an HTTP client.
#[derive(Debug, Clone)]
pub struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    details: Map<String, Value>,
    authenticate: bool,
}

impl ApiError {
    /// An error with a status, a stable code and a message naming what is wrong.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            details: Map::new(),
            authenticate: false,
        }
    }

    /// 400 `invalid_input`.
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, INVALID_INPUT, message)
    }

    /// 404 with `code` (`stream_not_found`, `not_found`...).
    pub fn not_found(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 413 `too_large`.
    pub fn too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, TOO_LARGE, message)
    }

    /// 422 with the code of the domain rule that refused a command.
    pub fn domain(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 409 for a command whose aggregate kept changing under it.
    pub fn conflict(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 503 `consistency_timeout`: the read side did not reach `position` in time.
    pub fn consistency_timeout(position: u64, waited_ms: u64) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            CONSISTENCY_TIMEOUT,
            format!("the read model did not reach position {position} within {waited_ms} ms"),
        )
        .with_detail("after", position)
    }

    /// 401 `unauthorized`, asking for a bearer token.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        let mut err = Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        err.authenticate = true;
        err
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 500 `internal`: the server's own failure. The message says what it was doing and
    /// goes to the log only; the client sees an error id.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL, message)
    }

    /// 503 `unavailable` with a code naming what is missing.
    pub fn unavailable(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }

    /// Adds a field beside `code` and `message`.
    #[must_use]
    pub fn with_detail(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_owned(), value.into());
        self
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The stable code.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}): {}", self.status, self.code, self.message)
    }
}

impl std::error::Error for ApiError {}

impl ApiError {
    /// What the client is told of a 500: nothing of the cause (it may name files, SQL or
    /// internals), only an id under which the cause is logged.
    fn opaque(self) -> Self {
        let id = Uuid::new_v4();
        let details = Value::Object(self.details).to_string();
        tracing::error!(
            error_id = %id,
            code = %self.code,
            message = %self.message,
            details = %details,
            "request failed"
        );
        Self::new(
            self.status,
            INTERNAL,
            format!("the server failed to handle the request; the log has the details under error id {id}"),
        )
        .with_detail("error_id", id.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let this = if self.status == StatusCode::INTERNAL_SERVER_ERROR {
            self.opaque()
        } else {
            if self.status.is_server_error() {
                tracing::warn!(code = %self.code, message = %self.message, "request failed");
            }
            self
        };
        let mut error = Map::new();
        error.insert("code".into(), Value::String(this.code.into_owned()));
        error.insert("message".into(), Value::String(this.message));
        error.extend(this.details);
        let mut body = Map::new();
        body.insert("error".into(), Value::Object(error));
        let mut response = (this.status, Json(Value::Object(body))).into_response();
        if this.authenticate {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"strata\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(err: StoreError) -> Self {
        let message = err.to_string();
        match &err {
            StoreError::WrongExpectedVersion {
                expected, actual, ..
            } => Self::new(StatusCode::CONFLICT, err.code(), message)
                .with_detail(
                    "expected",
                    serde_json::to_value(expected).unwrap_or(Value::Null),
                )
                .with_detail("actual", actual.0),
            StoreError::Invalid(_) | StoreError::InvalidAppend { .. } => Self::invalid(message),
            StoreError::EventTooLarge { .. } => Self::too_large(message),
            // The id is taken by a stored event (or twice in the append): a conflict with
            // the log's state, like a version conflict, named so a client can tell them
            // apart.
            StoreError::DuplicateEventId { id, existing, .. } => {
                let error = Self::new(StatusCode::CONFLICT, err.code(), message)
                    .with_detail("id", id.to_string());
                match existing {
                    Some(position) => error.with_detail("existing_position", position.0),
                    None => error,
                }
            }
            StoreError::Closed
            | StoreError::Poisoned { .. }
            | StoreError::ReadOnly { .. }
            | StoreError::Locked { .. } => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, err.code(), message)
            }
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, err.code(), message),
        }
    }
}

impl From<strata_core::CoreError> for ApiError {
    fn from(err: strata_core::CoreError) -> Self {
        Self::invalid(err.to_string())
    }
}

/// The result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

/// How a module's own error type `E` becomes the API error.
///
/// A module's HTTP crate cannot write `From<TheirError> for ApiError` (the orphan rule
/// forbids it when the error comes from the domain's crate), so it implements this trait
/// on a type of its own, usually its [`crate::Module`], and its handlers return
/// [`ModuleError<E, ThatType>`]:
///
/// ```text
/// impl ErrorMapping<LedgerError> for LedgerModule {
///     fn api_error(error: LedgerError) -> ApiError { /* status and code per variant */ }
/// }
/// type Answer<T> = Result<Json<T>, ModuleError<LedgerError, LedgerModule>>;
/// ```
pub trait ErrorMapping<E> {
    /// The answer to `error`. Map what is the caller's fault to a 4xx; anything else
    /// to [`ApiError::internal`] with the cause, which only the log sees.
    fn api_error(error: E) -> ApiError;
}

/// A module handler's error: the module's own error `E`, answered as `M` maps it, or an
/// [`ApiError`] the handler made itself ([`ModuleError::api`]). `?` converts an `E`.
pub struct ModuleError<E, M> {
    inner: Either<E>,
    mapping: PhantomData<fn() -> M>,
}

enum Either<E> {
    Module(E),
    Api(ApiError),
}

impl<E, M> ModuleError<E, M> {
    /// An error the handler answers as it is.
    pub fn api(error: ApiError) -> Self {
        Self {
            inner: Either::Api(error),
            mapping: PhantomData,
        }
    }
}

impl<E, M> From<E> for ModuleError<E, M> {
    fn from(error: E) -> Self {
        Self {
            inner: Either::Module(error),
            mapping: PhantomData,
        }
    }
}

impl<E: std::fmt::Debug, M> std::fmt::Debug for ModuleError<E, M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.inner {
            Either::Module(error) => f.debug_tuple("Module").field(error).finish(),
            Either::Api(error) => f.debug_tuple("Api").field(error).finish(),
        }
    }
}

impl<E, M: ErrorMapping<E>> IntoResponse for ModuleError<E, M> {
    fn into_response(self) -> Response {
        match self.inner {
            Either::Module(error) => M::api_error(error).into_response(),
            Either::Api(error) => error.into_response(),
        }
    }
}

#[cfg(test)]
mod tests;
