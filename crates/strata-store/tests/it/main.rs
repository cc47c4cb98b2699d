//! strata-store's integration tests: the conformance suite against [`MemoryStore`], the
//! append rules every backend shares, and the shared catch-up subscription.

mod append_rules;
mod memory;
mod subscription;

use async_trait::async_trait;
use strata_store::MemoryStore;
use strata_store::conformance::Backend;

/// The in-memory store: nothing survives a restart.
struct Memory;

#[async_trait]
impl Backend for Memory {
    type Store = MemoryStore;

    async fn fresh(&self) -> MemoryStore {
        MemoryStore::new()
    }

    async fn reopen(&self, store: MemoryStore) -> Option<MemoryStore> {
        drop(store);
        None
    }
}

fn backend() -> Memory {
    Memory
}

mod conformance {
    strata_store::conformance_tests!(crate::backend);
}
