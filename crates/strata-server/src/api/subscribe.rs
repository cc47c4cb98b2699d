//! `GET /subscribe`: the log as server-sent events, one per stored event, resumable.
//!
//! The response body pulls from the store's subscription only as fast as the socket takes
//! bytes, so a slow client holds one page of events, never an unbounded buffer. At most
//! [`crate::Limits::max_subscribers`] subscriptions are served at once (one more is
//! answered 503 `too_many_subscribers`); a subscriber that leaves an event untaken for
//! [`crate::Limits::subscriber_stall`] gets a last `subscriber_too_slow` event and is
//! disconnected (it resumes with `Last-Event-ID`), and one that takes nothing at all is
//! closed by the connection's send timeout. The stream ends when the server shuts down.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt as _};
use serde::Deserialize;
use strata_core::Position;
use tokio::sync::OwnedSemaphorePermit;
use utoipa::IntoParams;

use crate::api::schema::ErrorEnvelope;
use crate::api::streams::filter_of;
use crate::extract::Query;
use crate::{ApiError, ApiResult, AppState};

/// How often an idle subscription gets a keep-alive comment.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Where a subscription starts and what it selects.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SubscribeQuery {
    /// The first position to send (inclusive; default 1, the first event). A
    /// `Last-Event-ID` header overrides it: the subscription resumes after that position.
    from: Option<u64>,
    /// Only streams of these categories (comma-separated).
    category: Option<String>,
    /// Only events of these types (comma-separated).
    #[serde(rename = "type")]
    #[param(rename = "type")]
    event_type: Option<String>,
}

/// Follows the log: history from `from`, then live events, as server-sent events whose
/// `id` is the event's position and whose `data` is the event's JSON.
#[utoipa::path(
    get,
    path = "/subscribe",
    tag = "event store",
    params(
        SubscribeQuery,
        ("Last-Event-ID" = Option<u64>, Header, description = "Resume after this position"),
    ),
    responses(
        (status = 200, description = "An endless `text/event-stream`", content_type = "text/event-stream", body = String),
        (status = 400, description = "Bad parameter or Last-Event-ID", body = ErrorEnvelope),
        (status = 503, description = "too_many_subscribers: the server serves as many subscriptions as it allows", body = ErrorEnvelope),
    )
)]
pub(crate) async fn subscribe(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(query): Query<SubscribeQuery>,
) -> ApiResult<Sse<impl Stream<Item = Result<Event, Infallible>>>> {
    let after = match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .ok_or_else(|| {
                ApiError::invalid("Last-Event-ID must be a position (a non-negative integer)")
            })?,
        None => query.from.unwrap_or(1).saturating_sub(1),
    };
    let Some(permit) = state.subscriber_permit() else {
        return Err(ApiError::unavailable(
            "too_many_subscribers",
            format!(
                "the server serves {} subscriptions at most; try again later",
                state.limits().max_subscribers
            ),
        ));
    };
    let filter = filter_of(query.category.as_deref(), query.event_type.as_deref());
    let events = state.store().subscribe(Position(after), filter);
    let mut shutdown = state.shutdown_signal();
    let stopped = async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    };
    let stream = events.take_until(stopped).map(|item| {
        Ok(match item {
            Ok(event) => match serde_json::to_string(&event) {
                Ok(json) => Event::default().id(event.position.0.to_string()).data(json),
                Err(err) => Event::default()
                    .event("error")
                    .data(format!("cannot encode event {}: {err}", event.position)),
            },
            Err(err) => {
                tracing::warn!(error = %err, "a subscription ended on a store error");
                Event::default().event("error").data(
                    serde_json::json!({"error": {"code": err.code(), "message": err.to_string()}})
                        .to_string(),
                )
            }
        })
    });
    Ok(Sse::new(Subscriber::new(stream, state, permit))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// One subscription being served: counted in the subscribers gauge and holding its
/// permit while it lives, and ended with a last event when its client stalls.
struct Subscriber<S> {
    inner: Pin<Box<S>>,
    state: AppState,
    _permit: OwnedSemaphorePermit,
    /// When the last event was handed over; the body asks for the next one as soon as
    /// the connection has room, so a long wait until the next poll means the client
    /// stopped taking bytes.
    handed: Option<Instant>,
    ended: bool,
}

impl<S> Subscriber<S> {
    fn new(inner: S, state: AppState, permit: OwnedSemaphorePermit) -> Self {
        state.stats().subscribers(1);
        Self {
            inner: Box::pin(inner),
            state,
            _permit: permit,
            handed: None,
            ended: false,
        }
    }
}

impl<S> Drop for Subscriber<S> {
    fn drop(&mut self) {
        self.state.stats().subscribers(-1);
    }
}

impl<S: Stream<Item = Result<Event, Infallible>>> Stream for Subscriber<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let stall = self.state.limits().subscriber_stall;
        if let Some(handed) = self.handed.take()
            && handed.elapsed() > stall
        {
            // Buffering for a client that does not keep up would cost memory without
            // bound; tell it why it is let go, so it can resume from its last event.
            self.ended = true;
            metrics::counter!("strata_sse_slow_disconnects_total").increment(1);
            tracing::info!(
                "disconnecting a subscriber that left an event untaken for over {} s",
                stall.as_secs_f64()
            );
            return Poll::Ready(Some(Ok(Event::default().event("error").data(
                serde_json::json!({"error": {
                    "code": "subscriber_too_slow",
                    "message": format!(
                        "this subscriber left an event untaken for over {} s and is disconnected; \
                         resume with Last-Event-ID",
                        stall.as_secs_f64()
                    ),
                }})
                .to_string(),
            ))));
        }
        let next = self.inner.as_mut().poll_next(cx);
        if let Poll::Ready(Some(_)) = next {
            self.handed = Some(Instant::now());
        }
        next
    }
}
