//! `strata serve --redis URL`: the shop's catalog kept in Redis too and its hot queries
//! cached there, and the read side the server reports with the Redis runners listed
//! beside the SQLite ones. Without the flag nothing here runs.
//!
//! It only wires strata-projection's Redis host and the shop together; it holds no
//! storage logic.

use std::sync::Arc;

use anyhow::Context as _;
use async_trait::async_trait;
use strata_core::Position;
use strata_projection::RedisProjections;
use strata_server::{ParkedEvent, ProjectionError, ProjectionHost, ReadSide, RunnerStatus};
use strata_shop::Shop;
use strata_store::EventStore;

/// Registers the shop's Redis read model and query cache on a new host over `store`
/// (keys under `prefix` in the server at `url`) and starts its runners. A server that
/// is down is retried in the background; only a URL that is not a Redis URL fails.
pub(crate) fn attach(
    url: &str,
    prefix: &str,
    store: Arc<dyn EventStore>,
    shop: Shop,
) -> anyhow::Result<(Shop, RedisProjections)> {
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        anyhow::bail!(
            "--redis takes a redis:// URL, not {:?}",
            crate::serve::redacted(url)
        );
    }
    let host = RedisProjections::new(store, url, prefix)
        .with_context(|| format!("cannot use Redis at {}", crate::serve::redacted(url)))?;
    let shop = shop
        .use_redis(&host)
        .context("cannot set up the shop's Redis read side")?;
    host.start();
    Ok((shop, host))
}

/// The server's read side, with the Redis runners when there are any.
pub(crate) fn read_side(
    read_side: ReadSide,
    redis: Option<RedisProjections>,
) -> Arc<dyn ProjectionHost> {
    match redis {
        None => Arc::new(read_side),
        Some(redis) => Arc::new(WithRedis { read_side, redis }),
    }
}

/// The SQLite read side and the Redis runners, as one host.
struct WithRedis {
    read_side: ReadSide,
    redis: RedisProjections,
}

impl WithRedis {
    fn is_redis(&self, name: &str) -> bool {
        self.redis.checkpoint(name).is_ok()
    }
}

#[async_trait]
impl ProjectionHost for WithRedis {
    async fn status(&self) -> Result<Vec<RunnerStatus>, ProjectionError> {
        let mut list = self.read_side.status().await?;
        list.extend(
            self.redis
                .status()
                .into_iter()
                .map(RunnerStatus::Projection),
        );
        Ok(list)
    }

    async fn rebuild(&self, name: &str) -> Result<(), ProjectionError> {
        if self.is_redis(name) {
            // A Redis model builds anew under a new version instead.
            return Err(ProjectionError::NotRebuildable(name.to_owned()));
        }
        self.read_side.rebuild(name).await
    }

    async fn parked(&self, name: &str) -> Result<Vec<ParkedEvent>, ProjectionError> {
        if self.is_redis(name) {
            return self.redis.parked(name).await;
        }
        self.read_side.parked(name).await
    }

    async fn retry_parked(&self, name: &str, position: Position) -> Result<(), ProjectionError> {
        if self.is_redis(name) {
            return self.redis.retry_parked(name, position).await;
        }
        self.read_side.retry_parked(name, position).await
    }

    async fn shutdown(&self) {
        self.read_side.shutdown().await;
        self.redis.shutdown().await;
    }
}
