//! The catalog with available stock kept in Redis (the `redis` feature): the same model
//! as the SQLite [`super::Catalog`], built from the same events, as one hash per sku
//! (`product:<sku>`: name, description, price, received, reserved, committed) and a
//! sorted set of the skus of created products (`products`), which lists them in sku
//! order.
//!
//! Its `apply` only records writes; the runner makes them in Redis with the checkpoint.

use std::collections::HashMap;

use redis::AsyncCommands as _;
use strata_core::RecordedEvent;
use strata_domain::Aggregate;
use strata_projection::{ApplyError, RedisOps, RedisProjection, RedisProjections};
use strata_store::ReadFilter;

use super::decode;
use crate::domain::{Inventory, InventoryEvent, Money, Product, ProductEvent};
use crate::read_models::ProductView;

/// The projection's name (beside the SQLite catalog's, `shop_catalog`).
pub const CATALOG_REDIS: &str = "shop_catalog_redis";

/// The catalog projection kept in Redis.
#[derive(Debug, Clone, Copy, Default)]
pub struct RedisCatalog;

/// The version of the model's code (part of its keys).
const VERSION: u32 = 1;

fn product_key(sku: &str) -> String {
    format!("product:{sku}")
}

impl RedisProjection for RedisCatalog {
    fn name(&self) -> &'static str {
        CATALOG_REDIS
    }

    fn version(&self) -> u32 {
        VERSION
    }

    fn filter(&self) -> ReadFilter {
        ReadFilter::all()
            .category(Product::CATEGORY)
            .category(Inventory::CATEGORY)
    }

    fn apply(&self, ops: &mut RedisOps, event: &RecordedEvent) -> Result<(), ApplyError> {
        if event.stream.category() == Product::CATEGORY {
            match decode::<ProductEvent>(event)? {
                ProductEvent::Created {
                    sku,
                    name,
                    description,
                    price,
                } => {
                    let key = product_key(&sku);
                    ops.hset(&key, "name", &name);
                    ops.hset(&key, "description", &description);
                    ops.hset(&key, "price", &price.0.to_string());
                    ops.zadd_lex("products", &sku);
                }
                ProductEvent::PriceChanged { sku, price, .. } => {
                    ops.hset(&product_key(&sku), "price", &price.0.to_string());
                }
            }
            return Ok(());
        }
        let (sku, received, reserved, committed) = match decode::<InventoryEvent>(event)? {
            InventoryEvent::Received { sku, quantity } => (sku, super::sql(quantity), 0, 0),
            InventoryEvent::Reserved { sku, quantity, .. } => (sku, 0, i64::from(quantity), 0),
            InventoryEvent::Released { sku, quantity, .. } => (sku, 0, -i64::from(quantity), 0),
            InventoryEvent::Committed { sku, quantity, .. } => {
                (sku, 0, -i64::from(quantity), i64::from(quantity))
            }
        };
        let key = product_key(&sku);
        for (field, delta) in [
            ("received", received),
            ("reserved", reserved),
            ("committed", committed),
        ] {
            if delta != 0 {
                ops.hincrby(&key, field, delta);
            }
        }
        Ok(())
    }
}

/// A product from its hash; `None` while its product is not created (stock only).
fn product_view(sku: &str, hash: &HashMap<String, String>) -> Option<ProductView> {
    let count = |field: &str| {
        hash.get(field)
            .and_then(|v| v.parse::<i64>().ok())
            .map_or(0, super::unsigned)
    };
    let received = count("received");
    let reserved = count("reserved");
    let committed = count("committed");
    Some(ProductView {
        sku: sku.to_owned(),
        name: hash.get("name")?.clone(),
        description: hash.get("description").cloned().unwrap_or_default(),
        price: Money(count("price")),
        available: received.saturating_sub(reserved).saturating_sub(committed),
        reserved,
        on_hand: received.saturating_sub(committed),
    })
}

impl RedisCatalog {
    fn space(host: &RedisProjections) -> String {
        host.key_space(CATALOG_REDIS, VERSION)
    }

    /// The product `sku`, if the catalog has it.
    pub async fn product(
        host: &RedisProjections,
        sku: &str,
    ) -> redis::RedisResult<Option<ProductView>> {
        let mut conn = host.connection();
        let key = format!("{}{}", Self::space(host), product_key(sku));
        let hash: HashMap<String, String> = conn.hgetall(key).await?;
        Ok(product_view(sku, &hash))
    }

    /// At most `limit` products whose sku sorts after `after` (`""`: from the first),
    /// by sku.
    pub async fn products(
        host: &RedisProjections,
        after: &str,
        limit: usize,
    ) -> redis::RedisResult<Vec<ProductView>> {
        let space = Self::space(host);
        let mut conn = host.connection();
        let from = if after.is_empty() {
            "-".to_owned()
        } else {
            format!("({after}")
        };
        let skus: Vec<String> = redis::cmd("ZRANGEBYLEX")
            .arg(format!("{space}products"))
            .arg(from)
            .arg("+")
            .arg("LIMIT")
            .arg(0)
            .arg(limit)
            .query_async(&mut conn)
            .await?;
        let mut pipe = redis::pipe();
        for sku in &skus {
            pipe.hgetall(format!("{space}{}", product_key(sku)));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut conn).await?;
        Ok(skus
            .iter()
            .zip(&hashes)
            .filter_map(|(sku, hash)| product_view(sku, hash))
            .collect())
    }
}
