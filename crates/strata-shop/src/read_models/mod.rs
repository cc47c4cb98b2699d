//! The shop's read models, each a SQLite projection with its queries: order summaries
//! (per order and per customer), the catalog with available stock, daily sales, and
//! product search (FTS5). A model is built only from events, in `apply`, through the
//! runner's transaction; queries only read. With the `postgres` feature each is a
//! PostgreSQL projection too (`postgres`), whose queries answer the same (search with
//! PostgreSQL's full-text search); with the `redis` feature the catalog is also kept in
//! Redis, built from the same events.

mod catalog;
#[cfg(feature = "redis")]
mod catalog_redis;
mod orders;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
mod sales;
mod search;

pub use catalog::{CATALOG, Catalog, ProductView};
#[cfg(feature = "redis")]
pub use catalog_redis::{CATALOG_REDIS, RedisCatalog};
pub use orders::{ORDERS, OrderLineView, OrderSummaries, OrderSummary, OrderView};
#[cfg(feature = "postgres")]
pub use postgres::ts_query;
pub use sales::{DAILY_SALES, DailySales, DaySales};
pub use search::{PRODUCT_SEARCH, ProductSearch, SearchHit, fts_query};

use strata_core::RecordedEvent;
use strata_domain::{CodecError, EventCodec, Upcasters};
use strata_projection::ApplyError;

/// Decodes one of the shop's stored events. A type the event enum does not know is
/// unhandled (the runner steps over it); one it knows that does not decode is refused
/// (the runner parks it).
fn decode<E: EventCodec>(event: &RecordedEvent) -> Result<E, ApplyError> {
    Upcasters::new().decode(event).map_err(|e| match e {
        CodecError::UnknownType(_) => ApplyError::from(e),
        e => ApplyError::new(format!(
            "{} at position {} does not decode: {e}",
            event.event_type, event.position
        )),
    })
}

/// A count or an amount as a SQL integer. The domain keeps both at most `i64::MAX`.
/// Runs one statement of a projection's `apply`, reusing its prepared form: the same few
/// statements run for every event, and parsing their SQL each time dominated rebuilds.
fn exec(
    tx: &rusqlite::Transaction<'_>,
    statement: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    tx.prepare_cached(statement)?.execute(params)
}

fn sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A SQL integer as a count or an amount (never negative in these models).
fn unsigned(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests;
