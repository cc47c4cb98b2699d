//! The shop module: commands, queries with `after=`, idempotency, refusals, time travel,
//! paging, the actor of a token, and the request time limit.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use strata_server::{Limits, Tokens};

use crate::support::{ShopServer, command, get, ok, send};

#[tokio::test]
async fn an_order_goes_from_draft_to_confirmed_and_reads_back_with_after() {
    let server = ShopServer::start();
    let app = &server.app;
    let created = ok(
        app,
        "/shop/products/mug",
        Some(json!({"name": "Mug", "description": "a blue mug", "price": 1250})),
    )
    .await;
    assert!(created["position"].as_u64().unwrap() >= 1);
    assert_eq!(created["events"][0]["type"], "ProductCreated");
    ok(
        app,
        "/shop/inventory/mug/receive",
        Some(json!({"quantity": 3})),
    )
    .await;
    ok(app, "/shop/orders/o-1", Some(json!({"customer": "c-1"}))).await;
    ok(
        app,
        "/shop/orders/o-1/lines",
        Some(json!({"sku": "mug", "quantity": 2})),
    )
    .await;
    let placed = ok(app, "/shop/orders/o-1/place", None).await;
    let position = placed["position"].as_u64().unwrap();

    let order = get(app, &format!("/shop/orders/o-1?after={position}")).await;
    assert_eq!(order.status, StatusCode::OK, "{}", order.text());
    let order = order.json();
    assert_eq!(order["id"], "o-1");
    assert_eq!(order["customer"], "c-1");
    assert_eq!(order["total"], 2500);
    assert_eq!(order["lines"][0]["sku"], "mug");
    assert!(
        ["placed", "confirmed"].contains(&order["status"].as_str().unwrap()),
        "{order}"
    );

    // Checkout confirms later, at a position the client does not know: `settled` waits
    // for it.
    let settled = get(
        app,
        &format!("/shop/orders/o-1?after={position}&settled=true"),
    )
    .await;
    assert_eq!(settled.status, StatusCode::OK, "{}", settled.text());
    assert_eq!(settled.json()["status"], "confirmed");

    let product = get(app, &format!("/shop/products/mug?after={position}"))
        .await
        .json();
    assert_eq!(product["sku"], "mug");
    assert_eq!(product["price"], 1250);
    assert!(product.get("available").is_some());

    let orders = get(app, &format!("/shop/customers/c-1/orders?after={position}")).await;
    assert_eq!(orders.json()["orders"][0]["id"], "o-1");
    let found = get(app, &format!("/shop/products?q=blue&after={position}")).await;
    assert_eq!(
        found.json()["products"][0]["sku"],
        "mug",
        "{}",
        found.text()
    );
    let all = get(app, "/shop/products").await;
    assert_eq!(all.status, StatusCode::OK);
    assert_eq!(get(app, "/shop/sales/daily").await.status, StatusCode::OK);

    let history = get(app, "/shop/orders/o-1/history").await.json();
    let types: Vec<&str> = history["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        &types[..3],
        ["OrderCreated", "OrderLineAdded", "OrderPlaced"],
        "{history}"
    );

    // Time travel: as of the line's position the order was a draft.
    let line_position = history["events"][1]["position"].as_u64().unwrap();
    let past = get(app, &format!("/shop/orders/o-1?as_of={line_position}")).await;
    assert_eq!(past.status, StatusCode::OK, "{}", past.text());
    assert_eq!(past.json()["status"], "draft");
    assert_eq!(past.json()["position"], line_position);
    let recorded_at = history["events"][0]["recorded_at"].as_str().unwrap();
    let at_time = get(app, &format!("/shop/orders/o-1?as_of={recorded_at}")).await;
    assert_eq!(at_time.status, StatusCode::OK, "{}", at_time.text());
    // Before the order was created it did not exist yet; an order that never existed is
    // not found.
    let before = get(app, "/shop/orders/o-1?as_of=1").await;
    assert_eq!(before.status, StatusCode::OK, "{}", before.text());
    assert_eq!(before.json()["existed"], false);
    assert_eq!(before.json()["status"], Value::Null);
    assert_eq!(
        get(app, "/shop/orders/never?as_of=1").await.status,
        StatusCode::NOT_FOUND
    );
    let bad = get(app, "/shop/orders/o-1?as_of=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn an_idempotency_key_applies_a_command_once() {
    let server = ShopServer::start();
    let app = &server.app;
    let body = json!({"customer": "c-9"});
    let key = "0190f0c4-8a3e-7d2b-9b1e-3c4d5e6f7a01";
    let first = command(app, "/shop/orders/o-9", Some(body.clone()), Some(key)).await;
    let again = command(app, "/shop/orders/o-9", Some(body.clone()), Some(key)).await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(first.json()["position"], again.json()["position"]);
    assert_eq!(again.json()["duplicate"], true);
    // Any string works as a key: it is hashed to a UUID.
    let a = command(
        app,
        "/shop/orders/o-10",
        Some(body.clone()),
        Some("order o-10 try"),
    )
    .await;
    let b = command(
        app,
        "/shop/orders/o-10",
        Some(body.clone()),
        Some("order o-10 try"),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(b.json()["duplicate"], true);
    // Without the key the second create is refused by the domain.
    let c = command(app, "/shop/orders/o-10", Some(body), None).await;
    assert_eq!(c.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(c.code(), "order_exists");
}

/// A key is bound to the request it first came with: the same key on another order,
/// another route of the same order, or another body is refused with 422
/// `idempotency_key_reused` and writes nothing; the first request still repeats.
#[tokio::test]
async fn an_idempotency_key_reused_for_another_request_is_refused() {
    let server = ShopServer::start();
    let app = &server.app;
    let key = "one key for everything";
    let created = command(
        app,
        "/shop/orders/o-20",
        Some(json!({"customer": "c-20"})),
        Some(key),
    )
    .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    let head = get(app, "/all?limit=1000").await.json()["events"]
        .as_array()
        .map(Vec::len);

    let reuses = [
        ("/shop/orders/o-21", Some(json!({"customer": "c-20"}))),
        ("/shop/orders/o-20", Some(json!({"customer": "c-99"}))),
        ("/shop/orders/o-20/cancel", None),
    ];
    for (uri, body) in reuses {
        let answer = command(app, uri, body, Some(key)).await;
        assert_eq!(
            (answer.status, answer.code().as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            "{uri}: {}",
            answer.text()
        );
    }
    assert_eq!(
        get(app, "/all?limit=1000").await.json()["events"]
            .as_array()
            .map(Vec::len),
        head,
        "nothing was written"
    );
    let order = get(
        app,
        &format!("/shop/orders/o-20?after={}", created.json()["position"]),
    )
    .await;
    assert_eq!(order.json()["customer"], "c-20", "{}", order.text());
    assert_ne!(order.json()["status"], "cancelled", "{}", order.text());

    let again = command(
        app,
        "/shop/orders/o-20",
        Some(json!({"customer": "c-20"})),
        Some(key),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text());
    assert_eq!(again.json()["duplicate"], true);
    assert_eq!(again.json()["position"], created.json()["position"]);
}

#[tokio::test]
async fn refusals_are_422_with_the_rule_and_bad_input_is_400() {
    let server = ShopServer::start();
    let app = &server.app;
    ok(app, "/shop/orders/o-2", Some(json!({"customer": "c-2"}))).await;
    let empty = command(app, "/shop/orders/o-2/place", None, None).await;
    assert_eq!(
        empty.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        empty.text()
    );
    assert_eq!(empty.code(), "order_empty");
    let no_product = command(
        app,
        "/shop/orders/o-2/lines",
        Some(json!({"sku": "ghost", "quantity": 1})),
        None,
    )
    .await;
    assert_eq!(no_product.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(no_product.code(), "product_not_found");
    let ship = command(app, "/shop/orders/o-2/ship", None, None).await;
    assert_eq!(ship.status, StatusCode::UNPROCESSABLE_ENTITY);

    for (uri, body) in [
        ("/shop/products/p1", json!({"name": "x"})),
        ("/shop/products/p1", json!({"name": "x", "price": "ten"})),
        ("/shop/products/p1", json!({"name": "x", "price": -5})),
        ("/shop/inventory/p1/receive", json!({"quantity": "many"})),
        ("/shop/orders/o-3", json!({})),
        (
            "/shop/orders/o-2/lines",
            json!({"sku": "a", "quantity": 1.5}),
        ),
        (
            "/shop/orders/o-2/lines",
            json!({"sku": "a", "quantity": 1, "x": 1}),
        ),
    ] {
        let answer = command(app, uri, Some(body.clone()), None).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{uri} {body}: {}",
            answer.text()
        );
        assert_eq!(answer.code(), "invalid_input");
    }
    let bad_json = send(
        app,
        Request::post("/shop/orders/o-4")
            .body(Body::from("{customer"))
            .unwrap(),
    )
    .await;
    assert_eq!(bad_json.status, StatusCode::BAD_REQUEST);

    let missing = get(app, "/shop/orders/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let missing = command(app, "/shop/orders/nope/place", None, None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.text());
    let removed = send(
        app,
        Request::delete("/shop/orders/o-2/lines/none")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(
        removed.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        removed.text()
    );
    assert_eq!(removed.code(), "line_not_found");
}

#[tokio::test]
async fn a_line_is_removed_and_an_order_cancelled() {
    let server = ShopServer::start();
    let app = &server.app;
    ok(
        app,
        "/shop/products/pen",
        Some(json!({"name": "Pen", "price": 100})),
    )
    .await;
    ok(app, "/shop/orders/o-5", Some(json!({"customer": "c-5"}))).await;
    ok(
        app,
        "/shop/orders/o-5/lines",
        Some(json!({"sku": "pen", "quantity": 1})),
    )
    .await;
    let removed = send(
        app,
        Request::delete("/shop/orders/o-5/lines/pen")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text());
    let cancelled = ok(app, "/shop/orders/o-5/cancel", None).await;
    let position = cancelled["position"].as_u64().unwrap();
    let order = get(app, &format!("/shop/orders/o-5?after={position}"))
        .await
        .json();
    assert_eq!(order["status"], "cancelled");
    assert_eq!(order["lines"], json!([]));

    // An order that is not placed is settled already: no wait.
    let settled = get(app, "/shop/orders/o-5?settled=true&timeout_ms=600000").await;
    assert_eq!(settled.json()["status"], "cancelled");
    let created = ok(app, "/shop/orders/o-6", Some(json!({"customer": "c-5"}))).await;
    let draft = get(
        app,
        &format!(
            "/shop/orders/o-6?after={}&settled=true&timeout_ms=600000",
            created["position"]
        ),
    )
    .await;
    assert_eq!(draft.status, StatusCode::OK, "{}", draft.text());
    assert_eq!(draft.json()["status"], "draft");
}

#[tokio::test]
async fn a_position_beyond_the_log_is_503_consistency_timeout() {
    let server = ShopServer::start();
    let app = &server.app;
    for uri in [
        "/shop/orders/o-1?after=999999&timeout_ms=50",
        "/shop/products/mug?after=999999&timeout_ms=50",
        "/shop/products?after=999999&timeout_ms=50",
        "/shop/customers/c/orders?after=999999&timeout_ms=50",
        "/shop/sales/daily?after=999999&timeout_ms=50",
    ] {
        let answer = get(app, uri).await;
        assert_eq!(
            answer.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{uri}: {}",
            answer.text()
        );
        assert_eq!(answer.code(), "consistency_timeout");
    }
    for uri in ["/shop/orders/o-1?after=x", "/shop/products?timeout_ms=-1"] {
        assert_eq!(get(app, uri).await.status, StatusCode::BAD_REQUEST, "{uri}");
    }
}

#[tokio::test]
async fn the_shop_read_models_are_listed_as_projections() {
    let server = ShopServer::start();
    let list = get(&server.app, "/projections").await.json();
    let names: Vec<&str> = list["projections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(names.len() >= 4, "{list}");
    let parked = get(&server.app, &format!("/projections/{}/parked", names[0])).await;
    assert_eq!(parked.status, StatusCode::OK, "{}", parked.text());
    assert_eq!(parked.json()["parked"], json!([]));
    let retry = command(
        &server.app,
        &format!("/projections/{}/parked/5/retry", names[0]),
        None,
        None,
    )
    .await;
    assert_eq!(retry.status, StatusCode::NOT_FOUND, "{}", retry.text());
    let rebuild = command(
        &server.app,
        &format!("/projections/{}/rebuild", names[0]),
        None,
        None,
    )
    .await;
    assert_eq!(rebuild.status, StatusCode::ACCEPTED);
    let openapi = get(&server.app, "/openapi.json").await.json();
    for path in [
        "/shop/products/{sku}",
        "/shop/inventory/{sku}/receive",
        "/shop/orders/{id}",
        "/shop/orders/{id}/lines",
        "/shop/orders/{id}/lines/{sku}",
        "/shop/orders/{id}/place",
        "/shop/orders/{id}/cancel",
        "/shop/orders/{id}/ship",
        "/shop/customers/{customer}/orders",
        "/shop/products",
        "/shop/sales/daily",
        "/shop/orders/{id}/history",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "{path} undocumented");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_request_over_the_time_limit_is_503_timeout() {
    let server = ShopServer::start_with(|builder| {
        builder.limits(Limits {
            request_timeout: std::time::Duration::from_millis(100),
            ..Limits::default()
        })
    });
    let answer = get(&server.app, "/shop/orders/o-1?after=99999&timeout_ms=5000").await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text()
    );
    assert_eq!(answer.code(), "timeout");
    server.stop().await;
}

#[tokio::test]
async fn listings_page_with_a_cursor_and_a_capped_limit() {
    let server = ShopServer::start();
    let app = &server.app;
    let mut position = 0;
    for sku in ["a", "b c", "d&e", "f"] {
        let created = ok(
            app,
            &format!(
                "/shop/products/{}",
                sku.replace(' ', "%20").replace('&', "%26")
            ),
            Some(json!({"name": format!("Blue {sku}"), "price": 100})),
        )
        .await;
        position = created["position"].as_u64().unwrap();
    }
    for (customer, order) in [
        ("ann", "o-1"),
        ("ann", "o-2"),
        ("ann", "o-3"),
        ("bob", "o-4"),
    ] {
        let created = ok(
            app,
            &format!("/shop/orders/{order}"),
            Some(json!({"customer": customer})),
        )
        .await;
        position = created["position"].as_u64().unwrap();
    }

    // Every page but the last names the next; following them gives everything once.
    let mut skus = Vec::new();
    let mut uri = format!("/shop/products?limit=3&after={position}");
    loop {
        let page = get(app, &uri).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let page = page.json();
        let items = page["products"].as_array().unwrap();
        assert!(items.len() <= 3, "{page}");
        skus.extend(items.iter().map(|p| p["sku"].as_str().unwrap().to_owned()));
        match page["next"].as_str() {
            Some(next) => uri = format!("/shop/products?limit=3&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(skus, ["a", "b c", "d&e", "f"]);

    let first = get(
        app,
        &format!("/shop/customers/ann/orders?limit=2&after={position}"),
    )
    .await
    .json();
    let ids: Vec<_> = first["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].clone())
        .collect();
    assert_eq!(ids, [json!("o-1"), json!("o-2")]);
    let next = first["next"].as_str().expect("a next page");
    let rest = get(
        app,
        &format!("/shop/customers/ann/orders?limit=2&cursor={next}"),
    )
    .await
    .json();
    assert_eq!(rest["orders"][0]["id"], "o-3");
    assert_eq!(rest["next"], Value::Null);

    // Every order, newest first, a page at a time.
    let mut every = Vec::new();
    let mut uri = format!("/shop/orders?limit=3&after={position}");
    loop {
        let page = get(app, &uri).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        let page = page.json();
        for order in page["orders"].as_array().unwrap() {
            every.push((order["id"].clone(), order["customer"].clone()));
        }
        match page["next"].as_str() {
            Some(next) => uri = format!("/shop/orders?limit=3&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(
        every,
        [
            (json!("o-4"), json!("bob")),
            (json!("o-3"), json!("ann")),
            (json!("o-2"), json!("ann")),
            (json!("o-1"), json!("ann")),
        ]
    );

    let search = get(
        app,
        &format!("/shop/products?q=blue&limit=3&after={position}"),
    )
    .await
    .json();
    assert_eq!(search["products"].as_array().unwrap().len(), 3);
    let next = search["next"].as_str().expect("more hits");
    let more = get(app, &format!("/shop/products?q=blue&limit=3&cursor={next}"))
        .await
        .json();
    assert_eq!(more["products"].as_array().unwrap().len(), 1);

    let days = get(app, "/shop/sales/daily?limit=1").await;
    assert_eq!(days.status, StatusCode::OK, "{}", days.text());
    assert_eq!(days.json()["next"], Value::Null);

    for uri in [
        "/shop/products?limit=0",
        "/shop/products?limit=1001",
        "/shop/products?cursor=zz",
        "/shop/customers/ann/orders?cursor=first",
        "/shop/orders?cursor=latest",
        "/shop/orders?limit=1001",
        "/shop/sales/daily?cursor=monday",
        "/shop/sales/daily?limit=-1",
    ] {
        let answer = get(app, uri).await;
        assert_eq!(
            answer.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {}",
            answer.text()
        );
        assert_eq!(answer.code(), "invalid_input", "{uri}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_actor_is_the_tokens_name_with_tokens_and_the_header_without() {
    let tokens = Tokens::parse(
        "w-token-0123456789 write clerk-7\nr-token-0123456789 read\n",
        "tokens",
    )
    .unwrap();
    let server = ShopServer::start_with(|builder| builder.tokens(Some(tokens)));
    let app = &server.app;
    let post = |uri: &str, token: &str, actor: Option<&str>| {
        let mut request = Request::post(uri)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(actor) = actor {
            request = request.header("x-actor", actor);
        }
        request
            .body(Body::from(json!({"customer": "ann"}).to_string()))
            .unwrap()
    };
    let created = send(app, post("/shop/orders/o-1", "w-token-0123456789", None)).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.text());
    assert_eq!(
        send(app, post("/shop/orders/o-2", "r-token-0123456789", None))
            .await
            .status,
        StatusCode::FORBIDDEN
    );
    let claimed = send(
        app,
        post("/shop/orders/o-3", "w-token-0123456789", Some("boss")),
    )
    .await;
    assert_eq!(
        claimed.status,
        StatusCode::BAD_REQUEST,
        "{}",
        claimed.text()
    );
    let history = send(
        app,
        Request::get("/shop/orders/o-1/history")
            .header(header::AUTHORIZATION, "Bearer r-token-0123456789")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.text());
    assert_eq!(history.json()["events"][0]["actor"], "clerk-7");
    server.stop().await;

    let open = ShopServer::start();
    let request = Request::post("/shop/orders/o-1")
        .header("x-actor", "ann's assistant")
        .body(Body::from(json!({"customer": "ann"}).to_string()))
        .unwrap();
    assert_eq!(send(&open.app, request).await.status, StatusCode::OK);
    let history = get(&open.app, "/shop/orders/o-1/history").await.json();
    assert_eq!(history["events"][0]["actor"], "ann's assistant");
    open.stop().await;
}

/// The categories the shop owns are written only through its commands: a raw append of
/// an event no rule allowed (`A` into `product-zz`) is 403 `category_owned` naming the
/// shop and writes nothing; other categories stay open to raw appends, and an admin
/// token may still append into an owned one.
#[tokio::test]
async fn a_raw_append_into_a_category_the_shop_owns_is_refused() {
    let raw = |uri: &str, token: Option<&str>| {
        let mut request = Request::post(uri).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        request
            .body(Body::from(
                json!({"events": [{"type": "A", "data": {"price": -5}}]}).to_string(),
            ))
            .unwrap()
    };
    let server = ShopServer::start();
    let app = &server.app;
    for stream in ["product-zz", "order-o-1", "inventory-mug", "payment-o-1"] {
        let refused = send(app, raw(&format!("/streams/{stream}"), None)).await;
        assert_eq!(
            (refused.status, refused.code().as_str()),
            (StatusCode::FORBIDDEN, "category_owned"),
            "{stream}: {}",
            refused.text()
        );
        assert_eq!(refused.json()["error"]["module"], "shop");
    }
    assert_eq!(
        get(app, "/all").await.json()["events"]
            .as_array()
            .map(Vec::len),
        Some(0),
        "nothing was written"
    );
    let open = send(app, raw("/streams/notes-1", None)).await;
    assert_eq!(open.status, StatusCode::OK, "{}", open.text());
    // The read side goes on: a product created after the attempts is listed.
    let created = ok(
        app,
        "/shop/products/mug",
        Some(json!({"name": "Mug", "description": "a mug", "price": 1250})),
    )
    .await;
    let product = get(
        app,
        &format!("/shop/products/mug?after={}", created["position"]),
    )
    .await;
    assert_eq!(product.status, StatusCode::OK, "{}", product.text());
    server.stop().await;

    let tokens = Tokens::parse(
        "w-token-0123456789 write\na-token-0123456789 admin\n",
        "tokens",
    )
    .unwrap();
    let server = ShopServer::start_with(|builder| builder.tokens(Some(tokens)));
    let app = &server.app;
    let writer = send(app, raw("/streams/product-zz", Some("w-token-0123456789"))).await;
    assert_eq!(writer.status, StatusCode::FORBIDDEN, "{}", writer.text());
    assert_eq!(writer.code(), "category_owned");
    let admin = send(app, raw("/streams/product-zz", Some("a-token-0123456789"))).await;
    assert_eq!(admin.status, StatusCode::OK, "{}", admin.text());
    server.stop().await;
}

/// A read model that stopped for good answers a waiting query with 503
/// `read_model_stopped` naming it, never a 500: here the catalog's checkpoint is beyond
/// the head of the store it is started over (the log it was built from is gone), so it
/// refuses to run; the log then grows past that checkpoint.
#[tokio::test]
async fn a_waiting_query_on_a_stopped_read_model_is_503_naming_it() {
    let product = |name: &str| json!({"name": name, "description": "a mug", "price": 1250});
    let server = ShopServer::start();
    let mut built = Value::Null;
    for sku in ["a", "b", "c"] {
        built = ok(
            &server.app,
            &format!("/shop/products/{sku}"),
            Some(product(sku)),
        )
        .await;
    }
    let caught_up = get(
        &server.app,
        &format!("/shop/products/c?after={}", built["position"]),
    )
    .await;
    assert_eq!(caught_up.status, StatusCode::OK, "{}", caught_up.text());
    let dir = server.stop_keeping_files().await;

    let store: std::sync::Arc<dyn strata_store::EventStore> =
        std::sync::Arc::new(strata_store::MemoryStore::new());
    let server = ShopServer::start_over(dir, store, |builder| builder);
    let app = &server.app;
    let catalog_failed = async {
        loop {
            let listed = get(app, "/projections").await.json();
            let failed = listed["projections"].as_array().is_some_and(|all| {
                all.iter().any(|p| {
                    p["name"].as_str().is_some_and(|n| n.contains("catalog"))
                        && p["state"] == "failed"
                })
            });
            if failed {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(30), catalog_failed)
        .await
        .expect("the catalog refuses a checkpoint beyond the head");
    let mut later = Value::Null;
    for sku in ["d", "e", "f", "g"] {
        later = ok(app, &format!("/shop/products/{sku}"), Some(product(sku))).await;
    }
    let answer = get(
        app,
        &format!(
            "/shop/products/g?after={}&timeout_ms=5000",
            later["position"]
        ),
    )
    .await;
    assert_eq!(
        (answer.status, answer.code().as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "read_model_stopped"),
        "{}",
        answer.text()
    );
    assert!(
        answer.json()["error"]["read_model"]
            .as_str()
            .is_some_and(|name| name.contains("catalog")),
        "{}",
        answer.text()
    );
    server.stop().await;
}
