use strata_domain::testing::given;

use crate::domain::{
    CancelReason, MAX_LINES, MAX_NAME_CHARS, Money, Order, OrderCommand as C, OrderEvent as E,
    OrderLine, OrderStatus,
};

fn created() -> E {
    E::Created {
        order_id: "o1".into(),
        customer: "ada".into(),
    }
}

fn line(sku: &str, quantity: u32, unit_price: u64) -> OrderLine {
    OrderLine {
        sku: sku.into(),
        quantity,
        unit_price: Money(unit_price),
    }
}

fn added(sku: &str, quantity: u32, unit_price: u64) -> E {
    E::LineAdded {
        order_id: "o1".into(),
        line: line(sku, quantity, unit_price),
    }
}

fn add(sku: &str, quantity: u32, unit_price: u64) -> C {
    C::AddLine {
        sku: sku.into(),
        quantity,
        unit_price: Money(unit_price),
    }
}

fn placed() -> E {
    E::Placed {
        order_id: "o1".into(),
        customer: "ada".into(),
        lines: vec![line("mug", 2, 500)],
        total: Money(1000),
    }
}

fn confirmed() -> E {
    E::Confirmed {
        order_id: "o1".into(),
        customer: "ada".into(),
        total: Money(1000),
    }
}

fn cancelled() -> E {
    E::Cancelled {
        order_id: "o1".into(),
        reason: CancelReason::Requested,
    }
}

fn shipped() -> E {
    E::Shipped {
        order_id: "o1".into(),
    }
}

fn cancel() -> C {
    C::Cancel {
        reason: CancelReason::Requested,
    }
}

const DRAFT: &[E] = &[];

fn draft() -> Vec<E> {
    vec![created(), added("mug", 2, 500)]
}

fn with(mut events: Vec<E>, more: &[E]) -> Vec<E> {
    events.extend_from_slice(more);
    events
}

#[test]
fn an_order_is_created_as_a_draft() {
    let state = given::<Order>(DRAFT)
        .when(&C::Create {
            order_id: "o1".into(),
            customer: "ada".into(),
        })
        .then(&[created()]);
    assert_eq!(state.status, Some(OrderStatus::Draft));
}

#[test]
fn an_order_is_created_once() {
    given::<Order>(&[created()])
        .when(&C::Create {
            order_id: "o1".into(),
            customer: "bob".into(),
        })
        .then_refused("order_exists");
}

#[test]
fn an_order_needs_an_id_and_a_customer() {
    given::<Order>(DRAFT)
        .when(&C::Create {
            order_id: String::new(),
            customer: "ada".into(),
        })
        .then_refused("invalid_order_id");
    for customer in [" ".to_owned(), "c".repeat(MAX_NAME_CHARS + 1)] {
        given::<Order>(DRAFT)
            .when(&C::Create {
                order_id: "o1".into(),
                customer,
            })
            .then_refused("invalid_customer");
    }
}

#[test]
fn nothing_but_create_works_on_an_unknown_order() {
    for command in [add("mug", 1, 1), C::Place, C::Confirm, cancel(), C::Ship] {
        given::<Order>(DRAFT)
            .when(&command)
            .then_refused("order_not_found");
    }
}

#[test]
fn lines_add_up_to_the_total() {
    let state = given::<Order>(&draft())
        .when(&add("cup", 3, 250))
        .then(&[added("cup", 3, 250)]);
    assert_eq!(state.total, Money(1750));
    assert_eq!(state.lines.len(), 2);
}

#[test]
fn a_line_needs_a_sku_units_and_a_price() {
    given::<Order>(&[created()])
        .when(&add("", 1, 1))
        .then_refused("invalid_sku");
    given::<Order>(&[created()])
        .when(&add("mug", 0, 1))
        .then_refused("invalid_quantity");
    given::<Order>(&[created()])
        .when(&add("mug", 1, 0))
        .then_refused("invalid_price");
}

#[test]
fn a_sku_has_one_line() {
    given::<Order>(&draft())
        .when(&add("mug", 1, 500))
        .then_refused("line_exists");
}

#[test]
fn an_order_has_a_line_limit() {
    let mut events = vec![created()];
    events.extend((0..MAX_LINES).map(|i| added(&format!("sku{i}"), 1, 1)));
    given::<Order>(&events)
        .when(&add("one-more", 1, 1))
        .then_refused("too_many_lines");
}

#[test]
fn totals_never_overflow() {
    // One line past the largest amount.
    given::<Order>(&[created()])
        .when(&add("gold", 2, Money::MAX.0 / 2 + 1))
        .then_refused("amount_overflow");
    // Each line fits; the sum does not.
    given::<Order>(&[created(), added("gold", 1, Money::MAX.0)])
        .when(&add("silver", 1, 1))
        .then_refused("amount_overflow");
    // Exactly the largest amount is fine.
    given::<Order>(&[created(), added("gold", 1, Money::MAX.0 - 1)])
        .when(&add("silver", 1, 1))
        .then(&[added("silver", 1, 1)]);
}

#[test]
fn a_line_is_removed() {
    let state = given::<Order>(&draft())
        .when(&C::RemoveLine { sku: "mug".into() })
        .then(&[E::LineRemoved {
            order_id: "o1".into(),
            sku: "mug".into(),
        }]);
    assert_eq!((state.lines.len(), state.total), (0, Money::ZERO));
}

#[test]
fn only_an_existing_line_is_removed() {
    given::<Order>(&draft())
        .when(&C::RemoveLine { sku: "cup".into() })
        .then_refused("line_not_found");
}

#[test]
fn lines_change_only_while_draft() {
    for past in [
        vec![placed()],
        vec![placed(), confirmed()],
        vec![cancelled()],
        vec![placed(), confirmed(), shipped()],
    ] {
        let events = with(draft(), &past);
        given::<Order>(&events)
            .when(&add("cup", 1, 1))
            .then_refused("order_not_draft");
        given::<Order>(&events)
            .when(&C::RemoveLine { sku: "mug".into() })
            .then_refused("order_not_draft");
    }
}

#[test]
fn a_draft_is_placed_with_everything_checkout_needs() {
    let state = given::<Order>(&draft()).when(&C::Place).then(&[placed()]);
    assert_eq!(state.status, Some(OrderStatus::Placed));
}

#[test]
fn an_empty_order_cannot_be_placed() {
    given::<Order>(&[created()])
        .when(&C::Place)
        .then_refused("order_empty");
}

#[test]
fn only_a_draft_is_placed() {
    given::<Order>(&with(draft(), &[placed()]))
        .when(&C::Place)
        .then_refused("order_not_draft");
    given::<Order>(&with(draft(), &[cancelled()]))
        .when(&C::Place)
        .then_refused("order_cancelled");
}

#[test]
fn a_placed_order_is_confirmed() {
    let state = given::<Order>(&with(draft(), &[placed()]))
        .when(&C::Confirm)
        .then(&[confirmed()]);
    assert_eq!(state.status, Some(OrderStatus::Confirmed));
}

#[test]
fn only_a_placed_order_is_confirmed() {
    given::<Order>(&draft())
        .when(&C::Confirm)
        .then_refused("order_not_placed");
    given::<Order>(&with(draft(), &[placed(), cancelled()]))
        .when(&C::Confirm)
        .then_refused("order_cancelled");
}

#[test]
fn confirming_again_changes_nothing() {
    given::<Order>(&with(draft(), &[placed(), confirmed()]))
        .when(&C::Confirm)
        .then(&[]);
    given::<Order>(&with(draft(), &[placed(), confirmed(), shipped()]))
        .when(&C::Confirm)
        .then(&[]);
}

#[test]
fn a_draft_or_placed_order_is_cancelled() {
    given::<Order>(&draft())
        .when(&cancel())
        .then(&[cancelled()]);
    let state = given::<Order>(&with(draft(), &[placed()]))
        .when(&cancel())
        .then(&[cancelled()]);
    assert_eq!(state.status, Some(OrderStatus::Cancelled));
}

#[test]
fn cancelling_keeps_the_reason() {
    let reason = CancelReason::InsufficientStock { sku: "mug".into() };
    given::<Order>(&with(draft(), &[placed()]))
        .when(&C::Cancel {
            reason: reason.clone(),
        })
        .then(&[E::Cancelled {
            order_id: "o1".into(),
            reason,
        }]);
}

#[test]
fn cancelling_again_changes_nothing() {
    given::<Order>(&with(draft(), &[cancelled()]))
        .when(&cancel())
        .then(&[]);
}

#[test]
fn a_paid_or_shipped_order_cannot_be_cancelled() {
    given::<Order>(&with(draft(), &[placed(), confirmed()]))
        .when(&cancel())
        .then_refused("order_confirmed");
    given::<Order>(&with(draft(), &[placed(), confirmed(), shipped()]))
        .when(&cancel())
        .then_refused("order_shipped");
}

#[test]
fn a_confirmed_order_ships() {
    let state = given::<Order>(&with(draft(), &[placed(), confirmed()]))
        .when(&C::Ship)
        .then(&[shipped()]);
    assert_eq!(state.status, Some(OrderStatus::Shipped));
    given::<Order>(&with(draft(), &[placed(), confirmed(), shipped()]))
        .when(&C::Ship)
        .then(&[]);
}

#[test]
fn an_unpaid_order_does_not_ship() {
    given::<Order>(&draft())
        .when(&C::Ship)
        .then_refused("order_not_paid");
    given::<Order>(&with(draft(), &[placed()]))
        .when(&C::Ship)
        .then_refused("order_not_paid");
    given::<Order>(&with(draft(), &[placed(), cancelled()]))
        .when(&C::Ship)
        .then_refused("order_cancelled");
}
