//! The shop end to end on the embedded store, with its read models in SQLite and its
//! checkout run by strata-projection's process-manager host; with the `postgres`
//! feature, its read models in PostgreSQL too; with the `redis` feature, the catalog and
//! the query cache in a real Redis too.

mod checkout;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
mod service;
mod support;
