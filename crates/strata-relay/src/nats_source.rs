//! The NATS JetStream side of a remote read model: a durable pull consumer over the
//! relay's JetStream stream, acknowledged (`AckPolicy::All`) only after the read model
//! committed. The read model's stored stream sequence decides where it starts; the
//! consumer is kept across sessions only when it stands exactly there. It must not
//! deliver a message out of the stream's order.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::ConnectOptions;
use async_nats::jetstream::{self, consumer};
use async_trait::async_trait;
use futures::{FutureExt as _, StreamExt as _};

use crate::config::redact;
use crate::remote::{Delivered, EnvelopeSource};
use crate::{DEFAULT_NATS_STREAM, RelayError};

/// How long a connection attempt and a JetStream request may take.
const TIMEOUT: Duration = Duration::from_secs(5);
/// How long the server waits for an acknowledgement before it delivers again.
const ACK_WAIT: Duration = Duration::from_secs(60);

/// Consumes the relay's JetStream stream through a durable pull consumer.
pub struct NatsSource {
    url: String,
    stream: String,
    durable: String,
    messages: Option<consumer::pull::Stream>,
    last: Option<(u64, jetstream::Message)>,
    fault: Option<RelayError>,
}

impl NatsSource {
    /// A source over the JetStream stream `stream` (the relay's, `STRATA_EVENTS` by
    /// default) at `url`, through the durable consumer `durable` (1 to 64 of
    /// `A-Z a-z 0-9 - _`).
    pub fn new(url: &str, stream: &str, durable: &str) -> Self {
        Self {
            url: url.to_owned(),
            stream: stream.to_owned(),
            durable: durable.to_owned(),
            messages: None,
            last: None,
            fault: None,
        }
    }

    /// A source over the relay's default stream.
    pub fn with_default_stream(url: &str, durable: &str) -> Self {
        Self::new(url, DEFAULT_NATS_STREAM, durable)
    }

    fn error(&self, message: impl std::fmt::Display) -> RelayError {
        RelayError::Broker {
            broker: "nats",
            target: redact(&self.url),
            message: message.to_string(),
        }
    }
}

#[async_trait]
impl EnvelopeSource for NatsSource {
    fn broker(&self) -> &'static str {
        "nats"
    }

    fn target(&self) -> String {
        format!("{}/{}/{}", redact(&self.url), self.stream, self.durable)
    }

    async fn connect(&mut self, after: &BTreeMap<u32, u64>) -> Result<(), RelayError> {
        // One JetStream stream is one partition.
        let after = after.get(&0).copied();
        self.messages = None;
        self.last = None;
        self.fault = None;
        let client = ConnectOptions::new()
            .max_reconnects(1)
            .connection_timeout(TIMEOUT)
            .request_timeout(Some(TIMEOUT))
            .connect(self.url.as_str())
            .await
            .map_err(|e| self.error(format!("cannot connect: {e}")))?;
        let context = jetstream::new(client);
        let stream = context
            .get_stream(&self.stream)
            .await
            .map_err(|e| self.error(format!("no stream {}: {e}", self.stream)))?;
        let at = after.unwrap_or(0);
        // NOTE: a consumer that delivered beyond its acknowledged floor would send new
        // messages before redelivering the unacknowledged ones; one that stands
        // elsewhere than the read model would skip or repeat. Either is made again at
        // the read model's sequence, which is the truth.
        let keep = match stream.consumer_info(&self.durable).await {
            Ok(info) => {
                info.delivered.stream_sequence == at && info.ack_floor.stream_sequence == at
            }
            Err(_) => false,
        };
        if !keep {
            let _ = stream.delete_consumer(&self.durable).await;
            let deliver_policy = match after {
                Some(offset) => consumer::DeliverPolicy::ByStartSequence {
                    start_sequence: offset + 1,
                },
                None => consumer::DeliverPolicy::All,
            };
            stream
                .create_consumer(consumer::pull::Config {
                    durable_name: Some(self.durable.clone()),
                    deliver_policy,
                    ack_policy: consumer::AckPolicy::All,
                    ack_wait: ACK_WAIT,
                    ..Default::default()
                })
                .await
                .map_err(|e| {
                    self.error(format!("cannot create the consumer {}: {e}", self.durable))
                })?;
        }
        let consumer: consumer::PullConsumer = stream
            .get_consumer(&self.durable)
            .await
            .map_err(|e| self.error(format!("no consumer {}: {e}", self.durable)))?;
        let messages = consumer
            .messages()
            .await
            .map_err(|e| self.error(format!("cannot consume: {e}")))?;
        self.messages = Some(messages);
        Ok(())
    }

    async fn next(&mut self, max: usize) -> Result<Vec<Delivered>, RelayError> {
        if let Some(fault) = self.fault.take() {
            return Err(fault);
        }
        let Some(mut messages) = self.messages.take() else {
            return Err(self.error("not connected"));
        };
        let mut out = Vec::new();
        let mut result = Ok(());
        while out.len() < max.max(1) {
            let next = if out.is_empty() {
                messages.next().await
            } else {
                match messages.next().now_or_never() {
                    Some(next) => next,
                    None => break,
                }
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(e)) => {
                    result = Err(self.error(format!("cannot consume: {e}")));
                    break;
                }
                None => {
                    result = Err(self.error("the consumer ended"));
                    break;
                }
            };
            let sequence = message
                .info()
                .map_err(|e| self.error(format!("a message without its metadata: {e}")))?
                .stream_sequence;
            // The stream's sequences are consecutive: a hole means a message was lost
            // on the way (it would come back later, after its successors).
            if let Some((last, _)) = &self.last
                && sequence != last + 1
            {
                result = Err(self.error(format!(
                    "stream sequence {sequence} arrived after {last}; consuming again from the read model's checkpoint"
                )));
                break;
            }
            out.push(Delivered {
                payload: message.payload.to_vec(),
                partition: 0,
                offset: sequence,
            });
            self.last = Some((sequence, message));
        }
        self.messages = Some(messages);
        match result {
            Err(err) if out.is_empty() => Err(err),
            // Deliver what arrived in order; the fault shows on the next call.
            Err(err) => {
                self.fault = Some(err);
                Ok(out)
            }
            Ok(()) => Ok(out),
        }
    }

    async fn acknowledge(&mut self, offsets: &BTreeMap<u32, u64>) -> Result<(), RelayError> {
        let Some(&offset) = offsets.get(&0) else {
            return Ok(());
        };
        match &self.last {
            // AckPolicy::All: this acknowledges every message before it too.
            Some((sequence, message)) if *sequence == offset => message
                .ack()
                .await
                .map_err(|e| self.error(format!("cannot acknowledge {offset}: {e}"))),
            _ => Ok(()),
        }
    }
}
