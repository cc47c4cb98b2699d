//! strata-projection's integration tests, against `MemoryStore` and `EmbeddedStore`, with
//! real SQLite files in temporary directories, and (with the `redis` feature) a real Redis.

mod ahead_of_log;
mod as_of;
mod crash;
mod exactly_once;
mod faults;
mod follow;
mod policy;
mod process;
mod rebuild;
#[cfg(feature = "redis")]
mod redis;
mod snapshots;
mod support;
mod wait;
