//! The command line as clap types: what the user typed, before anything is opened.
//! Nothing here touches the store or the disk.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// strata's event store tools.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, propagate_version = true)]
pub(crate) struct Cli {
    /// The store's data directory.
    #[arg(
        long,
        global = true,
        env = "STRATA_DATA_DIR",
        default_value = "./strata-data",
        value_name = "DIR"
    )]
    pub(crate) data_dir: PathBuf,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Appends events given as JSON lines on standard input.
    ///
    /// Each line is one atomic append: {"stream": "order-1", "expected_version": 0 | 3 |
    /// "any" | "no_stream" | "exists", "events": [{"type": "OrderPlaced", "data": {...},
    /// "metadata": {...}, "id": "<uuid>"}]}. expected_version defaults to "any"; metadata
    /// (a JSON object) and id are optional.
    ///
    /// For each non-empty line, in input order and once the append is durable, one JSON
    /// line is printed: {"stream", "first_version", "last_version", "position"} or
    /// {"error": {"code", "message"}}. A failed line does not stop the others; the exit
    /// code is 0 unless the store cannot be opened or the input or output fails.
    Append(WriteArgs),

    /// Prints the events of one stream as JSON lines.
    Read(ReadArgs),

    /// Prints events of the whole log, in position order, as JSON lines.
    ReadAll(ReadAllArgs),

    /// Prints events from a position on, then follows new events until interrupted.
    Tail(TailArgs),

    /// Checks every checksum, batch and index file of the store.
    ///
    /// Exits 0 with a one-line summary when the store is intact; otherwise prints each
    /// problem as `file:offset: message` and exits 1.
    Verify,

    /// Prints every event of the store as JSON lines, in position order (the import
    /// format).
    Export,

    /// Imports events in the export format, keeping streams, versions, ids, recording
    /// times, payloads and order.
    ///
    /// Consecutive events of one stream are appended together, each append expecting the
    /// stream to be just below its first event's version, so a stream that already exists
    /// with other events makes the import fail. A bad line stops the import with an error
    /// naming its line number; everything before it stays imported, and importing the
    /// same input again skips what is already there. Importing into a non-empty store is
    /// allowed, but the events then get other global positions than in the export.
    Import(ImportArgs),

    /// Measures performance.
    Bench(BenchArgs),

    /// Runs the server: the HTTP API, the shop with its read models and checkout, and
    /// the web console, on http://127.0.0.1:7700 by default.
    ///
    /// Read models live under <data-dir>/read/. SIGINT or SIGTERM stop it gracefully:
    /// in-flight requests finish, projections store their checkpoints, the store closes,
    /// and the exit code is 0.
    Serve(crate::serve::ServeArgs),
}

/// `strata read`.
#[derive(Debug, Args)]
pub(crate) struct ReadArgs {
    /// The stream to read.
    #[arg(value_name = "STREAM")]
    pub(crate) stream: String,

    /// The first version to print (inclusive); default: the first event, or the last one
    /// with --backward.
    #[arg(long, value_name = "V")]
    pub(crate) from: Option<u64>,

    /// Print at most this many events.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,

    /// Newest first.
    #[arg(long)]
    pub(crate) backward: bool,
}

/// Which events a global read or a tail selects.
#[derive(Debug, Args)]
pub(crate) struct FilterArgs {
    /// Only events of streams in this category (the part of the name before the first
    /// `-`); repeat to select several.
    #[arg(long = "category", value_name = "C")]
    pub(crate) categories: Vec<String>,

    /// Only events of this type; repeat to select several.
    #[arg(long = "type", value_name = "T")]
    pub(crate) event_types: Vec<String>,
}

/// `strata read-all`.
#[derive(Debug, Args)]
pub(crate) struct ReadAllArgs {
    /// The first global position to print (inclusive; 1 is the first event).
    #[arg(long, value_name = "P", default_value_t = 1)]
    pub(crate) from: u64,

    /// Print at most this many events.
    #[arg(long, value_name = "N")]
    pub(crate) limit: Option<u64>,

    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

/// `strata tail`.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The first global position to print (inclusive; 1 is the first event).
    #[arg(long, value_name = "P", default_value_t = 1)]
    pub(crate) from: u64,

    #[command(flatten)]
    pub(crate) filter: FilterArgs,
}

/// How a command that writes opens the store.
#[derive(Debug, Args)]
pub(crate) struct WriteArgs {
    /// Open even though acknowledged events are missing from the log (a file cut or
    /// removed): the loss is logged, the log is cut where it ends, and new events get
    /// positions above every lost one. Without it such a store refuses to open.
    #[arg(long)]
    pub(crate) accept_data_loss: bool,
}

/// `strata import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// Read the export lines from this file instead of standard input.
    #[arg(long, value_name = "F")]
    pub(crate) file: Option<PathBuf>,

    #[command(flatten)]
    pub(crate) write: WriteArgs,
}

/// `strata bench`.
#[derive(Debug, Args)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    pub(crate) scenario: BenchScenario,
}

/// The benchmark scenarios. Each run first measures the disk (printed as a
/// `disk_ceiling` line), then prints one JSON line per result, in proportion to it.
#[derive(Debug, Subcommand)]
pub(crate) enum BenchScenario {
    /// Measures the raw disk ceiling: batches of 1000 records of 256 bytes, each batch
    /// written then fdatasync'd once. No store is opened.
    Disk(DiskArgs),
    /// Durable bulk appends of batches of events, with 1 and with 4 in flight.
    AppendBulk(crate::bench::BulkArgs),
    /// Concurrent writers, each appending one event and waiting for its durable ack.
    Writers(crate::bench::WritersArgs),
    /// Reads one long stream, whole.
    ReadStream(crate::bench::ReadStreamArgs),
    /// Reads the whole log, then catches a subscription up with it.
    ReadAll(crate::bench::ReadAllArgs),
    /// Opens a large store in a fresh process: time and resident memory.
    Open(crate::bench::OpenArgs),
    /// Opens a store and prints what it took (run by `open` in a child process).
    #[command(hide = true)]
    OpenChild(crate::bench::OpenChildArgs),
    /// Runs `strata import` on a generated export file.
    Import(crate::bench::ImportArgs),
    /// Shop commands end to end (load, decide, durable append) from concurrent clients.
    ShopCommands(crate::bench::ShopCommandsArgs),
    /// Rebuilds the shop's read models from a log of shop events.
    Rebuild(crate::bench::RebuildArgs),
    /// The lag from a command to its read model, at a paced command rate.
    Lag(crate::bench::LagArgs),
    /// Loads a long aggregate, replaying every event and from a snapshot.
    LoadAggregate(crate::bench::LoadAggregateArgs),
    /// HTTP load against a `strata serve` child: shop commands, queries, raw appends.
    Http(crate::bench::HttpArgs),
    /// Every quick scenario at the issues' sizes (--full: all of them; --quick: all,
    /// tiny).
    All(crate::bench::AllArgs),
}

/// `strata bench disk`.
#[derive(Debug, Args)]
pub(crate) struct DiskArgs {
    /// Measure in a temporary directory under this one (default: under the data
    /// directory).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// How many batches to write and sync.
    #[arg(long, value_name = "R", default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) rounds: u32,
}
