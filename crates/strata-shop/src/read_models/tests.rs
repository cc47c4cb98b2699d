//! Read models applied to events in an in-memory database, then queried.

use rusqlite::Connection;
use strata_projection::SqliteProjection;

use super::*;
use crate::domain::{
    CancelReason, InventoryEvent, Money, OrderEvent, OrderLine, OrderStatus, ProductEvent,
};
use crate::test_support::recorded;

const NOON: &str = "2026-03-01T12:00:00Z";

/// A fresh model of `projection` with `events` applied.
fn model(projection: &dyn SqliteProjection, events: &[strata_core::RecordedEvent]) -> Connection {
    let mut conn = Connection::open_in_memory().expect("opens");
    let tx = conn.transaction().expect("begins");
    projection.migrate(&tx).expect("migrates");
    for event in events {
        assert!(
            projection
                .filter()
                .matches(&event.stream, event.event_type.as_str())
        );
        projection.apply(&tx, event).expect("applies");
    }
    tx.commit().expect("commits");
    conn
}

fn line(sku: &str, quantity: u32, unit_price: u64) -> OrderLine {
    OrderLine {
        sku: sku.into(),
        quantity,
        unit_price: Money(unit_price),
    }
}

fn order_events() -> Vec<strata_core::RecordedEvent> {
    let o = |p, e: OrderEvent| recorded("order-o1", p, NOON, &e);
    let o2 = |p, e: OrderEvent| recorded("order-o2", p, NOON, &e);
    vec![
        o(
            1,
            OrderEvent::Created {
                order_id: "o1".into(),
                customer: "ada".into(),
            },
        ),
        o(
            2,
            OrderEvent::LineAdded {
                order_id: "o1".into(),
                line: line("mug", 2, 500),
            },
        ),
        o(
            3,
            OrderEvent::LineAdded {
                order_id: "o1".into(),
                line: line("cup", 1, 250),
            },
        ),
        o(
            4,
            OrderEvent::LineAdded {
                order_id: "o1".into(),
                line: line("pot", 1, 9000),
            },
        ),
        o(
            5,
            OrderEvent::LineRemoved {
                order_id: "o1".into(),
                sku: "pot".into(),
            },
        ),
        o(
            6,
            OrderEvent::Placed {
                order_id: "o1".into(),
                customer: "ada".into(),
                lines: vec![line("mug", 2, 500), line("cup", 1, 250)],
                total: Money(1250),
            },
        ),
        o2(
            7,
            OrderEvent::Created {
                order_id: "o2".into(),
                customer: "ada".into(),
            },
        ),
        o2(
            8,
            OrderEvent::Cancelled {
                order_id: "o2".into(),
                reason: CancelReason::Requested,
            },
        ),
    ]
}

#[test]
fn order_summaries_follow_lines_and_statuses() {
    let conn = model(&OrderSummaries, &order_events());
    let order = OrderSummaries::order(&conn, "o1").unwrap().expect("o1");
    assert_eq!(order.customer, "ada");
    assert_eq!(order.status, OrderStatus::Placed);
    assert_eq!(order.total, Money(1250));
    let skus: Vec<_> = order.lines.iter().map(|l| l.sku.as_str()).collect();
    assert_eq!(skus, ["mug", "cup"]);
    assert_eq!(order.lines[0].total, Money(1000));
    let cancelled = OrderSummaries::order(&conn, "o2").unwrap().expect("o2");
    assert_eq!(cancelled.status, OrderStatus::Cancelled);
    assert_eq!(cancelled.cancel_reason, Some(CancelReason::Requested));
    assert_eq!(OrderSummaries::order(&conn, "nope").unwrap(), None);
}

#[test]
fn a_sku_added_again_replaces_its_line_at_the_end_and_the_total_follows() {
    let o = |p, e: OrderEvent| recorded("order-o3", p, NOON, &e);
    let added = |p, sku: &str, quantity, price| {
        o(
            p,
            OrderEvent::LineAdded {
                order_id: "o3".into(),
                line: line(sku, quantity, price),
            },
        )
    };
    let mut events = vec![
        o(
            1,
            OrderEvent::Created {
                order_id: "o3".into(),
                customer: "cy".into(),
            },
        ),
        added(2, "mug", 1, 500),
        added(3, "cup", 1, 250),
        added(4, "mug", 3, 500),
    ];
    // Lines of an order the model never saw created change nothing.
    events.push(recorded(
        "order-o4",
        5,
        NOON,
        &OrderEvent::LineAdded {
            order_id: "o4".into(),
            line: line("mug", 1, 500),
        },
    ));
    let conn = model(&OrderSummaries, &events);
    let order = OrderSummaries::order(&conn, "o3").unwrap().expect("o3");
    let lines: Vec<_> = order
        .lines
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity, l.total))
        .collect();
    assert_eq!(lines, [("cup", 1, Money(250)), ("mug", 3, Money(1500))]);
    assert_eq!(order.total, Money(1750));
    let listed = OrderSummaries::customer_orders(&conn, "cy", 0, 10).unwrap();
    assert_eq!((listed[0].lines, listed[0].total), (2, Money(1750)));
    assert_eq!(OrderSummaries::order(&conn, "o4").unwrap(), None);
}

#[test]
fn damaged_stored_lines_are_an_error_not_a_panic() {
    let mut conn = model(&OrderSummaries, &order_events());
    conn.execute(
        "UPDATE orders SET lines = '[{\"sku\":' WHERE order_id = 'o1'",
        [],
    )
    .unwrap();
    assert!(OrderSummaries::order(&conn, "o1").is_err());
    let tx = conn.transaction().unwrap();
    let more = recorded(
        "order-o1",
        9,
        NOON,
        &OrderEvent::LineAdded {
            order_id: "o1".into(),
            line: line("pan", 1, 100),
        },
    );
    let err = OrderSummaries.apply(&tx, &more).unwrap_err();
    assert!(err.to_string().contains("o1"), "{err}");
}

#[test]
fn a_customer_lists_their_orders_oldest_first() {
    let conn = model(&OrderSummaries, &order_events());
    let orders = OrderSummaries::customer_orders(&conn, "ada", 0, 100).unwrap();
    let listed: Vec<_> = orders
        .iter()
        .map(|o| (o.id.as_str(), o.status, o.lines, o.total))
        .collect();
    assert_eq!(
        listed,
        [
            ("o1", OrderStatus::Placed, 2, Money(1250)),
            ("o2", OrderStatus::Cancelled, 0, Money::ZERO)
        ]
    );
    assert!(
        OrderSummaries::customer_orders(&conn, "bob", 0, 100)
            .unwrap()
            .is_empty()
    );
    // A page ends where the next one starts: after the last order's creation.
    let first = OrderSummaries::customer_orders(&conn, "ada", 0, 1).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, "o1");
    let rest =
        OrderSummaries::customer_orders(&conn, "ada", first[0].created_position, 10).unwrap();
    let ids: Vec<_> = rest.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["o2"]);
}

#[test]
fn every_order_is_listed_newest_first_a_page_at_a_time() {
    let conn = model(&OrderSummaries, &order_events());
    let orders = OrderSummaries::orders(&conn, None, 100).unwrap();
    let listed: Vec<_> = orders
        .iter()
        .map(|o| (o.id.as_str(), o.customer.as_str(), o.status, o.lines))
        .collect();
    assert_eq!(
        listed,
        [
            ("o2", "ada", OrderStatus::Cancelled, 0),
            ("o1", "ada", OrderStatus::Placed, 2)
        ]
    );
    // A page ends where the next one starts: before the last order's creation.
    let first = OrderSummaries::orders(&conn, None, 1).unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].id, "o2");
    let rest = OrderSummaries::orders(&conn, Some(first[0].created_position), 10).unwrap();
    let ids: Vec<_> = rest.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["o1"]);
    assert!(
        OrderSummaries::orders(&conn, Some(rest[0].created_position), 10)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn the_catalog_counts_available_stock() {
    let p = |pos, e: ProductEvent| recorded("product-mug", pos, NOON, &e);
    let i = |pos, e: InventoryEvent| recorded("inventory-mug", pos, NOON, &e);
    let events = [
        // Stock may be known before the product.
        i(
            1,
            InventoryEvent::Received {
                sku: "mug".into(),
                quantity: 10,
            },
        ),
        p(
            2,
            ProductEvent::Created {
                sku: "mug".into(),
                name: "Mug".into(),
                description: "Blue".into(),
                price: Money(500),
            },
        ),
        i(
            3,
            InventoryEvent::Reserved {
                sku: "mug".into(),
                order_id: "o1".into(),
                quantity: 3,
            },
        ),
        i(
            4,
            InventoryEvent::Reserved {
                sku: "mug".into(),
                order_id: "o2".into(),
                quantity: 2,
            },
        ),
        i(
            5,
            InventoryEvent::Committed {
                sku: "mug".into(),
                order_id: "o1".into(),
                quantity: 3,
            },
        ),
        i(
            6,
            InventoryEvent::Released {
                sku: "mug".into(),
                order_id: "o2".into(),
                quantity: 2,
            },
        ),
        i(
            7,
            InventoryEvent::Reserved {
                sku: "mug".into(),
                order_id: "o3".into(),
                quantity: 1,
            },
        ),
        p(
            8,
            ProductEvent::PriceChanged {
                sku: "mug".into(),
                old_price: Money(500),
                price: Money(600),
            },
        ),
    ];
    let conn = model(&Catalog, &events);
    let mug = Catalog::product(&conn, "mug").unwrap().expect("mug");
    assert_eq!(mug.price, Money(600));
    // received 10, committed 3, reserved 1.
    assert_eq!((mug.on_hand, mug.reserved, mug.available), (7, 1, 6));
    assert_eq!(Catalog::products(&conn, "", 100).unwrap(), vec![mug]);
}

#[test]
fn stock_without_a_product_is_not_in_the_catalog() {
    let events = [recorded(
        "inventory-ghost",
        1,
        NOON,
        &InventoryEvent::Received {
            sku: "ghost".into(),
            quantity: 1,
        },
    )];
    let conn = model(&Catalog, &events);
    assert_eq!(Catalog::product(&conn, "ghost").unwrap(), None);
    assert!(Catalog::products(&conn, "", 100).unwrap().is_empty());
}

#[test]
fn daily_sales_sum_confirmed_orders_per_utc_day() {
    let confirmed = |pos, order: &str, at, total| {
        recorded(
            &format!("order-{order}"),
            pos,
            at,
            &OrderEvent::Confirmed {
                order_id: order.into(),
                customer: "ada".into(),
                total: Money(total),
            },
        )
    };
    let events = [
        confirmed(1, "o1", "2026-03-01T00:00:00Z", 100),
        confirmed(2, "o2", "2026-03-01T23:59:59.999Z", 250),
        // 01:00 at UTC+02:00 on the 1st is 23:00 UTC on February 28th.
        confirmed(3, "o3", "2026-03-01T01:00:00+02:00", 7),
        confirmed(4, "o4", "2026-03-02T00:00:00Z", 1000),
    ];
    let conn = model(&DailySales, &events);
    let days = DailySales::days(&conn, "", 100).unwrap();
    let days: Vec<_> = days
        .iter()
        .map(|d| (d.day.as_str(), d.orders, d.revenue))
        .collect();
    assert_eq!(
        days,
        [
            ("2026-02-28", 1, Money(7)),
            ("2026-03-01", 2, Money(350)),
            ("2026-03-02", 1, Money(1000)),
        ]
    );
}

#[test]
fn daily_sales_ignore_other_order_events() {
    assert!(!DailySales.filter().matches_raw("order-o1", "OrderPlaced"));
}

fn catalog_products() -> Vec<strata_core::RecordedEvent> {
    let product = |pos: u64, sku: &str, name: &str, description: &str| {
        recorded(
            &format!("product-{sku}"),
            pos,
            NOON,
            &ProductEvent::Created {
                sku: sku.into(),
                name: name.into(),
                description: description.into(),
                price: Money(100 * pos),
            },
        )
    };
    vec![
        product(1, "mug", "Blue mug", "A ceramic mug for coffee"),
        product(2, "cup", "Tea cup", "Porcelain, holds a blue tea"),
        product(3, "pot", "Coffee pot", "Brews coffee for six"),
        product(4, "cafe", "Café crème", "Crème de café"),
    ]
}

#[test]
fn search_finds_every_word_as_a_prefix_and_ranks_names_first() {
    let conn = model(&ProductSearch, &catalog_products());
    let skus = |q: &str| -> Vec<String> {
        ProductSearch::search(&conn, q, 0, 10)
            .unwrap()
            .into_iter()
            .map(|h| h.sku)
            .collect()
    };
    // "blue" is in the mug's name and in the cup's description: the name weighs more.
    assert_eq!(skus("blue"), ["mug", "cup"]);
    assert_eq!(skus("coffee"), ["pot", "mug"]);
    assert_eq!(skus("cof"), ["pot", "mug"]);
    assert_eq!(skus("blue tea"), ["cup"]);
    assert_eq!(skus("BLUE   Mug!"), ["mug"]);
    // Diacritics do not matter.
    assert_eq!(skus("cafe creme"), ["cafe"]);
    assert!(skus("teapot").is_empty());
}

#[test]
fn search_scores_and_prices_come_back() {
    let conn = model(&ProductSearch, &catalog_products());
    let hits = ProductSearch::search(&conn, "coffee", 0, 1).unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].price, Money(300));
    assert!(hits[0].score > 0.0);
}

#[test]
fn search_follows_price_changes() {
    let mut events = catalog_products();
    events.push(recorded(
        "product-mug",
        5,
        NOON,
        &ProductEvent::PriceChanged {
            sku: "mug".into(),
            old_price: Money(100),
            price: Money(42),
        },
    ));
    let conn = model(&ProductSearch, &events);
    let hits = ProductSearch::search(&conn, "mug", 0, 5).unwrap();
    assert_eq!(hits[0].price, Money(42));
}

#[test]
fn search_syntax_from_the_caller_never_reaches_fts5() {
    let conn = model(&ProductSearch, &catalog_products());
    for q in [
        "",
        "   ",
        "\"",
        "*",
        "mug OR",
        "NEAR(mug cup)",
        "col:mug",
        "-mug",
        "^mug",
    ] {
        ProductSearch::search(&conn, q, 0, 10)
            .unwrap_or_else(|e| panic!("query {q:?} failed: {e}"));
    }
    assert_eq!(fts_query("a\"b"), Some("\"a\"* \"b\"*".to_owned()));
    assert_eq!(fts_query("  -- "), None);
}

/// `event` stored under another type name, with `data` as its payload.
fn raw(stream: &str, event_type: &str, data: serde_json::Value) -> strata_core::RecordedEvent {
    let mut event = recorded(
        stream,
        9,
        NOON,
        &ProductEvent::Created {
            sku: "x".into(),
            name: "x".into(),
            description: "x".into(),
            price: Money(1),
        },
    );
    event.event_type = strata_core::EventType::new(event_type).expect("valid type");
    event.data = serde_json::to_vec(&data).expect("json").into();
    event
}

#[test]
fn an_unknown_type_is_unhandled_and_a_bad_payload_refused() {
    let unknown = raw("product-zz", "A", serde_json::json!({}));
    let bad = raw(
        "product-zz",
        "ProductCreated",
        serde_json::json!({"sku": "zz", "name": "z", "description": "", "price": -5}),
    );
    let projections: [&dyn SqliteProjection; 2] = [&Catalog, &ProductSearch];
    for projection in projections {
        let mut conn = Connection::open_in_memory().expect("opens");
        let tx = conn.transaction().expect("begins");
        projection.migrate(&tx).expect("migrates");
        let err = projection.apply(&tx, &unknown).expect_err("not handled");
        assert!(err.is_unhandled(), "{}: {err}", projection.name());
        let err = projection.apply(&tx, &bad).expect_err("refused");
        assert!(!err.is_unhandled(), "{}: {err}", projection.name());
    }
}
