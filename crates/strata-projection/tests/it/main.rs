//! strata-projection's integration tests, against `MemoryStore` and `EmbeddedStore`, with
//! real SQLite files in temporary directories, (with the `postgres` feature and
//! `STRATA_TEST_POSTGRES_URL`) read models, process managers and leases in a fresh
//! PostgreSQL database, and (with the `redis` feature) a real Redis.

mod ahead_of_log;
mod as_of;
mod crash;
mod deferred;
mod exactly_once;
mod faults;
mod follow;
mod leases;
mod policy;
mod postgres_process;
#[cfg(feature = "postgres")]
mod postgres_read_models;
mod process;
mod rebuild;
#[cfg(feature = "redis")]
mod redis;
mod snapshots;
mod support;
mod wait;
