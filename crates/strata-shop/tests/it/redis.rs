//! The shop with Redis (`STRATA_TEST_REDIS_URL`; each test prints that it skipped when
//! it is unset): the catalog kept in Redis equals the SQLite one built from the same
//! events, and the query cache serves hot queries until an event changes them, never
//! to a caller whose `after` it has not reached. Every test works under a key prefix of
//! its own and removes it at the end.

use std::sync::Arc;
use std::time::Duration;

use strata_core::Position;
use strata_domain::{CommandHandler, MemorySnapshots};
use strata_projection::{ProcessManagers, Projections, QueryCache, RedisProjections};
use strata_shop::domain::{Money, OrderStatus};
use strata_shop::read_models::{CATALOG, CATALOG_REDIS, Catalog, RedisCatalog};
use strata_shop::{FakePaymentProvider, PageRequest, Shop};
use strata_store::EventStore;
use strata_store_embedded::{EmbeddedStore, Options};
use tempfile::TempDir;

use crate::support::{SETTLE, ctx};

const WAIT: Duration = Duration::from_secs(10);

fn redis_url(test: &str) -> Option<String> {
    match std::env::var("STRATA_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("skipped {test}: STRATA_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// A running shop whose catalog is also kept in Redis, with the query cache on.
struct RedisShop {
    shop: Shop,
    store: Arc<dyn EventStore>,
    projections: Projections,
    processes: ProcessManagers,
    redis: RedisProjections,
    _keys: Keys,
    _dir: TempDir,
}

/// The keys under a test's prefix, removed when dropped (a failing test too).
struct Keys {
    url: String,
    prefix: String,
}

impl Drop for Keys {
    fn drop(&mut self) {
        let Ok(mut conn) = redis::Client::open(self.url.as_str()).and_then(|c| c.get_connection())
        else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query(&mut conn)
            .unwrap_or_default();
        if !keys.is_empty() {
            let _ = redis::cmd("DEL").arg(&keys).exec(&mut conn);
        }
    }
}

impl RedisShop {
    fn start(url: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn EventStore> = Arc::new(
            EmbeddedStore::open(dir.path().join("log"), Options::default()).expect("opens"),
        );
        let handler = Arc::new(CommandHandler::new(
            store.clone(),
            Arc::new(MemorySnapshots::new()),
        ));
        let projections = Projections::new(store.clone(), dir.path().join("read"));
        let processes = ProcessManagers::new(store.clone(), dir.path().join("process"));
        let prefix = format!("strata-test:{}:", uuid::Uuid::new_v4().simple());
        let redis = RedisProjections::new(store.clone(), url, &prefix).expect("a Redis URL");
        let shop = Shop::new(
            handler,
            projections.clone(),
            &processes,
            Arc::new(FakePaymentProvider::default()),
        )
        .expect("the shop registers")
        .use_redis(&redis)
        .expect("the Redis read side registers");
        projections.start();
        processes.start();
        redis.start();
        Self {
            shop,
            store,
            projections,
            processes,
            redis,
            _keys: Keys {
                url: url.to_owned(),
                prefix,
            },
            _dir: dir,
        }
    }

    async fn stop(self) {
        self.processes.shutdown().await;
        self.projections.shutdown().await;
        self.redis.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_catalog_equals_the_sqlite_catalog() {
    let Some(url) = redis_url("the_redis_catalog_equals_the_sqlite_catalog") else {
        return;
    };
    let rig = RedisShop::start(&url);
    let shop = &rig.shop;
    for (sku, price) in [("mug", 1200), ("cup", 300), ("pot", 4500), ("tea", 800)] {
        shop.create_product(
            sku,
            &format!("A {sku}"),
            "For the kitchen",
            Money(price),
            &ctx(),
        )
        .await
        .unwrap();
    }
    shop.receive_stock("mug", 10, &ctx()).await.unwrap();
    shop.receive_stock("cup", 3, &ctx()).await.unwrap();
    shop.receive_stock("tea", 5, &ctx()).await.unwrap();
    shop.change_price("cup", Money(350), &ctx()).await.unwrap();
    // Orders that checkout confirms (stock committed) or cancels (stock released).
    let mut placed = Vec::new();
    for (order, sku, quantity) in [("o1", "mug", 4), ("o2", "cup", 2), ("o3", "cup", 5)] {
        shop.create_order(order, "ada", &ctx()).await.unwrap();
        shop.add_line(order, sku, quantity, &ctx()).await.unwrap();
        let outcome = shop.place(order, &ctx()).await.unwrap();
        placed.push((order, outcome.position));
    }
    // Read-your-writes: each order is read once the orders model has its placing.
    for (order, position) in placed {
        let view = shop
            .settled_order(order, Some(position), SETTLE)
            .await
            .unwrap();
        assert_ne!(view.status, OrderStatus::Placed, "{order} did not settle");
    }
    // Checkout may still commit reservations after the order settled.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let head = rig.store.head().await.unwrap();
    rig.projections.wait_for(CATALOG, head, WAIT).await.unwrap();
    rig.redis.wait_for(CATALOG_REDIS, head, WAIT).await.unwrap();

    let sqlite = rig
        .projections
        .query(CATALOG, |conn| Catalog::products(conn, "", 100))
        .await
        .unwrap();
    let redis = RedisCatalog::products(&rig.redis, "", 100).await.unwrap();
    assert_eq!(sqlite.len(), 4);
    assert_eq!(redis, sqlite);
    // Paging from a sku, and one product.
    let sqlite_after = rig
        .projections
        .query(CATALOG, |conn| Catalog::products(conn, "cup", 2))
        .await
        .unwrap();
    assert_eq!(
        RedisCatalog::products(&rig.redis, "cup", 2).await.unwrap(),
        sqlite_after
    );
    let mug = RedisCatalog::product(&rig.redis, "mug").await.unwrap();
    assert_eq!(mug.as_ref(), sqlite.iter().find(|p| p.sku == "mug"));
    assert_eq!(mug.unwrap().available, 6);
    assert_eq!(
        RedisCatalog::product(&rig.redis, "nope").await.unwrap(),
        None
    );
    let status = rig.redis.status();
    assert!(
        status
            .iter()
            .any(|s| s.name == CATALOG_REDIS && s.checkpoint == head)
    );
    assert!(status.iter().any(|s| s.name == QueryCache::NAME));
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_serves_hot_queries_until_an_event_changes_them() {
    let Some(url) = redis_url("the_cache_serves_hot_queries_until_an_event_changes_them") else {
        return;
    };
    let rig = RedisShop::start(&url);
    let shop = &rig.shop;
    shop.create_product("mug", "Mug", "", Money(300), &ctx())
        .await
        .unwrap();
    let received = shop
        .receive_stock("mug", 10, &ctx())
        .await
        .unwrap()
        .position;
    let created = shop
        .create_order("o1", "ada", &ctx())
        .await
        .unwrap()
        .position;
    let stats = || shop.cache_stats().unwrap();

    // The first read computes and fills; the same read again is a hit.
    let first = shop.product("mug", Some(received), WAIT).await.unwrap();
    assert_eq!(first.available, 10);
    let before = stats();
    let again = shop.product("mug", Some(received), WAIT).await.unwrap();
    assert_eq!(again, first);
    assert_eq!(stats().hits, before.hits + 1);
    let page = shop
        .products(&PageRequest::first(10), Some(created), WAIT)
        .await
        .unwrap();
    let before = stats();
    assert_eq!(
        shop.products(&PageRequest::first(10), Some(created), WAIT)
            .await
            .unwrap(),
        page
    );
    assert_eq!(stats().hits, before.hits + 1);
    let hits = shop
        .search_products("mug", &PageRequest::first(10), Some(created), WAIT)
        .await
        .unwrap();
    assert_eq!(hits.items.len(), 1);
    let before = stats();
    assert_eq!(
        shop.search_products("mug", &PageRequest::first(10), Some(created), WAIT)
            .await
            .unwrap(),
        hits
    );
    assert_eq!(stats().hits, before.hits + 1);
    // A new product of the category: a search after it sees it.
    let cup = shop
        .create_product("cup", "Mug-sized cup", "", Money(100), &ctx())
        .await
        .unwrap()
        .position;
    let hits = shop
        .search_products("mug", &PageRequest::first(10), Some(cup), WAIT)
        .await
        .unwrap();
    assert_eq!(hits.items.len(), 2);
    shop.order("o1", Some(created), WAIT).await.unwrap();
    let before = stats();
    shop.order("o1", None, WAIT).await.unwrap();
    assert_eq!(stats().hits, before.hits + 1);

    // A new event: a read after it is never answered by the older entry.
    let more = shop.receive_stock("mug", 5, &ctx()).await.unwrap().position;
    let fresh = shop.product("mug", Some(more), WAIT).await.unwrap();
    assert_eq!(fresh.available, 15);
    let page = shop
        .products(&PageRequest::first(10), Some(more), WAIT)
        .await
        .unwrap();
    let mug = page.items.iter().find(|p| p.sku == "mug").unwrap();
    assert_eq!(mug.available, 15);
    let cancelled = shop.cancel("o1", &ctx()).await.unwrap().position;
    let order = shop.order("o1", Some(cancelled), WAIT).await.unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled);

    // Once the event is known to the cache, the old entry is not served without `after`
    // either; the entry filled after the event is.
    rig.redis
        .wait_for(QueryCache::NAME, cancelled, WAIT)
        .await
        .unwrap();
    assert_eq!(
        shop.order("o1", None, WAIT).await.unwrap().status,
        OrderStatus::Cancelled
    );
    let before = stats();
    assert_eq!(shop.product("mug", None, WAIT).await.unwrap().available, 15);
    assert_eq!(stats().hits, before.hits + 1);
    assert!(stats().misses > 0);
    let _ = Position::ZERO;
    rig.stop().await;
}
