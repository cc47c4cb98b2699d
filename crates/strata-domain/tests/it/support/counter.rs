//! A counter whose events do not commute (add, double, reset), snapshotted every
//! three events at snapshot version 2.

use serde::{Deserialize, Serialize};
use strata_domain::{Aggregate, DomainError, TaggedEvent};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub(crate) enum CounterEvent {
    Added { n: i64 },
    Doubled,
    Reset,
}

impl TaggedEvent for CounterEvent {}

#[derive(Debug, Clone)]
pub(crate) enum CounterCommand {
    /// Adds `n`, refused if the value would overflow.
    Add(i64),
    /// Records exactly these events (none: decides nothing).
    Record(Vec<CounterEvent>),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("adding {0} overflows the counter")]
pub(crate) struct Overflow(pub i64);

impl DomainError for Overflow {
    fn code(&self) -> &'static str {
        "overflow"
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Counter {
    pub(crate) value: i64,
    /// How many events the state folds: a snapshot that skipped or repeated one shows.
    pub(crate) applied: u64,
}

impl Aggregate for Counter {
    const CATEGORY: &'static str = "counter";
    const SNAPSHOT_VERSION: u32 = 2;
    const SNAPSHOT_EVERY: Option<u64> = Some(EVERY);

    type Command = CounterCommand;
    type Event = CounterEvent;
    type Error = Overflow;

    fn decide(&self, command: &CounterCommand) -> Result<Vec<CounterEvent>, Overflow> {
        match command {
            CounterCommand::Add(n) => match self.value.checked_add(*n) {
                Some(_) => Ok(vec![CounterEvent::Added { n: *n }]),
                None => Err(Overflow(*n)),
            },
            CounterCommand::Record(events) => Ok(events.clone()),
        }
    }

    fn evolve(mut self, event: &CounterEvent) -> Self {
        self.value = match event {
            CounterEvent::Added { n } => self.value.wrapping_add(*n),
            CounterEvent::Doubled => self.value.wrapping_mul(2),
            CounterEvent::Reset => 0,
        };
        self.applied += 1;
        self
    }
}

/// The counter's snapshot interval.
pub(crate) const EVERY: u64 = 3;

/// The state `events` fold to, without any store.
pub(crate) fn fold(events: &[CounterEvent]) -> Counter {
    events.iter().fold(Counter::default(), |s, e| s.evolve(e))
}
