//! Events: what a caller proposes ([`NewEvent`]) and what the store returns
//! ([`RecordedEvent`]), with their JSON wire form.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::ser::SerializeMap;
use serde_json::value::RawValue;

use crate::stream::{truncate_for_message, validate_name};
use crate::{CoreError, Position, StreamName, Timestamp, Version};

/// Well-known metadata keys, read by the command side and the console.
pub mod metadata_keys {
    /// Groups every event caused, directly or not, by one request.
    pub const CORRELATION_ID: &str = "correlation_id";
    /// The id of the command or event that caused this one.
    pub const CAUSATION_ID: &str = "causation_id";
    /// Who asked for the change.
    pub const ACTOR: &str = "actor";
    /// The tenant the change belongs to.
    pub const TENANT: &str = "tenant";
}

/// An event's unique id: a UUID, v7 (time-ordered) when strata makes one.
#[derive(
    Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct EventId(pub uuid::Uuid);

impl EventId {
    /// A fresh time-ordered (v7) id.
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    /// The id's 16 bytes, big-endian as in the UUID's text form.
    pub const fn as_bytes(&self) -> &[u8; 16] {
        self.0.as_bytes()
    }

    /// Rebuilds an id from its 16 bytes.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        Self(uuid::Uuid::from_bytes(bytes))
    }
}

impl Default for EventId {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Debug for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl std::str::FromStr for EventId {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        uuid::Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| CoreError::InvalidEventId(truncate_for_message(s)))
    }
}

/// An event's type name: 1 to 255 bytes of UTF-8 without control characters.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventType(Arc<str>);

impl EventType {
    /// Validates and wraps a type name.
    pub fn new(name: impl AsRef<str>) -> Result<Self, CoreError> {
        let name = name.as_ref();
        validate_name(name).map_err(|reason| CoreError::InvalidEventType {
            name: truncate_for_message(name),
            reason,
        })?;
        Ok(Self(Arc::from(name)))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for EventType {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl serde::Serialize for EventType {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for EventType {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <String as serde::Deserialize>::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}

/// The metadata of an event with no metadata: an empty JSON object.
pub const EMPTY_METADATA: &[u8] = b"{}";

/// An event proposed for appending. The store assigns its version, position and
/// recording time.
#[derive(Clone, PartialEq, Eq)]
pub struct NewEvent {
    /// The event's id; repeating an append with the same ids is idempotent.
    pub id: EventId,
    /// The event's type name.
    pub event_type: EventType,
    /// The payload, JSON by default. Stores never interpret it.
    pub data: Bytes,
    /// A JSON object of metadata (`{}` when there is none). Stores never interpret it.
    pub metadata: Bytes,
}

impl NewEvent {
    /// An event with a fresh id, the given JSON payload and empty metadata.
    pub fn json(event_type: EventType, data: &serde_json::Value) -> Self {
        Self {
            id: EventId::new(),
            event_type,
            data: Bytes::from(serde_json::to_vec(data).unwrap_or_else(|_| b"null".to_vec())),
            metadata: Bytes::from_static(EMPTY_METADATA),
        }
    }

    /// An event with a fresh id, raw payload bytes and empty metadata.
    pub fn raw(event_type: EventType, data: impl Into<Bytes>) -> Self {
        Self {
            id: EventId::new(),
            event_type,
            data: data.into(),
            metadata: Bytes::from_static(EMPTY_METADATA),
        }
    }

    /// Replaces the id.
    #[must_use]
    pub fn with_id(mut self, id: EventId) -> Self {
        self.id = id;
        self
    }

    /// Replaces the metadata with a JSON object.
    #[must_use]
    pub fn with_metadata(mut self, metadata: &serde_json::Map<String, serde_json::Value>) -> Self {
        self.metadata =
            Bytes::from(serde_json::to_vec(metadata).unwrap_or_else(|_| EMPTY_METADATA.to_vec()));
        self
    }

    /// The bytes this event counts against the store's event size limit: type, data and
    /// metadata.
    pub fn size(&self) -> usize {
        self.event_type.as_str().len() + self.data.len() + self.metadata.len()
    }
}

impl fmt::Debug for NewEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewEvent")
            .field("id", &self.id)
            .field("type", &self.event_type)
            .field("data", &String::from_utf8_lossy(&self.data))
            .field("metadata", &String::from_utf8_lossy(&self.metadata))
            .finish()
    }
}

/// An event as stored: the proposed event plus its stream, version, position and time.
#[derive(Clone, PartialEq, Eq)]
pub struct RecordedEvent {
    /// Global position in the log.
    pub position: Position,
    /// The stream it belongs to.
    pub stream: StreamName,
    /// Its version inside the stream.
    pub version: Version,
    /// Its id.
    pub id: EventId,
    /// Its type name.
    pub event_type: EventType,
    /// The payload bytes, as appended.
    pub data: Bytes,
    /// The metadata bytes, as appended.
    pub metadata: Bytes,
    /// When the store recorded it.
    pub recorded_at: Timestamp,
}

impl RecordedEvent {
    /// The payload as a JSON value (`Null` if it is not JSON).
    pub fn data_json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.data).unwrap_or(serde_json::Value::Null)
    }

    /// The metadata as a JSON object (empty if it is not one).
    pub fn metadata_json(&self) -> serde_json::Map<String, serde_json::Value> {
        serde_json::from_slice(&self.metadata).unwrap_or_default()
    }

    /// Appends this event's JSON line (the read and export format) and a newline to `out`.
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        // Serializing into a Vec cannot fail: every field serializes infallibly.
        if serde_json::to_writer(&mut *out, self).is_ok() {
            out.push(b'\n');
        }
    }
}

impl fmt::Debug for RecordedEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordedEvent")
            .field("position", &self.position.0)
            .field("stream", &self.stream)
            .field("version", &self.version.0)
            .field("id", &self.id)
            .field("type", &self.event_type)
            .field("data", &String::from_utf8_lossy(&self.data))
            .field("metadata", &String::from_utf8_lossy(&self.metadata))
            .field("recorded_at", &self.recorded_at)
            .finish()
    }
}

/// A payload that is valid JSON is embedded as is; anything else becomes a JSON string
/// (lossy UTF-8), so the output is always valid JSON.
///
/// Embedded JSON that spans several lines (pretty-printed, say) has its whitespace
/// outside strings removed, so the wire form stays one line per event.
struct Embedded<'a>(&'a [u8]);

impl serde::Serialize for Embedded<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(self.0) {
            Ok(text) => match serde_json::from_str::<&RawValue>(text) {
                Ok(raw) if raw.get().contains(['\n', '\r']) => {
                    match RawValue::from_string(compact_json(raw.get())) {
                        Ok(compact) => compact.serialize(s),
                        Err(_) => s.serialize_str(text),
                    }
                }
                Ok(raw) => raw.serialize(s),
                Err(_) => s.serialize_str(text),
            },
            Err(_) => s.serialize_str(&String::from_utf8_lossy(self.0)),
        }
    }
}

/// Removes the insignificant whitespace of valid JSON text, keeping every other byte
/// (numbers, escapes, key order) as it was.
fn compact_json(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in text.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else if c == '"' {
            in_string = true;
        } else if matches!(c, ' ' | '\t' | '\n' | '\r') {
            continue;
        }
        out.push(c);
    }
    out
}

/// The JSON wire form: `{"position", "stream", "version", "id", "type", "data",
/// "metadata", "recorded_at"}`.
impl serde::Serialize for RecordedEvent {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(8))?;
        map.serialize_entry("position", &self.position.0)?;
        map.serialize_entry("stream", &self.stream)?;
        map.serialize_entry("version", &self.version.0)?;
        map.serialize_entry("id", &self.id)?;
        map.serialize_entry("type", &self.event_type)?;
        map.serialize_entry("data", &Embedded(&self.data))?;
        if self.metadata.is_empty() {
            map.serialize_entry("metadata", &serde_json::Map::new())?;
        } else {
            map.serialize_entry("metadata", &Embedded(&self.metadata))?;
        }
        map.serialize_entry("recorded_at", &self.recorded_at)?;
        map.end()
    }
}
