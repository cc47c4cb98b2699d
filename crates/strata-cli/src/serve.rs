//! `strata serve`: the whole system in one process. Opens the event store (the embedded
//! one in the data directory, or PostgreSQL with `--store postgres://...`), the shop's
//! SQLite read models and process managers, starts the relays to message brokers, mounts
//! the shop on the HTTP server, and serves until SIGINT or SIGTERM; then finishes in-flight
//! requests, stops the projections and relays at a checkpoint, and closes the store.
//!
//! It wires components together; the HTTP edge is strata-server's, the shop is
//! strata-shop's and its routes are strata-shop-http's.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use strata_domain::CommandHandler;
use strata_projection::{ProcessManagers, Projections, SqliteSnapshots};
use strata_relay::{RelayConfig, Relays};
use strata_server::{AppState, Limits, ReadSide, Tokens, check_exposure};
use strata_shop::{FakePaymentProvider, Shop};
use strata_shop_http::ShopModule;
use strata_store::EventStore;
use strata_store_embedded::EmbeddedStore;
use strata_store_postgres::{PostgresOptions, PostgresStore};

/// `strata serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// A TOML file setting any of these options (and --data-dir), by their long names:
    /// `listen = "127.0.0.1:7700"`. A flag or its environment variable wins over the file;
    /// relative paths in it are relative to its directory. docs/strata.toml is an example.
    #[arg(long, env = "STRATA_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,

    /// The address to listen on. Without tokens only a loopback address is accepted
    /// (unless --insecure).
    #[arg(
        long,
        env = "STRATA_LISTEN",
        default_value = "127.0.0.1:7700",
        value_name = "ADDR"
    )]
    pub(crate) listen: SocketAddr,

    /// A file of bearer tokens, one `token role [name]` per line (roles: read, write,
    /// admin; the name is the actor recorded on the events of the token's commands).
    /// Each token is at least 16 bytes and appears once. With tokens, every request
    /// needs one.
    #[arg(long, env = "STRATA_TOKENS_FILE", value_name = "FILE")]
    pub(crate) tokens: Option<PathBuf>,

    /// Listen beyond loopback without tokens: anyone who reaches the port can read and
    /// write everything.
    #[arg(long)]
    pub(crate) insecure: bool,

    /// The most connections served at once; one more is answered 503 and closed.
    /// Default: the open-file limit (`ulimit -n`) minus 256 descriptors kept for the store
    /// and the read models.
    #[arg(long, env = "STRATA_MAX_CONNECTIONS", value_name = "N")]
    pub(crate) max_connections: Option<usize>,

    /// Seconds a client has to send a request's head; a kept-alive connection idle this
    /// long is closed too.
    #[arg(long, value_name = "SECONDS", default_value_t = strata_server::DEFAULT_HEADER_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) header_timeout: u64,

    /// Seconds a request body may stop arriving before the request is refused.
    #[arg(long, value_name = "SECONDS", default_value_t = strata_server::DEFAULT_BODY_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) body_timeout: u64,

    /// Seconds a client may take no bytes at all, while the server has some to send,
    /// before its connection is closed.
    #[arg(long, value_name = "SECONDS", default_value_t = strata_server::DEFAULT_SEND_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) send_timeout: u64,

    /// The most `/subscribe` clients served at once; one more is answered 503
    /// `too_many_subscribers`.
    #[arg(long, value_name = "N", default_value_t = strata_server::DEFAULT_MAX_SUBSCRIBERS)]
    pub(crate) max_subscribers: usize,

    /// Seconds a subscriber may leave an event untaken before it is sent a last
    /// `subscriber_too_slow` event and disconnected.
    #[arg(long, value_name = "SECONDS", default_value_t = strata_server::DEFAULT_SUBSCRIBER_STALL.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) subscriber_stall: u64,

    /// How logs are written to standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// Where events are stored: a `postgres://` (or `postgresql://`) URL. Unset, the
    /// embedded store in the data directory. The read models and snapshots stay in the
    /// data directory either way.
    #[arg(long, env = "STRATA_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,
    /// Publish every event to a message broker, in order, from a checkpoint kept in the
    /// data directory (repeatable): `nats://HOST:4222` (JetStream, subjects
    /// `strata.events.<category>.<stream>`) or `amqp://USER:PASSWORD@HOST:5672/%2f`
    /// (topic exchange `strata.events`, routing key `<category>.<type>`). See
    /// docs/relays.md.
    #[arg(long = "relay", value_name = "URL")]
    pub(crate) relays: Vec<String>,

    /// Keep the shop's catalog in Redis too and cache its hot queries there (a product,
    /// a catalog page, a product search, an order), invalidated by events: `redis://HOST:6379`. Unset,
    /// nothing uses Redis.
    #[arg(long, env = "STRATA_REDIS", value_name = "URL")]
    pub(crate) redis: Option<String>,

    /// The prefix of every Redis key the server writes (with --redis): servers of
    /// different logs sharing one Redis need different prefixes.
    #[arg(long, env = "STRATA_REDIS_PREFIX", value_name = "PREFIX", default_value = strata_projection::REDIS_DEFAULT_PREFIX)]
    pub(crate) redis_prefix: String,

    #[command(flatten)]
    pub(crate) write: crate::args::WriteArgs,
}

/// The event store a server runs on, kept to close it at the end.
enum Store {
    Embedded(EmbeddedStore),
    Postgres(PostgresStore),
}

impl Store {
    async fn open(dir: &Path, args: &ServeArgs) -> anyhow::Result<(Self, Arc<dyn EventStore>)> {
        let Some(url) = args.store.as_deref() else {
            let store = crate::open_writer(dir, &args.write)?;
            let shared: Arc<dyn EventStore> = Arc::new(store.clone());
            return Ok((Store::Embedded(store), shared));
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            anyhow::bail!("--store takes a postgres:// URL, not {:?}", redacted(url));
        }
        let store = PostgresStore::connect(url, PostgresOptions::default())
            .await
            .with_context(|| format!("cannot open the event store at {}", redacted(url)))?;
        let shared: Arc<dyn EventStore> = Arc::new(store.clone());
        Ok((Store::Postgres(store), shared))
    }

    async fn close(self, dir: &Path) -> anyhow::Result<()> {
        match self {
            Store::Embedded(store) => crate::close(store, dir).await,
            Store::Postgres(store) => {
                store.close();
                Ok(())
            }
        }
    }

    fn describe(&self, dir: &Path) -> String {
        match self {
            Store::Embedded(_) => format!("the embedded store in {}", dir.display()),
            Store::Postgres(store) => format!(
                "postgres database {} on {}",
                store.config().get_dbname().unwrap_or("(default)"),
                store
                    .config()
                    .get_hosts()
                    .iter()
                    .map(|host| format!("{host:?}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        }
    }
}

/// A connection URL without its password, for messages.
pub(crate) fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}@{}", &url[..scheme + 3], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum LogFormat {
    /// For people.
    Text,
    /// One JSON object per line, for machines.
    Json,
}

/// Starts logging for the server: `info` by default (`RUST_LOG` overrides).
pub(crate) fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(crate::progress::colour())
            .with_target(false)
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Where the shop keeps its databases inside the data directory.
fn read_dir(dir: &Path) -> PathBuf {
    dir.join("read")
}

/// Serves until `shutdown` completes, then closes everything in order.
pub(crate) async fn run(
    dir: &Path,
    args: ServeArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let tokens = args.tokens.as_deref().map(Tokens::from_file).transpose()?;
    check_exposure(args.listen, tokens.is_some(), args.insecure)?;
    let relay_configs = args
        .relays
        .iter()
        .map(|url| RelayConfig::from_url(url))
        .collect::<Result<Vec<_>, _>>()?;

    let (store, shared) = Store::open(dir, &args).await?;
    let read = read_dir(dir);
    let snapshots = SqliteSnapshots::open(read.join("snapshots.sqlite"))
        .context("cannot open the snapshot database")?;
    let handler = Arc::new(CommandHandler::new(shared.clone(), Arc::new(snapshots)));
    let projections = Projections::new(shared.clone(), read.join("models"));
    let processes = ProcessManagers::new(shared.clone(), read.join("processes"));
    let shop = Shop::new(
        handler,
        projections.clone(),
        &processes,
        Arc::new(FakePaymentProvider::default()),
    )
    .context("cannot set up the shop")?;
    let (shop, redis) = match args.redis.as_deref() {
        Some(url) => {
            let (shop, host) =
                crate::redis_side::attach(url, &args.redis_prefix, shared.clone(), shop)?;
            (shop, Some(host))
        }
        None => (shop, None),
    };
    projections.start();
    processes.start();

    let relays = Relays::new(shared.clone(), dir.join("relays"));
    let state = AppState::builder(shared)
        .projections(crate::redis_side::read_side(
            ReadSide::new(projections, Some(processes)),
            redis,
        ))
        .module(Arc::new(ShopModule::new(shop)))
        .tokens(tokens)
        .limits(Limits {
            max_connections: args.max_connections,
            header_timeout: Duration::from_secs(args.header_timeout),
            body_timeout: Duration::from_secs(args.body_timeout),
            send_timeout: Duration::from_secs(args.send_timeout),
            max_subscribers: args.max_subscribers,
            subscriber_stall: Duration::from_secs(args.subscriber_stall),
            ..Limits::default()
        })
        .build();
    // NOTE: after the state is built, which installs the metrics recorder the relays count
    // into.
    for config in relay_configs {
        let target = config.destination.target();
        relays.start(config)?;
        tracing::info!("relaying events to {target}");
    }
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    tracing::info!(
        data_dir = %dir.display(),
        store = %store.describe(dir),
        "strata is serving on http://{addr} (console at http://{addr}/)"
    );
    let served = strata_server::serve(listener, state, shutdown).await;
    relays.shutdown().await;
    let closed = store.close(dir).await;
    served?;
    closed?;
    tracing::info!("strata stopped");
    Ok(())
}
