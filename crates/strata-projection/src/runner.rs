//! The projection's [`Sink`]: one generation fed by the shared supervise loop. It hands
//! each batch to the generation's writer thread (the synchronous `core`), counts parked
//! events, promotes a rebuilt generation once it has caught up, and gives up a rebuild
//! that failed so the answering generation keeps answering.
//!
//! It must not touch SQLite on the runtime: every database call goes to the writer
//! thread or `spawn_blocking`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use async_trait::async_trait;
use strata_core::{Position, RecordedEvent};
use strata_store::ReadFilter;

use crate::StopCause;
use crate::core::BatchOutcome;
use crate::generation::Generation;
use crate::host::{Host, Slot};
use crate::lane::Lane;
use crate::lease::Fence;
use crate::supervise::{Exit, Sink};

/// One generation of a projection, as its runner sees it.
pub(crate) struct GenerationSink {
    pub(crate) host: Arc<Host>,
    pub(crate) slot: Arc<Slot>,
    pub(crate) generation: Arc<Generation>,
}

#[async_trait]
impl Sink for GenerationSink {
    fn name(&self) -> &'static str {
        self.generation.name
    }

    fn lane(&self) -> &Lane {
        &self.generation.lane
    }

    fn filter(&self) -> Option<ReadFilter> {
        self.generation.projection.as_ref().map(|p| p.filter())
    }

    async fn open(self: Arc<Self>, _fence: Option<Fence>) -> Result<(), String> {
        let generation = self.generation.clone();
        match tokio::task::spawn_blocking(move || generation.writer()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(err)) => Err(err.to_string()),
            Err(err) => Err(err.to_string()),
        }
    }

    async fn apply(&self, events: Vec<RecordedEvent>, through: Position) -> Result<Position, Exit> {
        let generation = &self.generation;
        // `open` made the writer; only a shutdown closes it meanwhile.
        let writer = generation
            .current_writer()
            .ok_or_else(|| Exit::Retry(format!("the writer of {} is closed", generation.name)))?;
        let outcome = writer
            .call(move |core| core.apply_batch(&events, through))
            .await;
        match outcome {
            Err(err) => Err(Exit::Retry(err.to_string())),
            Ok(Err(err)) => Err(Exit::Retry(err.0)),
            Ok(Ok(BatchOutcome::Applied { checkpoint, parked })) => {
                generation.parked.fetch_add(parked, Ordering::AcqRel);
                Ok(checkpoint)
            }
            Ok(Ok(BatchOutcome::Stopped {
                checkpoint,
                parked,
                position,
                error,
            })) => {
                generation.parked.fetch_add(parked, Ordering::AcqRel);
                generation.lane.publish_checkpoint(checkpoint);
                Err(Exit::Failed(StopCause::PoisonEvent { position, error }))
            }
        }
    }

    async fn caught_up(&self) -> Result<(), Exit> {
        let writer = self.generation.current_writer().ok_or_else(|| {
            Exit::Retry(format!("the writer of {} is closed", self.generation.name))
        })?;
        match writer.call(|core| core.create_deferred_indexes()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => return Err(Exit::Retry(err.0)),
            Err(err) => return Err(Exit::Retry(err.to_string())),
        }
        if self.slot.is_building(&self.generation)
            && let Err(err) = self.host.promote(&self.slot, &self.generation).await
        {
            return Err(Exit::Retry(err.to_string()));
        }
        Ok(())
    }

    async fn ended(&self, failed: Option<&StopCause>) {
        if let Some(cause) = failed
            && self.slot.is_building(&self.generation)
        {
            self.host.give_up(&self.slot, &self.generation, cause).await;
        }
        if self.generation.is_retired() {
            self.generation.close_writer().await;
        }
    }
}
