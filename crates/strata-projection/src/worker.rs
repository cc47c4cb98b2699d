//! A dedicated thread that owns one SQLite writer connection (inside a state machine) and
//! runs jobs on it, so no SQLite work ever runs on an async runtime worker.
//!
//! It must not hold anything async: jobs are plain closures and answers go back through
//! oneshot channels.
//!
//! A read model's or a process manager's thread runs at a lower CPU priority than the
//! threads that answer requests ([`Priority::Background`]): on a busy machine, a command
//! waiting for its acknowledgement is not held up behind a read model's commit, which can
//! wait a few milliseconds. Measured in docs/benchmarks.md ("Read-model threads behind the
//! request path").

use std::sync::mpsc;
use std::thread::JoinHandle;

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::ProjectionError;

type Job<S> = Box<dyn FnOnce(&mut S) + Send>;

/// How much lower than the rest of the process a background worker runs: the nice value
/// it adds (a nice-10 thread gets about a tenth of the CPU time of a nice-0 one when both
/// want it, and all of it when nothing else does).
pub(crate) const BACKGROUND_NICE: i32 = 10;
/// The highest nice value there is.
const MAX_NICE: i32 = 19;

/// How a worker thread competes for the CPU with the rest of the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// Like every other thread: work a request waits for (the snapshot store's).
    Normal,
    /// [`BACKGROUND_NICE`] behind the rest: work no request waits for (read models,
    /// process managers).
    Background,
}

impl Priority {
    /// Applies this priority to the calling thread. Failing to lower it is not an error:
    /// the worker runs as it is, and a debug line says why.
    fn apply(self, name: &str) {
        if self == Priority::Background
            && let Err(err) = lower_priority()
        {
            tracing::debug!(thread = name, error = %err, "cannot lower the thread's CPU priority");
        }
    }
}

/// Adds [`BACKGROUND_NICE`] to the calling thread's nice value (at most [`MAX_NICE`]).
///
/// On Linux a nice value belongs to a thread, and `setpriority(PRIO_PROCESS, 0)` names the
/// calling thread: the rest of the process keeps its own. Lowering one's own priority
/// needs no privilege.
#[cfg(target_os = "linux")]
fn lower_priority() -> std::io::Result<()> {
    let nice = rustix::process::getpriority_process(None)?;
    let lower = nice.saturating_add(BACKGROUND_NICE).min(MAX_NICE);
    if lower > nice {
        rustix::process::setpriority_process(None, lower)?;
    }
    Ok(())
}

/// Elsewhere a nice value may be the whole process's: the thread keeps the process's
/// priority.
#[cfg(not(target_os = "linux"))]
fn lower_priority() -> std::io::Result<()> {
    Ok(())
}

/// A thread owning a state `S`; [`Worker::call`] runs a closure on it. Jobs run one at a
/// time in submission order. Dropping the worker lets the thread finish its queue and end.
pub(crate) struct Worker<S> {
    jobs: Mutex<Option<mpsc::Sender<Job<S>>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl<S: Send + 'static> Worker<S> {
    /// Starts the thread at `priority` and builds the state on it; fails if `init` fails.
    pub(crate) fn spawn<F>(
        name: String,
        priority: Priority,
        init: F,
    ) -> Result<Self, ProjectionError>
    where
        F: FnOnce() -> Result<S, ProjectionError> + Send + 'static,
    {
        let (jobs, rx) = mpsc::channel::<Job<S>>();
        let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::Builder::new()
            .name(name.clone())
            .spawn(move || {
                priority.apply(&name);
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

#[cfg(test)]
mod tests;
