//! The balances read model: one row per account with its owner and balance, built from
//! the `account` category in SQLite. It changes only in `apply`; its queries only read.

use rusqlite::{OptionalExtension, Transaction, params};
use serde::Serialize;
use strata_core::RecordedEvent;
use strata_domain::{Aggregate, Upcasters};
use strata_projection::{ApplyError, SqliteProjection};
use strata_store::ReadFilter;

use crate::account::{Account, AccountEvent};

/// The projection's name (it names its database file).
pub const BALANCES: &str = "bank_balances";

/// An account as the read model knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BalanceView {
    /// The account's id.
    pub account: String,
    /// Who holds it.
    pub owner: String,
    /// The balance in minor units.
    pub balance: u64,
}

/// The balances projection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Balances;

impl SqliteProjection for Balances {
    fn name(&self) -> &'static str {
        BALANCES
    }

    fn version(&self) -> u32 {
        1
    }

    fn filter(&self) -> ReadFilter {
        ReadFilter::all().category(Account::CATEGORY)
    }

    fn migrate(&self, tx: &Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch(
            "CREATE TABLE balances (
                 account TEXT PRIMARY KEY,
                 owner TEXT NOT NULL,
                 balance INTEGER NOT NULL
             );",
        )
    }

    fn apply(&self, tx: &Transaction<'_>, event: &RecordedEvent) -> Result<(), ApplyError> {
        // An event type this enum does not know is stepped over; one that does not decode
        // is parked.
        let event: AccountEvent = Upcasters::new().decode(event)?;
        // The domain keeps every balance at most `MAX_BALANCE`, which fits a SQL integer.
        let sql = |amount: u64| i64::try_from(amount).unwrap_or(i64::MAX);
        match event {
            AccountEvent::Opened { account, owner } => {
                tx.execute(
                    "INSERT INTO balances (account, owner, balance) VALUES (?1, ?2, 0)",
                    params![account, owner],
                )?;
            }
            AccountEvent::Deposited {
                account, amount, ..
            } => {
                tx.execute(
                    "UPDATE balances SET balance = balance + ?2 WHERE account = ?1",
                    params![account, sql(amount)],
                )?;
            }
            AccountEvent::Withdrawn {
                account, amount, ..
            } => {
                tx.execute(
                    "UPDATE balances SET balance = balance - ?2 WHERE account = ?1",
                    params![account, sql(amount)],
                )?;
            }
        }
        Ok(())
    }
}

impl Balances {
    /// The account `account`, if the read model has it.
    pub fn balance(
        conn: &rusqlite::Connection,
        account: &str,
    ) -> rusqlite::Result<Option<BalanceView>> {
        conn.query_row(
            "SELECT account, owner, balance FROM balances WHERE account = ?1",
            params![account],
            |row| {
                Ok(BalanceView {
                    account: row.get(0)?,
                    owner: row.get(1)?,
                    balance: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                })
            },
        )
        .optional()
    }
}
