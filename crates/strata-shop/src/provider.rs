//! The payment provider seam and a deterministic fake. The provider is asked by the code
//! that sends the `Authorize` command (never by `decide`); its answer travels inside the
//! command, so the decision stays pure and a replay records the same answer.

use crate::domain::{Money, ProviderAnswer};

/// Something that authorizes payments.
pub trait PaymentProvider: Send + Sync + 'static {
    /// Asks for `amount` to be held for `order_id`, paid by `customer`.
    fn authorize(&self, order_id: &str, customer: &str, amount: Money) -> ProviderAnswer;
}

/// A provider that answers by rule, the same way every time: it declines amounts above
/// its limit and customers whose id starts with `declined`, and approves the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FakePaymentProvider {
    /// The largest amount approved.
    pub limit: Money,
}

impl FakePaymentProvider {
    /// The default limit: 100000 minor units.
    pub const DEFAULT_LIMIT: Money = Money(100_000);
    /// Customers whose id starts with this are declined.
    pub const DECLINED_PREFIX: &'static str = "declined";
}

impl Default for FakePaymentProvider {
    fn default() -> Self {
        Self {
            limit: Self::DEFAULT_LIMIT,
        }
    }
}

impl PaymentProvider for FakePaymentProvider {
    fn authorize(&self, order_id: &str, customer: &str, amount: Money) -> ProviderAnswer {
        if amount > self.limit {
            ProviderAnswer::Declined {
                reason: format!("amount {amount} is over the limit of {}", self.limit),
            }
        } else if customer.starts_with(Self::DECLINED_PREFIX) {
            ProviderAnswer::Declined {
                reason: format!("customer {customer} is not accepted"),
            }
        } else {
            ProviderAnswer::Approved {
                authorization: format!("fake-auth-{order_id}"),
            }
        }
    }
}
