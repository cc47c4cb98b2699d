//! [`BrokerSink`]: the seam a broker implements. It owns the contract a relay relies on
//! to advance its checkpoint; it must not know about checkpoints or the log.

use async_trait::async_trait;
use strata_core::RecordedEvent;

use crate::RelayError;

/// One broker connection, driven by one relay.
///
/// The relay calls [`BrokerSink::connect`] before each session (the first, and after any
/// error), then [`BrokerSink::publish`] with consecutive batches of the log in position
/// order. A Kafka producer fits the same shape: connect builds the (idempotent)
/// producer, publish sends the batch keyed by stream and awaits every delivery report.
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

    /// Publishes `events` in the order given and returns `Ok` only once the broker
    /// confirmed every one of them (stored, or recognised as a duplicate). On `Err` any
    /// prefix of the batch may have reached the broker; the relay reconnects and
    /// publishes the whole batch again, with the same message ids.
    async fn publish(&mut self, events: &[RecordedEvent]) -> Result<(), RelayError>;
}
