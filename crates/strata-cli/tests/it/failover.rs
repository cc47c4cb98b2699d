//! Three `strata serve --store postgres://...` processes on one database: the checkout
//! process manager runs on the one holding its lease; when that process is killed
//! (SIGKILL) while orders keep arriving at the others, another takes over within seconds, every order completes checkout,
//! and the log holds each of checkout's effects exactly once per order (nothing skipped,
//! nothing acted on twice). Needs `STRATA_TEST_POSTGRES_URL`; says it is skipped without
//! it. Runs in a database made for it and dropped after.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::support::{
    Served, TestDatabase, http_ok as ok, http_request as request, pg_rows as query, postgres_url,
};
use serde_json::{Value, json};

/// The orders driven through checkout; the holder is killed after a quarter of them.
const ORDERS: usize = 24;

/// The pause between two orders, so that they keep arriving through the takeover.
const PACE: Duration = Duration::from_millis(200);

/// The checkout process manager's name.
const CHECKOUT: &str = "shop_checkout";

/// A `strata serve` node, killed when dropped.
pub(crate) struct Server {
    pub(crate) node: String,
    pub(crate) served: Served,
}

fn serve(data_dir: &Path, store: &str, node: &str) -> Server {
    serve_with(data_dir, store, node, &[])
}

/// `strata serve` on `store` as `node`, with `more` arguments; not waited for.
pub(crate) fn serve_with(data_dir: &Path, store: &str, node: &str, more: &[&str]) -> Server {
    let mut args = vec!["--store", store, "--node-id", node];
    args.extend_from_slice(more);
    Server {
        node: node.to_owned(),
        served: Served::spawn(data_dir, &args, &[]),
    }
}

pub(crate) fn wait_healthy(server: &Server) {
    server
        .served
        .wait_healthy(Duration::from_secs(30), &server.node);
}

/// The checkout process manager's status on `server`, if it answers.
fn checkout_status(server: &Server) -> Option<Value> {
    let (status, body) = request(server.served.addr, "GET", "/projections", None)?;
    if status != 200 {
        return None;
    }
    body["projections"]
        .as_array()?
        .iter()
        .find(|p| p["kind"] == "process_manager" && p["name"] == CHECKOUT)
        .cloned()
}

/// The node holding the checkout lease, as `server` sees it while holding it.
fn holds_checkout(server: &Server) -> bool {
    checkout_status(server).is_some_and(|s| s["lease"]["held_here"] == true)
}

/// Creates, adds a line to and places order `id` through `addr`.
fn place_order(addr: SocketAddr, id: &str) {
    ok(
        addr,
        "POST",
        &format!("/shop/orders/{id}"),
        Some(&json!({"customer": "ann"})),
    );
    ok(
        addr,
        "POST",
        &format!("/shop/orders/{id}/lines"),
        Some(&json!({"sku": "mug", "quantity": 1})),
    );
    ok(addr, "POST", &format!("/shop/orders/{id}/place"), None);
}

#[test]
fn checkout_runs_on_one_server_and_another_takes_over_when_it_is_killed() {
    let Some(url) = postgres_url("the failover test") else {
        return;
    };
    let started = Instant::now();
    let database = TestDatabase::create(&url);
    let store_url = database.url().to_owned();

    let scratch = tempfile::tempdir().expect("a temporary directory");
    let mut servers: Vec<Server> = (1..=3)
        .map(|n| {
            serve(
                &scratch.path().join(format!("node-{n}")),
                &store_url,
                &format!("node-{n}"),
            )
        })
        .collect();
    servers.iter().for_each(wait_healthy);
    let first = servers[0].served.addr;
    ok(
        first,
        "POST",
        "/shop/products/mug",
        Some(&json!({"name": "Blue mug", "description": "a blue ceramic mug", "price": 1250})),
    );
    ok(
        first,
        "POST",
        "/shop/inventory/mug/receive",
        Some(&json!({"quantity": 1000})),
    );

    let ids: Vec<String> = (1..=ORDERS).map(|i| format!("f{i}")).collect();
    place_order(first, &ids[0]);
    let deadline = Instant::now() + Duration::from_secs(15);
    let holder = loop {
        if let Some(index) = servers.iter().position(holds_checkout) {
            break index;
        }
        assert!(Instant::now() < deadline, "no server took checkout's lease");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Orders keep arriving at the other servers, before, during and after the kill.
    let others: Vec<SocketAddr> = (0..servers.len())
        .filter(|&i| i != holder)
        .map(|i| servers[i].served.addr)
        .collect();
    let placed = Arc::new(AtomicUsize::new(1));
    let driver = {
        let ids = ids.clone();
        let placed = placed.clone();
        std::thread::spawn(move || {
            for (i, id) in ids.iter().enumerate().skip(1) {
                place_order(others[i % others.len()], id);
                placed.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(PACE);
            }
        })
    };
    // Kill the holder of checkout's lease while it works on them.
    while placed.load(Ordering::SeqCst) < ORDERS / 4 {
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut killed = servers.remove(holder);
    killed
        .served
        .child
        .kill()
        .expect("SIGKILL the lease holder");
    killed
        .served
        .child
        .wait()
        .expect("the killed server is reaped");
    let killed_at = Instant::now();
    let at_kill = placed.load(Ordering::SeqCst);

    let taken_over = loop {
        if let Some(server) = servers.iter().find(|s| holds_checkout(s)) {
            break (server.node.clone(), killed_at.elapsed());
        }
        assert!(
            killed_at.elapsed() < Duration::from_secs(20),
            "no server took checkout over within 20 s of {} being killed",
            killed.node
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    println!(
        "{} took checkout over {} ms after {} was killed with {at_kill} of {ORDERS} orders placed",
        taken_over.0,
        taken_over.1.as_millis(),
        killed.node
    );
    driver.join().expect("every order was placed");
    assert!(
        taken_over.1 < Duration::from_secs(10),
        "the takeover took {:?}",
        taken_over.1
    );

    // Every order completes checkout, seen from each surviving server's read models.
    for id in &ids {
        for server in &servers {
            let order = ok(
                server.served.addr,
                "GET",
                &format!("/shop/orders/{id}?settled=true&timeout_ms=15000"),
                None,
            );
            assert_eq!(
                order["status"], "confirmed",
                "order {id} on {}: {order}",
                server.node
            );
        }
    }

    // Checkout comes to rest: its checkpoint, stored once for all servers, reaches the
    // head, with nothing left to send (it commits the reservations after confirming).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let head = query(&store_url, "SELECT max(position) FROM strata.events")[0][0].clone();
        let stored = query(
            &store_url,
            "SELECT position, (SELECT count(*) FROM strata_process.outbox WHERE process = 'shop_checkout')
               FROM strata_process.checkpoints WHERE process = 'shop_checkout'",
        );
        if stored[0][0] == head && stored[0][1] == "0" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "checkout's checkpoint and outbox {stored:?} never reached the head {head}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Each of checkout's effects is in the log exactly once per order, and nothing
    // compensated: no event was skipped and no command acted on twice.
    let rows = query(
        &store_url,
        "SELECT type,
                coalesce(convert_from(data, 'UTF8')::jsonb->>'order_id',
                         substring(stream from position('-' in stream) + 1)),
                count(*)
           FROM strata.events
          WHERE category IN ('order', 'payment', 'inventory')
          GROUP BY 1, 2",
    );
    let counts: BTreeMap<(String, String), u64> = rows
        .into_iter()
        .map(|row| ((row[0].clone(), row[1].clone()), row[2].parse().unwrap()))
        .collect();
    for id in &ids {
        for effect in [
            "OrderPlaced",
            "StockReserved",
            "PaymentAuthorized",
            "PaymentCaptured",
            "OrderConfirmed",
            "ReservationCommitted",
        ] {
            assert_eq!(
                counts.get(&(effect.to_owned(), id.clone())).copied(),
                Some(1),
                "{effect} of order {id}: {counts:?}"
            );
        }
    }
    for compensation in [
        "OrderCancelled",
        "ReservationReleased",
        "PaymentVoided",
        "PaymentRefunded",
    ] {
        assert!(
            !counts.keys().any(|(kind, _)| kind == compensation),
            "nothing was compensated: {counts:?}"
        );
    }
    drop(servers);
    drop(database);
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "the failover test took {:?}",
        started.elapsed()
    );
}
