//! Daily sales: per UTC day (of the confirmation's recording time), the orders confirmed
//! and their revenue. Built from `OrderConfirmed` alone: a confirmed order is paid and can
//! no longer be cancelled, so nothing later takes revenue back.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use strata_core::{RecordedEvent, Timestamp};
use strata_domain::Aggregate;
use strata_projection::{ApplyError, SqliteProjection};
use strata_store::ReadFilter;

use super::{decode, exec, sql, unsigned};
use crate::domain::{Money, Order, OrderEvent};

/// The projection's name.
pub const DAILY_SALES: &str = "shop_daily_sales";

/// The sales of one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaySales {
    /// The UTC day, `YYYY-MM-DD`.
    pub day: String,
    /// Orders confirmed that day.
    pub orders: u64,
    /// The sum of their totals.
    pub revenue: Money,
}

/// The daily-sales projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct DailySales;

/// The UTC day of an instant, `YYYY-MM-DD`.
pub(crate) fn utc_day(at: Timestamp) -> String {
    let date = at.to_datetime().date();
    format!(
        "{:04}-{:02}-{:02}",
        date.year(),
        u8::from(date.month()),
        date.day()
    )
}

impl SqliteProjection for DailySales {
    fn name(&self) -> &'static str {
        DAILY_SALES
    }

    fn version(&self) -> u32 {
        1
    }

    fn filter(&self) -> ReadFilter {
        ReadFilter::all()
            .category(Order::CATEGORY)
            .event_type("OrderConfirmed")
    }

    fn migrate(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE daily_sales (
                 day TEXT PRIMARY KEY,
                 orders INTEGER NOT NULL,
                 revenue INTEGER NOT NULL
             );",
        )
    }

    fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ApplyError> {
        let OrderEvent::Confirmed { total, .. } = decode::<OrderEvent>(event)? else {
            return Ok(());
        };
        let day = utc_day(event.recorded_at);
        let (orders, revenue) = tx
            .prepare_cached("SELECT orders, revenue FROM daily_sales WHERE day = ?1")?
            .query_row(params![day], |row| {
                Ok((unsigned(row.get(0)?), Money(unsigned(row.get(1)?))))
            })
            .optional()?
            .unwrap_or_default();
        // A day's revenue past the largest amount stays at it rather than wrapping.
        let revenue = revenue.checked_add(total).unwrap_or(Money::MAX);
        exec(
            tx,
            "INSERT OR REPLACE INTO daily_sales (day, orders, revenue) VALUES (?1, ?2, ?3)",
            params![day, sql(orders + 1), sql(revenue.0)],
        )?;
        Ok(())
    }
}

impl DailySales {
    /// At most `limit` days with sales after the day `after` (`YYYY-MM-DD`; `""`: from
    /// the first), oldest first.
    pub fn days(
        conn: &rusqlite::Connection,
        after: &str,
        limit: usize,
    ) -> rusqlite::Result<Vec<DaySales>> {
        conn.prepare_cached(
            "SELECT day, orders, revenue FROM daily_sales WHERE day > ?1 ORDER BY day LIMIT ?2",
        )?
        .query_map(params![after, sql(limit as u64)], |row| {
            Ok(DaySales {
                day: row.get(0)?,
                orders: unsigned(row.get(1)?),
                revenue: Money(unsigned(row.get(2)?)),
            })
        })?
        .collect()
    }
}
