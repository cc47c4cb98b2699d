//! The shop's query routes: each reads its parameters beside the freshness ones
//! (`after`, `timeout_ms`), asks `Shop` (which waits for its read model), and answers a
//! typed struct. Listings page with a cursor and a limit capped at [`PAGE_LIMIT`].

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Deserializer};
use strata_core::{Position, Timestamp};
use strata_server::{ApiError, ErrorEnvelope, FreshQuery, Freshness, ModuleError, Path};
use strata_shop::{AsOf, PAGE_LIMIT, PageRequest};
use utoipa::IntoParams;

use crate::wire::{
    DaySalesPage, OrderAnswer, OrderAsOfJson, OrderHistory, OrderJson, OrdersPage, ProductJson,
    ProductsPage,
};
use crate::{DEFAULT_PAGE, ShopFailure, ShopState};

/// What a query route returns.
type QueryResult<T> = Result<Json<T>, ShopFailure>;

/// Which page of a listing.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// The `next` of the previous page; none for the first page.
    cursor: Option<String>,
    /// How many items at most: 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// The page a listing asks for; a limit of 0 or past [`PAGE_LIMIT`] is refused.
fn page(cursor: Option<String>, limit: Option<usize>) -> Result<PageRequest, ShopFailure> {
    let limit = match limit {
        None => DEFAULT_PAGE,
        Some(0) => {
            return Err(ModuleError::api(ApiError::invalid(
                "limit must be at least 1",
            )));
        }
        Some(n) if n > PAGE_LIMIT => {
            return Err(ModuleError::api(ApiError::invalid(format!(
                "limit {n} is over the maximum of {PAGE_LIMIT}"
            ))));
        }
        Some(n) => n,
    };
    Ok(PageRequest { cursor, limit })
}

/// Time travel: a global position, or an RFC 3339 instant.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AsOfParam(AsOf);

impl<'de> Deserialize<'de> for AsOfParam {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        if let Ok(position) = text.parse::<u64>() {
            return Ok(Self(AsOf::Position(Position(position))));
        }
        Timestamp::parse_rfc3339(&text)
            .map(|time| Self(AsOf::Time(time)))
            .map_err(|_| {
                serde::de::Error::custom(format!(
                    "must be a position or an RFC 3339 time, not {text:?}"
                ))
            })
    }
}

/// A query on an order: now, or as it was.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct OrderQuery {
    /// Time travel: the order as of a global position or an RFC 3339 time, folded from
    /// the log (`after` then needs no wait).
    #[param(value_type = Option<String>)]
    as_of: Option<AsOfParam>,
    /// Waits (up to `timeout_ms`) until checkout has settled a placed order, so its
    /// status is `confirmed` or `cancelled`; when the time runs out first, the order as
    /// it is then (still `placed`).
    #[serde(default)]
    settled: bool,
}

/// An order: now from its read model, or as it was with `as_of`.
#[utoipa::path(
    get,
    path = "/shop/orders/{id}",
    tag = "shop",
    params(("id" = String, Path, description = "The order's id"), Freshness, OrderQuery),
    responses(
        (status = 200, description = "The order; with `as_of`, as it was then (`existed` false when it was created later)", body = OrderAnswer),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
pub(crate) async fn order(
    State(state): State<ShopState>,
    Path(id): Path<String>,
    query: FreshQuery<OrderQuery>,
) -> QueryResult<OrderAnswer> {
    let shop = state.module();
    if let Some(AsOfParam(at)) = query.params.as_of {
        let past = shop.order_as_of(&id, at).await?;
        return Ok(Json(OrderAnswer::AsOf(OrderAsOfJson::new(id, past))));
    }
    let fresh = query.freshness;
    let view = if query.params.settled {
        shop.settled_order(&id, fresh.after(), fresh.timeout())
            .await?
    } else {
        shop.order(&id, fresh.after(), fresh.timeout()).await?
    };
    Ok(Json(OrderAnswer::Now(OrderJson::from(view))))
}

/// A page of every order, newest first.
#[utoipa::path(
    get,
    path = "/shop/orders",
    tag = "shop",
    params(Freshness, PageQuery),
    responses(
        (status = 200, description = "The orders, newest first, and the next page's cursor", body = OrdersPage),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
pub(crate) async fn orders(
    State(state): State<ShopState>,
    query: FreshQuery<PageQuery>,
) -> QueryResult<OrdersPage> {
    let page = page(query.params.cursor, query.params.limit)?;
    let fresh = query.freshness;
    let orders = state
        .module()
        .orders(&page, fresh.after(), fresh.timeout())
        .await?;
    Ok(Json(orders.into()))
}

/// A page of a customer's orders, oldest first.
#[utoipa::path(
    get,
    path = "/shop/customers/{customer}/orders",
    tag = "shop",
    params(("customer" = String, Path, description = "The customer"), Freshness, PageQuery),
    responses(
        (status = 200, description = "The orders and the next page's cursor", body = OrdersPage),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
pub(crate) async fn customer_orders(
    State(state): State<ShopState>,
    Path(customer): Path<String>,
    query: FreshQuery<PageQuery>,
) -> QueryResult<OrdersPage> {
    let page = page(query.params.cursor, query.params.limit)?;
    let fresh = query.freshness;
    let orders = state
        .module()
        .customer_orders(&customer, &page, fresh.after(), fresh.timeout())
        .await?;
    Ok(Json(orders.into()))
}

/// A product search or the catalog, a page at a time.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ProductsQuery {
    /// Full-text search on name and description (every word, as prefixes), best first;
    /// without it, the catalog by sku.
    q: Option<String>,
    /// The `next` of the previous page; none for the first page.
    cursor: Option<String>,
    /// How many products at most: 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
}

/// Searches products, or lists the catalog with available stock.
#[utoipa::path(
    get,
    path = "/shop/products",
    tag = "shop",
    params(Freshness, ProductsQuery),
    responses(
        (status = 200, description = "The products and the next page's cursor", body = ProductsPage),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
pub(crate) async fn products(
    State(state): State<ShopState>,
    query: FreshQuery<ProductsQuery>,
) -> QueryResult<ProductsPage> {
    let ProductsQuery { q, cursor, limit } = query.params;
    let page = page(cursor, limit)?;
    let (after, timeout) = (query.freshness.after(), query.freshness.timeout());
    let shop = state.module();
    let answer = match q.as_deref().map(str::trim) {
        Some(q) if !q.is_empty() => shop.search_products(q, &page, after, timeout).await?.into(),
        _ => shop.products(&page, after, timeout).await?.into(),
    };
    Ok(Json(answer))
}

/// A product with its available stock.
#[utoipa::path(
    get,
    path = "/shop/products/{sku}",
    tag = "shop",
    params(("sku" = String, Path, description = "The product's sku"), Freshness),
    responses(
        (status = 200, description = "The product with its available stock", body = ProductJson),
        (status = 404, description = "No such product", body = ErrorEnvelope),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
pub(crate) async fn product(
    State(state): State<ShopState>,
    Path(sku): Path<String>,
    fresh: Freshness,
) -> QueryResult<ProductJson> {
    let view = state
        .module()
        .product(&sku, fresh.after(), fresh.timeout())
        .await?;
    Ok(Json(view.into()))
}

/// Confirmed orders and revenue per UTC day, a page at a time.
#[utoipa::path(
    get,
    path = "/shop/sales/daily",
    tag = "shop",
    params(Freshness, PageQuery),
    responses(
        (status = 200, description = "The days, oldest first, and the next page's cursor", body = DaySalesPage),
        (status = 503, description = "consistency_timeout", body = ErrorEnvelope),
    )
)]
pub(crate) async fn daily_sales(
    State(state): State<ShopState>,
    query: FreshQuery<PageQuery>,
) -> QueryResult<DaySalesPage> {
    let page = page(query.params.cursor, query.params.limit)?;
    let fresh = query.freshness;
    let days = state
        .module()
        .daily_sales(&page, fresh.after(), fresh.timeout())
        .await?;
    Ok(Json(days.into()))
}

/// Every event of an order, with who asked, when, and why.
#[utoipa::path(
    get,
    path = "/shop/orders/{id}/history",
    tag = "shop",
    params(("id" = String, Path, description = "The order's id"), Freshness),
    responses(
        (status = 200, description = "The events with actor, command, causation and correlation ids", body = OrderHistory),
        (status = 404, description = "No such order", body = ErrorEnvelope),
    )
)]
pub(crate) async fn order_history(
    State(state): State<ShopState>,
    Path(id): Path<String>,
    // The history is read from the log itself, so it is always up to date: `after` and
    // `timeout_ms` are accepted like on every query and need no wait.
    _fresh: Freshness,
) -> QueryResult<OrderHistory> {
    let history = state.module().order_history(&id).await?;
    Ok(Json(OrderHistory {
        events: history.into_iter().map(Into::into).collect(),
    }))
}
