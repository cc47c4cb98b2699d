//! The relay to RabbitMQ: what a queue bound with `#` receives is the log, once after
//! de-duplication by message id, in order per stream, also when the broker goes away.

use std::sync::Arc;

use futures::StreamExt as _;
use lapin::options::{
    BasicConsumeOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties, Consumer, ExchangeKind};
use strata_relay::{Destination, RelayConfig, RelayState, Relays};
use strata_store::MemoryStore;

use crate::common::{
    WAIT, append_round, assert_is_the_log, host_port, log, service, unique, with_address,
};
use crate::proxy::Proxy;

fn config(url: &str, exchange: &str) -> RelayConfig {
    RelayConfig {
        name: "amqp_test".to_owned(),
        destination: Destination::Amqp {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
        },
    }
}

/// A consumer of everything the exchange routes (`#`), bound before the relay starts.
async fn bind_all(url: &str, exchange: &str) -> (Connection, Consumer) {
    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .exchange_declare(
            exchange.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let consumer = channel
        .basic_consume(
            queue.name().clone(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    (connection, consumer)
}

/// Receives until `count` distinct message ids arrived; answers every delivery in order.
async fn receive(
    consumer: &mut Consumer,
    count: usize,
) -> Vec<(String, serde_json::Value, BasicProperties, String)> {
    let mut out = Vec::new();
    let mut ids = std::collections::HashSet::new();
    while ids.len() < count {
        let delivery = tokio::time::timeout(crate::common::WAIT, consumer.next())
            .await
            .expect("a delivery in time")
            .expect("the consumer is open")
            .expect("a delivery");
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_owned())
            .unwrap_or_default();
        ids.insert(id.clone());
        let envelope: serde_json::Value = serde_json::from_slice(&delivery.data).unwrap();
        out.push((
            id,
            envelope,
            delivery.properties.clone(),
            delivery.routing_key.as_str().to_owned(),
        ));
    }
    out
}

async fn delete_exchange(connection: &Connection, exchange: &str) {
    if let Ok(channel) = connection.create_channel().await {
        let _ = channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    }
}

fn check(
    delivered: &[(String, serde_json::Value, BasicProperties, String)],
    log: &[strata_core::RecordedEvent],
) {
    let pairs: Vec<_> = delivered
        .iter()
        .map(|(m, e, _, _)| (m.clone(), e.clone()))
        .collect();
    assert_is_the_log(&pairs, log);
    for (_, envelope, properties, routing_key) in delivered {
        assert_eq!(properties.delivery_mode(), &Some(2), "persistent");
        let stream = envelope["stream"].as_str().unwrap();
        let category = stream.split('-').next().unwrap();
        let event_type = envelope["type"].as_str().unwrap().replace('.', "~2E");
        assert_eq!(routing_key, &format!("{category}.{event_type}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_reaches_the_exchange_once_in_order() {
    let Some(url) = service(
        "STRATA_TEST_AMQP_URL",
        "amqp every_event_reaches_the_exchange",
    ) else {
        return;
    };
    let exchange = format!("strata.test.{}", unique());
    let (connection, mut consumer) = bind_all(&url, &exchange).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    for round in 0..4 {
        append_round(&store, round).await;
    }
    let relays = Relays::new(store.clone(), dir.path());
    relays.start(config(&url, &exchange)).unwrap();
    let head = append_round(&store, 4).await;
    let status = relays.wait_for("amqp_test", head, WAIT).await.unwrap();
    assert_eq!(status.state, RelayState::Live);
    relays.shutdown().await;

    let log = log(&store).await;
    let delivered = receive(&mut consumer, log.len()).await;
    delete_exchange(&connection, &exchange).await;
    check(&delivered, &log);
    assert_eq!(
        delivered.len(),
        log.len(),
        "nothing was republished without a fault"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_lost_while_rabbitmq_is_away() {
    let Some(url) = service(
        "STRATA_TEST_AMQP_URL",
        "amqp nothing_is_lost_while_rabbitmq_is_away",
    ) else {
        return;
    };
    let exchange = format!("strata.test.{}", unique());
    let (connection, mut consumer) = bind_all(&url, &exchange).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    // Given a history the relay is catching up with…
    for round in 0..200 {
        append_round(&store, round).await;
    }
    let proxy = Proxy::start(host_port(&url)).await;
    let relays = Relays::new(store.clone(), dir.path());
    relays
        .start(config(&with_address(&url, proxy.addr), &exchange))
        .unwrap();
    relays
        .wait_until("amqp_test", WAIT, |s| s.checkpoint.0 > 0)
        .await
        .unwrap();

    // When the broker goes away in the middle of it, while events keep coming…
    proxy.cut();
    for round in 200..205 {
        append_round(&store, round).await;
    }
    let status = relays
        .wait_until("amqp_test", WAIT, |s| s.state == RelayState::Retrying)
        .await
        .unwrap();
    assert!(status.last_error.is_some());

    // …and comes back, the relay catches up and nothing is lost.
    proxy.restore();
    let head = append_round(&store, 205).await;
    relays.wait_for("amqp_test", head, WAIT).await.unwrap();
    relays.shutdown().await;

    let log = log(&store).await;
    let delivered = receive(&mut consumer, log.len()).await;
    delete_exchange(&connection, &exchange).await;
    check(&delivered, &log);
}
