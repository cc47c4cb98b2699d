//! The conformance suite: the [`crate::EventStore`] contract as executable checks.
//! Every backend runs it against itself.

use async_trait::async_trait;

use crate::EventStore;

/// How the suite gets stores to test.
#[async_trait]
pub trait Backend: Send + Sync {
    /// The store type under test.
    type Store: EventStore + Clone;

    /// A new, empty store.
    async fn fresh(&self) -> Self::Store;

    /// Closes `store` and opens the same data again, as after a restart; `None` if the
    /// backend keeps nothing across a restart.
    async fn reopen(&self, store: Self::Store) -> Option<Self::Store>;
}
