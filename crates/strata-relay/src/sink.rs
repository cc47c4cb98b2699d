//! [`BrokerSink`]: the seam a broker implements. It owns the contract a relay relies on
//! to advance its checkpoint; it must not know about checkpoints or the log.

use async_trait::async_trait;
use futures::future::BoxFuture;
use strata_core::RecordedEvent;

use crate::RelayError;

/// The broker's answer for one batch handed over by [`BrokerSink::send`]: it resolves to
/// `Ok` once the broker confirmed every event of the batch (stored, or recognised as a
/// duplicate), and to `Err` when any of them was refused, lost or not confirmed in time.
/// It holds nothing of the sink, so the relay can await several at once.
pub type Confirmation = BoxFuture<'static, Result<(), RelayError>>;

/// One broker connection, driven by one relay.
///
/// The relay calls [`BrokerSink::connect`] before each session (the first, and after any
/// error), then [`BrokerSink::send`] with consecutive batches of the log in position
/// order, without waiting for the confirmations of earlier batches: several batches (at
/// most a window of events) are in flight at once. The sink must hand them to the broker
/// in the order it got them, on one connection. A Kafka producer fits the same shape:
/// connect builds the (idempotent) producer, send queues the batch keyed by stream, and
/// the confirmation awaits its delivery reports.
#[async_trait]
pub trait BrokerSink: Send + 'static {
    /// The broker's name, for status and logs (`nats`, `amqp`).
    fn broker(&self) -> &'static str;

    /// Where it publishes, without credentials, for status and logs.
    fn target(&self) -> String;

    /// Drops any previous connection and opens a new one, declaring what the messages
    /// need (a JetStream stream, an exchange). Nothing of an earlier connection may be
    /// sent after this returns, so that a batch published again after an error is never
    /// overtaken by the remains of its first attempt.
    async fn connect(&mut self) -> Result<(), RelayError>;

    /// Hands `events` to the broker, in the order given and after every batch handed
    /// over before on this connection, and returns their [`Confirmation`]. It returns
    /// once the broker's client has taken the batch (written or queued), not once the
    /// broker confirmed it. On `Err`, from here or from any outstanding confirmation,
    /// any prefix of the unconfirmed batches may have reached the broker; the relay
    /// drops every outstanding confirmation, reconnects and publishes again from the
    /// first unconfirmed event, with the same message ids.
    async fn send(&mut self, events: &[RecordedEvent]) -> Result<Confirmation, RelayError>;
}
