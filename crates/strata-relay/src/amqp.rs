//! The RabbitMQ sink: a durable topic exchange, routing key `<category>.<type>`,
//! persistent messages with `message_id` = event id and the envelope as body, on a
//! channel with publisher confirms. It must not recover a connection by itself (lapin's
//! auto-recovery stays off): the relay reconnects and republishes from its checkpoint.

use std::time::Duration;

use async_trait::async_trait;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
    PublisherConfirm,
};
use strata_core::{Position, RecordedEvent};

use crate::config::redact;
use crate::{BrokerSink, Confirmation as Confirmed, RelayError, amqp_routing_key, envelope};

/// AMQP's delivery mode for a message the broker writes to disk.
const PERSISTENT: u8 = 2;
/// How long connecting (with the channel and the exchange) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a batch's confirmations may take from when the relay begins to await them
/// (at once: it awaits every batch in flight): a broker that went silent without
/// closing the connection must not hold the relay forever.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);
/// How long closing a previous connection may take (it is likely gone already).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Publishes to a RabbitMQ topic exchange.
pub(crate) struct AmqpSink {
    url: String,
    exchange: String,
    session: Option<(Connection, Channel)>,
}

impl AmqpSink {
    pub(crate) fn new(url: &str, exchange: &str) -> Self {
        Self {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
            session: None,
        }
    }

    fn error(&self, message: impl std::fmt::Display) -> RelayError {
        RelayError::Broker {
            broker: "amqp",
            target: redact(&self.url),
            message: message.to_string(),
        }
    }
}

#[async_trait]
impl BrokerSink for AmqpSink {
    fn broker(&self) -> &'static str {
        "amqp"
    }

    fn target(&self) -> String {
        redact(&self.url)
    }

    async fn connect(&mut self) -> Result<(), RelayError> {
        if let Some((connection, _)) = self.session.take() {
            // Best effort: the connection is likely gone already.
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT, connection.close(200, "reconnecting".into()))
                    .await;
        }
        match tokio::time::timeout(CONNECT_TIMEOUT, self.open()).await {
            Ok(result) => result,
            Err(_) => Err(self.error(format!(
                "no connection within {} s",
                CONNECT_TIMEOUT.as_secs()
            ))),
        }
    }

    async fn send(&mut self, events: &[RecordedEvent]) -> Result<Confirmed, RelayError> {
        let Some((_, channel)) = self.session.as_ref() else {
            return Err(self.error("not connected"));
        };
        // Publish the whole batch without waiting: one channel keeps the order, and the
        // broker confirms in order while the relay publishes the next batches.
        let mut confirms: Vec<(PublisherConfirm, Position)> = Vec::with_capacity(events.len());
        for event in events {
            let properties = BasicProperties::default()
                .with_message_id(event.id.to_string().into())
                .with_type(event.event_type.as_str().into())
                .with_content_type("application/json".into())
                .with_delivery_mode(PERSISTENT)
                .with_app_id("strata".into());
            let confirm = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    amqp_routing_key(event).into(),
                    BasicPublishOptions::default(),
                    &envelope(event),
                    properties,
                )
                .await
                .map_err(|e| {
                    self.error(format!("cannot publish position {}: {e}", event.position))
                })?;
            confirms.push((confirm, event.position));
        }
        let target = self.target();
        Ok(Box::pin(async move {
            let message = match tokio::time::timeout(CONFIRM_TIMEOUT, confirmed(confirms)).await {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(message)) => message,
                Err(_) => format!(
                    "the batch was not confirmed within {} s",
                    CONFIRM_TIMEOUT.as_secs()
                ),
            };
            Err(RelayError::Broker {
                broker: "amqp",
                target,
                message,
            })
        }))
    }
}

/// Awaits every confirmation of a batch, in order; answers what went wrong first.
async fn confirmed(confirms: Vec<(PublisherConfirm, Position)>) -> Result<(), String> {
    for (confirm, position) in confirms {
        match confirm.await {
            Ok(Confirmation::Ack(_)) => {}
            Ok(Confirmation::Nack(_)) => return Err(format!("position {position} refused (nack)")),
            Ok(Confirmation::NotRequested) => {
                return Err("the channel does not confirm publishes".to_owned());
            }
            Err(e) => return Err(format!("position {position} not confirmed: {e}")),
        }
    }
    Ok(())
}

impl AmqpSink {
    /// Connects, opens a channel with publisher confirms and declares the exchange.
    async fn open(&mut self) -> Result<(), RelayError> {
        let connection = Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .map_err(|e| self.error(format!("cannot connect: {e}")))?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| self.error(format!("cannot open a channel: {e}")))?;
        // NOTE: without confirm_select the broker never confirms, and a publish would
        // count as done the moment it was written to the socket.
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.error(format!("cannot enable publisher confirms: {e}")))?;
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| {
                self.error(format!(
                    "cannot declare the exchange {}: {e}",
                    self.exchange
                ))
            })?;
        self.session = Some((connection, channel));
        Ok(())
    }
}
