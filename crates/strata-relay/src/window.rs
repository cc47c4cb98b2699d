//! [`Window`]: the batches a relay handed to its broker and has not seen confirmed yet,
//! in position order, and the one rule over them: the checkpoint moves only over the
//! contiguous confirmed prefix. A synchronous state machine: no I/O, no broker, no time.

use std::collections::VecDeque;

use strata_core::Position;

/// One batch handed to the broker.
#[derive(Debug)]
struct Sent {
    /// The position of its last event.
    through: Position,
    /// How many events it carries.
    count: u64,
    /// Whether the broker confirmed all of it.
    confirmed: bool,
}

/// How far a confirmation moved the confirmed prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Advance {
    /// The last position of the contiguous confirmed prefix: the new checkpoint.
    pub(crate) through: Position,
    /// The events the prefix gained.
    pub(crate) events: u64,
}

/// The batches in flight, oldest first, each named by a sequence number.
#[derive(Debug)]
pub(crate) struct Window {
    /// Batches not yet passed by the checkpoint; the first is never confirmed.
    sent: VecDeque<Sent>,
    /// The sequence number of `sent[0]`.
    first_seq: u64,
    /// The last position of the contiguous confirmed prefix.
    checkpoint: Position,
    /// Events handed over and not passed by the checkpoint.
    in_flight: u64,
}

impl Window {
    /// An empty window over a log confirmed up to `checkpoint`.
    pub(crate) fn new(checkpoint: Position) -> Self {
        Self {
            sent: VecDeque::new(),
            first_seq: 0,
            checkpoint,
            in_flight: 0,
        }
    }

    /// Records a batch of `count` events ending at `through`, handed to the broker after
    /// every batch recorded before; answers its sequence number for [`Window::confirm`].
    pub(crate) fn send(&mut self, through: Position, count: u64) -> u64 {
        let seq = self.first_seq + self.sent.len() as u64;
        self.sent.push_back(Sent {
            through,
            count,
            confirmed: false,
        });
        self.in_flight += count;
        seq
    }

    /// Records that the broker confirmed batch `seq`. Answers the new checkpoint when the
    /// contiguous confirmed prefix grew; `None` while an earlier batch is unconfirmed
    /// (or for a sequence number the window does not hold).
    pub(crate) fn confirm(&mut self, seq: u64) -> Option<Advance> {
        let index = usize::try_from(seq.checked_sub(self.first_seq)?).ok()?;
        self.sent.get_mut(index)?.confirmed = true;
        let mut events = 0;
        while let Some(front) = self.sent.front() {
            if !front.confirmed {
                break;
            }
            self.checkpoint = front.through;
            events += front.count;
            self.sent.pop_front();
            self.first_seq += 1;
        }
        self.in_flight -= events;
        (events > 0).then_some(Advance {
            through: self.checkpoint,
            events,
        })
    }

    /// The last position of the contiguous confirmed prefix: where a new session
    /// resumes after a fault drops every unconfirmed batch.
    pub(crate) fn checkpoint(&self) -> Position {
        self.checkpoint
    }

    /// Events handed to the broker and not covered by the checkpoint (confirmed ones
    /// behind an unconfirmed batch count too).
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight
    }
}
