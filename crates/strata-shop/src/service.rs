//! [`Shop`]: the service the server calls. Commands go through the command handler and
//! answer a [`CommandOutcome`] whose position is the consistency token; queries read the
//! read models (SQLite, or PostgreSQL with the `postgres` feature, through the one seam
//! `reads`), first waiting (bounded) until they have caught up with a token.
//! History and time travel read the event log itself.
//!
//! It must not know HTTP: errors are a typed [`ShopError`] the edge maps to statuses.

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_core::{CoreError, Position, Timestamp, Version};
use strata_domain::{
    Aggregate, CommandContext, CommandError, CommandHandler, CommandOutcome, DomainError, History,
    Loaded,
};
use strata_projection::{ProcessManagers, ProjectionError, Projections};
use strata_store::StoreError;

use crate::cache::{Query, ShopCache};
use crate::domain::{
    CancelReason, Inventory, InventoryCommand, InventoryError, Money, Order, OrderCommand,
    OrderError, OrderStatus, Payment, Product, ProductCommand, ProductError,
};
use crate::process::{CheckoutProcess, CheckoutSender};
use crate::provider::PaymentProvider;
use crate::read_models::{
    CATALOG, Catalog, DAILY_SALES, DailySales, DaySales, ORDERS, OrderLineView, OrderSummaries,
    OrderSummary, OrderView, PRODUCT_SEARCH, ProductSearch, ProductView, SearchHit,
};
use crate::reads::{Reads, SqliteReads};

/// The most items one page of a listing (catalog, search, a customer's orders, daily
/// sales) holds: a larger `limit` is cut to it, so no query reads a whole model.
pub const PAGE_LIMIT: usize = 1000;

/// Which page of a listing to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Where to go on from: the `next` of the previous page (opaque); `None` for the
    /// first page.
    pub cursor: Option<String>,
    /// How many items at most, 1 to [`PAGE_LIMIT`] (0 is read as 1, more as
    /// [`PAGE_LIMIT`]).
    pub limit: usize,
}

impl PageRequest {
    /// The first page of at most `limit` items.
    pub fn first(limit: usize) -> Self {
        Self {
            cursor: None,
            limit,
        }
    }

    fn limit(&self) -> usize {
        self.limit.clamp(1, PAGE_LIMIT)
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in the listing's order.
    pub items: Vec<T>,
    /// The cursor of the next page; `None` on the last one.
    pub next: Option<String>,
}

impl<T> Page<T> {
    /// A page from `rows` read with a limit of `limit + 1`: the extra row only says
    /// that another page follows, whose cursor `cursor` makes from the last item kept.
    fn of(mut rows: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next = if more { rows.last().map(cursor) } else { None };
        Self { items: rows, next }
    }
}

/// A cursor over skus: the sku's bytes in hex, so that it travels in a URL untouched.
fn sku_cursor(sku: &str) -> String {
    sku.bytes().map(|b| format!("{b:02x}")).collect()
}

fn sku_of_cursor(cursor: &str) -> Option<String> {
    if !cursor.len().is_multiple_of(2) {
        return None;
    }
    let bytes = (0..cursor.len())
        .step_by(2)
        .map(|i| {
            cursor
                .get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// A day cursor is the day itself, `YYYY-MM-DD`.
fn is_day(text: &str) -> bool {
    text.len() == 10
        && text.bytes().enumerate().all(|(i, b)| match i {
            4 | 7 => b == b'-',
            _ => b.is_ascii_digit(),
        })
}

/// Why a shop operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ShopError {
    /// A rule of the domain refused the command; nothing was written. `code` is stable
    /// (`insufficient_stock`, `order_not_paid`, …): show it to the caller (HTTP 422).
    #[error("{message}")]
    Refused {
        /// The broken rule.
        code: &'static str,
        /// A sentence for people.
        message: String,
    },
    /// The order, product or payment does not exist (HTTP 404).
    #[error("no {what} {id:?}")]
    NotFound {
        /// What was looked for: `order`, `product`, `payment`.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The id cannot name a stream (HTTP 400): fix the request.
    #[error("invalid id {id:?}: {reason}")]
    InvalidId {
        /// The id given.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Other writers kept changing the same aggregate; every attempt conflicted (HTTP
    /// 409). Retrying with the same command id is safe.
    #[error("{stream} kept changing: {attempts} attempts conflicted")]
    Conflict {
        /// The aggregate's stream.
        stream: String,
        /// How many times the command was decided.
        attempts: u32,
    },
    /// The command id was already used for another command: another aggregate, or the
    /// same one with another request (HTTP 422). Nothing was written; send this command
    /// under a new id.
    #[error("{0}")]
    CommandIdReused(String),
    /// A page cursor that no listing of this kind gave out (HTTP 400): start from the
    /// first page, or pass back the `next` of the previous page as it was.
    #[error("invalid page cursor {cursor:?}")]
    InvalidCursor {
        /// The cursor given.
        cursor: String,
    },
    /// The read model did not catch up with the consistency token in time (HTTP 503).
    /// Retry later, or read without `after` and accept older data.
    #[error("read model {read_model} did not reach position {position} in time (at {checkpoint})")]
    NotCaughtUp {
        /// The read model waited on.
        read_model: String,
        /// The token waited for.
        position: Position,
        /// Where the read model was when the wait ended.
        checkpoint: Position,
    },
    /// The event store failed (HTTP 500/503).
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A read model failed: stopped for good (`ProjectionError::Stopped`, HTTP 503 naming
    /// it: waiting will not help until an operator acts), or its database failed (HTTP
    /// 500).
    #[error(transparent)]
    ReadModel(ProjectionError),
    /// Anything else that is no fault of the caller: a stored event that does not decode,
    /// a setup step that failed (HTTP 500).
    #[error("{0}")]
    Internal(String),
}

impl ShopError {
    /// A stable snake_case code for the edge: the domain's code for a refusal, else the
    /// kind of failure.
    pub fn code(&self) -> &'static str {
        match self {
            ShopError::Refused { code, .. } => code,
            ShopError::NotFound { .. } => "not_found",
            ShopError::InvalidId { .. } => "invalid_id",
            ShopError::InvalidCursor { .. } => "invalid_cursor",
            ShopError::Conflict { .. } => "conflict",
            ShopError::CommandIdReused(_) => "command_id_reused",
            ShopError::NotCaughtUp { .. } => "consistency_timeout",
            ShopError::Store(_) => "store_error",
            ShopError::ReadModel(ProjectionError::Stopped { .. }) => "read_model_stopped",
            ShopError::ReadModel(_) => "read_model_error",
            ShopError::Internal(_) => "internal",
        }
    }
}

impl From<ProjectionError> for ShopError {
    fn from(err: ProjectionError) -> Self {
        match err {
            ProjectionError::Timeout {
                name,
                position,
                checkpoint,
                ..
            } => ShopError::NotCaughtUp {
                read_model: name,
                position,
                checkpoint,
            },
            other => ShopError::ReadModel(other),
        }
    }
}

/// A refusal that may mean "the aggregate does not exist".
trait Refusal: DomainError {
    /// What the aggregate is called in a not-found answer.
    const WHAT: &'static str;
    /// Whether the refusal says the aggregate does not exist.
    fn is_not_found(&self) -> bool;
}

impl Refusal for ProductError {
    const WHAT: &'static str = "product";
    fn is_not_found(&self) -> bool {
        matches!(self, ProductError::NotFound)
    }
}

impl Refusal for OrderError {
    const WHAT: &'static str = "order";
    fn is_not_found(&self) -> bool {
        matches!(self, OrderError::NotFound)
    }
}

impl Refusal for InventoryError {
    const WHAT: &'static str = "inventory";
    fn is_not_found(&self) -> bool {
        false
    }
}

fn invalid_id(id: &str, err: &CoreError) -> ShopError {
    ShopError::InvalidId {
        id: id.to_owned(),
        reason: err.to_string(),
    }
}

fn command_error<E: Refusal>(id: &str, err: CommandError<E>) -> ShopError {
    match err {
        CommandError::Domain(refusal) if refusal.is_not_found() => ShopError::NotFound {
            what: E::WHAT,
            id: id.to_owned(),
        },
        CommandError::Domain(refusal) => ShopError::Refused {
            code: refusal.code(),
            message: refusal.to_string(),
        },
        CommandError::Conflict { stream, attempts } => ShopError::Conflict {
            stream: stream.to_string(),
            attempts,
        },
        CommandError::InvalidId(err) => invalid_id(id, &err),
        err @ CommandError::CommandIdReused { .. } => ShopError::CommandIdReused(err.to_string()),
        CommandError::Store(err) => ShopError::Store(err),
        other => ShopError::Internal(other.to_string()),
    }
}

/// Which past state of an aggregate to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AsOf {
    /// Every event of the aggregate at or below this global position.
    Position(Position),
    /// Every event recorded at or before this instant.
    Time(Timestamp),
}

/// An order as it was at some point of the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct OrderAsOf {
    /// The order as it was; `None` when it did not exist yet at that point (it was
    /// created later).
    pub order: Option<OrderView>,
    /// The order stream's version it includes (0 before the order existed).
    pub version: Version,
    /// The position of the last event it includes (0 before the order existed).
    pub position: Position,
}

fn order_view(id: &str, order: &Order) -> Option<OrderView> {
    Some(OrderView {
        id: id.to_owned(),
        customer: order.customer.clone(),
        status: order.status?,
        lines: order
            .lines
            .iter()
            .map(|l| OrderLineView {
                sku: l.sku.clone(),
                quantity: l.quantity,
                unit_price: l.unit_price,
                total: l.total().unwrap_or(Money::MAX),
            })
            .collect(),
        total: order.total,
        cancel_reason: order.cancel_reason.clone(),
    })
}

/// The shop: commands, queries, history and time travel over one event store.
///
/// Cloning is cheap and gives another handle to the same shop.
#[derive(Clone)]
pub struct Shop {
    handler: Arc<CommandHandler>,
    reads: Arc<dyn Reads>,
    cache: ShopCache,
}

impl Shop {
    /// The stream categories the shop's aggregates write: their events come only through
    /// its commands, which keep its rules (an edge refuses other writes into them).
    pub const CATEGORIES: [&'static str; 4] = [
        Product::CATEGORY,
        Inventory::CATEGORY,
        Order::CATEGORY,
        Payment::CATEGORY,
    ];

    /// Builds the shop over `handler`, registering its read models with `projections`
    /// and its checkout process manager with `processes` (checkout asks `provider` to
    /// authorize payments). Starting the hosts is the caller's job, as for any module.
    pub fn new(
        handler: Arc<CommandHandler>,
        projections: Projections,
        processes: &ProcessManagers,
        provider: Arc<dyn PaymentProvider>,
    ) -> Result<Self, ShopError> {
        projections.register(Arc::new(OrderSummaries))?;
        projections.register(Arc::new(Catalog))?;
        projections.register(Arc::new(DailySales))?;
        projections.register(Arc::new(ProductSearch))?;
        processes.register(
            Arc::new(CheckoutProcess),
            Arc::new(CheckoutSender::new(handler.clone(), provider)),
        )?;
        Ok(Self {
            handler,
            reads: Arc::new(SqliteReads(projections)),
            cache: ShopCache::default(),
        })
    }

    /// Like [`Shop::new`], with the read models in PostgreSQL: registers them with
    /// `projections` (creating their schemas). Every query answers what it answers on
    /// SQLite; only a search hit's `score` is on PostgreSQL's scale (`ts_rank`).
    #[cfg(feature = "postgres")]
    pub async fn on_postgres(
        handler: Arc<CommandHandler>,
        projections: strata_projection::PostgresProjections,
        processes: &ProcessManagers,
        provider: Arc<dyn PaymentProvider>,
    ) -> Result<Self, ShopError> {
        projections.register(Arc::new(OrderSummaries)).await?;
        projections.register(Arc::new(Catalog)).await?;
        projections.register(Arc::new(DailySales)).await?;
        projections.register(Arc::new(ProductSearch)).await?;
        processes.register(
            Arc::new(CheckoutProcess),
            Arc::new(CheckoutSender::new(handler.clone(), provider)),
        )?;
        Ok(Self {
            handler,
            reads: Arc::new(crate::reads::PostgresReads(projections)),
            cache: ShopCache::default(),
        })
    }

    /// Registers the shop's Redis read model (the catalog with available stock) and a
    /// query cache with `host`, and answers the hot queries (a product, a catalog page,
    /// a page of a product search, an order) through that cache from now on: an answer is served from Redis while
    /// no event of what it was computed from came later, and only to a caller whose
    /// `after` it has reached. Starting the host is the caller's job.
    #[cfg(feature = "redis")]
    pub fn use_redis(
        mut self,
        host: &strata_projection::RedisProjections,
    ) -> Result<Self, ShopError> {
        host.register(Arc::new(crate::read_models::RedisCatalog))?;
        let filter = strata_store::ReadFilter::all()
            .category(Product::CATEGORY)
            .category(Inventory::CATEGORY)
            .category(Order::CATEGORY);
        let cache = strata_projection::QueryCache::register(host, filter)?;
        self.cache = ShopCache::new(cache);
        Ok(self)
    }

    /// How the query cache has answered so far, if the shop has one.
    #[cfg(feature = "redis")]
    pub fn cache_stats(&self) -> Option<strata_projection::CacheStats> {
        self.cache.stats()
    }

    /// The command handler the shop writes through.
    pub fn handler(&self) -> &Arc<CommandHandler> {
        &self.handler
    }

    async fn handle<A: Aggregate>(
        &self,
        id: &str,
        command: A::Command,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ShopError>
    where
        A::Error: Refusal,
    {
        self.handler
            .handle::<A>(id, &command, context)
            .await
            .map_err(|err| command_error(id, err))
    }

    /// The current state of a product, or a refusal naming it missing (for commands that
    /// refer to a product: it is the command that is wrong, not the address).
    async fn product_details(&self, sku: &str) -> Result<(String, Money), ShopError> {
        let loaded: Loaded<Product> = self
            .handler
            .load::<Product>(sku)
            .await
            .map_err(|err| command_error(sku, err))?;
        match loaded.state.details {
            Some(details) => Ok((details.sku, details.price)),
            None => Err(ShopError::Refused {
                code: "product_not_found",
                message: format!("no product {sku:?}"),
            }),
        }
    }

    // ----- commands ------------------------------------------------------------------

    /// Puts a product in the catalog. Refusals: `product_exists`, `invalid_sku`,
    /// `invalid_name`, `description_too_long`, `invalid_price`.
    pub async fn create_product(
        &self,
        sku: &str,
        name: &str,
        description: &str,
        price: Money,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ShopError> {
        let command = ProductCommand::Create {
            sku: sku.to_owned(),
            name: name.to_owned(),
            description: description.to_owned(),
            price,
        };
        self.handle::<Product>(sku, command, context).await
    }

    /// Changes a product's price (lines already on orders keep theirs). Refusals:
    /// `invalid_price`; not found if there is no such product.
    pub async fn change_price(
        &self,
        sku: &str,
        price: Money,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ShopError> {
        self.handle::<Product>(sku, ProductCommand::ChangePrice { price }, context)
            .await
    }

    /// Adds stock of an existing product. Refusals: `product_not_found`,
    /// `invalid_quantity`, `stock_overflow`.
    pub async fn receive_stock(
        &self,
        sku: &str,
        quantity: u64,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ShopError> {
        let (sku, _) = self.product_details(sku).await?;
        let command = InventoryCommand::Receive {
            sku: sku.clone(),
            quantity,
        };
        self.handle::<Inventory>(&sku, command, context).await
    }

    /// Opens a draft order. Refusals: `order_exists`, `invalid_order_id`,
    /// `invalid_customer`.
    pub async fn create_order(
        &self,
        id: &str,
        customer: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ShopError> {
        let command = OrderCommand::Create {
            order_id: id.to_owned(),
            customer: customer.to_owned(),
        };
        self.handle::<Order>(id, command, context).await
    }

    /// Adds a line at the product's current price. Refusals: `product_not_found`,
    /// `order_not_draft`, `invalid_quantity`, `line_exists`, `too_many_lines`,
    /// `amount_overflow`; not found if there is no such order.
    pub async fn add_line(
        &self,
        id: &str,
        sku: &str,
        quantity: u32,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ShopError> {
        let (sku, unit_price) = self.product_details(sku).await?;
        let command = OrderCommand::AddLine {
            sku,
            quantity,
            unit_price,
        };
        self.handle::<Order>(id, command, context).await
    }

    /// Removes a line. Refusals: `order_not_draft`, `line_not_found`.
    pub async fn remove_line(
        &self,
        id: &str,
        sku: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ShopError> {
        let command = OrderCommand::RemoveLine {
            sku: sku.to_owned(),
        };
        self.handle::<Order>(id, command, context).await
    }

    /// Places the order: checkout takes it from there (reserve, pay, confirm — or
    /// cancel). Refusals: `order_empty`, `order_not_draft`, `order_cancelled`.
    pub async fn place(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ShopError> {
        self.handle::<Order>(id, OrderCommand::Place, context).await
    }

    /// Cancels a draft or placed order; checkout gives back whatever it holds.
    /// Refusals: `order_confirmed`, `order_shipped`.
    pub async fn cancel(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ShopError> {
        let command = OrderCommand::Cancel {
            reason: CancelReason::Requested,
        };
        self.handle::<Order>(id, command, context).await
    }

    /// Ships a confirmed (paid) order. Refusals: `order_not_paid`, `order_cancelled`.
    pub async fn ship(
        &self,
        id: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, ShopError> {
        self.handle::<Order>(id, OrderCommand::Ship, context).await
    }

    // ----- queries -------------------------------------------------------------------

    /// Waits until `read_model` has applied everything up to `after`, if given.
    async fn caught_up(
        &self,
        read_model: &str,
        after: Option<Position>,
        timeout: Duration,
    ) -> Result<(), ShopError> {
        if let Some(position) = after {
            self.reads.wait_for(read_model, position, timeout).await?;
        }
        Ok(())
    }

    /// The order `id`: customer, status, lines, total. `after` (a command's position)
    /// waits up to `timeout` for the read model to include it.
    pub async fn order(
        &self,
        id: &str,
        after: Option<Position>,
        timeout: Duration,
    ) -> Result<OrderView, ShopError> {
        let query = Query::Order(id);
        if let Some(view) = self.cache.get(query, after).await {
            return Ok(view);
        }
        self.caught_up(ORDERS, after, timeout).await?;
        let position = self.read_position(ORDERS);
        let view = self
            .reads
            .order(id.to_owned())
            .await?
            .ok_or_else(|| ShopError::NotFound {
                what: "order",
                id: id.to_owned(),
            })?;
        self.cache.put(query, position, &view).await;
        Ok(view)
    }

    /// The checkpoint of `read_model` before a query, when answers are cached: the
    /// position the answer is at least as fresh as.
    fn read_position(&self, read_model: &str) -> Position {
        if !self.cache.is_on() {
            return Position::ZERO;
        }
        self.reads.checkpoint(read_model)
    }

    /// The order `id` once checkout has settled it (its status is no longer `placed`:
    /// confirmed, cancelled, or shipped), waiting up to `timeout` in all; when the time
    /// runs out first, the order as it is then. `after` is waited for first, like on
    /// [`Shop::order`], and a read model that cannot get there is an error.
    pub async fn settled_order(
        &self,
        id: &str,
        after: Option<Position>,
        timeout: Duration,
    ) -> Result<OrderView, ShopError> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.caught_up(ORDERS, after, timeout).await?;
        loop {
            // The checkpoint is taken before the order is read, so the order read is at
            // least that fresh: if it is still placed, whatever settles it comes after
            // `seen`, and waiting for the next position cannot step over it.
            let seen = self.reads.checkpoint(ORDERS);
            // NOTE: `after` = `seen`, so that a cached answer older than what the read
            // model was seen at is not taken for the order as it is.
            let view = self.order(id, Some(seen), timeout).await?;
            if view.status != OrderStatus::Placed {
                return Ok(view);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return Ok(view);
            }
            match self
                .reads
                .wait_for(ORDERS, Position(seen.0.saturating_add(1)), left)
                .await
            {
                Ok(()) => {}
                Err(ShopError::NotCaughtUp { .. }) => return Ok(view),
                Err(err) => return Err(err),
            }
        }
    }

    /// A page of the orders of `customer`, oldest first (empty if none).
    pub async fn customer_orders(
        &self,
        customer: &str,
        page: &PageRequest,
        after: Option<Position>,
        timeout: Duration,
    ) -> Result<Page<OrderSummary>, ShopError> {
        let from = match &page.cursor {
            None => 0,
            Some(cursor) => cursor
                .parse::<u64>()
                .map_err(|_| ShopError::InvalidCursor {
                    cursor: cursor.clone(),
                })?,
        };
        self.caught_up(ORDERS, after, timeout).await?;
        let limit = page.limit();
        let rows = self
            .reads
            .customer_orders(customer.to_owned(), from, limit + 1)
            .await?;
        Ok(Page::of(rows, limit, |o| o.created_position.to_string()))
    }

    /// A page of every order, newest first; the cursor is the creation position of the
    /// page's last order.
    pub async fn orders(
        &self,
        page: &PageRequest,
        after: Option<Position>,
        timeout: Duration,
    ) -> Result<Page<OrderSummary>, ShopError> {
        let before = match &page.cursor {
            None => None,
            Some(cursor) => Some(
                cursor
                    .parse::<u64>()
                    .map_err(|_| ShopError::InvalidCursor {
                        cursor: cursor.clone(),
                    })?,
            ),
        };
        self.caught_up(ORDERS, after, timeout).await?;
        let limit = page.limit();
        let rows = self.reads.orders(before, limit + 1).await?;
        Ok(Page::of(rows, limit, |o| o.created_position.to_string()))
    }

    /// The product `sku` with its available stock.
    pub async fn product(
        &self,
        sku: &str,
        after: Option<Position>,
        timeout: Duration,
    ) -> Result<ProductView, ShopError> {
        let query = Query::Product(sku);
        if let Some(view) = self.cache.get(query, after).await {
            return Ok(view);
        }
        self.caught_up(CATALOG, after, timeout).await?;
        let position = self.read_position(CATALOG);
        let view =
            self.reads
                .product(sku.to_owned())
                .await?
                .ok_or_else(|| ShopError::NotFound {
                    what: "product",
                    id: sku.to_owned(),
                })?;
        self.cache.put(query, position, &view).await;
        Ok(view)
    }

    /// A page of the catalog: products with their available stock, by sku.
    pub async fn products(
        &self,
        page: &PageRequest,
        after: Option<Position>,
        timeout: Duration,
    ) -> Result<Page<ProductView>, ShopError> {
        let from = match &page.cursor {
            None => String::new(),
            Some(cursor) => sku_of_cursor(cursor).ok_or_else(|| ShopError::InvalidCursor {
                cursor: cursor.clone(),
            })?,
        };
        let limit = page.limit();
        let query = Query::Catalog(page.cursor.as_deref().unwrap_or(""), limit);
        if let Some((items, next)) = self.cache.get(query, after).await {
            return Ok(Page { items, next });
        }
        self.caught_up(CATALOG, after, timeout).await?;
        let position = self.read_position(CATALOG);
        let rows = self.reads.products(from, limit + 1).await?;
        let page = Page::of(rows, limit, |p| sku_cursor(&p.sku));
        self.cache
            .put(query, position, &(&page.items, &page.next))
            .await;
        Ok(page)
    }

    /// A page of the products whose name or description holds every word of `q` (as
    /// prefixes), best first.
    pub async fn search_products(
        &self,
        q: &str,
        page: &PageRequest,
        after: Option<Position>,
        timeout: Duration,
    ) -> Result<Page<SearchHit>, ShopError> {
        // The ranking has no key to go on from: the cursor counts the hits already given.
        let offset = match &page.cursor {
            None => 0,
            Some(cursor) => cursor
                .parse::<usize>()
                .map_err(|_| ShopError::InvalidCursor {
                    cursor: cursor.clone(),
                })?,
        };
        let limit = page.limit();
        let query = Query::Search(q, offset, limit);
        if let Some((items, next)) = self.cache.get(query, after).await {
            return Ok(Page { items, next });
        }
        self.caught_up(PRODUCT_SEARCH, after, timeout).await?;
        let position = self.read_position(PRODUCT_SEARCH);
        let rows = self.reads.search(q.to_owned(), offset, limit + 1).await?;
        let next = (offset + limit).to_string();
        let page = Page::of(rows, limit, |_| next.clone());
        self.cache
            .put(query, position, &(&page.items, &page.next))
            .await;
        Ok(page)
    }

    /// A page of the orders confirmed and revenue per UTC day, oldest first.
    pub async fn daily_sales(
        &self,
        page: &PageRequest,
        after: Option<Position>,
        timeout: Duration,
    ) -> Result<Page<DaySales>, ShopError> {
        let from = match &page.cursor {
            None => String::new(),
            Some(cursor) if is_day(cursor) => cursor.clone(),
            Some(cursor) => {
                return Err(ShopError::InvalidCursor {
                    cursor: cursor.clone(),
                });
            }
        };
        self.caught_up(DAILY_SALES, after, timeout).await?;
        let limit = page.limit();
        let rows = self.reads.days(from, limit + 1).await?;
        Ok(Page::of(rows, limit, |d| d.day.clone()))
    }

    /// Every event of order `id`, with who asked, when, and why (command, causation and
    /// correlation ids).
    pub async fn order_history(&self, id: &str) -> Result<History, ShopError> {
        let stream = CommandHandler::stream_of::<Order>(id).map_err(|err| invalid_id(id, &err))?;
        let history = self.handler.history(&stream).await?;
        if history.is_empty() {
            return Err(ShopError::NotFound {
                what: "order",
                id: id.to_owned(),
            });
        }
        Ok(history)
    }

    /// Order `id` as it was at a position or an instant, folded from the event log.
    ///
    /// An order that exists now but did not yet at that point answers with no order
    /// (`order: None`): that is what it was, not a missing resource. An order that never
    /// existed is not found.
    pub async fn order_as_of(&self, id: &str, at: AsOf) -> Result<OrderAsOf, ShopError> {
        let loaded = match at {
            AsOf::Position(position) => self.handler.load_at_position::<Order>(id, position).await,
            AsOf::Time(time) => self.handler.load_at_time::<Order>(id, time).await,
        }
        .map_err(|err| command_error(id, err))?;
        let order = order_view(id, &loaded.state);
        if order.is_none() {
            // Not created at that point: created since, or never.
            self.order_status(id).await?;
        }
        Ok(OrderAsOf {
            order,
            version: loaded.version,
            position: loaded.position,
        })
    }

    /// The current status of order `id`, folded from the event log (no read model).
    pub async fn order_status(&self, id: &str) -> Result<OrderStatus, ShopError> {
        let loaded = self
            .handler
            .load::<Order>(id)
            .await
            .map_err(|err| command_error(id, err))?;
        loaded.state.status.ok_or_else(|| ShopError::NotFound {
            what: "order",
            id: id.to_owned(),
        })
    }
}
