//! The catch-up subscription shared by every backend: page through `read_all` from a
//! cursor, then wait on the head watch for more. Bounded memory (one page), back-pressure
//! by pulling, and gap safety by construction: it only reads committed positions, and a
//! backend's head never covers a position that could still appear.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::{Stream, StreamExt as _, stream};
use strata_core::{Position, RecordedEvent};

use crate::{EventStore, EventStream, ReadFilter, StoreError};

/// How many events a subscription fetches per page.
pub const SUBSCRIPTION_BATCH: usize = 512;

struct Cursor<S> {
    store: S,
    filter: ReadFilter,
    /// Next position to examine.
    next: Position,
    head: tokio::sync::watch::Receiver<Position>,
    done: bool,
}

/// A subscription over any store: every event selected by `filter` above `after`, exactly
/// once, in position order, history first and then live.
pub fn catch_up_subscription<S>(store: S, after: Position, filter: ReadFilter) -> EventStream
where
    S: EventStore + Clone,
{
    let head = store.watch_head();
    let cursor = Cursor {
        store,
        filter,
        next: after.next(),
        head,
        done: false,
    };
    // The cursor's state moves through the page stream once per page; the events of a
    // page are handed out from the page itself (see `Events`).
    let pages = stream::unfold(cursor, |mut c| async move {
        if c.done {
            return None;
        }
        loop {
            // NOTE: mark the head as seen before reading, so a commit that lands during
            // the read wakes the wait below instead of being missed.
            let head = *c.head.borrow_and_update();
            if c.next.0 <= head.0 {
                match c
                    .store
                    .read_all(c.next, SUBSCRIPTION_BATCH, &c.filter)
                    .await
                {
                    Ok(page) => {
                        let advanced = page.next > c.next;
                        c.next = page.next.max(c.next);
                        if !page.events.is_empty() {
                            return Some((Ok(page.events), c));
                        }
                        if advanced {
                            continue;
                        }
                    }
                    Err(err) => {
                        c.done = true;
                        return Some((Err(err), c));
                    }
                }
            }
            if c.head.changed().await.is_err() {
                c.done = true;
                return Some((Err(StoreError::Closed), c));
            }
        }
    });
    Box::pin(Events {
        pages: Box::pin(pages.fuse()),
        page: Vec::new().into_iter(),
    })
}

/// The events of a stream of pages, one at a time; fused, as the page stream is.
struct Events {
    pages: Pin<Box<dyn Stream<Item = Result<Vec<RecordedEvent>, StoreError>> + Send>>,
    page: std::vec::IntoIter<RecordedEvent>,
}

impl Stream for Events {
    type Item = Result<RecordedEvent, StoreError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(event) = self.page.next() {
                return Poll::Ready(Some(Ok(event)));
            }
            match self.pages.poll_next_unpin(cx) {
                Poll::Ready(Some(Ok(page))) => self.page = page.into_iter(),
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
