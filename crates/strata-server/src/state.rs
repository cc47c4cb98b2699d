//! What every handler shares: the store, the projections host, the modules, the tokens,
//! the limits, the live counters and the shutdown signal. It starts no task of its own.

use std::sync::Arc;
use std::time::Duration;

use strata_store::EventStore;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

use crate::metrics::Stats;
use crate::{Module, ProjectionHost, RelayHost, Tokens};

/// The largest request body by default: 2 MiB.
pub const DEFAULT_BODY_LIMIT: usize = 2 * 1024 * 1024;
/// How long a request may take by default (subscriptions excepted).
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a client has to send a request's head by default, and how long a kept-alive
/// connection may stay idle.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request body may stop arriving by default.
pub const DEFAULT_BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a client may take no bytes at all, while the server has some to send, by
/// default.
pub const DEFAULT_SEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How many subscriptions are served at once by default.
pub const DEFAULT_MAX_SUBSCRIBERS: usize = 512;
/// How long a subscriber may leave an event untaken by default before it is told it is
/// too slow and disconnected.
pub const DEFAULT_SUBSCRIBER_STALL: Duration = Duration::from_secs(10);

/// Limits that protect the server from its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest request body, in bytes (413 `too_large` above it).
    pub body_bytes: usize,
    /// How long a request may take before it is answered 503 `timeout`; subscriptions
    /// are exempt.
    pub request_timeout: Duration,
    /// The most events one read returns.
    pub max_read: usize,
    /// The longest `timeout_ms` a query may ask to wait for its read model.
    pub max_wait: Duration,
    /// The most connections served at once; one more is answered 503
    /// `too_many_connections` and closed. `None`: derived from the file descriptor limit
    /// (see [`crate::derived_max_connections`]).
    pub max_connections: Option<usize>,
    /// How long a client has to send a request's head; also how long a kept-alive
    /// connection may stay idle between requests.
    pub header_timeout: Duration,
    /// How long a request body may stop arriving before the request is refused.
    pub body_timeout: Duration,
    /// How long a client may take no bytes at all while the server has some to send
    /// before its connection is closed.
    pub send_timeout: Duration,
    /// The most subscriptions served at once; one more is answered 503
    /// `too_many_subscribers`.
    pub max_subscribers: usize,
    /// How long a subscriber may leave an event untaken before it is sent a last
    /// `subscriber_too_slow` event and disconnected.
    pub subscriber_stall: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            body_bytes: DEFAULT_BODY_LIMIT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_read: 1000,
            max_wait: Duration::from_secs(30),
            max_connections: None,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            body_timeout: DEFAULT_BODY_TIMEOUT,
            send_timeout: DEFAULT_SEND_TIMEOUT,
            max_subscribers: DEFAULT_MAX_SUBSCRIBERS,
            subscriber_stall: DEFAULT_SUBSCRIBER_STALL,
        }
    }
}

/// The state behind [`crate::app`]. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn EventStore>,
    projections: Option<Arc<dyn ProjectionHost>>,
    relays: Option<Arc<dyn RelayHost>>,
    modules: Vec<Arc<dyn Module>>,
    tokens: Option<Tokens>,
    limits: Limits,
    stats: Stats,
    shutdown: watch::Sender<bool>,
    /// One permit per subscription being served.
    subscribers: Arc<Semaphore>,
}

impl AppState {
    /// A state over `store`, with no projections, no modules and no tokens.
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        AppStateBuilder::new(store).build()
    }

    /// A builder for a state with projections, modules, tokens or limits.
    pub fn builder(store: Arc<dyn EventStore>) -> AppStateBuilder {
        AppStateBuilder::new(store)
    }

    /// The event store.
    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.inner.store
    }

    /// The projections host, if the server runs one.
    pub fn projections(&self) -> Option<&Arc<dyn ProjectionHost>> {
        self.inner.projections.as_ref()
    }

    /// The relays host, if the server runs relays.
    pub fn relays(&self) -> Option<&Arc<dyn RelayHost>> {
        self.inner.relays.as_ref()
    }

    /// The modules mounted on the server.
    pub fn modules(&self) -> &[Arc<dyn Module>] {
        &self.inner.modules
    }

    /// The configured tokens; `None` when access is open.
    pub fn tokens(&self) -> Option<&Tokens> {
        self.inner.tokens.as_ref()
    }

    /// The limits.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// The live counters.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// Tells long-lived responses (subscriptions) and background tasks to end. Called
    /// when graceful shutdown begins, so in-flight requests can finish.
    pub fn begin_shutdown(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// A permit to serve one more subscription, or `None` when
    /// [`Limits::max_subscribers`] are being served.
    pub(crate) fn subscriber_permit(&self) -> Option<OwnedSemaphorePermit> {
        self.inner.subscribers.clone().try_acquire_owned().ok()
    }

    /// A receiver that turns true when shutdown begins.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }
}

/// Builds an [`AppState`].
pub struct AppStateBuilder {
    store: Arc<dyn EventStore>,
    projections: Option<Arc<dyn ProjectionHost>>,
    relays: Option<Arc<dyn RelayHost>>,
    modules: Vec<Arc<dyn Module>>,
    tokens: Option<Tokens>,
    limits: Limits,
}

impl AppStateBuilder {
    fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            projections: None,
            relays: None,
            modules: Vec::new(),
            tokens: None,
            limits: Limits::default(),
        }
    }

    /// Serves the operations routes from this projections host.
    #[must_use]
    pub fn projections(mut self, host: Arc<dyn ProjectionHost>) -> Self {
        self.projections = Some(host);
        self
    }

    /// Serves `/relays` (and the relay metrics) from this relays host.
    #[must_use]
    pub fn relays(mut self, host: Arc<dyn RelayHost>) -> Self {
        self.relays = Some(host);
        self
    }

    /// Mounts a module's routes.
    #[must_use]
    pub fn module(mut self, module: Arc<dyn Module>) -> Self {
        self.modules.push(module);
        self
    }

    /// Requires bearer tokens (an empty set is treated as none).
    #[must_use]
    pub fn tokens(mut self, tokens: Option<Tokens>) -> Self {
        self.tokens = tokens.filter(|t| !t.is_empty());
        self
    }

    /// Uses these limits.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// The state.
    pub fn build(self) -> AppState {
        let shutdown = watch::Sender::new(false);
        AppState {
            inner: Arc::new(Inner {
                store: self.store,
                projections: self.projections,
                relays: self.relays,
                modules: self.modules,
                tokens: self.tokens,
                limits: self.limits,
                stats: Stats::new(),
                shutdown,
                subscribers: Arc::new(Semaphore::new(self.limits.max_subscribers)),
            }),
        }
    }
}
