//! Line input for the streaming commands (append, import): a reader thread splits the
//! input into lines, lets a [`LineParser`] turn them into work items, and sends the items
//! in batches to the async side, which consumes them in input order.
//!
//! Parsing runs on the reader thread so the async side only drives appends. This module
//! knows nothing of the store or of what a line means.

use std::io::{self, BufRead, BufReader, Read};
use std::ops::ControlFlow;

use futures::Stream;
use futures::stream;
use tokio::sync::mpsc;

/// The longest input line accepted; a longer one is reported, skipped and not buffered.
pub(crate) const MAX_LINE_BYTES: usize = 64 * 1024 * 1024;

/// Items sent to the async side per message, at most.
const BATCH_ITEMS: usize = 256;
/// Input bytes after which a batch is sent even if it holds fewer items.
const BATCH_BYTES: usize = 1024 * 1024;
/// Batches in flight between the reader thread and the async side.
const CHANNEL_BATCHES: usize = 8;
/// The reader's buffer.
const READ_BUFFER_BYTES: usize = 1024 * 1024;

/// One input line, without its line ending.
#[derive(Debug)]
pub(crate) enum Line {
    /// The line's bytes (not necessarily UTF-8), in an allocation of their own so a
    /// parser can keep them without copying.
    Text(Vec<u8>),
    /// The line was longer than the limit; its bytes were skipped.
    TooLong {
        /// The line's length in bytes.
        bytes: usize,
        /// The limit it broke.
        limit: usize,
    },
}

/// Turns input lines into work items on the reader thread.
pub(crate) trait LineParser: Send + 'static {
    /// What the async side consumes.
    type Item: Send + 'static;

    /// Handles line `number` (1-based), pushing zero or more items. `Break` stops reading.
    fn line(&mut self, number: u64, line: Line, out: &mut Vec<Self::Item>) -> ControlFlow<()>;

    /// The input has no more buffered bytes: the next read may wait for a writer.
    fn idle(&mut self, out: &mut Vec<Self::Item>) {
        let _ = out;
    }

    /// The input ended.
    fn end(&mut self, out: &mut Vec<Self::Item>) {
        let _ = out;
    }
}

/// Reads `input` on a new thread and yields the parser's items in order; a read error
/// is yielded last.
pub(crate) fn spawn_reader<P: LineParser>(
    input: Box<dyn Read + Send>,
    parser: P,
) -> io::Result<impl Stream<Item = io::Result<P::Item>>> {
    let (tx, rx) = mpsc::channel(CHANNEL_BATCHES);
    std::thread::Builder::new()
        .name("strata-input".to_owned())
        .spawn(move || {
            let input = BufReader::with_capacity(READ_BUFFER_BYTES, input);
            read_into(input, parser, MAX_LINE_BYTES, &tx);
        })?;
    Ok(receive(rx))
}

/// The reader thread's loop. Stops at the end of the input, at a read error, when the
/// parser says so, or when the async side is gone.
fn read_into<R: Read, P: LineParser>(
    mut input: BufReader<R>,
    mut parser: P,
    max_line: usize,
    tx: &mpsc::Sender<io::Result<Vec<P::Item>>>,
) {
    let mut items = Vec::with_capacity(BATCH_ITEMS);
    let mut batch_bytes = 0usize;
    let mut number = 0u64;
    loop {
        match read_line(&mut input, max_line) {
            Err(err) => {
                if send(tx, &mut items) {
                    let _ = tx.blocking_send(Err(err));
                }
                return;
            }
            Ok(None) => {
                parser.end(&mut items);
                send(tx, &mut items);
                return;
            }
            Ok(Some(line)) => {
                number += 1;
                if let Line::Text(text) = &line {
                    batch_bytes += text.len();
                }
                if parser.line(number, line, &mut items).is_break() {
                    send(tx, &mut items);
                    return;
                }
                let idle = input.buffer().is_empty();
                if idle {
                    parser.idle(&mut items);
                }
                if idle || items.len() >= BATCH_ITEMS || batch_bytes >= BATCH_BYTES {
                    batch_bytes = 0;
                    if !send(tx, &mut items) {
                        return;
                    }
                }
            }
        }
    }
}

/// Sends the items gathered so far, if any; false when the async side is gone.
fn send<T>(tx: &mpsc::Sender<io::Result<Vec<T>>>, items: &mut Vec<T>) -> bool {
    if items.is_empty() {
        return true;
    }
    let batch = std::mem::replace(items, Vec::with_capacity(BATCH_ITEMS));
    tx.blocking_send(Ok(batch)).is_ok()
}

/// Reads one line without its `\n` or `\r\n`; `None` at the end of the input. A line
/// longer than `max` is consumed but not kept.
pub(crate) fn read_line(input: &mut impl BufRead, max: usize) -> io::Result<Option<Line>> {
    let mut line = Vec::new();
    let mut total = 0usize;
    let mut started = false;
    loop {
        let buf = match input.fill_buf() {
            Ok(buf) => buf,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if buf.is_empty() {
            if !started {
                return Ok(None);
            }
            break;
        }
        started = true;
        let (chunk, consumed, complete) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (&buf[..i], i + 1, true),
            None => (buf, buf.len(), false),
        };
        total = total.saturating_add(chunk.len());
        if total > max {
            line = Vec::new();
        } else if line.is_empty() {
            // Usually the whole line is in the buffer: one allocation of the exact size.
            line = chunk.to_vec();
        } else {
            line.extend_from_slice(chunk);
        }
        input.consume(consumed);
        if complete {
            break;
        }
    }
    if total > max {
        return Ok(Some(Line::TooLong {
            bytes: total,
            limit: max,
        }));
    }
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(Some(Line::Text(line)))
}

/// Flattens the reader's batches into a stream of items.
fn receive<T>(rx: mpsc::Receiver<io::Result<Vec<T>>>) -> impl Stream<Item = io::Result<T>> {
    stream::unfold(
        (rx, Vec::new().into_iter()),
        |(mut rx, mut batch)| async move {
            loop {
                if let Some(item) = batch.next() {
                    return Some((Ok(item), (rx, batch)));
                }
                match rx.recv().await? {
                    Ok(next) => batch = next.into_iter(),
                    Err(err) => return Some((Err(err), (rx, batch))),
                }
            }
        },
    )
}

/// A `serde_json` error as a message naming the input line and column.
pub(crate) fn json_error(number: u64, err: &serde_json::Error) -> String {
    let text = err.to_string();
    let suffix = format!(" at line {} column {}", err.line(), err.column());
    match text.strip_suffix(&suffix) {
        Some(message) => format!(
            "invalid JSON on line {number}, column {}: {message}",
            err.column()
        ),
        None => format!("invalid JSON on line {number}: {text}"),
    }
}

/// Checks that a line is UTF-8.
pub(crate) fn utf8(number: u64, line: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(line).map_err(|err| {
        format!(
            "line {number} is not valid UTF-8 (bad byte at offset {})",
            err.valid_up_to()
        )
    })
}

/// Reads all of `input` on this thread, as the reader thread would, and collects the
/// items (for the unit tests, and for the `import_lines` fuzz target in `fuzz/`, which
/// builds these modules with `--cfg fuzzing`).
#[cfg(any(test, fuzzing))]
pub(crate) fn read_all_lines<P: LineParser>(
    input: &[u8],
    parser: P,
    max_line: usize,
) -> Vec<P::Item> {
    let (tx, mut rx) = mpsc::channel(1024 * 1024);
    read_into(BufReader::with_capacity(7, input), parser, max_line, &tx);
    drop(tx);
    let mut items = Vec::new();
    while let Ok(batch) = rx.try_recv() {
        items.extend(batch.expect("reading a slice cannot fail"));
    }
    items
}
