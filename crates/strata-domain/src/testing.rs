//! A given/when/then kit for aggregates, with no I/O:
//!
//! ```text
//! given::<Order>(&[OrderEvent::Created { .. }])
//!     .when(&OrderCommand::Place)
//!     .then(&[OrderEvent::Placed { .. }]);
//! ```

use std::fmt::Debug;

use crate::{Aggregate, DomainError};

/// Starts a scenario from the events already recorded.
pub fn given<A: Aggregate>(events: &[A::Event]) -> Given<A> {
    Given {
        state: events.iter().fold(A::default(), |s, e| s.evolve(e)),
    }
}

/// An aggregate built from past events.
pub struct Given<A: Aggregate> {
    state: A,
}

impl<A: Aggregate> Given<A> {
    /// The state the given events produce.
    pub fn state(&self) -> &A {
        &self.state
    }

    /// Decides a command against the given state.
    pub fn when(self, command: &A::Command) -> Then<A> {
        Then {
            result: self.state.decide(command),
            state: self.state,
        }
    }
}

/// The outcome of a decided command.
pub struct Then<A: Aggregate> {
    state: A,
    result: Result<Vec<A::Event>, A::Error>,
}

impl<A: Aggregate> Then<A>
where
    A::Event: PartialEq + Debug,
    A::Error: Debug,
{
    /// Asserts that the command decided exactly these events; returns the state after
    /// them.
    #[track_caller]
    pub fn then(self, expected: &[A::Event]) -> A {
        match self.result {
            Ok(events) => {
                assert_eq!(events, expected, "the command decided other events");
                events.iter().fold(self.state, |s, e| s.evolve(e))
            }
            Err(err) => {
                panic!("expected events {expected:?}, but the command was refused: {err:?}")
            }
        }
    }

    /// Asserts that the command was refused with the rule `code`.
    #[track_caller]
    pub fn then_refused(self, code: &str) {
        match self.result {
            Ok(events) => panic!("expected refusal {code:?}, but the command decided {events:?}"),
            Err(err) => assert_eq!(err.code(), code, "refused for another reason: {err}"),
        }
    }

    /// The raw result, for custom checks.
    pub fn result(&self) -> &Result<Vec<A::Event>, A::Error> {
        &self.result
    }
}
