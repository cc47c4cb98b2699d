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
//!
//! In front of Redis, each process keeps a near tier: the answers it computed or fetched
//! lately, checked against stamps the stamping runner of this same process records as
//! it applies each event (before it commits them to Redis, so they are never behind
//! it). A stamp the near tier does not know counts as its floor: the runner's checkpoint
//! when the near tier began, or the newest stamp it dropped to stay bounded. So a near
//! hit obeys the same rule as a Redis hit and costs no round trip. The near tier answers
//! only while the runner applies events as they come; while it waits to retry a fault
//! (Redis away), every lookup goes to Redis.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::RwLock;
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
/// The most answers the near tier keeps; past it, it starts again empty.
const NEAR_ENTRIES: usize = 16 * 1024;
/// The most stamps the near tier keeps; past it, they fold into its floor.
pub(super) const NEAR_STAMPS: usize = 256 * 1024;

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
    near: Arc<RwLock<Near>>,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// This process's answers and the stamps its runner applied (see the module's doc).
#[derive(Default)]
pub(super) struct Near {
    entries: HashMap<String, (Position, Arc<[u8]>)>,
    streams: HashMap<Box<str>, u64>,
    categories: HashMap<Box<str>, u64>,
    /// What an unknown stamp counts as; `None` until the near tier is first used.
    pub(super) floor: Option<u64>,
}

impl Near {
    /// Records that the event at `position` touched `stream` of `category`.
    pub(super) fn stamp(&mut self, stream: &str, category: &str, position: u64) {
        if self.streams.len() + self.categories.len() >= NEAR_STAMPS {
            let newest = self
                .streams
                .values()
                .chain(self.categories.values())
                .copied()
                .max();
            self.floor = self.floor.max(newest);
            self.streams.clear();
            self.categories.clear();
        }
        for (map, key) in [
            (&mut self.streams, stream),
            (&mut self.categories, category),
        ] {
            match map.get_mut(key) {
                Some(stamp) => *stamp = (*stamp).max(position),
                None => {
                    map.insert(key.into(), position);
                }
            }
        }
    }

    /// The stamp of `dependency`: the last event known to touch it, or the floor.
    fn stamp_of(&self, dependency: &Dependency<'_>, floor: u64) -> u64 {
        let known = match dependency {
            Dependency::Stream(stream) => self.streams.get(*stream),
            Dependency::Category(category) => self.categories.get(*category),
        };
        known.copied().unwrap_or(floor).max(floor)
    }

    /// The answer under `key` if it reached `after` and no dependency is stamped later.
    pub(super) fn get(
        &self,
        key: &str,
        dependencies: &[Dependency<'_>],
        after: Position,
    ) -> Option<(Position, Arc<[u8]>)> {
        let floor = self.floor?;
        let (position, value) = self.entries.get(key)?;
        let fresh = *position >= after
            && dependencies
                .iter()
                .all(|d| self.stamp_of(d, floor) <= position.0);
        fresh.then(|| (*position, value.clone()))
    }

    /// Keeps `value` as the answer under `key` at `position`, unless a later one is kept.
    pub(super) fn put(&mut self, key: &str, position: Position, value: Arc<[u8]>) {
        if let Some((kept, _)) = self.entries.get(key)
            && *kept > position
        {
            return;
        }
        if self.entries.len() >= NEAR_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(key.to_owned(), (position, value));
    }
}

/// The runner that stamps what events touch.
struct Stamps {
    filter: ReadFilter,
    near: Arc<RwLock<Near>>,
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
        // NOTE: the near tier learns of the event before Redis does; a batch that fails
        // and is applied again only stamps the same positions again.
        self.near.write().stamp(
            event.stream.as_str(),
            event.stream.category(),
            event.position.0,
        );
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
        let near = Arc::new(RwLock::new(Near::default()));
        let stamps = Stamps {
            filter,
            near: near.clone(),
        };
        let space = host.key_space(stamps.name(), stamps.version());
        host.register(Arc::new(stamps))?;
        Ok(Self {
            inner: Arc::new(Inner {
                host: host.clone(),
                conn: host.connection(),
                space,
                near,
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
        if let Some(value) = self.near_get(key, dependencies, after) {
            self.inner.hits.fetch_add(1, Ordering::Relaxed);
            return Some(value.to_vec());
        }
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
            if usable && self.near_usable() {
                self.inner
                    .near
                    .write()
                    .put(key, position, Arc::from(value.as_slice()));
            }
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

    /// Whether the near tier may answer now: the stamping runner applies events in this
    /// process as they come. Gives the near tier its floor on first use.
    fn near_usable(&self) -> bool {
        if !self.inner.host.is_live(Self::NAME) {
            return false;
        }
        if self.inner.near.read().floor.is_none() {
            // Every event after the runner's checkpoint is stamped as it is applied;
            // those at or before it count as the floor.
            let Ok(checkpoint) = self.inner.host.checkpoint(Self::NAME) else {
                return false;
            };
            let mut near = self.inner.near.write();
            near.floor = Some(near.floor.unwrap_or(0).max(checkpoint.0));
        }
        true
    }

    /// The near tier's answer under `key`, if it may answer and has a fresh one.
    fn near_get(
        &self,
        key: &str,
        dependencies: &[Dependency<'_>],
        after: Option<Position>,
    ) -> Option<Arc<[u8]>> {
        if !self.near_usable() {
            return None;
        }
        let (position, value) =
            self.inner
                .near
                .read()
                .get(key, dependencies, after.unwrap_or(Position::ZERO))?;
        self.inner
            .host
            .vouches_for(Self::NAME, position)
            .then_some(value)
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
        if self.near_usable() && self.inner.host.vouches_for(Self::NAME, position) {
            self.inner.near.write().put(key, position, Arc::from(value));
        }
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
