//! `strata serve --redis redis://...`: the shop's catalog kept in Redis and its hot
//! queries cached there, listed in `/projections` and answering `after=` through the
//! cache. Needs `STRATA_TEST_REDIS_URL`; says it is skipped without it. Works under a
//! key prefix of its own, removed after.

use std::path::Path;

use crate::support::{Served, http_ok as ok, http_request};
use serde_json::json;

fn serve(data_dir: &Path, redis: &str, prefix: &str) -> Served {
    Served::start(data_dir, &["--redis", redis, "--redis-prefix", prefix], &[])
}

/// Removes every key under `prefix`.
fn clean(url: &str, prefix: &str) {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_connection().unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query(&mut conn)
        .unwrap();
    if !keys.is_empty() {
        redis::cmd("DEL").arg(&keys).exec(&mut conn).unwrap();
    }
}

#[test]
fn serve_keeps_the_catalog_in_redis_and_answers_after_through_the_cache() {
    let url = match std::env::var("STRATA_TEST_REDIS_URL") {
        Ok(url) if !url.trim().is_empty() => url,
        _ => {
            println!("skipped serve with redis: STRATA_TEST_REDIS_URL is unset");
            return;
        }
    };
    let prefix = format!("strata-test:{}:", uuid::Uuid::new_v4().simple());
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let server = serve(scratch.path(), &url, &prefix);
    let addr = server.addr;
    ok(
        addr,
        "POST",
        "/shop/products/mug",
        Some(&json!({"name": "Blue mug", "description": "a blue ceramic mug", "price": 1250})),
    );
    let receive = |quantity: u64| {
        ok(
            addr,
            "POST",
            "/shop/inventory/mug/receive",
            Some(&json!({"quantity": quantity})),
        )["position"]
            .as_u64()
            .expect("a consistency token")
    };
    let first = receive(5);
    let product = |after: u64| {
        ok(
            addr,
            "GET",
            &format!("/shop/products/mug?after={after}"),
            None,
        )
    };
    assert_eq!(product(first)["available"], 5);
    assert_eq!(product(first)["available"], 5);
    // A later write: the cached answer is older than `after` and is not served.
    let second = receive(3);
    assert_eq!(product(second)["available"], 8);

    let runners = ok(addr, "GET", "/projections", None);
    let text = runners.to_string();
    for name in ["shop_catalog", "shop_catalog_redis", "query_cache"] {
        assert!(text.contains(&format!("\"{name}\"")), "{name} in {text}");
    }
    let answer = http_request(
        addr,
        "POST",
        "/projections/shop_catalog_redis/rebuild",
        None,
    );
    assert!(
        matches!(answer, Some((409, _))),
        "a Redis model is not rebuilt in place: {answer:?}"
    );
    drop(server);
    clean(&url, &prefix);
}
