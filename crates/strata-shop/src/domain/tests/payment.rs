use strata_domain::testing::given;

use crate::domain::{
    Money, Payment, PaymentCommand as C, PaymentEvent as E, PaymentStatus, ProviderAnswer,
};

fn authorize(amount: u64, answer: ProviderAnswer) -> C {
    C::Authorize {
        order_id: "o1".into(),
        customer: "ada".into(),
        amount: Money(amount),
        answer,
    }
}

fn approved() -> ProviderAnswer {
    ProviderAnswer::Approved {
        authorization: "a1".into(),
    }
}

fn authorized() -> E {
    E::Authorized {
        order_id: "o1".into(),
        customer: "ada".into(),
        amount: Money(1000),
        authorization: "a1".into(),
    }
}

fn declined() -> E {
    E::Declined {
        order_id: "o1".into(),
        customer: "ada".into(),
        amount: Money(1000),
        reason: "no".into(),
    }
}

fn captured() -> E {
    E::Captured {
        order_id: "o1".into(),
        amount: Money(1000),
    }
}

fn refunded() -> E {
    E::Refunded {
        order_id: "o1".into(),
        amount: Money(1000),
    }
}

fn voided() -> E {
    E::Voided {
        order_id: "o1".into(),
        amount: Money(1000),
    }
}

#[test]
fn an_approved_authorization_is_recorded() {
    let state = given::<Payment>(&[])
        .when(&authorize(1000, approved()))
        .then(&[authorized()]);
    assert_eq!(state.status, Some(PaymentStatus::Authorized));
}

#[test]
fn a_declined_authorization_is_a_fact_too() {
    let state = given::<Payment>(&[])
        .when(&authorize(
            1000,
            ProviderAnswer::Declined {
                reason: "no".into(),
            },
        ))
        .then(&[declined()]);
    assert_eq!(state.status, Some(PaymentStatus::Declined));
}

#[test]
fn authorization_is_asked_once() {
    for past in [authorized(), declined()] {
        given::<Payment>(&[past])
            .when(&authorize(1000, approved()))
            .then_refused("payment_exists");
    }
}

#[test]
fn authorization_needs_an_order_and_an_amount() {
    given::<Payment>(&[])
        .when(&C::Authorize {
            order_id: String::new(),
            customer: "ada".into(),
            amount: Money(1),
            answer: approved(),
        })
        .then_refused("invalid_order_id");
    given::<Payment>(&[])
        .when(&authorize(0, approved()))
        .then_refused("invalid_amount");
    given::<Payment>(&[])
        .when(&authorize(Money::MAX.0 + 1, approved()))
        .then_refused("invalid_amount");
}

#[test]
fn nothing_happens_to_a_payment_never_asked() {
    for command in [C::Capture, C::Refund, C::Void] {
        given::<Payment>(&[])
            .when(&command)
            .then_refused("payment_not_found");
    }
}

#[test]
fn an_authorized_payment_is_captured_once() {
    given::<Payment>(&[authorized()])
        .when(&C::Capture)
        .then(&[captured()]);
    given::<Payment>(&[authorized(), captured()])
        .when(&C::Capture)
        .then(&[]);
}

#[test]
fn a_declined_payment_is_neither_captured_nor_refunded_nor_voided() {
    for command in [C::Capture, C::Refund, C::Void] {
        given::<Payment>(&[declined()])
            .when(&command)
            .then_refused("payment_declined");
    }
}

#[test]
fn a_voided_or_refunded_payment_is_not_captured() {
    given::<Payment>(&[authorized(), voided()])
        .when(&C::Capture)
        .then_refused("payment_not_authorized");
    given::<Payment>(&[authorized(), captured(), refunded()])
        .when(&C::Capture)
        .then_refused("payment_not_authorized");
}

#[test]
fn only_a_captured_payment_is_refunded() {
    given::<Payment>(&[authorized(), captured()])
        .when(&C::Refund)
        .then(&[refunded()]);
    given::<Payment>(&[authorized(), captured(), refunded()])
        .when(&C::Refund)
        .then(&[]);
    given::<Payment>(&[authorized()])
        .when(&C::Refund)
        .then_refused("payment_not_captured");
    given::<Payment>(&[authorized(), voided()])
        .when(&C::Refund)
        .then_refused("payment_not_captured");
}

#[test]
fn only_an_uncaptured_authorization_is_voided() {
    given::<Payment>(&[authorized()])
        .when(&C::Void)
        .then(&[voided()]);
    given::<Payment>(&[authorized(), voided()])
        .when(&C::Void)
        .then(&[]);
    given::<Payment>(&[authorized(), captured()])
        .when(&C::Void)
        .then_refused("payment_captured");
    given::<Payment>(&[authorized(), captured(), refunded()])
        .when(&C::Void)
        .then_refused("payment_captured");
}
