//! strata-projection's integration tests, against `MemoryStore` and `EmbeddedStore`, with
//! real SQLite files in temporary directories; with the `postgres` feature, PostgreSQL
//! read models against the server named by `STRATA_TEST_POSTGRES_URL`.

mod ahead_of_log;
mod as_of;
mod crash;
mod exactly_once;
mod faults;
mod follow;
mod policy;
#[cfg(feature = "postgres")]
mod postgres;
mod process;
mod rebuild;
mod snapshots;
mod support;
mod wait;
