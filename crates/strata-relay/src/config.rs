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
    /// AWS SNS: the envelope as message, attributes `event_id`, `event_type`, `stream`
    /// and `position`; on a FIFO topic (its name ends in `.fifo`) `MessageGroupId` =
    /// stream and `MessageDeduplicationId` = event id. A standard topic keeps no order
    /// and drops no duplicate: its consumers de-duplicate by event id.
    Sns {
        /// The topic's ARN, `arn:aws:sns:<region>:<account>:<name>`.
        topic_arn: String,
        /// Another endpoint than AWS's (an emulator), `http://host:port`; credentials then
        /// come from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`, or placeholders.
        endpoint: Option<String>,
        /// The AWS region.
        region: String,
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
    /// `nats://host:port`, `amqp://user:password@host:port/vhost` (`amqps://` too),
    /// `kafka://host:port[,host:port…][?topic=NAME]`, or
    /// `sns://<topic-arn>[?endpoint=http://host:port][&region=<region>]` (the region
    /// defaults to the ARN's).
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
        if scheme != "sns" {
            check_hosts(host_port).map_err(|reason| invalid(&reason))?;
        }
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
            "sns" => {
                if !cfg!(feature = "sns") {
                    return Err(RelayError::BrokerNotBuilt {
                        url: shown,
                        broker: "sns",
                    });
                }
                sns_destination(rest).map_err(|reason| invalid(&reason))?
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
            _ => return Err(invalid("the scheme must be nats, amqp, kafka or sns")),
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
    /// The broker's name: `nats`, `amqp`, `kafka` or `sns`.
    pub fn broker(&self) -> &'static str {
        match self {
            Self::Nats { .. } => "nats",
            Self::Amqp { .. } => "amqp",
            Self::Kafka { .. } => "kafka",
            Self::Sns { .. } => "sns",
        }
    }

    /// The server's URL without credentials, fit for logs and status.
    pub fn target(&self) -> String {
        match self {
            Self::Nats { url, .. } | Self::Amqp { url, .. } => redact(url),
            Self::Kafka { brokers, topic, .. } => format!("kafka://{brokers}/{topic}"),
            Self::Sns { topic_arn, .. } => topic_arn.clone(),
        }
    }
}

/// Refuses a host list with an empty host or a port that is not 1–65535.
fn check_hosts(hosts: &str) -> Result<(), String> {
    for host in hosts.split(',') {
        let (name, port) = match host.strip_prefix('[') {
            // An IPv6 address: `[::1]` or `[::1]:4222`.
            Some(bracketed) => match bracketed.split_once(']') {
                Some((address, rest)) => (address, rest.strip_prefix(':')),
                None => return Err(format!("an unclosed [ in {host:?}")),
            },
            None => match host.rsplit_once(':') {
                Some((name, port)) => (name, Some(port)),
                None => (host, None),
            },
        };
        if name.is_empty() {
            return Err(format!("no host in {host:?}"));
        }
        if let Some(port) = port
            && !matches!(port.parse::<u16>(), Ok(1..))
        {
            return Err(format!(
                "the port of {host:?} must be a number from 1 to 65535"
            ));
        }
    }
    Ok(())
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

/// The SNS destination of `rest`, the part of an `sns://` URL after the scheme.
fn sns_destination(rest: &str) -> Result<Destination, String> {
    let (arn, query) = rest.split_once('?').unwrap_or((rest, ""));
    let parts: Vec<&str> = arn.split(':').collect();
    let [arn_word, _partition, service, arn_region, account, topic] = parts[..] else {
        return Err("expected sns://arn:aws:sns:<region>:<account>:<topic>".to_owned());
    };
    if arn_word != "arn" || service != "sns" || account.is_empty() || topic.is_empty() {
        return Err("expected sns://arn:aws:sns:<region>:<account>:<topic>".to_owned());
    }
    let mut endpoint = None;
    let mut region = (!arn_region.is_empty()).then(|| arn_region.to_owned());
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match key {
            "endpoint" => {
                if !(value.starts_with("http://") || value.starts_with("https://")) {
                    return Err("endpoint must be an http:// or https:// URL".to_owned());
                }
                endpoint = Some(value);
            }
            "region" if !value.is_empty() => region = Some(value),
            _ => return Err(format!("unknown parameter {key:?} (endpoint, region)")),
        }
    }
    let region = region.ok_or("no region: in neither the ARN nor region=")?;
    Ok(Destination::Sns {
        topic_arn: arn.to_owned(),
        endpoint,
        region,
    })
}

/// `%XX` escapes of `value` decoded (an invalid escape stays as it is).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| char::from(b).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(h), Some(l)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
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
