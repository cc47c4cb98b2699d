//! Helpers: the bank over a fresh in-memory store, and bounded waits.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use strata_bank::{Bank, Transfer, TransferStatus};
use strata_core::Position;
use strata_domain::{CommandContext, CommandHandler, MemorySnapshots};
use strata_projection::{ProcessManagers, Projections};
use strata_store::{EventStore, MemoryStore};

/// How long a test waits for the read side at most.
pub(crate) const WAIT: Duration = Duration::from_secs(5);

/// A bank over an in-memory store, its read model and process manager running.
pub(crate) struct TestBank {
    pub(crate) bank: Bank,
    pub(crate) store: Arc<MemoryStore>,
    projections: Projections,
    processes: ProcessManagers,
    _dir: tempfile::TempDir,
}

impl TestBank {
    pub(crate) fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(MemoryStore::new());
        let shared: Arc<dyn EventStore> = store.clone();
        let handler = Arc::new(CommandHandler::new(
            shared.clone(),
            Arc::new(MemorySnapshots::new()),
        ));
        let projections = Projections::new(shared.clone(), dir.path().join("models"));
        let processes = ProcessManagers::new(shared, dir.path().join("processes"));
        let bank = Bank::new(handler, projections.clone(), &processes).unwrap();
        projections.start();
        processes.start();
        TestBank {
            bank,
            store,
            projections,
            processes,
            _dir: dir,
        }
    }

    /// The position of the log's last event.
    pub(crate) async fn head(&self) -> Position {
        self.store.head().await.unwrap()
    }

    /// Opens `account` for `owner` with `balance` in it.
    pub(crate) async fn account(&self, account: &str, owner: &str, balance: u64) {
        let context = CommandContext::new();
        self.bank.open(account, owner, &context).await.unwrap();
        if balance > 0 {
            let context = CommandContext::new();
            self.bank.deposit(account, balance, &context).await.unwrap();
        }
    }

    /// The balance of `account` once the read model has passed everything in the log.
    pub(crate) async fn balance(&self, account: &str) -> u64 {
        let head = self.head().await;
        self.bank
            .balance(account, Some(head), WAIT)
            .await
            .unwrap()
            .balance
    }

    /// Transfer `id` once it has ended (completed or failed).
    pub(crate) async fn ended(&self, id: &str) -> Transfer {
        eventually(|| async {
            let transfer = self.bank.transfer_state(id).await.unwrap();
            (transfer.status != Some(TransferStatus::Requested)).then_some(transfer)
        })
        .await
    }

    pub(crate) async fn stop(self) {
        self.processes.shutdown().await;
        self.projections.shutdown().await;
    }
}

/// The first `Some` that `check` gives, polled for at most [`WAIT`].
pub(crate) async fn eventually<T, F: Future<Output = Option<T>>>(check: impl Fn() -> F) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing came within {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
