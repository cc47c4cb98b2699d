//! The payment of one order: authorized (or declined) by the provider, then captured, and
//! perhaps refunded or voided. Pure: the provider's answer arrives inside the command, so
//! `decide` never calls out.

use serde::{Deserialize, Serialize};
use strata_domain::{Aggregate, DomainError, TaggedEvent};

use super::Money;

/// What the payment provider answered to an authorization request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum ProviderAnswer {
    /// The amount is held on the customer's means of payment.
    Approved {
        /// The provider's reference for the hold.
        authorization: String,
    },
    /// The provider refused.
    Declined {
        /// The provider's reason.
        reason: String,
    },
}

/// Where a payment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentStatus {
    /// Held, not yet taken.
    Authorized,
    /// Refused by the provider.
    Declined,
    /// Taken.
    Captured,
    /// Taken, then given back.
    Refunded,
    /// Held, then let go without being taken.
    Voided,
}

/// The payment of one order, stream `payment-{order_id}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payment {
    /// The order paid for, once authorization was asked.
    pub order_id: Option<String>,
    /// Who pays.
    pub customer: String,
    /// How much.
    pub amount: Money,
    /// The status (`None`: nothing asked yet).
    pub status: Option<PaymentStatus>,
}

/// What can be asked of a payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentCommand {
    /// Records the provider's answer to an authorization request.
    Authorize {
        /// The order (also the aggregate id).
        order_id: String,
        /// Who pays.
        customer: String,
        /// How much, above zero.
        amount: Money,
        /// What the provider answered.
        answer: ProviderAnswer,
    },
    /// Takes the authorized amount.
    Capture,
    /// Gives a captured amount back.
    Refund,
    /// Lets an authorization go without taking it.
    Void,
}

/// What happened to a payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
pub enum PaymentEvent {
    /// The provider holds the amount.
    #[serde(rename = "PaymentAuthorized")]
    Authorized {
        /// The order.
        order_id: String,
        /// Who pays.
        customer: String,
        /// How much.
        amount: Money,
        /// The provider's reference.
        authorization: String,
    },
    /// The provider refused.
    #[serde(rename = "PaymentDeclined")]
    Declined {
        /// The order.
        order_id: String,
        /// Who would have paid.
        customer: String,
        /// How much was asked.
        amount: Money,
        /// The provider's reason.
        reason: String,
    },
    /// The amount was taken.
    #[serde(rename = "PaymentCaptured")]
    Captured {
        /// The order.
        order_id: String,
        /// How much.
        amount: Money,
    },
    /// The amount was given back.
    #[serde(rename = "PaymentRefunded")]
    Refunded {
        /// The order.
        order_id: String,
        /// How much.
        amount: Money,
    },
    /// The authorization was let go.
    #[serde(rename = "PaymentVoided")]
    Voided {
        /// The order.
        order_id: String,
        /// How much had been held.
        amount: Money,
    },
}

impl TaggedEvent for PaymentEvent {}

/// Why a payment command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PaymentError {
    /// Authorization was already asked for this order.
    #[error("the payment of order {0} was already asked for")]
    AlreadyExists(String),
    /// Nothing was asked yet.
    #[error("no such payment")]
    NotFound,
    /// The order id is empty.
    #[error("an order id must not be empty")]
    InvalidOrderId,
    /// An amount of zero or past the largest amount.
    #[error("an amount must be above zero and at most {}", Money::MAX.0)]
    InvalidAmount,
    /// The provider declined this payment; there is nothing to take or give back.
    #[error("the payment was declined")]
    Declined,
    /// Only an authorized payment is captured.
    #[error("the payment is not authorized")]
    NotAuthorized,
    /// Only a captured payment is refunded.
    #[error("the payment is not captured")]
    NotCaptured,
    /// A captured payment is refunded, not voided.
    #[error("the payment is captured; refund it instead")]
    Captured,
}

impl DomainError for PaymentError {
    fn code(&self) -> &'static str {
        match self {
            PaymentError::AlreadyExists(_) => "payment_exists",
            PaymentError::NotFound => "payment_not_found",
            PaymentError::InvalidOrderId => "invalid_order_id",
            PaymentError::InvalidAmount => "invalid_amount",
            PaymentError::Declined => "payment_declined",
            PaymentError::NotAuthorized => "payment_not_authorized",
            PaymentError::NotCaptured => "payment_not_captured",
            PaymentError::Captured => "payment_captured",
        }
    }
}

impl Aggregate for Payment {
    const CATEGORY: &'static str = "payment";

    type Command = PaymentCommand;
    type Event = PaymentEvent;
    type Error = PaymentError;

    fn decide(&self, command: &PaymentCommand) -> Result<Vec<PaymentEvent>, PaymentError> {
        use PaymentStatus as S;
        let order_id = || self.order_id.clone().unwrap_or_default();
        let amount = self.amount;
        match command {
            PaymentCommand::Authorize {
                order_id,
                customer,
                amount,
                answer,
            } => {
                if self.status.is_some() {
                    return Err(PaymentError::AlreadyExists(order_id.clone()));
                }
                if order_id.is_empty() {
                    return Err(PaymentError::InvalidOrderId);
                }
                if *amount == Money::ZERO || !amount.is_valid() {
                    return Err(PaymentError::InvalidAmount);
                }
                let (order_id, customer, amount) = (order_id.clone(), customer.clone(), *amount);
                Ok(vec![match answer {
                    ProviderAnswer::Approved { authorization } => PaymentEvent::Authorized {
                        order_id,
                        customer,
                        amount,
                        authorization: authorization.clone(),
                    },
                    ProviderAnswer::Declined { reason } => PaymentEvent::Declined {
                        order_id,
                        customer,
                        amount,
                        reason: reason.clone(),
                    },
                }])
            }
            PaymentCommand::Capture => match self.status.ok_or(PaymentError::NotFound)? {
                S::Authorized => Ok(vec![PaymentEvent::Captured {
                    order_id: order_id(),
                    amount,
                }]),
                S::Captured => Ok(Vec::new()),
                S::Declined => Err(PaymentError::Declined),
                S::Refunded | S::Voided => Err(PaymentError::NotAuthorized),
            },
            PaymentCommand::Refund => match self.status.ok_or(PaymentError::NotFound)? {
                S::Captured => Ok(vec![PaymentEvent::Refunded {
                    order_id: order_id(),
                    amount,
                }]),
                S::Refunded => Ok(Vec::new()),
                S::Declined => Err(PaymentError::Declined),
                S::Authorized | S::Voided => Err(PaymentError::NotCaptured),
            },
            PaymentCommand::Void => match self.status.ok_or(PaymentError::NotFound)? {
                S::Authorized => Ok(vec![PaymentEvent::Voided {
                    order_id: order_id(),
                    amount,
                }]),
                S::Voided => Ok(Vec::new()),
                S::Declined => Err(PaymentError::Declined),
                S::Captured | S::Refunded => Err(PaymentError::Captured),
            },
        }
    }

    fn evolve(mut self, event: &PaymentEvent) -> Self {
        match event {
            PaymentEvent::Authorized {
                order_id,
                customer,
                amount,
                ..
            }
            | PaymentEvent::Declined {
                order_id,
                customer,
                amount,
                ..
            } => {
                self.order_id = Some(order_id.clone());
                self.customer = customer.clone();
                self.amount = *amount;
                self.status = Some(if matches!(event, PaymentEvent::Authorized { .. }) {
                    PaymentStatus::Authorized
                } else {
                    PaymentStatus::Declined
                });
            }
            PaymentEvent::Captured { .. } => self.status = Some(PaymentStatus::Captured),
            PaymentEvent::Refunded { .. } => self.status = Some(PaymentStatus::Refunded),
            PaymentEvent::Voided { .. } => self.status = Some(PaymentStatus::Voided),
        }
        self
    }
}
