//! The request body's stall limit: a body that stops arriving for the server's
//! `body_timeout` fails, and the extractor reading it answers 400.
//!
//! The timer is armed only while the body waits for bytes and disarmed by every frame, so
//! a body whose bytes have already arrived (nearly every one, on a keep-alive connection)
//! is read without touching the runtime's timer wheel.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::time::Sleep;

/// What a stalled body fails with.
#[derive(Debug, thiserror::Error)]
#[error("data was not received within the designated timeout")]
struct Stalled;

/// Wraps `request`'s body so that it fails once no bytes came for `timeout` while it
/// was waiting for them.
pub(crate) fn limit(request: Request, timeout: Duration) -> Request<TimedBody> {
    request.map(|body| TimedBody {
        body,
        timeout,
        stalled: None,
    })
}

/// A request body that fails once it has waited `timeout` for a frame.
pub(crate) struct TimedBody {
    body: Body,
    timeout: Duration,
    /// Armed when the body has nothing to give; disarmed by the next frame.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl http_body::Body for TimedBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.body).poll_frame(cx) {
            Poll::Ready(frame) => {
                this.stalled = None;
                Poll::Ready(frame.map(|frame| frame.map_err(Into::into)))
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let stalled = this
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if stalled.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Some(Err(Box::new(Stalled))));
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests;
