//! `strata bench relay`: strata-relay's relays publishing an embedded store's log to the
//! brokers given on the command line: the throughput of a relay catching up with a
//! pre-filled log, and the latency from an append returning to a consumer of the broker
//! receiving it. Each run publishes under names of its own (subject prefix and JetStream
//! stream, exchange, topic) and removes them afterwards. It never touches another
//! run's names, and asserts no time.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use strata_core::{EventId, ExpectedVersion};
use strata_relay::{Destination, RelayConfig, Relays, parse_envelope};
use strata_store::EventStore;
use strata_store_embedded::EmbeddedStore;

use crate::args::RelayArgs;
use crate::error::{Context as _, Result, ensure};
use crate::fixtures::{
    append_all, bench_event, fixture_options, log_appends, open_store, payload, progress_printer,
    scratch, stream,
};
use crate::load::paced;
use crate::report::{Ceiling, Probes, ScenarioResult, ratio};
use crate::stats::{Summary, rate};

/// Events per stream of the pre-filled log.
const EVENTS_PER_STREAM: u64 = 10;
/// Streams the paced appends of the latency phase go to, in turn.
const LATENCY_STREAMS: u64 = 100;
/// How long a relay may take to catch up, or a consumer to receive the last event.
const RELAY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the consumer may take to receive every event of the latency phase once the
/// last one was appended.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(30);

/// One broker of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Broker {
    Nats,
    Amqp,
    Kafka,
}

impl Broker {
    fn name(self) -> &'static str {
        match self {
            Broker::Nats => "nats",
            Broker::Amqp => "amqp",
            Broker::Kafka => "kafka",
        }
    }

    fn flag(self) -> &'static str {
        match self {
            Broker::Nats => "--nats or STRATA_BENCH_NATS_URL",
            Broker::Amqp => "--amqp or STRATA_BENCH_AMQP_URL",
            Broker::Kafka => "--kafka or STRATA_BENCH_KAFKA_URL",
        }
    }

    /// The relay throughput the design asks for (RabbitMQ with publisher confirms).
    fn floor_events_per_s(self) -> f64 {
        match self {
            Broker::Nats | Broker::Kafka => 100_000.0,
            Broker::Amqp => 30_000.0,
        }
    }
}

/// `strata bench relay`: for each broker with a URL, a throughput line and a latency
/// line; a broker without one is skipped with a line on standard error.
pub(crate) async fn relay(
    dir: &Path,
    args: &RelayArgs,
    _probes: &Probes,
) -> Result<Vec<ScenarioResult>> {
    let mut results = Vec::new();
    for (broker, url) in [
        (Broker::Nats, &args.nats),
        (Broker::Amqp, &args.amqp),
        (Broker::Kafka, &args.kafka),
    ] {
        let Some(url) = url.as_deref().filter(|u| !u.trim().is_empty()) else {
            eprintln!(
                "relay: skipped {}: no URL ({})",
                broker.name(),
                broker.flag()
            );
            continue;
        };
        if broker == Broker::Kafka && !cfg!(feature = "kafka") {
            eprintln!("relay: skipped kafka: this build has no Kafka client");
            continue;
        }
        results.extend(one_broker(dir, args, broker, url).await?);
    }
    Ok(results)
}

/// A name of this run's own, `[0-9a-f]`, for subjects, streams, exchanges and topics.
fn run_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!("{:x}{:x}", std::process::id(), nanos % (1 << 48))
}

/// The relay of this run to `broker`: the broker's defaults with names of the run's own.
fn config(broker: Broker, url: &str, run: &str) -> Result<RelayConfig> {
    let mut config = RelayConfig::from_url(url)
        .with_context(|| format!("cannot read the {} URL", broker.name()))?;
    config.name = format!("bench_{}", broker.name());
    match &mut config.destination {
        Destination::Nats {
            subject_prefix,
            stream,
            ..
        } => {
            *subject_prefix = format!("strata_bench.{run}");
            *stream = format!("STRATA_BENCH_{run}");
        }
        Destination::Amqp { exchange, .. } => *exchange = format!("strata-bench.{run}"),
        Destination::Kafka { topic, .. } => *topic = format!("strata-bench-{run}"),
        other => {
            return Err(crate::error::failed!(
                "{} is not a broker this scenario measures",
                other.broker()
            ));
        }
    }
    Ok(config)
}

async fn one_broker(
    dir: &Path,
    args: &RelayArgs,
    broker: Broker,
    url: &str,
) -> Result<Vec<ScenarioResult>> {
    let run = run_id();
    let config = config(broker, url, &run)?;
    let destination = config.destination.clone();
    let scratch = scratch(dir, &format!("relay-{}", broker.name()))?;
    let store = open_store(&scratch.path().join("store"), fixture_options())?;
    append_all(
        &store,
        log_appends(
            "relay",
            args.events,
            EVENTS_PER_STREAM,
            payload(args.event_bytes),
        ),
        progress_printer("relay log", args.events),
    )
    .await?;
    let shared: Arc<dyn EventStore> = Arc::new(store.clone());
    let relays = Relays::new(shared, scratch.path().join("relays"));
    let measured = measure(&store, &relays, &config, broker, args).await;
    relays.shutdown().await;
    let cleaned = clean_up(&destination).await;
    store.close().await?;
    let results = measured?;
    cleaned?;
    Ok(results)
}

async fn measure(
    store: &EmbeddedStore,
    relays: &Relays,
    config: &RelayConfig,
    broker: Broker,
    args: &RelayArgs,
) -> Result<Vec<ScenarioResult>> {
    let head = store.head().await?;
    let started = Instant::now();
    relays
        .start(config.clone())
        .with_context(|| format!("cannot start the relay to {}", broker.name()))?;
    let status = relays
        .wait_for(&config.name, head, RELAY_TIMEOUT)
        .await
        .with_context(|| format!("the relay to {} did not catch up", broker.name()))?;
    let elapsed = started.elapsed();
    let events_per_s = rate(head.0 as f64, elapsed);
    let floor = broker.floor_events_per_s();
    let throughput = ScenarioResult::new(
        format!("relay_{}_throughput", broker.name()),
        Some(events_per_s),
        &Summary::single(elapsed),
        "relay run from checkpoint 0 to the head (connecting included)",
    )
    .against(&Ceiling::None(
        "the broker's own publish rate is not probed; floor_events_per_s is the target",
    ))
    .with("events", head.0)
    .with("event_bytes", args.event_bytes as u64)
    .with("events_per_stream", EVENTS_PER_STREAM)
    .with("published", status.published)
    .with("floor_events_per_s", floor)
    .with("ratio_to_floor", ratio(events_per_s, floor));

    let latency = latency(store, config, broker, args).await?;
    Ok(vec![throughput, latency])
}

/// When each event id reached the consumer.
type Arrivals = Arc<Mutex<HashMap<EventId, Instant>>>;

/// Notes the arrival of the envelope `payload` at `at` (anything else is ignored).
fn note(arrivals: &Arrivals, payload: &[u8], at: Instant) {
    if let Ok(event) = parse_envelope(payload) {
        arrivals
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(event.id)
            .or_insert(at);
    }
}

async fn latency(
    store: &EmbeddedStore,
    config: &RelayConfig,
    broker: Broker,
    args: &RelayArgs,
) -> Result<ScenarioResult> {
    let arrivals: Arrivals = Arc::default();
    let consumer = consume(&config.destination, arrivals.clone()).await?;
    let data = payload(args.event_bytes);
    let appended = {
        let store = store.clone();
        paced(
            args.rate,
            Duration::from_secs_f64(args.seconds),
            move |n, _due| {
                let store = store.clone();
                let event = bench_event(&data);
                async move {
                    let id = event.id;
                    store
                        .append(
                            &stream(format!("latency-{}", n % LATENCY_STREAMS)),
                            ExpectedVersion::Any,
                            vec![event],
                        )
                        .await?;
                    Ok((id, Instant::now()))
                }
            },
        )
        .await
    };
    ensure!(
        appended.errors == 0,
        "{} appends failed: {}",
        appended.errors,
        appended.first_error.unwrap_or_default()
    );
    let deadline = Instant::now() + ARRIVAL_TIMEOUT;
    let mut missing;
    loop {
        missing = {
            let seen = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
            appended
                .results
                .iter()
                .filter(|(id, _)| !seen.contains_key(id))
                .count()
        };
        if missing == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    consumer.finish().await;
    let mut samples: Vec<Duration> = {
        let seen = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
        appended
            .results
            .iter()
            .filter_map(|(id, at)| {
                seen.get(id)
                    .map(|arrived| arrived.saturating_duration_since(*at))
            })
            .collect()
    };
    let summary = Summary::of(&mut samples);
    Ok(ScenarioResult::new(
        format!("relay_{}_latency", broker.name()),
        None,
        &summary,
        "event, from its append returning to a consumer of the broker receiving it",
    )
    .against(&Ceiling::None(
        "one append, the relay's publish and confirm, and the broker's delivery: no part is probed alone",
    ))
    .with("rate_per_s", args.rate)
    .with("appended", appended.due)
    .with("missing", missing as u64)
    .with("consumer", consumer_kind(broker)))
}

fn consumer_kind(broker: Broker) -> &'static str {
    match broker {
        Broker::Nats => "core subscription on <prefix>.>",
        Broker::Amqp => "exclusive queue bound with #, no ack",
        Broker::Kafka => "consumer assigned the topic from its end",
    }
}

/// Starts a consumer of everything the relay publishes to `destination`, noting arrivals;
/// it is subscribed when this returns.
async fn consume(destination: &Destination, arrivals: Arrivals) -> Result<Consumer> {
    #[cfg(feature = "kafka")]
    if let Destination::Kafka { brokers, topic, .. } = destination {
        let (stop, stopped) = tokio::sync::watch::channel(false);
        let task = kafka::consumer(brokers, topic, arrivals, stopped)?;
        return Ok(Consumer {
            task,
            stop: Some(stop),
        });
    }
    let task = match destination {
        Destination::Nats {
            url,
            subject_prefix,
            ..
        } => {
            let client = async_nats::connect(url.as_str())
                .await
                .context("cannot connect a NATS consumer")?;
            let mut subscription = client
                .subscribe(format!("{subject_prefix}.>"))
                .await
                .context("cannot subscribe on NATS")?;
            client
                .flush()
                .await
                .context("cannot flush the NATS subscription")?;
            Ok(tokio::spawn(async move {
                let _client = client;
                while let Some(message) = subscription.next().await {
                    note(&arrivals, &message.payload, Instant::now());
                }
            }))
        }
        Destination::Amqp { url, exchange } => amqp_consumer(url, exchange, arrivals).await,
        other => Err(crate::error::failed!(
            "no consumer for {} in this build",
            other.broker()
        )),
    }?;
    Ok(Consumer { task, stop: None })
}

/// A running consumer of the relay's broker.
struct Consumer {
    task: tokio::task::JoinHandle<()>,
    /// Asks a consumer that must be closed in order (Kafka's) to stop; the others are
    /// aborted.
    stop: Option<tokio::sync::watch::Sender<bool>>,
}

impl Consumer {
    /// Stops the consumer. A Kafka consumer is closed and dropped before this returns, so
    /// that its topic is never removed under a live consumer, and it is never dropped
    /// while a `recv` borrows it.
    async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
            if tokio::time::timeout(Duration::from_secs(30), &mut self.task)
                .await
                .is_ok()
            {
                return;
            }
        }
        self.task.abort();
    }
}

async fn amqp_consumer(
    url: &str,
    exchange: &str,
    arrivals: Arrivals,
) -> Result<tokio::task::JoinHandle<()>> {
    use lapin::options::{
        BasicConsumeOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
    };
    use lapin::types::FieldTable;
    use lapin::{Connection, ConnectionProperties, ExchangeKind};

    let connection = Connection::connect(url, ConnectionProperties::default())
        .await
        .context("cannot connect a RabbitMQ consumer")?;
    let channel = connection
        .create_channel()
        .await
        .context("cannot open a RabbitMQ channel")?;
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
        .context("cannot declare the exchange")?;
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
        .context("cannot declare a queue")?;
    channel
        .queue_bind(
            queue.name().clone(),
            exchange.into(),
            "#".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .context("cannot bind the queue with #")?;
    let mut consumer = channel
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
        .context("cannot consume from the queue")?;
    Ok(tokio::spawn(async move {
        let _connection = connection;
        while let Some(Ok(delivery)) = consumer.next().await {
            note(&arrivals, &delivery.data, Instant::now());
        }
    }))
}

/// Removes what the run left on the broker: the JetStream stream, the exchange, the
/// topic.
async fn clean_up(destination: &Destination) -> Result<()> {
    match destination {
        Destination::Nats { url, stream, .. } => {
            let client = async_nats::connect(url.as_str())
                .await
                .context("cannot connect to NATS to remove the run's stream")?;
            async_nats::jetstream::new(client)
                .delete_stream(stream)
                .await
                .with_context(|| format!("cannot remove the JetStream stream {stream}"))?;
        }
        Destination::Amqp { url, exchange } => {
            let connection =
                lapin::Connection::connect(url, lapin::ConnectionProperties::default())
                    .await
                    .context("cannot connect to RabbitMQ to remove the run's exchange")?;
            let channel = connection
                .create_channel()
                .await
                .context("cannot open a RabbitMQ channel")?;
            channel
                .exchange_delete(
                    exchange.as_str().into(),
                    lapin::options::ExchangeDeleteOptions::default(),
                )
                .await
                .with_context(|| format!("cannot remove the exchange {exchange}"))?;
            let _ = connection.close(0, "done".into()).await;
        }
        #[cfg(feature = "kafka")]
        Destination::Kafka { brokers, topic, .. } => kafka::delete_topic(brokers, topic).await?,
        _ => {}
    }
    Ok(())
}

#[cfg(feature = "kafka")]
mod kafka {
    //! The Kafka end of the relay scenario: a consumer of the run's topic and its removal.

    use std::time::{Duration, Instant};

    use rdkafka::admin::{AdminClient, AdminOptions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::consumer::{Consumer as _, StreamConsumer};
    use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
    use strata_relay::DEFAULT_KAFKA_PARTITIONS;

    use super::{Arrivals, note};
    use crate::error::{Context as _, Result};

    /// How long reading where the topic ends may take.
    const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);

    /// A consumer of every partition of `topic` from its end.
    pub(super) fn consumer(
        brokers: &str,
        topic: &str,
        arrivals: Arrivals,
        mut stopped: tokio::sync::watch::Receiver<bool>,
    ) -> Result<tokio::task::JoinHandle<()>> {
        let consumer: StreamConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("strata-bench-{topic}"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "10")
            .create()
            .context("cannot create a Kafka consumer")?;
        // The end as it is now, not as it is when the first fetch resolves it: every
        // event published from here on arrives.
        let mut assignment = TopicPartitionList::new();
        for partition in 0..DEFAULT_KAFKA_PARTITIONS {
            let (_, high) = tokio::task::block_in_place(|| {
                consumer.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)
            })
            .context("cannot read the end of the topic")?;
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(high))
                .context("cannot assign the topic")?;
        }
        consumer
            .assign(&assignment)
            .context("cannot assign the topic")?;
        Ok(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.wait_for(|stop| *stop) => break,
                    message = consumer.recv() => {
                        let Ok(message) = message else { break };
                        let at = Instant::now();
                        if let Some(payload) = message.payload() {
                            note(&arrivals, payload, at);
                        }
                    }
                }
            }
            // Closing a consumer waits for librdkafka: not on a runtime worker.
            let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
        }))
    }

    /// Removes `topic`.
    pub(super) async fn delete_topic(brokers: &str, topic: &str) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .create()
            .context("cannot create a Kafka admin client")?;
        admin
            .delete_topics(&[topic], &AdminOptions::new())
            .await
            .with_context(|| format!("cannot remove the topic {topic}"))?;
        Ok(())
    }
}
