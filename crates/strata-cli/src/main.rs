//! The `strata` binary: parses the command line, opens the store the command needs, runs
//! the command, and turns any failure into one line on standard error and exit code 1.
//!
//! Commands live in their own modules and take an `EventStore`; only this module knows
//! which backend they run against and how the process starts and ends.

mod append;
mod args;
mod blocks;
mod config;
mod export;
mod import;
mod lines;
mod names;
mod payload;
mod pipeline;
mod progress;
mod read;
mod read_store;
mod redis_side;
mod serve;
mod tail;
mod verify;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::{CommandFactory as _, FromArgMatches as _};
use strata_core::{StreamName, Version};
use strata_store::{Direction, EventStore as _, ReadFilter};
use strata_store_embedded::{EmbeddedStore, LostData, Options};
use tokio::signal::unix::{SignalKind, signal};

use crate::args::{Cli, Command, FilterArgs, WriteArgs};
use crate::progress::{CountLines, Unit};
use crate::read::{LineForm, OnDamage};

/// The process's allocator: the server and the tools make many small allocations that
/// live for one request or one batch, which mimalloc's per-thread free lists serve
/// without the contention and consolidation passes of the system allocator. Libraries
/// leave the choice to the binary.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The size of the buffer in front of standard output.
const STDOUT_BUFFER_BYTES: usize = 64 * 1024;
/// How long background work may take to stop once a command is done.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

fn main() -> ExitCode {
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|err| err.exit());
    if let Cli {
        data_dir,
        command: Command::Serve(args),
    } = &mut cli
        && let Err(err) = config::apply(data_dir, args, &matches)
    {
        eprintln!("error: {}", one_line(&err));
        return ExitCode::FAILURE;
    }
    match &cli.command {
        Command::Serve(args) => serve::init_logging(args.log_format),
        _ => init_tracing(),
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            if err.downcast_ref::<NotFound>().is_some() {
                ExitCode::from(args::EXIT_NOT_FOUND)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// What a command was asked to read is not in the store: the failure that exits with
/// [`args::EXIT_NOT_FOUND`] rather than 1, so a script can tell it from a fault.
#[derive(Debug)]
struct NotFound(String);

impl std::fmt::Display for NotFound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotFound {}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .with_ansi(progress::colour())
        .with_target(false)
        .init();
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let result = runtime.block_on(dispatch(cli));
    runtime.shutdown_timeout(SHUTDOWN_GRACE);
    result
}

async fn dispatch(cli: Cli) -> anyhow::Result<()> {
    let dir = cli.data_dir.as_path();
    match cli.command {
        Command::Append(args) => {
            let store = open_writer(dir, &args)?;
            let result = append::run(&store, Box::new(io::stdin()), &mut stdout()).await;
            let closed = close(store, dir).await;
            let summary = result?;
            closed?;
            tracing::info!(
                appended = summary.appended,
                failed = summary.failed,
                "append finished"
            );
            Ok(())
        }
        Command::Read(args) => {
            let stream = StreamName::new(&args.stream)?;
            let store = open_reader(dir)?;
            let direction = if args.backward {
                Direction::Backward
            } else {
                Direction::Forward
            };
            let printed = read::stream(
                &store,
                &stream,
                args.from,
                direction,
                args.limit,
                &mut stdout(),
            )
            .await;
            if quiet_broken_pipe(printed)? == Some(0)
                && store
                    .stream_version(&stream)
                    .await
                    .with_context(|| format!("cannot read stream {stream}"))?
                    == Version(0)
            {
                return Err(NotFound(format!(
                    "stream {stream} does not exist in {}",
                    dir.display()
                ))
                .into());
            }
            Ok(())
        }
        Command::ReadAll(args) => {
            let store = open_reader(dir)?;
            let filter = read_filter(args.filter);
            let read = read::all(
                &store,
                args.from,
                args.limit,
                &filter,
                LineForm::Read,
                OnDamage::Stop,
                &mut stdout(),
            )
            .await;
            check_read(&store, quiet_broken_pipe(read)?, OnDamage::Stop)
        }
        Command::Export(args) => {
            let store = open_reader(dir)?;
            let on_damage = if args.salvage {
                OnDamage::Skip
            } else {
                OnDamage::Stop
            };
            let head = store.head().await.ok().map(|head| head.0);
            let bar = progress::bar(head, Unit::Events);
            let read = read::all(
                &store,
                1,
                None,
                &ReadFilter::all(),
                LineForm::Export,
                on_damage,
                &mut CountLines::new(stdout(), bar.clone()),
            )
            .await;
            bar.finish_and_clear();
            check_read(&store, quiet_broken_pipe(read)?, on_damage)
        }
        Command::Tail(args) => {
            let shutdown = shutdown_signal()?;
            let store = open_reader(dir)?;
            let filter = read_filter(args.filter);
            let printed = tail::run(&store, args.from, filter, &mut stdout(), shutdown).await;
            quiet_broken_pipe(printed).map(drop)
        }
        Command::Verify => {
            check_exists(dir)?;
            let spinner = progress::spinner(format!("verifying {}", dir.display()));
            let verified = verify::run(dir, &mut stdout(), || spinner.finish_and_clear());
            spinner.finish_and_clear();
            verified
        }
        Command::Import(args) => {
            let (input, bar): (Box<dyn io::Read + Send>, _) = match &args.file {
                Some(path) => {
                    let file = std::fs::File::open(path).with_context(|| {
                        format!("cannot open the import file {}", path.display())
                    })?;
                    let size = file.metadata().ok().map(|m| m.len());
                    let bar = progress::bar(size, Unit::Bytes);
                    (Box::new(bar.wrap_read(file)), bar)
                }
                None => {
                    let bar = progress::bar(None, Unit::Bytes);
                    (Box::new(bar.wrap_read(io::stdin())), bar)
                }
            };
            let store = open_writer(dir, &args.write)?;
            let started = Instant::now();
            let result = import::run(&store, input, Options::default().max_event_bytes).await;
            bar.finish_and_clear();
            let closed = close(store, dir).await;
            let summary = result?;
            closed?;
            let seconds = started.elapsed().as_secs_f64();
            eprintln!(
                "{summary} in {seconds:.2} s ({:.0} events/s)",
                summary.imported as f64 / seconds.max(1e-9)
            );
            Ok(())
        }
        Command::Bench(args) => Ok(strata_bench::run(dir, &args.scenario, &mut stdout())?),
        Command::Serve(args) => serve::run(dir, *args, shutdown_signal()?).await,
        Command::Completions(args) => {
            let mut out = stdout();
            let mut cli = Cli::command();
            clap_complete::generate(args.shell, &mut cli, "strata", &mut out);
            out.flush().context("cannot write to standard output")
        }
        Command::Man => {
            let mut out = stdout();
            clap_mangen::Man::new(Cli::command())
                .render(&mut out)
                .context("cannot write to standard output")?;
            out.flush().context("cannot write to standard output")
        }
    }
}

/// Standard output behind a buffer; commands flush it themselves.
fn stdout() -> impl Write {
    BufWriter::with_capacity(STDOUT_BUFFER_BYTES, io::stdout().lock())
}

/// Opens the store for writing, reporting a torn tail that opening cut off and any loss
/// the operator accepted.
fn open_writer(dir: &Path, args: &WriteArgs) -> anyhow::Result<EmbeddedStore> {
    let options = Options {
        lost_data: if args.accept_data_loss {
            LostData::Accept
        } else {
            LostData::Refuse
        },
        ..Options::default()
    };
    let store = EmbeddedStore::open(dir, options)
        .with_context(|| format!("cannot open the event store in {}", dir.display()))?;
    for lost in store.open_report().lost {
        tracing::error!(
            "accepted the loss of acknowledged events at positions {} to {} ({}:{}); new events continue at position {}",
            lost.first_position,
            lost.last_position,
            lost.file.display(),
            lost.offset,
            lost.last_position + 1
        );
    }
    if let Some(torn) = store.open_report().torn_tail {
        tracing::warn!(
            "cut a torn last batch of {} bytes at {}:{}; it had never been acknowledged",
            torn.bytes,
            torn.file.display(),
            torn.offset
        );
    }
    Ok(store)
}

/// Opens an existing store for reading, beside a writer in another process if there is
/// one.
fn open_reader(dir: &Path) -> anyhow::Result<EmbeddedStore> {
    check_exists(dir)?;
    EmbeddedStore::open_read_only(dir, Options::default()).with_context(|| {
        format!(
            "cannot open the event store in {} for reading",
            dir.display()
        )
    })
}

/// Fails with a clear message when there is no data directory to read.
fn check_exists(dir: &Path) -> anyhow::Result<()> {
    match std::fs::metadata(dir) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => anyhow::bail!(
            "there is no event store in {}: the directory does not exist (set --data-dir or STRATA_DATA_DIR)",
            dir.display()
        ),
        Err(err) => {
            Err(err).with_context(|| format!("cannot access the data directory {}", dir.display()))
        }
    }
}

/// Waits for the writer and releases the data directory.
async fn close(store: EmbeddedStore, dir: &Path) -> anyhow::Result<()> {
    store
        .close()
        .await
        .with_context(|| format!("cannot close the event store in {}", dir.display()))
}

fn read_filter(args: FilterArgs) -> ReadFilter {
    ReadFilter {
        categories: args.categories,
        event_types: args.event_types,
    }
}

/// Completes on SIGINT or SIGTERM. The handlers are installed before this returns, so a
/// signal that arrives before the future is first polled is not lost.
fn shutdown_signal() -> anyhow::Result<impl Future<Output = ()>> {
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
    })
}

/// A reader that closed our standard output (`strata read-all | head`) is not an error
/// (and `None`: there is nothing more to say about the read).
fn quiet_broken_pipe<T>(result: anyhow::Result<T>) -> anyhow::Result<Option<T>> {
    match result {
        Err(err) if is_broken_pipe(&err) => Ok(None),
        other => other.map(Some),
    }
}

/// After a global read: a read that ran to the head over a damaged last batch fails,
/// naming the last position it printed, unless salvaging; a salvage reports on standard
/// error everything it stepped over.
fn check_read(
    store: &EmbeddedStore,
    read: Option<read::AllRead>,
    on_damage: OnDamage,
) -> anyhow::Result<()> {
    let Some(read) = read else { return Ok(()) };
    let tail = if read.to_head {
        store
            .damaged_tail()
            .context("cannot check the end of the log")?
    } else {
        None
    };
    if on_damage == OnDamage::Stop {
        if let Some(tail) = tail {
            anyhow::bail!(
                "the read stopped after position {}, having printed {} events: the log goes on with {} bytes at {}:{} that are not a complete batch (a damaged or cut last batch; export --salvage exports every readable event)",
                read.last,
                read.printed,
                tail.bytes,
                tail.file.display(),
                tail.offset
            );
        }
        return Ok(());
    }
    for skipped in &read.skipped {
        eprintln!("skipped position {}: {}", skipped.position, skipped.error);
    }
    if let Some(tail) = &tail {
        eprintln!(
            "skipped {} bytes after position {} at {}:{}: not a complete batch (a damaged or cut last batch)",
            tail.bytes,
            read.last,
            tail.file.display(),
            tail.offset
        );
    }
    if !read.skipped.is_empty() || tail.is_some() {
        eprintln!(
            "salvaged {} events; skipped {} unreadable events{}",
            read.printed,
            read.skipped.len(),
            if tail.is_some() {
                " and a damaged last batch"
            } else {
                ""
            }
        );
    }
    Ok(())
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, `outer: inner: root`. A cause whose text its
/// parent already ends with (an error that both shows and exposes its source) is said once.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if line.ends_with(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace(['\n', '\r'], " ")
}
