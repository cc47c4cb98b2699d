//! Relays: strata's event log published to message brokers (DESIGN §1, "relays").
//!
//! A relay follows the log from its checkpoint and publishes every event, in position
//! order, to one broker, with a window of batches in flight; the checkpoint advances
//! only over events the broker confirmed, never past an unconfirmed one. The log is the outbox: nothing is written twice, and a relay that
//! restarts (or whose broker went away) publishes again from its checkpoint, so a
//! consumer sees every event at least once, with the event id as the message id for the
//! broker's (or the consumer's) de-duplication.
//!
//! - [`Relays`] runs relays: one task each, reconnecting with backoff, reporting a
//!   [`RelayStatus`]. With the `postgres` feature, [`Relays::on_postgres`] runs them on
//!   servers sharing one PostgreSQL database: each relay under a lease, on one server at
//!   a time, from a checkpoint kept in that database.
//! - [`RelayConfig`] says where a relay publishes; [`RelayConfig::from_url`] reads the
//!   `--relay URL` form.
//! - [`BrokerSink`] is the seam a broker implements: connect, hand a batch to the broker
//!   and return its [`Confirmation`], which resolves once every message of it is
//!   confirmed; a relay keeps several batches in flight.
//! - [`envelope`] is the versioned JSON message every broker carries; [`parse_envelope`]
//!   reads it back.
//! - [`RemoteReadSide`] is the other end: a read model on another machine, fed by an
//!   [`EnvelopeSource`] ([`NatsSource`]: a durable JetStream consumer; [`KafkaSource`]:
//!   the partitions of the relay's topic) into a [`RemoteReadModel`] (any
//!   `SqliteProjection`), de-duplicating by event identity (each stream's last version
//!   applied) in the model's own transaction, holding back an event whose predecessor
//!   has not arrived, and resuming from the broker offsets stored there.
//!
//! With the `sns` feature, [`SqsConsumer`] is the other end of an SNS relay: it applies
//! the envelopes an SQS queue receives to a SQLite read model, once each.
//!
//! Brokers are cargo features: `nats` (NATS JetStream), `amqp` (RabbitMQ), `kafka` (Kafka,
//! through librdkafka) and `sns` (AWS SNS and SQS, not in the default build). This crate
//! reads the log only through the `EventStore` trait, never writes to it, and knows
//! nothing of HTTP.

mod checkpoint;
mod config;
mod envelope;
mod error;
mod names;
mod relay;
mod remote;
mod sink;
mod window;

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "sns")]
mod aws;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "kafka")]
mod kafka_source;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "nats")]
mod nats_source;
#[cfg(feature = "postgres")]
mod pg;
#[cfg(feature = "sns")]
mod sns;
#[cfg(feature = "sns")]
mod sqs;

pub use config::{
    DEFAULT_AMQP_EXCHANGE, DEFAULT_KAFKA_PARTITIONS, DEFAULT_KAFKA_TOPIC,
    DEFAULT_NATS_DUPLICATE_WINDOW, DEFAULT_NATS_PREFIX, DEFAULT_NATS_STREAM, Destination,
    RelayConfig,
};
pub use envelope::{ENVELOPE_FORMAT, envelope, parse_envelope};
pub use error::RelayError;
pub use names::{amqp_routing_key, nats_subject, sns_group_id, subject_token};
pub use relay::{RelayState, RelayStatus, Relays};
pub use remote::{
    Delivered, EnvelopeSource, RemoteCheckpoint, RemoteGap, RemoteReadModel, RemoteReadSide,
    RemoteStatus,
};
pub use sink::{BrokerSink, Confirmation};
#[cfg(feature = "sns")]
pub use sqs::{ConsumedEvent, PollReport, SqsConsumer, SqsConsumerConfig, SqsReadModel};

#[cfg(feature = "kafka")]
pub use kafka::{KAFKA_EVENT_ID_HEADER, KAFKA_EVENT_TYPE_HEADER};
#[cfg(feature = "kafka")]
pub use kafka_source::KafkaSource;
#[cfg(feature = "nats")]
pub use nats_source::NatsSource;

#[cfg(test)]
mod tests;
