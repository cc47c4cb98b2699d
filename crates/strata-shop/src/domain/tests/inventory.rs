use strata_domain::testing::given;

use crate::domain::{Inventory, InventoryCommand as C, InventoryEvent as E, MAX_STOCK};

fn received(quantity: u64) -> E {
    E::Received {
        sku: "mug".into(),
        quantity,
    }
}

fn reserved(order: &str, quantity: u32) -> E {
    E::Reserved {
        sku: "mug".into(),
        order_id: order.into(),
        quantity,
    }
}

fn reserve(order: &str, quantity: u32) -> C {
    C::Reserve {
        order_id: order.into(),
        quantity,
    }
}

#[test]
fn stock_is_received() {
    let state = given::<Inventory>(&[received(3)])
        .when(&C::Receive {
            sku: "mug".into(),
            quantity: 4,
        })
        .then(&[received(4)]);
    assert_eq!((state.received, state.available()), (7, 7));
}

#[test]
fn receiving_nothing_is_refused() {
    given::<Inventory>(&[])
        .when(&C::Receive {
            sku: "mug".into(),
            quantity: 0,
        })
        .then_refused("invalid_quantity");
}

#[test]
fn receiving_needs_a_sku() {
    given::<Inventory>(&[])
        .when(&C::Receive {
            sku: String::new(),
            quantity: 1,
        })
        .then_refused("invalid_sku");
}

#[test]
fn stock_cannot_pass_the_largest_count() {
    given::<Inventory>(&[received(MAX_STOCK)])
        .when(&C::Receive {
            sku: "mug".into(),
            quantity: 1,
        })
        .then_refused("stock_overflow");
    given::<Inventory>(&[received(5)])
        .when(&C::Receive {
            sku: "mug".into(),
            quantity: u64::MAX,
        })
        .then_refused("stock_overflow");
}

#[test]
fn a_reservation_takes_from_the_available_stock() {
    let state = given::<Inventory>(&[received(10)])
        .when(&reserve("o1", 4))
        .then(&[reserved("o1", 4)]);
    assert_eq!(
        (state.on_hand(), state.reserved(), state.available()),
        (10, 4, 6)
    );
}

#[test]
fn a_reservation_cannot_oversell() {
    given::<Inventory>(&[received(10), reserved("o1", 7)])
        .when(&reserve("o2", 4))
        .then_refused("insufficient_stock");
    given::<Inventory>(&[])
        .when(&reserve("o1", 1))
        .then_refused("insufficient_stock");
}

#[test]
fn the_last_unit_can_be_reserved() {
    given::<Inventory>(&[received(10), reserved("o1", 7)])
        .when(&reserve("o2", 3))
        .then(&[reserved("o2", 3)]);
}

#[test]
fn a_reservation_needs_an_order_and_units() {
    given::<Inventory>(&[received(10)])
        .when(&reserve("", 1))
        .then_refused("invalid_order_id");
    given::<Inventory>(&[received(10)])
        .when(&reserve("o1", 0))
        .then_refused("invalid_quantity");
}

#[test]
fn repeating_a_reservation_changes_nothing() {
    given::<Inventory>(&[received(10), reserved("o1", 4)])
        .when(&reserve("o1", 4))
        .then(&[]);
}

#[test]
fn an_order_holds_one_reservation_per_sku() {
    given::<Inventory>(&[received(10), reserved("o1", 4)])
        .when(&reserve("o1", 5))
        .then_refused("reservation_exists");
}

#[test]
fn a_release_gives_the_units_back() {
    let state = given::<Inventory>(&[received(10), reserved("o1", 4)])
        .when(&C::Release {
            order_id: "o1".into(),
        })
        .then(&[E::Released {
            sku: "mug".into(),
            order_id: "o1".into(),
            quantity: 4,
        }]);
    assert_eq!(state.available(), 10);
}

#[test]
fn only_a_held_reservation_is_released_or_committed() {
    given::<Inventory>(&[received(10)])
        .when(&C::Release {
            order_id: "o1".into(),
        })
        .then_refused("reservation_not_found");
    given::<Inventory>(&[received(10)])
        .when(&C::Commit {
            order_id: "o1".into(),
        })
        .then_refused("reservation_not_found");
}

#[test]
fn a_commit_sells_the_units() {
    let state = given::<Inventory>(&[received(10), reserved("o1", 4)])
        .when(&C::Commit {
            order_id: "o1".into(),
        })
        .then(&[E::Committed {
            sku: "mug".into(),
            order_id: "o1".into(),
            quantity: 4,
        }]);
    assert_eq!(
        (state.on_hand(), state.reserved(), state.available()),
        (6, 0, 6)
    );
}

#[test]
fn a_committed_reservation_cannot_be_released_and_a_repeat_commit_is_nothing() {
    let history = [
        received(10),
        reserved("o1", 4),
        E::Committed {
            sku: "mug".into(),
            order_id: "o1".into(),
            quantity: 4,
        },
    ];
    given::<Inventory>(&history)
        .when(&C::Release {
            order_id: "o1".into(),
        })
        .then_refused("reservation_committed");
    given::<Inventory>(&history)
        .when(&C::Commit {
            order_id: "o1".into(),
        })
        .then(&[]);
    given::<Inventory>(&history)
        .when(&reserve("o1", 4))
        .then(&[]);
}
