//! `strata import`: reads export lines and appends them back with their ids, versions and
//! recording times, consecutive events of one stream in one append, many appends in
//! flight. The first bad line or refused append stops it.

use std::borrow::Cow;
use std::future::Future;
use std::io::Read;
use std::ops::ControlFlow;

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt as _;
use serde::Deserialize;
use serde_json::value::RawValue;
use strata_core::{ExpectedVersion, NewEvent, StreamName, Timestamp};
use strata_store::{AppendResult, StoreError};
use strata_store_embedded::EmbeddedStore;

use crate::lines::{self, Line, LineParser};
use crate::names::Names;
use crate::payload::{self, weight};
use crate::pipeline;

/// The most events one append carries; a longer run of one stream is split.
const MAX_GROUP_EVENTS: usize = 1000;
/// The most bytes (as weighed by [`weight`]) one append carries.
const MAX_GROUP_BYTES: usize = 4 * 1024 * 1024;

/// Where imported events go: a store that can append with given recording times.
pub(crate) trait ImportTarget {
    /// Appends `events`, recorded at `recorded_at` (one per event).
    fn append_recorded(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        recorded_at: Vec<Timestamp>,
    ) -> impl Future<Output = Result<AppendResult, StoreError>>;
}

impl ImportTarget for EmbeddedStore {
    fn append_recorded(
        &self,
        stream: &StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
        recorded_at: Vec<Timestamp>,
    ) -> impl Future<Output = Result<AppendResult, StoreError>> {
        self.append_with_timestamps(stream, expected, events, recorded_at)
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
/// line or refused append with an error naming the line; what came before stays.
pub(crate) async fn run<T: ImportTarget + ?Sized>(
    target: &T,
    input: Box<dyn Read + Send>,
) -> anyhow::Result<Summary> {
    let groups = lines::spawn_reader(input, ImportParser::default())
        .context("cannot start the thread reading the import input")?;
    let results = pipeline::in_order(
        groups,
        |item| match item {
            Ok(Job::Append(group)) => group.bytes,
            _ => 0,
        },
        |item| async move {
            match item {
                Ok(Job::Append(group)) => {
                    let line = group.line;
                    let count = group.events.len() as u64;
                    let expected = ExpectedVersion::Exact(group.first_version - 1);
                    target
                        .append_recorded(&group.stream, expected, group.events, group.recorded_at)
                        .await
                        .map(|_| count)
                        .with_context(|| format!("cannot import line {line}"))
                }
                Ok(Job::Fail(message)) => Err(anyhow::anyhow!(message)),
                Err(err) => Err(err).context("cannot read the import input"),
            }
        },
    );
    let mut results = std::pin::pin!(results);
    let mut summary = Summary::default();
    while let Some(result) = results.next().await {
        let count =
            result.with_context(|| format!("import stopped after {} events", summary.events))?;
        summary.events += count;
        summary.appends += 1;
    }
    Ok(summary)
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
