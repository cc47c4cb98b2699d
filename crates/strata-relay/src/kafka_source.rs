//! The Kafka side of a remote read model: every partition of the relay's topic (key =
//! stream, so each stream's order holds within its partition), each read from the
//! offset after the one the read model stored for it. The offsets live only in the read
//! model, in the same transaction as its data, so no consumer group commits anything.
//! It must not deliver a partition's messages out of their order.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt as _;
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::message::Message as _;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::remote::{Delivered, EnvelopeSource};
use crate::{DEFAULT_KAFKA_TOPIC, RelayError};

/// How long fetching the topic's metadata may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Consumes the relay's Kafka topic.
pub struct KafkaSource {
    brokers: String,
    topic: String,
    group: String,
    consumer: Option<Arc<StreamConsumer>>,
}

impl KafkaSource {
    /// A source over `topic` at the bootstrap servers `brokers` (`host:port[,…]`);
    /// `group` names the client to the broker (no offsets are committed under it).
    pub fn new(brokers: &str, topic: &str, group: &str) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            group: group.to_owned(),
            consumer: None,
        }
    }

    /// A source over the relay's default topic.
    pub fn with_default_topic(brokers: &str, group: &str) -> Self {
        Self::new(brokers, DEFAULT_KAFKA_TOPIC, group)
    }

    fn error(&self, message: impl std::fmt::Display) -> RelayError {
        RelayError::Broker {
            broker: "kafka",
            target: self.target(),
            message: message.to_string(),
        }
    }
}

#[async_trait]
impl EnvelopeSource for KafkaSource {
    fn broker(&self) -> &'static str {
        "kafka"
    }

    fn target(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }

    async fn connect(&mut self, after: &BTreeMap<u32, u64>) -> Result<(), RelayError> {
        if let Some(old) = self.consumer.take() {
            let _ = tokio::task::spawn_blocking(move || drop(old)).await;
        }
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", &self.brokers)
            .set("group.id", &self.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("socket.connection.setup.timeout.ms", "10000")
            .set("log_level", "3")
            .create()
            .map_err(|e| self.error(format!("cannot create the consumer: {e}")))?;
        let consumer = Arc::new(consumer);
        let topic = self.topic.clone();
        let probe = consumer.clone();
        let partitions = tokio::task::spawn_blocking(move || {
            probe
                .fetch_metadata(Some(&topic), TIMEOUT)
                .map(|m| m.topics().first().map_or(0, |t| t.partitions().len()))
        })
        .await
        .map_err(|e| self.error(format!("cannot read the topic's metadata: {e}")))?
        .map_err(|e| self.error(format!("cannot read the topic's metadata: {e}")))?;
        if partitions == 0 {
            return Err(self.error(format!("no topic {}", self.topic)));
        }
        // NOTE: every partition, each from its own stored offset; one the read model
        // never read from (a new partition too) from its beginning.
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            let offset = match u32::try_from(partition).ok().and_then(|p| after.get(&p)) {
                Some(offset) => Offset::Offset(i64::try_from(offset + 1).unwrap_or(i64::MAX)),
                None => Offset::Beginning,
            };
            let partition = i32::try_from(partition).unwrap_or(i32::MAX);
            assignment
                .add_partition_offset(&self.topic, partition, offset)
                .map_err(|e| self.error(format!("cannot assign partition {partition}: {e}")))?;
        }
        consumer
            .assign(&assignment)
            .map_err(|e| self.error(format!("cannot assign the partition: {e}")))?;
        self.consumer = Some(consumer);
        Ok(())
    }

    async fn next(&mut self, max: usize) -> Result<Vec<Delivered>, RelayError> {
        let Some(consumer) = self.consumer.clone() else {
            return Err(self.error("not connected"));
        };
        let mut out = Vec::new();
        while out.len() < max.max(1) {
            let received = if out.is_empty() {
                consumer.recv().await
            } else {
                match consumer.recv().now_or_never() {
                    Some(received) => received,
                    None => break,
                }
            };
            match received {
                Ok(message) => out.push(Delivered {
                    payload: message.payload().unwrap_or_default().to_vec(),
                    partition: u32::try_from(message.partition()).unwrap_or(0),
                    offset: u64::try_from(message.offset()).unwrap_or(0),
                }),
                Err(e) if out.is_empty() => {
                    return Err(self.error(format!("cannot consume: {e}")));
                }
                // Deliver what arrived; the fault comes back on the next call.
                Err(_) => break,
            }
        }
        Ok(out)
    }

    async fn acknowledge(&mut self, _offsets: &BTreeMap<u32, u64>) -> Result<(), RelayError> {
        // The offset is stored with the read model; the broker keeps nothing for it.
        Ok(())
    }
}
