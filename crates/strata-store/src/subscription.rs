//! The catch-up subscription shared by every backend: page through `read_all` from a
//! cursor, then wait on the head watch for more. Bounded memory (one page), back-pressure
//! by pulling, and gap safety by construction: it only reads committed positions, and a
//! backend's head never covers a position that could still appear.

use std::collections::VecDeque;

use futures::{StreamExt as _, stream};
use strata_core::{Position, RecordedEvent};

use crate::{EventStore, EventStream, ReadFilter, StoreError};

/// How many events a subscription fetches per page.
pub const SUBSCRIPTION_BATCH: usize = 512;

struct Cursor<S> {
    store: S,
    filter: ReadFilter,
    /// Next position to examine.
    next: Position,
    buffer: VecDeque<RecordedEvent>,
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
        buffer: VecDeque::new(),
        head,
        done: false,
    };
    // Fused: polling after the end keeps answering `None`.
    Box::pin(
        stream::unfold(cursor, |mut c| async move {
            if c.done {
                return None;
            }
            loop {
                if let Some(event) = c.buffer.pop_front() {
                    return Some((Ok(event), c));
                }
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
                            if !page.events.is_empty() || advanced {
                                c.buffer.extend(page.events);
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
        })
        .fuse(),
    )
}
