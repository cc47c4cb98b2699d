//! `strata import`: reads export lines and appends them back with their ids, versions and
//! recording times, consecutive events of one stream in one append, many appends in
//! flight. The first bad line or refused append stops it.

use std::borrow::Cow;
use std::future::Future;
use std::io::Read;
use std::ops::ControlFlow;
use std::pin::Pin;

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt as _;
use futures::stream::FuturesOrdered;
use serde::Deserialize;
use serde_json::value::RawValue;
use strata_core::{ExpectedVersion, NewEvent, StreamName, Timestamp};
use strata_store::{AppendResult, StoreError};
use strata_store_embedded::{BatchAppend, EmbeddedStore};

use crate::lines::{self, Line, LineParser};
use crate::names::Names;
use crate::payload::{self, weight};

/// The most events one append carries; a longer run of one stream is split.
const MAX_GROUP_EVENTS: usize = 1000;
/// The most bytes (as weighed by [`weight`]) one append carries.
const MAX_GROUP_BYTES: usize = 4 * 1024 * 1024;
/// Appends queued in the store with one submission, at most.
const SUBMIT_GROUPS: usize = 2048;
/// Submitted batches waiting for their acknowledgement, at most.
const MAX_BATCHES_IN_FLIGHT: usize = 8;
/// Event bytes waiting for their acknowledgement, at most (roughly).
const MAX_BYTES_IN_FLIGHT: usize = 256 * 1024 * 1024;

/// The outcomes of a batch of appends, once the store has answered them.
pub(crate) type Acks = Pin<Box<dyn Future<Output = Vec<Result<AppendResult, StoreError>>> + Send>>;

/// Where imported events go: a store that queues batches of appends in order, with given
/// recording times, and answers each batch later.
pub(crate) trait ImportTarget {
    /// Queues `appends` behind everything queued before; resolves once they are queued,
    /// to the future of their outcomes in order.
    fn submit(&self, appends: Vec<BatchAppend>) -> impl Future<Output = Acks>;
}

impl ImportTarget for EmbeddedStore {
    async fn submit(&self, appends: Vec<BatchAppend>) -> Acks {
        Box::pin(self.submit_batch(appends).await.wait())
    }
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Events imported.
    pub(crate) events: u64,
    /// Appends made.
    pub(crate) appends: u64,
}

/// Imports every export line of `input` into `target`, in order. Stops at the first bad
/// line or refused append with an error naming the line; what came before stays (and so
/// may appends already in flight behind the refused one; importing again skips them).
pub(crate) async fn run<T: ImportTarget + ?Sized>(
    target: &T,
    input: Box<dyn Read + Send>,
) -> anyhow::Result<Summary> {
    let items = lines::spawn_reader(input, ImportParser::default())
        .context("cannot start the thread reading the import input")?;
    let mut chunks = std::pin::pin!(items.ready_chunks(SUBMIT_GROUPS));
    // Batches queued in the store, oldest first, with the line, events and bytes of each
    // group.
    let mut in_flight = FuturesOrdered::new();
    let mut bytes_in_flight = 0usize;
    let mut summary = Summary::default();
    // The input's own failure (a bad line, a read error): it comes after every group
    // submitted before it.
    let mut input_failure: Option<anyhow::Error> = None;
    // The first refused append, in input order.
    let mut refused: Option<anyhow::Error> = None;
    'read: while input_failure.is_none() {
        let Some(chunk) = chunks.next().await else {
            break;
        };
        let mut appends = Vec::with_capacity(chunk.len());
        let mut groups = Vec::with_capacity(chunk.len());
        for item in chunk {
            match item {
                Ok(Job::Append(group)) => {
                    groups.push((group.line, group.events.len() as u64, group.bytes));
                    appends.push(BatchAppend {
                        expected: ExpectedVersion::Exact(group.first_version - 1),
                        stream: group.stream,
                        events: group.events,
                        recorded_at: Some(group.recorded_at),
                    });
                }
                Ok(Job::Fail(message)) => {
                    input_failure = Some(anyhow::anyhow!(message));
                    break;
                }
                Err(err) => {
                    input_failure =
                        Some(anyhow::Error::new(err).context("cannot read the import input"));
                    break;
                }
            }
        }
        if appends.is_empty() {
            continue;
        }
        let bytes: usize = groups.iter().map(|g| g.2).sum();
        bytes_in_flight += bytes;
        // NOTE: the batch is queued here, in input order, before the next one is built.
        let ack = target.submit(appends).await;
        in_flight.push_back(async move { (groups, bytes, ack.await) });
        while in_flight.len() > MAX_BATCHES_IN_FLIGHT || bytes_in_flight > MAX_BYTES_IN_FLIGHT {
            let Some((groups, bytes, outcomes)) = in_flight.next().await else {
                break;
            };
            bytes_in_flight -= bytes;
            if let Err(err) = settle(groups, outcomes, &mut summary) {
                refused = Some(err);
                break 'read;
            }
        }
    }
    // Everything queued completes whatever happens.
    while let Some((groups, _, outcomes)) = in_flight.next().await {
        if refused.is_none()
            && let Err(err) = settle(groups, outcomes, &mut summary)
        {
            refused = Some(err);
        }
    }
    match refused.or(input_failure) {
        Some(err) => Err(err.context(format!("import stopped after {} events", summary.events))),
        None => Ok(summary),
    }
}

/// Counts a batch's imported events, or names the line of its first refused append.
fn settle(
    groups: Vec<(u64, u64, usize)>,
    outcomes: Vec<Result<AppendResult, StoreError>>,
    summary: &mut Summary,
) -> anyhow::Result<()> {
    for ((line, count, _), outcome) in groups.into_iter().zip(outcomes) {
        outcome.with_context(|| format!("cannot import line {line}"))?;
        summary.events += count;
        summary.appends += 1;
    }
    Ok(())
}

/// One unit of work for the async side.
#[derive(Debug)]
enum Job {
    Append(Group),
    /// A bad line: the message names it. Nothing after it is read.
    Fail(String),
}

/// Consecutive events of one stream with consecutive versions.
#[derive(Debug)]
struct Group {
    /// The input line of the first event.
    line: u64,
    stream: StreamName,
    first_version: u64,
    events: Vec<NewEvent>,
    recorded_at: Vec<Timestamp>,
    bytes: usize,
}

impl Group {
    fn accepts(&self, stream: &str, version: u64) -> bool {
        self.stream.as_str() == stream
            && self.first_version.checked_add(self.events.len() as u64) == Some(version)
            && self.events.len() < MAX_GROUP_EVENTS
            && self.bytes < MAX_GROUP_BYTES
    }
}

/// An export line as written; `position` is ignored (the target assigns its own).
#[derive(Deserialize)]
struct ExportLine<'a> {
    #[serde(borrow)]
    stream: Cow<'a, str>,
    version: u64,
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow)]
    recorded_at: Cow<'a, str>,
}

/// Parses export lines and groups them on the reader thread.
#[derive(Default)]
struct ImportParser {
    group: Option<Group>,
    names: Names,
}

impl LineParser for ImportParser {
    type Item = Job;

    fn line(&mut self, number: u64, line: Line, out: &mut Vec<Job>) -> ControlFlow<()> {
        let text = match line {
            Line::Text(text) if text.trim_ascii().is_empty() => return ControlFlow::Continue(()),
            Line::Text(text) => text,
            Line::TooLong { bytes, limit } => {
                return self.fail(
                    format!("line {number} is {bytes} bytes, over the limit of {limit} bytes"),
                    out,
                );
            }
        };
        match self.add(number, text) {
            Ok(Some(full)) => out.push(Job::Append(full)),
            Ok(None) => {}
            Err(message) => return self.fail(message, out),
        }
        ControlFlow::Continue(())
    }

    fn end(&mut self, out: &mut Vec<Job>) {
        out.extend(self.group.take().map(Job::Append));
    }
}

impl ImportParser {
    /// Adds line `number` to the current group, returning the previous group if this
    /// line starts a new one.
    fn add(&mut self, number: u64, text: Vec<u8>) -> Result<Option<Group>, String> {
        let line = Bytes::from(text);
        let text = lines::utf8(number, &line)?;
        let parsed: ExportLine<'_> =
            serde_json::from_str(text).map_err(|err| lines::json_error(number, &err))?;
        let at = |err| format!("line {number}: {err}");
        let event = NewEvent {
            id: parsed.id.parse().map_err(at)?,
            event_type: self.names.event_type(&parsed.event_type).map_err(at)?,
            data: payload::part(&line, parsed.data),
            metadata: payload::metadata(&line, parsed.metadata).map_err(at)?,
        };
        let recorded_at = Timestamp::parse_rfc3339(&parsed.recorded_at).map_err(at)?;
        if let Some(group) = self
            .group
            .as_mut()
            .filter(|g| g.accepts(&parsed.stream, parsed.version))
        {
            group.bytes += weight(&event);
            group.events.push(event);
            group.recorded_at.push(recorded_at);
            return Ok(None);
        }
        let stream = self.names.stream(&parsed.stream).map_err(at)?;
        if parsed.version == 0 {
            return Err(format!(
                "line {number}: version 0 of stream {stream} is not an event's version (versions start at 1)"
            ));
        }
        let group = Group {
            line: number,
            stream,
            first_version: parsed.version,
            bytes: weight(&event),
            events: vec![event],
            recorded_at: vec![recorded_at],
        };
        Ok(self.group.replace(group))
    }

    fn fail(&mut self, message: String, out: &mut Vec<Job>) -> ControlFlow<()> {
        out.extend(self.group.take().map(Job::Append));
        out.push(Job::Fail(message));
        ControlFlow::Break(())
    }
}
