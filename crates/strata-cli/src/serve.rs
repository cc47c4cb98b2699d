//! `strata serve`: the whole system in one process. Opens the event store (the embedded
//! one in the data directory, or PostgreSQL with `--store postgres://...`), the shop's
//! read models (SQLite, or PostgreSQL with `--read-store postgres://...`) and process
//! managers, starts the relays to message brokers, mounts the shop on the HTTP server, and
//! serves until SIGINT or SIGTERM; then finishes in-flight requests, stops the projections
//! and relays at a checkpoint, and closes the store.
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
use strata_projection::{PostgresHome, PostgresHomeOptions, ProcessManagers, SqliteSnapshots};
use strata_relay::{RelayConfig, Relays};
use strata_server::{AppState, Limits, Tokens, check_exposure};
use strata_shop_http::ShopModule;
use strata_store::EventStore;
use strata_store_embedded::EmbeddedStore;
use strata_store_postgres::{PostgresOptions, PostgresStore, ReplicaOptions, ReplicatedStore};

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
    /// embedded store in the data directory. Snapshots stay in the data directory either
    /// way; the read models too unless --read-store says otherwise.
    #[arg(long, env = "STRATA_STORE", value_name = "URL")]
    pub(crate) store: Option<String>,
    /// A hot standby of the --store database, as a `postgres://` URL: reads, `/streams`,
    /// `/all`, subscriptions and so the read models are served from it, while commands
    /// load from and append to the primary. A query's `after=` waits until the standby
    /// has replayed that position.
    #[arg(long, env = "STRATA_REPLICA", value_name = "URL")]
    pub(crate) replica: Option<String>,
    /// Where the shop's read models and their checkpoints live: a `postgres://` (or
    /// `postgresql://`) URL, the event store's database or another one (schemas
    /// `strata_read` and `rm_*`). Unset, SQLite files in the data directory.
    #[arg(long, env = "STRATA_READ_STORE", value_name = "URL")]
    pub(crate) read_store: Option<String>,
    /// This server's name among the servers sharing one --store postgres:// database,
    /// shown as the holder of the process managers' and relays' leases (unused on the
    /// embedded store).
    /// Unique per server; default: the host name and the data directory, so that a server
    /// restarted after a crash takes its leases back at once instead of waiting for them
    /// to expire.
    #[arg(long, env = "STRATA_NODE_ID", value_name = "ID", value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub(crate) node_id: Option<String>,
    /// Publish every event to a message broker, in order, from a checkpoint kept in the
    /// data directory, or with --store postgres:// in the database, published by one
    /// server at a time under a lease (repeatable): `nats://HOST:4222` (JetStream, subjects
    /// `strata.events.<category>.<stream>`) or `amqp://USER:PASSWORD@HOST:5672/%2f`
    /// (topic exchange `strata.events`, routing key `<category>.<type>`), and in a build
    /// with the `sns` feature `sns://<topic-arn>[?endpoint=URL][&region=REGION]` (AWS SNS).
    /// See docs/relays.md.
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
    Replicated(ReplicatedStore),
}

impl Store {
    async fn open(dir: &Path, args: &ServeArgs) -> anyhow::Result<(Self, Arc<dyn EventStore>)> {
        let Some(url) = args.store.as_deref() else {
            if args.replica.is_some() {
                anyhow::bail!("--replica needs --store with the primary's postgres:// URL");
            }
            let store = crate::open_writer(dir, &args.write)?;
            let shared: Arc<dyn EventStore> = Arc::new(store.clone());
            return Ok((Store::Embedded(store), shared));
        };
        if !is_postgres(url) {
            anyhow::bail!("--store takes a postgres:// URL, not {:?}", redacted(url));
        }
        if let Some(replica) = args.replica.as_deref() {
            if !is_postgres(replica) {
                anyhow::bail!(
                    "--replica takes a postgres:// URL, not {:?}",
                    redacted(replica)
                );
            }
            let store = ReplicatedStore::connect(url, replica, ReplicaOptions::default())
                .await
                .with_context(|| {
                    format!(
                        "cannot open the event store at {} with its standby at {}",
                        redacted(url),
                        redacted(replica)
                    )
                })?;
            let shared: Arc<dyn EventStore> = Arc::new(store.clone());
            return Ok((Store::Replicated(store), shared));
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
            Store::Replicated(store) => {
                store.close();
                Ok(())
            }
        }
    }

    /// The store commands load from and append to: the primary, whose streams are never
    /// behind (a decision on a standby's stale stream would only conflict).
    fn commands(&self, shared: &Arc<dyn EventStore>) -> Arc<dyn EventStore> {
        match self {
            Store::Replicated(store) => Arc::new(store.primary().clone()),
            _ => shared.clone(),
        }
    }

    /// Where runners that must run on one server at a time keep their state when other
    /// servers share this event store: its PostgreSQL database (the primary, never a
    /// standby: the state is written), with the leases that say which server runs what.
    /// `None` on the embedded store, which one process owns.
    async fn home(&self, node: String) -> anyhow::Result<Option<PostgresHome>> {
        let config = match self {
            Store::Embedded(_) => return Ok(None),
            Store::Postgres(store) => store.config(),
            Store::Replicated(store) => store.primary().config(),
        };
        let home = PostgresHome::connect(config.clone(), node, PostgresHomeOptions::default())
            .await
            .context("cannot keep the process managers' and relays' state in postgres")?;
        Ok(Some(home))
    }

    /// Whether other servers may share this event store (a PostgreSQL database).
    fn shared(&self) -> bool {
        !matches!(self, Store::Embedded(_))
    }

    fn describe(&self, dir: &Path) -> String {
        match self {
            Store::Embedded(_) => format!("the embedded store in {}", dir.display()),
            Store::Postgres(store) => describe_postgres(store.config()),
            Store::Replicated(store) => format!(
                "{}, read from the standby {}",
                describe_postgres(store.primary().config()),
                describe_postgres(store.standby_config())
            ),
        }
    }
}

fn describe_postgres(config: &tokio_postgres::Config) -> String {
    format!(
        "postgres database {} on {}",
        config.get_dbname().unwrap_or("(default)"),
        config
            .get_hosts()
            .iter()
            .map(|host| format!("{host:?}"))
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// This server's name among servers: the host name and its data directory (which one
/// server uses at a time), the same again after a restart.
fn default_node_id(dir: &Path) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned());
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    format!("{host}:{}", dir.display())
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
    let handler = Arc::new(CommandHandler::new(
        store.commands(&shared),
        Arc::new(snapshots),
    ));
    // A server sharing its event store with others has a name, the holder of its leases.
    let node = args.node_id.clone().unwrap_or_else(|| default_node_id(dir));
    let read_store = crate::read_store::ReadStore::open(
        args.read_store.as_deref(),
        shared.clone(),
        &read.join("models"),
        store.shared().then_some(node.as_str()),
    )
    .await?;
    // NOTE: process managers and shared relays follow the primary: their checkpoints are
    // written there, and a standby behind them would look like a log behind its
    // checkpoint.
    let home = store.home(node).await?;
    let processes = match &home {
        Some(home) => ProcessManagers::on_postgres(store.commands(&shared), home.clone()),
        None => ProcessManagers::new(store.commands(&shared), read.join("processes")),
    };
    let shop = read_store.shop(handler, &processes).await?;
    let (shop, redis) = match args.redis.as_deref() {
        Some(url) => {
            let (shop, host) =
                crate::redis_side::attach(url, &args.redis_prefix, shared.clone(), shop)?;
            (shop, Some(host))
        }
        None => (shop, None),
    };
    read_store.start();
    processes.start();
    let read_models = read_store.describe();

    // With other servers on the database, each relay publishes from the one holding its
    // lease, from a checkpoint they share.
    let relays = match &home {
        Some(home) => Relays::on_postgres(store.commands(&shared), dir.join("relays"), home)
            .await
            .context("cannot keep the relays' checkpoints in postgres")?,
        None => Relays::new(shared.clone(), dir.join("relays")),
    };
    let state = AppState::builder(shared)
        .projections(crate::redis_side::read_side(
            read_store.read_side(processes),
            redis,
        ))
        .module(Arc::new(ShopModule::new(shop)))
        .relays(Arc::new(RelayStatus(relays.clone())))
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
        read_models = %read_models,
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

/// The relays as the server's `/relays` route and metrics see them.
struct RelayStatus(Relays);

impl strata_server::RelayHost for RelayStatus {
    fn status(&self) -> Vec<strata_server::RelayView> {
        self.0
            .status()
            .into_iter()
            .map(|r| strata_server::RelayView {
                state: r.state.as_str().to_owned(),
                name: r.name,
                broker: r.broker.to_owned(),
                target: r.target,
                checkpoint: r.checkpoint.0,
                lag_events: r.lag_events,
                last_error: r.last_error,
                published: r.published,
                lease: r.lease,
            })
            .collect()
    }
}
