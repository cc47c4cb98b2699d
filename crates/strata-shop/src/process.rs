//! Checkout wired to strata-projection: [`CheckoutProcess`] adapts the pure state machine
//! to the [`ProcessManager`] trait, and [`CheckoutSender`] delivers its commands to the
//! command handler, asking the payment provider on the way.
//!
//! The sender decides what a refusal means, since a refused command records no event:
//! a refused reservation cancels the order (`insufficient_stock`), which checkout then
//! compensates; other refusals are answers, not failures (a release with nothing held,
//! a confirmation of an order cancelled meanwhile). Only infrastructure faults return
//! `Err`, so that the runner retries them.

use std::sync::Arc;

use async_trait::async_trait;
use strata_core::{RecordedEvent, Timestamp};
use strata_domain::{Aggregate, CommandContext, CommandError, CommandHandler, DomainError};
use strata_projection::{CommandSender, ProcessManager, Reaction, SendError};
use strata_store::ReadFilter;
use uuid::Uuid;

use crate::checkout::{Checkout, CheckoutCommand, CheckoutEvent, CheckoutStep, CheckoutTimeout};
use crate::domain::{
    CancelReason, Inventory, InventoryCommand, InventoryError, Order, OrderCommand, Payment,
    PaymentCommand,
};
use crate::provider::PaymentProvider;

/// The process manager's name (it names its database file).
pub const CHECKOUT: &str = "shop_checkout";

/// The checkout process manager: one instance per order.
#[derive(Debug, Clone, Copy, Default)]
pub struct CheckoutProcess;

/// `at + after`, saturating.
fn deadline(at: Timestamp, after: std::time::Duration) -> Timestamp {
    let nanos = i64::try_from(after.as_nanos()).unwrap_or(i64::MAX);
    Timestamp::from_unix_nanos(at.unix_nanos().saturating_add(nanos))
}

fn reaction(step: CheckoutStep, now: Timestamp) -> Reaction<Checkout, CheckoutCommand> {
    let mut reaction = Reaction::new(step.state);
    reaction.commands = step.commands;
    reaction.timeouts = step
        .timeouts
        .into_iter()
        .map(|(after, timeout)| (timeout.name().to_owned(), deadline(now, after)))
        .collect();
    reaction.done = step.done;
    reaction
}

impl ProcessManager for CheckoutProcess {
    type State = Checkout;
    type Command = CheckoutCommand;

    fn name(&self) -> &'static str {
        CHECKOUT
    }

    fn filter(&self) -> ReadFilter {
        CheckoutEvent::EVENT_TYPES.into_iter().fold(
            ReadFilter::all()
                .category(Order::CATEGORY)
                .category(Inventory::CATEGORY)
                .category(Payment::CATEGORY),
            ReadFilter::event_type,
        )
    }

    fn correlate(&self, event: &RecordedEvent) -> Option<String> {
        CheckoutEvent::decode(event).map(|e| e.order_id().to_owned())
    }

    fn react(&self, state: Checkout, event: &RecordedEvent) -> Reaction<Checkout, CheckoutCommand> {
        match CheckoutEvent::decode(event) {
            // Deadlines count from the event's recording time, so a replay sets the same.
            Some(decoded) => reaction(state.react(&decoded), event.recorded_at),
            None => Reaction::new(state),
        }
    }

    fn on_timeout(&self, state: Checkout, timeout: &str) -> Reaction<Checkout, CheckoutCommand> {
        match CheckoutTimeout::from_name(timeout) {
            Some(timeout) => reaction(state.on_timeout(timeout), Timestamp::default()),
            None => Reaction::new(state),
        }
    }
}

/// Delivers checkout's commands to the aggregates.
#[derive(Clone)]
pub struct CheckoutSender {
    handler: Arc<CommandHandler>,
    provider: Arc<dyn PaymentProvider>,
}

impl CheckoutSender {
    /// A sender through `handler`, asking `provider` for authorizations.
    pub fn new(handler: Arc<CommandHandler>, provider: Arc<dyn PaymentProvider>) -> Self {
        Self { handler, provider }
    }

    /// Handles one aggregate command: `Ok(Err(refusal))` for a domain refusal, `Err` for
    /// a fault worth retrying. A command that can never succeed (an id that is no valid
    /// stream name, an event that does not decode) is logged and dropped.
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
                tracing::error!(stream = %format!("{}-{id}", A::CATEGORY), error = %err, "checkout drops a command that cannot succeed");
                Ok(Ok(()))
            }
        }
    }
}

/// Logs a refusal that needs nothing more: the state it met is already the answer.
fn accept_refusal(command: &str, order_id: &str, refusal: &impl DomainError) {
    tracing::debug!(
        command,
        order_id,
        code = refusal.code(),
        "checkout command refused"
    );
}

#[async_trait]
impl CommandSender<CheckoutCommand> for CheckoutSender {
    async fn send(
        &self,
        command: CheckoutCommand,
        context: CommandContext,
    ) -> Result<(), SendError> {
        match command {
            CheckoutCommand::ReserveStock {
                order_id,
                sku,
                quantity,
            } => {
                let reserve = InventoryCommand::Reserve {
                    order_id: order_id.clone(),
                    quantity,
                };
                let Err(refusal) = self.handle::<Inventory>(&sku, &reserve, &context).await? else {
                    return Ok(());
                };
                accept_refusal("reserve_stock", &order_id, &refusal);
                // The refusal records nothing: cancelling the order is how checkout hears
                // of it. The cancel's id derives from the reservation's, so a repeat of
                // this send cancels once.
                let cancel = OrderCommand::Cancel {
                    reason: CancelReason::InsufficientStock { sku },
                };
                let cancel_context = CommandContext {
                    command_id: Uuid::new_v5(&context.command_id, b"cancel-after-refusal"),
                    causation_id: Some(context.command_id.to_string()),
                    ..context
                };
                if let Err(refusal) = self
                    .handle::<Order>(&order_id, &cancel, &cancel_context)
                    .await?
                {
                    // Already confirmed or shipped; nothing to undo here.
                    accept_refusal("cancel_order", &order_id, &refusal);
                }
                Ok(())
            }
            CheckoutCommand::ReleaseStock { order_id, sku } => {
                let release = InventoryCommand::Release {
                    order_id: order_id.clone(),
                };
                match self.handle::<Inventory>(&sku, &release, &context).await? {
                    Ok(()) | Err(InventoryError::ReservationNotFound(_)) => {}
                    Err(refusal) => accept_refusal("release_stock", &order_id, &refusal),
                }
                Ok(())
            }
            CheckoutCommand::CommitStock { order_id, sku } => {
                let commit = InventoryCommand::Commit {
                    order_id: order_id.clone(),
                };
                if let Err(refusal) = self.handle::<Inventory>(&sku, &commit, &context).await? {
                    tracing::error!(
                        order_id,
                        sku,
                        code = refusal.code(),
                        "a confirmed order's reservation cannot be committed"
                    );
                }
                Ok(())
            }
            CheckoutCommand::AuthorizePayment {
                order_id,
                customer,
                amount,
            } => {
                let answer = self.provider.authorize(&order_id, &customer, amount);
                let authorize = PaymentCommand::Authorize {
                    order_id: order_id.clone(),
                    customer,
                    amount,
                    answer,
                };
                if let Err(refusal) = self
                    .handle::<Payment>(&order_id, &authorize, &context)
                    .await?
                {
                    accept_refusal("authorize_payment", &order_id, &refusal);
                }
                Ok(())
            }
            CheckoutCommand::CapturePayment { order_id } => {
                self.payment(
                    order_id,
                    PaymentCommand::Capture,
                    "capture_payment",
                    &context,
                )
                .await
            }
            CheckoutCommand::VoidPayment { order_id } => {
                self.payment(order_id, PaymentCommand::Void, "void_payment", &context)
                    .await
            }
            CheckoutCommand::RefundPayment { order_id } => {
                self.payment(order_id, PaymentCommand::Refund, "refund_payment", &context)
                    .await
            }
            CheckoutCommand::ConfirmOrder { order_id } => {
                // Refused when the order was cancelled meanwhile: the cancellation
                // compensates.
                self.order(order_id, OrderCommand::Confirm, "confirm_order", &context)
                    .await
            }
            CheckoutCommand::CancelOrder { order_id, reason } => {
                self.order(
                    order_id,
                    OrderCommand::Cancel { reason },
                    "cancel_order",
                    &context,
                )
                .await
            }
        }
    }
}

impl CheckoutSender {
    async fn payment(
        &self,
        order_id: String,
        command: PaymentCommand,
        name: &str,
        context: &CommandContext,
    ) -> Result<(), SendError> {
        if let Err(refusal) = self.handle::<Payment>(&order_id, &command, context).await? {
            accept_refusal(name, &order_id, &refusal);
        }
        Ok(())
    }

    async fn order(
        &self,
        order_id: String,
        command: OrderCommand,
        name: &str,
        context: &CommandContext,
    ) -> Result<(), SendError> {
        if let Err(refusal) = self.handle::<Order>(&order_id, &command, context).await? {
            accept_refusal(name, &order_id, &refusal);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
