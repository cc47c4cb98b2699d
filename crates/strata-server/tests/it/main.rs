//! strata-server's integration tests: the router driven in process, and real servers.

mod auth;
mod connections;
mod crash;
mod module;
mod ops;
mod read_side;
mod store_api;
mod store_health;
mod subscribe;
mod support;
