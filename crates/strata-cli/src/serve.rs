//! `strata serve`: the whole system in one process. Opens the embedded store, the shop's
//! SQLite read models and process managers, starts the relays to message brokers, mounts
//! the shop on the HTTP server, and serves until SIGINT or SIGTERM; then finishes
//! in-flight requests, stops the projections and relays at a checkpoint, and closes the
//! store.
//!
//! It wires components together; the HTTP edge is strata-server's, the shop is
//! strata-shop's and its routes are strata-shop-http's.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use strata_domain::CommandHandler;
use strata_projection::{ProcessManagers, Projections, SqliteSnapshots};
use strata_relay::{RelayConfig, Relays};
use strata_server::{AppState, ReadSide, Tokens, check_exposure};
use strata_shop::{FakePaymentProvider, Shop};
use strata_shop_http::ShopModule;
use strata_store::EventStore;

/// `strata serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
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
    /// With tokens, every request needs one.
    #[arg(long, env = "STRATA_TOKENS_FILE", value_name = "FILE")]
    pub(crate) tokens: Option<PathBuf>,

    /// Listen beyond loopback without tokens: anyone who reaches the port can read and
    /// write everything.
    #[arg(long)]
    pub(crate) insecure: bool,

    /// How logs are written to standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub(crate) log_format: LogFormat,

    /// Publish every event to a message broker, in order, from a checkpoint kept in the
    /// data directory (repeatable): `nats://HOST:4222` (JetStream, subjects
    /// `strata.events.<category>.<stream>`) or `amqp://USER:PASSWORD@HOST:5672/%2f`
    /// (topic exchange `strata.events`, routing key `<category>.<type>`). See
    /// docs/relays.md.
    #[arg(long = "relay", value_name = "URL")]
    pub(crate) relays: Vec<String>,

    #[command(flatten)]
    pub(crate) write: crate::args::WriteArgs,
}

/// The shape of log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
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
        LogFormat::Text => builder.with_target(false).init(),
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

    let store = crate::open_writer(dir, &args.write)?;
    let shared: Arc<dyn EventStore> = Arc::new(store.clone());
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
    projections.start();
    processes.start();

    let relays = Relays::new(shared.clone(), dir.join("relays"));
    let state = AppState::builder(shared)
        .projections(Arc::new(ReadSide::new(projections, Some(processes))))
        .module(Arc::new(ShopModule::new(shop)))
        .tokens(tokens)
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
        "strata is serving on http://{addr} (console at http://{addr}/)"
    );
    let served = strata_server::serve(listener, state, shutdown).await;
    relays.shutdown().await;
    let closed = crate::close(store, dir).await;
    served?;
    closed?;
    tracing::info!("strata stopped");
    Ok(())
}
