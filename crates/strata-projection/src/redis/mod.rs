//! Read models kept in Redis (the `redis` cargo feature): [`RedisProjection`]s hosted by
//! [`RedisProjections`] on the same registry and supervise loop as the SQLite hosts, and
//! a [`QueryCache`] whose entries events invalidate.
//!
//! Every batch a runner applies goes to Redis as one Lua script that first checks the
//! stored checkpoint against the one the batch was read from, then makes the batch's
//! writes and stores the new checkpoint: a crash, a lost reply or a second runner on the
//! same keys never skips nor repeats an event. This module owns the Redis keys of its
//! projections and cache; it must not read or write anything else in Redis.

mod batch;
mod cache;
mod host;
mod projection;
#[cfg(test)]
mod tests;

pub use cache::{CacheStats, Dependency, QueryCache};
pub use host::RedisProjections;
pub use projection::{RedisOps, RedisProjection};

/// The key prefix every Redis key of a host starts with unless told otherwise.
pub const DEFAULT_PREFIX: &str = "strata:";
