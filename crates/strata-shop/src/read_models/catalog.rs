//! The catalog with available stock: one row per sku, from the `product` and `inventory`
//! categories.
//!
//! The counts, per sku: `received` (ever), `reserved` (outstanding reservations),
//! `committed` (reserved and then sold); `on_hand = received − committed` and
//! `available = received − reserved − committed`, the units a new order can still get.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use strata_core::RecordedEvent;
use strata_domain::Aggregate;
use strata_projection::{ApplyError, SqliteProjection};
use strata_store::ReadFilter;

use super::{decode, exec, sql, unsigned};
use crate::domain::{Inventory, InventoryEvent, Money, Product, ProductEvent};

/// The projection's name.
pub const CATALOG: &str = "shop_catalog";

/// A product with its stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductView {
    /// The sku.
    pub sku: String,
    /// The name.
    pub name: String,
    /// The description.
    pub description: String,
    /// The unit price.
    pub price: Money,
    /// Units a new order can still reserve: received − reserved − committed.
    pub available: u64,
    /// Units held for orders in checkout.
    pub reserved: u64,
    /// Units on the shelf: received − committed.
    pub on_hand: u64,
}

/// The catalog projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Catalog;

impl SqliteProjection for Catalog {
    fn name(&self) -> &'static str {
        CATALOG
    }

    fn version(&self) -> u32 {
        1
    }

    fn filter(&self) -> ReadFilter {
        ReadFilter::all()
            .category(Product::CATEGORY)
            .category(Inventory::CATEGORY)
    }

    fn migrate(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        // A sku's stock may be known before its product is (name still NULL): such a row
        // is not in the catalog until the product is created.
        tx.execute_batch(
            "CREATE TABLE catalog (
                 sku TEXT PRIMARY KEY,
                 name TEXT,
                 description TEXT,
                 price INTEGER,
                 received INTEGER NOT NULL DEFAULT 0,
                 reserved INTEGER NOT NULL DEFAULT 0,
                 committed INTEGER NOT NULL DEFAULT 0
             );",
        )
    }

    fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ApplyError> {
        // Adds to the stock counts of `sku`, creating its row if needed.
        let add = |sku: &str, received: i64, reserved: i64, committed: i64| {
            exec(
                tx,
                "INSERT INTO catalog (sku, received, reserved, committed) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (sku) DO UPDATE SET
                     received = received + excluded.received,
                     reserved = reserved + excluded.reserved,
                     committed = committed + excluded.committed",
                params![sku, received, reserved, committed],
            )
        };
        if event.stream.category() == Product::CATEGORY {
            match decode::<ProductEvent>(event)? {
                ProductEvent::Created {
                    sku,
                    name,
                    description,
                    price,
                } => {
                    exec(
                        tx,
                        "INSERT INTO catalog (sku, name, description, price)
                         VALUES (?1, ?2, ?3, ?4)
                         ON CONFLICT (sku) DO UPDATE SET
                             name = excluded.name,
                             description = excluded.description,
                             price = excluded.price",
                        params![sku, name, description, sql(price.0)],
                    )?;
                }
                ProductEvent::PriceChanged { sku, price, .. } => {
                    exec(
                        tx,
                        "UPDATE catalog SET price = ?2 WHERE sku = ?1",
                        params![sku, sql(price.0)],
                    )?;
                }
            }
            return Ok(());
        }
        match decode::<InventoryEvent>(event)? {
            InventoryEvent::Received { sku, quantity } => add(&sku, sql(quantity), 0, 0)?,
            InventoryEvent::Reserved { sku, quantity, .. } => add(&sku, 0, i64::from(quantity), 0)?,
            InventoryEvent::Released { sku, quantity, .. } => {
                add(&sku, 0, -i64::from(quantity), 0)?
            }
            InventoryEvent::Committed { sku, quantity, .. } => {
                add(&sku, 0, -i64::from(quantity), i64::from(quantity))?
            }
        };
        Ok(())
    }
}

const SELECT_PRODUCT: &str = "SELECT sku, name, description, price, received, reserved, committed
     FROM catalog WHERE name IS NOT NULL";

/// [`SELECT_PRODUCT`] for one sku (`?1`), written out so that the statement cache finds
/// it without a string being built per query.
const SELECT_ONE_PRODUCT: &str =
    "SELECT sku, name, description, price, received, reserved, committed
     FROM catalog WHERE name IS NOT NULL AND sku = ?1";

fn product_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<ProductView> {
    let received = unsigned(row.get(4)?);
    let reserved = unsigned(row.get(5)?);
    let committed = unsigned(row.get(6)?);
    Ok(ProductView {
        sku: row.get(0)?,
        name: row.get(1)?,
        description: row.get(2)?,
        price: Money(unsigned(row.get(3)?)),
        available: received.saturating_sub(reserved).saturating_sub(committed),
        reserved,
        on_hand: received.saturating_sub(committed),
    })
}

impl Catalog {
    /// The product `sku`, if the catalog has it.
    pub fn product(
        conn: &rusqlite::Connection,
        sku: &str,
    ) -> rusqlite::Result<Option<ProductView>> {
        conn.prepare_cached(SELECT_ONE_PRODUCT)?
            .query_row(params![sku], product_row)
            .optional()
    }

    /// At most `limit` products whose sku sorts after `after` (`""`: from the first), by
    /// sku.
    pub fn products(
        conn: &rusqlite::Connection,
        after: &str,
        limit: usize,
    ) -> rusqlite::Result<Vec<ProductView>> {
        conn.prepare_cached(&format!(
            "{SELECT_PRODUCT} AND sku > ?1 ORDER BY sku LIMIT ?2"
        ))?
        .query_map(params![after, sql(limit as u64)], product_row)?
        .collect()
    }
}
