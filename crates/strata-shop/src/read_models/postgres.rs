//! The shop's read models in PostgreSQL (the `postgres` feature): the same four models
//! as the SQLite ones — the same types implement [`PostgresProjection`] beside
//! [`strata_projection::SqliteProjection`] — and their queries, which answer exactly what
//! the SQLite queries answer. Text keys that pages go on from are `COLLATE "C"`, so they
//! sort by bytes as SQLite does. Product search uses PostgreSQL's full-text search: a
//! weighted `tsvector` column (name `A`, description `B`) under a GIN index, queried with
//! every word as a prefix and ranked by `ts_rank`.
//!
//! Like the SQLite models, a model changes only in `apply`; queries only read, each in
//! one statement (one snapshot).

use async_trait::async_trait;
use strata_core::RecordedEvent;
use strata_projection::deadpool_postgres::Transaction;
use strata_projection::tokio_postgres::types::ToSql;
use strata_projection::tokio_postgres::{Client, Error, Row};
use strata_projection::{ApplyError, PostgresProjection, SqliteProjection};
use strata_store::ReadFilter;

use super::{
    Catalog, DailySales, DaySales, OrderLineView, OrderSummaries, OrderSummary, OrderView,
    ProductSearch, ProductView, SearchHit, decode, sql, unsigned,
};
use crate::domain::{InventoryEvent, Money, OrderEvent, OrderStatus, Product, ProductEvent};

/// How much a match in the name weighs against one in the description: `ts_rank`'s
/// weights, in its order `{D, C, B, A}` (the description is `B`, the name `A`).
const RANK_WEIGHTS: &str = "{0.1, 0.1, 0.1, 1.0}";

/// Turns free text into a `to_tsquery('simple', …)` query: every word (a run of letters
/// and digits, as for SQLite's [`super::fts_query`]) must match, as a prefix. `None` if
/// the text has no word. Words are letters and digits only, so no query syntax from the
/// caller reaches PostgreSQL.
pub fn ts_query(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take(super::search::MAX_QUERY_WORDS)
        .map(|w| format!("{w}:*"))
        .collect();
    (!words.is_empty()).then(|| words.join(" & "))
}

/// Runs one statement of a projection's `apply`, prepared once per connection: the same
/// few statements run for every event.
async fn exec(
    tx: &Transaction<'_>,
    statement: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<u64, Error> {
    let statement = tx.prepare_cached(statement).await?;
    tx.execute(&statement, params).await
}

fn status_of(text: &str) -> Result<OrderStatus, ApplyError> {
    serde_json::from_value(serde_json::Value::String(text.to_owned()))
        .map_err(|e| ApplyError::new(format!("unknown order status {text:?}: {e}")))
}

#[async_trait]
impl PostgresProjection for OrderSummaries {
    fn name(&self) -> &'static str {
        SqliteProjection::name(self)
    }

    fn version(&self) -> u32 {
        SqliteProjection::version(self)
    }

    fn filter(&self) -> ReadFilter {
        SqliteProjection::filter(self)
    }

    async fn migrate(&self, tx: &Transaction<'_>) -> Result<(), Error> {
        tx.batch_execute(
            r#"CREATE TABLE orders (
                 order_id TEXT COLLATE "C" PRIMARY KEY,
                 customer TEXT COLLATE "C" NOT NULL,
                 status TEXT NOT NULL,
                 total BIGINT NOT NULL,
                 cancel_reason TEXT,
                 created_position BIGINT NOT NULL
             );
             CREATE INDEX orders_by_customer ON orders (customer, created_position);
             CREATE INDEX orders_by_creation ON orders (created_position);
             CREATE TABLE order_lines (
                 order_id TEXT COLLATE "C" NOT NULL,
                 sku TEXT COLLATE "C" NOT NULL,
                 quantity BIGINT NOT NULL,
                 unit_price BIGINT NOT NULL,
                 line_total BIGINT NOT NULL,
                 position BIGINT NOT NULL,
                 PRIMARY KEY (order_id, sku)
             );"#,
        )
        .await
    }

    async fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ApplyError> {
        let update_total = |order_id: String| async move {
            exec(
                tx,
                "UPDATE orders SET total = (SELECT COALESCE(SUM(line_total), 0)::BIGINT
                                            FROM order_lines WHERE order_id = $1)
                 WHERE order_id = $1",
                &[&order_id],
            )
            .await
        };
        let set_status = |order_id: String, status: OrderStatus| async move {
            exec(
                tx,
                "UPDATE orders SET status = $2 WHERE order_id = $1",
                &[&order_id, &status.as_str()],
            )
            .await
        };
        match decode::<OrderEvent>(event)? {
            OrderEvent::Created { order_id, customer } => {
                exec(
                    tx,
                    "INSERT INTO orders (order_id, customer, status, total, created_position)
                     VALUES ($1, $2, $3, 0, $4) ON CONFLICT (order_id) DO NOTHING",
                    &[
                        &order_id,
                        &customer,
                        &OrderStatus::Draft.as_str(),
                        &sql(event.position.0),
                    ],
                )
                .await?;
            }
            OrderEvent::LineAdded { order_id, line } => {
                let total = line.total().ok_or("a line total past the largest amount")?;
                exec(
                    tx,
                    "INSERT INTO order_lines
                         (order_id, sku, quantity, unit_price, line_total, position)
                     VALUES ($1, $2, $3, $4, $5, $6)
                     ON CONFLICT (order_id, sku) DO UPDATE SET
                         quantity = excluded.quantity,
                         unit_price = excluded.unit_price,
                         line_total = excluded.line_total,
                         position = excluded.position",
                    &[
                        &order_id,
                        &line.sku,
                        &i64::from(line.quantity),
                        &sql(line.unit_price.0),
                        &sql(total.0),
                        &sql(event.position.0),
                    ],
                )
                .await?;
                update_total(order_id).await?;
            }
            OrderEvent::LineRemoved { order_id, sku } => {
                exec(
                    tx,
                    "DELETE FROM order_lines WHERE order_id = $1 AND sku = $2",
                    &[&order_id, &sku],
                )
                .await?;
                update_total(order_id).await?;
            }
            OrderEvent::Placed { order_id, .. } => {
                set_status(order_id, OrderStatus::Placed).await?;
            }
            OrderEvent::Confirmed { order_id, .. } => {
                set_status(order_id, OrderStatus::Confirmed).await?;
            }
            OrderEvent::Cancelled { order_id, reason } => {
                exec(
                    tx,
                    "UPDATE orders SET status = $2, cancel_reason = $3 WHERE order_id = $1",
                    &[
                        &order_id,
                        &OrderStatus::Cancelled.as_str(),
                        &serde_json::to_string(&reason)?,
                    ],
                )
                .await?;
            }
            OrderEvent::Shipped { order_id } => {
                set_status(order_id, OrderStatus::Shipped).await?;
            }
        }
        Ok(())
    }
}

#[async_trait]
impl PostgresProjection for Catalog {
    fn name(&self) -> &'static str {
        SqliteProjection::name(self)
    }

    fn version(&self) -> u32 {
        SqliteProjection::version(self)
    }

    fn filter(&self) -> ReadFilter {
        SqliteProjection::filter(self)
    }

    async fn migrate(&self, tx: &Transaction<'_>) -> Result<(), Error> {
        // A sku's stock may be known before its product is (name still NULL): such a row
        // is not in the catalog until the product is created.
        tx.batch_execute(
            r#"CREATE TABLE catalog (
                 sku TEXT COLLATE "C" PRIMARY KEY,
                 name TEXT,
                 description TEXT,
                 price BIGINT,
                 received BIGINT NOT NULL DEFAULT 0,
                 reserved BIGINT NOT NULL DEFAULT 0,
                 committed BIGINT NOT NULL DEFAULT 0
             );"#,
        )
        .await
    }

    async fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ApplyError> {
        let add = |sku: String, received: i64, reserved: i64, committed: i64| async move {
            exec(
                tx,
                "INSERT INTO catalog (sku, received, reserved, committed) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (sku) DO UPDATE SET
                     received = catalog.received + excluded.received,
                     reserved = catalog.reserved + excluded.reserved,
                     committed = catalog.committed + excluded.committed",
                &[&sku, &received, &reserved, &committed],
            )
            .await
        };
        if event.stream.category() == <Product as strata_domain::Aggregate>::CATEGORY {
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
                         VALUES ($1, $2, $3, $4)
                         ON CONFLICT (sku) DO UPDATE SET
                             name = excluded.name,
                             description = excluded.description,
                             price = excluded.price",
                        &[&sku, &name, &description, &sql(price.0)],
                    )
                    .await?;
                }
                ProductEvent::PriceChanged { sku, price, .. } => {
                    exec(
                        tx,
                        "UPDATE catalog SET price = $2 WHERE sku = $1",
                        &[&sku, &sql(price.0)],
                    )
                    .await?;
                }
            }
            return Ok(());
        }
        match decode::<InventoryEvent>(event)? {
            InventoryEvent::Received { sku, quantity } => add(sku, sql(quantity), 0, 0).await?,
            InventoryEvent::Reserved { sku, quantity, .. } => {
                add(sku, 0, i64::from(quantity), 0).await?
            }
            InventoryEvent::Released { sku, quantity, .. } => {
                add(sku, 0, -i64::from(quantity), 0).await?
            }
            InventoryEvent::Committed { sku, quantity, .. } => {
                add(sku, 0, -i64::from(quantity), i64::from(quantity)).await?
            }
        };
        Ok(())
    }
}

#[async_trait]
impl PostgresProjection for DailySales {
    fn name(&self) -> &'static str {
        SqliteProjection::name(self)
    }

    fn version(&self) -> u32 {
        SqliteProjection::version(self)
    }

    fn filter(&self) -> ReadFilter {
        SqliteProjection::filter(self)
    }

    async fn migrate(&self, tx: &Transaction<'_>) -> Result<(), Error> {
        tx.batch_execute(
            r#"CREATE TABLE daily_sales (
                 day TEXT COLLATE "C" PRIMARY KEY,
                 orders BIGINT NOT NULL,
                 revenue BIGINT NOT NULL
             );"#,
        )
        .await
    }

    async fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ApplyError> {
        let OrderEvent::Confirmed { total, .. } = decode::<OrderEvent>(event)? else {
            return Ok(());
        };
        let day = super::sales::utc_day(event.recorded_at);
        let (orders, revenue) = tx
            .query_opt(
                &tx.prepare_cached("SELECT orders, revenue FROM daily_sales WHERE day = $1")
                    .await?,
                &[&day],
            )
            .await?
            .map(|row| (unsigned(row.get(0)), Money(unsigned(row.get(1)))))
            .unwrap_or_default();
        // A day's revenue past the largest amount stays at it rather than wrapping.
        let revenue = revenue.checked_add(total).unwrap_or(Money::MAX);
        exec(
            tx,
            "INSERT INTO daily_sales (day, orders, revenue) VALUES ($1, $2, $3)
             ON CONFLICT (day) DO UPDATE SET orders = excluded.orders,
                                             revenue = excluded.revenue",
            &[&day, &sql(orders + 1), &sql(revenue.0)],
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl PostgresProjection for ProductSearch {
    fn name(&self) -> &'static str {
        SqliteProjection::name(self)
    }

    fn version(&self) -> u32 {
        SqliteProjection::version(self)
    }

    fn filter(&self) -> ReadFilter {
        SqliteProjection::filter(self)
    }

    async fn migrate(&self, tx: &Transaction<'_>) -> Result<(), Error> {
        tx.batch_execute(
            r#"CREATE TABLE search_products (
                 sku TEXT COLLATE "C" PRIMARY KEY,
                 name TEXT NOT NULL,
                 description TEXT NOT NULL,
                 price BIGINT NOT NULL,
                 document tsvector GENERATED ALWAYS AS (
                     setweight(to_tsvector('simple', name), 'A')
                     || setweight(to_tsvector('simple', description), 'B')
                 ) STORED
             );
             CREATE INDEX search_products_document ON search_products USING GIN (document);"#,
        )
        .await
    }

    async fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ApplyError> {
        match decode::<ProductEvent>(event)? {
            ProductEvent::Created {
                sku,
                name,
                description,
                price,
            } => {
                // A product is created once; a repeat changes nothing.
                exec(
                    tx,
                    "INSERT INTO search_products (sku, name, description, price)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (sku) DO NOTHING",
                    &[&sku, &name, &description, &sql(price.0)],
                )
                .await?;
            }
            ProductEvent::PriceChanged { sku, price, .. } => {
                exec(
                    tx,
                    "UPDATE search_products SET price = $2 WHERE sku = $1",
                    &[&sku, &sql(price.0)],
                )
                .await?;
            }
        }
        Ok(())
    }
}

/// A row's text column as an order status, or the error a query answers.
fn status_column(row: &Row, index: usize) -> Result<OrderStatus, String> {
    status_of(row.get(index)).map_err(|e| e.to_string())
}

/// The order `id`, if the model has it: the order and its lines in one statement.
pub(crate) async fn order(client: &Client, id: &str) -> Result<Option<OrderView>, QueryError> {
    let rows = client
        .query(
            "SELECT o.customer, o.status, o.total, o.cancel_reason,
                    l.sku, l.quantity, l.unit_price, l.line_total
             FROM orders o LEFT JOIN order_lines l ON l.order_id = o.order_id
             WHERE o.order_id = $1
             ORDER BY l.position",
            &[&id],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let reason: Option<String> = first.get(3);
    let lines = rows
        .iter()
        .filter_map(|row| {
            let sku: Option<String> = row.get(4);
            Some(OrderLineView {
                sku: sku?,
                quantity: u32::try_from(row.get::<_, i64>(5)).unwrap_or(u32::MAX),
                unit_price: Money(unsigned(row.get(6))),
                total: Money(unsigned(row.get(7))),
            })
        })
        .collect();
    Ok(Some(OrderView {
        id: id.to_owned(),
        customer: first.get(0),
        status: status_column(first, 1)?,
        lines,
        total: Money(unsigned(first.get(2))),
        cancel_reason: reason.and_then(|r| serde_json::from_str(&r).ok()),
    }))
}

/// The columns [`summary`] reads, before a listing's `WHERE`.
const SUMMARY: &str = "SELECT o.order_id, o.customer, o.status, o.total,
        (SELECT COUNT(*) FROM order_lines l WHERE l.order_id = o.order_id),
        o.created_position
 FROM orders o";

/// One row of a listing selected with [`SUMMARY`].
fn summary(row: &Row) -> Result<OrderSummary, QueryError> {
    Ok(OrderSummary {
        id: row.get(0),
        customer: row.get(1),
        status: status_column(row, 2)?,
        total: Money(unsigned(row.get(3))),
        lines: u32::try_from(row.get::<_, i64>(4)).unwrap_or(u32::MAX),
        created_position: unsigned(row.get(5)),
    })
}

/// At most `limit` orders of `customer` created after position `after`, oldest first.
pub(crate) async fn customer_orders(
    client: &Client,
    customer: &str,
    after: u64,
    limit: usize,
) -> Result<Vec<OrderSummary>, QueryError> {
    let rows = client
        .query(
            &format!(
                "{SUMMARY} WHERE o.customer = $1 AND o.created_position > $2
                 ORDER BY o.created_position LIMIT $3"
            ),
            &[&customer, &sql(after), &sql(limit as u64)],
        )
        .await?;
    rows.iter().map(summary).collect()
}

/// At most `limit` orders of any customer created before position `before` (none: from
/// the latest), newest first.
pub(crate) async fn orders(
    client: &Client,
    before: Option<u64>,
    limit: usize,
) -> Result<Vec<OrderSummary>, QueryError> {
    let before = before.map_or(i64::MAX, sql);
    let rows = client
        .query(
            &format!(
                "{SUMMARY} WHERE o.created_position < $1
                 ORDER BY o.created_position DESC LIMIT $2"
            ),
            &[&before, &sql(limit as u64)],
        )
        .await?;
    rows.iter().map(summary).collect()
}

const SELECT_PRODUCT: &str = "SELECT sku, name, description, price, received, reserved, committed
     FROM catalog WHERE name IS NOT NULL";

fn product_row(row: &Row) -> ProductView {
    let received = unsigned(row.get(4));
    let reserved = unsigned(row.get(5));
    let committed = unsigned(row.get(6));
    ProductView {
        sku: row.get(0),
        name: row.get(1),
        description: row.get(2),
        price: Money(unsigned(row.get(3))),
        available: received.saturating_sub(reserved).saturating_sub(committed),
        reserved,
        on_hand: received.saturating_sub(committed),
    }
}

/// The product `sku`, if the catalog has it.
pub(crate) async fn product(client: &Client, sku: &str) -> Result<Option<ProductView>, QueryError> {
    let row = client
        .query_opt(&format!("{SELECT_PRODUCT} AND sku = $1"), &[&sku])
        .await?;
    Ok(row.as_ref().map(product_row))
}

/// At most `limit` products whose sku sorts after `after`, by sku.
pub(crate) async fn products(
    client: &Client,
    after: &str,
    limit: usize,
) -> Result<Vec<ProductView>, QueryError> {
    let rows = client
        .query(
            &format!("{SELECT_PRODUCT} AND sku > $1 ORDER BY sku LIMIT $2"),
            &[&after, &sql(limit as u64)],
        )
        .await?;
    Ok(rows.iter().map(product_row).collect())
}

/// At most `limit` days with sales after the day `after`, oldest first.
pub(crate) async fn days(
    client: &Client,
    after: &str,
    limit: usize,
) -> Result<Vec<DaySales>, QueryError> {
    let rows = client
        .query(
            "SELECT day, orders, revenue FROM daily_sales WHERE day > $1 ORDER BY day LIMIT $2",
            &[&after, &sql(limit as u64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| DaySales {
            day: row.get(0),
            orders: unsigned(row.get(1)),
            revenue: Money(unsigned(row.get(2))),
        })
        .collect())
}

/// The products matching every word of `text`, best first (ties by sku), at most
/// `limit` of them after skipping the first `offset`.
pub(crate) async fn search(
    client: &Client,
    text: &str,
    offset: usize,
    limit: usize,
) -> Result<Vec<SearchHit>, QueryError> {
    let Some(query) = ts_query(text) else {
        return Ok(Vec::new());
    };
    // NOTE: normalization 1 divides the rank by 1 + the log of the document's length,
    // so a shorter text that matches ranks first, as BM25 ranks it on SQLite.
    let rows = client
        .query(
            &format!(
                "SELECT sku, name, description, price,
                        ts_rank('{RANK_WEIGHTS}', document, query, 1)::float8 AS rank
                 FROM search_products, to_tsquery('simple', $1) AS query
                 WHERE document @@ query
                 ORDER BY rank DESC, sku
                 LIMIT $2 OFFSET $3"
            ),
            &[&query, &sql(limit as u64), &sql(offset as u64)],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| SearchHit {
            sku: row.get(0),
            name: row.get(1),
            description: row.get(2),
            price: Money(unsigned(row.get(3))),
            score: row.get(4),
        })
        .collect())
}

/// Why a query failed: the database, or a stored value the model should never hold.
#[derive(Debug)]
pub(crate) enum QueryError {
    Postgres(Error),
    Invalid(String),
}

impl From<Error> for QueryError {
    fn from(err: Error) -> Self {
        Self::Postgres(err)
    }
}

impl From<String> for QueryError {
    fn from(message: String) -> Self {
        Self::Invalid(message)
    }
}
