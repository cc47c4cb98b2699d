//! End-to-end tests of the `strata` binary: each test runs the built binary against its
//! own temporary data directory and checks what it prints and how it exits.

mod append;
mod bench;
mod cli;
mod damage;
mod export_import;
mod failover;
mod layering;
mod read;
mod readme;
mod relay_failover;
mod serve_postgres;
mod serve_redis;
mod serve_replica;
mod support;
mod tail;
mod verify;
