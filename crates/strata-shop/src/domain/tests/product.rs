use strata_domain::testing::given;

use crate::domain::{
    MAX_DESCRIPTION_CHARS, MAX_NAME_CHARS, Money, Product, ProductCommand, ProductEvent,
};

fn create(price: u64) -> ProductCommand {
    ProductCommand::Create {
        sku: "mug".into(),
        name: "Mug".into(),
        description: "A blue mug".into(),
        price: Money(price),
    }
}

fn created() -> ProductEvent {
    ProductEvent::Created {
        sku: "mug".into(),
        name: "Mug".into(),
        description: "A blue mug".into(),
        price: Money(1200),
    }
}

#[test]
fn a_product_is_created_with_its_details() {
    let state = given::<Product>(&[]).when(&create(1200)).then(&[created()]);
    assert_eq!(state.details.map(|d| d.price), Some(Money(1200)));
}

#[test]
fn a_product_is_created_once() {
    given::<Product>(&[created()])
        .when(&create(1200))
        .then_refused("product_exists");
}

#[test]
fn a_sku_must_not_be_empty() {
    let command = ProductCommand::Create {
        sku: String::new(),
        name: "Mug".into(),
        description: String::new(),
        price: Money(1),
    };
    given::<Product>(&[])
        .when(&command)
        .then_refused("invalid_sku");
}

#[test]
fn a_name_must_not_be_blank_nor_too_long() {
    for name in [
        "".to_owned(),
        "   ".to_owned(),
        "x".repeat(MAX_NAME_CHARS + 1),
    ] {
        let command = ProductCommand::Create {
            sku: "mug".into(),
            name,
            description: String::new(),
            price: Money(1),
        };
        given::<Product>(&[])
            .when(&command)
            .then_refused("invalid_name");
    }
    let longest = ProductCommand::Create {
        sku: "mug".into(),
        name: "é".repeat(MAX_NAME_CHARS),
        description: String::new(),
        price: Money(1),
    };
    assert!(given::<Product>(&[]).when(&longest).result().is_ok());
}

#[test]
fn a_description_has_a_length_limit() {
    let command = ProductCommand::Create {
        sku: "mug".into(),
        name: "Mug".into(),
        description: "d".repeat(MAX_DESCRIPTION_CHARS + 1),
        price: Money(1),
    };
    given::<Product>(&[])
        .when(&command)
        .then_refused("description_too_long");
}

#[test]
fn a_price_is_above_zero_and_at_most_the_largest_amount() {
    given::<Product>(&[])
        .when(&create(0))
        .then_refused("invalid_price");
    given::<Product>(&[])
        .when(&create(Money::MAX.0 + 1))
        .then_refused("invalid_price");
    given::<Product>(&[created()])
        .when(&ProductCommand::ChangePrice { price: Money(0) })
        .then_refused("invalid_price");
}

#[test]
fn a_price_changes_and_remembers_the_old_one() {
    let state = given::<Product>(&[created()])
        .when(&ProductCommand::ChangePrice { price: Money(1500) })
        .then(&[ProductEvent::PriceChanged {
            sku: "mug".into(),
            old_price: Money(1200),
            price: Money(1500),
        }]);
    assert_eq!(state.details.map(|d| d.price), Some(Money(1500)));
}

#[test]
fn setting_the_same_price_records_nothing() {
    given::<Product>(&[created()])
        .when(&ProductCommand::ChangePrice { price: Money(1200) })
        .then(&[]);
}

#[test]
fn the_price_of_an_unknown_product_cannot_change() {
    given::<Product>(&[])
        .when(&ProductCommand::ChangePrice { price: Money(5) })
        .then_refused("product_not_found");
}
