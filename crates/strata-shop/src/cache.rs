//! The shop's hot queries in front of the read models: a product, a catalog page, a page
//! of a product search and an order, cached in Redis when the shop has a query cache (the `redis` feature), each
//! entry depending on the streams or categories it was computed from. Without one
//! every lookup misses and every fill does nothing.
//!
//! It must not decide freshness itself: the cache serves an entry only if it has reached
//! the caller's `after` and no event of its dependencies came later.

use serde::Serialize;
use serde::de::DeserializeOwned;
use strata_core::Position;

/// A cacheable query of the shop.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
#[derive(Debug, Clone, Copy)]
pub(crate) enum Query<'a> {
    /// One product of the catalog.
    Product(&'a str),
    /// A page of the catalog: its cursor (`""` for the first) and limit.
    Catalog(&'a str, usize),
    /// One order's summary.
    Order(&'a str),
    /// A page of a product search: the words, the hits already given, the limit.
    Search(&'a str, usize, usize),
}

/// The shop's query cache, or none.
#[derive(Clone, Default)]
pub(crate) struct ShopCache {
    #[cfg(feature = "redis")]
    inner: Option<strata_projection::QueryCache>,
}

impl ShopCache {
    /// A cache over `cache`.
    #[cfg(feature = "redis")]
    pub(crate) fn new(cache: strata_projection::QueryCache) -> Self {
        Self { inner: Some(cache) }
    }

    /// Whether answers are cached at all.
    pub(crate) fn is_on(&self) -> bool {
        #[cfg(feature = "redis")]
        return self.inner.is_some();
        #[cfg(not(feature = "redis"))]
        false
    }

    /// How the cache has answered so far, if there is one.
    #[cfg(feature = "redis")]
    pub(crate) fn stats(&self) -> Option<strata_projection::CacheStats> {
        self.inner.as_ref().map(|c| c.stats())
    }

    /// The cached answer to `query`, if one is fresh enough for `after`.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        query: Query<'_>,
        after: Option<Position>,
    ) -> Option<T> {
        #[cfg(feature = "redis")]
        if let Some(cache) = &self.inner {
            let (key, streams) = keyed(query);
            let bytes = cache
                .get(&key, &dependencies(query, &streams), after)
                .await?;
            return serde_json::from_slice(&bytes).ok();
        }
        let _ = (query, after);
        None
    }

    /// Caches `value` as the answer to `query`, computed from a read model at `position`.
    pub(crate) async fn put<T: Serialize>(&self, query: Query<'_>, position: Position, value: &T) {
        #[cfg(feature = "redis")]
        if let Some(cache) = &self.inner {
            let (key, _) = keyed(query);
            if let Ok(bytes) = serde_json::to_vec(value) {
                cache.put(&key, position, &bytes).await;
            }
            return;
        }
        let _ = (query, position, value);
    }
}

/// The query's cache key and the streams it reads.
#[cfg(feature = "redis")]
fn keyed(query: Query<'_>) -> (String, Vec<String>) {
    use strata_domain::Aggregate as _;

    use crate::domain::{Inventory, Order, Product};
    match query {
        Query::Product(sku) => (
            format!("product:{sku}"),
            vec![
                format!("{}-{sku}", Product::CATEGORY),
                format!("{}-{sku}", Inventory::CATEGORY),
            ],
        ),
        Query::Catalog(cursor, limit) => (format!("catalog:{cursor}:{limit}"), Vec::new()),
        Query::Order(id) => (
            format!("order:{id}"),
            vec![format!("{}-{id}", Order::CATEGORY)],
        ),
        Query::Search(q, offset, limit) => (format!("search:{offset}:{limit}:{q}"), Vec::new()),
    }
}

/// What an answer to `query` depends on.
#[cfg(feature = "redis")]
fn dependencies<'a>(
    query: Query<'_>,
    streams: &'a [String],
) -> Vec<strata_projection::Dependency<'a>> {
    use strata_domain::Aggregate as _;
    use strata_projection::Dependency;

    use crate::domain::{Inventory, Product};
    match query {
        Query::Catalog(..) => vec![
            Dependency::Category(Product::CATEGORY),
            Dependency::Category(Inventory::CATEGORY),
        ],
        Query::Search(..) => vec![Dependency::Category(Product::CATEGORY)],
        Query::Product(_) | Query::Order(_) => {
            streams.iter().map(|s| Dependency::Stream(s)).collect()
        }
    }
}
