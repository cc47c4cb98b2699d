//! The bank account: the aggregate that the PostgreSQL comparison runs on every event
//! store alike (benches/peers implement the same one), and the command each client sends
//! next. Pure: no I/O here.

use serde::{Deserialize, Serialize};
use strata_domain::{Aggregate, DomainError, TaggedEvent};

/// Commands per account: an account is opened, takes seven deposits, one withdrawal and
/// one more deposit, then the client moves to a new account. Streams stay short, so a
/// load reads at most nine events, as the peers' loads do.
pub(crate) const COMMANDS_PER_ACCOUNT: u64 = 10;
/// The amount of every deposit, in cents.
pub(crate) const DEPOSIT: i64 = 100;
/// The amount of every withdrawal, in cents.
pub(crate) const WITHDRAWAL: i64 = 50;

/// A bank account's state: whether it is open and its balance in cents.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(crate) struct Account {
    open: bool,
    balance: i64,
}

/// What a client asks of an account.
#[derive(Debug, Clone, Copy)]
pub(crate) enum AccountCommand {
    /// Opens the account.
    Open,
    /// Puts money in.
    Deposit(i64),
    /// Takes money out, if there is enough.
    Withdraw(i64),
}

/// What an account records.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub(crate) enum AccountEvent {
    /// The account was opened.
    Opened,
    /// Money was put in.
    Deposited { amount: i64 },
    /// Money was taken out.
    Withdrew { amount: i64 },
}

impl TaggedEvent for AccountEvent {}

/// Why an account refuses a command.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub(crate) enum AccountError {
    /// Opening an open account.
    #[error("the account is already open")]
    AlreadyOpen,
    /// Any other command to an account not opened.
    #[error("the account is not open")]
    NotOpen,
    /// Withdrawing more than the balance.
    #[error("the balance is too low")]
    InsufficientFunds,
}

impl DomainError for AccountError {
    fn code(&self) -> &'static str {
        match self {
            AccountError::AlreadyOpen => "already_open",
            AccountError::NotOpen => "not_open",
            AccountError::InsufficientFunds => "insufficient_funds",
        }
    }
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match (*command, self.open) {
            (AccountCommand::Open, true) => Err(AccountError::AlreadyOpen),
            (AccountCommand::Open, false) => Ok(vec![AccountEvent::Opened]),
            (_, false) => Err(AccountError::NotOpen),
            (AccountCommand::Deposit(amount), true) => Ok(vec![AccountEvent::Deposited { amount }]),
            (AccountCommand::Withdraw(amount), true) if amount > self.balance => {
                Err(AccountError::InsufficientFunds)
            }
            (AccountCommand::Withdraw(amount), true) => Ok(vec![AccountEvent::Withdrew { amount }]),
        }
    }

    fn evolve(self, event: &AccountEvent) -> Self {
        match event {
            AccountEvent::Opened => Self { open: true, ..self },
            AccountEvent::Deposited { amount } => Self {
                balance: self.balance + amount,
                ..self
            },
            AccountEvent::Withdrew { amount } => Self {
                balance: self.balance - amount,
                ..self
            },
        }
    }
}

/// Client `client`'s `seq`-th command: the account it goes to and what it asks.
pub(crate) fn command(client: usize, seq: u64) -> (String, AccountCommand) {
    let account = format!("c{client}n{}", seq / COMMANDS_PER_ACCOUNT);
    let command = match seq % COMMANDS_PER_ACCOUNT {
        0 => AccountCommand::Open,
        8 => AccountCommand::Withdraw(WITHDRAWAL),
        _ => AccountCommand::Deposit(DEPOSIT),
    };
    (account, command)
}
