//! Stream names: validated once, cheap to clone.

use std::fmt;
use std::sync::Arc;

use crate::CoreError;

/// The longest stream name, in bytes.
pub(crate) const MAX_STREAM_NAME_BYTES: usize = 255;

/// The name of a stream, `category-id`: UTF-8, 1 to 255 bytes, no control characters.
///
/// The category is the part before the first `-` (the whole name if there is none).
/// Clones share one allocation.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamName(Arc<str>);

impl StreamName {
    /// The longest stream name, in bytes.
    pub const MAX_BYTES: usize = MAX_STREAM_NAME_BYTES;

    /// Validates `name` and wraps it.
    pub fn new(name: impl AsRef<str>) -> Result<Self, CoreError> {
        let name = name.as_ref();
        validate_name(name).map_err(|reason| CoreError::InvalidStreamName {
            name: truncate_for_message(name),
            reason,
        })?;
        Ok(Self(Arc::from(name)))
    }

    /// Validates a name given as bytes (as read from disk or the wire).
    pub fn from_utf8(bytes: &[u8]) -> Result<Self, CoreError> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Self::new(s),
            Err(_) => Err(CoreError::InvalidStreamName {
                name: String::from_utf8_lossy(&bytes[..bytes.len().min(64)]).into_owned(),
                reason: "not valid UTF-8",
            }),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The category: the part before the first `-`, or the whole name without one.
    pub fn category(&self) -> &str {
        category_of(&self.0)
    }

    /// The part after the first `-`, if any.
    pub fn id(&self) -> Option<&str> {
        self.0.split_once('-').map(|(_, id)| id)
    }
}

/// The category of a stream name given as text: the part before the first `-`.
pub(crate) fn category_of(name: &str) -> &str {
    name.split_once('-').map_or(name, |(category, _)| category)
}

/// Checks the rules shared by stream names and event types.
pub(crate) fn validate_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("must not be empty");
    }
    if name.len() > MAX_STREAM_NAME_BYTES {
        return Err("must be at most 255 bytes");
    }
    if name.chars().any(char::is_control) {
        return Err("must not contain control characters");
    }
    Ok(())
}

pub(crate) fn truncate_for_message(name: &str) -> String {
    let mut end = name.len().min(64);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    name[..end].to_owned()
}

impl fmt::Display for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StreamName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl AsRef<str> for StreamName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for StreamName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for StreamName {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<&str> for StreamName {
    type Error = CoreError;
    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl TryFrom<String> for StreamName {
    type Error = CoreError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl serde::Serialize for StreamName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> serde::Deserialize<'de> for StreamName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::new(&s).map_err(serde::de::Error::custom)
    }
}
