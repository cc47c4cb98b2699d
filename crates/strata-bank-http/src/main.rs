//! The `strata-bank` binary: the bank served on the embedded event store, with its
//! balances read model and transfer process manager, through strata-server. It parses its
//! flags, wires the parts together and maps every failure to one sentence; no bank rule
//! and no storage logic lives here.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use clap::Parser;
use strata_bank::Bank;
use strata_bank_http::BankModule;
use strata_domain::CommandHandler;
use strata_projection::{ProcessManagers, Projections, SqliteSnapshots};
use strata_server::{AppState, ReadSide};
use strata_store::EventStore;
use strata_store_embedded::{EmbeddedStore, Options};

/// Serves the example bank: accounts, transfers between them and their balances over
/// HTTP, on the embedded event store. It has no access control, so it listens on a
/// loopback address only.
#[derive(Debug, Parser)]
#[command(name = "strata-bank", version)]
struct Args {
    /// The data directory: the event log, and the read models under `read/`.
    #[arg(
        long,
        value_name = "DIR",
        env = "STRATA_BANK_DATA_DIR",
        default_value = "bank-data"
    )]
    data_dir: PathBuf,

    /// The address to listen on (port 0: any free port, printed at start).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7701")]
    listen: SocketAddr,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        .init();
    match run(args).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("strata-bank: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    // NOTE: without tokens anyone who can reach the port could read and write every
    // account, so only a loopback address is accepted.
    if !args.listen.ip().is_loopback() {
        anyhow::bail!(
            "refusing to listen on {}: the bank has no access control, so it serves on a \
             loopback address only (127.0.0.1)",
            args.listen
        );
    }
    let dir = &args.data_dir;
    let store = EmbeddedStore::open(dir, Options::default())
        .with_context(|| format!("cannot open the event store in {}", dir.display()))?;
    let shared: Arc<dyn EventStore> = Arc::new(store.clone());

    let read = dir.join("read");
    let snapshots = SqliteSnapshots::open(read.join("snapshots.sqlite"))
        .context("cannot open the snapshot database")?;
    let handler = Arc::new(CommandHandler::new(shared.clone(), Arc::new(snapshots)));
    let projections = Projections::new(shared.clone(), read.join("models"));
    let processes = ProcessManagers::new(shared.clone(), read.join("processes"));
    let bank =
        Bank::new(handler, projections.clone(), &processes).context("cannot set up the bank")?;
    projections.start();
    processes.start();

    let state = AppState::builder(shared)
        .projections(Arc::new(ReadSide::new(projections, Some(processes))))
        .module(Arc::new(BankModule::new(bank)))
        .build();
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr().unwrap_or(args.listen);
    tracing::info!(data_dir = %dir.display(), "strata-bank is serving on http://{addr}");
    let served = strata_server::serve(listener, state, shutdown_signal()?).await;
    let closed = store
        .close()
        .await
        .with_context(|| format!("cannot close the event store in {}", dir.display()));
    served?;
    closed?;
    tracing::info!("strata-bank stopped");
    Ok(())
}

/// Completes on SIGINT or SIGTERM. The handlers are installed before this returns, so a
/// signal that arrives before the future is first polled is not lost.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}
