//! Shapes that appear in the OpenAPI document only: the wire forms of the store API's
//! requests and answers whose Rust types are borrowed or hand-serialized, and the error
//! shape every route (a module's too) answers. No module's shape belongs here: a module
//! answers typed structs of its own.

#![allow(dead_code)]

use serde::Serialize;
use utoipa::ToSchema;

/// The error shape of every failed request; a module documents its errors with it.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    error: ErrorDetail,
}

/// What went wrong.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `invalid_input`, `stream_not_found`, `not_found`,
    /// `wrong_expected_version`, `too_large`, `consistency_timeout`, `timeout`,
    /// `unauthorized`, `forbidden`, `internal`, a domain rule's code...
    code: String,
    /// A sentence naming what is wrong.
    message: String,
    /// For `wrong_expected_version`: what the append expected.
    #[schema(value_type = Option<Object>)]
    expected: Option<serde_json::Value>,
    /// For `wrong_expected_version`: the stream's actual version.
    actual: Option<u64>,
    /// For `consistency_timeout`: the position waited for.
    after: Option<u64>,
    /// For `internal` (HTTP 500): the id under which the server logged what failed.
    error_id: Option<String>,
}

/// An event as stored.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventJson {
    /// Global position (1-based).
    position: u64,
    /// The stream.
    stream: String,
    /// Version inside the stream (1-based).
    version: u64,
    /// The event's id (a UUID).
    id: String,
    /// The event's type.
    #[serde(rename = "type")]
    event_type: String,
    /// The payload (any JSON; a payload that is not JSON is given as a string).
    #[schema(value_type = Object)]
    data: serde_json::Value,
    /// The metadata object.
    #[schema(value_type = Object)]
    metadata: serde_json::Value,
    /// When the store recorded it (RFC 3339).
    recorded_at: String,
}

/// Events, in order.
#[derive(Serialize, ToSchema)]
pub(crate) struct EventsPage {
    events: Vec<EventJson>,
    /// For `/all`: the position to continue from (inclusive).
    next: Option<u64>,
}

/// An atomic append.
#[derive(Serialize, ToSchema)]
pub(crate) struct AppendRequest {
    /// A version number, `"any"` (the default), `"no_stream"` or `"exists"`.
    #[schema(value_type = Object)]
    expected_version: Option<serde_json::Value>,
    /// The events, at least one.
    events: Vec<NewEventJson>,
}

/// An event to append.
#[derive(Serialize, ToSchema)]
pub(crate) struct NewEventJson {
    /// The event's type (1 to 255 bytes, no control characters).
    #[serde(rename = "type")]
    event_type: String,
    /// The payload, any JSON, stored as written.
    #[schema(value_type = Object)]
    data: serde_json::Value,
    /// A JSON object of metadata.
    #[schema(value_type = Option<Object>)]
    metadata: Option<serde_json::Value>,
    /// The event's id (a UUID); repeating an append with the same ids is idempotent.
    id: Option<String>,
}

/// What an acknowledged append reports.
#[derive(Serialize, ToSchema)]
pub(crate) struct AppendResponse {
    stream: String,
    first_version: u64,
    last_version: u64,
    /// The global position of the last event: the consistency token.
    position: u64,
}
