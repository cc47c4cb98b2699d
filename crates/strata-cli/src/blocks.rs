//! Block input for `strata import`: a reader thread reads the input in large blocks cut
//! at line ends, worker threads parse the blocks side by side, and the async side takes
//! the parsed blocks back in input order.
//!
//! Block `k` goes to worker `k mod n` and is taken back from that worker in turn, so the
//! order needs no sequence numbers and no reordering buffer. A block holds only whole
//! lines (the last one may lack its `\n` at the end of the input), so a worker can number
//! its lines from 1 and the async side adds the lines of the blocks before. This module
//! knows nothing of what a line means.

use std::io::{self, Read};
use std::sync::mpsc as std_mpsc;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

/// Bytes read before a block is cut at its last line end.
const BLOCK_BYTES: usize = 1024 * 1024;
/// Blocks waiting for each worker.
const WORKER_QUEUE: usize = 1;
/// Parsed blocks each worker may be ahead of the async side.
const PARSED_QUEUE: usize = 2;
/// The most parsing threads, whatever the machine.
const MAX_WORKERS: usize = 4;

/// Turns a block of whole lines into one parsed item, on a worker thread.
pub(crate) trait BlockParser: Clone + Send + 'static {
    /// What the async side consumes per block.
    type Parsed: Send + 'static;

    /// Parses `block`: whole lines, each ending in `\n` but perhaps the input's last.
    fn parse(&mut self, block: Bytes) -> Self::Parsed;
}

/// One piece of the input, in order.
#[derive(Debug)]
pub(crate) enum Piece<T> {
    /// A parsed block.
    Parsed(T),
    /// The line after the blocks so far is longer than the limit: reading stopped there
    /// (its bytes were skipped, not buffered).
    TooLong {
        /// The line's length in bytes (up to its `\n` or the end of the input).
        bytes: usize,
        /// The limit it broke.
        limit: usize,
    },
    /// Reading the input failed after the blocks so far.
    Failed(io::Error),
}

/// What the reader hands a worker.
enum Raw {
    Block(Bytes),
    TooLong { bytes: usize, limit: usize },
    Failed(io::Error),
}

/// The parsed pieces of an input, in input order.
pub(crate) struct Pieces<T> {
    workers: Vec<mpsc::Receiver<Piece<T>>>,
    next: usize,
}

impl<T> Pieces<T> {
    /// The next piece; `None` at the end of the input (or after a `TooLong` or `Failed`).
    pub(crate) async fn next(&mut self) -> Option<Piece<T>> {
        let count = self.workers.len();
        let piece = self.workers.get_mut(self.next)?.recv().await?;
        self.next = (self.next + 1) % count;
        Some(piece)
    }
}

/// How many threads parse: one per core, at least one and at most [`MAX_WORKERS`].
pub(crate) fn worker_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, usize::from)
        .clamp(1, MAX_WORKERS)
}

/// Reads `input` on a new thread, in blocks cut at line ends, and parses the blocks on
/// `workers` threads with clones of `parser`; yields the parsed blocks in input order. A
/// line longer than `max_line` bytes with no line end within it stops reading (a worker's
/// parser must refuse shorter lines over the limit itself). Dropping the [`Pieces`] stops
/// every thread at its next hand-over.
pub(crate) fn spawn<P: BlockParser>(
    input: Box<dyn Read + Send>,
    parser: P,
    workers: usize,
    max_line: usize,
) -> io::Result<Pieces<P::Parsed>> {
    let workers = workers.max(1);
    let mut inputs = Vec::with_capacity(workers);
    let mut outputs = Vec::with_capacity(workers);
    for i in 0..workers {
        let (raw_tx, raw_rx) = std_mpsc::sync_channel::<Raw>(WORKER_QUEUE);
        let (tx, rx) = mpsc::channel(PARSED_QUEUE);
        let mut parser = parser.clone();
        std::thread::Builder::new()
            .name(format!("strata-parse-{i}"))
            .spawn(move || {
                while let Ok(raw) = raw_rx.recv() {
                    let piece = match raw {
                        Raw::Block(block) => Piece::Parsed(parser.parse(block)),
                        Raw::TooLong { bytes, limit } => Piece::TooLong { bytes, limit },
                        Raw::Failed(err) => Piece::Failed(err),
                    };
                    if tx.blocking_send(piece).is_err() {
                        return;
                    }
                }
            })?;
        inputs.push(raw_tx);
        outputs.push(rx);
    }
    std::thread::Builder::new()
        .name("strata-input".to_owned())
        .spawn(move || {
            let mut next = 0usize;
            read_blocks(input, max_line, BLOCK_BYTES, |raw| {
                let sent = inputs[next].send(raw).is_ok();
                next = (next + 1) % inputs.len();
                sent
            });
        })?;
    Ok(Pieces {
        workers: outputs,
        next: 0,
    })
}

/// The reader thread's loop: cuts the input into blocks and hands each to `send`, which
/// answers false once no one takes them. Stops at the end of the input, at a read error,
/// at a line over the limit, or when `send` says so.
fn read_blocks(
    mut input: impl Read,
    max_line: usize,
    block_bytes: usize,
    mut send: impl FnMut(Raw) -> bool,
) {
    let mut buf = BytesMut::new();
    // Where to look for a line end: the bytes before it have none.
    let mut searched = 0usize;
    loop {
        let read = match fill(&mut input, &mut buf, block_bytes) {
            Ok(read) => read,
            Err(err) => {
                // The whole lines read so far go first.
                if let Some(end) = memchr::memrchr(b'\n', &buf) {
                    send(Raw::Block(buf.split_to(end + 1).freeze()));
                }
                send(Raw::Failed(err));
                return;
            }
        };
        let at_end = read == 0;
        match memchr::memrchr(b'\n', &buf[searched..]) {
            Some(end) => {
                let block = buf.split_to(searched + end + 1).freeze();
                searched = 0;
                if !send(Raw::Block(block)) {
                    return;
                }
            }
            None if at_end => {
                if !buf.is_empty() {
                    send(Raw::Block(buf.split().freeze()));
                }
                return;
            }
            None if buf.len() > max_line => {
                let bytes = skip_line(&mut input, buf.len());
                send(match bytes {
                    Ok(bytes) => Raw::TooLong {
                        bytes,
                        limit: max_line,
                    },
                    Err(err) => Raw::Failed(err),
                });
                return;
            }
            None => searched = buf.len(),
        }
    }
}

/// Reads into `buf` until it holds at least `block_bytes` bytes or the input ends;
/// returns how many bytes the last read gave (0 at the end of the input).
fn fill(input: &mut impl Read, buf: &mut BytesMut, block_bytes: usize) -> io::Result<usize> {
    let want = block_bytes.max(buf.len() + block_bytes / 4);
    if buf.capacity() < want {
        buf.reserve(want - buf.len());
    }
    loop {
        let start = buf.len();
        buf.resize(buf.capacity().max(start + 1), 0);
        let read = match input.read(&mut buf[start..]) {
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {
                buf.truncate(start);
                continue;
            }
            Err(err) => {
                buf.truncate(start);
                return Err(err);
            }
        };
        buf.truncate(start + read);
        if read == 0 || buf.len() >= block_bytes {
            return Ok(read);
        }
    }
}

/// Reads past the rest of a line of which `seen` bytes were read already; returns its
/// whole length.
fn skip_line(input: &mut impl Read, seen: usize) -> io::Result<usize> {
    let mut total = seen;
    let mut scratch = vec![0u8; 64 * 1024];
    loop {
        let read = match input.read(&mut scratch) {
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        if read == 0 {
            return Ok(total);
        }
        match memchr::memchr(b'\n', &scratch[..read]) {
            Some(i) => return Ok(total.saturating_add(i)),
            None => total = total.saturating_add(read),
        }
    }
}

/// The lines of `block` with their 1-based numbers within it: without their `\n` or
/// `\r\n`, as slices of the block.
pub(crate) fn lines(block: &Bytes) -> impl Iterator<Item = (u64, Bytes)> + '_ {
    let mut start = 0usize;
    let mut number = 0u64;
    std::iter::from_fn(move || {
        if start >= block.len() {
            return None;
        }
        let end = memchr::memchr(b'\n', &block[start..]).map_or(block.len(), |i| start + i);
        let mut line_end = end;
        if line_end > start && block[line_end - 1] == b'\r' {
            line_end -= 1;
        }
        let line = block.slice(start..line_end);
        start = end + 1;
        number += 1;
        Some((number, line))
    })
}

/// Splits all of `input` into blocks of about `block_bytes` on this thread, as the reader
/// thread would, and parses them in order (for the unit tests, and for the `import_lines`
/// fuzz target in `fuzz/`, which builds these modules with `--cfg fuzzing`).
#[cfg(any(test, fuzzing))]
pub(crate) fn parse_all<P: BlockParser>(
    input: &[u8],
    mut parser: P,
    max_line: usize,
    block_bytes: usize,
) -> Vec<Piece<P::Parsed>> {
    let mut raws = Vec::new();
    read_blocks(input, max_line, block_bytes.max(1), |raw| {
        raws.push(raw);
        true
    });
    raws.into_iter()
        .map(|raw| match raw {
            Raw::Block(block) => Piece::Parsed(parser.parse(block)),
            Raw::TooLong { bytes, limit } => Piece::TooLong { bytes, limit },
            Raw::Failed(err) => Piece::Failed(err),
        })
        .collect()
}
