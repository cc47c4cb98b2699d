//! The event store routes: append to a stream, read a stream, list streams, read the
//! whole log.

use std::borrow::Cow;
use std::time::Instant;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use strata_core::{
    CoreError, EMPTY_METADATA, EventId, EventType, ExpectedVersion, NewEvent, Position,
    RecordedEvent, StreamName, Version,
};
use strata_store::{Direction, ReadFilter};
use utoipa::{IntoParams, ToSchema};

use crate::api::schema::{AppendRequest, AppendResponse, ErrorEnvelope, EventsPage};
use crate::auth::Caller;
use crate::extract::{Body, Path, Query, json_error};
use crate::{ApiError, ApiResult, AppState, CATEGORY_OWNED, Role};

/// How many events a read returns when `limit` is not given.
const DEFAULT_READ: usize = 100;

/// A validated stream name from the path.
pub(crate) fn stream_name(name: &str) -> ApiResult<StreamName> {
    StreamName::new(name).map_err(ApiError::from)
}

/// `limit`, checked against the server's maximum.
pub(crate) fn read_limit(state: &AppState, limit: Option<usize>) -> ApiResult<usize> {
    let max = state.limits().max_read;
    match limit {
        None => Ok(DEFAULT_READ.min(max)),
        Some(0) => Err(ApiError::invalid("limit must be at least 1")),
        Some(n) if n > max => Err(ApiError::invalid(format!(
            "limit {n} is over the maximum of {max}"
        ))),
        Some(n) => Ok(n),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendBody<'a> {
    #[serde(default)]
    expected_version: ExpectedVersion,
    #[serde(borrow)]
    events: Vec<EventBody<'a>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody<'a> {
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct Ack<'a> {
    stream: &'a StreamName,
    first_version: u64,
    last_version: u64,
    position: u64,
}

/// Appends events to a stream, atomically, if its version satisfies `expected_version`.
#[utoipa::path(
    post,
    path = "/streams/{stream}",
    tag = "event store",
    params(("stream" = String, Path, description = "The stream, `category-id`: 1 to 255 bytes, no control characters")),
    request_body = AppendRequest,
    responses(
        (status = 200, description = "Appended and durable", body = AppendResponse),
        (status = 400, description = "Malformed body, invalid stream name, type, id or metadata", body = ErrorEnvelope),
        (status = 409, description = "wrong_expected_version, with `expected` and `actual`; or duplicate_event_id: an event id the log already holds (`id`, `existing_position`) or one given to two events of the append", body = ErrorEnvelope),
        (status = 403, description = "category_owned: a mounted module owns the stream's category (`module` names it); only an admin token may append into it", body = ErrorEnvelope),
        (status = 413, description = "too_large: the body or one event is over its limit", body = ErrorEnvelope),
    )
)]
pub(crate) async fn append(
    State(state): State<AppState>,
    caller: Option<Extension<Caller>>,
    Path(stream): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    let started = Instant::now();
    let stream = stream_name(&stream)?;
    let admin = caller.is_some_and(|Extension(caller)| caller.role >= Role::Admin);
    if !admin {
        refuse_owned_category(&state, &stream)?;
    }
    let parsed: AppendBody<'_> = serde_json::from_slice(&body).map_err(|e| json_error(&e))?;
    // The events of one append mostly share a type: each takes the one before's name
    // when it is the same, instead of a copy of its own.
    let mut last_type: Option<EventType> = None;
    let events = parsed
        .events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            new_event(&body, event, &mut last_type)
                .map_err(|err| ApiError::invalid(format!("event {index}: {err}")))
        })
        .collect::<ApiResult<Vec<_>>>()?;
    let count = events.len();
    let result = state
        .store()
        .append(&stream, parsed.expected_version, events)
        .await?;
    state.stats().appended(count, started.elapsed());
    Ok(Json(Ack {
        stream: &stream,
        first_version: result.first_version.0,
        last_version: result.last_version.0,
        position: result.position.0,
    })
    .into_response())
}

/// Refuses a raw append into a category a mounted module owns: its events must come
/// through the module's commands, which keep its rules.
fn refuse_owned_category(state: &AppState, stream: &StreamName) -> ApiResult<()> {
    let category = stream.category();
    let owner = state
        .modules()
        .iter()
        .find(|module| module.owned_categories().contains(&category));
    match owner {
        None => Ok(()),
        Some(module) => Err(ApiError::new(
            StatusCode::FORBIDDEN,
            CATEGORY_OWNED,
            format!(
                "stream {stream} is in category {category}, which module {} owns: its events come only through the module's commands (an admin token may append)",
                module.name()
            ),
        )
        .with_detail("module", module.name().to_owned())),
    }
}

/// The store's input for one event of the body. `data` and `metadata` were validated as
/// JSON by the parse that found them and are taken as written, without a copy; the type
/// is `last_type` when it has the same name (and becomes it otherwise).
fn new_event(
    body: &Bytes,
    event: EventBody<'_>,
    last_type: &mut Option<EventType>,
) -> Result<NewEvent, CoreError> {
    let event_type = match last_type {
        Some(last) if last.as_str() == event.event_type => last.clone(),
        _ => {
            let event_type = EventType::new(&event.event_type)?;
            *last_type = Some(event_type.clone());
            event_type
        }
    };
    let id = match event.id {
        Some(id) => id.parse()?,
        None => EventId::new(),
    };
    let metadata = match event.metadata.map(RawValue::get) {
        None | Some("null") => Bytes::from_static(EMPTY_METADATA),
        Some(text) if text.starts_with('{') => share(body, text),
        Some(_) => {
            return Err(CoreError::InvalidMetadata(
                "must be a JSON object".to_owned(),
            ));
        }
    };
    Ok(NewEvent {
        id,
        event_type,
        data: share(body, event.data.get()),
        metadata,
    })
}

/// `part` of `body` as bytes that share its buffer, or a copy should `part` lie outside
/// it (the parser borrows every raw value from the body, so it does not).
///
/// NOTE: a shared slice keeps the whole body alive for as long as the event is held: the
/// backends that persist encode the event and drop it once the append returns, and a body
/// is at most the server's body limit.
fn share(body: &Bytes, part: &str) -> Bytes {
    let start = body.as_ptr() as usize;
    let at = part.as_ptr() as usize;
    if at >= start && at + part.len() <= start + body.len() {
        body.slice_ref(part.as_bytes())
    } else {
        Bytes::copy_from_slice(part.as_bytes())
    }
}

/// Which way a stream is read.
#[derive(Debug, Clone, Copy, Default, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum DirectionParam {
    /// Oldest first.
    #[default]
    Forward,
    /// Newest first.
    Backward,
}

/// Where a stream read starts and how much it returns.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct StreamQuery {
    /// The first version to return (inclusive); default: the first event, or the last
    /// one going backward.
    from: Option<u64>,
    /// How many events at most (default 100, at most the server's maximum, 1000).
    limit: Option<usize>,
    /// `forward` (default) or `backward`.
    #[param(inline)]
    direction: Option<DirectionParam>,
}

#[derive(Serialize)]
struct Events<'a> {
    events: &'a [RecordedEvent],
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<u64>,
}

/// Reads a stream's events.
#[utoipa::path(
    get,
    path = "/streams/{stream}",
    tag = "event store",
    params(("stream" = String, Path, description = "The stream"), StreamQuery),
    responses(
        (status = 200, description = "The events", body = EventsPage),
        (status = 400, description = "Bad stream name or parameter", body = ErrorEnvelope),
        (status = 404, description = "stream_not_found: the stream has no events", body = ErrorEnvelope),
    )
)]
pub(crate) async fn read_stream(
    State(state): State<AppState>,
    Path(stream): Path<String>,
    Query(query): Query<StreamQuery>,
) -> ApiResult<Response> {
    let stream = stream_name(&stream)?;
    let limit = read_limit(&state, query.limit)?;
    let direction = match query.direction.unwrap_or_default() {
        DirectionParam::Forward => Direction::Forward,
        DirectionParam::Backward => Direction::Backward,
    };
    let from = query.from.filter(|&v| v > 0).map(Version);
    let events = state
        .store()
        .read_stream(&stream, from, direction, limit)
        .await?;
    if events.is_empty() && state.store().stream_version(&stream).await? == Version::NONE {
        return Err(ApiError::not_found(
            "stream_not_found",
            format!("stream {stream} does not exist"),
        ));
    }
    Ok(Json(Events {
        events: &events,
        next: None,
    })
    .into_response())
}

/// A global read's range and filter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AllQuery {
    /// The first position to return (inclusive; 0 and 1 both mean the first event).
    from: Option<u64>,
    /// How many events at most (default 100).
    limit: Option<usize>,
    /// Only streams of these categories (comma-separated).
    category: Option<String>,
    /// Only events of these types (comma-separated).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
}

/// A filter from comma-separated categories and types.
pub(crate) fn filter_of(category: Option<&str>, event_type: Option<&str>) -> ReadFilter {
    let list = |text: Option<&str>| {
        text.map(|t| {
            t.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    };
    ReadFilter {
        categories: list(category),
        event_types: list(event_type),
    }
}

/// Reads the whole log in position order, optionally filtered.
#[utoipa::path(
    get,
    path = "/all",
    tag = "event store",
    params(AllQuery),
    responses(
        (status = 200, description = "The events and where to continue", body = EventsPage),
        (status = 400, description = "Bad parameter", body = ErrorEnvelope),
    )
)]
pub(crate) async fn read_all(
    State(state): State<AppState>,
    Query(query): Query<AllQuery>,
) -> ApiResult<Response> {
    let limit = read_limit(&state, query.limit)?;
    let filter = filter_of(query.category.as_deref(), query.event_type.as_deref());
    let page = state
        .store()
        .read_all(Position(query.from.unwrap_or(0)), limit, &filter)
        .await?;
    Ok(Json(Events {
        events: &page.events,
        next: Some(page.next.0),
    })
    .into_response())
}

/// Which streams to list: a page of the listing in name order.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Only streams whose names start with this (for example `order-`).
    prefix: Option<String>,
    /// The cursor: list the streams whose names sort after this one. Pass the previous
    /// page's `next` to get the page after it.
    after: Option<String>,
    /// How many streams at most (default 100, at most the server's maximum, 1000).
    limit: Option<usize>,
}

/// One stream in a listing.
#[derive(Serialize, ToSchema)]
pub(crate) struct StreamSummary {
    /// The stream's name.
    stream: String,
    /// Its version (event count).
    version: u64,
    /// The position of its last event.
    last_position: u64,
}

/// A page of streams in ascending byte order of their names.
#[derive(Serialize, ToSchema)]
pub(crate) struct StreamList {
    /// The streams of this page.
    streams: Vec<StreamSummary>,
    /// The cursor of the next page (its `after`); absent on the last page.
    #[serde(skip_serializing_if = "Option::is_none")]
    next: Option<String>,
}

/// Lists streams by name, a page at a time, straight from the store: every stream that
/// exists when paging begins is listed exactly once; one created meanwhile is listed if
/// its name sorts after the cursor.
#[utoipa::path(
    get,
    path = "/streams",
    tag = "event store",
    params(ListQuery),
    responses(
        (status = 200, description = "A page of matching streams and the cursor of the next", body = StreamList),
        (status = 400, description = "Bad parameter", body = ErrorEnvelope),
    )
)]
pub(crate) async fn list_streams(
    State(state): State<AppState>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<StreamList>> {
    let limit = read_limit(&state, query.limit)?;
    let prefix = bounded_name("prefix", query.prefix.as_deref().unwrap_or(""))?;
    let after = query
        .after
        .as_deref()
        .map(|a| bounded_name("after", a))
        .transpose()?;
    // One more than asked tells whether a next page exists without a second call.
    let mut listed = state.store().list_streams(prefix, after, limit + 1).await?;
    let more = listed.len() > limit;
    listed.truncate(limit);
    let next = more
        .then(|| listed.last().map(|s| s.stream.as_str().to_owned()))
        .flatten();
    Ok(Json(StreamList {
        streams: listed
            .into_iter()
            .map(|s| StreamSummary {
                stream: s.stream.as_str().to_owned(),
                version: s.version.0,
                last_position: s.last_position.0,
            })
            .collect(),
        next,
    }))
}

/// A listing parameter that compares with stream names: no longer than the longest name.
fn bounded_name<'a>(what: &str, text: &'a str) -> ApiResult<&'a str> {
    if text.len() > StreamName::MAX_BYTES {
        return Err(ApiError::invalid(format!(
            "{what} is {} bytes, longer than the longest stream name ({} bytes)",
            text.len(),
            StreamName::MAX_BYTES
        )));
    }
    Ok(text)
}
