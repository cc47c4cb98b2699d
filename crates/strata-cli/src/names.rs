//! Stream names and event types seen recently, reused instead of validated and allocated
//! again for every input line: an export or a batch of appends names the same few types
//! and streams over and over.

use std::collections::HashMap;

use strata_core::{CoreError, EventType, StreamName};

/// Entries kept per kind before the cache starts over, so memory stays bounded.
const MAX_ENTRIES: usize = 64 * 1024;

/// Validated names by their text.
#[derive(Default)]
pub(crate) struct Names {
    streams: HashMap<Box<str>, StreamName>,
    types: HashMap<Box<str>, EventType>,
}

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
    cache: &mut HashMap<Box<str>, T>,
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
