//! Many checkouts at once, racing for scarce stock, through the real saga: no oversell, no
//! negative stock, every order settled, declines compensated, and every read model equal
//! to a fold of the event log.

use std::collections::BTreeMap;
use std::time::Duration;

use strata_core::{Position, RecordedEvent};
use strata_domain::{Aggregate, Upcasters};
use strata_shop::domain::{
    CancelReason, Inventory, InventoryEvent, Money, Order, OrderEvent, OrderStatus, Payment,
    PaymentEvent, PaymentStatus, Product, ProductEvent,
};
use strata_store::{EventStore, ReadFilter};

use strata_shop::{Page, PageRequest, ShopError};

use crate::support::{Fixture, ctx};

const NOW: Option<Position> = None;
const WAIT: Duration = Duration::from_secs(5);

const WIDGET_STOCK: u64 = 10;
const RACERS: usize = 40;
const DECLINED_CUSTOMERS: usize = 6;
const OVER_LIMIT: usize = 3;

/// One order to check out: its id, customer, and lines (sku, units) in order.
struct Plan {
    id: String,
    customer: String,
    lines: Vec<(&'static str, u32)>,
}

fn plans() -> Vec<Plan> {
    let mut plans = Vec::new();
    for i in 0..RACERS {
        // Every third racer reserves plenty of gizmos before the scarce widget, so a
        // refused widget has a gizmo reservation to give back.
        let lines = if i % 3 == 0 {
            vec![("gizmo", 2), ("widget", 1)]
        } else {
            vec![("widget", 1)]
        };
        plans.push(Plan {
            id: format!("race-{i}"),
            customer: format!("customer-{}", i % 5),
            lines,
        });
    }
    for i in 0..DECLINED_CUSTOMERS {
        plans.push(Plan {
            id: format!("refused-{i}"),
            customer: format!("declined-{i}"),
            lines: vec![("gizmo", 3)],
        });
    }
    for i in 0..OVER_LIMIT {
        plans.push(Plan {
            id: format!("big-{i}"),
            customer: "customer-big".into(),
            lines: vec![("gizmo", 1), ("gold", 1)],
        });
    }
    plans
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_checkouts_never_oversell_and_read_models_agree_with_the_log() {
    tokio::time::timeout(Duration::from_secs(60), race())
        .await
        .expect("the whole run is bounded in time");
}

async fn race() {
    let fixture = Fixture::start();
    let shop = &fixture.shop;
    for (sku, name, description, price, stock) in [
        (
            "widget",
            "Widget",
            "A scarce blue widget",
            1_000,
            WIDGET_STOCK,
        ),
        (
            "gizmo",
            "Gizmo",
            "A plentiful gizmo for widgets",
            250,
            1_000,
        ),
        (
            "gold",
            "Gold bar",
            "Far over the payment limit",
            150_000,
            10,
        ),
    ] {
        shop.create_product(sku, name, description, Money(price), &ctx())
            .await
            .expect("product");
        shop.receive_stock(sku, stock, &ctx()).await.expect("stock");
    }

    let tasks: Vec<_> = plans()
        .into_iter()
        .map(|plan| {
            let shop = shop.clone();
            tokio::spawn(async move {
                shop.create_order(&plan.id, &plan.customer, &ctx())
                    .await
                    .expect("create");
                for (sku, quantity) in &plan.lines {
                    shop.add_line(&plan.id, sku, *quantity, &ctx())
                        .await
                        .expect("add line");
                }
                shop.place(&plan.id, &ctx()).await.expect("place");
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("a checkout task");
    }
    fixture.settle().await;
    fixture.read_models_caught_up().await;

    let log = Log::read(&*fixture.store).await;

    // No oversell, no negative stock: checked after every single inventory event.
    assert!(
        log.min_available >= 0,
        "available stock went to {}",
        log.min_available
    );

    // Every order settled.
    let mut by_status: BTreeMap<OrderStatus, usize> = BTreeMap::new();
    for (id, order) in &log.orders {
        let status = order.status.expect("created");
        assert!(
            matches!(status, OrderStatus::Confirmed | OrderStatus::Cancelled),
            "order {id} ended {status:?}"
        );
        *by_status.entry(status).or_default() += 1;
    }
    assert_eq!(by_status[&OrderStatus::Confirmed], WIDGET_STOCK as usize);
    assert_eq!(
        by_status[&OrderStatus::Cancelled],
        RACERS + DECLINED_CUSTOMERS + OVER_LIMIT - WIDGET_STOCK as usize
    );

    // Exactly the widget stock was sold, and only to racers.
    let widget = &log.inventory["widget"];
    assert_eq!(widget.committed, WIDGET_STOCK);
    assert_eq!(widget.available(), 0);
    for (id, order) in &log.orders {
        let reason = order.cancel_reason.clone();
        if id.starts_with("race-") {
            match order.status {
                Some(OrderStatus::Confirmed) => {}
                _ => assert_eq!(
                    reason,
                    Some(CancelReason::InsufficientStock {
                        sku: "widget".into()
                    }),
                    "{id}"
                ),
            }
        } else {
            // Declined payments cancel the order.
            assert_eq!(order.status, Some(OrderStatus::Cancelled), "{id}");
            assert!(
                matches!(reason, Some(CancelReason::PaymentDeclined { .. })),
                "{id}: {reason:?}"
            );
            assert_eq!(
                log.payments[id].status,
                Some(PaymentStatus::Declined),
                "{id}"
            );
        }
    }

    // Every reservation was committed or released: nothing is left held.
    for (sku, inventory) in &log.inventory {
        assert!(
            inventory.reservations.is_empty(),
            "{sku} still holds {:?}",
            inventory.reservations
        );
    }
    let confirmed_gizmo_units: u64 = log
        .orders
        .values()
        .filter(|o| o.status == Some(OrderStatus::Confirmed))
        .flat_map(|o| &o.lines)
        .filter(|l| l.sku == "gizmo")
        .map(|l| u64::from(l.quantity))
        .sum();
    assert_eq!(log.inventory["gizmo"].committed, confirmed_gizmo_units);
    assert_eq!(log.inventory["gold"].committed, 0);
    assert_eq!(log.inventory["gold"].available(), 10);

    // Confirmed means paid; a cancelled order keeps no money.
    for (id, order) in &log.orders {
        let payment = log.payments.get(id).and_then(|p| p.status);
        match order.status {
            Some(OrderStatus::Confirmed) => {
                assert_eq!(payment, Some(PaymentStatus::Captured), "{id}")
            }
            _ => assert!(
                !matches!(
                    payment,
                    Some(PaymentStatus::Authorized | PaymentStatus::Captured)
                ),
                "{id} keeps a payment {payment:?}"
            ),
        }
    }

    check_read_models(&fixture, &log).await;
    fixture.stop().await;
}

/// The event log folded by the aggregates themselves, plus what the read models should
/// show that no aggregate holds.
#[derive(Default)]
struct Log {
    orders: BTreeMap<String, Order>,
    order_positions: BTreeMap<String, Position>,
    inventory: BTreeMap<String, Inventory>,
    payments: BTreeMap<String, Payment>,
    products: BTreeMap<String, Product>,
    sales: BTreeMap<String, (u64, Money)>,
    min_available: i64,
}

fn fold<A: Aggregate>(map: &mut BTreeMap<String, A>, event: &RecordedEvent) {
    let id = event
        .stream
        .as_str()
        .split_once('-')
        .map(|(_, id)| id.to_owned())
        .expect("a shop stream has an id");
    let decoded: A::Event = Upcasters::new().decode(event).expect("decodes");
    let state = map.remove(&id).unwrap_or_default().evolve(&decoded);
    map.insert(id, state);
}

impl Log {
    async fn read(store: &dyn EventStore) -> Log {
        let mut log = Log::default();
        let mut counts: BTreeMap<String, [i64; 3]> = BTreeMap::new();
        let mut next = Position(1);
        loop {
            let page = store
                .read_all(next, 500, &ReadFilter::all())
                .await
                .expect("reads the log");
            if page.events.is_empty() {
                break;
            }
            for event in &page.events {
                log.apply(event, &mut counts);
            }
            next = page.next;
        }
        log
    }

    fn apply(&mut self, event: &RecordedEvent, counts: &mut BTreeMap<String, [i64; 3]>) {
        let decode = Upcasters::new();
        match event.stream.category() {
            c if c == Order::CATEGORY => {
                fold(&mut self.orders, event);
                let order: OrderEvent = decode.decode(event).expect("order event");
                match order {
                    OrderEvent::Created { order_id, .. } => {
                        self.order_positions.insert(order_id, event.position);
                    }
                    OrderEvent::Confirmed { total, .. } => {
                        let date = event.recorded_at.to_datetime().date();
                        let day = format!(
                            "{:04}-{:02}-{:02}",
                            date.year(),
                            u8::from(date.month()),
                            date.day()
                        );
                        let entry = self.sales.entry(day).or_default();
                        entry.0 += 1;
                        entry.1 = entry.1.checked_add(total).expect("revenue fits");
                    }
                    _ => {}
                }
            }
            c if c == Inventory::CATEGORY => {
                fold(&mut self.inventory, event);
                // Recount independently of the aggregate: received, reserved, committed.
                let inventory: InventoryEvent = decode.decode(event).expect("inventory event");
                let (sku, delta) = match inventory {
                    InventoryEvent::Received { sku, quantity } => (sku, [quantity as i64, 0, 0]),
                    InventoryEvent::Reserved { sku, quantity, .. } => {
                        (sku, [0, i64::from(quantity), 0])
                    }
                    InventoryEvent::Released { sku, quantity, .. } => {
                        (sku, [0, -i64::from(quantity), 0])
                    }
                    InventoryEvent::Committed { sku, quantity, .. } => {
                        (sku, [0, -i64::from(quantity), i64::from(quantity)])
                    }
                };
                let count = counts.entry(sku).or_default();
                for (c, d) in count.iter_mut().zip(delta) {
                    *c += d;
                }
                let [received, reserved, committed] = *count;
                self.min_available = self.min_available.min(received - reserved - committed);
                assert!(reserved >= 0, "negative reservations at {}", event.position);
            }
            c if c == Payment::CATEGORY => {
                fold(&mut self.payments, event);
                let _: PaymentEvent = decode.decode(event).expect("payment event");
            }
            c if c == Product::CATEGORY => {
                fold(&mut self.products, event);
                let _: ProductEvent = decode.decode(event).expect("product event");
            }
            other => panic!("unexpected category {other}"),
        }
    }
}

/// Every item of a listing, read in pages of a few items so that the cursors are used.
async fn all_pages<T, F, Fut>(mut read: F) -> Vec<T>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: Future<Output = Result<Page<T>, ShopError>>,
{
    let mut items = Vec::new();
    let mut cursor = None;
    loop {
        let page = read(PageRequest { cursor, limit: 3 })
            .await
            .expect("a page");
        assert!(page.items.len() <= 3);
        items.extend(page.items);
        match page.next {
            Some(next) => cursor = Some(next),
            None => return items,
        }
    }
}

async fn check_read_models(fixture: &Fixture, log: &Log) {
    let shop = &fixture.shop;

    // Order summaries, one by one.
    let mut customers: BTreeMap<String, Vec<(Position, String)>> = BTreeMap::new();
    for (id, order) in &log.orders {
        let view = shop.order(id, NOW, WAIT).await.expect("order view");
        assert_eq!(view.customer, order.customer, "{id}");
        assert_eq!(Some(view.status), order.status, "{id}");
        assert_eq!(view.total, order.total, "{id}");
        assert_eq!(view.cancel_reason, order.cancel_reason, "{id}");
        let lines: Vec<_> = view
            .lines
            .iter()
            .map(|l| (l.sku.clone(), l.quantity, l.unit_price, l.total))
            .collect();
        let expected: Vec<_> = order
            .lines
            .iter()
            .map(|l| (l.sku.clone(), l.quantity, l.unit_price, l.total().unwrap()))
            .collect();
        assert_eq!(lines, expected, "{id}");
        customers
            .entry(order.customer.clone())
            .or_default()
            .push((log.order_positions[id], id.clone()));
    }

    // Per customer, oldest first.
    for (customer, mut ids) in customers {
        ids.sort();
        let customer = &customer;
        let listed =
            all_pages(|page| async move { shop.customer_orders(customer, &page, NOW, WAIT).await })
                .await;
        let listed: Vec<_> = listed
            .into_iter()
            .map(|o| (o.id, o.status, o.total, o.lines as usize))
            .collect();
        let expected: Vec<_> = ids
            .into_iter()
            .map(|(_, id)| {
                let o = &log.orders[&id];
                (id, o.status.unwrap(), o.total, o.lines.len())
            })
            .collect();
        assert_eq!(listed, expected, "{customer}");
    }

    // The catalog and its stock.
    let catalog = all_pages(|page| async move { shop.products(&page, NOW, WAIT).await }).await;
    assert_eq!(catalog.len(), log.products.len());
    for (sku, product) in &log.products {
        let details = product.details.as_ref().expect("created");
        let inventory = &log.inventory[sku];
        let view = shop.product(sku, NOW, WAIT).await.expect("product view");
        assert_eq!(
            (view.name.as_str(), view.price),
            (details.name.as_str(), details.price)
        );
        assert_eq!(
            (view.available, view.reserved, view.on_hand),
            (
                inventory.available(),
                inventory.reserved(),
                inventory.on_hand()
            ),
            "{sku}"
        );
    }

    // Daily sales.
    let sales: BTreeMap<String, (u64, Money)> =
        all_pages(|page| async move { shop.daily_sales(&page, NOW, WAIT).await })
            .await
            .into_iter()
            .map(|d| (d.day, (d.orders, d.revenue)))
            .collect();
    assert_eq!(sales, log.sales);
    let revenue: u64 = sales.values().map(|(_, r)| r.0).sum();
    let confirmed_total: u64 = log
        .orders
        .values()
        .filter(|o| o.status == Some(OrderStatus::Confirmed))
        .map(|o| o.total.0)
        .sum();
    assert_eq!(revenue, confirmed_total);

    // Search.
    let hits = shop
        .search_products("widget", &PageRequest::first(10), NOW, WAIT)
        .await
        .expect("search")
        .items;
    let skus: Vec<_> = hits.iter().map(|h| h.sku.as_str()).collect();
    // The widget by name first, then the gizmo whose description mentions widgets.
    assert_eq!(skus, ["widget", "gizmo"]);
    for (sku, product) in &log.products {
        let name = &product.details.as_ref().expect("created").name;
        let hits = shop
            .search_products(name, &PageRequest::first(10), NOW, WAIT)
            .await
            .expect("search")
            .items;
        assert_eq!(
            hits.first().map(|h| h.sku.as_str()),
            Some(sku.as_str()),
            "{name}"
        );
    }
}
