//! The Kafka sink: one topic, key = stream (a stream's events share a partition, so their
//! order holds), headers `strata-event-id` and `strata-event-type`, the envelope as value,
//! through an idempotent producer (`enable.idempotence`, `acks=all`). It creates the topic
//! when the broker lacks it. It must not report a batch confirmed before every delivery
//! report of it came back successful, and must not let a dropped producer send anything
//! after a new one started (see [`BrokerSink::connect`]).

use std::time::Duration;

use async_trait::async_trait;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use strata_core::RecordedEvent;

use crate::{BrokerSink, Confirmation, RelayError, envelope};

/// The header that carries the event id (the key a consumer de-duplicates by).
pub const KAFKA_EVENT_ID_HEADER: &str = "strata-event-id";
/// The header that carries the event type.
pub const KAFKA_EVENT_TYPE_HEADER: &str = "strata-event-type";

/// How long connecting (metadata, topic creation) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long librdkafka keeps trying to deliver one message before it reports a failure.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes to a Kafka topic.
pub(crate) struct KafkaSink {
    brokers: String,
    topic: String,
    partitions: i32,
    producer: Option<FutureProducer>,
}

impl KafkaSink {
    pub(crate) fn new(brokers: &str, topic: &str, partitions: i32) -> Self {
        Self {
            brokers: brokers.to_owned(),
            topic: topic.to_owned(),
            partitions,
            producer: None,
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> RelayError {
        RelayError::Broker {
            broker: "kafka",
            target: self.target(),
            message: message.to_string(),
        }
    }

    /// The settings both the producer and the admin client share.
    fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.brokers)
            .set("socket.connection.setup.timeout.ms", "10000")
            // librdkafka logs every lost connection at error level; the relay reports
            // the failure itself, once, through its status.
            .set("log_level", "3");
        config
    }

    /// Creates the topic unless the broker has it.
    async fn ensure_topic(&self) -> Result<(), RelayError> {
        let admin: AdminClient<DefaultClientContext> = self
            .client_config()
            .create()
            .map_err(|e| self.error(format!("cannot create the admin client: {e}")))?;
        let topic = NewTopic::new(
            &self.topic,
            self.partitions,
            // -1: the broker's default replication factor.
            TopicReplication::Fixed(-1),
        );
        let options = AdminOptions::new().request_timeout(Some(CONNECT_TIMEOUT));
        let results = admin
            .create_topics([&topic], &options)
            .await
            .map_err(|e| self.error(format!("cannot create the topic {}: {e}", self.topic)))?;
        // Dropping a client joins its polling thread: not on a runtime worker.
        let _ = tokio::task::spawn_blocking(move || drop(admin)).await;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(
                        self.error(format!("cannot create the topic {}: {code}", self.topic))
                    );
                }
            }
        }
        Ok(())
    }
}

#[async_trait]
impl BrokerSink for KafkaSink {
    fn broker(&self) -> &'static str {
        "kafka"
    }

    fn target(&self) -> String {
        format!("kafka://{}/{}", self.brokers, self.topic)
    }

    async fn connect(&mut self) -> Result<(), RelayError> {
        // NOTE: the old producer is dropped first, which purges what it still queued and
        // in flight: nothing of a failed batch reaches the broker after the new producer
        // has begun publishing it again.
        if let Some(old) = self.producer.take() {
            tokio::task::spawn_blocking(move || drop(old))
                .await
                .map_err(|e| self.error(format!("cannot close the producer: {e}")))?;
        }
        self.ensure_topic().await?;
        let producer: FutureProducer = self
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            // NOTE: at most 5 requests in flight per connection is what lets the
            // idempotent producer keep a partition's order across retries.
            .set("max.in.flight.requests.per.connection", "5")
            // Batches of up to 10,000 messages (1 MB), filled for at most 5 ms: the
            // relay keeps a window of events queued, so requests stay full.
            .set("linger.ms", "5")
            .set("batch.num.messages", "10000")
            .set("batch.size", "1000000")
            .set("compression.type", "none")
            .set(
                "message.timeout.ms",
                DELIVERY_TIMEOUT.as_millis().to_string(),
            )
            .create()
            .map_err(|e| self.error(format!("cannot create the producer: {e}")))?;
        self.producer = Some(producer);
        Ok(())
    }

    async fn send(&mut self, events: &[RecordedEvent]) -> Result<Confirmation, RelayError> {
        let Some(producer) = self.producer.as_ref() else {
            return Err(self.error("not connected"));
        };
        // Queue the whole batch without waiting: the producer batches and pipelines it
        // with the ones before and after, and the idempotent producer keeps each
        // partition's order across its retries (at most 5 requests in flight).
        let mut reports = Vec::with_capacity(events.len());
        for event in events {
            let id = event.id.to_string();
            let headers = OwnedHeaders::new_with_capacity(2)
                .insert(Header {
                    key: KAFKA_EVENT_ID_HEADER,
                    value: Some(id.as_str()),
                })
                .insert(Header {
                    key: KAFKA_EVENT_TYPE_HEADER,
                    value: Some(event.event_type.as_str()),
                });
            let payload = envelope(event);
            let record = FutureRecord::to(&self.topic)
                .key(event.stream.as_str())
                .payload(payload.as_slice())
                .headers(headers);
            let report = producer.send_result(record).map_err(|(e, _)| {
                self.error(format!("cannot publish position {}: {e}", event.position))
            })?;
            reports.push((report, event.position));
        }
        let target = self.target();
        Ok(Box::pin(async move {
            for (report, position) in reports {
                let message = match report.await {
                    Ok(Ok(_)) => continue,
                    Ok(Err((e, _))) => format!("position {position} not delivered: {e}"),
                    Err(_) => {
                        format!("position {position}: the producer dropped its delivery report")
                    }
                };
                return Err(RelayError::Broker {
                    broker: "kafka",
                    target,
                    message,
                });
            }
            Ok(())
        }))
    }
}
