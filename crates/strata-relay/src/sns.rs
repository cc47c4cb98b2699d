//! The AWS SNS sink: the envelope as message, attributes `event_id`, `event_type`,
//! `stream` and `position`, and on a FIFO topic `MessageGroupId` = the stream's group id
//! and `MessageDeduplicationId` = event id. It publishes with PublishBatch (at most 10
//! messages and 256 KiB a call), one call after the other, and must not report a batch
//! confirmed unless SNS accepted every message of it.

use async_trait::async_trait;
use aws_sdk_sns::Client;
use aws_sdk_sns::types::{MessageAttributeValue, PublishBatchRequestEntry};
use strata_core::RecordedEvent;

use crate::aws::{describe, sdk_config};
use crate::{BrokerSink, Confirmation, RelayError, envelope, sns_group_id};

/// The most messages one PublishBatch carries.
const BATCH_MESSAGES: usize = 10;
/// The most bytes (messages and attributes) one PublishBatch or one message carries.
const BATCH_BYTES: usize = 256 * 1024;

/// Publishes to an SNS topic.
pub(crate) struct SnsSink {
    topic_arn: String,
    endpoint: Option<String>,
    region: String,
    fifo: bool,
    client: Option<Client>,
}

impl SnsSink {
    pub(crate) fn new(topic_arn: &str, endpoint: Option<&str>, region: &str) -> Self {
        Self {
            topic_arn: topic_arn.to_owned(),
            endpoint: endpoint.map(str::to_owned),
            region: region.to_owned(),
            fifo: topic_arn.ends_with(".fifo"),
            client: None,
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> RelayError {
        RelayError::Broker {
            broker: "sns",
            target: self.topic_arn.clone(),
            message: message.to_string(),
        }
    }

    /// The PublishBatch entry of `event`, and its size as SNS counts it.
    fn entry(
        &self,
        event: &RecordedEvent,
    ) -> Result<(PublishBatchRequestEntry, usize), RelayError> {
        let message = String::from_utf8(envelope(event)).map_err(|_| {
            self.error(format!(
                "the envelope of position {} is not UTF-8",
                event.position
            ))
        })?;
        let id = event.id.to_string();
        let attributes = [
            ("event_id", "String", id.clone()),
            ("event_type", "String", event.event_type.as_str().to_owned()),
            ("stream", "String", event.stream.as_str().to_owned()),
            ("position", "Number", event.position.0.to_string()),
        ];
        let mut size = message.len();
        let mut entry = PublishBatchRequestEntry::builder()
            .id(event.position.0.to_string())
            .message(message);
        for (name, data_type, value) in attributes {
            size += name.len() + data_type.len() + value.len();
            let value = MessageAttributeValue::builder()
                .data_type(data_type)
                .string_value(value)
                .build()
                .map_err(|e| self.error(format!("attribute {name}: {e}")))?;
            entry = entry.message_attributes(name, value);
        }
        if self.fifo {
            entry = entry
                .message_group_id(sns_group_id(event.stream.as_str()))
                .message_deduplication_id(id);
        }
        let entry = entry
            .build()
            .map_err(|e| self.error(format!("position {}: {e}", event.position)))?;
        if size > BATCH_BYTES {
            return Err(self.error(format!(
                "position {} is {size} bytes as a message, over SNS's {BATCH_BYTES}",
                event.position
            )));
        }
        Ok((entry, size))
    }

    /// One PublishBatch call; `Ok` only when SNS accepted every entry.
    async fn call(
        &self,
        client: &Client,
        entries: Vec<PublishBatchRequestEntry>,
        first: &RecordedEvent,
    ) -> Result<(), RelayError> {
        let count = entries.len();
        let output = client
            .publish_batch()
            .topic_arn(&self.topic_arn)
            .set_publish_batch_request_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                self.error(format!(
                    "cannot publish from position {}: {}",
                    first.position,
                    describe(&e)
                ))
            })?;
        if let Some(failed) = output.failed().first() {
            return Err(self.error(format!(
                "position {} refused: {} {}",
                failed.id(),
                failed.code(),
                failed.message().unwrap_or_default()
            )));
        }
        if output.successful().len() != count {
            return Err(self.error(format!(
                "{} of {count} messages from position {} confirmed",
                output.successful().len(),
                first.position
            )));
        }
        Ok(())
    }
}

#[async_trait]
impl BrokerSink for SnsSink {
    fn broker(&self) -> &'static str {
        "sns"
    }

    fn target(&self) -> String {
        self.topic_arn.clone()
    }

    async fn connect(&mut self) -> Result<(), RelayError> {
        self.client = None;
        let config = sdk_config(self.endpoint.as_deref(), &self.region).await;
        let client = Client::new(&config);
        // The topic must exist: the relay does not create it (its subscriptions, policy
        // and FIFO settings are the operator's).
        client
            .get_topic_attributes()
            .topic_arn(&self.topic_arn)
            .send()
            .await
            .map_err(|e| self.error(format!("cannot reach the topic: {}", describe(&e))))?;
        self.client = Some(client);
        Ok(())
    }

    async fn send(&mut self, events: &[RecordedEvent]) -> Result<Confirmation, RelayError> {
        // SNS confirms each call as it answers: the batch is confirmed once sent.
        self.publish(events).await?;
        Ok(Box::pin(std::future::ready(Ok(()))))
    }
}

impl SnsSink {
    /// Publishes `events` in calls of at most [`BATCH_MESSAGES`], one after the other,
    /// and returns once SNS accepted every one.
    async fn publish(&mut self, events: &[RecordedEvent]) -> Result<(), RelayError> {
        let Some(client) = self.client.clone() else {
            return Err(self.error("not connected"));
        };
        // NOTE: one call after the other, never in parallel: on a FIFO topic a stream's
        // events must reach SNS in order, and SNS orders a group by arrival.
        let mut entries = Vec::with_capacity(BATCH_MESSAGES);
        let mut bytes = 0;
        let mut first = None;
        for event in events {
            let (entry, size) = self.entry(event)?;
            if entries.len() == BATCH_MESSAGES || bytes + size > BATCH_BYTES {
                let head = first.take().unwrap_or(event);
                self.call(&client, std::mem::take(&mut entries), head)
                    .await?;
                bytes = 0;
            }
            first.get_or_insert(event);
            entries.push(entry);
            bytes += size;
        }
        if let Some(head) = first {
            self.call(&client, entries, head).await?;
        }
        Ok(())
    }
}
