//! The relay to AWS SNS and the consumer from SQS, against the emulator named by
//! `STRATA_TEST_SNS_URL`: what a subscribed queue receives is the log, once, in order per
//! stream on a FIFO topic; a read model fed through a standard topic converges with the
//! log although the emulator went away and every event came twice.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sns::config::Credentials;
use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use rusqlite::{OptionalExtension as _, Transaction};
use strata_relay::{
    ConsumedEvent, Destination, RelayConfig, RelayState, Relays, SqsConsumer, SqsConsumerConfig,
    SqsReadModel, sns_group_id,
};
use strata_store::MemoryStore;

use crate::common::{
    WAIT, append_round, assert_is_the_log, host_port, log, service, unique, with_address,
};
use crate::proxy::Proxy;

const REGION: &str = "us-east-1";

/// The SDK's configuration for the emulator at `url`.
async fn sdk(url: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(aws_smithy_http_client::Builder::new().build_http())
        .region(Region::new(REGION))
        .endpoint_url(url)
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .load()
        .await
}

/// A topic with a queue subscribed; answers (topic ARN, queue URL).
async fn topic_with_queue(url: &str, id: &str, fifo: bool, raw: bool) -> (String, String) {
    let config = sdk(url).await;
    let sns = aws_sdk_sns::Client::new(&config);
    let sqs = aws_sdk_sqs::Client::new(&config);
    let suffix = if fifo { ".fifo" } else { "" };
    let mut topic = sns.create_topic().name(format!("t{id}{suffix}"));
    let mut queue = sqs.create_queue().queue_name(format!("q{id}{suffix}"));
    if fifo {
        topic = topic
            .attributes("FifoTopic", "true")
            .attributes("ContentBasedDeduplication", "false");
        queue = queue.attributes(QueueAttributeName::FifoQueue, "true");
    }
    let topic_arn = topic.send().await.unwrap().topic_arn.unwrap();
    let queue_url = queue.send().await.unwrap().queue_url.unwrap();
    let queue_arn = sqs
        .get_queue_attributes()
        .queue_url(&queue_url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap()[&QueueAttributeName::QueueArn]
        .clone();
    sns.subscribe()
        .topic_arn(&topic_arn)
        .protocol("sqs")
        .endpoint(queue_arn)
        .attributes("RawMessageDelivery", if raw { "true" } else { "false" })
        .send()
        .await
        .unwrap();
    (topic_arn, queue_url)
}

async fn delete(url: &str, topic_arn: &str, queue_url: &str) {
    let config = sdk(url).await;
    let _ = aws_sdk_sns::Client::new(&config)
        .delete_topic()
        .topic_arn(topic_arn)
        .send()
        .await;
    let _ = aws_sdk_sqs::Client::new(&config)
        .delete_queue()
        .queue_url(queue_url)
        .send()
        .await;
}

fn config(name: &str, url: &str, topic_arn: &str) -> RelayConfig {
    RelayConfig {
        name: name.to_owned(),
        destination: Destination::Sns {
            topic_arn: topic_arn.to_owned(),
            endpoint: Some(url.to_owned()),
            region: REGION.to_owned(),
        },
    }
}

/// Every message of a raw-delivery FIFO queue, as (event id attribute, envelope, group
/// id), in the order received, until `count` arrived (or the wait ran out).
async fn drain(
    url: &str,
    queue_url: &str,
    count: usize,
) -> Vec<(String, serde_json::Value, String)> {
    let sqs = aws_sdk_sqs::Client::new(&sdk(url).await);
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut out = Vec::new();
    while out.len() < count && tokio::time::Instant::now() < deadline {
        let received = sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::MessageGroupId)
            .send()
            .await
            .unwrap();
        for message in received.messages() {
            let id = message
                .message_attributes()
                .and_then(|a| a.get("event_id"))
                .and_then(|v| v.string_value())
                .unwrap_or_default()
                .to_owned();
            let envelope = serde_json::from_str(message.body().unwrap()).unwrap();
            let group = message
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::MessageGroupId))
                .cloned()
                .unwrap_or_default();
            out.push((id, envelope, group));
            sqs.delete_message()
                .queue_url(queue_url)
                .receipt_handle(message.receipt_handle().unwrap())
                .send()
                .await
                .unwrap();
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_topic_delivers_every_event_once_in_order_across_a_restart() {
    let Some(url) = service(
        "STRATA_TEST_SNS_URL",
        "sns a_fifo_topic_delivers_every_event",
    ) else {
        return;
    };
    let id = unique();
    let (topic_arn, queue_url) = topic_with_queue(&url, &id, true, true).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    // Given a history, then live events…
    for round in 0..4 {
        append_round(&store, round).await;
    }
    let relays = Relays::new(store.clone(), dir.path());
    relays.start(config("sns_test", &url, &topic_arn)).unwrap();
    let head = append_round(&store, 4).await;
    let status = relays.wait_for("sns_test", head, WAIT).await.unwrap();
    assert_eq!(status.broker, "sns");
    assert_eq!(status.state, RelayState::Live);
    relays.shutdown().await;

    // …and a relay started again, which resumes from its stored checkpoint.
    let head = append_round(&store, 5).await;
    let relays = Relays::new(store.clone(), dir.path());
    relays.start(config("sns_test", &url, &topic_arn)).unwrap();
    let status = relays.wait_for("sns_test", head, WAIT).await.unwrap();
    assert_eq!(
        status.published, 5,
        "only the new round was published again"
    );
    relays.shutdown().await;

    let log = log(&store).await;
    let received = drain(&url, &queue_url, log.len()).await;
    delete(&url, &topic_arn, &queue_url).await;
    let delivered: Vec<_> = received
        .iter()
        .map(|(id, envelope, _)| (id.clone(), envelope.clone()))
        .collect();
    assert_is_the_log(&delivered, &log);
    assert_eq!(received.len(), log.len(), "the queue holds each event once");
    for (_, envelope, group) in &received {
        assert_eq!(group, &sns_group_id(envelope["stream"].as_str().unwrap()));
    }
}

/// A read model of the tests: per stream, the ids of its events in the order applied.
struct Streams;

impl SqsReadModel for Streams {
    fn init(&mut self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE IF NOT EXISTS streams (stream TEXT PRIMARY KEY, ids TEXT NOT NULL)",
        )
    }

    fn apply(&mut self, tx: &Transaction<'_>, event: &ConsumedEvent) -> rusqlite::Result<()> {
        let ids: Option<String> = tx
            .query_row(
                "SELECT ids FROM streams WHERE stream = ?1",
                [&event.stream],
                |r| r.get(0),
            )
            .optional()?;
        let ids = match ids {
            Some(ids) => format!("{ids} {}", event.id),
            None => event.id.clone(),
        };
        tx.execute(
            "INSERT INTO streams (stream, ids) VALUES (?1, ?2)
             ON CONFLICT (stream) DO UPDATE SET ids = excluded.ids",
            [&event.stream, &ids],
        )?;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_fed_through_sqs_converges_although_sns_went_away() {
    let Some(url) = service("STRATA_TEST_SNS_URL", "sns a_read_model_fed_through_sqs") else {
        return;
    };
    let id = unique();
    let (topic_arn, queue_url) = topic_with_queue(&url, &id, false, false).await;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    // Given a history the relay is catching up with…
    for round in 0..12 {
        append_round(&store, round).await;
    }
    let proxy = Proxy::start(host_port(&url)).await;
    let relays = Relays::new(store.clone(), dir.path().join("relays"));
    relays
        .start(config(
            "sns_test",
            &with_address(&url, proxy.addr),
            &topic_arn,
        ))
        .unwrap();
    relays
        .wait_until("sns_test", WAIT, |s| s.checkpoint.0 > 0)
        .await
        .unwrap();

    // When the emulator goes away in the middle of it, while events keep coming…
    proxy.cut();
    for round in 12..15 {
        append_round(&store, round).await;
    }
    let status = relays
        .wait_until("sns_test", WAIT, |s| s.state == RelayState::Retrying)
        .await
        .unwrap();
    assert!(status.last_error.is_some());
    assert!(status.lag_events > 0);

    // …and comes back, the relay catches up from its checkpoint.
    proxy.restore();
    let head = append_round(&store, 15).await;
    relays.wait_for("sns_test", head, WAIT).await.unwrap();
    // A second relay with a checkpoint of its own publishes every event again.
    relays.start(config("sns_again", &url, &topic_arn)).unwrap();
    relays.wait_for("sns_again", head, WAIT).await.unwrap();
    relays.shutdown().await;

    // Then a read model fed from the queue is the log: each event applied once, in order
    // per stream, every copy deleted.
    let log = log(&store).await;
    let mut queue = SqsConsumerConfig::new(&queue_url, REGION);
    queue.endpoint = Some(url.clone());
    queue.wait = Duration::from_secs(1);
    queue.visibility_timeout = Duration::from_secs(1);
    let path = dir.path().join("model.sqlite");
    let consumer = SqsConsumer::open(queue, &path, Streams).await.unwrap();
    let (mut applied, mut duplicates) = (0, 0);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let report = consumer.poll().await.unwrap();
        applied += report.applied;
        duplicates += report.duplicates;
        assert_eq!(report.unreadable, 0);
        if report.received == 0 && applied == log.len() && duplicates >= log.len() {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the read model converges in time"
        );
    }
    assert_eq!(consumer.position().await.unwrap(), head);
    assert!(
        duplicates >= log.len(),
        "every event came again and was dropped"
    );
    delete(&url, &topic_arn, &queue_url).await;

    let mut expected: HashMap<String, Vec<String>> = HashMap::new();
    for event in &log {
        expected
            .entry(event.stream.as_str().to_owned())
            .or_default()
            .push(event.id.to_string());
    }
    let model: HashMap<String, Vec<String>> = rusqlite::Connection::open(&path)
        .unwrap()
        .prepare("SELECT stream, ids FROM streams")
        .unwrap()
        .query_map([], |r| {
            let ids: String = r.get(1)?;
            Ok((r.get(0)?, ids.split(' ').map(str::to_owned).collect()))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(model, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_topic_is_reported_in_a_sentence() {
    let Some(url) = service("STRATA_TEST_SNS_URL", "sns a_missing_topic_is_reported") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(MemoryStore::new());
    append_round(&store, 0).await;
    let topic_arn = format!("arn:aws:sns:{REGION}:123456789012:t{}", unique());
    let relays = Relays::new(store.clone(), dir.path());
    relays.start(config("sns_test", &url, &topic_arn)).unwrap();
    let status = relays
        .wait_until("sns_test", WAIT, |s| s.state == RelayState::Retrying)
        .await
        .unwrap();
    relays.shutdown().await;
    let error = status.last_error.unwrap();
    assert!(
        error.starts_with(&format!(
            "sns at {topic_arn}: cannot reach the topic: NotFound"
        )),
        "{error}"
    );
    assert!(error.len() < 200, "one sentence, not a dump: {error}");
    assert_eq!(status.checkpoint.0, 0);
}
