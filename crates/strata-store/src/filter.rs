//! Which events a global read or subscription selects.

use strata_core::StreamName;

/// Selects events by stream category and by event type. An empty list selects all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReadFilter {
    /// Stream categories (the part of the name before the first `-`) to keep.
    pub categories: Vec<String>,
    /// Event types to keep.
    pub event_types: Vec<String>,
}

impl ReadFilter {
    /// A filter that selects every event.
    pub fn all() -> Self {
        Self::default()
    }

    /// Keeps only events of streams in this category (adds to earlier categories).
    #[must_use]
    pub fn category(mut self, category: impl Into<String>) -> Self {
        self.categories.push(category.into());
        self
    }

    /// Keeps only events of this type (adds to earlier types).
    #[must_use]
    pub fn event_type(mut self, event_type: impl Into<String>) -> Self {
        self.event_types.push(event_type.into());
        self
    }

    /// Whether the filter selects everything.
    pub fn is_all(&self) -> bool {
        self.categories.is_empty() && self.event_types.is_empty()
    }

    /// Whether an event of `stream` (given as text) with `event_type` passes.
    pub fn matches_raw(&self, stream: &str, event_type: &str) -> bool {
        let category = stream.split_once('-').map_or(stream, |(c, _)| c);
        (self.categories.is_empty() || self.categories.iter().any(|c| c == category))
            && (self.event_types.is_empty() || self.event_types.iter().any(|t| t == event_type))
    }

    /// Whether an event of `stream` with `event_type` passes.
    pub fn matches(&self, stream: &StreamName, event_type: &str) -> bool {
        self.matches_raw(stream.as_str(), event_type)
    }
}
