//! The shop's read models in PostgreSQL answer exactly what the SQLite ones answer for
//! the same events, resume after a restart from their checkpoint without skipping or
//! repeating an event, and rank searches with PostgreSQL's full-text search. Needs
//! `STRATA_TEST_POSTGRES_URL`; each test makes a database of its own and drops it.

use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use strata_core::Position;
use strata_projection::tokio_postgres::{self, Client, NoTls};
use strata_projection::{PostgresProjections, ProcessManagers};
use strata_shop::domain::Money;
use strata_shop::read_models::{CATALOG, DAILY_SALES, ORDERS, PRODUCT_SEARCH};
use strata_shop::{FakePaymentProvider, PageRequest, Shop, ShopError};
use tempfile::TempDir;

use crate::support::{Fixture, SETTLE, ctx};

const WAIT: Duration = Duration::from_secs(10);

/// A database made for one test, dropped (with its connections) when the test ends.
struct Database {
    admin: tokio_postgres::Config,
    config: tokio_postgres::Config,
    name: String,
}

impl Database {
    async fn create(test: &str) -> Option<Self> {
        let url = match std::env::var("STRATA_TEST_POSTGRES_URL") {
            Ok(url) if !url.trim().is_empty() => url,
            _ => {
                println!("skipped {test}: STRATA_TEST_POSTGRES_URL is unset");
                return None;
            }
        };
        let admin = tokio_postgres::Config::from_str(&url).expect("a PostgreSQL URL");
        let name = format!("strata_shop_test_{}", uuid::Uuid::new_v4().simple());
        connect(&admin)
            .await
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create a test database");
        let mut config = admin.clone();
        config.dbname(&name);
        Some(Self {
            admin,
            config,
            name,
        })
    }
}

impl Drop for Database {
    fn drop(&mut self) {
        let admin = self.admin.clone();
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            runtime.block_on(async {
                let _ = connect(&admin)
                    .await
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await;
            });
        })
        .join();
    }
}

async fn connect(config: &tokio_postgres::Config) -> Client {
    let (client, connection) = config.connect(NoTls).await.expect("connect to PostgreSQL");
    tokio::spawn(connection);
    client
}

/// A second shop over the fixture's log with its read models in PostgreSQL. Its own
/// checkout is registered but never started: the fixture's checkout acts, once.
struct PgShop {
    shop: Shop,
    projections: PostgresProjections,
    _idle: TempDir,
}

impl PgShop {
    async fn open(fixture: &Fixture, db: &Database) -> Self {
        let projections =
            PostgresProjections::connect_with(fixture.store.clone(), db.config.clone())
                .await
                .expect("a read store");
        let idle = tempfile::tempdir().expect("a temporary directory");
        let processes = ProcessManagers::new(fixture.store.clone(), idle.path());
        let shop = Shop::on_postgres(
            fixture.shop.handler().clone(),
            projections.clone(),
            &processes,
            Arc::new(FakePaymentProvider::default()),
        )
        .await
        .expect("the shop registers on PostgreSQL");
        projections.start();
        Self {
            shop,
            projections,
            _idle: idle,
        }
    }

    async fn caught_up(&self, head: Position) {
        for name in [ORDERS, CATALOG, DAILY_SALES, PRODUCT_SEARCH] {
            self.projections
                .wait_for(name, head, SETTLE)
                .await
                .unwrap_or_else(|e| panic!("{name} did not catch up on PostgreSQL: {e}"));
        }
    }
}

/// Products, stock and orders in every state, settled by checkout.
async fn shop_day(shop: &Shop) {
    let products = [
        ("mug-blue", "Blue mug", "Stoneware mug, 300 ml", 1200),
        (
            "mug-tall",
            "Tall coffee mug",
            "A mug for long mornings",
            1500,
        ),
        ("cup", "Espresso cup", "Small; pairs with the blue mug", 900),
        ("teapot", "Teapot", "Cast iron, one litre", 4500),
        ("Zebra", "Striped coaster", "Cork", 300),
    ];
    for (sku, name, description, price) in products {
        shop.create_product(sku, name, description, Money(price), &ctx())
            .await
            .unwrap();
        shop.receive_stock(sku, 10, &ctx()).await.unwrap();
    }
    shop.change_price("teapot", Money(3900), &ctx())
        .await
        .unwrap();
    for (order, customer, lines) in [
        ("o-1", "ada", &[("mug-blue", 2), ("cup", 1)][..]),
        ("o-2", "ada", &[("teapot", 1)][..]),
        ("o-3", "bob", &[("mug-tall", 3), ("Zebra", 4)][..]),
        ("o-4", "ada", &[("cup", 20)][..]),
        ("o-5", "bob", &[("mug-blue", 1)][..]),
    ] {
        shop.create_order(order, customer, &ctx()).await.unwrap();
        for (sku, quantity) in lines {
            shop.add_line(order, sku, *quantity, &ctx()).await.unwrap();
        }
    }
    shop.remove_line("o-3", "Zebra", &ctx()).await.unwrap();
    let mut placed = Position::ZERO;
    for order in ["o-1", "o-2", "o-3", "o-4"] {
        placed = shop.place(order, &ctx()).await.unwrap().position;
    }
    // o-4 asks for more cups than there are: checkout cancels it. o-5 stays a draft.
    shop.settled_order("o-1", Some(placed), SETTLE)
        .await
        .unwrap();
    shop.ship("o-1", &ctx()).await.unwrap();
    shop.cancel("o-5", &ctx()).await.unwrap();
}

/// Every page of a listing, read `limit` at a time through `page`.
async fn all_pages<T, F, Fut>(limit: usize, mut page: F) -> Vec<Vec<T>>
where
    F: FnMut(PageRequest) -> Fut,
    Fut: std::future::Future<Output = Result<strata_shop::Page<T>, ShopError>>,
{
    let mut pages = Vec::new();
    let mut request = PageRequest::first(limit);
    loop {
        let answer = page(request.clone()).await.unwrap();
        pages.push(answer.items);
        match answer.next {
            Some(next) => request.cursor = Some(next),
            None => return pages,
        }
        assert!(pages.len() < 100, "a listing that never ends");
    }
}

/// Asserts that both shops answer every query the same.
async fn same_answers(sqlite: &Shop, pg: &Shop) {
    for id in ["o-1", "o-2", "o-3", "o-4", "o-5"] {
        let (a, b) = (
            sqlite.order(id, None, WAIT).await.unwrap(),
            pg.order(id, None, WAIT).await.unwrap(),
        );
        assert_eq!(a, b, "order {id}");
    }
    assert!(matches!(
        pg.order("o-9", None, WAIT).await,
        Err(ShopError::NotFound { .. })
    ));
    for customer in ["ada", "bob", "nobody"] {
        let a = all_pages(2, |p| async move {
            sqlite.customer_orders(customer, &p, None, WAIT).await
        })
        .await;
        let b = all_pages(2, |p| async move {
            pg.customer_orders(customer, &p, None, WAIT).await
        })
        .await;
        assert_eq!(a, b, "orders of {customer}");
    }
    let a = all_pages(2, |p| async move { sqlite.orders(&p, None, WAIT).await }).await;
    let b = all_pages(2, |p| async move { pg.orders(&p, None, WAIT).await }).await;
    assert!(a.len() >= 2, "the orders are listed");
    assert_eq!(a, b, "every order, newest first");
    let a = all_pages(2, |p| async move { sqlite.products(&p, None, WAIT).await }).await;
    let b = all_pages(2, |p| async move { pg.products(&p, None, WAIT).await }).await;
    assert_eq!(a, b, "the catalog");
    for sku in ["mug-blue", "teapot", "Zebra"] {
        assert_eq!(
            sqlite.product(sku, None, WAIT).await.unwrap(),
            pg.product(sku, None, WAIT).await.unwrap(),
            "product {sku}"
        );
    }
    assert!(matches!(
        pg.product("nope", None, WAIT).await,
        Err(ShopError::NotFound { .. })
    ));
    let a = all_pages(
        1,
        |p| async move { sqlite.daily_sales(&p, None, WAIT).await },
    )
    .await;
    let b = all_pages(1, |p| async move { pg.daily_sales(&p, None, WAIT).await }).await;
    assert_eq!(a, b, "daily sales");
    for q in [
        "mug",
        "blue mug",
        "mu",
        "cup",
        "cast iron",
        "nothing",
        "",
        "  & | ! :* ",
    ] {
        let hits = |pages: Vec<Vec<strata_shop::read_models::SearchHit>>| {
            pages
                .into_iter()
                .map(|page| {
                    page.into_iter()
                        .map(|h| (h.sku, h.name, h.description, h.price))
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>()
        };
        let a = hits(
            all_pages(1, |p| async move {
                sqlite.search_products(q, &p, None, WAIT).await
            })
            .await,
        );
        let b = hits(
            all_pages(
                1,
                |p| async move { pg.search_products(q, &p, None, WAIT).await },
            )
            .await,
        );
        assert_eq!(a, b, "search {q:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_read_models_answer_the_same_on_postgresql_as_on_sqlite() {
    let Some(db) = Database::create("shop read models on postgres").await else {
        return;
    };
    let fixture = Fixture::start();
    let pg = PgShop::open(&fixture, &db).await;
    shop_day(&fixture.shop).await;
    fixture.settle().await;
    let head = fixture.read_models_caught_up().await;
    pg.caught_up(head).await;
    same_answers(&fixture.shop, &pg.shop).await;

    // A consistency token is waited for on PostgreSQL too.
    let before = pg.shop.product("cup", None, WAIT).await.unwrap();
    let received = fixture.shop.receive_stock("cup", 5, &ctx()).await.unwrap();
    let cup = pg
        .shop
        .product("cup", Some(received.position), WAIT)
        .await
        .unwrap();
    assert_eq!(cup.on_hand, before.on_hand + 5);
    let cup_now = fixture
        .shop
        .product("cup", Some(received.position), WAIT)
        .await
        .unwrap();
    assert_eq!(cup, cup_now);
    pg.projections.shutdown().await;
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_read_store_resumes_from_its_checkpoint_without_skipping_or_repeating() {
    let Some(db) = Database::create("shop read models restart on postgres").await else {
        return;
    };
    let fixture = Fixture::start();
    let first = PgShop::open(&fixture, &db).await;
    shop_day(&fixture.shop).await;
    fixture.settle().await;
    let head = fixture.read_models_caught_up().await;
    first.caught_up(head).await;
    first.projections.shutdown().await;
    let stopped_at = first
        .projections
        .status()
        .into_iter()
        .find(|s| s.name == CATALOG)
        .unwrap()
        .checkpoint;
    drop(first);

    // Stock counts add up event by event: a skipped or repeated receipt shows.
    for sku in ["mug-blue", "cup", "teapot"] {
        fixture.shop.receive_stock(sku, 7, &ctx()).await.unwrap();
    }
    let head = fixture.read_models_caught_up().await;
    let second = PgShop::open(&fixture, &db).await;
    let resumed = second
        .projections
        .status()
        .into_iter()
        .find(|s| s.name == CATALOG)
        .unwrap();
    assert!(
        resumed.checkpoint >= stopped_at && resumed.generation == 1,
        "the restarted store resumes its own schema from its checkpoint: {resumed:?}"
    );
    second.caught_up(head).await;
    same_answers(&fixture.shop, &second.shop).await;
    second.projections.shutdown().await;
    fixture.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_ranks_name_matches_first_with_postgresql_full_text_search() {
    let Some(db) = Database::create("shop search on postgres").await else {
        return;
    };
    let fixture = Fixture::start();
    let pg = PgShop::open(&fixture, &db).await;
    let shop = &fixture.shop;
    shop.create_product(
        "saucer",
        "Saucer",
        "Goes under a mug or a cup",
        Money(500),
        &ctx(),
    )
    .await
    .unwrap();
    shop.create_product("mug", "Mug", "Plain", Money(900), &ctx())
        .await
        .unwrap();
    let last = shop
        .create_product("jug", "Milk jug", "Pours", Money(1100), &ctx())
        .await
        .unwrap();
    let search = |q: &'static str| {
        let shop = pg.shop.clone();
        async move {
            shop.search_products(q, &PageRequest::first(10), Some(last.position), WAIT)
                .await
                .unwrap()
                .items
        }
    };
    let skus = |hits: Vec<strata_shop::read_models::SearchHit>| {
        hits.into_iter().map(|h| h.sku).collect::<Vec<_>>()
    };
    let mug = search("mug").await;
    assert_eq!(
        skus(mug.clone()),
        ["mug", "saucer"],
        "the name match ranks first"
    );
    assert!(mug[0].score > mug[1].score, "{mug:?}");
    assert_eq!(
        skus(search("MU").await),
        ["mug", "saucer"],
        "prefixes, any case"
    );
    assert_eq!(
        skus(search("milk pou").await),
        ["jug"],
        "every word must match"
    );
    assert!(search("mug tea").await.is_empty());
    assert!(
        search("!&|:*()'").await.is_empty(),
        "no query syntax gets through"
    );

    let client = connect(&db.config).await;
    let index: String = client
        .query_one(
            "SELECT indexdef FROM pg_indexes WHERE indexname = 'search_products_document'",
            &[],
        )
        .await
        .expect("the search index exists")
        .get(0);
    assert!(index.contains("USING gin"), "{index}");
    pg.projections.shutdown().await;
    fixture.stop().await;
}
