//! A dedicated thread that owns one SQLite writer connection (inside a state machine) and
//! runs jobs on it, so no SQLite work ever runs on an async runtime worker.
//!
//! It must not hold anything async: jobs are plain closures and answers go back through
//! oneshot channels.

use std::sync::mpsc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::ProjectionError;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// A thread owning a state `S`; [`Worker::call`] runs a closure on it. Jobs run one at a
/// time in submission order. Dropping the worker lets the thread finish its queue and end.
pub(crate) struct Worker<S> {
    jobs: Mutex<Option<mpsc::Sender<Job<S>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<S: Send + 'static> Worker<S> {
    /// Starts the thread and builds the state on it; fails if `init` fails.
    pub(crate) fn spawn<F>(name: String, init: F) -> Result<Self, ProjectionError>
    where
        F: FnOnce() -> Result<S, ProjectionError> + Send + 'static,
    {
        let (jobs, rx) = mpsc::channel::<Job<S>>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(name)
            .spawn(move || {
                let mut state = match init() {
                    Ok(state) => {
                        let _ = ready_tx.send(Ok(()));
                        state
                    }
                    Err(err) => {
                        let _ = ready_tx.send(Err(err));
                        return;
                    }
                };
                while let Ok(job) = rx.recv() {
                    job(&mut state);
                }
            })
            .map_err(|e| ProjectionError::io("cannot start a read-model writer thread", e))?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Self {
                jobs: Mutex::new(Some(jobs)),
                thread: Mutex::new(Some(thread)),
            }),
            Ok(Err(err)) => {
                let _ = thread.join();
                Err(err)
            }
            Err(_) => {
                let _ = thread.join();
                Err(ProjectionError::ShutDown)
            }
        }
    }

    /// Runs `f` on the thread and waits for its answer without blocking the runtime.
    pub(crate) async fn call<R, F>(&self, f: F) -> Result<R, ProjectionError>
    where
        R: Send + 'static,
        F: FnOnce(&mut S) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        let job: Job<S> = Box::new(move |state| {
            let _ = tx.send(f(state));
        });
        {
            let jobs = self.jobs.lock();
            let sender = jobs.as_ref().ok_or(ProjectionError::ShutDown)?;
            sender.send(job).map_err(|_| ProjectionError::ShutDown)?;
        }
        rx.await.map_err(|_| ProjectionError::ShutDown)
    }

    /// Runs `f` on the thread and blocks the calling (non-async) thread for the answer.
    pub(crate) fn call_blocking<R, F>(&self, f: F) -> Result<R, ProjectionError>
    where
        R: Send + 'static,
        F: FnOnce(&mut S) -> R + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let job: Job<S> = Box::new(move |state| {
            let _ = tx.send(f(state));
        });
        {
            let jobs = self.jobs.lock();
            let sender = jobs.as_ref().ok_or(ProjectionError::ShutDown)?;
            sender.send(job).map_err(|_| ProjectionError::ShutDown)?;
        }
        rx.recv().map_err(|_| ProjectionError::ShutDown)
    }

    /// Stops taking jobs; the thread finishes the queued ones, drops the state (closing
    /// its connection) and ends. Returns the thread to join, if it was still running.
    pub(crate) fn close(&self) -> Option<JoinHandle<()>> {
        drop(self.jobs.lock().take());
        self.thread.lock().take()
    }

    /// Closes and waits for the thread on a blocking-pool thread.
    pub(crate) async fn close_and_join(&self) {
        if let Some(thread) = self.close() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

impl<S> Drop for Worker<S> {
    fn drop(&mut self) {
        // Without a join: the thread ends on its own once its queue is empty.
        drop(self.jobs.lock().take());
    }
}
