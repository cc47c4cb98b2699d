//! Stream names and event types seen recently, reused instead of validated and allocated
//! again for every input line: an export or a batch of appends names the same few types
//! and streams over and over.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use strata_core::{CoreError, EventType, StreamName};

/// Entries kept per kind before the cache starts over, so memory stays bounded.
const MAX_ENTRIES: usize = 64 * 1024;

/// Validated names by their text.
#[derive(Default)]
pub(crate) struct Names {
    streams: Cache<StreamName>,
    types: Cache<EventType>,
}

type Cache<T> = HashMap<Box<str>, T, BuildHasherDefault<Fnv>>;

impl Names {
    /// The stream named `name`, validated once.
    pub(crate) fn stream(&mut self, name: &str) -> Result<StreamName, CoreError> {
        cached(&mut self.streams, name, |n| StreamName::new(n))
    }

    /// The event type named `name`, validated once.
    pub(crate) fn event_type(&mut self, name: &str) -> Result<EventType, CoreError> {
        cached(&mut self.types, name, |n| EventType::new(n))
    }
}

fn cached<T: Clone>(
    cache: &mut Cache<T>,
    name: &str,
    make: impl FnOnce(&str) -> Result<T, CoreError>,
) -> Result<T, CoreError> {
    if let Some(value) = cache.get(name) {
        return Ok(value.clone());
    }
    let value = make(name)?;
    if cache.len() >= MAX_ENTRIES {
        cache.clear();
    }
    cache.insert(name.into(), value.clone());
    Ok(value)
}

/// FNV-1a. Names are short and come from the user's own input, so a fast hash without
/// protection against crafted collisions is the right trade here.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = (self.0 ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}
