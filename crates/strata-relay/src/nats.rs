//! The NATS JetStream sink: subject `<prefix>.<category>.<stream>`, `Nats-Msg-Id` = event
//! id, the envelope as payload, and a JetStream stream over `<prefix>.>` with a duplicate
//! window so a republished event is dropped. It must not reconnect behind the relay's
//! back (see [`BrokerSink::connect`]).

use std::time::Duration;

use async_nats::jetstream::{self, context::PublishAckFuture, stream};
use async_nats::{ConnectOptions, HeaderMap, header::NATS_MESSAGE_ID};
use async_trait::async_trait;
use strata_core::{Position, RecordedEvent};

use crate::config::redact;
use crate::{BrokerSink, Confirmation, RelayError, envelope, nats_subject};

/// How long a connection attempt and a JetStream request (an acknowledgement) may take.
const TIMEOUT: Duration = Duration::from_secs(5);

/// Publishes to NATS JetStream.
pub(crate) struct NatsSink {
    url: String,
    prefix: String,
    stream: String,
    duplicate_window: Duration,
    context: Option<jetstream::Context>,
}

impl NatsSink {
    pub(crate) fn new(url: &str, prefix: &str, stream: &str, duplicate_window: Duration) -> Self {
        Self {
            url: url.to_owned(),
            prefix: prefix.to_owned(),
            stream: stream.to_owned(),
            duplicate_window,
            context: None,
        }
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
impl BrokerSink for NatsSink {
    fn broker(&self) -> &'static str {
        "nats"
    }

    fn target(&self) -> String {
        redact(&self.url)
    }

    async fn connect(&mut self) -> Result<(), RelayError> {
        // Dropping the old client closes its connection once nothing holds it.
        self.context = None;
        // NOTE: one reconnect attempt at most (async-nats reads 0 as "forever"): a client
        // that reconnected by itself would flush publishes of a failed batch after the
        // relay has begun publishing it again, and could reorder a stream's events.
        let client = ConnectOptions::new()
            .max_reconnects(1)
            .connection_timeout(TIMEOUT)
            .request_timeout(Some(TIMEOUT))
            .connect(self.url.as_str())
            .await
            .map_err(|e| self.error(format!("cannot connect: {e}")))?;
        let context = jetstream::new(client);
        context
            .get_or_create_stream(stream::Config {
                name: self.stream.clone(),
                subjects: vec![format!("{}.>", self.prefix)],
                duplicate_window: self.duplicate_window,
                storage: stream::StorageType::File,
                ..Default::default()
            })
            .await
            .map_err(|e| self.error(format!("cannot ensure the stream {}: {e}", self.stream)))?;
        self.context = Some(context);
        Ok(())
    }

    async fn send(&mut self, events: &[RecordedEvent]) -> Result<Confirmation, RelayError> {
        let Some(context) = self.context.as_ref() else {
            return Err(self.error("not connected"));
        };
        // Publish the whole batch without waiting: the server stores the messages in the
        // order they were sent on the one connection, and the acknowledgements are
        // awaited by the confirmation while the relay sends the next batches.
        let mut acks: Vec<(PublishAckFuture, Position)> = Vec::with_capacity(events.len());
        for event in events {
            let mut headers = HeaderMap::new();
            headers.insert(NATS_MESSAGE_ID, event.id.to_string().as_str());
            let ack = context
                .publish_with_headers(
                    nats_subject(&self.prefix, event),
                    headers,
                    envelope(event).into(),
                )
                .await
                .map_err(|e| {
                    self.error(format!("cannot publish position {}: {e}", event.position))
                })?;
            acks.push((ack, event.position));
        }
        let target = self.target();
        Ok(Box::pin(async move {
            for (ack, position) in acks {
                ack.await.map_err(|e| RelayError::Broker {
                    broker: "nats",
                    target: target.clone(),
                    message: format!("position {position} not acknowledged: {e}"),
                })?;
            }
            Ok(())
        }))
    }
}
