//! The typed mapping between an event enum and stored `(type, JSON)`, with a schema version
//! per event type, and the upcasters that turn old stored shapes into the current one on
//! read. Stored bytes never change.

use std::collections::HashMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// The metadata key holding the schema version of an event's data.
pub const SCHEMA_VERSION_KEY: &str = "schema_version";

/// Why an event could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The stored type is not one this event enum knows.
    #[error("unknown event type {0:?}")]
    UnknownType(String),
    /// The stored data does not fit the type's current shape (after upcasting).
    #[error("event of type {event_type:?} does not decode: {reason}")]
    Malformed {
        /// The stored type.
        event_type: String,
        /// What serde said.
        reason: String,
    },
    /// The stored schema version is newer than this code knows.
    #[error("event of type {event_type:?} has schema version {stored}, newer than {current}")]
    TooNew {
        /// The stored type.
        event_type: String,
        /// The stored schema version.
        stored: u32,
        /// The newest version this code knows.
        current: u32,
    },
    /// An event could not be serialized.
    #[error("event does not encode: {0}")]
    Encode(String),
}

/// How an event type is stored: a type name and a JSON payload, with a schema version
/// per type.
///
/// Implemented for free by any [`TaggedEvent`] (a serde enum tagged `type`/`data`).
pub trait EventCodec: Sized {
    /// The stored type name and the JSON payload.
    fn encode(&self) -> Result<(String, Value), CodecError>;
    /// The stored type name and the JSON payload as the bytes to store. The default
    /// writes out what [`EventCodec::encode`] gives; implementations may write the
    /// payload straight from the event.
    fn encode_bytes(&self) -> Result<(String, Vec<u8>), CodecError> {
        let (event_type, data) = self.encode()?;
        let data = serde_json::to_vec(&data).map_err(|e| CodecError::Encode(e.to_string()))?;
        Ok((event_type, data))
    }
    /// Rebuilds an event from its stored type and its payload in the current shape.
    fn decode(event_type: &str, data: Value) -> Result<Self, CodecError>;

    /// Rebuilds an event from its stored type and its payload bytes, already in the
    /// current shape. The default parses the bytes and calls [`EventCodec::decode`];
    /// implementations may decode straight from the bytes.
    fn decode_bytes(event_type: &str, data: &[u8]) -> Result<Self, CodecError> {
        let value: Value = serde_json::from_slice(data).map_err(|e| CodecError::Malformed {
            event_type: event_type.to_owned(),
            reason: format!("payload is not JSON: {e}"),
        })?;
        Self::decode(event_type, value)
    }
    /// The current schema version of `event_type`'s payload (1 unless upcasters exist).
    fn schema_version(event_type: &str) -> u32 {
        let _ = event_type;
        1
    }
}

/// An event enum serialized by serde as `{"type": "...", "data": {...}}`, i.e. with
/// `#[serde(tag = "type", content = "data")]`. Every such enum is an [`EventCodec`].
pub trait TaggedEvent: Serialize + DeserializeOwned {
    /// The current schema version of `event_type`'s payload.
    fn schema_version(event_type: &str) -> u32 {
        let _ = event_type;
        1
    }
}

/// A tagged event's serialized form, its payload left as the text it was written as.
#[derive(serde::Deserialize)]
struct Split<'a> {
    #[serde(rename = "type", borrow)]
    event_type: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    data: Option<&'a serde_json::value::RawValue>,
}

impl<T: TaggedEvent> EventCodec for T {
    fn encode(&self) -> Result<(String, Value), CodecError> {
        let value = serde_json::to_value(self).map_err(|e| CodecError::Encode(e.to_string()))?;
        let Value::Object(mut map) = value else {
            return Err(CodecError::Encode(
                "a tagged event must serialize to an object with \"type\"".to_owned(),
            ));
        };
        let Some(Value::String(event_type)) = map.remove("type") else {
            return Err(CodecError::Encode(
                "a tagged event must serialize with a string \"type\"".to_owned(),
            ));
        };
        let data = map
            .remove("data")
            .unwrap_or(Value::Object(Default::default()));
        Ok((event_type, data))
    }

    fn encode_bytes(&self) -> Result<(String, Vec<u8>), CodecError> {
        // NOTE: the event is written once, as `{"type": ..., "data": ...}`, and the
        // payload's bytes are cut out of that text: no intermediate `Value` (a map and a
        // string per field, then written out again). The payload keeps the fields in
        // their declared order.
        let tagged = serde_json::to_vec(self).map_err(|e| CodecError::Encode(e.to_string()))?;
        let split: Split<'_> = serde_json::from_slice(&tagged).map_err(|_| {
            CodecError::Encode(
                "a tagged event must serialize to an object with a string \"type\"".to_owned(),
            )
        })?;
        let data = split
            .data
            .map_or_else(|| b"{}".to_vec(), |raw| raw.get().as_bytes().to_vec());
        Ok((split.event_type.into_owned(), data))
    }

    fn decode(event_type: &str, data: Value) -> Result<Self, CodecError> {
        let empty = data.as_object().is_some_and(serde_json::Map::is_empty);
        let tagged = serde_json::json!({ "type": event_type, "data": data });
        let err = match serde_json::from_value(tagged) {
            Ok(event) => return Ok(event),
            Err(err) => err,
        };
        // NOTE: the tag alone tells an unknown type from a payload that does not fit (an
        // unknown variant of an enum inside the payload must not read as an unknown
        // type). It also reads a unit variant, which is encoded without data and stored
        // as `{}`.
        match serde_json::from_value::<Self>(serde_json::json!({ "type": event_type })) {
            Ok(event) if empty => Ok(event),
            Err(probe) if probe.to_string().starts_with("unknown variant") => {
                Err(CodecError::UnknownType(event_type.to_owned()))
            }
            _ => Err(CodecError::Malformed {
                event_type: event_type.to_owned(),
                reason: err.to_string(),
            }),
        }
    }

    fn decode_bytes(event_type: &str, data: &[u8]) -> Result<Self, CodecError> {
        // NOTE: the payload is read by its own JSON reader as the value of `data`, after
        // the tag, so serde decodes it straight into the variant in one pass, with no
        // intermediate value and no copy. It must be one JSON value on its own (the
        // reader's end is checked), so it cannot splice in another tag. Anything unusual
        // (a unit variant stored as `{}`, an error to classify) takes the general path.
        let mut payload = serde_json::Deserializer::from_slice(data);
        let tagged = Tagged {
            event_type,
            payload: &mut payload,
        };
        if let Ok(event) = <T as serde::Deserialize>::deserialize(tagged)
            && payload.end().is_ok()
        {
            return Ok(event);
        }
        let value: Value = serde_json::from_slice(data).map_err(|e| CodecError::Malformed {
            event_type: event_type.to_owned(),
            reason: format!("payload is not JSON: {e}"),
        })?;
        Self::decode(event_type, value)
    }

    fn schema_version(event_type: &str) -> u32 {
        <T as TaggedEvent>::schema_version(event_type)
    }
}

/// A stored event seen as `{"type": <event_type>, "data": <payload>}` without building
/// that document: the tag comes from the stored type, the payload from its own reader.
struct Tagged<'a, 'de> {
    event_type: &'a str,
    payload: &'a mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
}

impl<'de> serde::Deserializer<'de> for Tagged<'_, 'de> {
    type Error = serde_json::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(
        self,
        visitor: V,
    ) -> Result<V::Value, Self::Error> {
        visitor.visit_map(TaggedFields {
            event_type: self.event_type,
            payload: self.payload,
            next: TaggedField::Type,
        })
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

/// Which field of a [`Tagged`] document comes next.
#[derive(Clone, Copy)]
enum TaggedField {
    Type,
    Data,
    End,
}

/// The two fields of a [`Tagged`] document, in order.
struct TaggedFields<'a, 'de> {
    event_type: &'a str,
    payload: &'a mut serde_json::Deserializer<serde_json::de::SliceRead<'de>>,
    next: TaggedField,
}

impl<'de> serde::de::MapAccess<'de> for TaggedFields<'_, 'de> {
    type Error = serde_json::Error;

    fn next_key_seed<K: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Self::Error> {
        use serde::de::IntoDeserializer as _;
        let key = match self.next {
            TaggedField::Type => "type",
            TaggedField::Data => "data",
            TaggedField::End => return Ok(None),
        };
        seed.deserialize(key.into_deserializer()).map(Some)
    }

    fn next_value_seed<V: serde::de::DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> Result<V::Value, Self::Error> {
        use serde::de::IntoDeserializer as _;
        match self.next {
            TaggedField::Type => {
                self.next = TaggedField::Data;
                seed.deserialize(self.event_type.into_deserializer())
            }
            TaggedField::Data => {
                self.next = TaggedField::End;
                seed.deserialize(&mut *self.payload)
            }
            TaggedField::End => Err(serde::de::Error::custom("no field after data")),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(match self.next {
            TaggedField::Type => 2,
            TaggedField::Data => 1,
            TaggedField::End => 0,
        })
    }
}

/// Turns the payload of `event_type` at schema version `from` into version `from + 1`.
#[derive(Clone, Copy)]
pub struct Upcaster {
    /// The stored type it applies to.
    pub event_type: &'static str,
    /// The schema version it reads.
    pub from: u32,
    /// The conversion.
    pub upcast: fn(Value) -> Value,
}

/// A registry of upcasters, applied in chains on read.
#[derive(Clone, Default)]
pub struct Upcasters {
    by_type: HashMap<&'static str, Vec<Upcaster>>,
}

impl Upcasters {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an upcaster.
    #[must_use]
    pub fn with(mut self, upcaster: Upcaster) -> Self {
        self.by_type
            .entry(upcaster.event_type)
            .or_default()
            .push(upcaster);
        self
    }

    /// Brings `data` of `event_type` from schema version `stored` to `current`.
    pub fn upcast(
        &self,
        event_type: &str,
        stored: u32,
        current: u32,
        mut data: Value,
    ) -> Result<Value, CodecError> {
        if stored > current {
            return Err(CodecError::TooNew {
                event_type: event_type.to_owned(),
                stored,
                current,
            });
        }
        let chain = self.by_type.get(event_type);
        for version in stored..current {
            let step = chain.and_then(|c| c.iter().find(|u| u.from == version));
            match step {
                Some(upcaster) => data = (upcaster.upcast)(data),
                None => {
                    return Err(CodecError::Malformed {
                        event_type: event_type.to_owned(),
                        reason: format!("no upcaster from schema version {version}"),
                    });
                }
            }
        }
        Ok(data)
    }

    /// Decodes a stored event into `E`, upcasting its payload first.
    pub fn decode<E: EventCodec>(
        &self,
        event: &strata_core::RecordedEvent,
    ) -> Result<E, CodecError> {
        let event_type = event.event_type.as_str();
        let stored = stored_schema_version(event)?;
        let current = E::schema_version(event_type);
        if stored == current {
            // The common case: the stored shape is the current one.
            return E::decode_bytes(event_type, &event.data);
        }
        let data: Value =
            serde_json::from_slice(&event.data).map_err(|e| CodecError::Malformed {
                event_type: event_type.to_owned(),
                reason: format!("payload is not JSON: {e}"),
            })?;
        let data = self.upcast(event_type, stored, current, data)?;
        E::decode(event_type, data)
    }
}

/// The schema version in an event's metadata: 1 when the metadata has none (or is not a
/// JSON object), an error when it is there but not a version number.
fn stored_schema_version(event: &strata_core::RecordedEvent) -> Result<u32, CodecError> {
    if let Some(version) = plain_schema_version(&event.metadata) {
        return Ok(version);
    }
    parsed_schema_version(event)
}

/// The schema version of a flat metadata object that holds it once as a plain number, found
/// without parsing the rest (the ids around it are most of the bytes): `None` for anything
/// else, which [`parsed_schema_version`] then reads. It answers as the parser does for
/// every JSON object; metadata that is not JSON at all is read as far as the key.
///
/// NOTE: the key is a key only if its opening quote is a structural one: preceded by `{`
/// or `,` (an escaped quote inside a string is preceded by `\`, and a string's closing
/// quote is never followed by more name). No `{` before it but the first means it is not
/// inside a nested object, where it would be another level's key.
pub(crate) fn plain_schema_version(metadata: &[u8]) -> Option<u32> {
    const KEY: &[u8] = b"\"schema_version\"";
    let is_space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let trimmed = metadata.trim_ascii();
    if trimmed.first() != Some(&b'{') || trimmed.last() != Some(&b'}') {
        return None;
    }
    // Built once: building a finder costs more than searching a metadata object with it.
    static FINDER: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(KEY));
    let at = FINDER.find(trimmed)?;
    // A key of a nested object needs that object's `{` before it; a second occurrence
    // (of the key, or its text inside a later string) is left to the parser.
    if memchr::memchr(b'{', &trimmed[1..at]).is_some()
        || FINDER.find(&trimmed[at + KEY.len()..]).is_some()
    {
        return None;
    }
    let before = trimmed[..at].iter().rev().find(|b| !is_space(b))?;
    if !matches!(before, b'{' | b',') {
        return None;
    }
    let skip_space =
        |bytes: &'_ [u8]| -> usize { bytes.iter().take_while(|b| is_space(b)).count() };
    let rest = &trimmed[at + KEY.len()..];
    let rest = rest[skip_space(rest)..].strip_prefix(b":")?;
    let value = &rest[skip_space(rest)..];
    let digits = value.iter().take_while(|b| b.is_ascii_digit()).count();
    let after = &value[digits..];
    // Leading zeros are not JSON; a fraction, an exponent or anything else goes to the
    // parser, as does a number too long to be a u32.
    if digits == 0 || digits > 10 || (digits > 1 && value[0] == b'0') {
        return None;
    }
    if !matches!(after.get(skip_space(after)), Some(b',' | b'}')) {
        return None;
    }
    value[..digits]
        .iter()
        .try_fold(0u64, |n, &d| Some(n * 10 + u64::from(d - b'0')))
        .and_then(|n| u32::try_from(n).ok())
}

/// [`stored_schema_version`] by parsing the metadata.
fn parsed_schema_version(event: &strata_core::RecordedEvent) -> Result<u32, CodecError> {
    /// Only the one key is read; serde skips the rest of the object without building it.
    #[derive(serde::Deserialize)]
    struct Metadata {
        #[serde(rename = "schema_version")]
        schema_version: Option<Value>,
    }
    let Ok(metadata) = serde_json::from_slice::<Metadata>(&event.metadata) else {
        return Ok(1);
    };
    match metadata.schema_version {
        None => Ok(1),
        Some(value) => value
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| CodecError::Malformed {
                event_type: event.event_type.to_string(),
                reason: format!("metadata {SCHEMA_VERSION_KEY} {value} is not a schema version"),
            }),
    }
}

#[cfg(test)]
mod tests;
