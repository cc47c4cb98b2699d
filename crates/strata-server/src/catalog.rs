//! A list of the log's streams, for the console's stream search. The store has no stream
//! listing, so the server derives one: a background task follows the log from the start
//! and keeps each stream's version and last position in memory.
//!
//! It is a convenience view, eventually consistent with the log; nothing else reads it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use futures::StreamExt as _;
use parking_lot::RwLock;
use serde::Serialize;
use strata_core::Position;
use strata_store::{EventStore, ReadFilter};
use tokio::sync::watch;
use utoipa::ToSchema;

/// One stream in the listing.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct StreamSummary {
    /// The stream's name.
    pub stream: String,
    /// Its version (event count).
    pub version: u64,
    /// The position of its last event.
    pub last_position: u64,
    /// The type of its last event.
    pub last_type: String,
    /// When its last event was recorded (RFC 3339).
    pub last_recorded_at: String,
}

#[derive(Debug, Default)]
pub(crate) struct StreamCatalog {
    streams: RwLock<BTreeMap<String, StreamSummary>>,
    /// The last position folded into the listing.
    indexed: AtomicU64,
}

impl StreamCatalog {
    /// Starts following `store` from the beginning until `shutdown` turns true.
    pub(crate) fn spawn(
        store: Arc<dyn EventStore>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Arc<Self> {
        let catalog = Arc::new(Self::default());
        let this = catalog.clone();
        tokio::spawn(async move {
            let mut events = store.subscribe(Position::ZERO, ReadFilter::all());
            loop {
                tokio::select! {
                    biased;
                    _ = shutdown.wait_for(|stop| *stop) => break,
                    next = events.next() => match next {
                        Some(Ok(event)) => {
                            let summary = StreamSummary {
                                stream: event.stream.as_str().to_owned(),
                                version: event.version.0,
                                last_position: event.position.0,
                                last_type: event.event_type.as_str().to_owned(),
                                last_recorded_at: event.recorded_at.to_string(),
                            };
                            this.streams.write().insert(summary.stream.clone(), summary);
                            this.indexed.store(event.position.0, Ordering::Release);
                        }
                        Some(Err(err)) => {
                            tracing::debug!(error = %err, "the stream listing stopped following the log");
                            break;
                        }
                        None => break,
                    },
                }
            }
        });
        catalog
    }

    /// Up to `limit` streams whose names start with `prefix` and contain `contains`, in
    /// name order.
    pub(crate) fn list(&self, prefix: &str, contains: &str, limit: usize) -> Vec<StreamSummary> {
        let streams = self.streams.read();
        streams
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(|(name, _)| name.starts_with(prefix))
            .filter(|(name, _)| contains.is_empty() || name.contains(contains))
            .take(limit)
            .map(|(_, s)| s.clone())
            .collect()
    }

    /// How many streams are known.
    pub(crate) fn len(&self) -> usize {
        self.streams.read().len()
    }

    /// The last position folded in.
    pub(crate) fn indexed(&self) -> u64 {
        self.indexed.load(Ordering::Acquire)
    }
}
