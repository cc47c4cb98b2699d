//! The command and read side's scenarios, on the shop over the embedded store, wired as
//! `strata serve` wires it: shop commands end to end, a read-model rebuild, the lag from
//! a command to its read model, loading a long aggregate with and without a snapshot,
//! and the same queries with and without the Redis query cache.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{BenchError, Context as _, Result, ensure, failed};
use strata_core::{ExpectedVersion, Position, Version};
use strata_domain::{CommandContext, CommandHandler, HandlerOptions, MemorySnapshots};
use strata_projection::{
    ProcessManagers, Projections, QueryCache, RedisProjections, RunnerState, SqliteSnapshots,
};
use strata_shop::domain::{Inventory, InventoryCommand, InventoryEvent, Money};
use strata_shop::read_models::{
    CATALOG, Catalog, DAILY_SALES, DailySales, ORDERS, OrderSummaries, PRODUCT_SEARCH,
    ProductSearch,
};
use strata_shop::{FakePaymentProvider, PageRequest, Shop};
use strata_store::EventStore;
use strata_store_embedded::{EmbeddedStore, Options};
use tokio::time::Instant;

use crate::args::{
    LagArgs, LoadAggregateArgs, QueryCacheArgs, RebuildArgs, Shape, ShopCommandsArgs,
};
use crate::fixtures::{
    append_all, fixture_options, open_store, progress_printer, scratch, shop_event, shop_history,
    stream,
};
use crate::load::{closed_loop, paced};
use crate::probe::{SyncShape, segment_bytes};
use crate::report::{Ceiling, Probes, ScenarioResult};
use crate::stats::{Summary, rate};

/// How long a read model may take to show a command in the lag scenario.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a rebuild may take.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(3600);

/// The shop over a new embedded store, as `strata serve` sets it up.
struct Rig {
    dir: tempfile::TempDir,
    store: EmbeddedStore,
    handler: Arc<CommandHandler>,
    projections: Projections,
    processes: ProcessManagers,
    shop: Shop,
}

impl Rig {
    fn open(dir: &Path, what: &str) -> Result<Self> {
        let dir = scratch(dir, what)?;
        let store = open_store(&dir.path().join("data"), Options::default())?;
        let shared: Arc<dyn EventStore> = Arc::new(store.clone());
        let read = dir.path().join("read");
        let snapshots = SqliteSnapshots::open(read.join("snapshots.sqlite"))
            .context("cannot open the snapshot database")?;
        let handler = Arc::new(CommandHandler::new(shared.clone(), Arc::new(snapshots)));
        let projections = Projections::new(shared.clone(), read.join("models"));
        let processes = ProcessManagers::new(shared, read.join("processes"));
        let shop = Shop::new(
            handler.clone(),
            projections.clone(),
            &processes,
            Arc::new(FakePaymentProvider::default()),
        )
        .context("cannot set up the shop")?;
        Ok(Self {
            dir,
            store,
            handler,
            projections,
            processes,
            shop,
        })
    }

    /// The store's segment bytes per event so far (what the shop's events take on disk).
    async fn bytes_per_event(&self) -> Result<u64> {
        let events = self.store.head().await?.0;
        Ok(segment_bytes(self.store.dir())
            .div_ceil(events.max(1))
            .max(1))
    }

    /// Starts the read models and checkout, as the server does.
    fn start_read_side(&self) {
        self.projections.start();
        self.processes.start();
    }

    /// Creates `products` products with plenty of stock.
    async fn stock(&self, products: u64) -> Result<Position> {
        let mut last = Position::ZERO;
        for p in 0..products {
            let sku = sku(p);
            self.shop
                .create_product(
                    &sku,
                    &format!("Product {p}"),
                    "A useful thing, in blue",
                    Money(1250),
                    &CommandContext::new(),
                )
                .await
                .with_context(|| format!("cannot create the product {sku}"))?;
            last = self
                .shop
                .receive_stock(&sku, 1_000_000_000, &CommandContext::new())
                .await
                .with_context(|| format!("cannot receive stock of {sku}"))?
                .position;
        }
        Ok(last)
    }

    async fn close(self) -> Result<()> {
        self.projections.shutdown().await;
        self.processes.shutdown().await;
        self.store.close().await?;
        drop(self.dir);
        Ok(())
    }
}

fn sku(p: u64) -> String {
    format!("sku{p}")
}

/// One shop command of client `client`'s `seq`-th: opening an order, then adding a line
/// to it (each appends one event; adding a line also loads the product).
async fn shop_command(shop: &Shop, client: usize, seq: u64, products: u64) -> Result<Position> {
    let order = format!("c{client}-{}", seq / 2);
    let context = CommandContext::new();
    let outcome = if seq.is_multiple_of(2) {
        shop.create_order(&order, &format!("customer{client}"), &context)
            .await
            .with_context(|| format!("cannot create the order {order}"))?
    } else {
        let product = (client as u64 + seq / 2) % products;
        shop.add_line(&order, &sku(product), 1, &context)
            .await
            .with_context(|| format!("cannot add a line to the order {order}"))?
    };
    Ok(outcome.position)
}

/// Shop commands end to end (load, decide, durable append; one event each) from
/// concurrent clients. One result per client count, each on a new store.
pub(crate) async fn commands(
    dir: &Path,
    args: &ShopCommandsArgs,
    probes: &Probes,
) -> Result<Vec<ScenarioResult>> {
    let mut results = Vec::new();
    for &clients in &args.clients {
        let clients = clients.max(1);
        let rig = Rig::open(dir, "shop")?;
        rig.stock(args.products).await?;
        let window = Duration::from_secs_f64(args.seconds);
        let products = args.products;
        // The largest group: every client's command in one fdatasync.
        let planned = SyncShape {
            events_per_sync: clients as u64,
            record_bytes: rig.bytes_per_event().await?,
        };
        let bracket = probes.before(&rig.store, planned).await?;
        let outcome = closed_loop(clients, window, |client| {
            let shop = rig.shop.clone();
            move |seq| {
                let shop = shop.clone();
                async move {
                    shop_command(&shop, client, seq, products).await?;
                    Ok(1)
                }
            }
        })
        .await;
        let ceiling = bracket.after(&rig.store).await?;
        rig.close().await?;
        results.push(
            ScenarioResult::new(
                format!("shop_commands_{clients}"),
                Some(outcome.events_per_s()),
                &outcome.latency,
                "command",
            )
            .against(&Ceiling::Writes(ceiling))
            .with("commands_per_s", outcome.ops_per_s())
            .with("clients", clients)
            .with("seconds", window.as_secs_f64())
            .with("command_mix", "create_order, add_line")
            .with("errors", outcome.errors)
            .with("first_error", outcome.first_error),
        );
    }
    Ok(results)
}

/// Builds the shop's four read models from scratch over a log of `events` shop events
/// (written before anything is timed), all four at once as the server runs them.
pub(crate) async fn rebuild(
    dir: &Path,
    args: &RebuildArgs,
    _probes: &Probes,
) -> Result<ScenarioResult> {
    let scratch = scratch(dir, "rebuild")?;
    let store = open_store(&scratch.path().join("data"), fixture_options())?;
    let written = append_all(
        &store,
        shop_history(args.events, args.products),
        progress_printer("shop history", args.events),
    )
    .await?;
    let head = store.head().await?;
    let shared: Arc<dyn EventStore> = Arc::new(store.clone());
    let projections = Projections::new(shared, scratch.path().join("models"));
    let register = "cannot register the shop's read models";
    projections
        .register(Arc::new(OrderSummaries))
        .context(register)?;
    projections.register(Arc::new(Catalog)).context(register)?;
    projections
        .register(Arc::new(DailySales))
        .context(register)?;
    projections
        .register(Arc::new(ProductSearch))
        .context(register)?;

    let started = Instant::now();
    projections.start();
    let mut each = Vec::new();
    let waits = [ORDERS, CATALOG, DAILY_SALES, PRODUCT_SEARCH].map(|name| {
        let projections = projections.clone();
        async move {
            projections
                .wait_for(name, head, REBUILD_TIMEOUT)
                .await
                .with_context(|| format!("the read model {name} did not reach {head}"))?;
            // Live once its deferred indexes are built too: that is part of the rebuild.
            while !is_live(&projections, name) {
                ensure!(
                    started.elapsed() < REBUILD_TIMEOUT,
                    "the read model {name} reached {head} but did not go live"
                );
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            Ok::<_, BenchError>((name, started.elapsed()))
        }
    });
    for result in futures::future::join_all(waits).await {
        each.push(result?);
    }
    let elapsed = started.elapsed();
    projections.shutdown().await;
    store.close().await?;

    let mut result = ScenarioResult::new(
        "projection_rebuild",
        Some(rate(written as f64, elapsed)),
        &Summary::single(elapsed),
        "whole rebuild",
    )
    .against(&Ceiling::None(
        "four read models decode the log and write SQLite; no probe does the same",
    ))
    .with("events", written)
    .with("read_models", each.len())
    .with("seconds", elapsed.as_secs_f64());
    for (name, took) in each {
        result = result.with(&format!("{name}_seconds"), took.as_secs_f64());
    }
    Ok(result)
}

/// Whether the read model `name` says it is live (at the head, its indexes built).
fn is_live(projections: &Projections, name: &str) -> bool {
    projections
        .status()
        .iter()
        .any(|s| s.name == name && s.state == RunnerState::Live)
}

/// What one paced pair of commands measured.
struct LagSample {
    /// From when each command was due to when the read model had applied it.
    due_to_visible: [Duration; 2],
    /// From each command's acknowledgement to when the read model had applied it.
    ack_to_visible: [Duration; 2],
    /// Each command's own latency, from when it was due (or sent).
    command: [Duration; 2],
}

/// Commands paced at `rate` per second with the read models and checkout running; for
/// each, the time until the order-summaries read model has applied it.
pub(crate) async fn lag(dir: &Path, args: &LagArgs, probes: &Probes) -> Result<ScenarioResult> {
    let rig = Rig::open(dir, "lag")?;
    rig.start_read_side();
    let stocked = rig.stock(args.products).await?;
    rig.projections
        .wait_for(CATALOG, stocked, VISIBLE_TIMEOUT)
        .await
        .with_context(|| format!("the catalog did not reach {stocked}"))?;
    let window = Duration::from_secs_f64(args.seconds);
    let products = args.products;
    // Each paced operation is a pair: open an order, then add a line to it.
    let pairs_per_s = args.rate / 2.0;
    // Paced commands seldom share an fdatasync: the planned group is one event.
    let planned = SyncShape {
        events_per_sync: 1,
        record_bytes: rig.bytes_per_event().await?,
    };
    let bracket = probes.before(&rig.store, planned).await?;
    let outcome = paced(pairs_per_s, window, |n, due| {
        let shop = rig.shop.clone();
        let projections = rig.projections.clone();
        async move {
            let visible = |position: Position| {
                let projections = projections.clone();
                async move {
                    projections
                        .wait_for(ORDERS, position, VISIBLE_TIMEOUT)
                        .await
                        .with_context(|| format!("the orders did not reach {position}"))?;
                    Ok::<_, BenchError>(Instant::now())
                }
            };
            let created = shop_command(&shop, 0, 2 * n, products).await?;
            let acked = Instant::now();
            let (first, second) = tokio::join!(visible(created), async {
                let sent = Instant::now();
                let added = shop_command(&shop, 0, 2 * n + 1, products).await?;
                let acked = Instant::now();
                let seen = visible(added).await?;
                Ok::<_, BenchError>((sent, acked, seen))
            });
            let seen = first?;
            let (sent, acked2, seen2) = second?;
            Ok(LagSample {
                due_to_visible: [seen - due, seen2 - sent],
                ack_to_visible: [seen - acked, seen2 - acked2],
                command: [acked - due, acked2 - sent],
            })
        }
    })
    .await;
    let ceiling = bracket.after(&rig.store).await?;
    rig.close().await?;

    let mut due_to_visible = Vec::new();
    let mut ack_to_visible = Vec::new();
    let mut command = Vec::new();
    for sample in &outcome.results {
        due_to_visible.extend(sample.due_to_visible);
        ack_to_visible.extend(sample.ack_to_visible);
        command.extend(sample.command);
    }
    let commands = due_to_visible.len() as f64;
    let achieved = rate(commands, outcome.span.max(window));
    let lag = Summary::of(&mut due_to_visible);
    let after_ack = Summary::of(&mut ack_to_visible);
    let command = Summary::of(&mut command);
    Ok(ScenarioResult::new(
        "read_model_lag",
        Some(achieved),
        &lag,
        "command, from due to visible in the read model",
    )
    .against(&Ceiling::PacedWrites(ceiling))
    .with("commands_per_s", achieved)
    .with("offered_commands_per_s", args.rate)
    .with("commands_due", 2 * outcome.due)
    .with("seconds", window.as_secs_f64())
    .with("read_model", ORDERS)
    .with("ack_to_visible_p50_ms", after_ack.p50_ms)
    .with("ack_to_visible_p99_ms", after_ack.p99())
    .with("command_p50_ms", command.p50_ms)
    .with("command_p99_ms", command.p99())
    .with("errors", outcome.errors)
    .with("first_error", outcome.first_error))
}

/// Loads an inventory aggregate of `events` events of each asked shape: replaying all of
/// them (no snapshot store), and from its snapshot (the SQLite snapshot store the server
/// uses).
pub(crate) async fn load_aggregate(
    dir: &Path,
    args: &LoadAggregateArgs,
    _probes: &Probes,
) -> Result<Vec<ScenarioResult>> {
    let rig = Rig::open(dir, "load-aggregate")?;
    let shared: Arc<dyn EventStore> = Arc::new(rig.store.clone());
    // Without the aggregate cache: every load reads the store (and the snapshot store).
    let uncached = || HandlerOptions {
        cached_aggregates: 0,
        ..HandlerOptions::default()
    };
    let replaying =
        CommandHandler::new(shared, Arc::new(MemorySnapshots::new())).with_options(uncached());
    let from_snapshot = rig.handler.as_ref().clone().with_options(uncached());
    let mut results = Vec::new();
    for &shape in &args.shape {
        let id = shape.as_str();
        let name = stream(format!("inventory-{id}"));
        // All but the last event are written directly; the last goes through the
        // handler, which takes the snapshot.
        let history: Vec<_> = (0..args.events - 1)
            .map(|i| shop_event(&inventory_event(shape, id, i), &CommandContext::new()))
            .collect();
        for chunk in history.chunks(1000) {
            rig.store
                .append(&name, ExpectedVersion::Any, chunk.to_vec())
                .await?;
        }
        let receive = InventoryCommand::Receive {
            sku: id.to_owned(),
            quantity: 1,
        };
        rig.handler
            .handle::<Inventory>(id, &receive, &CommandContext::new())
            .await
            .map_err(|e| failed!("cannot receive stock: {e}"))?;

        let version = Version(args.events);
        for (with_snapshot, handler) in [(false, &replaying), (true, &from_snapshot)] {
            let snapshot = with_snapshot.then_some(version);
            // Answers the state and how many events the load folded onto it.
            let load = || async {
                let loaded = handler
                    .load::<Inventory>(id)
                    .await
                    .map_err(|e| failed!("cannot load {name}: {e}"))?;
                ensure!(
                    loaded.version == version && loaded.snapshot == snapshot,
                    "loaded {name} at version {} from snapshot {:?}, expected {} from {:?}",
                    loaded.version,
                    loaded.snapshot,
                    version,
                    snapshot
                );
                let folded = loaded.version.0 - loaded.snapshot.map_or(0, |v| v.0);
                Ok((loaded.state, folded))
            };
            let mut state_bytes = 0;
            let mut snapshot_bytes = 0;
            let mut folded = 0;
            for _ in 0..3 {
                let (state, events) = load().await?;
                state_bytes = serde_json::to_vec(&state)
                    .context("cannot encode the loaded state")?
                    .len();
                snapshot_bytes = strata_domain::encode_state(&state)
                    .map_err(|e| failed!("cannot encode the loaded state: {e}"))?
                    .len();
                folded = events;
            }
            let mut samples = Vec::with_capacity(args.loads as usize);
            let started = Instant::now();
            for _ in 0..args.loads {
                let sent = Instant::now();
                load().await?;
                samples.push(sent.elapsed());
            }
            let elapsed = started.elapsed();
            let loads_per_s = rate(f64::from(args.loads), elapsed);
            let scenario = if with_snapshot {
                format!("load_aggregate_{id}_snapshot")
            } else {
                format!("load_aggregate_{id}")
            };
            // Only events folded count: a load from a snapshot that is up to date folds
            // none, and its figure is the latency alone.
            let events_per_s = (folded > 0).then_some(loads_per_s * folded as f64);
            results.push(
                ScenarioResult::new(scenario, events_per_s, &Summary::of(&mut samples), "load")
                    .against(&Ceiling::None(
                        "loading decodes and folds in memory; the stream is in the page cache",
                    ))
                    .with("aggregate_events", args.events)
                    .with("events_folded_per_load", folded)
                    .with("snapshot_version", snapshot.map(|v| v.0))
                    .with("shape", id)
                    .with("state_json_bytes", state_bytes)
                    .with("state_snapshot_bytes", snapshot_bytes)
                    .with("loads", args.loads)
                    .with("loads_per_s", loads_per_s),
            );
        }
    }
    rig.close().await?;
    Ok(results)
}

/// The `i`-th event of a sku's history of `shape`: stock received each time, or stock
/// received, reserved for an order and committed in turn.
fn inventory_event(shape: Shape, sku: &str, i: u64) -> InventoryEvent {
    let order_id = format!("o{}", i / 3);
    let step = match shape {
        Shape::Receipts => 0,
        Shape::Checkout => i % 3,
    };
    match step {
        0 => InventoryEvent::Received {
            sku: sku.to_owned(),
            quantity: 1,
        },
        1 => InventoryEvent::Reserved {
            sku: sku.to_owned(),
            order_id,
            quantity: 1,
        },
        _ => InventoryEvent::Committed {
            sku: sku.to_owned(),
            order_id,
            quantity: 1,
        },
    }
}

/// The queries `query-cache` measures, each the same way with and without the cache.
#[derive(Debug, Clone, Copy)]
enum HotQuery {
    /// The first page of the catalog (100 products with their stock), as `GET
    /// /shop/products` answers it by default.
    CatalogPage,
    /// One product with its stock, as `GET /shop/products/{sku}` answers it.
    Product,
    /// The first page of a product search whose word every product's description
    /// holds (FTS5, BM25-ranked), as `GET /shop/products?q=blue` answers it.
    Search,
}

impl HotQuery {
    fn name(self) -> &'static str {
        match self {
            HotQuery::CatalogPage => "catalog_page",
            HotQuery::Product => "product",
            HotQuery::Search => "search",
        }
    }

    /// Asks the query once; the products answered count as its "events".
    async fn ask(self, shop: &Shop, client: usize, seq: u64, products: u64) -> Result<u64> {
        match self {
            HotQuery::CatalogPage => {
                let page = shop
                    .products(&PageRequest::first(100), None, VISIBLE_TIMEOUT)
                    .await
                    .map_err(|e| failed!("cannot read the catalog: {e}"))?;
                Ok(page.items.len() as u64)
            }
            HotQuery::Product => {
                let sku = sku((client as u64 + seq) % products);
                shop.product(&sku, None, VISIBLE_TIMEOUT)
                    .await
                    .map_err(|e| failed!("cannot read the product {sku}: {e}"))?;
                Ok(1)
            }
            HotQuery::Search => {
                let page = shop
                    .search_products("blue", &PageRequest::first(100), None, VISIBLE_TIMEOUT)
                    .await
                    .map_err(|e| failed!("cannot search the products: {e}"))?;
                Ok(page.items.len() as u64)
            }
        }
    }
}

/// The same shop queries from concurrent clients, answered by the SQLite read model
/// (uncached) and through the Redis query cache (cached, after a warm-up that fills
/// it), with nothing written meanwhile. One result per query, the cached run's, with
/// the uncached run beside it and `ratio_to_uncached`.
pub(crate) async fn query_cache(
    dir: &Path,
    args: &QueryCacheArgs,
    _probes: &Probes,
) -> Result<Vec<ScenarioResult>> {
    let rig = Rig::open(dir, "query-cache")?;
    rig.start_read_side();
    let stocked = rig.stock(args.products).await?;
    rig.projections
        .wait_for(CATALOG, stocked, VISIBLE_TIMEOUT)
        .await
        .with_context(|| format!("the catalog did not reach {stocked}"))?;
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let prefix = format!(
        "strata-bench:{}-{}:",
        std::process::id(),
        since_epoch.as_nanos()
    );
    let shared: Arc<dyn EventStore> = Arc::new(rig.store.clone());
    let redis = RedisProjections::new(shared, &args.redis, &prefix)
        .with_context(|| format!("cannot use Redis at {}", args.redis))?;
    let cached = rig
        .shop
        .clone()
        .use_redis(&redis)
        .context("cannot set up the query cache")?;
    redis.start();
    let measured = measure_cache(&rig, &cached, &redis, stocked, args).await;
    redis.shutdown().await;
    let removed = redis.remove_all().await;
    rig.close().await?;
    removed.with_context(|| format!("cannot remove the keys under {prefix}"))?;
    measured
}

async fn measure_cache(
    rig: &Rig,
    cached: &Shop,
    redis: &RedisProjections,
    stocked: Position,
    args: &QueryCacheArgs,
) -> Result<Vec<ScenarioResult>> {
    redis
        .wait_for(QueryCache::NAME, stocked, VISIBLE_TIMEOUT)
        .await
        .with_context(|| format!("the query cache did not reach {stocked}"))?;
    let window = Duration::from_secs_f64(args.seconds);
    let clients = args.clients as usize;
    let products = args.products;
    let mut results = Vec::new();
    for query in [HotQuery::CatalogPage, HotQuery::Product, HotQuery::Search] {
        let run = |shop: Shop| {
            closed_loop(clients, window, move |client| {
                let shop = shop.clone();
                move |seq| {
                    let shop = shop.clone();
                    async move { query.ask(&shop, client, seq, products).await }
                }
            })
        };
        let uncached = run(rig.shop.clone()).await;
        let before = cached.cache_stats().unwrap_or_default();
        let hot = run(cached.clone()).await;
        let after = cached.cache_stats().unwrap_or_default();
        results.push(
            ScenarioResult::new(
                format!("query_cache_{}", query.name()),
                None,
                &hot.latency,
                "query, answered through the cache",
            )
            .against(&Ceiling::None(
                "the same query answered by the SQLite read model is the reference: \
                 ratio_to_uncached",
            ))
            .with("queries_per_s", hot.ops_per_s())
            .with("uncached_queries_per_s", uncached.ops_per_s())
            .with(
                "ratio_to_uncached",
                crate::report::ratio(hot.ops_per_s(), uncached.ops_per_s()),
            )
            .with("uncached_p50_ms", uncached.latency.p50())
            .with("uncached_p99_ms", uncached.latency.p99())
            .with(
                "products_per_answer",
                match query {
                    HotQuery::CatalogPage | HotQuery::Search => products.min(100),
                    HotQuery::Product => 1,
                },
            )
            .with("cache_hits", after.hits - before.hits)
            .with("cache_misses", after.misses - before.misses)
            .with("clients", clients)
            .with("seconds", window.as_secs_f64())
            .with("errors", hot.errors + uncached.errors)
            .with("first_error", hot.first_error.or(uncached.first_error)),
        );
    }
    Ok(results)
}
