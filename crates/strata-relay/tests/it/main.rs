//! Relays against the real brokers named by `STRATA_TEST_NATS_URL`,
//! `STRATA_TEST_AMQP_URL` and `STRATA_TEST_SNS_URL` (an emulator of the AWS APIs)
//! (`eval "$(scripts/services.sh)"` exports them); each test says
//! plainly when it skips. Every test uses its own subjects, stream and exchange, and
//! cuts a broker away through its own TCP proxy, so the machine's brokers keep running.

#[cfg(any(feature = "nats", feature = "amqp", feature = "sns"))]
mod common;
#[cfg(any(feature = "nats", feature = "amqp", feature = "sns"))]
mod proxy;

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "sns")]
mod sns;
