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
    /// Reads a `--relay` URL with the default subject prefix, stream and exchange:
    /// `nats://host:port` or `amqp://user:password@host:port/vhost` (`amqps://` too).
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
            _ => return Err(invalid("the scheme must be nats or amqp")),
        };
        let name: String = format!("{}_{host_port}", destination.broker())
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
    /// The broker's name: `nats` or `amqp`.
    pub fn broker(&self) -> &'static str {
        match self {
            Self::Nats { .. } => "nats",
            Self::Amqp { .. } => "amqp",
        }
    }

    /// The server's URL without credentials, fit for logs and status.
    pub fn target(&self) -> String {
        match self {
            Self::Nats { url, .. } | Self::Amqp { url, .. } => redact(url),
        }
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
