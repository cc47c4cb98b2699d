//! Versions inside a stream, positions in the global log, and the optimistic-concurrency
//! expectation an append carries.

use std::fmt;

use crate::CoreError;

/// The 1-based position of an event inside its stream. A stream's version is its event
/// count; version 0 means the stream does not exist.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Version(pub u64);

/// The 1-based global position of an event in the log, strictly increasing in commit order.
/// Position 0 means "before the first event": a checkpoint of 0 has processed nothing.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Position(pub u64);

impl Version {
    /// The version of a stream that does not exist.
    pub const NONE: Version = Version(0);

    /// The version as a number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The version that follows this one.
    pub const fn next(self) -> Version {
        Version(self.0 + 1)
    }
}

impl Position {
    /// "Before the first event".
    pub const ZERO: Position = Position(0);

    /// The position as a number.
    pub const fn get(self) -> u64 {
        self.0
    }

    /// The position that follows this one.
    pub const fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// What an append expects of its stream's current version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum ExpectedVersion {
    /// No expectation: append whatever the stream's version.
    #[default]
    Any,
    /// The stream must not exist (same as `Exact(0)`).
    NoStream,
    /// The stream must exist (version ≥ 1).
    Exists,
    /// The stream's version must be exactly this (0 = the stream must not exist).
    Exact(u64),
}

impl ExpectedVersion {
    /// Whether a stream currently at `actual` satisfies this expectation.
    pub const fn accepts(self, actual: Version) -> bool {
        match self {
            ExpectedVersion::Any => true,
            ExpectedVersion::NoStream => actual.0 == 0,
            ExpectedVersion::Exists => actual.0 > 0,
            ExpectedVersion::Exact(v) => actual.0 == v,
        }
    }

    /// The exact version this expectation names, if it names one.
    pub const fn exact(self) -> Option<u64> {
        match self {
            ExpectedVersion::NoStream => Some(0),
            ExpectedVersion::Exact(v) => Some(v),
            ExpectedVersion::Any | ExpectedVersion::Exists => None,
        }
    }
}

impl fmt::Display for ExpectedVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExpectedVersion::Any => f.write_str("any"),
            ExpectedVersion::NoStream => f.write_str("no_stream"),
            ExpectedVersion::Exists => f.write_str("exists"),
            ExpectedVersion::Exact(v) => write!(f, "{v}"),
        }
    }
}

impl std::str::FromStr for ExpectedVersion {
    type Err = CoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "any" => Ok(ExpectedVersion::Any),
            "no_stream" => Ok(ExpectedVersion::NoStream),
            "exists" => Ok(ExpectedVersion::Exists),
            other => other
                .parse::<u64>()
                .map(ExpectedVersion::Exact)
                .map_err(|_| CoreError::InvalidExpectedVersion(other.to_owned())),
        }
    }
}

/// Serialized as a number for `Exact`, else as `"any"`, `"no_stream"` or `"exists"`.
impl serde::Serialize for ExpectedVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            ExpectedVersion::Exact(v) => s.serialize_u64(*v),
            other => s.collect_str(other),
        }
    }
}

impl<'de> serde::Deserialize<'de> for ExpectedVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ExpectedVersion;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a version number or one of \"any\", \"no_stream\", \"exists\"")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(ExpectedVersion::Exact(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
                u64::try_from(v)
                    .map(ExpectedVersion::Exact)
                    .map_err(|_| E::custom(format!("expected version {v} must not be negative")))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                v.parse().map_err(E::custom)
            }
        }
        d.deserialize_any(Visitor)
    }
}
