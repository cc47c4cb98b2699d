//! `strata tail`: print the log from a position on, then follow it live until told to
//! stop. It only reads; the shutdown signal is handed in by the caller.

use std::future::Future;
use std::io::Write;

use anyhow::Context as _;
use futures::{FutureExt as _, StreamExt as _};
use strata_core::{Position, RecordedEvent};
use strata_store::{EventStore, ReadFilter};

/// Events printed from ready data before the shutdown signal is checked again.
const SHUTDOWN_CHECK_EVERY: u32 = 1024;

/// Prints every event selected by `filter` from position `from` (inclusive), then each
/// new one as it commits, until `shutdown` completes. `out` is flushed whenever no more
/// events are ready. Returns how many events were printed.
pub(crate) async fn run<S, W>(
    store: &S,
    from: u64,
    filter: ReadFilter,
    out: &mut W,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<u64>
where
    S: EventStore + ?Sized,
    W: Write,
{
    let mut events = store.subscribe(Position(from.saturating_sub(1)), filter);
    let mut shutdown = std::pin::pin!(shutdown);
    let mut line = Vec::new();
    let mut printed = 0u64;
    let mut since_check = 0u32;
    // Whether the tail has waited for events yet (said once, for anyone watching).
    let mut waited = false;
    loop {
        let next = match events.next().now_or_never() {
            Some(next) => {
                since_check += 1;
                if since_check >= SHUTDOWN_CHECK_EVERY {
                    since_check = 0;
                    if shutdown.as_mut().now_or_never().is_some() {
                        break;
                    }
                }
                next
            }
            None => {
                out.flush().context("cannot write to standard output")?;
                if !waited {
                    waited = true;
                    tracing::debug!(printed, "no event ready; waiting for new events");
                }
                tokio::select! {
                    biased;
                    () = shutdown.as_mut() => break,
                    next = events.next() => next,
                }
            }
        };
        let event: RecordedEvent = match next {
            Some(Ok(event)) => event,
            Some(Err(err)) => return Err(err).context("the subscription to the store failed"),
            None => anyhow::bail!("the subscription to the store ended"),
        };
        line.clear();
        event.write_json_line(&mut line);
        out.write_all(&line)
            .context("cannot write to standard output")?;
        printed += 1;
    }
    out.flush().context("cannot write to standard output")?;
    Ok(printed)
}
