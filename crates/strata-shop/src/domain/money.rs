//! Money in integer minor units (cents), with arithmetic that refuses to overflow. No
//! floating point anywhere: a price, a line total and an order total are exact.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An amount in minor units of the shop's one currency (e.g. cents).
///
/// Never above [`Money::MAX`] (`i64::MAX`), so every amount fits a SQL integer; the
/// checked operations answer `None` instead of going past it.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(pub u64);

impl Money {
    /// Nothing.
    pub const ZERO: Money = Money(0);
    /// The largest amount the shop handles.
    pub const MAX: Money = Money(i64::MAX as u64);

    /// The amount in minor units.
    pub const fn minor_units(self) -> u64 {
        self.0
    }

    /// Whether this is a valid amount (at most [`Money::MAX`]).
    pub const fn is_valid(self) -> bool {
        self.0 <= Self::MAX.0
    }

    /// `self + other`, or `None` past [`Money::MAX`].
    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0
            .checked_add(other.0)
            .map(Money)
            .filter(|m| m.is_valid())
    }

    /// `self - other`, or `None` below zero.
    pub fn checked_sub(self, other: Money) -> Option<Money> {
        self.0.checked_sub(other.0).map(Money)
    }

    /// `self × quantity`, or `None` past [`Money::MAX`].
    pub fn checked_mul(self, quantity: u32) -> Option<Money> {
        self.0
            .checked_mul(u64::from(quantity))
            .map(Money)
            .filter(|m| m.is_valid())
    }

    /// The sum of `amounts`, or `None` past [`Money::MAX`].
    pub fn checked_sum(amounts: impl IntoIterator<Item = Money>) -> Option<Money> {
        amounts
            .into_iter()
            .try_fold(Money::ZERO, |sum, m| sum.checked_add(m))
    }
}

impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:02}", self.0 / 100, self.0 % 100)
    }
}
