//! Many appends in flight, results in input order: the shape `append` and `import` share.
//! Bounded by a count and by the bytes in flight, so memory stays bounded whatever the
//! input. It knows nothing of what the work is.

use std::future::Future;
use std::sync::Arc;

use futures::{Stream, StreamExt as _};
use tokio::sync::Semaphore;

/// Work items in flight at once: enough for the store to commit many in one group.
pub(crate) const IN_FLIGHT: usize = 1024;
/// The most item bytes (as weighed by the caller) in flight at once, in KiB.
const IN_FLIGHT_KIB: usize = 256 * 1024;

/// Runs `work` on every item, up to [`IN_FLIGHT`] at once and up to 256 MiB of items as
/// weighed by `weigh`, and yields the results in the items' order.
///
/// Each item's work is first polled in input order and without tokio's cooperative
/// budget, so work that enqueues itself on its first poll (a store's append) is enqueued
/// in input order: later items never overtake earlier ones.
pub(crate) fn in_order<S, W, F, Fut>(
    items: S,
    weigh: W,
    mut work: F,
) -> impl Stream<Item = Fut::Output>
where
    S: Stream,
    W: Fn(&S::Item) -> usize,
    F: FnMut(S::Item) -> Fut,
    Fut: Future,
{
    let budget = Arc::new(Semaphore::new(IN_FLIGHT_KIB));
    items
        .then(move |item| {
            let kib = weigh(&item).div_ceil(1024).clamp(1, IN_FLIGHT_KIB);
            let budget = Arc::clone(&budget);
            async move {
                // The semaphore is never closed; without a permit the item still runs.
                let permit = budget.acquire_many_owned(kib as u32).await.ok();
                (item, permit)
            }
        })
        .map(move |(item, permit)| {
            let work = work(item);
            // NOTE: unconstrained so the work's first poll always gets as far as it can
            // (an append reaches the store's queue); tokio's cooperative budget would
            // otherwise make some items wait a turn while later ones go ahead.
            tokio::task::unconstrained(async move {
                let output = work.await;
                drop(permit);
                output
            })
        })
        .buffered(IN_FLIGHT)
}
