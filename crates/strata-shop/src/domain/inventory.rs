//! Inventory of one sku: stock received, reserved for orders, released and committed.
//! Stock never goes negative and is never promised twice. Pure: no I/O, no clock.
//!
//! The numbers, at every moment:
//! - `received`: everything ever received;
//! - `committed`: everything reserved and then committed (sold, gone from the shelf);
//! - `reserved`: the sum of the outstanding reservations (promised, not yet sold);
//! - `on_hand = received − committed`, and `available = on_hand − reserved`.
//!
//! A reservation succeeds only if `quantity ≤ available`, so `available ≥ 0` always.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use strata_domain::{Aggregate, DomainError, TaggedEvent};

use super::CommittedOrders;

/// The largest stock count the shop keeps (it fits a SQL integer).
pub const MAX_STOCK: u64 = i64::MAX as u64;

/// The stock of one sku, stream `inventory-{sku}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// The sku, known from the first stock received.
    pub sku: Option<String>,
    /// Units ever received.
    pub received: u64,
    /// Units reserved and then committed.
    pub committed: u64,
    /// Outstanding reservations: units by order id.
    pub reservations: BTreeMap<String, u32>,
    /// Committed reservations: units by order id (kept so a repeat is recognised).
    /// Serialised as a map, like the outstanding reservations.
    pub committed_orders: CommittedOrders,
}

impl Inventory {
    /// Units reserved and not yet released or committed.
    pub fn reserved(&self) -> u64 {
        self.reservations.values().map(|&q| u64::from(q)).sum()
    }

    /// Units on the shelf: received − committed.
    pub fn on_hand(&self) -> u64 {
        self.received.saturating_sub(self.committed)
    }

    /// Units that can still be reserved: on hand − reserved.
    pub fn available(&self) -> u64 {
        self.on_hand().saturating_sub(self.reserved())
    }
}

/// What can be asked of a sku's inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryCommand {
    /// Adds stock.
    Receive {
        /// The sku (also the aggregate id).
        sku: String,
        /// Units received, above zero.
        quantity: u64,
    },
    /// Sets units aside for an order. Repeating the same reservation changes nothing.
    Reserve {
        /// The order.
        order_id: String,
        /// Units, above zero and at most what is available.
        quantity: u32,
    },
    /// Gives an order's reservation back to the available stock.
    Release {
        /// The order.
        order_id: String,
    },
    /// Turns an order's reservation into a sale: the units leave the stock.
    Commit {
        /// The order.
        order_id: String,
    },
}

/// What happened to a sku's stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum InventoryEvent {
    /// Stock arrived.
    #[serde(rename = "StockReceived")]
    Received {
        /// The sku.
        sku: String,
        /// Units received.
        quantity: u64,
    },
    /// Units were set aside for an order.
    #[serde(rename = "StockReserved")]
    Reserved {
        /// The sku.
        sku: String,
        /// The order.
        order_id: String,
        /// Units reserved.
        quantity: u32,
    },
    /// An order's reservation went back to the available stock.
    #[serde(rename = "ReservationReleased")]
    Released {
        /// The sku.
        sku: String,
        /// The order.
        order_id: String,
        /// Units released.
        quantity: u32,
    },
    /// An order's reservation was sold: the units left the stock.
    #[serde(rename = "ReservationCommitted")]
    Committed {
        /// The sku.
        sku: String,
        /// The order.
        order_id: String,
        /// Units committed.
        quantity: u32,
    },
}

impl TaggedEvent for InventoryEvent {}

/// Why an inventory command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InventoryError {
    /// The sku is empty.
    #[error("a sku must not be empty")]
    InvalidSku,
    /// The order id is empty.
    #[error("an order id must not be empty")]
    InvalidOrderId,
    /// A quantity of zero.
    #[error("a quantity must be above zero")]
    InvalidQuantity,
    /// Receiving would push the stock past [`MAX_STOCK`].
    #[error("receiving {quantity} would push the stock past {MAX_STOCK}")]
    StockOverflow {
        /// Units asked to receive.
        quantity: u64,
    },
    /// Not enough stock is available for the reservation.
    #[error("{requested} requested but only {available} available")]
    InsufficientStock {
        /// Units asked for.
        requested: u32,
        /// Units available.
        available: u64,
    },
    /// The order already holds (or has committed) a reservation of another quantity.
    #[error("order {order_id} already reserved {reserved} units")]
    ReservationExists {
        /// The order.
        order_id: String,
        /// Units it holds.
        reserved: u32,
    },
    /// The order holds no reservation of this sku.
    #[error("order {0} holds no reservation")]
    ReservationNotFound(String),
    /// The order's reservation was committed; it cannot be released any more.
    #[error("the reservation of order {0} is committed")]
    ReservationCommitted(String),
}

impl DomainError for InventoryError {
    fn code(&self) -> &'static str {
        match self {
            InventoryError::InvalidSku => "invalid_sku",
            InventoryError::InvalidOrderId => "invalid_order_id",
            InventoryError::InvalidQuantity => "invalid_quantity",
            InventoryError::StockOverflow { .. } => "stock_overflow",
            InventoryError::InsufficientStock { .. } => "insufficient_stock",
            InventoryError::ReservationExists { .. } => "reservation_exists",
            InventoryError::ReservationNotFound(_) => "reservation_not_found",
            InventoryError::ReservationCommitted(_) => "reservation_committed",
        }
    }
}

impl Aggregate for Inventory {
    const CATEGORY: &'static str = "inventory";
    // A popular sku's stream grows by two events per order: snapshots keep loading short.
    const SNAPSHOT_EVERY: Option<u64> = Some(32);

    type Command = InventoryCommand;
    type Event = InventoryEvent;
    type Error = InventoryError;

    fn decide(&self, command: &InventoryCommand) -> Result<Vec<InventoryEvent>, InventoryError> {
        match command {
            InventoryCommand::Receive { sku, quantity } => {
                if sku.is_empty() {
                    return Err(InventoryError::InvalidSku);
                }
                if *quantity == 0 {
                    return Err(InventoryError::InvalidQuantity);
                }
                match self.received.checked_add(*quantity) {
                    Some(total) if total <= MAX_STOCK => {}
                    _ => {
                        return Err(InventoryError::StockOverflow {
                            quantity: *quantity,
                        });
                    }
                }
                Ok(vec![InventoryEvent::Received {
                    sku: sku.clone(),
                    quantity: *quantity,
                }])
            }
            InventoryCommand::Reserve { order_id, quantity } => {
                if order_id.is_empty() {
                    return Err(InventoryError::InvalidOrderId);
                }
                if *quantity == 0 {
                    return Err(InventoryError::InvalidQuantity);
                }
                let held = self
                    .reservations
                    .get(order_id)
                    .copied()
                    .or_else(|| self.committed_orders.get(order_id));
                match held {
                    Some(held) if held == *quantity => return Ok(Vec::new()),
                    Some(held) => {
                        return Err(InventoryError::ReservationExists {
                            order_id: order_id.clone(),
                            reserved: held,
                        });
                    }
                    None => {}
                }
                let available = self.available();
                if u64::from(*quantity) > available {
                    return Err(InventoryError::InsufficientStock {
                        requested: *quantity,
                        available,
                    });
                }
                Ok(vec![InventoryEvent::Reserved {
                    sku: self.sku.clone().unwrap_or_default(),
                    order_id: order_id.clone(),
                    quantity: *quantity,
                }])
            }
            InventoryCommand::Release { order_id } => {
                if self.committed_orders.contains_key(order_id) {
                    return Err(InventoryError::ReservationCommitted(order_id.clone()));
                }
                let Some(quantity) = self.reservations.get(order_id) else {
                    return Err(InventoryError::ReservationNotFound(order_id.clone()));
                };
                Ok(vec![InventoryEvent::Released {
                    sku: self.sku.clone().unwrap_or_default(),
                    order_id: order_id.clone(),
                    quantity: *quantity,
                }])
            }
            InventoryCommand::Commit { order_id } => {
                if self.committed_orders.contains_key(order_id) {
                    return Ok(Vec::new());
                }
                let Some(quantity) = self.reservations.get(order_id) else {
                    return Err(InventoryError::ReservationNotFound(order_id.clone()));
                };
                Ok(vec![InventoryEvent::Committed {
                    sku: self.sku.clone().unwrap_or_default(),
                    order_id: order_id.clone(),
                    quantity: *quantity,
                }])
            }
        }
    }

    fn evolve(mut self, event: &InventoryEvent) -> Self {
        match event {
            InventoryEvent::Received { sku, quantity } => {
                self.sku.get_or_insert_with(|| sku.clone());
                self.received = self.received.saturating_add(*quantity);
            }
            InventoryEvent::Reserved {
                order_id, quantity, ..
            } => {
                self.reservations.insert(order_id.clone(), *quantity);
            }
            InventoryEvent::Released { order_id, .. } => {
                self.reservations.remove(order_id);
            }
            InventoryEvent::Committed {
                order_id, quantity, ..
            } => {
                self.reservations.remove(order_id);
                self.committed_orders.insert(order_id, *quantity);
                self.committed = self.committed.saturating_add(u64::from(*quantity));
            }
        }
        self
    }
}
