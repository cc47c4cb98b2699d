//! Given/when/then tests of every rule of the shop's aggregates.

mod committed;
mod inventory;
mod order;
mod payment;
mod product;
