//! Transfers as a process manager: [`TransferProcess`] turns a transfer's events and its
//! accounts' into the next step (withdraw from the source, deposit to the target, record
//! the end), and [`TransferSender`] delivers each step to the command handler.
//!
//! ```text
//! TransferRequested ─► withdraw from source ─► MoneyWithdrawn ─► deposit to target
//!   ─► MoneyDeposited ─► complete the transfer ─► TransferCompleted (done)
//! ```
//!
//! A refused withdrawal or deposit records no event, so the sender answers the refusal by
//! failing the transfer with the refusal's code. A transfer that fails after its money
//! left the source gives it back (a deposit to the source) before it is done. The
//! reactions are pure; only the sender talks to the command side.

use std::sync::Arc;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use strata_core::RecordedEvent;
use strata_domain::{
    Aggregate, CommandContext, CommandError, CommandHandler, DomainError, Upcasters,
};
use strata_projection::{CommandSender, ProcessManager, Reaction, SendError};
use strata_store::ReadFilter;
use uuid::Uuid;

use crate::account::{Account, AccountCommand, AccountEvent};
use crate::transfer::{Transfer, TransferCommand, TransferEvent};

/// The process manager's name (it names its database file).
pub const TRANSFERS: &str = "bank_transfers";

/// How far one transfer has got: the state of its process manager instance.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferProgress {
    /// The source account.
    pub from: String,
    /// The target account.
    pub to: String,
    /// How much.
    pub amount: u64,
    /// Whether the money left the source.
    pub withdrawn: bool,
    /// Whether the money is being given back to the source.
    pub refunding: bool,
}

/// A step of a transfer: the command the process manager sends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransferStep {
    /// Take the amount out of the source account.
    Withdraw {
        /// The transfer.
        transfer: String,
        /// The source account.
        from: String,
        /// How much.
        amount: u64,
    },
    /// Put the amount into the target account.
    Deposit {
        /// The transfer.
        transfer: String,
        /// The target account.
        to: String,
        /// How much.
        amount: u64,
    },
    /// Give the amount back to the source account, after a failure.
    Refund {
        /// The transfer.
        transfer: String,
        /// The source account.
        from: String,
        /// How much.
        amount: u64,
    },
    /// Record that the money arrived.
    Complete {
        /// The transfer.
        transfer: String,
    },
}

/// The transfer process manager: one instance per transfer.
#[derive(Debug, Clone, Copy, Default)]
pub struct TransferProcess;

/// An event a transfer reacts to, decoded; `None` for any other.
enum Cause {
    Account(AccountEvent),
    Transfer(TransferEvent),
}

fn decode(event: &RecordedEvent) -> Option<Cause> {
    let upcasters = Upcasters::new();
    match event.stream.category() {
        c if c == Account::CATEGORY => upcasters.decode(event).ok().map(Cause::Account),
        c if c == Transfer::CATEGORY => upcasters.decode(event).ok().map(Cause::Transfer),
        _ => None,
    }
}

impl ProcessManager for TransferProcess {
    type State = TransferProgress;
    type Command = TransferStep;

    fn name(&self) -> &'static str {
        TRANSFERS
    }

    fn filter(&self) -> ReadFilter {
        [
            "MoneyWithdrawn",
            "MoneyDeposited",
            "TransferRequested",
            "TransferCompleted",
            "TransferFailed",
        ]
        .into_iter()
        .fold(
            ReadFilter::all()
                .category(Account::CATEGORY)
                .category(Transfer::CATEGORY),
            ReadFilter::event_type,
        )
    }

    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        match decode(event)? {
            Cause::Account(
                AccountEvent::Withdrawn { transfer, .. } | AccountEvent::Deposited { transfer, .. },
            ) => transfer,
            Cause::Account(AccountEvent::Opened { .. }) => None,
            Cause::Transfer(
                TransferEvent::Requested { transfer, .. }
                | TransferEvent::Completed { transfer }
                | TransferEvent::Failed { transfer, .. },
            ) => Some(transfer),
        }
    }

    fn react(
        &self,
        state: TransferProgress,
        event: &RecordedEvent,
    ) -> Reaction<TransferProgress, TransferStep> {
        let Some(cause) = decode(event) else {
            return Reaction::new(state);
        };
        match cause {
            Cause::Transfer(TransferEvent::Requested {
                transfer,
                from,
                to,
                amount,
            }) => Reaction::new(TransferProgress {
                from: from.clone(),
                to,
                amount,
                withdrawn: false,
                refunding: false,
            })
            .send(TransferStep::Withdraw {
                transfer,
                from,
                amount,
            }),
            Cause::Account(AccountEvent::Withdrawn {
                account,
                transfer: Some(transfer),
                ..
            }) if account == state.from && !state.withdrawn => {
                let deposit = TransferStep::Deposit {
                    transfer,
                    to: state.to.clone(),
                    amount: state.amount,
                };
                Reaction::new(TransferProgress {
                    withdrawn: true,
                    ..state
                })
                .send(deposit)
            }
            Cause::Account(AccountEvent::Deposited {
                account,
                transfer: Some(transfer),
                ..
            }) if account == state.to && state.withdrawn && !state.refunding => {
                Reaction::new(state).send(TransferStep::Complete { transfer })
            }
            // The money is back at the source: nothing more to do.
            Cause::Account(AccountEvent::Deposited { account, .. })
                if account == state.from && state.refunding =>
            {
                Reaction::new(state).done()
            }
            Cause::Transfer(TransferEvent::Failed { transfer, .. }) if state.withdrawn => {
                let refund = TransferStep::Refund {
                    transfer,
                    from: state.from.clone(),
                    amount: state.amount,
                };
                Reaction::new(TransferProgress {
                    refunding: true,
                    ..state
                })
                .send(refund)
            }
            Cause::Transfer(TransferEvent::Completed { .. } | TransferEvent::Failed { .. }) => {
                Reaction::new(state).done()
            }
            _ => Reaction::new(state),
        }
    }

    fn on_timeout(
        &self,
        state: TransferProgress,
        _timeout: &str,
    ) -> Reaction<TransferProgress, TransferStep> {
        // Transfers set no timeouts.
        Reaction::new(state)
    }
}

/// Delivers a transfer's steps to the accounts and the transfer.
#[derive(Clone)]
pub struct TransferSender {
    handler: Arc<CommandHandler>,
}

impl TransferSender {
    /// A sender through `handler`.
    pub fn new(handler: Arc<CommandHandler>) -> Self {
        Self { handler }
    }

    /// Handles one command: `Ok(Err(refusal))` for a domain refusal, `Err` for a fault
    /// worth retrying. A command that can never succeed (an id that is no valid stream
    /// name, an event that does not decode) is logged and dropped.
    async fn handle<A: Aggregate>(
        &self,
        id: &str,
        command: &A::Command,
        context: &CommandContext,
    ) -> Result<Result<(), A::Error>, SendError> {
        match self.handler.handle::<A>(id, command, context).await {
            Ok(_) => Ok(Ok(())),
            Err(CommandError::Domain(refusal)) => Ok(Err(refusal)),
            Err(err @ (CommandError::Conflict { .. } | CommandError::Store(_))) => Err(
                SendError::caused_by(format_args!("sending to {}-{id}", A::CATEGORY), err),
            ),
            Err(err) => {
                tracing::error!(stream = %format!("{}-{id}", A::CATEGORY), error = %err, "a transfer drops a command that cannot succeed");
                Ok(Ok(()))
            }
        }
    }

    /// Fails `transfer` because an account refused a step. The command id derives from
    /// the step's, so a repeat of the step fails the transfer once.
    async fn fail(
        &self,
        transfer: &str,
        refusal: &impl DomainError,
        context: CommandContext,
    ) -> Result<(), SendError> {
        let fail = TransferCommand::Fail {
            reason: refusal.code().to_owned(),
        };
        let fail_context = CommandContext {
            command_id: Uuid::new_v5(&context.command_id, b"fail-after-refusal"),
            causation_id: Some(context.command_id.to_string()),
            ..context
        };
        if let Err(refusal) = self
            .handle::<Transfer>(transfer, &fail, &fail_context)
            .await?
        {
            tracing::debug!(transfer, code = refusal.code(), "transfer not failed");
        }
        Ok(())
    }
}

#[async_trait]
impl CommandSender<TransferStep> for TransferSender {
    async fn send(&self, step: TransferStep, context: CommandContext) -> Result<(), SendError> {
        match step {
            TransferStep::Withdraw {
                transfer,
                from,
                amount,
            } => {
                let withdraw = AccountCommand::Withdraw {
                    amount,
                    transfer: Some(transfer.clone()),
                };
                match self.handle::<Account>(&from, &withdraw, &context).await? {
                    Ok(()) => Ok(()),
                    Err(refusal) => self.fail(&transfer, &refusal, context).await,
                }
            }
            TransferStep::Deposit {
                transfer,
                to,
                amount,
            } => {
                let deposit = AccountCommand::Deposit {
                    amount,
                    transfer: Some(transfer.clone()),
                };
                match self.handle::<Account>(&to, &deposit, &context).await? {
                    Ok(()) => Ok(()),
                    Err(refusal) => self.fail(&transfer, &refusal, context).await,
                }
            }
            TransferStep::Refund {
                transfer,
                from,
                amount,
            } => {
                let deposit = AccountCommand::Deposit {
                    amount,
                    transfer: Some(transfer.clone()),
                };
                if let Err(refusal) = self.handle::<Account>(&from, &deposit, &context).await? {
                    tracing::error!(
                        transfer,
                        from,
                        code = refusal.code(),
                        "a failed transfer's money cannot be given back"
                    );
                }
                Ok(())
            }
            TransferStep::Complete { transfer } => {
                let complete = TransferCommand::Complete;
                if let Err(refusal) = self
                    .handle::<Transfer>(&transfer, &complete, &context)
                    .await?
                {
                    tracing::debug!(transfer, code = refusal.code(), "transfer not completed");
                }
                Ok(())
            }
        }
    }
}
