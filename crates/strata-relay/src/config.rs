//! [`RelayConfig`]: where one relay publishes, and how a `--relay URL` reads. It must not
//! connect to anything.

use std::time::Duration;

use crate::RelayError;

/// The default subject prefix on NATS: `strata.events.>` receives every event.
pub const DEFAULT_NATS_PREFIX: &str = "strata.events";
/// The default JetStream stream that stores the relay's subjects.
pub const DEFAULT_NATS_STREAM: &str = "STRATA_EVENTS";
/// The default duplicate window of that stream: a message id seen within it is dropped.
pub const DEFAULT_NATS_DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// The default RabbitMQ topic exchange: a queue bound with `#` receives every event.
pub const DEFAULT_AMQP_EXCHANGE: &str = "strata.events";
/// The default Kafka topic: every event, keyed by its stream.
pub const DEFAULT_KAFKA_TOPIC: &str = "strata-events";
/// The partitions of the Kafka topic when the relay creates it: one keeps the log's
/// order across streams, which a read side fed from the topic relies on.
pub const DEFAULT_KAFKA_PARTITIONS: i32 = 1;

/// Where a relay publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// NATS JetStream: subject `<subject_prefix>.<category>.<stream>`, stored in the
    /// JetStream stream `stream` (created if missing, covering `<subject_prefix>.>`),
    /// `Nats-Msg-Id` = event id.
    Nats {
        /// The server, `nats://host:port`.
        url: String,
        /// The first tokens of every subject.
        subject_prefix: String,
        /// The JetStream stream's name.
        stream: String,
        /// The stream's duplicate window (used when the relay creates it).
        duplicate_window: Duration,
    },
    /// RabbitMQ: a durable topic exchange, routing key `<category>.<type>`, persistent
    /// messages with `message_id` = event id, publisher confirms.
    Amqp {
        /// The server, `amqp://user:password@host:port/vhost`.
        url: String,
        /// The topic exchange's name (declared durable if missing).
        exchange: String,
    },
    /// Kafka: one topic, key = stream (so each stream's events stay in one partition, in
    /// order), headers `strata-event-id` and `strata-event-type`, an idempotent producer
    /// with `acks=all`.
    Kafka {
        /// The bootstrap servers, `host:port[,host:port…]`.
        brokers: String,
        /// The topic (created if missing).
        topic: String,
        /// The partitions of the topic when the relay creates it.
        partitions: i32,
    },
}

/// One relay: its name (which names its checkpoint file) and its destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// `a-z 0-9 _`, at most 64 bytes; the checkpoint lives in `<name>.sqlite`.
    pub name: String,
    /// Where it publishes.
    pub destination: Destination,
}

impl RelayConfig {
    /// Reads a `--relay` URL with the default subject prefix, stream, exchange and topic:
    /// `nats://host:port`, `amqp://user:password@host:port/vhost` (`amqps://` too) or
    /// `kafka://host:port[,host:port…][?topic=NAME]`.
    /// The name derives from the broker, host and port (`nats_127_0_0_1_4222`), so a
    /// relay keeps its checkpoint whatever order the URLs are given in.
    pub fn from_url(url: &str) -> Result<Self, RelayError> {
        let shown = redact(url);
        let invalid = |reason: &str| RelayError::InvalidUrl {
            url: shown.clone(),
            reason: reason.to_owned(),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("expected scheme://host:port"))?;
        let authority = rest.split(['/', '?']).next().unwrap_or_default();
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        if host_port.is_empty() {
            return Err(invalid("no host"));
        }
        let scheme = scheme.to_ascii_lowercase();
        let destination = match scheme.as_str() {
            "nats" | "tls" => {
                if !cfg!(feature = "nats") {
                    return Err(RelayError::BrokerNotBuilt {
                        url: shown,
                        broker: "nats",
                    });
                }
                Destination::Nats {
                    url: url.to_owned(),
                    subject_prefix: DEFAULT_NATS_PREFIX.to_owned(),
                    stream: DEFAULT_NATS_STREAM.to_owned(),
                    duplicate_window: DEFAULT_NATS_DUPLICATE_WINDOW,
                }
            }
            "amqp" | "amqps" => {
                if !cfg!(feature = "amqp") {
                    return Err(RelayError::BrokerNotBuilt {
                        url: shown,
                        broker: "amqp",
                    });
                }
                Destination::Amqp {
                    url: url.to_owned(),
                    exchange: DEFAULT_AMQP_EXCHANGE.to_owned(),
                }
            }
            "kafka" => {
                if authority.contains('@') {
                    return Err(invalid("kafka urls take no credentials"));
                }
                let topic = kafka_topic(rest).map_err(|reason| invalid(&reason))?;
                if !cfg!(feature = "kafka") {
                    return Err(RelayError::BrokerNotBuilt {
                        url: shown,
                        broker: "kafka",
                    });
                }
                Destination::Kafka {
                    brokers: host_port.to_owned(),
                    topic,
                    partitions: DEFAULT_KAFKA_PARTITIONS,
                }
            }
            _ => return Err(invalid("the scheme must be nats, amqp or kafka")),
        };
        // A Kafka relay to a topic of its own gets a checkpoint of its own.
        let suffix = match &destination {
            Destination::Kafka { topic, .. } if topic != DEFAULT_KAFKA_TOPIC => format!("_{topic}"),
            _ => String::new(),
        };
        let name: String = format!("{}_{host_port}{suffix}", destination.broker())
            .chars()
            .map(|c| {
                let c = c.to_ascii_lowercase();
                if c.is_ascii_lowercase() || c.is_ascii_digit() {
                    c
                } else {
                    '_'
                }
            })
            .take(64)
            .collect();
        Ok(Self { name, destination })
    }
}

impl Destination {
    /// The broker's name: `nats`, `amqp` or `kafka`.
    pub fn broker(&self) -> &'static str {
        match self {
            Self::Nats { .. } => "nats",
            Self::Amqp { .. } => "amqp",
            Self::Kafka { .. } => "kafka",
        }
    }

    /// The server's URL without credentials, fit for logs and status.
    pub fn target(&self) -> String {
        match self {
            Self::Nats { url, .. } | Self::Amqp { url, .. } => redact(url),
            Self::Kafka { brokers, topic, .. } => format!("kafka://{brokers}/{topic}"),
        }
    }
}

/// The topic of a `kafka://` URL's remainder: `?topic=NAME`, or the default.
fn kafka_topic(rest: &str) -> Result<String, String> {
    let after_host = rest.find(['/', '?']).map_or("", |i| &rest[i..]);
    let query = match after_host.split_once('?') {
        Some((path, query)) if path.is_empty() || path == "/" => query,
        None if after_host.is_empty() || after_host == "/" => return Ok(DEFAULT_KAFKA_TOPIC.into()),
        _ => return Err("a kafka url takes no path; name the topic with ?topic=NAME".into()),
    };
    let mut topic = DEFAULT_KAFKA_TOPIC.to_owned();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("topic", name)) => topic = name.to_owned(),
            _ => {
                return Err(format!(
                    "unknown parameter {pair:?}; only topic=NAME is read"
                ));
            }
        }
    }
    validate_topic(&topic)?;
    Ok(topic)
}

/// Checks a Kafka topic name: 1 to 249 of `a-z A-Z 0-9 . _ -`, not `.` or `..`.
pub(crate) fn validate_topic(topic: &str) -> Result<(), String> {
    let ok = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "invalid topic {topic:?}: use 1 to 249 of a-z, A-Z, 0-9, '.', '_' and '-'"
        ))
    }
}

/// `url` without a password (the user name stays).
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// Checks a relay name: it becomes a file name.
pub(crate) fn validate_name(name: &str) -> Result<(), RelayError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RelayError::InvalidName(name.to_owned()))
    }
}
