//! The [`RedisProjection`] trait and [`RedisOps`], the writes it asks for. A projection
//! turns events into writes; it does no I/O itself: the runner sends a batch's writes
//! with its checkpoint in one script.

use strata_core::RecordedEvent;
use strata_store::ReadFilter;

use crate::{ApplyError, FailurePolicy};

/// A read model kept in Redis.
///
/// The runner calls [`RedisProjection::apply`] for every selected event in position
/// order; the writes it records for a batch are made in Redis together with the
/// checkpoint, atomically. `apply` must be a pure function of the event (no I/O, no
/// clock): the same events always make the same writes. Its keys live under the
/// projection's key space (`<prefix><name>:v<version>:`); `checkpoint` and `parked` in
/// that space are the runner's.
pub trait RedisProjection: Send + Sync + 'static {
    /// The projection's name: 1 to 64 characters of `a-z`, `0-9` and `_`.
    fn name(&self) -> &'static str;

    /// The version of the model's code. Its keys include it, so a new version builds a
    /// new model from position 0 (the old version's keys are left as they are).
    fn version(&self) -> u32;

    /// The events the projection wants (categories and event types).
    fn filter(&self) -> ReadFilter;

    /// What to do with an event `apply` refuses; parking it is the default.
    fn policy(&self) -> FailurePolicy {
        FailurePolicy::Park
    }

    /// Records the writes one event makes on the model. An error follows
    /// [`RedisProjection::policy`] (the event's writes are dropped), except
    /// [`ApplyError::unhandled`]: an event type the projection does not handle, stepped
    /// over.
    fn apply(&self, ops: &mut RedisOps, event: &RecordedEvent) -> Result<(), ApplyError>;
}

/// One write, as the batch script reads it: an op code and its arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// `HSET key field value`.
    HashSet,
    /// `HINCRBY key field delta`.
    HashIncrement,
    /// `ZADD key 0 member`.
    SortedAdd,
    /// `SET key value`.
    Set,
    /// `DEL key`.
    Delete,
    /// `HDEL key field`.
    HashDelete,
}

impl Op {
    /// The code the script dispatches on.
    pub(crate) fn code(self) -> &'static str {
        match self {
            Op::HashSet => "H",
            Op::HashIncrement => "I",
            Op::SortedAdd => "Z",
            Op::Set => "S",
            Op::Delete => "D",
            Op::HashDelete => "X",
        }
    }
}

/// The writes of a batch, in order, with keys made absolute in the projection's key
/// space. Handed to [`RedisProjection::apply`] one event at a time.
#[derive(Debug, Clone)]
pub struct RedisOps {
    space: String,
    /// Op codes and arguments, flat, as the script's ARGV takes them.
    pub(crate) args: Vec<String>,
    writes: usize,
}

impl RedisOps {
    /// No writes yet, in the key space `space`.
    pub(crate) fn new(space: &str) -> Self {
        Self {
            space: space.to_owned(),
            args: Vec::new(),
            writes: 0,
        }
    }

    fn push(&mut self, op: Op, key: &str, rest: &[&str]) {
        self.args.push(op.code().to_owned());
        self.args.push(format!("{}{key}", self.space));
        self.args.extend(rest.iter().map(|s| (*s).to_owned()));
        self.writes += 1;
    }

    /// Sets `field` of the hash `key` to `value`.
    pub fn hset(&mut self, key: &str, field: &str, value: &str) {
        self.push(Op::HashSet, key, &[field, value]);
    }

    /// Adds `delta` to the integer `field` of the hash `key` (a missing field is 0).
    pub fn hincrby(&mut self, key: &str, field: &str, delta: i64) {
        self.push(Op::HashIncrement, key, &[field, &delta.to_string()]);
    }

    /// Adds `member` to the sorted set `key` with score 0, so that `ZRANGEBYLEX` lists
    /// the members in byte order.
    pub fn zadd_lex(&mut self, key: &str, member: &str) {
        self.push(Op::SortedAdd, key, &[member]);
    }

    /// Sets the string `key` to `value`.
    pub fn set(&mut self, key: &str, value: &str) {
        self.push(Op::Set, key, &[value]);
    }

    /// Deletes `key`.
    pub fn del(&mut self, key: &str) {
        self.push(Op::Delete, key, &[]);
    }

    /// Deletes `field` of the hash `key`.
    pub fn hdel(&mut self, key: &str, field: &str) {
        self.push(Op::HashDelete, key, &[field]);
    }

    /// How many writes are recorded.
    pub fn len(&self) -> usize {
        self.writes
    }

    /// Whether no write is recorded.
    pub fn is_empty(&self) -> bool {
        self.writes == 0
    }

    /// A mark to roll back to: the writes recorded so far.
    pub(crate) fn mark(&self) -> (usize, usize) {
        (self.args.len(), self.writes)
    }

    /// Drops every write recorded after `mark`.
    pub(crate) fn rollback(&mut self, mark: (usize, usize)) {
        self.args.truncate(mark.0);
        self.writes = mark.1;
    }
}
