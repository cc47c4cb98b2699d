//! strata-shop-http's integration tests: the shop mounted on the server, driven in
//! process.

mod openapi;
mod shop;
mod support;
