//! Every shop route is requested, and every real answer (successes and errors) is checked
//! against the schema `/openapi.json` documents for its route, method and status, with a
//! small JSON Schema walker that resolves `$ref`s and refuses keywords it does not know.

use std::collections::BTreeSet;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request};
use serde_json::{Value, json};

use crate::support::{Answer, ShopServer, get, send};

/// Checks `value` against `schema`, resolving references in `doc`; every mismatch is
/// pushed to `errors` with the JSON path where it was found.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = match schema {
        Value::Bool(true) => return,
        Value::Bool(false) => {
            errors.push(format!("{at}: no value is allowed here"));
            return;
        }
        Value::Object(map) => map,
        other => {
            errors.push(format!("{at}: the schema is not an object: {other}"));
            return;
        }
    };
    for keyword in schema.keys() {
        const KNOWN: &[&str] = &[
            "$ref",
            "allOf",
            "anyOf",
            "oneOf",
            "type",
            "enum",
            "properties",
            "required",
            "additionalProperties",
            "items",
            "minimum",
            "maximum",
            "maxLength",
            "format",
            "description",
            "title",
            "default",
            "example",
            "examples",
            "deprecated",
        ];
        if !KNOWN.contains(&keyword.as_str()) {
            errors.push(format!(
                "{at}: the walker does not know keyword {keyword:?}"
            ));
        }
    }
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        match reference
            .strip_prefix('#')
            .and_then(|pointer| doc.pointer(pointer))
        {
            Some(target) => check(doc, target, value, at, errors),
            None => errors.push(format!("{at}: unresolved reference {reference}")),
        }
    }
    let outcomes = |list: &Vec<Value>| -> Vec<Vec<String>> {
        list.iter()
            .map(|sub| {
                let mut found = Vec::new();
                check(doc, sub, value, at, &mut found);
                found
            })
            .collect()
    };
    if let Some(Value::Array(list)) = schema.get("allOf") {
        for found in outcomes(list) {
            errors.extend(found);
        }
    }
    if let Some(Value::Array(list)) = schema.get("anyOf")
        && outcomes(list).iter().all(|found| !found.is_empty())
    {
        errors.push(format!("{at}: matches none of anyOf: {value}"));
    }
    if let Some(Value::Array(list)) = schema.get("oneOf") {
        let matching = outcomes(list).iter().filter(|f| f.is_empty()).count();
        if matching != 1 {
            errors.push(format!(
                "{at}: matches {matching} of oneOf's {} schemas, not exactly one: {value}",
                list.len()
            ));
        }
    }
    if let Some(kind) = schema.get("type") {
        let kinds: Vec<&str> = match kind {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        let fits = |kind: &str| match kind {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            "null" => value.is_null(),
            _ => false,
        };
        if !kinds.iter().any(|kind| fits(kind)) {
            errors.push(format!("{at}: {value} is not of type {kind}"));
        }
    }
    if let Some(Value::Array(allowed)) = schema.get("enum")
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Some(number) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
            && number < min
        {
            errors.push(format!("{at}: {number} is below the minimum {min}"));
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
            && number > max
        {
            errors.push(format!("{at}: {number} is above the maximum {max}"));
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = schema.get("required") {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    errors.push(format!("{at}: the required field {name:?} is missing"));
                }
            }
        }
        for (name, field) in object {
            let path = format!("{at}.{name}");
            match properties.and_then(|p| p.get(name)) {
                Some(sub) => check(doc, sub, field, &path, errors),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        errors.push(format!("{path}: the schema has no such field"));
                    }
                    Some(sub @ Value::Object(_)) => check(doc, sub, field, &path, errors),
                    _ => {}
                },
            }
        }
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            check(doc, items, item, &format!("{at}[{index}]"), errors);
        }
    }
}

/// The schema of the answer `status` of `method` on the documented route `route`.
fn answer_schema<'a>(doc: &'a Value, method: &Method, route: &str, status: u16) -> &'a Value {
    let operation = &doc["paths"][route][method.as_str().to_lowercase()];
    assert!(operation.is_object(), "{method} {route} is not documented");
    let schema =
        &operation["responses"][status.to_string()]["content"]["application/json"]["schema"];
    assert!(
        schema.is_object(),
        "{method} {route} does not document a JSON answer for {status}"
    );
    schema
}

/// Requests a shop route and checks the answer against the document; remembers which
/// documented operations were exercised.
struct Checker<'a> {
    app: &'a Router,
    doc: Value,
    exercised: BTreeSet<(String, String)>,
    checked: usize,
}

impl Checker<'_> {
    async fn call(
        &mut self,
        method: Method,
        route: &str,
        uri: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method.clone()).uri(uri);
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let answer = send(self.app, request.body(Body::from(body)).unwrap()).await;
        let value = answer.json();
        let schema = answer_schema(&self.doc, &method, route, answer.status.as_u16());
        let mut errors = Vec::new();
        check(&self.doc, schema, &value, "$", &mut errors);
        assert!(
            errors.is_empty(),
            "{method} {uri} answered {} that does not fit its schema:\n{}\n{value:#}",
            answer.status,
            errors.join("\n")
        );
        self.exercised
            .insert((method.as_str().to_lowercase(), route.to_owned()));
        self.checked += 1;
        answer
    }
}

/// The documented shop operations: `(method, route)`.
fn shop_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (route, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let tags = operation["tags"].as_array().cloned().unwrap_or_default();
            if tags.contains(&json!("shop")) {
                operations.insert((method.clone(), route.clone()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn every_shop_answer_fits_its_documented_schema() {
    let server = ShopServer::start();
    let doc = get(&server.app, "/openapi.json").await.json();
    let documented = shop_operations(&doc);
    assert!(documented.len() >= 14, "{documented:?}");
    let mut c = Checker {
        app: &server.app,
        doc,
        exercised: BTreeSet::new(),
        checked: 0,
    };
    let post = Method::POST;
    let get_ = Method::GET;

    let product = "/shop/products/{sku}";
    let body = json!({"name": "Mug", "description": "a blue mug", "price": 1250});
    c.call(
        post.clone(),
        product,
        "/shop/products/mug",
        Some(body.clone()),
    )
    .await;
    c.call(post.clone(), product, "/shop/products/mug", Some(body))
        .await; // 422 product_exists
    c.call(
        post.clone(),
        product,
        "/shop/products/pen",
        Some(json!({"name": "Pen"})),
    )
    .await; // 400
    let receive = "/shop/inventory/{sku}/receive";
    c.call(
        post.clone(),
        receive,
        "/shop/inventory/mug/receive",
        Some(json!({"quantity": 5})),
    )
    .await;
    c.call(
        post.clone(),
        receive,
        "/shop/inventory/mug/receive",
        Some(json!({"quantity": 0})),
    )
    .await; // 422
    let order = "/shop/orders/{id}";
    c.call(
        post.clone(),
        order,
        "/shop/orders/o-1",
        Some(json!({"customer": "ann"})),
    )
    .await;
    c.call(
        post.clone(),
        order,
        "/shop/orders/o-2",
        Some(json!({"customer": "ann"})),
    )
    .await;
    let lines = "/shop/orders/{id}/lines";
    c.call(
        post.clone(),
        lines,
        "/shop/orders/o-1/lines",
        Some(json!({"sku": "mug", "quantity": 2})),
    )
    .await;
    c.call(
        post.clone(),
        lines,
        "/shop/orders/o-2/lines",
        Some(json!({"sku": "mug", "quantity": 1})),
    )
    .await;
    c.call(
        post.clone(),
        lines,
        "/shop/orders/nope/lines",
        Some(json!({"sku": "mug", "quantity": 1})),
    )
    .await; // 404
    let line = "/shop/orders/{id}/lines/{sku}";
    c.call(Method::DELETE, line, "/shop/orders/o-2/lines/mug", None)
        .await;
    c.call(Method::DELETE, line, "/shop/orders/o-2/lines/mug", None)
        .await; // 422
    c.call(
        post.clone(),
        "/shop/orders/{id}/cancel",
        "/shop/orders/o-2/cancel",
        None,
    )
    .await;
    let place = "/shop/orders/{id}/place";
    let placed = c
        .call(post.clone(), place, "/shop/orders/o-1/place", None)
        .await;
    let placed = placed.json()["position"].as_u64().unwrap();
    c.call(post.clone(), place, "/shop/orders/o-2/place", None)
        .await; // 422

    // Checkout confirms the order on its own; wait for it in the order's history.
    let history = "/shop/orders/{id}/history";
    let mut confirmed = false;
    for _ in 0..500 {
        let events = c
            .call(get_.clone(), history, "/shop/orders/o-1/history", None)
            .await;
        if events.json()["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "OrderConfirmed")
        {
            confirmed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(confirmed, "checkout did not confirm the order");
    let shipped = c
        .call(
            post.clone(),
            "/shop/orders/{id}/ship",
            "/shop/orders/o-1/ship",
            None,
        )
        .await;
    let shipped = shipped.json()["position"].as_u64().unwrap();
    c.call(
        post.clone(),
        "/shop/orders/{id}/ship",
        "/shop/orders/o-2/ship",
        None,
    )
    .await; // 422
    c.call(get_.clone(), history, "/shop/orders/nope/history", None)
        .await; // 404

    c.call(
        get_.clone(),
        order,
        &format!("/shop/orders/o-1?after={shipped}"),
        None,
    )
    .await;
    c.call(
        get_.clone(),
        order,
        &format!("/shop/orders/o-2?after={shipped}"),
        None,
    )
    .await; // cancelled, with its reason
    c.call(
        get_.clone(),
        order,
        &format!("/shop/orders/o-1?as_of={placed}"),
        None,
    )
    .await;
    c.call(get_.clone(), order, "/shop/orders/o-1?as_of=1", None)
        .await; // not yet
    c.call(get_.clone(), order, "/shop/orders/never?as_of=1", None)
        .await; // 404
    c.call(
        get_.clone(),
        order,
        "/shop/orders/o-1?as_of=yesterday",
        None,
    )
    .await; // 400
    c.call(
        get_.clone(),
        order,
        "/shop/orders/o-1?after=999999&timeout_ms=20",
        None,
    )
    .await; // 503

    c.call(
        get_.clone(),
        product,
        &format!("/shop/products/mug?after={shipped}"),
        None,
    )
    .await;
    c.call(get_.clone(), product, "/shop/products/ghost", None)
        .await; // 404
    let products = "/shop/products";
    c.call(
        get_.clone(),
        products,
        &format!("/shop/products?after={shipped}"),
        None,
    )
    .await;
    c.call(get_.clone(), products, "/shop/products?q=blue", None)
        .await;
    c.call(get_.clone(), products, "/shop/products?limit=0", None)
        .await; // 400
    let every = "/shop/orders";
    c.call(
        get_.clone(),
        every,
        &format!("/shop/orders?limit=1&after={shipped}"),
        None,
    )
    .await;
    c.call(get_.clone(), every, "/shop/orders?cursor=latest", None)
        .await; // 400
    let customer = "/shop/customers/{customer}/orders";
    c.call(
        get_.clone(),
        customer,
        "/shop/customers/ann/orders?limit=1",
        None,
    )
    .await;
    let sales = "/shop/sales/daily";
    let days = c
        .call(
            get_.clone(),
            sales,
            &format!("/shop/sales/daily?after={shipped}"),
            None,
        )
        .await;
    assert_eq!(days.json()["days"][0]["orders"], 1, "{}", days.text());

    assert_eq!(
        c.exercised, documented,
        "every documented shop operation is requested"
    );
    assert!(c.checked > 30);
    server.stop().await;
}

#[test]
fn the_walker_refuses_what_does_not_fit() {
    let doc = json!({"components": {"schemas": {
        "Thing": {
            "type": "object",
            "required": ["n"],
            "additionalProperties": false,
            "properties": {
                "n": {"type": "integer", "minimum": 0},
                "tag": {"type": ["string", "null"], "enum": ["a", "b", null]},
                "list": {"type": "array", "items": {"$ref": "#/components/schemas/Leaf"}}
            }
        },
        "Leaf": {"oneOf": [{"type": "string"}, {"type": "integer"}]}
    }}});
    let thing = json!({"$ref": "#/components/schemas/Thing"});
    let errors = |value: Value| {
        let mut found = Vec::new();
        check(&doc, &thing, &value, "$", &mut found);
        found
    };
    assert!(errors(json!({"n": 1, "tag": null, "list": ["x", 2]})).is_empty());
    for bad in [
        json!({"tag": "a"}),
        json!({"n": -1}),
        json!({"n": 1, "extra": true}),
        json!({"n": 1, "tag": "c"}),
        json!({"n": 1, "list": [true]}),
        json!({"n": "1"}),
    ] {
        assert!(!errors(bad.clone()).is_empty(), "{bad} was accepted");
    }
    let mut found = Vec::new();
    check(
        &doc,
        &json!({"$ref": "#/components/schemas/Nope"}),
        &json!(1),
        "$",
        &mut found,
    );
    assert!(!found.is_empty());
    let mut found = Vec::new();
    check(
        &doc,
        &json!({"patternProperties": {}}),
        &json!({}),
        "$",
        &mut found,
    );
    assert!(!found.is_empty(), "an unknown keyword is reported");
}
