//! A shop over a fresh embedded store in a temporary directory, and waits that end.

use std::sync::Arc;
use std::time::Duration;

use strata_core::Position;
use strata_domain::{CommandContext, CommandHandler, MemorySnapshots};
use strata_projection::{ProcessManagers, Projections};
use strata_shop::read_models::{CATALOG, DAILY_SALES, ORDERS, PRODUCT_SEARCH};
use strata_shop::{CHECKOUT, FakePaymentProvider, Shop};
use strata_store::EventStore;
use strata_store_embedded::{EmbeddedStore, Options};
use tempfile::TempDir;

/// How long anything in these tests may take to settle.
pub(crate) const SETTLE: Duration = Duration::from_secs(30);

/// A running shop.
pub(crate) struct Fixture {
    pub(crate) shop: Shop,
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) projections: Projections,
    pub(crate) processes: ProcessManagers,
    _dir: TempDir,
}

impl Fixture {
    /// A shop on a fresh store, its read models and checkout started.
    pub(crate) fn start() -> Fixture {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store: Arc<dyn EventStore> = Arc::new(
            EmbeddedStore::open(dir.path().join("log"), Options::default()).expect("opens"),
        );
        let handler = Arc::new(CommandHandler::new(
            store.clone(),
            Arc::new(MemorySnapshots::new()),
        ));
        let projections = Projections::new(store.clone(), dir.path().join("read"));
        let processes = ProcessManagers::new(store.clone(), dir.path().join("process"));
        let shop = Shop::new(
            handler,
            projections.clone(),
            &processes,
            Arc::new(FakePaymentProvider::default()),
        )
        .expect("the shop registers");
        projections.start();
        processes.start();
        Fixture {
            shop,
            store,
            projections,
            processes,
            _dir: dir,
        }
    }

    /// Waits until checkout has nothing left to do: every event handled, every command
    /// sent, every instance finished, and no new event meanwhile.
    pub(crate) async fn settle(&self) {
        let deadline = tokio::time::Instant::now() + SETTLE;
        loop {
            let head = self.store.head().await.expect("head");
            let status = self
                .processes
                .status()
                .into_iter()
                .find(|s| s.name == CHECKOUT)
                .expect("checkout is registered");
            let idle = status.checkpoint >= head
                && status.outbox == 0
                && status.instances == 0
                && status.last_error.is_none();
            if idle && self.store.head().await.expect("head") == head {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "checkout did not settle in {SETTLE:?}: {status:?} (head {head})"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until every read model has applied the whole log.
    pub(crate) async fn read_models_caught_up(&self) -> Position {
        let head = self.store.head().await.expect("head");
        for name in [ORDERS, CATALOG, DAILY_SALES, PRODUCT_SEARCH] {
            self.projections
                .wait_for(name, head, SETTLE)
                .await
                .unwrap_or_else(|e| panic!("{name} did not catch up: {e}"));
        }
        head
    }

    /// Stops the hosts.
    pub(crate) async fn stop(self) {
        self.processes.shutdown().await;
        self.projections.shutdown().await;
    }
}

/// A context with a fresh command id and an actor.
pub(crate) fn ctx() -> CommandContext {
    CommandContext::new().actor("test")
}
