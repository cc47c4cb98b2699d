//! Order summaries: one row per order (customer, status, total) with its lines, listed per
//! customer and all together. Built from the `order` category.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::{Deserialize, Serialize};
use strata_core::RecordedEvent;
use strata_domain::Aggregate;
use strata_projection::{ApplyError, SqliteProjection};
use strata_store::ReadFilter;

use super::{decode, exec, sql, unsigned};
use crate::domain::{CancelReason, Money, Order, OrderEvent, OrderStatus};

/// The projection's name.
pub const ORDERS: &str = "shop_orders";

/// One order as the summaries show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderView {
    /// The order id.
    pub id: String,
    /// The customer.
    pub customer: String,
    /// The status.
    pub status: OrderStatus,
    /// The lines, in the order they were added.
    pub lines: Vec<OrderLineView>,
    /// The sum of the line totals.
    pub total: Money,
    /// Why it was cancelled, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<CancelReason>,
}

/// One line of an order view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLineView {
    /// The product.
    pub sku: String,
    /// Units.
    pub quantity: u32,
    /// The price of one unit.
    pub unit_price: Money,
    /// `quantity × unit_price`.
    pub total: Money,
}

/// One order in a listing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderSummary {
    /// The order id.
    pub id: String,
    /// The customer.
    pub customer: String,
    /// The global position of the order's creation: the listing's order.
    pub created_position: u64,
    /// The status.
    pub status: OrderStatus,
    /// How many lines it has.
    pub lines: u32,
    /// The sum of the line totals.
    pub total: Money,
}

/// The order-summaries projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct OrderSummaries;

impl SqliteProjection for OrderSummaries {
    fn name(&self) -> &'static str {
        ORDERS
    }

    /// 2: orders are indexed by creation, for the listing of every order. 3: both
    /// tables are clustered on their keys (`WITHOUT ROWID`), so an update by order id
    /// walks one B-tree instead of an index and then the table. 4: an order's lines are
    /// kept in its row (a JSON array), so every event of an order changes one row of one
    /// B-tree: a line added used to write a page of `order_lines` and one of `orders`.
    fn version(&self) -> u32 {
        4
    }

    fn filter(&self) -> ReadFilter {
        ReadFilter::all().category(Order::CATEGORY)
    }

    fn migrate(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE orders (
                 order_id TEXT PRIMARY KEY,
                 customer TEXT NOT NULL,
                 status TEXT NOT NULL,
                 total INTEGER NOT NULL,
                 line_count INTEGER NOT NULL,
                 lines TEXT NOT NULL,
                 cancel_reason TEXT,
                 created_position INTEGER NOT NULL
             ) WITHOUT ROWID;",
        )
    }

    /// The listings' indexes: every statement of `apply` finds its row by order id.
    fn deferred_indexes(&self) -> &'static [&'static str] {
        &[
            "CREATE INDEX IF NOT EXISTS orders_by_customer ON orders (customer, created_position)",
            "CREATE INDEX IF NOT EXISTS orders_by_creation ON orders (created_position)",
        ]
    }

    fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ApplyError> {
        let set_status = |order_id: &str, status: OrderStatus| {
            exec(
                tx,
                "UPDATE orders SET status = ?2 WHERE order_id = ?1",
                params![order_id, status.as_str()],
            )
        };
        match decode::<OrderEvent>(event)? {
            OrderEvent::Created { order_id, customer } => {
                exec(
                    tx,
                    "INSERT INTO orders
                         (order_id, customer, status, total, line_count, lines, created_position)
                     VALUES (?1, ?2, ?3, 0, 0, '[]', ?4) ON CONFLICT (order_id) DO NOTHING",
                    params![
                        order_id,
                        customer,
                        OrderStatus::Draft.as_str(),
                        sql(event.position.0)
                    ],
                )?;
            }
            OrderEvent::LineAdded { order_id, line } => {
                let total = line.total().ok_or("a line total past the largest amount")?;
                change_lines(tx, &order_id, move |lines| {
                    // A sku added again replaces its line, which moves to the end.
                    lines.retain(|l| l.sku != line.sku);
                    lines.push(OrderLineView {
                        sku: line.sku,
                        quantity: line.quantity,
                        unit_price: line.unit_price,
                        total,
                    });
                })?;
            }
            OrderEvent::LineRemoved { order_id, sku } => {
                change_lines(tx, &order_id, |lines| lines.retain(|l| l.sku != sku))?;
            }
            OrderEvent::Placed { order_id, .. } => {
                set_status(&order_id, OrderStatus::Placed)?;
            }
            OrderEvent::Confirmed { order_id, .. } => {
                set_status(&order_id, OrderStatus::Confirmed)?;
            }
            OrderEvent::Cancelled { order_id, reason } => {
                exec(
                    tx,
                    "UPDATE orders SET status = ?2, cancel_reason = ?3 WHERE order_id = ?1",
                    params![
                        order_id,
                        OrderStatus::Cancelled.as_str(),
                        serde_json::to_string(&reason)?
                    ],
                )?;
            }
            OrderEvent::Shipped { order_id } => {
                set_status(&order_id, OrderStatus::Shipped)?;
            }
        }
        Ok(())
    }
}

/// Reads order `order_id`'s lines, changes them with `change` and writes them back with
/// their count and total. An order the model does not hold is left alone, as the other
/// updates leave it.
fn change_lines(
    tx: &Transaction<'_>,
    order_id: &str,
    change: impl FnOnce(&mut Vec<OrderLineView>),
) -> Result<(), ApplyError> {
    let stored = tx
        .prepare_cached("SELECT lines FROM orders WHERE order_id = ?1")?
        .query_row(params![order_id], |row| row.get::<_, String>(0))
        .optional()?;
    let Some(stored) = stored else {
        return Ok(());
    };
    let mut lines = lines_of(&stored)
        .map_err(|e| ApplyError::new(format!("order {order_id}'s stored lines: {e}")))?;
    change(&mut lines);
    let total = Money::checked_sum(lines.iter().map(|l| l.total))
        .ok_or("an order total past the largest amount")?;
    exec(
        tx,
        "UPDATE orders SET lines = ?2, line_count = ?3, total = ?4 WHERE order_id = ?1",
        params![
            order_id,
            serde_json::to_string(&lines)?,
            sql(lines.len() as u64),
            sql(total.0)
        ],
    )?;
    Ok(())
}

/// An order's lines as its row keeps them: [`OrderLineView`]'s JSON, so a change to that
/// type's form is a new version of the model.
fn lines_of(stored: &str) -> serde_json::Result<Vec<OrderLineView>> {
    serde_json::from_str(stored)
}

/// The columns [`summary`] reads, before a listing's `WHERE`.
const SUMMARY: &str = "SELECT o.order_id, o.customer, o.status, o.total,
        o.line_count,
        o.created_position
 FROM orders o";

/// One row of a listing selected with [`SUMMARY`].
fn summary(row: &rusqlite::Row<'_>) -> rusqlite::Result<OrderSummary> {
    Ok(OrderSummary {
        id: row.get(0)?,
        customer: row.get(1)?,
        status: status_of(&row.get::<_, String>(2)?)?,
        total: Money(unsigned(row.get(3)?)),
        lines: row.get(4)?,
        created_position: unsigned(row.get(5)?),
    })
}

fn status_of(text: &str) -> rusqlite::Result<OrderStatus> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

impl OrderSummaries {
    /// The order `id`, if the model has it.
    pub fn order(conn: &rusqlite::Connection, id: &str) -> rusqlite::Result<Option<OrderView>> {
        let row = conn
            .prepare_cached(
                "SELECT customer, status, total, lines, cancel_reason FROM orders
                 WHERE order_id = ?1",
            )?
            .query_row(params![id], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, String>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, String>(3)?,
                    row.get::<_, Option<String>>(4)?,
                ))
            })
            .optional()?;
        let Some((customer, status, total, lines, reason)) = row else {
            return Ok(None);
        };
        let lines = lines_of(&lines).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(e))
        })?;
        Ok(Some(OrderView {
            id: id.to_owned(),
            customer,
            status: status_of(&status)?,
            lines,
            total: Money(unsigned(total)),
            cancel_reason: reason.and_then(|r| serde_json::from_str(&r).ok()),
        }))
    }

    /// At most `limit` orders of `customer` created after position `after` (0: from the
    /// first), oldest first.
    pub fn customer_orders(
        conn: &rusqlite::Connection,
        customer: &str,
        after: u64,
        limit: usize,
    ) -> rusqlite::Result<Vec<OrderSummary>> {
        let mut statement = conn.prepare_cached(&format!(
            "{SUMMARY} WHERE o.customer = ?1 AND o.created_position > ?2
             ORDER BY o.created_position LIMIT ?3"
        ))?;
        statement
            .query_map(params![customer, sql(after), sql(limit as u64)], summary)?
            .collect()
    }

    /// At most `limit` orders of any customer created before position `before` (none:
    /// from the latest), newest first.
    pub fn orders(
        conn: &rusqlite::Connection,
        before: Option<u64>,
        limit: usize,
    ) -> rusqlite::Result<Vec<OrderSummary>> {
        let mut statement = conn.prepare_cached(&format!(
            "{SUMMARY} WHERE o.created_position < ?1
             ORDER BY o.created_position DESC LIMIT ?2"
        ))?;
        let before = before.map_or(i64::MAX, sql);
        statement
            .query_map(params![before, sql(limit as u64)], summary)?
            .collect()
    }

    /// Every order, by id (for checks and exports).
    pub fn all(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<OrderView>> {
        let ids = conn
            .prepare("SELECT order_id FROM orders ORDER BY order_id")?
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut orders = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(order) = Self::order(conn, &id)? {
                orders.push(order);
            }
        }
        Ok(orders)
    }
}
