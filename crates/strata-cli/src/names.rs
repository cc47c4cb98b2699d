//! Stream names and event types seen recently, reused instead of validated and allocated
//! again for every input line: an export or a batch of appends names the same few types
//! and streams over and over.

use std::hash::Hasher as _;

use strata_core::{CoreError, EventType, StreamName};

/// Slots per kind: a name is kept in the slot its hash picks, replacing whatever was
/// there, so memory stays bounded and a name seen once costs no more than validating it.
const SLOTS: usize = 4096;

/// Validated names by their text.
#[derive(Clone)]
pub(crate) struct Names {
    streams: Cache<StreamName>,
    types: Cache<EventType>,
}

impl Default for Names {
    fn default() -> Self {
        Self {
            streams: Cache::new(),
            types: Cache::new(),
        }
    }
}

impl Names {
    /// The stream named `name`, validated once.
    pub(crate) fn stream(&mut self, name: &str) -> Result<StreamName, CoreError> {
        self.streams
            .get(name, StreamName::as_str, |n| StreamName::new(n))
    }

    /// The event type named `name`, validated once.
    pub(crate) fn event_type(&mut self, name: &str) -> Result<EventType, CoreError> {
        self.types
            .get(name, EventType::as_str, |n| EventType::new(n))
    }
}

/// A direct-mapped cache of validated names: no key of its own (the value holds its
/// text) and no allocation of its own past its slots.
#[derive(Clone)]
struct Cache<T> {
    slots: Box<[Option<T>]>,
}

impl<T: Clone> Cache<T> {
    fn new() -> Self {
        Self {
            slots: (0..SLOTS).map(|_| None).collect(),
        }
    }

    fn get(
        &mut self,
        name: &str,
        text: impl Fn(&T) -> &str,
        make: impl FnOnce(&str) -> Result<T, CoreError>,
    ) -> Result<T, CoreError> {
        let mut hash = Fnv::default();
        hash.write(name.as_bytes());
        let slot = &mut self.slots[(hash.finish() as usize) % SLOTS];
        if let Some(value) = slot.as_ref().filter(|v| text(v) == name) {
            return Ok(value.clone());
        }
        let value = make(name)?;
        *slot = Some(value.clone());
        Ok(value)
    }
}

/// FNV-1a. Names are short and come from the user's own input, so a fast hash without
/// protection against crafted collisions is the right trade here.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
