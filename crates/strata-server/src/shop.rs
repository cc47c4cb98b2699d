//! The shop's HTTP module: the routes of strata-shop's [`Shop`] service, mounted by the
//! binary through the [`Module`] seam exactly as a user's own domain would be.
//!
//! Commands take their id from the `Idempotency-Key` header (a UUID, or any other string
//! hashed to one) and answer `{"position", "events"}`; the position is the consistency
//! token that queries accept as `after`. The module holds no shop rule: it parses,
//! calls one `Shop` method, and maps the result.

use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use strata_core::{Position, RecordedEvent, Timestamp};
use strata_domain::{CommandContext, CommandOutcome};
use strata_shop::domain::Money;
use strata_shop::{AsOf, Shop, ShopError};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::api::schema::ErrorEnvelope;
use crate::extract::{JsonBody, Path, Query};
use crate::{ApiError, ApiResult, AppState, Module};

/// The namespace of command ids derived from idempotency keys that are not UUIDs.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6a1c_0d4e_5b2f_4c1a_9e3d_7f80_2b5c_91e4);
/// How long a query waits for its read model by default.
const DEFAULT_WAIT_MS: u64 = 5000;
/// The longest idempotency key accepted.
const MAX_KEY_BYTES: usize = 255;

/// The shop, as a module of the server.
#[derive(Clone)]
pub struct ShopModule {
    shop: Shop,
}

impl ShopModule {
    /// The module over a shop whose hosts the caller starts and stops.
    pub fn new(shop: Shop) -> Self {
        Self { shop }
    }
}

impl Module for ShopModule {
    fn name(&self) -> &str {
        "shop"
    }

    fn routes(&self) -> OpenApiRouter<AppState> {
        OpenApiRouter::new()
            .routes(routes!(create_product, product))
            .routes(routes!(products))
            .routes(routes!(receive_stock))
            .routes(routes!(create_order, order))
            .routes(routes!(add_line))
            .routes(routes!(remove_line))
            .routes(routes!(place))
            .routes(routes!(cancel))
            .routes(routes!(ship))
            .routes(routes!(customer_orders))
            .routes(routes!(daily_sales))
            .routes(routes!(order_history))
            .layer(Extension(self.shop.clone()))
    }
}

impl From<ShopError> for ApiError {
    fn from(err: ShopError) -> Self {
        let message = err.to_string();
        match err {
            ShopError::Refused { code, .. } => ApiError::domain(code, message),
            ShopError::NotFound { .. } => ApiError::not_found("not_found", message),
            ShopError::InvalidId { .. } => ApiError::invalid(message),
            ShopError::Conflict { .. } => ApiError::conflict("conflict", message),
            ShopError::NotCaughtUp { position, .. } => {
                ApiError::unavailable(crate::CONSISTENCY_TIMEOUT, message)
                    .with_detail("after", position.0)
            }
            ShopError::Store(store) => ApiError::from(store),
            _ => ApiError::internal(message),
        }
    }
}

/// The command context of a request: its id from `Idempotency-Key`, its actor from
/// `X-Actor`, its correlation from `X-Correlation-Id`.
fn context(headers: &HeaderMap) -> ApiResult<CommandContext> {
    let header = |name: &str| -> ApiResult<Option<String>> {
        match headers.get(name) {
            None => Ok(None),
            Some(value) => {
                let text = value.to_str().map_err(|_| {
                    ApiError::invalid(format!("the {name} header must be visible ASCII"))
                })?;
                let text = text.trim();
                if text.is_empty() || text.len() > MAX_KEY_BYTES {
                    return Err(ApiError::invalid(format!(
                        "the {name} header must hold 1 to {MAX_KEY_BYTES} bytes"
                    )));
                }
                Ok(Some(text.to_owned()))
            }
        }
    };
    let mut context = match header("idempotency-key")? {
        Some(key) => CommandContext::with_id(
            Uuid::parse_str(&key)
                .unwrap_or_else(|_| Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, key.as_bytes())),
        ),
        None => CommandContext::new(),
    };
    context.actor = header("x-actor")?;
    context.correlation_id = header("x-correlation-id")?;
    Ok(context)
}

/// What a command answers.
#[derive(Serialize, ToSchema)]
pub(crate) struct CommandAnswer {
    /// The consistency token: the position of the command's last event. Pass it as
    /// `after` to a query to read your own write.
    position: u64,
    /// The events the command appended (those of the first time, for a repeated
    /// `Idempotency-Key`).
    #[schema(value_type = Vec<crate::api::schema::EventJson>)]
    events: Vec<RecordedEvent>,
    /// Whether this `Idempotency-Key` had been handled before.
    duplicate: bool,
}

/// Runs a command, timing it for the metrics.
async fn command(
    state: &AppState,
    name: &'static str,
    run: impl Future<Output = Result<CommandOutcome, ShopError>>,
) -> ApiResult<Json<CommandAnswer>> {
    let started = Instant::now();
    let outcome = run.await?;
    let appended = if outcome.duplicate {
        0
    } else {
        outcome.events.len()
    };
    state.stats().command(name, appended, started.elapsed());
    Ok(Json(CommandAnswer {
        position: outcome.position.0,
        events: outcome.events,
        duplicate: outcome.duplicate,
    }))
}

/// A new product.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewProduct {
    /// Its name.
    name: String,
    /// What it is (searched by `GET /shop/products?q=`).
    #[serde(default)]
    description: String,
    /// Its price in minor units (cents).
    price: u64,
}

/// Creates a product.
#[utoipa::path(
    post,
    path = "/shop/products/{sku}",
    tag = "shop",
    params(
        ("sku" = String, Path, description = "The product's sku"),
        ("Idempotency-Key" = Option<String>, Header, description = "The command id: a UUID, or any string (hashed to one)"),
    ),
    request_body = NewProduct,
    responses(
        (status = 200, description = "Created", body = CommandAnswer),
        (status = 400, description = "Malformed body or sku", body = ErrorEnvelope),
        (status = 409, description = "conflict: retries exhausted", body = ErrorEnvelope),
        (status = 422, description = "Refused: `product_exists`, `invalid_name`, `invalid_price`...", body = ErrorEnvelope),
    )
)]
async fn create_product(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Path(sku): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewProduct>,
) -> ApiResult<Json<CommandAnswer>> {
    let context = context(&headers)?;
    command(
        &state,
        "create_product",
        shop.create_product(
            &sku,
            &body.name,
            &body.description,
            Money(body.price),
            &context,
        ),
    )
    .await
}

/// Stock received.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Receive {
    /// How many units arrived.
    quantity: u64,
}

/// Adds stock of a product.
#[utoipa::path(
    post,
    path = "/shop/inventory/{sku}/receive",
    tag = "shop",
    params(
        ("sku" = String, Path, description = "The product's sku"),
        ("Idempotency-Key" = Option<String>, Header, description = "The command id"),
    ),
    request_body = Receive,
    responses(
        (status = 200, description = "Received", body = CommandAnswer),
        (status = 400, description = "Malformed body", body = ErrorEnvelope),
        (status = 422, description = "Refused: `product_not_found`, `invalid_quantity`...", body = ErrorEnvelope),
    )
)]
async fn receive_stock(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Path(sku): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<Receive>,
) -> ApiResult<Json<CommandAnswer>> {
    let context = context(&headers)?;
    command(
        &state,
        "receive_stock",
        shop.receive_stock(&sku, body.quantity, &context),
    )
    .await
}

/// A new order.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewOrder {
    /// Who orders.
    customer: String,
}

/// Opens a draft order.
#[utoipa::path(
    post,
    path = "/shop/orders/{id}",
    tag = "shop",
    params(
        ("id" = String, Path, description = "The order's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "The command id"),
    ),
    request_body = NewOrder,
    responses(
        (status = 200, description = "Opened", body = CommandAnswer),
        (status = 400, description = "Malformed body or id", body = ErrorEnvelope),
        (status = 422, description = "Refused: `order_exists`, `invalid_customer`...", body = ErrorEnvelope),
    )
)]
async fn create_order(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewOrder>,
) -> ApiResult<Json<CommandAnswer>> {
    let context = context(&headers)?;
    command(
        &state,
        "create_order",
        shop.create_order(&id, &body.customer, &context),
    )
    .await
}

/// A line to add.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewLine {
    /// The product.
    sku: String,
    /// How many.
    quantity: u32,
}

/// Adds a line at the product's current price.
#[utoipa::path(
    post,
    path = "/shop/orders/{id}/lines",
    tag = "shop",
    params(
        ("id" = String, Path, description = "The order's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "The command id"),
    ),
    request_body = NewLine,
    responses(
        (status = 200, description = "Added", body = CommandAnswer),
        (status = 400, description = "Malformed body", body = ErrorEnvelope),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 422, description = "Refused: `product_not_found`, `order_not_draft`, `line_exists`...", body = ErrorEnvelope),
    )
)]
async fn add_line(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Path(id): Path<String>,
    headers: HeaderMap,
    JsonBody(body): JsonBody<NewLine>,
) -> ApiResult<Json<CommandAnswer>> {
    let context = context(&headers)?;
    command(
        &state,
        "add_line",
        shop.add_line(&id, &body.sku, body.quantity, &context),
    )
    .await
}

/// Removes a line.
#[utoipa::path(
    delete,
    path = "/shop/orders/{id}/lines/{sku}",
    tag = "shop",
    params(
        ("id" = String, Path, description = "The order's id"),
        ("sku" = String, Path, description = "The line's product"),
        ("Idempotency-Key" = Option<String>, Header, description = "The command id"),
    ),
    responses(
        (status = 200, description = "Removed", body = CommandAnswer),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 422, description = "Refused: `order_not_draft`, `line_not_found`", body = ErrorEnvelope),
    )
)]
async fn remove_line(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Path((id, sku)): Path<(String, String)>,
    headers: HeaderMap,
) -> ApiResult<Json<CommandAnswer>> {
    let context = context(&headers)?;
    command(&state, "remove_line", shop.remove_line(&id, &sku, &context)).await
}

/// Places the order; checkout reserves stock, takes payment and confirms it, or
/// cancels it.
#[utoipa::path(
    post,
    path = "/shop/orders/{id}/place",
    tag = "shop",
    params(
        ("id" = String, Path, description = "The order's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "The command id"),
    ),
    responses(
        (status = 200, description = "Placed", body = CommandAnswer),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 422, description = "Refused: `order_empty`, `order_not_draft`...", body = ErrorEnvelope),
    )
)]
async fn place(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<CommandAnswer>> {
    let context = context(&headers)?;
    command(&state, "place", shop.place(&id, &context)).await
}

/// Cancels a draft or placed order.
#[utoipa::path(
    post,
    path = "/shop/orders/{id}/cancel",
    tag = "shop",
    params(
        ("id" = String, Path, description = "The order's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "The command id"),
    ),
    responses(
        (status = 200, description = "Cancelled", body = CommandAnswer),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 422, description = "Refused: `order_confirmed`, `order_shipped`", body = ErrorEnvelope),
    )
)]
async fn cancel(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<CommandAnswer>> {
    let context = context(&headers)?;
    command(&state, "cancel", shop.cancel(&id, &context)).await
}

/// Ships a confirmed order.
#[utoipa::path(
    post,
    path = "/shop/orders/{id}/ship",
    tag = "shop",
    params(
        ("id" = String, Path, description = "The order's id"),
        ("Idempotency-Key" = Option<String>, Header, description = "The command id"),
    ),
    responses(
        (status = 200, description = "Shipped", body = CommandAnswer),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 422, description = "Refused: `order_not_paid`, `order_cancelled`", body = ErrorEnvelope),
    )
)]
async fn ship(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> ApiResult<Json<CommandAnswer>> {
    let context = context(&headers)?;
    command(&state, "ship", shop.ship(&id, &context)).await
}

/// How fresh a query must be.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct Freshness {
    /// A command's position: wait until the read model includes it.
    after: Option<u64>,
    /// How long to wait for `after`, in milliseconds (default 5000); 503
    /// `consistency_timeout` past it.
    timeout_ms: Option<u64>,
}

impl Freshness {
    fn after(&self) -> Option<Position> {
        self.after.filter(|&p| p > 0).map(Position)
    }

    fn timeout(&self, state: &AppState) -> Duration {
        Duration::from_millis(self.timeout_ms.unwrap_or(DEFAULT_WAIT_MS))
            .min(state.limits().max_wait)
    }
}

/// A query on an order: fresh, or as it was.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OrderQuery {
    /// A command's position: wait until the read model includes it.
    after: Option<u64>,
    /// How long to wait for `after`, in milliseconds (default 5000).
    timeout_ms: Option<u64>,
    /// Time travel: the order as of a global position or an RFC 3339 time, folded from
    /// the log.
    as_of: Option<String>,
}

/// An order: `{"id", "customer", "status", "lines", "total"}`.
#[utoipa::path(
    get,
    path = "/shop/orders/{id}",
    tag = "shop",
    params(("id" = String, Path, description = "The order's id"), OrderQuery),
    responses(
        (status = 200, description = "The order. With `as_of`: also `version`, `position` and `existed` (false, with `status` null, when the order was not created yet at that point)", body = Object),
        (status = 400, description = "Bad parameter", body = ErrorEnvelope),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
async fn order(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Path(id): Path<String>,
    Query(query): Query<OrderQuery>,
) -> ApiResult<Json<Value>> {
    if let Some(at) = &query.as_of {
        let at = match at.parse::<u64>() {
            Ok(position) => AsOf::Position(Position(position)),
            Err(_) => AsOf::Time(Timestamp::parse_rfc3339(at).map_err(|_| {
                ApiError::invalid(format!(
                    "as_of must be a position or an RFC 3339 time, not {at:?}"
                ))
            })?),
        };
        let past = match shop.order_as_of(&id, at).await {
            Ok(past) => past,
            // An order that exists now but not yet at that point of the log: it is the
            // answer, not a missing resource.
            Err(ShopError::NotFound { .. }) if shop.order_status(&id).await.is_ok() => {
                return Ok(Json(json!({
                    "id": id,
                    "customer": null,
                    "status": null,
                    "lines": [],
                    "total": 0,
                    "existed": false,
                    "version": 0,
                    "position": 0,
                })));
            }
            Err(err) => return Err(err.into()),
        };
        let mut value = to_value(&past.order)?;
        if let Value::Object(map) = &mut value {
            map.insert("existed".into(), json!(true));
            map.insert("version".into(), json!(past.version.0));
            map.insert("position".into(), json!(past.position.0));
        }
        return Ok(Json(value));
    }
    let freshness = Freshness {
        after: query.after,
        timeout_ms: query.timeout_ms,
    };
    let view = shop
        .order(&id, freshness.after(), freshness.timeout(&state))
        .await?;
    Ok(Json(to_value(&view)?))
}

fn to_value(value: &impl Serialize) -> ApiResult<Value> {
    serde_json::to_value(value).map_err(|e| ApiError::internal(format!("cannot encode: {e}")))
}

/// A customer's orders.
#[utoipa::path(
    get,
    path = "/shop/customers/{customer}/orders",
    tag = "shop",
    params(("customer" = String, Path, description = "The customer"), Freshness),
    responses(
        (status = 200, description = "`{\"orders\": [...]}`, oldest first", body = Object),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
async fn customer_orders(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Path(customer): Path<String>,
    Query(freshness): Query<Freshness>,
) -> ApiResult<Json<Value>> {
    let orders = shop
        .customer_orders(&customer, freshness.after(), freshness.timeout(&state))
        .await?;
    Ok(Json(json!({ "orders": to_value(&orders)? })))
}

/// A product search or the whole catalog.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProductsQuery {
    /// Full-text search on name and description (every word, as prefixes); without it,
    /// the whole catalog.
    q: Option<String>,
    /// A command's position: wait until the read model includes it.
    after: Option<u64>,
    /// How long to wait for `after`, in milliseconds (default 5000).
    timeout_ms: Option<u64>,
}

/// Searches products, or lists the catalog with available stock.
#[utoipa::path(
    get,
    path = "/shop/products",
    tag = "shop",
    params(ProductsQuery),
    responses(
        (status = 200, description = "`{\"products\": [...]}`", body = Object),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
async fn products(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Query(query): Query<ProductsQuery>,
) -> ApiResult<Json<Value>> {
    let freshness = Freshness {
        after: query.after,
        timeout_ms: query.timeout_ms,
    };
    let (after, timeout) = (freshness.after(), freshness.timeout(&state));
    let products = match query.q.as_deref().map(str::trim) {
        Some(q) if !q.is_empty() => to_value(&shop.search_products(q, after, timeout).await?)?,
        _ => to_value(&shop.products(after, timeout).await?)?,
    };
    Ok(Json(json!({ "products": products })))
}

/// A product: `{"sku", "name", "price", "available"}`.
#[utoipa::path(
    get,
    path = "/shop/products/{sku}",
    tag = "shop",
    params(("sku" = String, Path, description = "The product's sku"), Freshness),
    responses(
        (status = 200, description = "The product with its available stock", body = Object),
        (status = 404, description = "No such product", body = ErrorEnvelope),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
async fn product(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Path(sku): Path<String>,
    Query(freshness): Query<Freshness>,
) -> ApiResult<Json<Value>> {
    let view = shop
        .product(&sku, freshness.after(), freshness.timeout(&state))
        .await?;
    Ok(Json(to_value(&view)?))
}

/// Confirmed orders and revenue per UTC day.
#[utoipa::path(
    get,
    path = "/shop/sales/daily",
    tag = "shop",
    params(Freshness),
    responses(
        (status = 200, description = "`{\"days\": [...]}`, oldest first", body = Object),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
async fn daily_sales(
    State(state): State<AppState>,
    Extension(shop): Extension<Shop>,
    Query(freshness): Query<Freshness>,
) -> ApiResult<Json<Value>> {
    let days = shop
        .daily_sales(freshness.after(), freshness.timeout(&state))
        .await?;
    Ok(Json(json!({ "days": to_value(&days)? })))
}

/// Every event of an order, with who asked, when, and why.
#[utoipa::path(
    get,
    path = "/shop/orders/{id}/history",
    tag = "shop",
    params(("id" = String, Path, description = "The order's id"), Freshness),
    responses(
        (status = 200, description = "`{\"events\": [...]}` with actor, command, causation and correlation ids", body = Object),
        (status = 404, description = "No such order", body = ErrorEnvelope),
    )
)]
async fn order_history(
    Extension(shop): Extension<Shop>,
    Path(id): Path<String>,
    Query(_fresh): Query<Freshness>,
) -> ApiResult<Json<Value>> {
    // The history is read from the log itself, so it is always up to date: `after` and
    // `timeout_ms` are accepted like on every query and need no wait.
    let history = shop.order_history(&id).await?;
    Ok(Json(json!({ "events": to_value(&history)? })))
}
