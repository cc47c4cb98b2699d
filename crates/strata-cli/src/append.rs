//! `strata append`: one JSON line in, one atomic append, one JSON line out, in input order,
//! with many appends in flight so the store can commit them in groups.
//!
//! It parses and reports; the store decides. It never retries an append.

use std::borrow::Cow;
use std::io::{self, Read, Write};
use std::ops::ControlFlow;

use anyhow::Context as _;
use bytes::Bytes;
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use strata_core::{CoreError, EventId, ExpectedVersion, NewEvent, StreamName};
use strata_store::{AppendResult, EventStore, StoreError};

use crate::lines::{self, Line, LineParser};
use crate::names::Names;
use crate::{payload, pipeline};

/// What `append` did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Summary {
    /// Lines appended.
    pub(crate) appended: u64,
    /// Lines refused.
    pub(crate) failed: u64,
}

/// Reads append lines from `input`, appends each to `store`, and writes one result line
/// per non-empty input line to `out`, in input order, each once its append is durable.
/// `out` is flushed whenever the input has nothing more buffered, and at the end.
pub(crate) async fn run<S, W>(
    store: &S,
    input: Box<dyn Read + Send>,
    out: &mut W,
) -> anyhow::Result<Summary>
where
    S: EventStore + ?Sized,
    W: Write,
{
    let jobs = lines::spawn_reader(input, AppendParser::default())
        .context("cannot start the thread reading standard input")?;
    let replies = pipeline::in_order(
        jobs,
        |job| match job {
            Ok(Job::Append { events, .. }) => events.iter().map(payload::weight).sum(),
            _ => 0,
        },
        |job| async move {
            match job {
                Ok(job) => Ok(execute(store, job).await),
                Err(err) => Err(err),
            }
        },
    );
    let mut replies = std::pin::pin!(replies);
    let mut summary = Summary::default();
    while let Some(reply) = replies.next().await {
        let reply = reply.context("cannot read standard input")?;
        match &reply {
            Reply::Done { .. } => summary.appended += 1,
            Reply::Failed(_) => summary.failed += 1,
            Reply::Flush => {}
        }
        reply
            .write_to(out)
            .context("cannot write to standard output")?;
    }
    out.flush().context("cannot write to standard output")?;
    Ok(summary)
}

/// One unit of work for the async side.
#[derive(Debug)]
pub(crate) enum Job {
    /// A valid append line.
    Append {
        stream: StreamName,
        expected: ExpectedVersion,
        events: Vec<NewEvent>,
    },
    /// A line that cannot be appended; its error is the reply.
    Refuse(ErrorBody),
    /// The input is idle: flush what was printed so far.
    Flush,
}

async fn execute<S: EventStore + ?Sized>(store: &S, job: Job) -> Reply {
    match job {
        Job::Append {
            stream,
            expected,
            events,
        } => match store.append(&stream, expected, events).await {
            Ok(result) => Reply::Done { stream, result },
            Err(err) => Reply::Failed(ErrorBody::from_store(&err)),
        },
        Job::Refuse(body) => Reply::Failed(body),
        Job::Flush => Reply::Flush,
    }
}

/// The outcome of one job, printed in input order.
#[derive(Debug)]
pub(crate) enum Reply {
    Done {
        stream: StreamName,
        result: AppendResult,
    },
    Failed(ErrorBody),
    Flush,
}

impl Reply {
    /// Writes this reply's line (or flushes, for [`Reply::Flush`]).
    pub(crate) fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        match self {
            Reply::Done { stream, result } => {
                serde_json::to_writer(
                    &mut *out,
                    &Ack {
                        stream,
                        first_version: result.first_version.0,
                        last_version: result.last_version.0,
                        position: result.position.0,
                    },
                )?;
                out.write_all(b"\n")
            }
            Reply::Failed(error) => {
                serde_json::to_writer(&mut *out, &ErrorLine { error })?;
                out.write_all(b"\n")
            }
            Reply::Flush => out.flush(),
        }
    }
}

#[derive(Serialize)]
struct Ack<'a> {
    stream: &'a StreamName,
    first_version: u64,
    last_version: u64,
    position: u64,
}

#[derive(Serialize)]
struct ErrorLine<'a> {
    error: &'a ErrorBody,
}

/// The error object of a refused line: `{"code", "message"}`, plus `expected` and
/// `actual` for a version conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct ErrorBody {
    pub(crate) code: &'static str,
    pub(crate) message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) expected: Option<ExpectedVersion>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) actual: Option<u64>,
}

impl ErrorBody {
    /// The error of a store refusal.
    pub(crate) fn from_store(err: &StoreError) -> Self {
        let (expected, actual) = match err {
            StoreError::WrongExpectedVersion {
                expected, actual, ..
            } => (Some(*expected), Some(actual.0)),
            _ => (None, None),
        };
        Self {
            code: err.code(),
            message: err.to_string(),
            expected,
            actual,
        }
    }

    /// An input line that is not a valid append.
    pub(crate) fn invalid(message: String) -> Self {
        Self::new(INVALID_INPUT, message)
    }

    /// An input line over the line length limit.
    fn too_long(number: u64, bytes: usize, limit: usize) -> Self {
        Self::new(
            TOO_LARGE,
            format!("line {number} is {bytes} bytes, over the limit of {limit} bytes"),
        )
    }

    fn new(code: &'static str, message: String) -> Self {
        Self {
            code,
            message,
            expected: None,
            actual: None,
        }
    }
}

/// The code of a line that is not a valid append; the same as the store's for bad input.
pub(crate) const INVALID_INPUT: &str = "invalid_input";
/// The code of a line over the length limit; the same as the store's for an event over
/// its size limit.
pub(crate) const TOO_LARGE: &str = "too_large";

/// Parses append lines on the reader thread.
#[derive(Default)]
struct AppendParser {
    names: Names,
}

impl LineParser for AppendParser {
    type Item = Job;

    fn line(&mut self, number: u64, line: Line, out: &mut Vec<Job>) -> ControlFlow<()> {
        match line {
            Line::TooLong { bytes, limit } => {
                out.push(Job::Refuse(ErrorBody::too_long(number, bytes, limit)));
            }
            Line::Text(text) if text.trim_ascii().is_empty() => {}
            Line::Text(text) => {
                out.push(parse_line(&mut self.names, number, text).unwrap_or_else(Job::Refuse));
            }
        }
        ControlFlow::Continue(())
    }

    fn idle(&mut self, out: &mut Vec<Job>) {
        out.push(Job::Flush);
    }
}

/// An append line as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AppendLine<'a> {
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(default)]
    expected_version: ExpectedVersion,
    #[serde(borrow)]
    events: Vec<EventLine<'a>>,
}

/// One event of an append line.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventLine<'a> {
    #[serde(rename = "type", borrow)]
    event_type: Cow<'a, str>,
    #[serde(borrow)]
    data: &'a RawValue,
    #[serde(borrow, default)]
    metadata: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

/// Parses append line `number`. The event payloads are kept as the exact bytes written.
pub(crate) fn parse_line(names: &mut Names, number: u64, line: Vec<u8>) -> Result<Job, ErrorBody> {
    let line = Bytes::from(line);
    let text = lines::utf8(number, &line).map_err(ErrorBody::invalid)?;
    let parsed: AppendLine<'_> = serde_json::from_str(text)
        .map_err(|err| ErrorBody::invalid(lines::json_error(number, &err)))?;
    let stream = names
        .stream(&parsed.stream)
        .map_err(|err| ErrorBody::invalid(format!("line {number}: {err}")))?;
    let events = parsed
        .events
        .into_iter()
        .enumerate()
        .map(|(index, event)| {
            new_event(names, &line, event)
                .map_err(|err| ErrorBody::invalid(format!("line {number}, event {index}: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Job::Append {
        stream,
        expected: parsed.expected_version,
        events,
    })
}

fn new_event(names: &mut Names, line: &Bytes, event: EventLine<'_>) -> Result<NewEvent, CoreError> {
    let id = match event.id {
        Some(id) => id.parse()?,
        None => EventId::new(),
    };
    Ok(NewEvent {
        id,
        event_type: names.event_type(&event.event_type)?,
        data: payload::part(line, event.data),
        metadata: payload::metadata(line, event.metadata)?,
    })
}
