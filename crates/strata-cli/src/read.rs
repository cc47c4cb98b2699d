//! `strata read`, `strata read-all` and `strata export`: page through the store and print
//! one JSON line per event, with memory bounded by one page whatever the read's size.

use std::io::Write;

use anyhow::Context as _;
use strata_core::{Position, RecordedEvent, StreamName, Version};
use strata_store::{Direction, EventStore, ReadFilter, StoreError};

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
        let events = match store.read_stream(stream, from, direction, want).await {
            Ok(events) => events,
            Err(err) if is_damage(&err) => {
                // Somewhere in this page an event cannot be read: go one event at a time
                // to print everything before it and name it.
                let start = match (from, direction) {
                    (Some(from), _) => from,
                    (None, Direction::Forward) => Version(1),
                    (None, Direction::Backward) => store
                        .stream_version(stream)
                        .await
                        .with_context(|| format!("cannot read stream {stream}"))?,
                };
                let step = (start, direction, left);
                return one_by_one(store, stream, step, printed, line, out).await;
            }
            Err(err) => return Err(err).with_context(|| format!("cannot read stream {stream}")),
        };
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

/// Goes on with a read of `stream` one event at a time from `version` in `direction`, up
/// to `left` events, after `printed` already, until the event that cannot be read (an
/// error naming its version) or the end of the stream.
async fn one_by_one<S, W>(
    store: &S,
    stream: &StreamName,
    (mut version, direction, mut left): (Version, Direction, u64),
    mut printed: u64,
    mut line: Vec<u8>,
    out: &mut W,
) -> anyhow::Result<u64>
where
    S: EventStore + ?Sized,
    W: Write,
{
    while left > 0 && version.0 > 0 {
        line.clear();
        match store.read_stream(stream, Some(version), direction, 1).await {
            Ok(events) => {
                let Some(event) = events.first() else { break };
                event.write_json_line(&mut line);
                out.write_all(&line)
                    .context("cannot write to standard output")?;
                printed += 1;
                left -= 1;
            }
            Err(error) => {
                out.flush().context("cannot write to standard output")?;
                return Err(anyhow::Error::new(error).context(format!(
                    "the read of stream {stream} stopped at version {version}, which cannot be read, after {printed} events"
                )));
            }
        }
        version = match direction {
            Direction::Forward => version.next(),
            Direction::Backward => Version(version.0 - 1),
        };
    }
    out.flush().context("cannot write to standard output")?;
    Ok(printed)
}

/// How a global read prints each event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineForm {
    /// The read line (`read-all`).
    Read,
    /// The export line: the read line plus the payloads' exact bytes where needed.
    Export,
}

/// What a global read does at an event it cannot read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OnDamage {
    /// Stop there, with an error naming the position.
    Stop,
    /// Step over it, note it, and go on (`export --salvage`).
    Skip,
}

/// What a global read printed.
#[derive(Debug, Default)]
pub(crate) struct AllRead {
    /// Events printed.
    pub(crate) printed: u64,
    /// The last position the read covered (the head it ran to, when it ran to the end).
    pub(crate) last: Position,
    /// Whether it ran to the head it saw when it started (no limit stopped it).
    pub(crate) to_head: bool,
    /// Events stepped over as unreadable (only with [`OnDamage::Skip`]).
    pub(crate) skipped: Vec<Unreadable>,
}

/// An event that could not be read.
#[derive(Debug)]
pub(crate) struct Unreadable {
    pub(crate) position: Position,
    pub(crate) error: StoreError,
}

/// Prints up to `limit` events selected by `filter` (all when `None`) from global
/// position `from` (inclusive), up to the head as it was when the read started, so a read
/// of a store being written ends. An event that cannot be read stops the read with an
/// error naming its position, or is stepped over (see [`OnDamage`]).
pub(crate) async fn all<S, W>(
    store: &S,
    from: u64,
    limit: Option<u64>,
    filter: &ReadFilter,
    form: LineForm,
    on_damage: OnDamage,
    out: &mut W,
) -> anyhow::Result<AllRead>
where
    S: EventStore + ?Sized,
    W: Write,
{
    let head = store.head().await.context("cannot read the store's head")?;
    let mut next = Position(from.max(1));
    let mut left = limit.unwrap_or(u64::MAX);
    let mut read = AllRead::default();
    let mut line = Vec::new();
    let write = |event: &RecordedEvent, line: &mut Vec<u8>| match form {
        LineForm::Read => event.write_json_line(line),
        LineForm::Export => crate::export::write_line(event, line),
    };
    while left > 0 && next <= head {
        let want = page_size(left);
        line.clear();
        match store.read_all(next, want, filter).await {
            Ok(page) => {
                for event in page.events.iter().take_while(|e| e.position <= head) {
                    write(event, &mut line);
                    read.printed += 1;
                    left -= 1;
                }
                if page.next <= next {
                    anyhow::bail!(
                        "the store read nothing from position {next} although its head is {head}"
                    );
                }
                next = page.next;
            }
            Err(err) if is_damage(&err) => {
                // Somewhere in this page an event cannot be read: go one event at a
                // time, over as many positions as a page holds, to find it.
                let end = Position(next.0.saturating_add(PAGE as u64 - 1).min(head.0));
                while left > 0 && next <= end {
                    match store.read_all(next, 1, &ReadFilter::all()).await {
                        Ok(page) => {
                            for event in page.events.iter().take_while(|e| e.position <= head) {
                                if filter.matches(&event.stream, event.event_type.as_str()) {
                                    write(event, &mut line);
                                    read.printed += 1;
                                    left -= 1;
                                }
                            }
                        }
                        Err(error) if is_damage(&error) && on_damage == OnDamage::Skip => {
                            read.skipped.push(Unreadable {
                                position: next,
                                error,
                            });
                        }
                        Err(error) => {
                            out.write_all(&line)
                                .and_then(|()| out.flush())
                                .context("cannot write to standard output")?;
                            return Err(stopped(error, next, read.printed));
                        }
                    }
                    next = next.next();
                }
            }
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read the log at position {next}"));
            }
        }
        out.write_all(&line)
            .context("cannot write to standard output")?;
    }
    out.flush().context("cannot write to standard output")?;
    read.to_head = next > head;
    read.last = if read.to_head {
        head
    } else {
        Position(next.0 - 1)
    };
    Ok(read)
}

/// Errors that mean the bytes of an event are bad or cannot be read, rather than that
/// the store as a whole cannot answer.
fn is_damage(err: &StoreError) -> bool {
    matches!(err, StoreError::Corrupt { .. } | StoreError::Io { .. })
}

/// The error of a read stopped at the unreadable `position`.
fn stopped(error: StoreError, position: Position, printed: u64) -> anyhow::Error {
    anyhow::Error::new(error).context(format!(
        "the read stopped at position {position}, which cannot be read, after {printed} events (export --salvage exports every readable event)"
    ))
}

fn page_size(left: u64) -> usize {
    usize::try_from(left).map_or(PAGE, |left| left.min(PAGE))
}
