//! The shop's domain: products, inventory, orders and payments as pure aggregates. Every
//! rule is enforced in `decide` and refused with a stable snake_case code. No I/O, no
//! clock, no randomness here: whatever comes from outside arrives in the command.

mod committed;
mod inventory;
mod money;
mod order;
mod payment;
mod product;

pub use committed::CommittedOrders;
pub use inventory::{Inventory, InventoryCommand, InventoryError, InventoryEvent, MAX_STOCK};
pub use money::Money;
pub use order::{
    CancelReason, Order, OrderCommand, OrderError, OrderEvent, OrderLine, OrderStatus, order_total,
};
pub use payment::{
    Payment, PaymentCommand, PaymentError, PaymentEvent, PaymentStatus, ProviderAnswer,
};
pub use product::{Product, ProductCommand, ProductDetails, ProductError, ProductEvent};

/// The longest product name or customer id, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest product description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 4000;
/// The most lines an order holds.
pub const MAX_LINES: usize = 100;

#[cfg(test)]
mod tests;
