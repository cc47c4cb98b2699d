//! The reference application of strata: a shop. Products, inventory, orders and payments
//! as pure aggregates; a checkout process manager; read models in SQLite (or, with the
//! `postgres` feature, in PostgreSQL); and a [`Shop`]
//! service that the server calls. It plugs into strata exactly the way a user's own
//! domain would, through the public APIs of strata-domain, strata-store and
//! strata-projection, and knows nothing of HTTP.

mod cache;
mod checkout;
pub mod domain;
mod process;
mod provider;
pub mod read_models;
mod reads;
mod service;
#[cfg(test)]
mod test_support;

pub use checkout::{
    Checkout, CheckoutCommand, CheckoutEvent, CheckoutPhase, CheckoutStep, CheckoutTimeout,
    PaymentProgress, RESERVATION_SETTLE,
};
pub use process::{CHECKOUT, CheckoutProcess, CheckoutSender};
pub use provider::{FakePaymentProvider, PaymentProvider};
pub use service::{AsOf, OrderAsOf, PAGE_LIMIT, Page, PageRequest, Shop, ShopError};
