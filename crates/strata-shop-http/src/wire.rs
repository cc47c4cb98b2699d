//! The shop's answers as they travel: one typed struct per shape, each described in the
//! OpenAPI document by the very type that is serialized, so the document cannot drift
//! from the answers. Conversions from strata-shop's views live here; no shop rule does.
//!
//! Every shape is closed (`additionalProperties: false`): the document lists every field
//! an answer carries.

use serde::Serialize;
use strata_domain::HistoryEntry;
use strata_shop::domain::{CancelReason, OrderStatus};
use strata_shop::read_models::{
    DaySales, OrderLineView, OrderSummary, OrderView, ProductView, SearchHit,
};
use strata_shop::{OrderAsOf, Page};
use utoipa::ToSchema;

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatusJson {
    /// Lines can be added and removed.
    Draft,
    /// Submitted; checkout is reserving stock and taking payment.
    Placed,
    /// Stock reserved and payment taken.
    Confirmed,
    /// Given up, by the customer or by checkout.
    Cancelled,
    /// Sent to the customer.
    Shipped,
}

impl From<OrderStatus> for OrderStatusJson {
    fn from(status: OrderStatus) -> Self {
        match status {
            OrderStatus::Draft => Self::Draft,
            OrderStatus::Placed => Self::Placed,
            OrderStatus::Confirmed => Self::Confirmed,
            OrderStatus::Cancelled => Self::Cancelled,
            OrderStatus::Shipped => Self::Shipped,
        }
    }
}

/// Why an order was cancelled.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CancelReasonJson {
    /// Someone asked for it.
    Requested,
    /// Checkout could not reserve a line.
    InsufficientStock {
        /// The line's sku.
        sku: String,
    },
    /// The payment provider declined the payment.
    PaymentDeclined {
        /// What the provider said.
        reason: String,
    },
}

impl From<CancelReason> for CancelReasonJson {
    fn from(reason: CancelReason) -> Self {
        match reason {
            CancelReason::Requested => Self::Requested,
            CancelReason::InsufficientStock { sku } => Self::InsufficientStock { sku },
            CancelReason::PaymentDeclined { reason } => Self::PaymentDeclined { reason },
        }
    }
}

/// A product with its stock.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductJson {
    /// The sku.
    pub sku: String,
    /// The name.
    pub name: String,
    /// The description.
    pub description: String,
    /// The unit price in minor units (cents).
    pub price: u64,
    /// Units a new order can still reserve: received − reserved − committed.
    pub available: u64,
    /// Units held for orders in checkout.
    pub reserved: u64,
    /// Units on the shelf: received − committed.
    pub on_hand: u64,
}

impl From<ProductView> for ProductJson {
    fn from(view: ProductView) -> Self {
        Self {
            sku: view.sku,
            name: view.name,
            description: view.description,
            price: view.price.0,
            available: view.available,
            reserved: view.reserved,
            on_hand: view.on_hand,
        }
    }
}

/// A product found by a search.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductHitJson {
    /// The sku.
    pub sku: String,
    /// The name.
    pub name: String,
    /// The description.
    pub description: String,
    /// The unit price in minor units (cents).
    pub price: u64,
    /// Relevance: higher is better.
    pub score: f64,
}

impl From<SearchHit> for ProductHitJson {
    fn from(hit: SearchHit) -> Self {
        Self {
            sku: hit.sku,
            name: hit.name,
            description: hit.description,
            price: hit.price.0,
            score: hit.score,
        }
    }
}

/// One product of a listing: with its stock from the catalog, or with its relevance
/// from a search (`q`).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum ProductListing {
    /// From the catalog.
    Product(ProductJson),
    /// From a search.
    Hit(ProductHitJson),
}

/// A page of products.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductsPage {
    /// The catalog by sku, or the search hits best first.
    pub products: Vec<ProductListing>,
    /// Pass it as `cursor` for the next page; `null` on the last one.
    pub next: Option<String>,
}

impl From<Page<ProductView>> for ProductsPage {
    fn from(page: Page<ProductView>) -> Self {
        Self {
            products: page
                .items
                .into_iter()
                .map(|p| ProductListing::Product(p.into()))
                .collect(),
            next: page.next,
        }
    }
}

impl From<Page<SearchHit>> for ProductsPage {
    fn from(page: Page<SearchHit>) -> Self {
        Self {
            products: page
                .items
                .into_iter()
                .map(|h| ProductListing::Hit(h.into()))
                .collect(),
            next: page.next,
        }
    }
}

/// One line of an order.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineJson {
    /// The product.
    pub sku: String,
    /// Units.
    pub quantity: u32,
    /// The price of one unit, in minor units.
    pub unit_price: u64,
    /// `quantity × unit_price`.
    pub total: u64,
}

impl From<OrderLineView> for OrderLineJson {
    fn from(line: OrderLineView) -> Self {
        Self {
            sku: line.sku,
            quantity: line.quantity,
            unit_price: line.unit_price.0,
            total: line.total.0,
        }
    }
}

/// An order, from the order summaries.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderJson {
    /// The order id.
    pub id: String,
    /// The customer.
    pub customer: String,
    /// Its status.
    pub status: OrderStatusJson,
    /// The lines, in the order they were added.
    pub lines: Vec<OrderLineJson>,
    /// The sum of the line totals, in minor units.
    pub total: u64,
    /// Why it was cancelled, if it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<CancelReasonJson>,
}

impl From<OrderView> for OrderJson {
    fn from(view: OrderView) -> Self {
        Self {
            id: view.id,
            customer: view.customer,
            status: view.status.into(),
            lines: view.lines.into_iter().map(Into::into).collect(),
            total: view.total.0,
            cancel_reason: view.cancel_reason.map(Into::into),
        }
    }
}

/// An order as it was at a point of the log (`as_of`), folded from its events.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderAsOfJson {
    /// The order id.
    pub id: String,
    /// Whether the order existed at that point; when not (it was created later),
    /// `customer` and `status` are null and there are no lines.
    pub existed: bool,
    /// The customer.
    pub customer: Option<String>,
    /// Its status then.
    pub status: Option<OrderStatusJson>,
    /// The lines then.
    pub lines: Vec<OrderLineJson>,
    /// The total then, in minor units.
    pub total: u64,
    /// Why it was cancelled, if it was by then.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cancel_reason: Option<CancelReasonJson>,
    /// The order stream's version it includes (0 before the order existed).
    pub version: u64,
    /// The position of the last event it includes (0 before the order existed).
    pub position: u64,
}

impl OrderAsOfJson {
    /// The answer for order `id` as `past` shows it.
    pub(crate) fn new(id: String, past: OrderAsOf) -> Self {
        let (version, position) = (past.version.0, past.position.0);
        match past.order {
            Some(order) => Self {
                id,
                existed: true,
                customer: Some(order.customer),
                status: Some(order.status.into()),
                lines: order.lines.into_iter().map(Into::into).collect(),
                total: order.total.0,
                cancel_reason: order.cancel_reason.map(Into::into),
                version,
                position,
            },
            None => Self {
                id,
                existed: false,
                customer: None,
                status: None,
                lines: Vec::new(),
                total: 0,
                cancel_reason: None,
                version,
                position,
            },
        }
    }
}

/// `GET /shop/orders/{id}`: the order now, or as it was with `as_of`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum OrderAnswer {
    /// The order now, from its read model.
    Now(OrderJson),
    /// The order as of a position or an instant.
    AsOf(OrderAsOfJson),
}

/// One order in a listing.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderSummaryJson {
    /// The order id.
    pub id: String,
    /// The customer.
    pub customer: String,
    /// Its status.
    pub status: OrderStatusJson,
    /// How many lines it has.
    pub lines: u32,
    /// The sum of the line totals, in minor units.
    pub total: u64,
}

impl From<OrderSummary> for OrderSummaryJson {
    fn from(summary: OrderSummary) -> Self {
        Self {
            id: summary.id,
            customer: summary.customer,
            status: summary.status.into(),
            lines: summary.lines,
            total: summary.total.0,
        }
    }
}

/// A page of orders: a customer's oldest first, or every order newest first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrdersPage {
    /// The orders.
    pub orders: Vec<OrderSummaryJson>,
    /// Pass it as `cursor` for the next page; `null` on the last one.
    pub next: Option<String>,
}

impl From<Page<OrderSummary>> for OrdersPage {
    fn from(page: Page<OrderSummary>) -> Self {
        Self {
            orders: page.items.into_iter().map(Into::into).collect(),
            next: page.next,
        }
    }
}

/// The sales of one UTC day.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DaySalesJson {
    /// The day, `YYYY-MM-DD`.
    pub day: String,
    /// Orders confirmed that day.
    pub orders: u64,
    /// Their revenue, in minor units.
    pub revenue: u64,
}

impl From<DaySales> for DaySalesJson {
    fn from(day: DaySales) -> Self {
        Self {
            day: day.day,
            orders: day.orders,
            revenue: day.revenue.0,
        }
    }
}

/// A page of daily sales, oldest day first.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DaySalesPage {
    /// The days with sales.
    pub days: Vec<DaySalesJson>,
    /// Pass it as `cursor` for the next page; `null` on the last one.
    pub next: Option<String>,
}

impl From<Page<DaySales>> for DaySalesPage {
    fn from(page: Page<DaySales>) -> Self {
        Self {
            days: page.items.into_iter().map(Into::into).collect(),
            next: page.next,
        }
    }
}

/// One event of an order's history: what happened, when, who asked and why.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HistoryEntryJson {
    /// Its global position.
    pub position: u64,
    /// Its version in the order's stream.
    pub version: u64,
    /// The event's id.
    pub id: String,
    /// The event's type.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When it was recorded (RFC 3339).
    pub recorded_at: String,
    /// Who asked.
    pub actor: Option<String>,
    /// The command that caused it.
    pub command_id: Option<String>,
    /// What caused the command (an event id for checkout's commands).
    pub causation_id: Option<String>,
    /// The request it belongs to.
    pub correlation_id: Option<String>,
    /// The event's payload.
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
}

impl From<HistoryEntry> for HistoryEntryJson {
    fn from(entry: HistoryEntry) -> Self {
        Self {
            position: entry.position,
            version: entry.version,
            id: entry.id,
            event_type: entry.event_type,
            recorded_at: entry.recorded_at.to_string(),
            actor: entry.actor,
            command_id: entry.command_id,
            causation_id: entry.causation_id,
            correlation_id: entry.correlation_id,
            data: entry.data,
        }
    }
}

/// Every event of an order.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderHistory {
    /// Oldest first.
    pub events: Vec<HistoryEntryJson>,
}
