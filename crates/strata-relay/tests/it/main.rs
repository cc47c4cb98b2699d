//! Relays against the real brokers named by `STRATA_TEST_NATS_URL` and
//! `STRATA_TEST_AMQP_URL` (`eval "$(scripts/services.sh)"` exports them); each test says
//! plainly when it skips. Every test uses its own subjects, stream and exchange, and
//! cuts a broker away through its own TCP proxy, so the machine's brokers keep running.

#[cfg(any(feature = "nats", feature = "amqp"))]
mod common;
#[cfg(any(feature = "nats", feature = "amqp"))]
mod proxy;

#[cfg(feature = "amqp")]
mod amqp;
#[cfg(feature = "nats")]
mod nats;
