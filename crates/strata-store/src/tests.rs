//! Unit tests of the small pieces every backend shares: the read filter and the error
//! codes.

use strata_core::{CoreError, StreamName};

use crate::{ReadFilter, StoreError};

#[test]
fn an_empty_filter_selects_everything() {
    let filter = ReadFilter::all();
    assert!(filter.is_all());
    assert!(filter.matches_raw("order-1", "Placed"));
    assert!(filter.matches_raw("x", "y"));
}

#[test]
fn a_category_is_the_stream_name_up_to_the_first_dash() {
    let filter = ReadFilter::all().category("order");
    assert!(!filter.is_all());
    assert!(filter.matches_raw("order-1", "Placed"));
    assert!(filter.matches_raw("order-1-2", "Placed"));
    assert!(filter.matches_raw("order", "Placed"));
    assert!(!filter.matches_raw("orderline-1", "Placed"));
    assert!(!filter.matches_raw("x-order-1", "Placed"));
    assert!(!filter.matches_raw("Order-1", "Placed"));
    assert!(ReadFilter::all().category("").matches_raw("-1", "T"));
}

#[test]
fn categories_and_types_each_select_any_of_their_list() {
    let filter = ReadFilter::all()
        .category("order")
        .category("payment")
        .event_type("Placed")
        .event_type("Paid");
    assert!(filter.matches_raw("order-1", "Placed"));
    assert!(filter.matches_raw("payment-1", "Paid"));
    assert!(!filter.matches_raw("order-1", "Shipped"));
    assert!(!filter.matches_raw("stock-1", "Placed"));
    assert!(!filter.matches_raw("order-1", "PlacedLater"));
    let stream = StreamName::new("payment-9").unwrap();
    assert!(filter.matches(&stream, "Placed"));
}

#[test]
fn error_codes_and_client_errors() {
    let invalid = StoreError::from(CoreError::InvalidEventId("x".into()));
    assert_eq!(invalid.code(), "invalid_input");
    assert!(invalid.is_client_error());
    let poisoned = StoreError::Poisoned {
        reason: "fsync failed".into(),
    };
    assert_eq!(poisoned.code(), "store_poisoned");
    assert!(!poisoned.is_client_error());
    let io = StoreError::io("reading segment 3", std::io::Error::other("disk gone"));
    assert_eq!(io.code(), "io_error");
    assert_eq!(io.to_string(), "reading segment 3: disk gone");
}

#[test]
fn an_internal_fault_is_its_own_error_and_keeps_its_cause() {
    let bare = StoreError::internal("the index lists position 7 but has no location for it");
    assert_eq!(bare.code(), "internal_error");
    assert!(!bare.is_client_error());
    assert_eq!(
        bare.to_string(),
        "internal fault in the event store: the index lists position 7 but has no location for it"
    );
    let caused = StoreError::internal_from(
        "decoding the event at position 7",
        std::io::Error::other("bad frame"),
    );
    assert_eq!(
        caused.to_string(),
        "internal fault in the event store: decoding the event at position 7: bad frame"
    );
    let StoreError::Internal {
        cause: Some(cause), ..
    } = caused
    else {
        panic!("internal_from keeps its cause");
    };
    assert!(cause.downcast_ref::<std::io::Error>().is_some());
}
