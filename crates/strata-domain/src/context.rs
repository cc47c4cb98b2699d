//! Who asks for a command, and why: the ids and names that flow from a command into
//! every event it causes, and from events into the commands a process manager sends.

use serde::{Deserialize, Serialize};
use strata_core::{EventId, metadata_keys};
use uuid::Uuid;

/// The metadata key holding the id of the command that caused an event.
pub const COMMAND_ID_KEY: &str = "command_id";
/// The metadata key holding the digest of the request a command came with (see
/// [`CommandContext::request_digest`]).
pub const REQUEST_DIGEST_KEY: &str = "request_digest";

/// The context of one command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommandContext {
    /// The command's id. Handling the same id twice applies it once; the second time
    /// answers the first outcome.
    pub command_id: Uuid,
    /// Groups everything caused by one original request (defaults to the command id).
    pub correlation_id: Option<String>,
    /// What caused this command: an event id for a process manager's command.
    pub causation_id: Option<String>,
    /// Who asked.
    pub actor: Option<String>,
    /// The tenant.
    pub tenant: Option<String>,
    /// What the command id is bound to: a digest of the request it first came with (an
    /// edge's route, target and body, say). Stored in the metadata of the command's
    /// events; a later command with the same id but another digest is refused
    /// ([`crate::CommandError::CommandIdReused`]) instead of answering the first
    /// outcome. `None` binds nothing.
    #[serde(default)]
    pub request_digest: Option<String>,
}

impl CommandContext {
    /// A context with a fresh command id.
    pub fn new() -> Self {
        Self::with_id(Uuid::now_v7())
    }

    /// A context for a given command id.
    pub fn with_id(command_id: Uuid) -> Self {
        Self {
            command_id,
            correlation_id: None,
            causation_id: None,
            actor: None,
            tenant: None,
            request_digest: None,
        }
    }

    /// Sets the actor.
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(actor.into());
        self
    }

    /// The context of the `index`-th command a process manager sends in reaction to
    /// `event`: its id derives from the event id (so a replay sends the same ids), the
    /// correlation id carries over, and the causation id is the event's id.
    pub fn caused_by(event: &strata_core::RecordedEvent, index: u32) -> Self {
        let metadata = event.metadata_json();
        let text = |key: &str| {
            metadata
                .get(key)
                .and_then(|v| v.as_str())
                .map(str::to_owned)
        };
        Self {
            command_id: derived_event_id(event.id.0, index).0,
            correlation_id: text(metadata_keys::CORRELATION_ID)
                .or_else(|| Some(event.id.to_string())),
            causation_id: Some(event.id.to_string()),
            actor: text(metadata_keys::ACTOR),
            tenant: text(metadata_keys::TENANT),
            request_digest: None,
        }
    }

    /// The metadata every event caused by this command carries.
    pub fn event_metadata(
        &self,
        schema_version: u32,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut map = serde_json::Map::new();
        let id = self.command_id.to_string();
        map.insert(COMMAND_ID_KEY.into(), id.clone().into());
        map.insert(
            metadata_keys::CORRELATION_ID.into(),
            self.correlation_id
                .clone()
                .unwrap_or_else(|| id.clone())
                .into(),
        );
        map.insert(
            metadata_keys::CAUSATION_ID.into(),
            self.causation_id.clone().unwrap_or(id).into(),
        );
        if let Some(actor) = &self.actor {
            map.insert(metadata_keys::ACTOR.into(), actor.clone().into());
        }
        if let Some(tenant) = &self.tenant {
            map.insert(metadata_keys::TENANT.into(), tenant.clone().into());
        }
        if let Some(digest) = &self.request_digest {
            map.insert(REQUEST_DIGEST_KEY.into(), digest.clone().into());
        }
        map.insert(crate::SCHEMA_VERSION_KEY.into(), schema_version.into());
        map
    }
}

impl CommandContext {
    /// [`CommandContext::event_metadata`] as the JSON bytes an event stores: the same
    /// bytes as serializing that map (keys in order), written without building it.
    pub fn event_metadata_json(&self, schema_version: u32) -> Vec<u8> {
        let mut id = Uuid::encode_buffer();
        let id: &str = self.command_id.hyphenated().encode_lower(&mut id);
        let metadata = EventMetadata {
            actor: self.actor.as_deref(),
            causation_id: self.causation_id.as_deref().unwrap_or(id),
            command_id: id,
            correlation_id: self.correlation_id.as_deref().unwrap_or(id),
            request_digest: self.request_digest.as_deref(),
            schema_version,
            tenant: self.tenant.as_deref(),
        };
        let mut out = Vec::with_capacity(256);
        // NOTE: serializing borrowed strings and a number into a vector cannot fail.
        let _ = serde_json::to_writer(&mut out, &metadata);
        out
    }
}

/// The keys of [`CommandContext::event_metadata`], in the order a `serde_json::Map`
/// (sorted by key) writes them.
#[derive(Serialize)]
struct EventMetadata<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    actor: Option<&'a str>,
    causation_id: &'a str,
    command_id: &'a str,
    correlation_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_digest: Option<&'a str>,
    schema_version: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    tenant: Option<&'a str>,
}

impl Default for CommandContext {
    fn default() -> Self {
        Self::new()
    }
}

/// The id of the `index`-th event (or command) derived from `parent`: a name-based UUID,
/// so the same parent always gives the same ids.
pub fn derived_event_id(parent: Uuid, index: u32) -> EventId {
    EventId(Uuid::new_v5(&parent, &index.to_be_bytes()))
}

#[cfg(test)]
mod tests;
