//! Erases a [`ProcessManager`]'s types: states and commands cross into the runner as JSON,
//! so one runner serves every process manager.

use std::sync::Arc;

use futures::future::BoxFuture;
use strata_core::{RecordedEvent, Timestamp};
use strata_domain::CommandContext;
use strata_store::ReadFilter;

use super::{CommandSender, ProcessManager, Reaction, SendError};

/// A reaction with its state and commands as JSON.
pub(crate) struct JsonReaction {
    pub(crate) state: String,
    pub(crate) commands: Vec<String>,
    pub(crate) timeouts: Vec<(String, Timestamp)>,
    pub(crate) cancel_timeouts: Vec<String>,
    pub(crate) done: bool,
}

/// A process manager and its sender, seen through JSON.
pub(crate) trait DynProcess: Send + Sync + 'static {
    fn name(&self) -> &'static str;
    fn filter(&self) -> ReadFilter;
    fn correlate(&self, event: &RecordedEvent) -> Option<String>;
    fn react(
        &self,
        state: Option<&str>,
        event: &RecordedEvent,
    ) -> Result<JsonReaction, serde_json::Error>;
    fn on_timeout(
        &self,
        state: Option<&str>,
        timeout: &str,
    ) -> Result<JsonReaction, serde_json::Error>;
    /// Decodes a stored command and sends it.
    fn send(
        &self,
        command: &str,
        context: CommandContext,
    ) -> BoxFuture<'static, Result<(), SendError>>;
}

pub(crate) struct Typed<P: ProcessManager> {
    pub(crate) manager: Arc<P>,
    pub(crate) sender: Arc<dyn CommandSender<P::Command>>,
}

fn decode_state<S: serde::de::DeserializeOwned + Default>(
    state: Option<&str>,
) -> Result<S, serde_json::Error> {
    match state {
        Some(text) => serde_json::from_str(text),
        None => Ok(S::default()),
    }
}

fn encode<S: serde::Serialize, C: serde::Serialize>(
    reaction: Reaction<S, C>,
) -> Result<JsonReaction, serde_json::Error> {
    Ok(JsonReaction {
        state: serde_json::to_string(&reaction.state)?,
        commands: reaction
            .commands
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?,
        timeouts: reaction.timeouts,
        cancel_timeouts: reaction.cancel_timeouts,
        done: reaction.done,
    })
}

impl<P: ProcessManager> DynProcess for Typed<P> {
    fn name(&self) -> &'static str {
        self.manager.name()
    }

    fn filter(&self) -> ReadFilter {
        self.manager.filter()
    }

    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        self.manager.correlate(event)
    }

    fn react(
        &self,
        state: Option<&str>,
        event: &RecordedEvent,
    ) -> Result<JsonReaction, serde_json::Error> {
        let state = decode_state::<P::State>(state)?;
        encode(self.manager.react(state, event))
    }

    fn on_timeout(
        &self,
        state: Option<&str>,
        timeout: &str,
    ) -> Result<JsonReaction, serde_json::Error> {
        let state = decode_state::<P::State>(state)?;
        encode(self.manager.on_timeout(state, timeout))
    }

    fn send(
        &self,
        command: &str,
        context: CommandContext,
    ) -> BoxFuture<'static, Result<(), SendError>> {
        let decoded = serde_json::from_str::<P::Command>(command);
        let sender = self.sender.clone();
        Box::pin(async move {
            let command =
                decoded.map_err(|e| SendError::caused_by("cannot decode a stored command", e))?;
            sender.send(command, context).await
        })
    }
}
