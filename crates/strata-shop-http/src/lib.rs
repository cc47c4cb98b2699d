//! The shop's HTTP module: the routes of strata-shop's [`Shop`] service, mounted on
//! strata-server through its [`Module`] seam exactly as a user's own domain would be,
//! from a crate of its own and with nothing but the server's public API.
//!
//! Commands take their context from the command headers ([`strata_server::CommandHeaders`])
//! and answer `{"position", "events", "duplicate"}`; the position is the consistency
//! token that queries accept as `after`. Every answer is a typed struct described in the
//! OpenAPI document. The module holds no shop rule: it parses, calls one `Shop` method,
//! and maps the result.

mod commands;
mod queries;
mod wire;

use axum::http::StatusCode;
use strata_server::{
    ApiError, AppState, CONSISTENCY_TIMEOUT, ErrorMapping, IDEMPOTENCY_KEY_REUSED, Module,
    ModuleError, ModuleRoutes, ModuleState, Role, Routes,
};
use strata_shop::{Shop, ShopError};
use utoipa_axum::routes;

pub use wire::{
    DaySalesJson, DaySalesPage, HistoryEntryJson, OrderAnswer, OrderAsOfJson, OrderHistory,
    OrderJson, OrderLineJson, OrderSummaryJson, OrdersPage, ProductHitJson, ProductJson,
    ProductListing, ProductsPage,
};

/// How many items a listing answers when `limit` is not given.
pub const DEFAULT_PAGE: usize = 100;

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

/// The state of the shop's handlers: the shop beside the server's state.
type ShopState = ModuleState<Shop>;

/// What a shop handler returns when it fails.
type ShopFailure = ModuleError<ShopError, ShopModule>;

impl Module for ShopModule {
    fn name(&self) -> &str {
        "shop"
    }

    /// Products, inventory, orders and payments are written only through the shop's
    /// commands: a raw append could put an event there that no rule allowed.
    fn owned_categories(&self) -> &[&str] {
        &Shop::CATEGORIES
    }

    fn routes(&self, host: &AppState) -> ModuleRoutes {
        Routes::<ShopState>::new()
            .route(Role::Write, routes!(commands::create_product))
            .route(Role::Read, routes!(queries::product))
            .route(Role::Read, routes!(queries::products))
            .route(Role::Write, routes!(commands::receive_stock))
            .route(Role::Write, routes!(commands::create_order))
            .route(Role::Read, routes!(queries::order))
            .route(Role::Write, routes!(commands::add_line))
            .route(Role::Write, routes!(commands::remove_line))
            .route(Role::Write, routes!(commands::place))
            .route(Role::Write, routes!(commands::cancel))
            .route(Role::Write, routes!(commands::ship))
            .route(Role::Read, routes!(queries::orders))
            .route(Role::Read, routes!(queries::customer_orders))
            .route(Role::Read, routes!(queries::daily_sales))
            .route(Role::Read, routes!(queries::order_history))
            .with_state(ModuleState::new(host.clone(), self.shop.clone()))
    }
}

impl ErrorMapping<ShopError> for ShopModule {
    fn api_error(error: ShopError) -> ApiError {
        let message = error.to_string();
        match error {
            ShopError::Refused { code, .. } => ApiError::domain(code, message),
            ShopError::NotFound { .. } => ApiError::not_found("not_found", message),
            ShopError::InvalidId { .. } | ShopError::InvalidCursor { .. } => {
                ApiError::invalid(message)
            }
            ShopError::Conflict { .. } => ApiError::conflict("conflict", message),
            ShopError::NotCaughtUp { position, .. } => ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                CONSISTENCY_TIMEOUT,
                message,
            )
            .with_detail("after", position.0),
            ShopError::CommandIdReused(_) => ApiError::domain(IDEMPOTENCY_KEY_REUSED, message),
            ShopError::Store(store) => ApiError::from(store),
            // A read model stopped for good is 503 `read_model_stopped` naming it; any
            // other failure of one is the server's fault.
            ShopError::ReadModel(err) => ApiError::from(err),
            // A read model's failure, a stored event that does not decode: the server's
            // fault, answered opaquely with the cause in the log.
            _ => ApiError::internal(message),
        }
    }
}

#[cfg(test)]
mod tests;
