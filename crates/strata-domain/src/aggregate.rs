//! The aggregate: a pure `decide` and an infallible `evolve`.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::EventCodec;

/// A rule of the domain refused a command. Carries a stable code for the edges (the HTTP
/// API answers 422 with it).
pub trait DomainError: std::error::Error + Send + Sync + 'static {
    /// A short, stable, snake_case code naming the broken rule (`insufficient_stock`).
    fn code(&self) -> &'static str;
}

/// A consistency boundary whose state is the fold of its events.
///
/// `decide` and `evolve` must be pure: no I/O, no clocks, no randomness. Anything from
/// the outside world (a time, a price from elsewhere) comes in the command.
pub trait Aggregate:
    Default + Clone + Send + Sync + Serialize + DeserializeOwned + 'static
{
    /// The stream category: an aggregate with id `x` lives in stream `{CATEGORY}-{x}`.
    const CATEGORY: &'static str;
    /// The version of the snapshot shape ([`Aggregate`] serialized as JSON). Bump it when
    /// the state's shape changes; older snapshots are then ignored and rebuilt.
    const SNAPSHOT_VERSION: u32 = 1;
    /// Take a snapshot every this many events (`None`: never).
    const SNAPSHOT_EVERY: Option<u64> = None;

    /// What callers ask of the aggregate.
    type Command: Send + Sync;
    /// What the aggregate records.
    type Event: EventCodec + Clone + Send + Sync;
    /// Why a command is refused.
    type Error: DomainError;

    /// Decides which events a command produces, or refuses it. Pure.
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, Self::Error>;

    /// Applies one event to the state. Infallible: an event is a fact.
    fn evolve(self, event: &Self::Event) -> Self;
}
