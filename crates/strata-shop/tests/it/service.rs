//! The Shop API: commands, consistency tokens, queries, refusals, history, time travel.

use std::time::Duration;

use strata_core::Position;
use strata_domain::CommandContext;
use strata_shop::domain::{CancelReason, Money, OrderStatus};
use strata_shop::{AsOf, PAGE_LIMIT, PageRequest, ShopError};

use crate::support::{Fixture, ctx};

const WAIT: Duration = Duration::from_secs(10);

fn refused(result: Result<impl std::fmt::Debug, ShopError>, code: &str) {
    match result {
        Err(ShopError::Refused { code: got, .. }) => assert_eq!(got, code),
        other => panic!("expected refusal {code}, got {other:?}"),
    }
}

fn not_found(result: Result<impl std::fmt::Debug, ShopError>, what: &str) {
    match result {
        Err(err @ ShopError::NotFound { .. }) => {
            assert_eq!(err.code(), "not_found");
            let ShopError::NotFound { what: got, .. } = err else {
                unreachable!()
            };
            assert_eq!(got, what);
        }
        other => panic!("expected {what} not found, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_wait_for_the_write_they_follow() {
    let fixture = Fixture::start();
    let shop = &fixture.shop;
    let created = shop
        .create_product("mug", "Blue mug", "Stoneware, 300 ml", Money(1200), &ctx())
        .await
        .unwrap();
    let mug = shop
        .product("mug", Some(created.position), WAIT)
        .await
        .unwrap();
    assert_eq!(
        (mug.name.as_str(), mug.price, mug.available),
        ("Blue mug", Money(1200), 0)
    );

    let received = shop.receive_stock("mug", 5, &ctx()).await.unwrap();
    let mug = shop
        .product("mug", Some(received.position), WAIT)
        .await
        .unwrap();
    assert_eq!((mug.available, mug.on_hand, mug.reserved), (5, 5, 0));

    let repriced = shop.change_price("mug", Money(1500), &ctx()).await.unwrap();
    let hits = shop
        .search_products(
            "stone MUG",
            &PageRequest::first(10),
            Some(repriced.position),
            WAIT,
        )
        .await
        .unwrap()
        .items;
    assert_eq!(hits.len(), 1);
    assert_eq!((hits[0].sku.as_str(), hits[0].price), ("mug", Money(1500)));
    assert!(
        shop.search_products("teapot", &PageRequest::first(10), None, WAIT)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_takes_the_price_of_the_moment() {
    let fixture = Fixture::start();
    let shop = &fixture.shop;
    shop.create_product("mug", "Mug", "", Money(300), &ctx())
        .await
        .unwrap();
    shop.create_product("cup", "Cup", "", Money(100), &ctx())
        .await
        .unwrap();
    shop.create_order("o1", "ada", &ctx()).await.unwrap();
    shop.add_line("o1", "mug", 2, &ctx()).await.unwrap();
    shop.change_price("mug", Money(999), &ctx()).await.unwrap();
    let added = shop.add_line("o1", "cup", 3, &ctx()).await.unwrap();
    let order = shop.order("o1", Some(added.position), WAIT).await.unwrap();
    assert_eq!(order.status, OrderStatus::Draft);
    assert_eq!(order.lines[0].unit_price, Money(300));
    assert_eq!(order.total, Money(900));

    let removed = shop.remove_line("o1", "mug", &ctx()).await.unwrap();
    let order = shop
        .order("o1", Some(removed.position), WAIT)
        .await
        .unwrap();
    assert_eq!((order.lines.len(), order.total), (1, Money(300)));
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_carry_their_codes_and_missing_things_are_not_found() {
    let fixture = Fixture::start();
    let shop = &fixture.shop;
    shop.create_product("mug", "Mug", "", Money(300), &ctx())
        .await
        .unwrap();
    refused(
        shop.create_product("mug", "Mug", "", Money(300), &ctx())
            .await,
        "product_exists",
    );
    refused(
        shop.create_product("cup", "", "", Money(300), &ctx()).await,
        "invalid_name",
    );
    refused(
        shop.receive_stock("ghost", 1, &ctx()).await,
        "product_not_found",
    );
    refused(
        shop.receive_stock("mug", 0, &ctx()).await,
        "invalid_quantity",
    );
    not_found(
        shop.change_price("ghost", Money(1), &ctx()).await,
        "product",
    );

    shop.create_order("o1", "ada", &ctx()).await.unwrap();
    refused(shop.create_order("o1", "bob", &ctx()).await, "order_exists");
    refused(
        shop.add_line("o1", "ghost", 1, &ctx()).await,
        "product_not_found",
    );
    refused(
        shop.add_line("o1", "mug", 0, &ctx()).await,
        "invalid_quantity",
    );
    refused(
        shop.remove_line("o1", "mug", &ctx()).await,
        "line_not_found",
    );
    refused(shop.place("o1", &ctx()).await, "order_empty");
    refused(shop.ship("o1", &ctx()).await, "order_not_paid");
    not_found(shop.place("o2", &ctx()).await, "order");
    not_found(shop.cancel("o2", &ctx()).await, "order");

    let err = shop
        .create_order("bad\nid", "ada", &ctx())
        .await
        .unwrap_err();
    assert!(matches!(err, ShopError::InvalidId { .. }), "{err:?}");
    assert_eq!(err.code(), "invalid_id");

    not_found(shop.order("o2", None, WAIT).await, "order");
    not_found(shop.product("ghost", None, WAIT).await, "product");
    not_found(shop.order_history("o2").await, "order");
    // Before its creation an order that exists now was nothing yet; one that never
    // existed is not found.
    let before = shop
        .order_as_of("o1", AsOf::Position(Position(1)))
        .await
        .unwrap();
    assert_eq!((before.order, before.version.0), (None, 0));
    not_found(
        shop.order_as_of("o2", AsOf::Position(Position(1))).await,
        "order",
    );
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_model_that_cannot_catch_up_in_time_says_so() {
    let fixture = Fixture::start();
    let err = fixture
        .shop
        .order("o1", Some(Position(1_000_000)), Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ShopError::NotCaughtUp {
                position: Position(1_000_000),
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.code(), "consistency_timeout");
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_command_id_is_applied_once() {
    let fixture = Fixture::start();
    let shop = &fixture.shop;
    shop.create_product("mug", "Mug", "", Money(300), &ctx())
        .await
        .unwrap();
    let create = ctx();
    let first = shop.create_order("o1", "ada", &create).await.unwrap();
    let again = shop.create_order("o1", "ada", &create).await.unwrap();
    assert!(!first.duplicate && again.duplicate);
    assert_eq!(first.position, again.position);

    let add = CommandContext::new();
    shop.add_line("o1", "mug", 1, &add).await.unwrap();
    let again = shop.add_line("o1", "mug", 1, &add).await.unwrap();
    assert!(again.duplicate);
    let order = shop.order("o1", Some(again.position), WAIT).await.unwrap();
    assert_eq!(order.lines.len(), 1);
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_checks_out_ships_and_keeps_its_history() {
    let fixture = Fixture::start();
    let shop = &fixture.shop;
    shop.create_product("mug", "Mug", "", Money(1200), &ctx())
        .await
        .unwrap();
    shop.receive_stock("mug", 3, &ctx()).await.unwrap();
    let created = shop.create_order("o1", "ada", &ctx()).await.unwrap();
    let added = shop.add_line("o1", "mug", 2, &ctx()).await.unwrap();
    let placed = shop.place("o1", &ctx()).await.unwrap();
    fixture.settle().await;
    assert_eq!(
        shop.order_status("o1").await.unwrap(),
        OrderStatus::Confirmed
    );
    refused(shop.cancel("o1", &ctx()).await, "order_confirmed");
    let shipped = shop.ship("o1", &ctx()).await.unwrap();

    let order = shop
        .order("o1", Some(shipped.position), WAIT)
        .await
        .unwrap();
    assert_eq!(
        (order.status, order.total),
        (OrderStatus::Shipped, Money(2400))
    );
    let mug = shop
        .product("mug", Some(shipped.position), WAIT)
        .await
        .unwrap();
    assert_eq!((mug.available, mug.on_hand, mug.reserved), (1, 1, 0));
    let listed = shop
        .customer_orders("ada", &PageRequest::first(10), None, WAIT)
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.next, None);
    assert_eq!(listed.items[0].status, OrderStatus::Shipped);
    let every = shop
        .orders(&PageRequest::first(10), None, WAIT)
        .await
        .unwrap();
    assert_eq!(every.items, listed.items);
    assert_eq!(every.next, None);
    let sales = shop
        .daily_sales(&PageRequest::first(10), Some(shipped.position), WAIT)
        .await
        .unwrap()
        .items;
    assert_eq!(sales.len(), 1);
    assert_eq!((sales[0].orders, sales[0].revenue), (1, Money(2400)));

    // History: who asked, when, and why.
    let history = shop.order_history("o1").await.unwrap();
    let types: Vec<_> = history.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        types,
        [
            "OrderCreated",
            "OrderLineAdded",
            "OrderPlaced",
            "OrderConfirmed",
            "OrderShipped"
        ]
    );
    assert_eq!(history[0].actor.as_deref(), Some("test"));
    let placed_entry = &history[2];
    let confirmed = &history[3];
    // Checkout confirmed it, caused by an event, in the request that placed the order.
    assert_ne!(confirmed.causation_id, confirmed.command_id);
    assert_eq!(confirmed.correlation_id, placed_entry.correlation_id);
    assert_eq!(confirmed.actor.as_deref(), Some("test"));

    // Time travel by position and by time.
    let as_created = shop
        .order_as_of("o1", AsOf::Position(created.position))
        .await
        .unwrap();
    let order = as_created.order.expect("created");
    assert_eq!(order.status, OrderStatus::Draft);
    assert!(order.lines.is_empty());
    let as_added = shop
        .order_as_of("o1", AsOf::Position(added.position))
        .await
        .unwrap();
    assert_eq!(
        (as_added.order.expect("created").total, as_added.version.0),
        (Money(2400), 2)
    );
    let as_placed = shop
        .order_as_of("o1", AsOf::Time(history[2].recorded_at))
        .await
        .unwrap();
    assert_eq!(
        as_placed.order.expect("created").status,
        OrderStatus::Placed
    );
    assert_eq!(as_placed.position, placed.position);
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_draft_never_checks_out() {
    let fixture = Fixture::start();
    let shop = &fixture.shop;
    shop.create_product("mug", "Mug", "", Money(1200), &ctx())
        .await
        .unwrap();
    shop.receive_stock("mug", 3, &ctx()).await.unwrap();
    shop.create_order("o1", "ada", &ctx()).await.unwrap();
    shop.add_line("o1", "mug", 2, &ctx()).await.unwrap();
    let cancelled = shop.cancel("o1", &ctx()).await.unwrap();
    refused(shop.place("o1", &ctx()).await, "order_cancelled");
    fixture.settle().await;
    let head = fixture.read_models_caught_up().await;
    assert!(head >= cancelled.position);
    let order = shop.order("o1", None, WAIT).await.unwrap();
    assert_eq!(order.status, OrderStatus::Cancelled);
    assert_eq!(order.cancel_reason, Some(CancelReason::Requested));
    let mug = shop.product("mug", None, WAIT).await.unwrap();
    assert_eq!(mug.available, 3);
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listings_page_with_a_cursor_and_a_capped_limit() {
    let fixture = Fixture::start();
    let shop = &fixture.shop;
    let mut last = None;
    for sku in ["a-1", "b 2", "c&3", "d/4", "e%5"] {
        let created = shop
            .create_product(sku, &format!("Blue {sku}"), "", Money(100), &ctx())
            .await
            .unwrap();
        last = Some(created.position);
    }
    let mut skus = Vec::new();
    let mut page = PageRequest::first(2);
    let mut pages = 0;
    loop {
        let got = shop.products(&page, last, WAIT).await.unwrap();
        pages += 1;
        assert!(got.items.len() <= 2);
        skus.extend(got.items.into_iter().map(|p| p.sku));
        match got.next {
            Some(next) => page.cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(skus, ["a-1", "b 2", "c&3", "d/4", "e%5"]);
    assert_eq!(pages, 3);

    // Search pages go on by rank (once the search model has every product: it is a
    // read model of its own).
    let first = shop
        .search_products("blue", &PageRequest::first(3), last, WAIT)
        .await
        .unwrap();
    assert_eq!(first.items.len(), 3);
    let rest = shop
        .search_products(
            "blue",
            &PageRequest {
                cursor: first.next.clone(),
                limit: 3,
            },
            None,
            WAIT,
        )
        .await
        .unwrap();
    assert_eq!((rest.items.len(), rest.next), (2, None));
    let mut found: Vec<_> = first
        .items
        .iter()
        .chain(&rest.items)
        .map(|h| h.sku.clone())
        .collect();
    found.sort();
    assert_eq!(found, skus);

    // A limit past the cap reads as the cap; a cursor no listing gave out is refused.
    let capped = shop
        .products(&PageRequest::first(PAGE_LIMIT * 10), None, WAIT)
        .await
        .unwrap();
    assert_eq!(capped.items.len(), 5);
    for cursor in ["zz", "abc"] {
        let bad = PageRequest {
            cursor: Some(cursor.to_owned()),
            limit: 2,
        };
        let err = shop.products(&bad, None, WAIT).await.unwrap_err();
        assert_eq!(err.code(), "invalid_cursor", "{cursor}");
    }
    let bad = PageRequest {
        cursor: Some("yesterday".to_owned()),
        limit: 2,
    };
    assert_eq!(
        shop.daily_sales(&bad, None, WAIT).await.unwrap_err().code(),
        "invalid_cursor"
    );
    assert_eq!(
        shop.orders(&bad, None, WAIT).await.unwrap_err().code(),
        "invalid_cursor"
    );
    assert_eq!(
        shop.customer_orders("ada", &bad, None, WAIT)
            .await
            .unwrap_err()
            .code(),
        "invalid_cursor"
    );
    fixture.stop().await;
}

/// Every row of a read model's own tables (not the bookkeeping ones, nor the search
/// index's FTS5 tables, which the search query covers), table by table, in key order.
fn dump(conn: &rusqlite::Connection) -> rusqlite::Result<Vec<String>> {
    let tables: Vec<String> = conn
        .prepare(
            "SELECT name FROM sqlite_master WHERE type = 'table'
             AND name NOT LIKE 'strata_%' AND name NOT LIKE 'search_index%' ORDER BY name",
        )?
        .query_map([], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut rows = Vec::new();
    for table in tables {
        let mut statement = conn.prepare(&format!("SELECT * FROM {table} ORDER BY 1, 2"))?;
        let columns = statement.column_count();
        let mut query = statement.query([])?;
        while let Some(row) = query.next()? {
            let values = (0..columns)
                .map(|i| row.get_ref(i).map(|v| format!("{v:?}")))
                .collect::<rusqlite::Result<Vec<_>>>()?;
            rows.push(format!("{table}: {}", values.join(", ")));
        }
    }
    Ok(rows)
}

/// The four read models built again from position 0 at once, in another directory,
/// hold exactly what they held when built event by event as the shop ran.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_models_rebuilt_at_once_equal_the_ones_built_as_the_shop_ran() {
    use strata_projection::Projections;
    use strata_shop::read_models::{
        CATALOG, Catalog, DAILY_SALES, DailySales, ORDERS, OrderSummaries, PRODUCT_SEARCH,
        ProductSearch,
    };
    let fixture = Fixture::start();
    let shop = &fixture.shop;
    for (sku, price) in [("mug", 1200), ("cup", 800), ("pot", 3100)] {
        shop.create_product(sku, &format!("A {sku}"), "in blue", Money(price), &ctx())
            .await
            .unwrap();
        shop.receive_stock(sku, 50, &ctx()).await.unwrap();
    }
    shop.change_price("cup", Money(900), &ctx()).await.unwrap();
    for n in 0..12 {
        let order = format!("o{n}");
        let customer = ["ada", "bob", "cy"][n % 3];
        shop.create_order(&order, customer, &ctx()).await.unwrap();
        shop.add_line(&order, "mug", 1 + n as u32 % 2, &ctx())
            .await
            .unwrap();
        shop.add_line(&order, "cup", 2, &ctx()).await.unwrap();
        match n % 4 {
            0 => {
                shop.remove_line(&order, "cup", &ctx()).await.unwrap();
                shop.place(&order, &ctx()).await.unwrap();
            }
            1 => {
                shop.cancel(&order, &ctx()).await.unwrap();
            }
            2 => {
                shop.add_line(&order, "pot", 1, &ctx()).await.unwrap();
                shop.place(&order, &ctx()).await.unwrap();
            }
            _ => {}
        }
    }
    fixture.settle().await;
    shop.ship("o0", &ctx()).await.unwrap();
    let head = fixture.read_models_caught_up().await;
    let names = [ORDERS, CATALOG, DAILY_SALES, PRODUCT_SEARCH];
    let mut built = Vec::new();
    for name in names {
        built.push(fixture.projections.query(name, dump).await.unwrap());
    }
    assert!(built.iter().all(|rows| !rows.is_empty()), "{built:?}");

    let dir = tempfile::tempdir().unwrap();
    let rebuilt = Projections::new(fixture.store.clone(), dir.path());
    rebuilt
        .register(std::sync::Arc::new(OrderSummaries))
        .unwrap();
    rebuilt.register(std::sync::Arc::new(Catalog)).unwrap();
    rebuilt.register(std::sync::Arc::new(DailySales)).unwrap();
    rebuilt
        .register(std::sync::Arc::new(ProductSearch))
        .unwrap();
    rebuilt.start();
    for (name, rows) in names.into_iter().zip(&built) {
        rebuilt.wait_for(name, head, WAIT).await.unwrap();
        assert_eq!(&rebuilt.query(name, dump).await.unwrap(), rows, "{name}");
        assert!(rebuilt.parked(name).unwrap().is_empty(), "{name}");
    }
    let search = |conn: &rusqlite::Connection| {
        strata_shop::read_models::ProductSearch::search(conn, "blue", 0, 10)
    };
    assert_eq!(
        rebuilt.query(PRODUCT_SEARCH, search).await.unwrap(),
        fixture
            .projections
            .query(PRODUCT_SEARCH, search)
            .await
            .unwrap()
    );
    rebuilt.shutdown().await;
    fixture.stop().await;
}
