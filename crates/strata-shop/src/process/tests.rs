//! The process-manager adapter: what it listens to, how it correlates, and how the state
//! machine's steps become reactions with named, durable deadlines.

use strata_projection::ProcessManager;

use super::*;
use crate::domain::{
    CancelReason, InventoryEvent, Money, OrderEvent, OrderLine, PaymentEvent, ProductEvent,
};
use crate::test_support::recorded;

const AT: &str = "2026-03-01T12:00:00Z";

fn placed() -> RecordedEvent {
    recorded(
        "order-o1",
        1,
        AT,
        &OrderEvent::Placed {
            order_id: "o1".into(),
            customer: "ada".into(),
            lines: vec![
                OrderLine {
                    sku: "mug".into(),
                    quantity: 1,
                    unit_price: Money(5),
                },
                OrderLine {
                    sku: "cup".into(),
                    quantity: 1,
                    unit_price: Money(5),
                },
            ],
            total: Money(10),
        },
    )
}

#[test]
fn checkout_listens_to_its_events_only() {
    let filter = CheckoutProcess.filter();
    for (stream, event_type) in [
        ("order-o1", "OrderPlaced"),
        ("order-o1", "OrderConfirmed"),
        ("order-o1", "OrderCancelled"),
        ("inventory-mug", "StockReserved"),
        ("payment-o1", "PaymentAuthorized"),
        ("payment-o1", "PaymentDeclined"),
        ("payment-o1", "PaymentCaptured"),
    ] {
        assert!(filter.matches_raw(stream, event_type), "{event_type}");
    }
    for (stream, event_type) in [
        ("order-o1", "OrderLineAdded"),
        ("inventory-mug", "StockReceived"),
        ("inventory-mug", "ReservationReleased"),
        ("payment-o1", "PaymentRefunded"),
        ("product-mug", "ProductCreated"),
    ] {
        assert!(!filter.matches_raw(stream, event_type), "{event_type}");
    }
}

#[test]
fn every_event_correlates_to_its_order() {
    let reserved = recorded(
        "inventory-mug",
        2,
        AT,
        &InventoryEvent::Reserved {
            sku: "mug".into(),
            order_id: "o1".into(),
            quantity: 1,
        },
    );
    let declined = recorded(
        "payment-o1",
        3,
        AT,
        &PaymentEvent::Declined {
            order_id: "o1".into(),
            customer: "ada".into(),
            amount: Money(10),
            reason: "no".into(),
        },
    );
    for event in [placed(), reserved, declined] {
        assert_eq!(CheckoutProcess.correlate(&event).as_deref(), Some("o1"));
    }
    let other = recorded(
        "product-mug",
        4,
        AT,
        &ProductEvent::Created {
            sku: "mug".into(),
            name: "Mug".into(),
            description: String::new(),
            price: Money(5),
        },
    );
    assert_eq!(CheckoutProcess.correlate(&other), None);
}

#[test]
fn a_pending_reservation_at_cancellation_sets_a_deadline_from_the_event_time() {
    let state = CheckoutProcess.react(Checkout::default(), &placed()).state;
    assert_eq!(state.pending_reservation.as_deref(), Some("mug"));
    let cancelled = recorded(
        "order-o1",
        2,
        AT,
        &OrderEvent::Cancelled {
            order_id: "o1".into(),
            reason: CancelReason::Requested,
        },
    );
    let reaction = CheckoutProcess.react(state, &cancelled);
    assert!(!reaction.done);
    let expected = Timestamp::parse_rfc3339("2026-03-01T12:00:30Z").unwrap();
    assert_eq!(
        reaction.timeouts,
        vec![("reservation_unsettled".to_owned(), expected)]
    );
    let fired = CheckoutProcess.on_timeout(reaction.state, "reservation_unsettled");
    assert_eq!(
        fired.commands,
        vec![CheckoutCommand::ReleaseStock {
            order_id: "o1".into(),
            sku: "mug".into()
        }]
    );
    assert!(fired.done);
}

#[test]
fn unknown_timeouts_and_events_change_nothing() {
    let state = CheckoutProcess.react(Checkout::default(), &placed()).state;
    let reaction = CheckoutProcess.on_timeout(state.clone(), "nope");
    assert_eq!((reaction.state, reaction.commands.len()), (state, 0));
}

#[test]
fn commands_survive_the_outbox_as_json() {
    let command = CheckoutCommand::CancelOrder {
        order_id: "o1".into(),
        reason: CancelReason::InsufficientStock { sku: "mug".into() },
    };
    let json = serde_json::to_string(&command).unwrap();
    assert_eq!(
        serde_json::from_str::<CheckoutCommand>(&json).unwrap(),
        command
    );
    let state = CheckoutProcess.react(Checkout::default(), &placed()).state;
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(serde_json::from_str::<Checkout>(&json).unwrap(), state);
}
