//! [`QueryCache`]: answers of queries kept in Redis, each stamped with the read-model
//! position it was computed at, and invalidated by events, never by time alone.
//!
//! A runner over the log (a [`RedisProjection`] of its own, `query_cache`) stamps every
//! stream and category an event touches with the event's position. An entry names the
//! streams and categories it was computed from; it is served only while none of them
//! has a stamp beyond its position, and only to a caller whose `after` it has reached.
//! Stamps are positions, not deletions, so a slow query cannot put back an answer an
//! event has already made stale: whatever it writes carries its own, older, position.
//! Entries also expire after a while, to bound memory; that is not what keeps them
//! right.
//!
//! It must not fail a query: every Redis failure makes a miss (logged), and the caller
//! answers from its read model.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use strata_core::{Position, RecordedEvent};
use strata_store::ReadFilter;

use super::host::RedisProjections;
use super::projection::{RedisOps, RedisProjection};
use crate::{ApplyError, ProjectionError};

/// How long an entry is kept at most, to bound the memory of entries no one reads.
const ENTRY_TTL: Duration = Duration::from_secs(3600);
/// How long a cache lookup or fill may take before it counts as a miss.
const CACHE_TIMEOUT: Duration = Duration::from_millis(250);

/// What a cached answer was computed from: an event in any of these makes it stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dependency<'a> {
    /// Every event of this stream.
    Stream(&'a str),
    /// Every event of this category.
    Category(&'a str),
}

impl Dependency<'_> {
    fn stamp_key(&self, space: &str) -> String {
        match self {
            Dependency::Stream(stream) => format!("{space}stamp:stream:{stream}"),
            Dependency::Category(category) => format!("{space}stamp:category:{category}"),
        }
    }
}

/// How the cache has answered so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheStats {
    /// Lookups answered from the cache.
    pub hits: u64,
    /// Lookups that found nothing usable (absent, stale, older than `after`, or Redis
    /// failed).
    pub misses: u64,
}

/// A cache of query answers in Redis, invalidated by events.
///
/// Cloning is cheap and gives another handle to the same cache.
#[derive(Clone)]
pub struct QueryCache {
    inner: Arc<Inner>,
}

struct Inner {
    host: RedisProjections,
    conn: ConnectionManager,
    space: String,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// The runner that stamps what events touch.
struct Stamps {
    filter: ReadFilter,
}

impl RedisProjection for Stamps {
    fn name(&self) -> &'static str {
        QueryCache::NAME
    }

    fn version(&self) -> u32 {
        1
    }

    fn filter(&self) -> ReadFilter {
        self.filter.clone()
    }

    fn apply(&self, ops: &mut RedisOps, event: &RecordedEvent) -> Result<(), ApplyError> {
        let position = event.position.0.to_string();
        ops.set(
            &format!("stamp:stream:{}", event.stream.as_str()),
            &position,
        );
        ops.set(
            &format!("stamp:category:{}", event.stream.category()),
            &position,
        );
        Ok(())
    }
}

impl QueryCache {
    /// The name of the runner that invalidates entries, as the host's status lists it.
    pub const NAME: &'static str = "query_cache";

    /// A cache on `host`'s Redis server whose entries the events `filter` selects
    /// invalidate; registers its runner with `host`.
    pub fn register(host: &RedisProjections, filter: ReadFilter) -> Result<Self, ProjectionError> {
        let stamps = Stamps { filter };
        let space = host.key_space(stamps.name(), stamps.version());
        host.register(Arc::new(stamps))?;
        Ok(Self {
            inner: Arc::new(Inner {
                host: host.clone(),
                conn: host.connection(),
                space,
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
            }),
        })
    }

    fn entry_key(&self, key: &str) -> String {
        format!("{}entry:{key}", self.inner.space)
    }

    /// The answer cached under `key`, if it was computed at a position of at least
    /// `after` and no event of `dependencies` is known beyond that position. A Redis
    /// failure is a miss.
    pub async fn get(
        &self,
        key: &str,
        dependencies: &[Dependency<'_>],
        after: Option<Position>,
    ) -> Option<Vec<u8>> {
        let found = match tokio::time::timeout(CACHE_TIMEOUT, self.lookup(key, dependencies)).await
        {
            Ok(Ok(found)) => found,
            Ok(Err(err)) => {
                tracing::debug!(key, error = %err, "query cache lookup failed");
                None
            }
            Err(_) => {
                tracing::debug!(key, "query cache lookup timed out");
                None
            }
        };
        // NOTE: an entry beyond the log's head, or kept while the stamping runner has
        // stopped for good, may come from another log sharing the prefix: not served.
        let fresh = found.and_then(|(position, value)| {
            let usable = position >= after.unwrap_or(Position::ZERO)
                && self.inner.host.vouches_for(Self::NAME, position);
            usable.then_some(value)
        });
        let counter = if fresh.is_some() {
            &self.inner.hits
        } else {
            &self.inner.misses
        };
        counter.fetch_add(1, Ordering::Relaxed);
        fresh
    }

    /// The entry and its position, if no dependency has a later stamp.
    async fn lookup(
        &self,
        key: &str,
        dependencies: &[Dependency<'_>],
    ) -> redis::RedisResult<Option<(Position, Vec<u8>)>> {
        let mut keys = Vec::with_capacity(1 + dependencies.len());
        keys.push(self.entry_key(key));
        keys.extend(dependencies.iter().map(|d| d.stamp_key(&self.inner.space)));
        let mut conn = self.inner.conn.clone();
        let values: Vec<Option<Vec<u8>>> =
            redis::cmd("MGET").arg(&keys).query_async(&mut conn).await?;
        let mut values = values.into_iter();
        let Some(Some(entry)) = values.next() else {
            return Ok(None);
        };
        let Some((position, value)) = decode_entry(&entry) else {
            return Ok(None);
        };
        for stamp in values.flatten() {
            let stamp = std::str::from_utf8(&stamp)
                .ok()
                .and_then(|s| s.parse::<u64>().ok());
            // An unreadable stamp is treated as the newest: the entry is not served.
            if stamp.is_none_or(|s| s > position.0) {
                return Ok(None);
            }
        }
        Ok(Some((position, value.to_vec())))
    }

    /// Caches `value` under `key`, computed from a read model that had applied
    /// everything up to `position` (read before the query ran). A Redis failure is
    /// logged and ignored.
    pub async fn put(&self, key: &str, position: Position, value: &[u8]) {
        let mut entry = format!("{} ", position.0).into_bytes();
        entry.extend_from_slice(value);
        let mut conn = self.inner.conn.clone();
        let mut set = redis::cmd("SET");
        set.arg(self.entry_key(key))
            .arg(entry)
            .arg("EX")
            .arg(ENTRY_TTL.as_secs());
        match tokio::time::timeout(CACHE_TIMEOUT, set.exec_async(&mut conn)).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => tracing::debug!(key, error = %err, "query cache fill failed"),
            Err(_) => tracing::debug!(key, "query cache fill timed out"),
        }
    }

    /// The hits and misses so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.inner.hits.load(Ordering::Relaxed),
            misses: self.inner.misses.load(Ordering::Relaxed),
        }
    }
}

/// An entry's position and value: `<position> <value>`.
pub(super) fn decode_entry(entry: &[u8]) -> Option<(Position, &[u8])> {
    let space = entry.iter().position(|&b| b == b' ')?;
    let position = std::str::from_utf8(&entry[..space]).ok()?.parse().ok()?;
    Some((Position(position), &entry[space + 1..]))
}
