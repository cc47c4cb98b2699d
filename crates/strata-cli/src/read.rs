//! `strata read`, `strata read-all` and `strata export`: page through the store and print
//! one JSON line per event, with memory bounded by one page whatever the read's size.

use std::io::Write;

use anyhow::Context as _;
use strata_core::{Position, StreamName, Version};
use strata_store::{Direction, EventStore, ReadFilter};

/// Events fetched per store call.
pub(crate) const PAGE: usize = 1000;

/// Prints up to `limit` events of `stream` (all when `None`) from version `from`
/// (inclusive) in `direction`. A missing stream prints nothing. Returns how many were
/// printed.
pub(crate) async fn stream<S, W>(
    store: &S,
    stream: &StreamName,
    from: Option<u64>,
    direction: Direction,
    limit: Option<u64>,
    out: &mut W,
) -> anyhow::Result<u64>
where
    S: EventStore + ?Sized,
    W: Write,
{
    let mut from = from.map(Version);
    let mut left = limit.unwrap_or(u64::MAX);
    let mut printed = 0;
    let mut line = Vec::new();
    while left > 0 {
        let want = page_size(left);
        let events = store
            .read_stream(stream, from, direction, want)
            .await
            .with_context(|| format!("cannot read stream {stream}"))?;
        let Some(last) = events.last() else { break };
        let next = match direction {
            Direction::Forward => Some(last.version.next()),
            Direction::Backward => last
                .version
                .0
                .checked_sub(1)
                .filter(|v| *v > 0)
                .map(Version),
        };
        line.clear();
        for event in &events {
            event.write_json_line(&mut line);
        }
        out.write_all(&line)
            .context("cannot write to standard output")?;
        let count = events.len() as u64;
        printed += count;
        left = left.saturating_sub(count);
        // NOTE: a short page is not taken as the end; only an empty one is, so a backend
        // that returns fewer events than asked is still read to the end.
        match next {
            Some(next) => from = Some(next),
            None => break,
        }
    }
    out.flush().context("cannot write to standard output")?;
    Ok(printed)
}

/// Prints up to `limit` events selected by `filter` (all when `None`) from global
/// position `from` (inclusive), up to the head as it was when the read started, so a read
/// of a store being written ends. Returns how many were printed.
pub(crate) async fn all<S, W>(
    store: &S,
    from: u64,
    limit: Option<u64>,
    filter: &ReadFilter,
    out: &mut W,
) -> anyhow::Result<u64>
where
    S: EventStore + ?Sized,
    W: Write,
{
    let head = store.head().await.context("cannot read the store's head")?;
    let mut next = Position(from.max(1));
    let mut left = limit.unwrap_or(u64::MAX);
    let mut printed = 0;
    let mut line = Vec::new();
    while left > 0 && next <= head {
        let want = page_size(left);
        let page = store
            .read_all(next, want, filter)
            .await
            .with_context(|| format!("cannot read the log at position {next}"))?;
        line.clear();
        for event in page.events.iter().take_while(|e| e.position <= head) {
            event.write_json_line(&mut line);
            printed += 1;
            left -= 1;
        }
        out.write_all(&line)
            .context("cannot write to standard output")?;
        if page.next <= next {
            break;
        }
        next = page.next;
    }
    out.flush().context("cannot write to standard output")?;
    Ok(printed)
}

fn page_size(left: u64) -> usize {
    usize::try_from(left).map_or(PAGE, |left| left.min(PAGE))
}
