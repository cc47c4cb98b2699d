//! [`Registry`]: what both hosts keep the same way — the store, the directory, the
//! slots by name, the runtime runners are spawned on while the host is started, and the
//! runner tasks to wait for at shutdown.
//!
//! It must not know what a slot holds: the hosts decide which [`Sink`]s a slot runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use strata_core::Position;
use strata_store::EventStore;
use tokio::runtime::Handle;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::ProjectionError;
use crate::supervise::{Sink, supervise};

/// The slots of one host and the runtime their runners run on.
pub(crate) struct Registry<T> {
    pub(crate) store: Arc<dyn EventStore>,
    pub(crate) dir: PathBuf,
    head: watch::Receiver<Position>,
    slots: RwLock<BTreeMap<&'static str, Arc<T>>>,
    /// The runtime runners are spawned on, while the host is started.
    runtime: Mutex<Option<Handle>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl<T> Registry<T> {
    /// An empty registry over `store`, keeping its files in `dir`.
    pub(crate) fn new(store: Arc<dyn EventStore>, dir: PathBuf) -> Self {
        let head = store.watch_head();
        Self {
            store,
            dir,
            head,
            slots: RwLock::new(BTreeMap::new()),
            runtime: Mutex::new(None),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// The store's head as last published.
    pub(crate) fn head(&self) -> Position {
        *self.head.borrow()
    }

    /// The slot named `name`.
    pub(crate) fn get(&self, name: &str) -> Result<Arc<T>, ProjectionError> {
        self.slots
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| ProjectionError::Unknown(name.to_owned()))
    }

    /// Fails if `name` is taken.
    pub(crate) fn check_free(&self, name: &str) -> Result<(), ProjectionError> {
        if self.slots.read().contains_key(name) {
            return Err(ProjectionError::AlreadyRegistered(name.to_owned()));
        }
        Ok(())
    }

    /// Adds a slot under `name`; returns the runtime to start it on if the host is
    /// started.
    pub(crate) fn insert(
        &self,
        name: &'static str,
        slot: Arc<T>,
    ) -> Result<Option<Handle>, ProjectionError> {
        let mut slots = self.slots.write();
        if slots.contains_key(name) {
            return Err(ProjectionError::AlreadyRegistered(name.to_owned()));
        }
        slots.insert(name, slot);
        Ok(self.runtime.lock().clone())
    }

    /// Every slot, by name.
    pub(crate) fn all(&self) -> Vec<Arc<T>> {
        self.slots.read().values().cloned().collect()
    }

    /// Marks the host started on the current runtime; `None` outside a runtime (logged).
    pub(crate) fn start(&self, what: &str) -> Option<Handle> {
        let Ok(runtime) = Handle::try_current() else {
            tracing::error!("{what} cannot start outside a tokio runtime");
            return None;
        };
        *self.runtime.lock() = Some(runtime.clone());
        Some(runtime)
    }

    /// The runtime of a started host, or [`ProjectionError::ShutDown`].
    pub(crate) fn started(&self) -> Result<Handle, ProjectionError> {
        self.runtime.lock().clone().ok_or(ProjectionError::ShutDown)
    }

    /// Whether the host is started.
    pub(crate) fn is_started(&self) -> bool {
        self.runtime.lock().is_some()
    }

    /// Spawns a runner for `sink` unless one already runs it.
    pub(crate) fn spawn<S: Sink>(&self, runtime: &Handle, sink: Arc<S>) {
        if !sink.lane().claim() {
            return;
        }
        let task = runtime.spawn(supervise(self.store.clone(), sink));
        let mut tasks = self.tasks.lock();
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    /// Marks the host stopped (no new runner starts) and waits for every runner task;
    /// the caller has asked them to stop.
    pub(crate) async fn stop_and_join(&self, ask_stop: impl FnOnce()) {
        self.runtime.lock().take();
        ask_stop();
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Checks a projection or process-manager name: it becomes part of file names.
pub(crate) fn validate_name(name: &str) -> Result<(), ProjectionError> {
    let reason = if name.is_empty() {
        Some("must not be empty")
    } else if name.len() > 64 {
        Some("must be at most 64 characters")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        Some("must only hold a-z, 0-9 and _")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(ProjectionError::InvalidName {
            name: name.to_owned(),
            reason,
        }),
        None => Ok(()),
    }
}
