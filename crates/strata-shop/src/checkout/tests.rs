//! The checkout state machine, one event at a time.

use super::*;
use crate::domain::{CancelReason, Money, OrderLine};

fn line(sku: &str, quantity: u32) -> OrderLine {
    OrderLine {
        sku: sku.into(),
        quantity,
        unit_price: Money(100),
    }
}

fn placed() -> CheckoutEvent {
    CheckoutEvent::OrderPlaced {
        order_id: "o1".into(),
        customer: "ada".into(),
        lines: vec![line("mug", 2), line("cup", 1)],
        total: Money(300),
    }
}

fn reserved(sku: &str) -> CheckoutEvent {
    CheckoutEvent::StockReserved {
        order_id: "o1".into(),
        sku: sku.into(),
    }
}

fn reserve(sku: &str, quantity: u32) -> CheckoutCommand {
    CheckoutCommand::ReserveStock {
        order_id: "o1".into(),
        sku: sku.into(),
        quantity,
    }
}

fn release(sku: &str) -> CheckoutCommand {
    CheckoutCommand::ReleaseStock {
        order_id: "o1".into(),
        sku: sku.into(),
    }
}

fn authorized() -> CheckoutEvent {
    CheckoutEvent::PaymentAuthorized {
        order_id: "o1".into(),
    }
}

fn captured() -> CheckoutEvent {
    CheckoutEvent::PaymentCaptured {
        order_id: "o1".into(),
    }
}

fn cancelled(reason: CancelReason) -> CheckoutEvent {
    CheckoutEvent::OrderCancelled {
        order_id: "o1".into(),
        reason,
    }
}

fn o1() -> String {
    "o1".into()
}

/// Feeds events one after the other, asserting none of them finished the checkout.
fn run(events: &[CheckoutEvent]) -> Checkout {
    events.iter().fold(Checkout::default(), |state, event| {
        let step = state.react(event);
        assert!(!step.done, "finished early on {event:?}");
        step.state
    })
}

#[test]
fn placing_reserves_the_first_line() {
    let step = Checkout::default().react(&placed());
    assert_eq!(step.commands, vec![reserve("mug", 2)]);
    assert_eq!(step.state.phase, CheckoutPhase::Reserving);
    assert_eq!(step.state.pending_reservation.as_deref(), Some("mug"));
    assert!(!step.done);
}

#[test]
fn lines_are_reserved_one_after_the_other_then_payment_is_authorized() {
    let step = run(&[placed()]).react(&reserved("mug"));
    assert_eq!(step.commands, vec![reserve("cup", 1)]);
    let step = step.state.react(&reserved("cup"));
    assert_eq!(
        step.commands,
        vec![CheckoutCommand::AuthorizePayment {
            order_id: o1(),
            customer: "ada".into(),
            amount: Money(300),
        }]
    );
    assert_eq!(step.state.phase, CheckoutPhase::Authorizing);
}

#[test]
fn an_authorized_payment_is_captured_then_the_order_confirmed_then_stock_committed() {
    let state = run(&[placed(), reserved("mug"), reserved("cup")]);
    let step = state.react(&authorized());
    assert_eq!(
        step.commands,
        vec![CheckoutCommand::CapturePayment { order_id: o1() }]
    );
    let step = step.state.react(&captured());
    assert_eq!(
        step.commands,
        vec![CheckoutCommand::ConfirmOrder { order_id: o1() }]
    );
    let step = step
        .state
        .react(&CheckoutEvent::OrderConfirmed { order_id: o1() });
    assert_eq!(
        step.commands,
        vec![
            CheckoutCommand::CommitStock {
                order_id: o1(),
                sku: "mug".into()
            },
            CheckoutCommand::CommitStock {
                order_id: o1(),
                sku: "cup".into()
            },
        ]
    );
    assert!(step.done);
}

#[test]
fn a_refused_reservation_releases_what_was_held() {
    let state = run(&[placed(), reserved("mug")]);
    assert_eq!(state.pending_reservation.as_deref(), Some("cup"));
    let step = state.react(&cancelled(CancelReason::InsufficientStock {
        sku: "cup".into(),
    }));
    assert_eq!(step.commands, vec![release("mug")]);
    assert!(step.timeouts.is_empty());
    assert!(step.done, "nothing can still arrive");
}

#[test]
fn a_refused_first_line_has_nothing_to_release() {
    let step = run(&[placed()]).react(&cancelled(CancelReason::InsufficientStock {
        sku: "mug".into(),
    }));
    assert!(step.commands.is_empty());
    assert!(step.done);
}

#[test]
fn a_declined_payment_cancels_the_order_which_releases_every_line() {
    let state = run(&[placed(), reserved("mug"), reserved("cup")]);
    let step = state.react(&CheckoutEvent::PaymentDeclined {
        order_id: o1(),
        reason: "limit".into(),
    });
    let reason = CancelReason::PaymentDeclined {
        reason: "limit".into(),
    };
    assert_eq!(
        step.commands,
        vec![CheckoutCommand::CancelOrder {
            order_id: o1(),
            reason: reason.clone(),
        }]
    );
    assert!(!step.done);
    let step = step.state.react(&cancelled(reason));
    // Released in sku order; nothing to give back to the customer.
    assert_eq!(step.commands, vec![release("cup"), release("mug")]);
    assert!(step.done);
}

#[test]
fn cancelling_after_authorization_voids_the_payment() {
    let state = run(&[placed(), reserved("mug"), reserved("cup")]);
    let mut state = state.react(&authorized()).state;
    // The capture was asked; pretend the customer cancelled before it was sent.
    state.payment = PaymentProgress::Authorized;
    let step = state.react(&cancelled(CancelReason::Requested));
    assert_eq!(
        step.commands,
        vec![
            release("cup"),
            release("mug"),
            CheckoutCommand::VoidPayment { order_id: o1() }
        ]
    );
    assert!(step.done);
}

#[test]
fn cancelling_during_capture_waits_for_the_capture_then_refunds() {
    let state = run(&[placed(), reserved("mug"), reserved("cup"), authorized()]);
    let step = state.react(&cancelled(CancelReason::Requested));
    assert_eq!(step.commands, vec![release("cup"), release("mug")]);
    assert!(!step.done, "the capture is still on its way");
    let step = step.state.react(&captured());
    assert_eq!(
        step.commands,
        vec![CheckoutCommand::RefundPayment { order_id: o1() }]
    );
    assert!(step.done);
}

#[test]
fn cancelling_after_capture_refunds() {
    let state = run(&[
        placed(),
        reserved("mug"),
        reserved("cup"),
        authorized(),
        captured(),
    ]);
    let step = state.react(&cancelled(CancelReason::Requested));
    assert_eq!(
        step.commands,
        vec![
            release("cup"),
            release("mug"),
            CheckoutCommand::RefundPayment { order_id: o1() }
        ]
    );
    assert!(step.done);
}

#[test]
fn cancelling_while_authorizing_voids_a_late_authorization() {
    let state = run(&[placed(), reserved("mug"), reserved("cup")]);
    let step = state.react(&cancelled(CancelReason::Requested));
    assert!(!step.done, "the provider's answer is still on its way");
    let step = step.state.react(&authorized());
    assert_eq!(
        step.commands,
        vec![CheckoutCommand::VoidPayment { order_id: o1() }]
    );
    assert!(step.done);
}

#[test]
fn cancelling_while_authorizing_finishes_on_a_late_decline() {
    let state = run(&[placed(), reserved("mug"), reserved("cup")]);
    let state = state.react(&cancelled(CancelReason::Requested)).state;
    let step = state.react(&CheckoutEvent::PaymentDeclined {
        order_id: o1(),
        reason: "no".into(),
    });
    assert!(step.commands.is_empty());
    assert!(step.done);
}

#[test]
fn a_reservation_recorded_after_the_cancellation_is_released() {
    let state = run(&[placed(), reserved("mug")]);
    let step = state.react(&cancelled(CancelReason::Requested));
    assert_eq!(step.commands, vec![release("mug")]);
    assert_eq!(
        step.timeouts,
        vec![(RESERVATION_SETTLE, CheckoutTimeout::ReservationUnsettled)]
    );
    assert!(!step.done);
    let step = step.state.react(&reserved("cup"));
    assert_eq!(step.commands, vec![release("cup")]);
    assert!(step.done);
}

#[test]
fn a_reservation_never_heard_of_is_released_blindly_on_timeout() {
    let state = run(&[placed(), reserved("mug")]);
    let state = state.react(&cancelled(CancelReason::Requested)).state;
    let step = state.on_timeout(CheckoutTimeout::ReservationUnsettled);
    assert_eq!(step.commands, vec![release("cup")]);
    assert!(step.done);
}

#[test]
fn a_stale_timeout_does_nothing() {
    let state = run(&[placed(), reserved("mug")]);
    let step = state.on_timeout(CheckoutTimeout::ReservationUnsettled);
    assert!(step.commands.is_empty());
    assert!(!step.done);
}

#[test]
fn repeated_events_send_nothing_twice() {
    let state = run(&[placed(), reserved("mug")]);
    let step = state.clone().react(&reserved("mug"));
    assert!(step.commands.is_empty());
    let step = state.react(&placed());
    assert!(step.commands.is_empty());
    let state = run(&[placed(), reserved("mug"), reserved("cup"), authorized()]);
    assert!(state.react(&authorized()).commands.is_empty());
}

#[test]
fn a_second_cancellation_does_nothing() {
    let state = run(&[placed(), reserved("mug")]);
    let state = state.react(&cancelled(CancelReason::Requested)).state;
    assert!(
        state
            .react(&cancelled(CancelReason::Requested))
            .commands
            .is_empty()
    );
}

#[test]
fn orphans_are_undone() {
    let step = Checkout::default().react(&reserved("mug"));
    assert_eq!(step.commands, vec![release("mug")]);
    assert!(step.done);
    let step = Checkout::default().react(&authorized());
    assert_eq!(
        step.commands,
        vec![CheckoutCommand::VoidPayment { order_id: o1() }]
    );
    assert!(step.done);
}

#[test]
fn a_draft_cancelled_before_placing_has_nothing_to_do() {
    let step = Checkout::default().react(&cancelled(CancelReason::Requested));
    assert!(step.commands.is_empty());
    assert!(step.done);
}

#[test]
fn timeouts_round_trip_through_their_names() {
    let timeout = CheckoutTimeout::ReservationUnsettled;
    assert_eq!(CheckoutTimeout::from_name(timeout.name()), Some(timeout));
    assert_eq!(CheckoutTimeout::from_name("nope"), None);
}
