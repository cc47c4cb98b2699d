//! [`Bank`]: the service an edge calls. Commands go through the command handler and
//! answer a [`CommandOutcome`] whose position is the consistency token; the balance query
//! reads the balances read model, first waiting (bounded) until it has caught up with a
//! token; a transfer is read from its own stream.
//!
//! It must not know HTTP: errors are a typed [`BankError`] the edge maps to statuses.

use std::sync::Arc;
use std::time::Duration;

use strata_core::Position;
use strata_domain::{
    Aggregate, CommandContext, CommandError, CommandHandler, CommandOutcome, DomainError,
};
use strata_projection::{ProcessManagers, ProjectionError, Projections};
use strata_store::StoreError;

use crate::account::{Account, AccountCommand, AccountError};
use crate::balances::{BALANCES, BalanceView, Balances};
use crate::process::{TransferProcess, TransferSender};
use crate::transfer::{Transfer, TransferCommand};

/// Why a bank operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BankError {
    /// A rule of the domain refused the command; nothing was written. `code` is stable
    /// (`insufficient_funds`, `same_account`, …): show it to the caller.
    #[error("{message}")]
    Refused {
        /// The broken rule.
        code: &'static str,
        /// A sentence for people.
        message: String,
    },
    /// The account or transfer does not exist.
    #[error("no {what} {id:?}")]
    NotFound {
        /// What was looked for: `account` or `transfer`.
        what: &'static str,
        /// Its id.
        id: String,
    },
    /// The id cannot name a stream: fix the request.
    #[error("invalid id {id:?}: {reason}")]
    InvalidId {
        /// The id given.
        id: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Other writers kept changing the same aggregate; every attempt conflicted.
    /// Retrying with the same command id is safe.
    #[error("{stream} kept changing: {attempts} attempts conflicted")]
    Conflict {
        /// The aggregate's stream.
        stream: String,
        /// How many times the command was decided.
        attempts: u32,
    },
    /// The command id was already used for another command. Nothing was written; send
    /// this command under a new id.
    #[error("{0}")]
    CommandIdReused(String),
    /// The read model did not catch up with the consistency token in time. Retry later,
    /// or read without a token and accept older data.
    #[error("read model {read_model} did not reach position {position} in time (at {checkpoint})")]
    NotCaughtUp {
        /// The read model waited on.
        read_model: String,
        /// The token waited for.
        position: Position,
        /// Where the read model was when the wait ended.
        checkpoint: Position,
    },
    /// The event store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The read model failed: stopped for good, or its database failed.
    #[error(transparent)]
    ReadModel(ProjectionError),
    /// Anything else that is no fault of the caller: a stored event that does not decode,
    /// a setup step that failed.
    #[error("{0}")]
    Internal(String),
}

impl From<ProjectionError> for BankError {
    fn from(err: ProjectionError) -> Self {
        match err {
            ProjectionError::Timeout {
                name,
                position,
                checkpoint,
                ..
            } => BankError::NotCaughtUp {
                read_model: name,
                position,
                checkpoint,
            },
            other => BankError::ReadModel(other),
        }
    }
}

/// The error of a handled command, in the bank's terms: `what` names the aggregate in a
/// not-found answer.
fn command_error<E: DomainError>(
    what: &'static str,
    id: &str,
    not_found: fn(&E) -> bool,
    err: CommandError<E>,
) -> BankError {
    match err {
        CommandError::Domain(refusal) if not_found(&refusal) => BankError::NotFound {
            what,
            id: id.to_owned(),
        },
        CommandError::Domain(refusal) => BankError::Refused {
            code: refusal.code(),
            message: refusal.to_string(),
        },
        CommandError::Conflict { stream, attempts } => BankError::Conflict {
            stream: stream.to_string(),
            attempts,
        },
        CommandError::InvalidId(err) => BankError::InvalidId {
            id: id.to_owned(),
            reason: err.to_string(),
        },
        err @ CommandError::CommandIdReused { .. } => BankError::CommandIdReused(err.to_string()),
        CommandError::Store(err) => BankError::Store(err),
        other => BankError::Internal(other.to_string()),
    }
}

/// The bank: account and transfer commands, balances and transfers to read.
///
/// Cloning is cheap and gives another handle to the same bank.
#[derive(Clone)]
pub struct Bank {
    handler: Arc<CommandHandler>,
    projections: Projections,
}

impl Bank {
    /// The stream categories the bank's aggregates write: their events come only through
    /// its commands (an edge refuses other writes into them).
    pub const CATEGORIES: [&'static str; 2] = [Account::CATEGORY, Transfer::CATEGORY];

    /// Builds the bank over `handler`, registering its balances read model with
    /// `projections` and its transfer process manager with `processes`. Starting the
    /// hosts is the caller's job.
    pub fn new(
        handler: Arc<CommandHandler>,
        projections: Projections,
        processes: &ProcessManagers,
    ) -> Result<Self, BankError> {
        projections.register(Arc::new(Balances))?;
        processes.register(
            Arc::new(TransferProcess),
            Arc::new(TransferSender::new(handler.clone())),
        )?;
        Ok(Self {
            handler,
            projections,
        })
    }

    async fn account(
        &self,
        id: &str,
        command: AccountCommand,
        context: &CommandContext,
    ) -> Result<CommandOutcome, BankError> {
        self.handler
            .handle::<Account>(id, &command, context)
            .await
            .map_err(|err| {
                command_error("account", id, |e| matches!(e, AccountError::NotFound), err)
            })
    }

    /// Opens account `id` for `owner`. Refusals: `account_exists`, `invalid_owner`.
    pub async fn open(
        &self,
        id: &str,
        owner: &str,
        context: &CommandContext,
    ) -> Result<CommandOutcome, BankError> {
        let command = AccountCommand::Open {
            account: id.to_owned(),
            owner: owner.to_owned(),
        };
        self.account(id, command, context).await
    }

    /// Puts `amount` into account `id`. Refusals: `invalid_amount`, `balance_too_large`;
    /// an account never opened is [`BankError::NotFound`].
    pub async fn deposit(
        &self,
        id: &str,
        amount: u64,
        context: &CommandContext,
    ) -> Result<CommandOutcome, BankError> {
        let command = AccountCommand::Deposit {
            amount,
            transfer: None,
        };
        self.account(id, command, context).await
    }

    /// Takes `amount` out of account `id`. Refusals: `invalid_amount`,
    /// `insufficient_funds` (it would overdraw the account); an account never opened is
    /// [`BankError::NotFound`].
    pub async fn withdraw(
        &self,
        id: &str,
        amount: u64,
        context: &CommandContext,
    ) -> Result<CommandOutcome, BankError> {
        let command = AccountCommand::Withdraw {
            amount,
            transfer: None,
        };
        self.account(id, command, context).await
    }

    /// Asks for transfer `id` of `amount` from account `from` to account `to`. The money
    /// moves later, through the transfer process manager; read the transfer to see how
    /// it ended. Refusals: `transfer_exists`, `same_account`, `invalid_amount`.
    pub async fn transfer(
        &self,
        id: &str,
        from: &str,
        to: &str,
        amount: u64,
        context: &CommandContext,
    ) -> Result<CommandOutcome, BankError> {
        let command = TransferCommand::Request {
            transfer: id.to_owned(),
            from: from.to_owned(),
            to: to.to_owned(),
            amount,
        };
        self.handler
            .handle::<Transfer>(id, &command, context)
            .await
            .map_err(|err| command_error("transfer", id, |_| false, err))
    }

    /// Account `id` from the balances read model, once it has passed `after` (waiting at
    /// most `timeout`).
    pub async fn balance(
        &self,
        id: &str,
        after: Option<Position>,
        timeout: Duration,
    ) -> Result<BalanceView, BankError> {
        if let Some(position) = after {
            self.projections
                .wait_for(BALANCES, position, timeout)
                .await?;
        }
        let owned = id.to_owned();
        let view = self
            .projections
            .query(BALANCES, move |conn| Balances::balance(conn, &owned))
            .await?;
        view.ok_or_else(|| BankError::NotFound {
            what: "account",
            id: id.to_owned(),
        })
    }

    /// Transfer `id` as its own stream has it now: where it stands, and why it failed.
    pub async fn transfer_state(&self, id: &str) -> Result<Transfer, BankError> {
        let loaded = self
            .handler
            .load::<Transfer>(id)
            .await
            .map_err(|err| command_error("transfer", id, |_| false, err))?;
        if loaded.state.status.is_none() {
            return Err(BankError::NotFound {
                what: "transfer",
                id: id.to_owned(),
            });
        }
        Ok(loaded.state)
    }
}
