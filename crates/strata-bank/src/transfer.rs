//! The transfer: a request to move money from one account to another, and how it ended.
//! It moves no money itself; the transfer process manager does, through the accounts.
//! Pure: no I/O, no clock.

use serde::{Deserialize, Serialize};
use strata_domain::{Aggregate, DomainError, TaggedEvent};

use crate::account::MAX_BALANCE;

/// Where a transfer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStatus {
    /// Asked for; the money is on its way.
    Requested,
    /// The money left the source and reached the target.
    Completed,
    /// The money did not move (or was given back to the source).
    Failed,
}

/// A transfer, stream `transfer-{id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// Its id, once requested.
    pub id: String,
    /// The account the money leaves.
    pub from: String,
    /// The account the money reaches.
    pub to: String,
    /// How much, in minor units.
    pub amount: u64,
    /// Where it stands; `None` until requested.
    pub status: Option<TransferStatus>,
    /// Why it failed: the code of the refusal that stopped it.
    pub reason: Option<String>,
}

/// What can be asked of a transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransferCommand {
    /// Asks for money to move from `from` to `to`.
    Request {
        /// The transfer's id (also the aggregate id).
        transfer: String,
        /// The source account.
        from: String,
        /// The target account, not the source.
        to: String,
        /// How much, above zero.
        amount: u64,
    },
    /// Records that the money arrived.
    Complete,
    /// Records that the money could not move.
    Fail {
        /// The code of the refusal that stopped it (`insufficient_funds`).
        reason: String,
    },
}

/// What happened to a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum TransferEvent {
    /// A transfer was asked for.
    #[serde(rename = "TransferRequested")]
    Requested {
        /// Its id.
        transfer: String,
        /// The source account.
        from: String,
        /// The target account.
        to: String,
        /// How much.
        amount: u64,
    },
    /// The money arrived.
    #[serde(rename = "TransferCompleted")]
    Completed {
        /// The transfer.
        transfer: String,
    },
    /// The money could not move.
    #[serde(rename = "TransferFailed")]
    Failed {
        /// The transfer.
        transfer: String,
        /// Why.
        reason: String,
    },
}

impl TaggedEvent for TransferEvent {}

/// Why a transfer command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TransferError {
    /// A transfer with this id was already requested.
    #[error("transfer {0} was already requested")]
    AlreadyRequested(String),
    /// No transfer with this id was requested.
    #[error("no such transfer")]
    NotFound,
    /// The source and the target are the same account.
    #[error("a transfer must go to another account")]
    SameAccount,
    /// The amount is zero or above the largest balance.
    #[error("an amount must be above zero and at most {MAX_BALANCE}")]
    InvalidAmount,
    /// The transfer already ended the other way.
    #[error("the transfer has already ended: {0:?}")]
    AlreadyEnded(TransferStatus),
}

impl DomainError for TransferError {
    fn code(&self) -> &'static str {
        match self {
            TransferError::AlreadyRequested(_) => "transfer_exists",
            TransferError::NotFound => "transfer_not_found",
            TransferError::SameAccount => "same_account",
            TransferError::InvalidAmount => "invalid_amount",
            TransferError::AlreadyEnded(_) => "transfer_ended",
        }
    }
}

impl Aggregate for Transfer {
    const CATEGORY: &'static str = "transfer";

    type Command = TransferCommand;
    type Event = TransferEvent;
    type Error = TransferError;

    fn decide(&self, command: &TransferCommand) -> Result<Vec<TransferEvent>, TransferError> {
        use TransferStatus::{Completed, Failed, Requested};
        match (command, self.status) {
            (TransferCommand::Request { transfer, .. }, Some(_)) => {
                Err(TransferError::AlreadyRequested(transfer.clone()))
            }
            (
                TransferCommand::Request {
                    transfer,
                    from,
                    to,
                    amount,
                },
                None,
            ) => {
                if from == to {
                    return Err(TransferError::SameAccount);
                }
                if *amount == 0 || *amount > MAX_BALANCE {
                    return Err(TransferError::InvalidAmount);
                }
                Ok(vec![TransferEvent::Requested {
                    transfer: transfer.clone(),
                    from: from.clone(),
                    to: to.clone(),
                    amount: *amount,
                }])
            }
            (_, None) => Err(TransferError::NotFound),
            // Ending a transfer the same way twice is no change.
            (TransferCommand::Complete, Some(Completed))
            | (TransferCommand::Fail { .. }, Some(Failed)) => Ok(Vec::new()),
            (TransferCommand::Complete, Some(Requested)) => Ok(vec![TransferEvent::Completed {
                transfer: self.id.clone(),
            }]),
            (TransferCommand::Fail { reason }, Some(Requested)) => {
                Ok(vec![TransferEvent::Failed {
                    transfer: self.id.clone(),
                    reason: reason.clone(),
                }])
            }
            (_, Some(ended)) => Err(TransferError::AlreadyEnded(ended)),
        }
    }

    fn evolve(mut self, event: &TransferEvent) -> Self {
        match event {
            TransferEvent::Requested {
                transfer,
                from,
                to,
                amount,
            } => {
                self.id = transfer.clone();
                self.from = from.clone();
                self.to = to.clone();
                self.amount = *amount;
                self.status = Some(TransferStatus::Requested);
            }
            TransferEvent::Completed { .. } => self.status = Some(TransferStatus::Completed),
            TransferEvent::Failed { reason, .. } => {
                self.status = Some(TransferStatus::Failed);
                self.reason = Some(reason.clone());
            }
        }
        self
    }
}
