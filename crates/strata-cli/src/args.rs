//! The command line as clap types: what the user typed, before anything is opened.
//! Nothing here touches the store or the disk.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// The exit code of a read of something the store does not hold (`strata read` of a
/// stream that does not exist).
pub(crate) const EXIT_NOT_FOUND: u8 = 3;

/// The exit codes every command shares, closing each command's table.
macro_rules! common_exits {
    () => {
        "  2  the command line is wrong (an unknown option, a missing or malformed value)\n"
    };
}

/// strata's event store tools.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    about,
    propagate_version = true,
    after_help = concat!(
        "Exit codes (each command's --help gives its own):\n",
        "  0  done\n",
        "  1  failed: one line on standard error says why\n",
        common_exits!(),
        "  3  not found: what was asked for is not in the store (strata read)",
    )
)]
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
    #[command(after_help = concat!(
        "Exit codes:\n",
        "  0  every line was answered, refused appends included\n",
        "  1  the store cannot be opened or closed, or the input or output fails\n",
        common_exits!(),
    ))]
    Append(WriteArgs),

    /// Prints the events of one stream as JSON lines.
    ///
    /// An event that cannot be read stops it with exit code 1 and its version.
    #[command(after_help = concat!(
        "Exit codes:\n",
        "  0  the events were printed (none when --from is past the end)\n",
        "  1  there is no store, or an event cannot be read\n",
        common_exits!(),
        "  3  the stream does not exist",
    ))]
    Read(ReadArgs),

    /// Prints events of the whole log, in position order, as JSON lines.
    ///
    /// An event that cannot be read, or a damaged last batch, stops it with exit code 1
    /// and the position where it stopped.
    #[command(after_help = concat!(
        "Exit codes:\n",
        "  0  the events were printed\n",
        "  1  there is no store, an event cannot be read, or the last batch is damaged\n",
        common_exits!(),
    ))]
    ReadAll(ReadAllArgs),

    /// Prints events from a position on, then follows new events until interrupted.
    #[command(after_help = concat!(
        "Exit codes:\n",
        "  0  stopped by SIGINT or SIGTERM, or standard output was closed\n",
        "  1  there is no store, or reading or writing fails\n",
        common_exits!(),
    ))]
    Tail(TailArgs),

    /// Checks every checksum, batch and index file of the store.
    ///
    /// Exits 0 with a one-line summary when the store is intact; otherwise prints each
    /// problem as `file:offset: message` and exits 1.
    #[command(after_help = concat!(
        "Exit codes:\n",
        "  0  the store is intact\n",
        "  1  there is no store, or it has problems (each printed on standard output)\n",
        common_exits!(),
    ))]
    Verify,

    /// Prints every event of the store as JSON lines, in position order (the import
    /// format).
    ///
    /// Each line is the `read-all` line; where a payload's bytes are not one line of
    /// JSON (pretty-printed, padded, not JSON, not UTF-8), `data_base64` or
    /// `metadata_base64` carry them exactly, so an import gives back every byte. An event
    /// that cannot be read, or a damaged last batch, stops the export with exit code 1
    /// and the position where it stopped, unless --salvage is given.
    #[command(after_help = concat!(
        "Exit codes:\n",
        "  0  every event was exported (with --salvage: every readable one)\n",
        "  1  there is no store, or an event cannot be read and --salvage is not given\n",
        common_exits!(),
    ))]
    Export(ExportArgs),

    /// Imports events in the export format, keeping streams, versions, ids, recording
    /// times, payloads and order.
    ///
    /// Consecutive events of one stream are appended together, each append expecting the
    /// stream to be just below its first event's version. An event whose stream already
    /// holds that version is skipped if it is the same event (same id) and stops the
    /// import otherwise, as does a version that does not follow on. A bad line stops the
    /// import with an error naming its line number: everything before it stays imported,
    /// nothing after it is written, and importing the input again (fixed) skips what is
    /// already there and goes on from that line. The last line on standard error says
    /// how many events were imported, skipped and refused. Importing into a non-empty
    /// store is allowed, but the events then get other global positions than in the
    /// export.
    #[command(after_help = concat!(
        "Exit codes:\n",
        "  0  every line was imported or skipped as already present\n",
        "  1  a line was refused (named on standard error; what came before it stays)\n",
        common_exits!(),
    ))]
    Import(ImportArgs),

    /// Measures performance: one JSON line per result, each beside the ceiling that
    /// bounds it (see docs/benchmarks.md).
    #[command(after_help = concat!(
        "Exit codes:\n",
        "  0  every measurement ran\n",
        "  1  a measurement failed\n",
        common_exits!(),
    ))]
    Bench(strata_bench::BenchArgs),

    /// Runs the server: the HTTP API, the shop with its read models and checkout, and
    /// the web console, on http://127.0.0.1:7700 by default.
    ///
    /// Read models live under <data-dir>/read/. SIGINT or SIGTERM stop it gracefully:
    /// in-flight requests finish, projections store their checkpoints, the store closes,
    /// and the exit code is 0.
    #[command(after_help = concat!(
        "Exit codes:\n",
        "  0  stopped gracefully by SIGINT or SIGTERM\n",
        "  1  it cannot start (the store, the address, the tokens file) or fails\n",
        common_exits!(),
    ))]
    Serve(Box<crate::serve::ServeArgs>),

    /// Prints a shell completion script for strata.
    ///
    /// For example `strata completions bash > /etc/bash_completion.d/strata`, or
    /// `strata completions zsh > "${fpath[1]}/_strata"`.
    #[command(after_help = concat!(
        "Exit codes:\n",
        "  0  the script was printed\n",
        "  1  standard output cannot be written\n",
        common_exits!(),
    ))]
    Completions(CompletionsArgs),

    /// Prints strata's manual page (roff), for `man`.
    ///
    /// For example `strata man > /usr/local/share/man/man1/strata.1`.
    #[command(after_help = concat!(
        "Exit codes:\n",
        "  0  the page was printed\n",
        "  1  standard output cannot be written\n",
        common_exits!(),
    ))]
    Man,
}

/// `strata completions`.
#[derive(Debug, Args)]
pub(crate) struct CompletionsArgs {
    /// The shell to complete in.
    #[arg(value_enum, value_name = "SHELL")]
    pub(crate) shell: clap_complete::Shell,
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

/// `strata export`.
#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// Step over events that cannot be read and a damaged last batch, exporting every
    /// readable event; what was skipped is reported on standard error.
    #[arg(long)]
    pub(crate) salvage: bool,
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
