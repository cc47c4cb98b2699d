//! The seam through which a domain plugs into the server: a [`Module`] brings its routes
//! and their OpenAPI description, the way the shop does and a user's own domain would.

use utoipa_axum::router::OpenApiRouter;

use crate::AppState;

/// A set of routes mounted on the server.
///
/// Routes are added with `utoipa_axum::routes!`, so each one is described in the
/// server's OpenAPI document. Handlers may extract `State<AppState>` for the store, the
/// limits and the counters; a module's own services travel inside the router (as
/// state given with `with_state`, or an `Extension`).
pub trait Module: Send + Sync + 'static {
    /// The module's name, for logs.
    fn name(&self) -> &str;

    /// The module's routes and their OpenAPI paths.
    fn routes(&self) -> OpenApiRouter<AppState>;
}
