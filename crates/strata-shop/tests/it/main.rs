//! The shop end to end on the embedded store, with its read models in SQLite and its
//! checkout run by strata-projection's process-manager host.

mod checkout;
mod service;
mod support;
