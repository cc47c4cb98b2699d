//! The checkout process manager as a pure state machine: given its state and one event,
//! the next state and the commands to send. No I/O here; the runner (strata-projection)
//! feeds it events and sends its commands with ids derived from the causing event.
//!
//! The happy path, one step per event:
//!
//! ```text
//! OrderPlaced ─► reserve line 1 ─► StockReserved ─► reserve line 2 … ─► StockReserved
//!   ─► authorize payment ─► PaymentAuthorized ─► capture ─► PaymentCaptured
//!   ─► confirm order ─► OrderConfirmed ─► commit every reservation (done)
//! ```
//!
//! Lines are reserved one at a time, so at most one reservation is ever in flight and a
//! refusal names the one line that failed. Any failure cancels the order (a refused
//! reservation: the command sender cancels it with `insufficient_stock`; a declined
//! payment: checkout cancels it with `payment_declined`), and `OrderCancelled`, whoever
//! caused it, compensates: every held reservation is released, an authorized payment is
//! voided and a captured one refunded. Confirmed means paid: the payment is captured
//! before the order is confirmed, and a confirmed order cannot be cancelled.

use std::collections::BTreeSet;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use strata_core::RecordedEvent;
use strata_domain::{Aggregate, Upcasters};

use crate::domain::{
    CancelReason, Inventory, InventoryEvent, Money, Order, OrderEvent, OrderLine, Payment,
    PaymentEvent,
};

/// How long a cancelled checkout waits for a reservation that was asked for but neither
/// recorded nor refused, before releasing it blindly and finishing.
pub const RESERVATION_SETTLE: Duration = Duration::from_secs(30);

/// An event checkout reacts to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckoutEvent {
    /// An order was placed: checkout starts.
    OrderPlaced {
        /// The order.
        order_id: String,
        /// Who pays.
        customer: String,
        /// What to reserve.
        lines: Vec<OrderLine>,
        /// What to charge.
        total: Money,
    },
    /// A line's stock was reserved for the order.
    StockReserved {
        /// The order.
        order_id: String,
        /// The line's sku.
        sku: String,
    },
    /// The provider holds the payment.
    PaymentAuthorized {
        /// The order.
        order_id: String,
    },
    /// The provider declined the payment.
    PaymentDeclined {
        /// The order.
        order_id: String,
        /// The provider's reason.
        reason: String,
    },
    /// The payment was taken.
    PaymentCaptured {
        /// The order.
        order_id: String,
    },
    /// The order was confirmed.
    OrderConfirmed {
        /// The order.
        order_id: String,
    },
    /// The order was cancelled.
    OrderCancelled {
        /// The order.
        order_id: String,
        /// Why.
        reason: CancelReason,
    },
}

impl CheckoutEvent {
    /// The stored event types checkout listens to.
    pub const EVENT_TYPES: [&'static str; 7] = [
        "OrderPlaced",
        "StockReserved",
        "PaymentAuthorized",
        "PaymentDeclined",
        "PaymentCaptured",
        "OrderConfirmed",
        "OrderCancelled",
    ];

    /// The order this event belongs to: the checkout instance it drives.
    pub fn order_id(&self) -> &str {
        match self {
            CheckoutEvent::OrderPlaced { order_id, .. }
            | CheckoutEvent::StockReserved { order_id, .. }
            | CheckoutEvent::PaymentAuthorized { order_id }
            | CheckoutEvent::PaymentDeclined { order_id, .. }
            | CheckoutEvent::PaymentCaptured { order_id }
            | CheckoutEvent::OrderConfirmed { order_id }
            | CheckoutEvent::OrderCancelled { order_id, .. } => order_id,
        }
    }

    /// Decodes a stored event checkout listens to; `None` for any other (or one that does
    /// not decode).
    pub fn decode(event: &RecordedEvent) -> Option<CheckoutEvent> {
        let upcasters = Upcasters::new();
        match event.stream.category() {
            c if c == Order::CATEGORY => match upcasters.decode::<OrderEvent>(event).ok()? {
                OrderEvent::Placed {
                    order_id,
                    customer,
                    lines,
                    total,
                } => Some(CheckoutEvent::OrderPlaced {
                    order_id,
                    customer,
                    lines,
                    total,
                }),
                OrderEvent::Confirmed { order_id, .. } => {
                    Some(CheckoutEvent::OrderConfirmed { order_id })
                }
                OrderEvent::Cancelled { order_id, reason } => {
                    Some(CheckoutEvent::OrderCancelled { order_id, reason })
                }
                _ => None,
            },
            c if c == Inventory::CATEGORY => {
                match upcasters.decode::<InventoryEvent>(event).ok()? {
                    InventoryEvent::Reserved { order_id, sku, .. } => {
                        Some(CheckoutEvent::StockReserved { order_id, sku })
                    }
                    _ => None,
                }
            }
            c if c == Payment::CATEGORY => match upcasters.decode::<PaymentEvent>(event).ok()? {
                PaymentEvent::Authorized { order_id, .. } => {
                    Some(CheckoutEvent::PaymentAuthorized { order_id })
                }
                PaymentEvent::Declined {
                    order_id, reason, ..
                } => Some(CheckoutEvent::PaymentDeclined { order_id, reason }),
                PaymentEvent::Captured { order_id, .. } => {
                    Some(CheckoutEvent::PaymentCaptured { order_id })
                }
                _ => None,
            },
            _ => None,
        }
    }
}

/// A command checkout sends. The command sender turns each into an aggregate command
/// (and asks the payment provider for [`CheckoutCommand::AuthorizePayment`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum CheckoutCommand {
    /// Reserve a line's stock. A refusal cancels the order with `insufficient_stock`.
    ReserveStock {
        /// The order.
        order_id: String,
        /// The line's sku.
        sku: String,
        /// Units.
        quantity: u32,
    },
    /// Release a line's reservation (nothing to release is not a failure).
    ReleaseStock {
        /// The order.
        order_id: String,
        /// The line's sku.
        sku: String,
    },
    /// Commit a line's reservation: the units are sold.
    CommitStock {
        /// The order.
        order_id: String,
        /// The line's sku.
        sku: String,
    },
    /// Ask the provider to authorize the payment and record its answer.
    AuthorizePayment {
        /// The order.
        order_id: String,
        /// Who pays.
        customer: String,
        /// How much.
        amount: Money,
    },
    /// Take the authorized payment.
    CapturePayment {
        /// The order.
        order_id: String,
    },
    /// Let an authorized payment go.
    VoidPayment {
        /// The order.
        order_id: String,
    },
    /// Give a captured payment back.
    RefundPayment {
        /// The order.
        order_id: String,
    },
    /// Confirm the order: it is paid for and its stock is held.
    ConfirmOrder {
        /// The order.
        order_id: String,
    },
    /// Cancel the order.
    CancelOrder {
        /// The order.
        order_id: String,
        /// Why.
        reason: CancelReason,
    },
}

/// A durable reminder checkout sets for itself, stored by the runner under its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutTimeout {
    /// A cancelled checkout still waits to hear whether its pending reservation was made.
    ReservationUnsettled,
}

impl CheckoutTimeout {
    /// The name the runner stores it under.
    pub const fn name(self) -> &'static str {
        match self {
            CheckoutTimeout::ReservationUnsettled => "reservation_unsettled",
        }
    }

    /// The timeout stored under `name`, if checkout knows it.
    pub fn from_name(name: &str) -> Option<Self> {
        [CheckoutTimeout::ReservationUnsettled]
            .into_iter()
            .find(|t| t.name() == name)
    }
}

/// Where a checkout is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckoutPhase {
    /// No order placed seen (a new instance, or one whose events came without a start).
    #[default]
    Idle,
    /// Reserving the lines, one at a time.
    Reserving,
    /// Waiting for the provider's answer.
    Authorizing,
    /// Waiting for the payment to be captured.
    Capturing,
    /// Waiting for the order to be confirmed.
    Confirming,
    /// The order was cancelled; undoing what was done.
    Compensating,
}

/// Where the payment stands, as checkout knows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentProgress {
    /// Not asked for.
    #[default]
    None,
    /// Authorization asked, no answer yet.
    Requested,
    /// Held.
    Authorized,
    /// Capture asked, not yet recorded.
    CaptureRequested,
    /// Taken.
    Captured,
    /// Refused by the provider.
    Declined,
    /// Given back or let go (compensation sent).
    Settled,
}

/// The state of one checkout (one order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkout {
    /// The order.
    pub order_id: String,
    /// Who pays.
    pub customer: String,
    /// The order's lines.
    pub lines: Vec<OrderLine>,
    /// The order's total.
    pub total: Money,
    /// Where the checkout is.
    pub phase: CheckoutPhase,
    /// Lines whose reservation is held (not yet released or committed).
    pub reserved: BTreeSet<String>,
    /// The line whose reservation was asked for and not yet recorded.
    pub pending_reservation: Option<String>,
    /// Where the payment stands.
    pub payment: PaymentProgress,
}

/// What a checkout does in reaction to one event or timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckoutStep {
    /// The next state.
    pub state: Checkout,
    /// Commands to send, in order.
    pub commands: Vec<CheckoutCommand>,
    /// Reminders to set: fire after this long.
    pub timeouts: Vec<(Duration, CheckoutTimeout)>,
    /// Whether the checkout is over (its state can be forgotten).
    pub done: bool,
}

impl Checkout {
    fn step(self, commands: Vec<CheckoutCommand>) -> CheckoutStep {
        CheckoutStep {
            state: self,
            commands,
            timeouts: Vec::new(),
            done: false,
        }
    }

    fn finished(self, commands: Vec<CheckoutCommand>) -> CheckoutStep {
        CheckoutStep {
            done: true,
            ..self.step(commands)
        }
    }

    /// A compensating checkout is over once nothing it asked for can still arrive.
    fn after_compensation(self, commands: Vec<CheckoutCommand>) -> CheckoutStep {
        let settled = self.pending_reservation.is_none()
            && !matches!(
                self.payment,
                PaymentProgress::Requested | PaymentProgress::CaptureRequested
            );
        if settled {
            self.finished(commands)
        } else {
            self.step(commands)
        }
    }

    /// The next line to reserve, if any is left.
    fn next_line(&self) -> Option<&OrderLine> {
        self.lines.iter().find(|l| !self.reserved.contains(&l.sku))
    }

    fn reserve_next_or_authorize(mut self) -> CheckoutStep {
        let command = match self.next_line() {
            Some(line) => {
                let command = CheckoutCommand::ReserveStock {
                    order_id: self.order_id.clone(),
                    sku: line.sku.clone(),
                    quantity: line.quantity,
                };
                self.pending_reservation = Some(line.sku.clone());
                self.phase = CheckoutPhase::Reserving;
                command
            }
            None => {
                self.phase = CheckoutPhase::Authorizing;
                self.payment = PaymentProgress::Requested;
                CheckoutCommand::AuthorizePayment {
                    order_id: self.order_id.clone(),
                    customer: self.customer.clone(),
                    amount: self.total,
                }
            }
        };
        self.step(vec![command])
    }

    /// Reacts to one event of this checkout's order.
    pub fn react(mut self, event: &CheckoutEvent) -> CheckoutStep {
        use CheckoutPhase as P;
        let order_id = event.order_id().to_owned();
        if self.phase == P::Idle {
            return Self::react_idle(self, event);
        }
        let compensating = self.phase == P::Compensating;
        match event {
            // A repeat of the start: already under way.
            CheckoutEvent::OrderPlaced { .. } => self.step(Vec::new()),
            CheckoutEvent::StockReserved { sku, .. } => {
                if self.pending_reservation.as_ref() == Some(sku) {
                    self.pending_reservation = None;
                }
                if compensating {
                    // Reserved after the order was cancelled: give it straight back.
                    let release = CheckoutCommand::ReleaseStock {
                        order_id,
                        sku: sku.clone(),
                    };
                    return self.after_compensation(vec![release]);
                }
                if self.phase != P::Reserving || !self.reserved.insert(sku.clone()) {
                    return self.step(Vec::new());
                }
                self.reserve_next_or_authorize()
            }
            CheckoutEvent::PaymentAuthorized { .. } => {
                if compensating {
                    self.payment = PaymentProgress::Settled;
                    return self
                        .after_compensation(vec![CheckoutCommand::VoidPayment { order_id }]);
                }
                if self.phase != P::Authorizing {
                    return self.step(Vec::new());
                }
                self.phase = P::Capturing;
                self.payment = PaymentProgress::CaptureRequested;
                self.step(vec![CheckoutCommand::CapturePayment { order_id }])
            }
            CheckoutEvent::PaymentDeclined { reason, .. } => {
                self.payment = PaymentProgress::Declined;
                if compensating {
                    return self.after_compensation(Vec::new());
                }
                self.step(vec![CheckoutCommand::CancelOrder {
                    order_id,
                    reason: CancelReason::PaymentDeclined {
                        reason: reason.clone(),
                    },
                }])
            }
            CheckoutEvent::PaymentCaptured { .. } => {
                if compensating {
                    self.payment = PaymentProgress::Settled;
                    return self
                        .after_compensation(vec![CheckoutCommand::RefundPayment { order_id }]);
                }
                if self.phase != P::Capturing {
                    return self.step(Vec::new());
                }
                self.phase = P::Confirming;
                self.payment = PaymentProgress::Captured;
                self.step(vec![CheckoutCommand::ConfirmOrder { order_id }])
            }
            CheckoutEvent::OrderConfirmed { .. } => {
                let commits = self
                    .lines
                    .iter()
                    .map(|l| CheckoutCommand::CommitStock {
                        order_id: order_id.clone(),
                        sku: l.sku.clone(),
                    })
                    .collect();
                self.reserved.clear();
                self.finished(commits)
            }
            CheckoutEvent::OrderCancelled { reason, .. } => {
                if compensating {
                    return self.step(Vec::new());
                }
                self.phase = P::Compensating;
                if let CancelReason::InsufficientStock { sku } = reason
                    && self.pending_reservation.as_ref() == Some(sku)
                {
                    // The one reservation in flight is the one that was refused.
                    self.pending_reservation = None;
                }
                let mut commands: Vec<CheckoutCommand> = std::mem::take(&mut self.reserved)
                    .into_iter()
                    .map(|sku| CheckoutCommand::ReleaseStock {
                        order_id: order_id.clone(),
                        sku,
                    })
                    .collect();
                match self.payment {
                    PaymentProgress::Authorized => {
                        self.payment = PaymentProgress::Settled;
                        commands.push(CheckoutCommand::VoidPayment { order_id });
                    }
                    PaymentProgress::Captured => {
                        self.payment = PaymentProgress::Settled;
                        commands.push(CheckoutCommand::RefundPayment { order_id });
                    }
                    _ => {}
                }
                let timeout = self
                    .pending_reservation
                    .is_some()
                    .then_some((RESERVATION_SETTLE, CheckoutTimeout::ReservationUnsettled));
                let mut step = self.after_compensation(commands);
                step.timeouts.extend(timeout);
                step
            }
        }
    }

    /// Events for an order whose checkout never started here (or is long over): undo what
    /// they hold, and finish.
    fn react_idle(mut self, event: &CheckoutEvent) -> CheckoutStep {
        let order_id = event.order_id().to_owned();
        match event {
            CheckoutEvent::OrderPlaced {
                customer,
                lines,
                total,
                ..
            } => {
                self.order_id = order_id;
                self.customer = customer.clone();
                self.lines = lines.clone();
                self.total = *total;
                self.reserve_next_or_authorize()
            }
            // A reservation nobody is waiting for is released, an authorization voided.
            CheckoutEvent::StockReserved { sku, .. } => {
                self.finished(vec![CheckoutCommand::ReleaseStock {
                    order_id,
                    sku: sku.clone(),
                }])
            }
            CheckoutEvent::PaymentAuthorized { .. } => {
                self.finished(vec![CheckoutCommand::VoidPayment { order_id }])
            }
            // A draft cancelled before it was placed, or facts of a finished checkout.
            _ => self.finished(Vec::new()),
        }
    }

    /// Reacts to a reminder this checkout set.
    pub fn on_timeout(mut self, timeout: CheckoutTimeout) -> CheckoutStep {
        match timeout {
            CheckoutTimeout::ReservationUnsettled => {
                if self.phase != CheckoutPhase::Compensating {
                    return self.step(Vec::new());
                }
                let Some(sku) = self.pending_reservation.take() else {
                    return self.step(Vec::new());
                };
                let release = CheckoutCommand::ReleaseStock {
                    order_id: self.order_id.clone(),
                    sku,
                };
                self.after_compensation(vec![release])
            }
        }
    }
}

#[cfg(test)]
mod tests;
