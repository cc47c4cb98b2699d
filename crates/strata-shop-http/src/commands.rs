//! The shop's command routes: each reads its body and the command headers, runs one
//! `Shop` command through the server's [`run_command`] and answers its
//! [`CommandAnswer`].

use axum::extract::State;
use serde::Deserialize;
use strata_server::{CommandAnswer, CommandHeaders, ErrorEnvelope, JsonBody, Path, run_command};
use strata_shop::domain::Money;
use utoipa::ToSchema;

use crate::{ShopFailure, ShopState};

/// What a command route returns.
type CommandResult = Result<CommandAnswer, ShopFailure>;

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
    params(("sku" = String, Path, description = "The product's sku"), CommandHeaders),
    request_body = NewProduct,
    responses(
        (status = 200, description = "Created", body = CommandAnswer),
        (status = 400, description = "Malformed body or sku", body = ErrorEnvelope),
        (status = 409, description = "conflict: retries exhausted", body = ErrorEnvelope),
        (status = 422, description = "Refused: `product_exists`, `invalid_name`, `invalid_price`...", body = ErrorEnvelope),
    )
)]
pub(crate) async fn create_product(
    State(state): State<ShopState>,
    Path(sku): Path<String>,
    CommandHeaders(context): CommandHeaders,
    JsonBody(body): JsonBody<NewProduct>,
) -> CommandResult {
    let shop = state.module();
    let command = shop.create_product(
        &sku,
        &body.name,
        &body.description,
        Money(body.price),
        &context,
    );
    Ok(run_command(state.host(), "create_product", command).await?)
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
    params(("sku" = String, Path, description = "The product's sku"), CommandHeaders),
    request_body = Receive,
    responses(
        (status = 200, description = "Received", body = CommandAnswer),
        (status = 400, description = "Malformed body", body = ErrorEnvelope),
        (status = 422, description = "Refused: `product_not_found`, `invalid_quantity`...", body = ErrorEnvelope),
    )
)]
pub(crate) async fn receive_stock(
    State(state): State<ShopState>,
    Path(sku): Path<String>,
    CommandHeaders(context): CommandHeaders,
    JsonBody(body): JsonBody<Receive>,
) -> CommandResult {
    let command = state.module().receive_stock(&sku, body.quantity, &context);
    Ok(run_command(state.host(), "receive_stock", command).await?)
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
    params(("id" = String, Path, description = "The order's id"), CommandHeaders),
    request_body = NewOrder,
    responses(
        (status = 200, description = "Opened", body = CommandAnswer),
        (status = 400, description = "Malformed body or id", body = ErrorEnvelope),
        (status = 422, description = "Refused: `order_exists`, `invalid_customer`...", body = ErrorEnvelope),
    )
)]
pub(crate) async fn create_order(
    State(state): State<ShopState>,
    Path(id): Path<String>,
    CommandHeaders(context): CommandHeaders,
    JsonBody(body): JsonBody<NewOrder>,
) -> CommandResult {
    let command = state.module().create_order(&id, &body.customer, &context);
    Ok(run_command(state.host(), "create_order", command).await?)
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
    params(("id" = String, Path, description = "The order's id"), CommandHeaders),
    request_body = NewLine,
    responses(
        (status = 200, description = "Added", body = CommandAnswer),
        (status = 400, description = "Malformed body", body = ErrorEnvelope),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 422, description = "Refused: `product_not_found`, `order_not_draft`, `line_exists`...", body = ErrorEnvelope),
    )
)]
pub(crate) async fn add_line(
    State(state): State<ShopState>,
    Path(id): Path<String>,
    CommandHeaders(context): CommandHeaders,
    JsonBody(body): JsonBody<NewLine>,
) -> CommandResult {
    let command = state
        .module()
        .add_line(&id, &body.sku, body.quantity, &context);
    Ok(run_command(state.host(), "add_line", command).await?)
}

/// Removes a line.
#[utoipa::path(
    delete,
    path = "/shop/orders/{id}/lines/{sku}",
    tag = "shop",
    params(
        ("id" = String, Path, description = "The order's id"),
        ("sku" = String, Path, description = "The line's product"),
        CommandHeaders,
    ),
    responses(
        (status = 200, description = "Removed", body = CommandAnswer),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 422, description = "Refused: `order_not_draft`, `line_not_found`", body = ErrorEnvelope),
    )
)]
pub(crate) async fn remove_line(
    State(state): State<ShopState>,
    Path((id, sku)): Path<(String, String)>,
    CommandHeaders(context): CommandHeaders,
) -> CommandResult {
    let command = state.module().remove_line(&id, &sku, &context);
    Ok(run_command(state.host(), "remove_line", command).await?)
}

/// Places the order; checkout reserves stock, takes payment and confirms it, or
/// cancels it.
#[utoipa::path(
    post,
    path = "/shop/orders/{id}/place",
    tag = "shop",
    params(("id" = String, Path, description = "The order's id"), CommandHeaders),
    responses(
        (status = 200, description = "Placed", body = CommandAnswer),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 422, description = "Refused: `order_empty`, `order_not_draft`...", body = ErrorEnvelope),
    )
)]
pub(crate) async fn place(
    State(state): State<ShopState>,
    Path(id): Path<String>,
    CommandHeaders(context): CommandHeaders,
) -> CommandResult {
    let command = state.module().place(&id, &context);
    Ok(run_command(state.host(), "place", command).await?)
}

/// Cancels a draft or placed order.
#[utoipa::path(
    post,
    path = "/shop/orders/{id}/cancel",
    tag = "shop",
    params(("id" = String, Path, description = "The order's id"), CommandHeaders),
    responses(
        (status = 200, description = "Cancelled", body = CommandAnswer),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 422, description = "Refused: `order_confirmed`, `order_shipped`", body = ErrorEnvelope),
    )
)]
pub(crate) async fn cancel(
    State(state): State<ShopState>,
    Path(id): Path<String>,
    CommandHeaders(context): CommandHeaders,
) -> CommandResult {
    let command = state.module().cancel(&id, &context);
    Ok(run_command(state.host(), "cancel", command).await?)
}

/// Ships a confirmed order.
#[utoipa::path(
    post,
    path = "/shop/orders/{id}/ship",
    tag = "shop",
    params(("id" = String, Path, description = "The order's id"), CommandHeaders),
    responses(
        (status = 200, description = "Shipped", body = CommandAnswer),
        (status = 404, description = "No such order", body = ErrorEnvelope),
        (status = 422, description = "Refused: `order_not_paid`, `order_cancelled`", body = ErrorEnvelope),
    )
)]
pub(crate) async fn ship(
    State(state): State<ShopState>,
    Path(id): Path<String>,
    CommandHeaders(context): CommandHeaders,
) -> CommandResult {
    let command = state.module().ship(&id, &context);
    Ok(run_command(state.host(), "ship", command).await?)
}
