//! `strata serve --store postgres://...`: the server runs on PostgreSQL, and what it
//! acknowledged is in the database, served again by a second server with an empty data
//! directory (its read models rebuilt from the database). With `--read-store
//! postgres://...` the shop's read models and their checkpoints live in PostgreSQL too,
//! with either event store. Needs `STRATA_TEST_POSTGRES_URL`;
//! says it is skipped without it. Runs in a database made for it and dropped after.

use std::path::Path;

use crate::support::{Served, TestDatabase, http_ok as ok, pg_value as query, postgres_url};
use serde_json::json;

fn serve(data_dir: &Path, store: &str) -> Served {
    Served::start(data_dir, &["--store", store], &[])
}

#[test]
fn serve_runs_on_postgres_and_a_second_server_sees_what_the_first_acknowledged() {
    let Some(url) = postgres_url("serve on postgres") else {
        return;
    };
    let database = TestDatabase::create(&url);
    let store_url = database.url().to_owned();

    let scratch = tempfile::tempdir().expect("a temporary directory");
    let first = serve(&scratch.path().join("first"), &store_url);
    let appended = ok(
        first.addr,
        "POST",
        "/streams/pgserve-1",
        Some(&json!({"events": [{"type": "Pinged", "data": {"n": 1}}]})),
    );
    assert_eq!(
        appended["position"], 1,
        "the first event of a fresh database: {appended}"
    );
    ok(
        first.addr,
        "POST",
        "/shop/products/mug",
        Some(&json!({"name": "Blue mug", "description": "a blue ceramic mug", "price": 1250})),
    );
    let received = ok(
        first.addr,
        "POST",
        "/shop/inventory/mug/receive",
        Some(&json!({"quantity": 5})),
    );
    let position = received["position"].as_u64().expect("a consistency token");
    let product = ok(
        first.addr,
        "GET",
        &format!("/shop/products/mug?after={position}"),
        None,
    );
    assert_eq!(
        product["available"], 5,
        "the read model on the first server: {product}"
    );
    drop(first);

    let stored = query(&store_url, "SELECT count(*) FROM strata.events").expect("a count");
    assert_eq!(
        stored as u64, position,
        "every acknowledged event is in PostgreSQL"
    );

    // A second server with an empty data directory: the events come from PostgreSQL and
    // its read models are rebuilt from them.
    let second = serve(&scratch.path().join("second"), &store_url);
    let stream = ok(second.addr, "GET", "/streams/pgserve-1", None);
    assert!(
        stream.to_string().contains("Pinged"),
        "the second server reads the first one's event: {stream}"
    );
    let product = ok(
        second.addr,
        "GET",
        &format!("/shop/products/mug?after={position}"),
        None,
    );
    assert_eq!(product["available"], 5, "the rebuilt read model: {product}");
    drop(second);
    drop(database);
}

#[test]
fn serve_keeps_the_read_models_in_postgres_with_either_event_store() {
    let Some(url) = postgres_url("serve --read-store postgres") else {
        return;
    };
    let store_db = TestDatabase::create(&url);
    let read_db = TestDatabase::create(&url);
    let (store_url, read_url) = (store_db.url().to_owned(), read_db.url().to_owned());
    let scratch = tempfile::tempdir().expect("a temporary directory");

    // The write side and the read side in two PostgreSQL databases.
    let data_dir = scratch.path().join("pg");
    let server = Served::start(
        &data_dir,
        &["--store", &store_url, "--read-store", &read_url],
        &[],
    );
    ok(
        server.addr,
        "POST",
        "/shop/products/lamp",
        Some(&json!({"name": "Desk lamp", "description": "a brass desk lamp", "price": 4200})),
    );
    let received = ok(
        server.addr,
        "POST",
        "/shop/inventory/lamp/receive",
        Some(&json!({"quantity": 3})),
    );
    let position = received["position"].as_u64().expect("a consistency token");
    let product = ok(
        server.addr,
        "GET",
        &format!("/shop/products/lamp?after={position}"),
        None,
    );
    assert_eq!(product["available"], 3, "the read model answers: {product}");
    let hits = ok(
        server.addr,
        "GET",
        &format!("/shop/products?q=bras&after={position}"),
        None,
    );
    assert!(
        hits.to_string().contains("\"lamp\""),
        "full-text search on PostgreSQL: {hits}"
    );
    let status = ok(server.addr, "GET", "/projections", None);
    assert!(
        status.to_string().contains("shop_catalog"),
        "the operations routes list the PostgreSQL read models: {status}"
    );
    drop(server);

    // The answer came from PostgreSQL: the model and its checkpoint are there, and the
    // data directory holds no read-model file.
    assert_eq!(
        query(
            &read_url,
            "SELECT received FROM rm_shop_catalog_v1_g1.catalog WHERE sku = 'lamp'"
        ),
        Some(3)
    );
    let checkpoint = query(
        &read_url,
        "SELECT position FROM rm_shop_catalog_v1_g1.strata_checkpoint",
    )
    .expect("a checkpoint");
    assert!(checkpoint as u64 >= position, "checkpoint {checkpoint}");
    let models = data_dir.join("read").join("models");
    let files: Vec<_> = std::fs::read_dir(&models)
        .map(|dir| dir.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(
        !files
            .iter()
            .any(|f| f.to_string_lossy().starts_with("shop_")),
        "no SQLite read model in {}: {files:?}",
        models.display()
    );

    // Killed while its read models follow a stream of receipts, the server restarts
    // from the stored checkpoints: stock counts add up event by event, so a receipt
    // skipped or applied twice would show.
    let pg_args = [
        "--store",
        store_url.as_str(),
        "--read-store",
        read_url.as_str(),
    ];
    let server = Served::start(&data_dir, &pg_args, &[]);
    let mut last = 0;
    for _ in 0..40 {
        let received = ok(
            server.addr,
            "POST",
            "/shop/inventory/lamp/receive",
            Some(&json!({"quantity": 1})),
        );
        last = received["position"].as_u64().expect("a consistency token");
    }
    drop(server);
    let server = Served::start(&data_dir, &pg_args, &[]);
    let product = ok(
        server.addr,
        "GET",
        &format!("/shop/products/lamp?after={last}"),
        None,
    );
    assert_eq!(
        product["available"], 43,
        "every receipt counted once across the kill: {product}"
    );
    drop(server);

    // The embedded event store with its read models in PostgreSQL (set by the
    // environment variable): a database that already holds another store's models.
    let embedded_read_db = TestDatabase::create(&url);
    let embedded_read_url = embedded_read_db.url().to_owned();
    let server = Served::start(
        &scratch.path().join("embedded"),
        &[],
        &[("STRATA_READ_STORE", embedded_read_url.as_str())],
    );
    let created = ok(
        server.addr,
        "POST",
        "/shop/products/kettle",
        Some(&json!({"name": "Kettle", "description": "steel", "price": 3000})),
    );
    let position = created["position"].as_u64().expect("a consistency token");
    let product = ok(
        server.addr,
        "GET",
        &format!("/shop/products/kettle?after={position}"),
        None,
    );
    assert_eq!(product["name"], "Kettle", "{product}");
    drop(server);
    assert_eq!(
        query(
            &embedded_read_url,
            "SELECT count(*) FROM rm_shop_catalog_v1_g1.catalog WHERE sku = 'kettle'"
        ),
        Some(1)
    );
    drop(embedded_read_db);
    drop(read_db);
    drop(store_db);
}
