//! Relays against the real brokers named by `STRATA_TEST_NATS_URL`,
//! `STRATA_TEST_AMQP_URL`, `STRATA_TEST_KAFKA_URL` and `STRATA_TEST_SNS_URL` (an
//! emulator of the AWS APIs) (`eval "$(scripts/services.sh)"` exports them), and remote
//! read sides fed through them; each test says plainly when it skips. Every test uses its
//! own subjects, stream, exchange, topic or queue, and cuts a broker away through its own
//! TCP proxy (for Kafka, in front of a broker of its own, started from
//! `STRATA_TEST_TANSU`), so the machine's brokers keep running.

#[cfg(any(feature = "nats", feature = "amqp", feature = "kafka", feature = "sns"))]
mod common;
#[cfg(any(feature = "nats", feature = "amqp", feature = "kafka", feature = "sns"))]
mod proxy;
mod remote;

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "sns")]
mod sns;
