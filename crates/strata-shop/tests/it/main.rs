//! The shop end to end on the embedded store, with its read models in SQLite and its
//! checkout run by strata-projection's process-manager host; with the `redis` feature,
//! the catalog and the query cache in a real Redis too.

mod checkout;
#[cfg(feature = "redis")]
mod redis;
mod service;
mod support;
