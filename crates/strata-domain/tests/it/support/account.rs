//! A bank account: open, deposit, withdraw (refused past the balance), close. No
//! snapshots; its `deposited` event is at schema version 3, with upcasters from 1 and 2.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use strata_domain::{Aggregate, DomainError, TaggedEvent, Upcaster, Upcasters};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub(crate) enum Currency {
    Eur,
    Usd,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub(crate) enum AccountEvent {
    Opened {
        owner: String,
        currency: Currency,
    },
    /// Schema 1: `{"amount": whole units}`; 2: `{"cents"}`; 3: `{"cents", "currency"}`.
    Deposited {
        cents: u64,
        currency: Currency,
    },
    Withdrawn {
        cents: u64,
    },
    Closed,
}

impl TaggedEvent for AccountEvent {
    fn schema_version(event_type: &str) -> u32 {
        match event_type {
            "deposited" => 3,
            _ => 1,
        }
    }
}

/// The upcasters of `deposited`: v1 counted whole euros, v2 cents, v3 adds the currency.
pub(crate) fn upcasters() -> Upcasters {
    fn v1_to_v2(data: Value) -> Value {
        let amount = data["amount"].as_u64().unwrap_or(0);
        json!({ "cents": amount * 100 })
    }
    fn v2_to_v3(mut data: Value) -> Value {
        data["currency"] = json!("EUR");
        data
    }
    Upcasters::new()
        .with(Upcaster {
            event_type: "deposited",
            from: 1,
            upcast: v1_to_v2,
        })
        .with(Upcaster {
            event_type: "deposited",
            from: 2,
            upcast: v2_to_v3,
        })
}

#[derive(Debug, Clone)]
pub(crate) enum AccountCommand {
    Open {
        owner: String,
        currency: Currency,
    },
    /// Depositing nothing decides nothing.
    Deposit {
        cents: u64,
    },
    Withdraw {
        cents: u64,
    },
    /// Withdraws what is left, then closes: one or two events.
    Close,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AccountError {
    #[error("the account is not open")]
    NotOpen,
    #[error("the account is already open")]
    AlreadyOpen,
    #[error("the balance of {balance} cents does not cover {requested} cents")]
    InsufficientFunds { balance: u64, requested: u64 },
}

impl DomainError for AccountError {
    fn code(&self) -> &'static str {
        match self {
            AccountError::NotOpen => "account_not_open",
            AccountError::AlreadyOpen => "account_already_open",
            AccountError::InsufficientFunds { .. } => "insufficient_funds",
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Account {
    pub(crate) owner: Option<String>,
    pub(crate) currency: Option<Currency>,
    pub(crate) open: bool,
    pub(crate) balance: u64,
    pub(crate) deposits: u32,
    pub(crate) withdrawals: u32,
}

impl Aggregate for Account {
    const CATEGORY: &'static str = "account";

    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;

    fn decide(&self, command: &AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        match command {
            AccountCommand::Open { owner, currency } => {
                if self.owner.is_some() {
                    return Err(AccountError::AlreadyOpen);
                }
                Ok(vec![AccountEvent::Opened {
                    owner: owner.clone(),
                    currency: *currency,
                }])
            }
            _ if !self.open => Err(AccountError::NotOpen),
            AccountCommand::Deposit { cents: 0 } => Ok(vec![]),
            AccountCommand::Deposit { cents } => Ok(vec![AccountEvent::Deposited {
                cents: *cents,
                currency: self.currency.unwrap_or(Currency::Eur),
            }]),
            AccountCommand::Withdraw { cents } if *cents > self.balance => {
                Err(AccountError::InsufficientFunds {
                    balance: self.balance,
                    requested: *cents,
                })
            }
            AccountCommand::Withdraw { cents } => {
                Ok(vec![AccountEvent::Withdrawn { cents: *cents }])
            }
            AccountCommand::Close if self.balance > 0 => Ok(vec![
                AccountEvent::Withdrawn {
                    cents: self.balance,
                },
                AccountEvent::Closed,
            ]),
            AccountCommand::Close => Ok(vec![AccountEvent::Closed]),
        }
    }

    fn evolve(mut self, event: &AccountEvent) -> Self {
        match event {
            AccountEvent::Opened { owner, currency } => {
                self.owner = Some(owner.clone());
                self.currency = Some(*currency);
                self.open = true;
            }
            AccountEvent::Deposited { cents, .. } => {
                self.balance += cents;
                self.deposits += 1;
            }
            AccountEvent::Withdrawn { cents } => {
                self.balance = self.balance.saturating_sub(*cents);
                self.withdrawals += 1;
            }
            AccountEvent::Closed => self.open = false,
        }
        self
    }
}

pub(crate) fn open(owner: &str) -> AccountCommand {
    AccountCommand::Open {
        owner: owner.to_owned(),
        currency: Currency::Eur,
    }
}

pub(crate) fn deposit(cents: u64) -> AccountCommand {
    AccountCommand::Deposit { cents }
}

pub(crate) fn withdraw(cents: u64) -> AccountCommand {
    AccountCommand::Withdraw { cents }
}
