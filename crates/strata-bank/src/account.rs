//! The account: a balance in minor units that deposits raise and withdrawals lower, never
//! below zero. Pure: no I/O, no clock.

use serde::{Deserialize, Serialize};
use strata_domain::{Aggregate, DomainError, TaggedEvent};

/// The largest balance an account may hold (so that it fits a SQL integer).
pub const MAX_BALANCE: u64 = i64::MAX as u64;

/// An account, stream `account-{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// Its id, once opened.
    pub id: String,
    /// Who holds it; `None` until it is opened.
    pub owner: Option<String>,
    /// The balance in minor units (cents).
    pub balance: u64,
}

/// What can be asked of an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccountCommand {
    /// Opens the account with a balance of zero.
    Open {
        /// The account's id (also the aggregate id).
        account: String,
        /// Who holds it: not blank.
        owner: String,
    },
    /// Puts money in.
    Deposit {
        /// How much, above zero.
        amount: u64,
        /// The transfer this deposit is part of, if any.
        transfer: Option<String>,
    },
    /// Takes money out; refused when the balance would go below zero.
    Withdraw {
        /// How much, above zero.
        amount: u64,
        /// The transfer this withdrawal is part of, if any.
        transfer: Option<String>,
    },
}

/// What happened to an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum AccountEvent {
    /// The account was opened.
    #[serde(rename = "AccountOpened")]
    Opened {
        /// Its id.
        account: String,
        /// Who holds it.
        owner: String,
    },
    /// Money was put in.
    #[serde(rename = "MoneyDeposited")]
    Deposited {
        /// The account.
        account: String,
        /// How much.
        amount: u64,
        /// The transfer it is part of, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transfer: Option<String>,
    },
    /// Money was taken out.
    #[serde(rename = "MoneyWithdrawn")]
    Withdrawn {
        /// The account.
        account: String,
        /// How much.
        amount: u64,
        /// The transfer it is part of, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transfer: Option<String>,
    },
}

impl TaggedEvent for AccountEvent {}

/// Why an account command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AccountError {
    /// The account is already open.
    #[error("account {0} is already open")]
    AlreadyOpen(String),
    /// The account was never opened.
    #[error("no such account")]
    NotFound,
    /// The owner is blank.
    #[error("an account's owner must not be blank")]
    InvalidOwner,
    /// The amount is zero or above the largest balance.
    #[error("an amount must be above zero and at most {MAX_BALANCE}")]
    InvalidAmount,
    /// The withdrawal would overdraw the account.
    #[error("cannot withdraw {amount}: the balance is {balance}")]
    InsufficientFunds {
        /// The balance now.
        balance: u64,
        /// The amount asked for.
        amount: u64,
    },
    /// The deposit would take the balance past [`MAX_BALANCE`].
    #[error("a deposit of {amount} would take the balance {balance} past {MAX_BALANCE}")]
    BalanceTooLarge {
        /// The balance now.
        balance: u64,
        /// The amount asked for.
        amount: u64,
    },
}

impl DomainError for AccountError {
    fn code(&self) -> &'static str {
        match self {
            AccountError::AlreadyOpen(_) => "account_exists",
            AccountError::NotFound => "account_not_found",
            AccountError::InvalidOwner => "invalid_owner",
            AccountError::InvalidAmount => "invalid_amount",
            AccountError::InsufficientFunds { .. } => "insufficient_funds",
            AccountError::BalanceTooLarge { .. } => "balance_too_large",
        }
    }
}

/// An amount a deposit or a withdrawal may move.
fn check_amount(amount: u64) -> Result<(), AccountError> {
    if amount == 0 || amount > MAX_BALANCE {
        return Err(AccountError::InvalidAmount);
    }
    Ok(())
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";

    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match (command, &self.owner) {
            (AccountCommand::Open { account, .. }, Some(_)) => {
                Err(AccountError::AlreadyOpen(account.clone()))
            }
            (AccountCommand::Open { account, owner }, None) => {
                if owner.trim().is_empty() {
                    return Err(AccountError::InvalidOwner);
                }
                Ok(vec![AccountEvent::Opened {
                    account: account.clone(),
                    owner: owner.clone(),
                }])
            }
            (_, None) => Err(AccountError::NotFound),
            (AccountCommand::Deposit { amount, transfer }, Some(_)) => {
                check_amount(*amount)?;
                let too_large = AccountError::BalanceTooLarge {
                    balance: self.balance,
                    amount: *amount,
                };
                match self.balance.checked_add(*amount) {
                    Some(after) if after <= MAX_BALANCE => {}
                    _ => return Err(too_large),
                }
                Ok(vec![AccountEvent::Deposited {
                    account: self.id.clone(),
                    amount: *amount,
                    transfer: transfer.clone(),
                }])
            }
            (AccountCommand::Withdraw { amount, transfer }, Some(_)) => {
                check_amount(*amount)?;
                if *amount > self.balance {
                    return Err(AccountError::InsufficientFunds {
                        balance: self.balance,
                        amount: *amount,
                    });
                }
                Ok(vec![AccountEvent::Withdrawn {
                    account: self.id.clone(),
                    amount: *amount,
                    transfer: transfer.clone(),
                }])
            }
        }
    }

    fn evolve(mut self, event: &AccountEvent) -> Self {
        match event {
            AccountEvent::Opened { account, owner } => {
                self.id = account.clone();
                self.owner = Some(owner.clone());
            }
            AccountEvent::Deposited { amount, .. } => {
                self.balance = self.balance.saturating_add(*amount);
            }
            AccountEvent::Withdrawn { amount, .. } => {
                self.balance = self.balance.saturating_sub(*amount);
            }
        }
        self
    }
}
