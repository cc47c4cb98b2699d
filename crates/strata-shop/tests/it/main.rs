//! The shop end to end on the embedded store, with its read models in SQLite and its
//! checkout run by strata-projection's process-manager host; with the `postgres`
//! feature, its read models in PostgreSQL too.

mod checkout;
#[cfg(feature = "postgres")]
mod postgres;
mod service;
mod support;
