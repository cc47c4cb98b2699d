//! The bank: its aggregates decided with the given/when/then kit, and the whole domain
//! run over an in-memory store with its balances read model and transfer process
//! manager.

mod balances;
mod domain;
mod support;
mod transfers;
