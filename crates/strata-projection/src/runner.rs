//! The projection runner's thin async loop: it takes steps from the shared `feed`,
//! hands each batch to the generation's writer thread (the synchronous `core`), retries
//! storage faults with backoff, and promotes a rebuilt generation once it has caught up.
//!
//! It must not touch SQLite itself, and it stops only between batches.

use std::sync::Arc;

use strata_core::Position;

use crate::RunnerState;
use crate::backoff::{Backoff, sleep_or_stop};
use crate::core::{BatchOutcome, ProjectionCore};
use crate::feed::{Feed, Next, note_pending};
use crate::generation::Generation;
use crate::host::{Host, Slot};
use crate::worker::Worker;

/// Why one following session ended.
enum Exit {
    /// Asked to stop.
    Stop,
    /// A poison event under policy `Stop`.
    Failed,
    /// A storage fault: retry after a backoff.
    Retry(String),
}

/// Runs one generation until it is stopped or fails.
pub(crate) async fn run(host: Arc<Host>, slot: Arc<Slot>, generation: Arc<Generation>) {
    let mut stop = generation.stop.subscribe();
    let mut backoff = Backoff::new();
    loop {
        if *stop.borrow() {
            break;
        }
        let g = generation.clone();
        let writer = match tokio::task::spawn_blocking(move || g.writer()).await {
            Ok(Ok(writer)) => Ok(writer),
            Ok(Err(err)) => Err(err.to_string()),
            Err(err) => Err(err.to_string()),
        };
        let exit = match writer {
            Ok(writer) => follow(&host, &slot, &generation, &writer, &mut stop, &mut backoff).await,
            Err(err) => Exit::Retry(err),
        };
        match exit {
            Exit::Stop => break,
            Exit::Failed => {
                generation.release_runner();
                return;
            }
            Exit::Retry(err) => {
                tracing::warn!(projection = generation.name, error = %err, "projection runner retries after an error");
                generation.update(|info| {
                    info.last_error = Some(err);
                    info.retrying = true;
                });
                if sleep_or_stop(backoff.next_delay(), &mut stop).await {
                    break;
                }
            }
        }
    }
    generation.update(|info| {
        info.state = RunnerState::Stopped;
        info.retrying = false;
    });
    if generation.is_retired() {
        generation.close_writer().await;
    }
    generation.release_runner();
}

/// Follows the log from the generation's checkpoint until stopped or an error.
async fn follow(
    host: &Arc<Host>,
    slot: &Arc<Slot>,
    generation: &Arc<Generation>,
    writer: &Arc<Worker<ProjectionCore>>,
    stop: &mut tokio::sync::watch::Receiver<bool>,
    backoff: &mut Backoff,
) -> Exit {
    let Some(projection) = generation.projection.clone() else {
        return Exit::Stop;
    };
    let mut feed = Feed::new(
        host.store.clone(),
        *generation.checkpoint.borrow(),
        projection.filter(),
    );
    loop {
        let checkpoint = *generation.checkpoint.borrow();
        let next = feed
            .next_batch(checkpoint, stop, None, |oldest, full| {
                generation.update(|info| {
                    note_pending(&mut info.pending_since, &mut info.state, oldest, full);
                });
            })
            .await;
        let (events, through, caught_up) = match next {
            Next::Stop => return Exit::Stop,
            Next::Wake => continue,
            Next::Failed(err) => return Exit::Retry(err.to_string()),
            Next::Apply {
                events,
                through,
                caught_up,
            } => (events, through, caught_up),
        };
        if !events.is_empty() || through.is_some() {
            let through = through.unwrap_or(Position::ZERO);
            match writer
                .call(move |core| core.apply_batch(&events, through))
                .await
            {
                Err(err) => return Exit::Retry(err.to_string()),
                Ok(Err(err)) => return Exit::Retry(err.0),
                Ok(Ok(BatchOutcome::Applied { checkpoint, parked })) => {
                    backoff.reset();
                    generation.publish_checkpoint(checkpoint);
                    generation.update(|info| {
                        info.parked += parked;
                        info.pending_since = None;
                        info.retrying = false;
                    });
                }
                Ok(Ok(BatchOutcome::Stopped {
                    checkpoint,
                    parked,
                    position,
                    error,
                })) => {
                    tracing::error!(projection = generation.name, %position, %error, "projection stopped on an event it cannot apply");
                    generation.publish_checkpoint(checkpoint);
                    generation.update(|info| {
                        info.parked += parked;
                        info.state = RunnerState::Failed;
                        info.failed_at = Some(position);
                        info.last_error = Some(format!("event at position {position}: {error}"));
                        info.retrying = false;
                    });
                    return Exit::Failed;
                }
            }
        }
        if caught_up {
            if generation.info.lock().state != RunnerState::Live {
                generation.update(|info| {
                    info.state = RunnerState::Live;
                    info.pending_since = None;
                    info.retrying = false;
                });
            }
            if slot.is_building(generation)
                && let Err(err) = host.promote(slot, generation).await
            {
                return Exit::Retry(err.to_string());
            }
        }
    }
}
