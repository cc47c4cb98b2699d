//! The seam between the operations routes and whatever runs the relays to message
//! brokers: the server asks a [`RelayHost`] for each relay's status and serves it under
//! `/relays` and in the metrics. It never runs a relay and knows no broker.

use serde::Serialize;
use utoipa::ToSchema;

/// One relay's health, as `/relays` serves it.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct RelayView {
    /// The relay's name (it names its checkpoint).
    pub name: String,
    /// Its broker: `nats`, `amqp`, `kafka`.
    pub broker: String,
    /// Where it publishes, without credentials.
    pub target: String,
    /// The last position the broker confirmed (0: nothing yet).
    pub checkpoint: u64,
    /// Events committed to the log and not yet confirmed by the broker.
    pub lag_events: u64,
    /// `connecting`, `catching_up`, `live`, `retrying`, `standby` (another server holds
    /// its lease and publishes), `stopped` or `failed`.
    pub state: String,
    /// The last fault it met, if any since it last published.
    pub last_error: Option<String>,
    /// Events the broker confirmed since the process started.
    pub published: u64,
    /// Its lease, when servers sharing one database take turns to run it (absent when
    /// this server alone runs it).
    pub lease: Option<strata_projection::LeaseStatus>,
}

/// What runs the relays, as the server needs it.
pub trait RelayHost: Send + Sync + 'static {
    /// Every relay's status, with lag measured against the store's head.
    fn status(&self) -> Vec<RelayView>;
}
