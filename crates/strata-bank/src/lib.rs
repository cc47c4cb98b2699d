//! A second example domain of strata: a bank. Accounts are pure aggregates (open,
//! deposit, withdraw, never overdrawn); a transfer between two accounts is its own
//! aggregate, carried out by a process manager (withdraw from the source, deposit to the
//! target, or fail and record why); balances are a SQLite read model; and [`Bank`] is the
//! service an edge calls. It is built only on the public APIs of strata-core,
//! strata-store, strata-domain and strata-projection, and knows nothing of HTTP or of
//! which event store runs it. docs/guide.md builds it step by step.

mod account;
mod balances;
mod process;
mod service;
mod transfer;

pub use account::{Account, AccountCommand, AccountError, AccountEvent, MAX_BALANCE};
pub use balances::{BALANCES, BalanceView, Balances};
pub use process::{TRANSFERS, TransferProcess, TransferProgress, TransferSender, TransferStep};
pub use service::{Bank, BankError};
pub use transfer::{Transfer, TransferCommand, TransferError, TransferEvent, TransferStatus};
