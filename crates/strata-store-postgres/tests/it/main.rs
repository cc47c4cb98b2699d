//! Integration tests of the PostgreSQL store against a real server: the shared
//! conformance suite, the schema's migrations, head following across handles, group
//! commit, a hammer of concurrent writers and subscribers, and the replicated store on a
//! hot standby (which also needs `STRATA_TEST_POSTGRES_REPLICA_URL`). Each test runs in a
//! database of its own, made for it and dropped after it. Without
//! `STRATA_TEST_POSTGRES_URL` every test says it is skipped and passes.

mod conformance;
mod follow;
mod group;
mod hammer;
mod replica;
mod schema;
mod support;
