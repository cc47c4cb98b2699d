//! The order: a customer's basket of lines, placed, then confirmed (paid) or cancelled,
//! then shipped. Pure: no I/O, no clock.
//!
//! ```text
//!  create ─► draft ──place──► placed ──confirm──► confirmed ──ship──► shipped
//!            │ add/remove      │                   (paid)
//!            │ lines           │
//!            └──cancel──► cancelled ◄──cancel──────┘
//! ```

use serde::{Deserialize, Serialize};
use strata_domain::{Aggregate, DomainError, TaggedEvent};

use super::{MAX_LINES, MAX_NAME_CHARS, Money};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Lines can be added and removed.
    Draft,
    /// Submitted; checkout is reserving stock and taking payment.
    Placed,
    /// Stock reserved and payment authorized: the order is paid for.
    Confirmed,
    /// Given up, by the customer or by checkout.
    Cancelled,
    /// Sent to the customer.
    Shipped,
}

impl OrderStatus {
    /// The status as its snake_case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Draft => "draft",
            OrderStatus::Placed => "placed",
            OrderStatus::Confirmed => "confirmed",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Shipped => "shipped",
        }
    }
}

/// One line of an order: a sku, how many, at what unit price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The product.
    pub sku: String,
    /// Units, above zero.
    pub quantity: u32,
    /// The price of one unit when the line was added.
    pub unit_price: Money,
}

impl OrderLine {
    /// `quantity × unit_price`, or `None` past [`Money::MAX`].
    pub fn total(&self) -> Option<Money> {
        self.unit_price.checked_mul(self.quantity)
    }
}

/// Why an order was cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CancelReason {
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

/// An order, stream `order-{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The order id, once created.
    pub id: Option<String>,
    /// The customer.
    pub customer: String,
    /// The status (`None`: not created).
    pub status: Option<OrderStatus>,
    /// The lines, one per sku, in the order they were added.
    pub lines: Vec<OrderLine>,
    /// The sum of the line totals.
    pub total: Money,
    /// Why it was cancelled, if it was.
    pub cancel_reason: Option<CancelReason>,
}

/// What can be asked of an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderCommand {
    /// Opens a draft order.
    Create {
        /// The order id (also the aggregate id).
        order_id: String,
        /// The customer: 1 to [`MAX_NAME_CHARS`] characters, not blank.
        customer: String,
    },
    /// Adds a line for a sku not yet on the order.
    AddLine {
        /// The product.
        sku: String,
        /// Units, above zero.
        quantity: u32,
        /// The unit price (the product's price, looked up by the caller).
        unit_price: Money,
    },
    /// Removes the line of a sku.
    RemoveLine {
        /// The product.
        sku: String,
    },
    /// Submits the order to checkout.
    Place,
    /// Marks a placed order paid for (checkout does this).
    Confirm,
    /// Gives the order up.
    Cancel {
        /// Why.
        reason: CancelReason,
    },
    /// Sends a confirmed order.
    Ship,
}

/// What happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum OrderEvent {
    /// A draft order was opened.
    #[serde(rename = "OrderCreated")]
    Created {
        /// The order.
        order_id: String,
        /// The customer.
        customer: String,
    },
    /// A line was added.
    #[serde(rename = "OrderLineAdded")]
    LineAdded {
        /// The order.
        order_id: String,
        /// The line.
        line: OrderLine,
    },
    /// A line was removed.
    #[serde(rename = "OrderLineRemoved")]
    LineRemoved {
        /// The order.
        order_id: String,
        /// The line's sku.
        sku: String,
    },
    /// The order was submitted; it carries everything checkout needs.
    #[serde(rename = "OrderPlaced")]
    Placed {
        /// The order.
        order_id: String,
        /// The customer.
        customer: String,
        /// The lines.
        lines: Vec<OrderLine>,
        /// The total.
        total: Money,
    },
    /// The order was paid for.
    #[serde(rename = "OrderConfirmed")]
    Confirmed {
        /// The order.
        order_id: String,
        /// The customer.
        customer: String,
        /// The total.
        total: Money,
    },
    /// The order was given up.
    #[serde(rename = "OrderCancelled")]
    Cancelled {
        /// The order.
        order_id: String,
        /// Why.
        reason: CancelReason,
    },
    /// The order was sent.
    #[serde(rename = "OrderShipped")]
    Shipped {
        /// The order.
        order_id: String,
    },
}

impl TaggedEvent for OrderEvent {}

/// Why an order command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OrderError {
    /// The order already exists.
    #[error("order {0} already exists")]
    AlreadyExists(String),
    /// There is no such order.
    #[error("no such order")]
    NotFound,
    /// The order id is empty.
    #[error("an order id must not be empty")]
    InvalidOrderId,
    /// The customer is blank or too long.
    #[error("a customer must have 1 to {MAX_NAME_CHARS} characters and not be blank")]
    InvalidCustomer,
    /// The sku is empty.
    #[error("a sku must not be empty")]
    InvalidSku,
    /// A quantity of zero.
    #[error("a quantity must be above zero")]
    InvalidQuantity,
    /// A unit price of zero or past the largest amount.
    #[error("a unit price must be above zero and at most {}", Money::MAX.0)]
    InvalidPrice,
    /// Lines change only while the order is a draft, and only a draft is placed.
    #[error("the order is {}, not a draft", .0.as_str())]
    NotDraft(OrderStatus),
    /// The sku already has a line.
    #[error("the order already has a line for {0}; remove it first")]
    LineExists(String),
    /// The sku has no line.
    #[error("the order has no line for {0}")]
    LineNotFound(String),
    /// The order has [`MAX_LINES`] lines already.
    #[error("an order has at most {MAX_LINES} lines")]
    TooManyLines,
    /// A line total or the order total would pass [`Money::MAX`].
    #[error("the amount would pass {}", Money::MAX.0)]
    AmountOverflow,
    /// An order without lines cannot be placed.
    #[error("an order without lines cannot be placed")]
    Empty,
    /// Only a placed order is confirmed.
    #[error("the order is {}, not placed", .0.as_str())]
    NotPlaced(OrderStatus),
    /// The order is cancelled.
    #[error("the order is cancelled")]
    Cancelled,
    /// The order is confirmed (paid); it can no longer be cancelled.
    #[error("the order is confirmed and paid; it can no longer be cancelled")]
    Confirmed,
    /// The order is shipped.
    #[error("the order is shipped")]
    Shipped,
    /// Only a confirmed (paid) order ships.
    #[error("the order is {}, not paid for", .0.as_str())]
    NotPaid(OrderStatus),
}

impl DomainError for OrderError {
    fn code(&self) -> &'static str {
        match self {
            OrderError::AlreadyExists(_) => "order_exists",
            OrderError::NotFound => "order_not_found",
            OrderError::InvalidOrderId => "invalid_order_id",
            OrderError::InvalidCustomer => "invalid_customer",
            OrderError::InvalidSku => "invalid_sku",
            OrderError::InvalidQuantity => "invalid_quantity",
            OrderError::InvalidPrice => "invalid_price",
            OrderError::NotDraft(_) => "order_not_draft",
            OrderError::LineExists(_) => "line_exists",
            OrderError::LineNotFound(_) => "line_not_found",
            OrderError::TooManyLines => "too_many_lines",
            OrderError::AmountOverflow => "amount_overflow",
            OrderError::Empty => "order_empty",
            OrderError::NotPlaced(_) => "order_not_placed",
            OrderError::Cancelled => "order_cancelled",
            OrderError::Confirmed => "order_confirmed",
            OrderError::Shipped => "order_shipped",
            OrderError::NotPaid(_) => "order_not_paid",
        }
    }
}

impl Order {
    fn id(&self) -> String {
        self.id.clone().unwrap_or_default()
    }

    fn status(&self) -> Result<OrderStatus, OrderError> {
        self.status.ok_or(OrderError::NotFound)
    }

    fn draft(&self) -> Result<(), OrderError> {
        match self.status()? {
            OrderStatus::Draft => Ok(()),
            status => Err(OrderError::NotDraft(status)),
        }
    }
}

impl Aggregate for Order {
    const CATEGORY: &'static str = "order";

    type Command = OrderCommand;
    type Event = OrderEvent;
    type Error = OrderError;

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, OrderError> {
        use OrderStatus as S;
        match command {
            OrderCommand::Create { order_id, customer } => {
                if let Some(id) = &self.id {
                    return Err(OrderError::AlreadyExists(id.clone()));
                }
                if order_id.is_empty() {
                    return Err(OrderError::InvalidOrderId);
                }
                if customer.trim().is_empty() || customer.chars().count() > MAX_NAME_CHARS {
                    return Err(OrderError::InvalidCustomer);
                }
                Ok(vec![OrderEvent::Created {
                    order_id: order_id.clone(),
                    customer: customer.clone(),
                }])
            }
            OrderCommand::AddLine {
                sku,
                quantity,
                unit_price,
            } => {
                self.draft()?;
                if sku.is_empty() {
                    return Err(OrderError::InvalidSku);
                }
                if *quantity == 0 {
                    return Err(OrderError::InvalidQuantity);
                }
                if *unit_price == Money::ZERO || !unit_price.is_valid() {
                    return Err(OrderError::InvalidPrice);
                }
                if self.lines.iter().any(|l| &l.sku == sku) {
                    return Err(OrderError::LineExists(sku.clone()));
                }
                if self.lines.len() >= MAX_LINES {
                    return Err(OrderError::TooManyLines);
                }
                let line = OrderLine {
                    sku: sku.clone(),
                    quantity: *quantity,
                    unit_price: *unit_price,
                };
                line.total()
                    .and_then(|t| self.total.checked_add(t))
                    .ok_or(OrderError::AmountOverflow)?;
                Ok(vec![OrderEvent::LineAdded {
                    order_id: self.id(),
                    line,
                }])
            }
            OrderCommand::RemoveLine { sku } => {
                self.draft()?;
                if !self.lines.iter().any(|l| &l.sku == sku) {
                    return Err(OrderError::LineNotFound(sku.clone()));
                }
                Ok(vec![OrderEvent::LineRemoved {
                    order_id: self.id(),
                    sku: sku.clone(),
                }])
            }
            OrderCommand::Place => match self.status()? {
                S::Draft if self.lines.is_empty() => Err(OrderError::Empty),
                S::Draft => Ok(vec![OrderEvent::Placed {
                    order_id: self.id(),
                    customer: self.customer.clone(),
                    lines: self.lines.clone(),
                    total: self.total,
                }]),
                S::Cancelled => Err(OrderError::Cancelled),
                other => Err(OrderError::NotDraft(other)),
            },
            OrderCommand::Confirm => match self.status()? {
                S::Placed => Ok(vec![OrderEvent::Confirmed {
                    order_id: self.id(),
                    customer: self.customer.clone(),
                    total: self.total,
                }]),
                S::Confirmed | S::Shipped => Ok(Vec::new()),
                S::Cancelled => Err(OrderError::Cancelled),
                S::Draft => Err(OrderError::NotPlaced(S::Draft)),
            },
            OrderCommand::Cancel { reason } => match self.status()? {
                S::Draft | S::Placed => Ok(vec![OrderEvent::Cancelled {
                    order_id: self.id(),
                    reason: reason.clone(),
                }]),
                S::Cancelled => Ok(Vec::new()),
                S::Confirmed => Err(OrderError::Confirmed),
                S::Shipped => Err(OrderError::Shipped),
            },
            OrderCommand::Ship => match self.status()? {
                S::Confirmed => Ok(vec![OrderEvent::Shipped {
                    order_id: self.id(),
                }]),
                S::Shipped => Ok(Vec::new()),
                S::Cancelled => Err(OrderError::Cancelled),
                status @ (S::Draft | S::Placed) => Err(OrderError::NotPaid(status)),
            },
        }
    }

    fn evolve(mut self, event: &OrderEvent) -> Self {
        match event {
            OrderEvent::Created { order_id, customer } => {
                self.id = Some(order_id.clone());
                self.customer = customer.clone();
                self.status = Some(OrderStatus::Draft);
            }
            OrderEvent::LineAdded { line, .. } => {
                self.lines.push(line.clone());
                self.total = order_total(&self.lines);
            }
            OrderEvent::LineRemoved { sku, .. } => {
                self.lines.retain(|l| &l.sku != sku);
                self.total = order_total(&self.lines);
            }
            OrderEvent::Placed { .. } => self.status = Some(OrderStatus::Placed),
            OrderEvent::Confirmed { .. } => self.status = Some(OrderStatus::Confirmed),
            OrderEvent::Cancelled { reason, .. } => {
                self.status = Some(OrderStatus::Cancelled);
                self.cancel_reason = Some(reason.clone());
            }
            OrderEvent::Shipped { .. } => self.status = Some(OrderStatus::Shipped),
        }
        self
    }
}

/// The sum of the line totals. `decide` refuses any line that would overflow it, so the
/// saturation never shows on events this code decided.
pub fn order_total(lines: &[OrderLine]) -> Money {
    Money::checked_sum(lines.iter().map(|l| l.total().unwrap_or(Money::MAX))).unwrap_or(Money::MAX)
}
