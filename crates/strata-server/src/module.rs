//! The seam through which a domain plugs into the server: a [`Module`] brings its routes,
//! each declared with the [`Role`] it needs and described in the OpenAPI document, and the
//! typed state its handlers extract. The shop mounts this way, and so would a user's own
//! domain, from its own crate.
//!
//! It must not know any domain: what a module's handlers do is theirs; this module only
//! checks that every route says who may call it and that its state is given.

use std::collections::HashMap;

use axum::extract::FromRef;
use axum::http::Method;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::SecurityRequirement;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};

use crate::{AppState, Role};

/// The name of the bearer-token security scheme in the OpenAPI document.
pub(crate) const BEARER_SCHEME: &str = "bearer";

/// The code of the 403 answered for a raw append into a category a module owns (see
/// [`Module::owned_categories`]).
pub const CATEGORY_OWNED: &str = "category_owned";

/// A set of routes mounted on the server.
///
/// A module builds its routes with [`Routes`]: each group from `utoipa_axum::routes!`
/// declares the role it needs, and the routes become mountable only once their state is
/// given, so a module cannot forget it (a compile error, not a 500 at run time). Its
/// errors reach clients through [`crate::ErrorMapping`]; its commands read their context
/// with [`crate::CommandHeaders`] and answer [`crate::CommandAnswer`]; its queries take
/// [`crate::Freshness`].
pub trait Module: Send + Sync + 'static {
    /// The module's name, for logs.
    fn name(&self) -> &str;

    /// The module's routes, their roles and their OpenAPI paths. `host` is the server's
    /// state (store, limits, counters), for a module that wants it beside its own (see
    /// [`ModuleState`]).
    fn routes(&self, host: &AppState) -> ModuleRoutes;

    /// The stream categories whose events only this module's commands write (its
    /// aggregates' categories, such as `order`). The server refuses a raw append
    /// (`POST /streams/{stream}`) into them with 403 [`crate::CATEGORY_OWNED`] unless the
    /// caller holds an admin token: the module's aggregates and read models trust those
    /// events to have passed its rules. None by default.
    fn owned_categories(&self) -> &[&str] {
        &[]
    }
}

/// A module's own state beside the host's: what its handlers extract as
/// `State<ModuleState<M>>`. Extractors that need the host's limits (such as
/// [`crate::Freshness`]) find them through it.
#[derive(Clone)]
pub struct ModuleState<M> {
    host: AppState,
    module: M,
}

impl<M> ModuleState<M> {
    /// The module's `module` state beside the server's `host` state.
    pub fn new(host: AppState, module: M) -> Self {
        Self { host, module }
    }

    /// The server's state: the store, the limits, the counters.
    pub fn host(&self) -> &AppState {
        &self.host
    }

    /// The module's own state.
    pub fn module(&self) -> &M {
        &self.module
    }
}

impl<M: Clone> FromRef<ModuleState<M>> for AppState {
    fn from_ref(state: &ModuleState<M>) -> Self {
        state.host.clone()
    }
}

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone: the console's static files, which hold no data.
    Public,
    /// A bearer token with this role or a higher one (when tokens are configured).
    Needs(Role),
}

/// The access each routed operation needs, by method and route path (as axum's
/// `MatchedPath` gives it: `/shop/orders/{id}`).
#[derive(Debug, Clone, Default)]
pub(crate) struct AccessTable {
    entries: HashMap<(Method, String), Access>,
}

impl AccessTable {
    /// The access `method` on the route `path` needs. A HEAD is a GET without its body.
    pub(crate) fn get(&self, method: &Method, path: &str) -> Option<Access> {
        let method = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        self.entries
            .get(&(method.clone(), path.to_owned()))
            .copied()
    }

    fn extend(&mut self, other: AccessTable) {
        self.entries.extend(other.entries);
    }
}

/// Routes under construction whose handlers extract the state `S`. Each group is added
/// with the role it needs; [`Routes::with_state`] gives the state and makes them
/// mountable. Routes whose state was not given cannot be mounted:
///
/// ```compile_fail
/// use strata_server::{AppState, ModuleRoutes, Routes};
///
/// fn routes(_host: &AppState) -> ModuleRoutes {
///     Routes::<String>::new() // no `.with_state(...)`: a type error
/// }
/// ```
pub struct Routes<S> {
    router: OpenApiRouter<S>,
    access: AccessTable,
}

impl<S: Clone + Send + Sync + 'static> Default for Routes<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Clone + Send + Sync + 'static> Routes<S> {
    /// No routes yet.
    pub fn new() -> Self {
        Self {
            router: OpenApiRouter::new(),
            access: AccessTable::default(),
        }
    }

    /// Adds the operations of one `utoipa_axum::routes!` group, each needing `role` when
    /// the server has tokens. The OpenAPI description of each operation names the role
    /// in its `security` requirement.
    #[must_use]
    pub fn route(self, role: Role, routes: UtoipaMethodRouter<S>) -> Self {
        self.add(Access::Needs(role), routes)
    }

    /// Adds routes anyone may call, tokens or not.
    #[must_use]
    pub(crate) fn public(self, routes: UtoipaMethodRouter<S>) -> Self {
        self.add(Access::Public, routes)
    }

    fn add(mut self, access: Access, (schemas, mut paths, router): UtoipaMethodRouter<S>) -> Self {
        let requirement = match access {
            // An empty requirement: no authentication.
            Access::Public => SecurityRequirement::default(),
            Access::Needs(role) => SecurityRequirement::new(BEARER_SCHEME, [role.to_string()]),
        };
        for (path, item) in &mut paths.paths {
            for (method, operation) in operations(item) {
                operation.security = Some(vec![requirement.clone()]);
                self.access.entries.insert((method, path.clone()), access);
            }
        }
        self.router = self.router.routes((schemas, paths, router));
        self
    }

    /// Gives the routes their state: they can now be mounted on the server.
    pub fn with_state(self, state: S) -> ModuleRoutes {
        ModuleRoutes {
            router: self.router.with_state(state),
            access: self.access,
        }
    }
}

/// Every operation of a path item, with its method.
fn operations(
    item: &mut utoipa::openapi::PathItem,
) -> impl Iterator<Item = (Method, &mut Operation)> {
    [
        (Method::GET, &mut item.get),
        (Method::PUT, &mut item.put),
        (Method::POST, &mut item.post),
        (Method::DELETE, &mut item.delete),
        (Method::OPTIONS, &mut item.options),
        (Method::HEAD, &mut item.head),
        (Method::PATCH, &mut item.patch),
        (Method::TRACE, &mut item.trace),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|op| (method, op)))
}

/// Routes ready to mount: their state given, each operation with the access it needs.
pub struct ModuleRoutes {
    pub(crate) router: OpenApiRouter<AppState>,
    pub(crate) access: AccessTable,
}

impl ModuleRoutes {
    /// Both sets of routes.
    #[must_use]
    pub(crate) fn merge(mut self, other: ModuleRoutes) -> Self {
        self.router = self.router.merge(other.router);
        self.access.extend(other.access);
        self
    }
}
