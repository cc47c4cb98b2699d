//! Process managers (sagas): the [`ProcessManager`] trait whose reactions are pure, the
//! [`CommandSender`] seam to the command side, and the durable runner that keeps each
//! instance's state, its timeouts and an outbox of commands in one SQLite database.
//!
//! Nothing here decides domain rules: a process manager only turns events (and timeouts)
//! into commands; the command side accepts or refuses them.

pub(crate) mod core;
mod host;
pub(crate) mod typed;

use std::fmt;

use async_trait::async_trait;
use serde::Serialize;
use serde::de::DeserializeOwned;
use strata_core::{RecordedEvent, Timestamp};
use strata_domain::CommandContext;
use strata_store::ReadFilter;

pub use host::ProcessManagers;

/// A process manager: per correlated instance, a state folded from events, and the
/// commands and timeouts each event (or timeout) leads to.
///
/// `react` and `on_timeout` must be pure (no I/O, no clock: a deadline is computed from
/// the event's `recorded_at`), so that replaying the log gives the same commands with the
/// same ids.
pub trait ProcessManager: Send + Sync + 'static {
    /// An instance's state, stored as JSON between events.
    type State: Default + Serialize + DeserializeOwned + Send;
    /// What it sends, stored as JSON in the outbox until sent.
    type Command: Serialize + DeserializeOwned + Send + Sync;

    /// The name: 1 to 64 characters of `a-z`, `0-9` and `_`; it names the database file.
    fn name(&self) -> &'static str;
    /// The events it wants.
    fn filter(&self) -> ReadFilter;
    /// Which instance an event belongs to (an order id, say); `None` ignores the event.
    fn correlate(&self, event: &RecordedEvent) -> Option<String>;
    /// The reaction of an instance in `state` to `event`. Pure.
    fn react(
        &self,
        state: Self::State,
        event: &RecordedEvent,
    ) -> Reaction<Self::State, Self::Command>;
    /// The reaction of an instance in `state` to its timeout named `timeout`. Pure.
    fn on_timeout(&self, state: Self::State, timeout: &str)
    -> Reaction<Self::State, Self::Command>;
}

/// What an instance does in reaction to an event or a timeout.
#[derive(Debug, Clone, PartialEq)]
pub struct Reaction<S, C> {
    /// The instance's new state.
    pub state: S,
    /// Commands to send, in order. Their ids derive from the cause (the event id, or the
    /// process, instance and timeout), so a replay sends the same ids.
    pub commands: Vec<C>,
    /// Timeouts to set: `(name, deadline)`. Setting a name that is pending moves it.
    pub timeouts: Vec<(String, Timestamp)>,
    /// Pending timeouts to cancel, by name (applied before `timeouts`).
    pub cancel_timeouts: Vec<String>,
    /// The instance is finished: its state and timeouts are dropped and later events
    /// correlated to it are ignored.
    pub done: bool,
}

impl<S, C> Reaction<S, C> {
    /// The new state, with nothing to send.
    pub fn new(state: S) -> Self {
        Self {
            state,
            commands: Vec::new(),
            timeouts: Vec::new(),
            cancel_timeouts: Vec::new(),
            done: false,
        }
    }

    /// Adds a command to send.
    #[must_use]
    pub fn send(mut self, command: C) -> Self {
        self.commands.push(command);
        self
    }

    /// Sets (or moves) a timeout.
    #[must_use]
    pub fn timeout(mut self, name: impl Into<String>, deadline: Timestamp) -> Self {
        self.timeouts.push((name.into(), deadline));
        self
    }

    /// Cancels a pending timeout.
    #[must_use]
    pub fn cancel_timeout(mut self, name: impl Into<String>) -> Self {
        self.cancel_timeouts.push(name.into());
        self
    }

    /// Marks the instance finished.
    #[must_use]
    pub fn done(mut self) -> Self {
        self.done = true;
        self
    }
}

/// Why a command could not be sent: the runner retries it with backoff.
///
/// A command the domain refused is not a send failure: the sender handles it (records
/// it, or reacts to the refusal event) and returns `Ok`. The message includes the cause,
/// so it is not repeated as a `source`; the cause is kept for callers that inspect it.
#[derive(Debug)]
pub struct SendError {
    message: String,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl SendError {
    /// A send failure with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            cause: None,
        }
    }

    /// A send failure caused by `cause` (the command side's error, say), which is kept;
    /// the message is `context: cause`.
    pub fn caused_by(
        context: impl fmt::Display,
        cause: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        let cause = cause.into();
        Self {
            message: format!("{context}: {cause}"),
            cause: Some(cause),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The error that caused the failure, if it was given.
    pub fn cause(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.cause.as_deref()
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SendError {}

impl From<String> for SendError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

/// Delivers a process manager's commands to the command side.
///
/// The same command (same `context.command_id`) may be delivered more than once (after a
/// crash between sending and recording it sent): the command handler de-duplicates by
/// command id.
#[async_trait]
pub trait CommandSender<C>: Send + Sync + 'static {
    /// Sends one command. `Err` means "not delivered, try again later".
    async fn send(&self, command: C, context: CommandContext) -> Result<(), SendError>;
}
