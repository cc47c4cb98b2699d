//! The arguments of the `strata bench` scenarios as clap types, with defaults at the
//! sizes docs/benchmarks.md reports. Nothing here runs anything.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};

/// Options every scenario takes: where it works and how long each ceiling probe runs.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Work in temporary directories under this one (default: under the data
    /// directory). Use a directory on the disk you want to measure.
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// Seconds each ceiling probe runs. A durable-write result runs two or three probes,
    /// a read result one.
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = positive_seconds)]
    pub(crate) probe_seconds: f64,
}

impl Default for Common {
    fn default() -> Self {
        Self {
            dir: None,
            probe_seconds: 1.0,
        }
    }
}

impl Common {
    /// How long each probe runs.
    pub(crate) fn probe_duration(&self) -> Duration {
        Duration::from_secs_f64(self.probe_seconds)
    }
}

/// A number of seconds above zero (and below a day).
fn positive_seconds(text: &str) -> Result<f64, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    if seconds > 0.0 && seconds < 86_400.0 {
        Ok(seconds)
    } else {
        Err(format!("{text} must be above 0 and below 86400"))
    }
}

/// What the store scenarios' appends expect of their stream's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Expect {
    /// No expected version: the store only checks the new event ids against the
    /// stream's (idempotency).
    #[default]
    Any,
    /// The exact version the writer last saw, as a command handler appends.
    Exact,
}

impl Expect {
    /// The name printed in results.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Expect::Any => "any",
            Expect::Exact => "exact",
        }
    }
}

/// The aggregate `load-aggregate` loads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shape {
    /// A sku that only ever receives stock: the state stays a few numbers.
    Receipts,
    /// A sku selling through checkout (received, reserved, committed in turn): the state
    /// keeps every committed order, so it grows with the history.
    Checkout,
}

impl Shape {
    /// The name printed in results.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Shape::Receipts => "receipts",
            Shape::Checkout => "checkout",
        }
    }
}

/// `strata bench append-bulk`.
#[derive(Debug, Clone, Args)]
pub struct BulkArgs {
    /// Events to append in all.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    pub(crate) events: u64,

    /// Events per append (one atomic append of one stream).
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) batch: u64,

    /// Bytes of data per event.
    #[arg(long, value_name = "B", default_value_t = 256)]
    pub(crate) event_bytes: usize,

    /// Appends in flight at once (each from its own task, to its own stream); a list
    /// gives one result per value.
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_values_t = [1usize, 4])]
    pub(crate) in_flight: Vec<usize>,

    /// What each append expects of its stream's version; a list gives results for each
    /// (an exact one is named with `_exact`).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Expect::Any, Expect::Exact])]
    pub(crate) expected: Vec<Expect>,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench writers`.
#[derive(Debug, Clone, Args)]
pub struct WritersArgs {
    /// Concurrent writers, each appending one event at a time to its own stream and
    /// waiting for the durable acknowledgement; a list gives one result per value.
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_values_t = [256usize, 1])]
    pub(crate) writers: Vec<usize>,

    /// Seconds to measure (after a warm-up of a tenth of that).
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub(crate) seconds: f64,

    /// Bytes of data per event.
    #[arg(long, value_name = "B", default_value_t = 256)]
    pub(crate) event_bytes: usize,

    /// What each append expects of its stream's version; a list gives results for each
    /// (an exact one is named with `_exact`).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Expect::Any, Expect::Exact])]
    pub(crate) expected: Vec<Expect>,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench read-stream`.
#[derive(Debug, Clone, Args)]
pub struct ReadStreamArgs {
    /// Events in the stream.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) events: u64,

    /// How many times the whole stream is read.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) reads: u32,

    /// Bytes of data per event.
    #[arg(long, value_name = "B", default_value_t = 256)]
    pub(crate) event_bytes: usize,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench read-all`: a global read and a subscription catching up.
#[derive(Debug, Clone, Args)]
pub struct ReadAllArgs {
    /// Events in the log (written before anything is timed).
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) events: u64,

    /// Events per stream in the log.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) events_per_stream: u64,

    /// Events per `read_all` page.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) page: u64,

    /// Passes over the whole log, for each of the two readers.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) passes: u32,

    /// Bytes of data per event.
    #[arg(long, value_name = "B", default_value_t = 256)]
    pub(crate) event_bytes: usize,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench open`.
#[derive(Debug, Clone, Args)]
pub struct OpenArgs {
    /// Events in the store. It is built once in `<dir>/strata-bench-open-<N>-<per
    /// stream>` and reused by later runs.
    #[arg(long, value_name = "N", default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) events: u64,

    /// Events per stream in the store.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) events_per_stream: u64,

    /// Bytes of data per event.
    #[arg(long, value_name = "B", default_value_t = 256)]
    pub(crate) event_bytes: usize,

    /// How many times the store is opened, each time in a fresh process.
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) opens: u32,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench open-child` (internal): opens a store in this fresh process and prints
/// the time and the resident memory it took.
#[derive(Debug, Clone, Args)]
pub struct OpenChildArgs {
    /// The store to open.
    #[arg(long, value_name = "DIR")]
    pub(crate) store: PathBuf,
}

/// `strata bench import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// Events in the generated export file.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) events: u64,

    /// Consecutive events per stream in the file.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) events_per_stream: u64,

    /// Bytes of data per event (a JSON object of this length).
    #[arg(long, value_name = "B", default_value_t = 256)]
    pub(crate) event_bytes: usize,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// A phase of `strata bench scale`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScalePhase {
    /// Durable appends of the whole log (streams of --events-per-stream).
    Append,
    /// One pass of `read_all` pages over the whole log.
    ReadAll,
    /// Opening the log in a fresh process (time and resident memory).
    Open,
    /// Rebuilding the shop's four read models from a shop history of that size.
    Rebuild,
    /// Durable single-event appends round-robin over each of --streams stream counts.
    Streams,
}

impl ScalePhase {
    /// The name printed in results.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ScalePhase::Append => "append",
            ScalePhase::ReadAll => "read_all",
            ScalePhase::Open => "open",
            ScalePhase::Rebuild => "rebuild",
            ScalePhase::Streams => "streams",
        }
    }
}

/// `strata bench scale`: the cost per event at several log sizes.
#[derive(Debug, Clone, Args)]
pub struct ScaleArgs {
    /// Log sizes, in events: append, read-all, open and rebuild run at each, and print
    /// their cost per event (ns/event) at every size.
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_values_t = [100_000u64, 1_000_000, 10_000_000], value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) sizes: Vec<u64>,

    /// Stream counts for the `streams` phase: --stream-events single-event appends
    /// round-robin over that many streams.
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_values_t = [1_000u64, 100_000, 1_000_000], value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) streams: Vec<u64>,

    /// Events appended at each stream count of the `streams` phase.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) stream_events: u64,

    /// Events per stream in the logs of --sizes.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) events_per_stream: u64,

    /// Bytes of data per event.
    #[arg(long, value_name = "B", default_value_t = 256)]
    pub(crate) event_bytes: usize,

    /// The phases to run (all by default).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [ScalePhase::Append, ScalePhase::ReadAll, ScalePhase::Open, ScalePhase::Rebuild, ScalePhase::Streams])]
    pub(crate) phases: Vec<ScalePhase>,

    /// Seconds to wait, before each log's append and before the disk writes the same
    /// bytes alone, for the machine to take back the memory freed before. On a virtual
    /// machine that returns free memory to its host, memory touched for the first time
    /// costs several times more to write: both sides then start alike, cold.
    #[arg(long, value_name = "S", default_value_t = 10.0, value_parser = parse_seconds)]
    pub(crate) settle_seconds: f64,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench shop-commands`.
#[derive(Debug, Clone, Args)]
pub struct ShopCommandsArgs {
    /// Concurrent clients, each sending its next command when the last one is answered;
    /// a list gives one result per value.
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_values_t = [256usize, 1])]
    pub(crate) clients: Vec<usize>,

    /// Seconds to measure (after a warm-up of a tenth of that).
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub(crate) seconds: f64,

    /// Products in the catalog (created before anything is timed).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) products: u64,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench rebuild`.
#[derive(Debug, Clone, Args)]
pub struct RebuildArgs {
    /// Shop events in the log the read models are rebuilt from.
    #[arg(long, value_name = "N", default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) events: u64,

    /// Products in the catalog the orders buy from.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) products: u64,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench lag`.
#[derive(Debug, Clone, Args)]
pub struct LagArgs {
    /// Commands per second, paced (each pair: open an order, add a line).
    #[arg(long, value_name = "N", default_value_t = 10_000.0)]
    pub(crate) rate: f64,

    /// Seconds to measure (after a warm-up of a tenth of that).
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub(crate) seconds: f64,

    /// Products in the catalog.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) products: u64,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench query-cache`.
#[derive(Debug, Clone, Args)]
pub struct QueryCacheArgs {
    /// The Redis server the cache lives in (its keys go under a prefix of the run's own,
    /// removed at the end).
    #[arg(
        long,
        env = "STRATA_REDIS",
        value_name = "URL",
        default_value = "redis://127.0.0.1:6379"
    )]
    pub(crate) redis: String,

    /// Concurrent clients, each asking the same query again as soon as it is answered.
    #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) clients: u64,

    /// Seconds to measure each way (after a warm-up of a tenth of that).
    #[arg(long, value_name = "S", default_value_t = 3.0, value_parser = positive_seconds)]
    pub(crate) seconds: f64,

    /// Products in the catalog (created before anything is timed); a catalog page holds
    /// 100 of them at most.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) products: u64,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench load-aggregate`.
#[derive(Debug, Clone, Args)]
pub struct LoadAggregateArgs {
    /// Events of the aggregate.
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(2..))]
    pub(crate) events: u64,

    /// How many loads are timed, each with and without the snapshot.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) loads: u32,

    /// The aggregate's history; a list gives results for each.
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Shape::Receipts, Shape::Checkout])]
    pub(crate) shape: Vec<Shape>,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench http`.
#[derive(Debug, Clone, Args)]
pub struct HttpArgs {
    /// Connections, each sending its next request when the last one is answered.
    #[arg(long, value_name = "N", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) connections: u64,

    /// Seconds to measure each kind of request (after a warm-up of a tenth of that).
    #[arg(long, value_name = "S", default_value_t = 5.0)]
    pub(crate) seconds: f64,

    /// Products in the catalog.
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) products: u64,

    /// Bytes of data per raw appended event.
    #[arg(long, value_name = "B", default_value_t = 256)]
    pub(crate) event_bytes: usize,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench postgres`.
#[derive(Debug, Clone, Args)]
pub struct PostgresArgs {
    /// The PostgreSQL server to measure: each run creates a database of its own there
    /// (the URL's user must be allowed to) and drops it afterwards.
    #[arg(long, value_name = "URL", env = "STRATA_BENCH_POSTGRES_URL")]
    pub(crate) url: String,

    /// Concurrent clients sending bank-account commands, each its next when the last is
    /// answered; a list gives one result (and one raw ceiling) per value.
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_values_t = [1usize, 8, 32])]
    pub(crate) clients: Vec<usize>,

    /// Seconds to measure each client count (after a warm-up of a tenth of that).
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = positive_seconds)]
    pub(crate) seconds: f64,

    /// Events of the bulk append (0: none).
    #[arg(long, value_name = "N", default_value_t = 200_000)]
    pub(crate) bulk_events: u64,

    /// Events per bulk append, and rows per raw INSERT of its ceiling.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=8000))]
    pub(crate) batch: u64,

    /// Aggregates whose latest state the command handler keeps, so that their next
    /// command skips the load (the handler's default); 0 loads every account before
    /// every command.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub(crate) cached_aggregates: usize,
}

/// `strata bench relay`.
#[derive(Debug, Clone, Args)]
pub struct RelayArgs {
    /// The NATS server to relay to (skipped when unset); the run's subjects and
    /// JetStream stream are its own and removed at the end.
    #[arg(long, value_name = "URL", env = "STRATA_BENCH_NATS_URL")]
    pub(crate) nats: Option<String>,

    /// The RabbitMQ server to relay to (skipped when unset); the run's exchange is its
    /// own and removed at the end.
    #[arg(long, value_name = "URL", env = "STRATA_BENCH_AMQP_URL")]
    pub(crate) amqp: Option<String>,

    /// The Kafka broker to relay to, `kafka://host:port` (skipped when unset); the run's
    /// topic is its own and removed at the end.
    #[arg(long, value_name = "URL", env = "STRATA_BENCH_KAFKA_URL")]
    pub(crate) kafka: Option<String>,

    /// Events in the log the relay catches up with (written before anything is timed).
    #[arg(long, value_name = "N", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) events: u64,

    /// Bytes of data per event.
    #[arg(long, value_name = "B", default_value_t = 200)]
    pub(crate) event_bytes: usize,

    /// Events appended per second, one at a time, while the latency is measured.
    #[arg(long, value_name = "N", default_value_t = 1000.0)]
    pub(crate) rate: f64,

    /// Seconds of paced appends (after a warm-up of a tenth of that).
    #[arg(long, value_name = "S", default_value_t = 5.0, value_parser = positive_seconds)]
    pub(crate) seconds: f64,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench all`.
#[derive(Debug, Clone, Args)]
pub struct AllArgs {
    /// Tiny sizes and short runs of every scenario: checks that they all work, measures
    /// nothing worth keeping.
    #[arg(long, conflicts_with = "full")]
    pub(crate) quick: bool,

    /// Also the long scenarios: opening a 10,000,000-event store, importing 1,000,000
    /// events, rebuilding read models from 1,000,000 events, and HTTP.
    #[arg(long)]
    pub(crate) full: bool,

    #[command(flatten)]
    pub(crate) common: Common,
}

/// `strata bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The benchmark scenarios. Each prints one JSON line per result, beside the ceiling
/// that bounds it (a write ceiling probed around the run in the shape the store used, a
/// read ceiling of the same bytes, or none).
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// Measures the raw disk: groups of records written then fdatasync'd once, for a
    /// fixed time. No store is opened.
    Disk(DiskArgs),
    /// Appends batches of events durably, with 1 and with 4 appends in flight.
    AppendBulk(BulkArgs),
    /// Concurrent writers, each appending one event and waiting until it is durable.
    Writers(WritersArgs),
    /// Reads one long stream, whole.
    ReadStream(ReadStreamArgs),
    /// Reads the whole log, then catches a subscription up with it.
    ReadAll(ReadAllArgs),
    /// Opens a large store in a fresh process: time and resident memory.
    Open(OpenArgs),
    /// Opens a store and prints what it took (run by `open` in a child process).
    #[command(hide = true)]
    OpenChild(OpenChildArgs),
    /// Runs `strata import` on a generated export file.
    Import(ImportArgs),
    /// Runs shop commands end to end (load, decide, durable append) from concurrent
    /// clients.
    ShopCommands(ShopCommandsArgs),
    /// Rebuilds the shop's read models from a log of shop events.
    Rebuild(RebuildArgs),
    /// Measures the lag from a command to its read model, at a paced command rate.
    Lag(LagArgs),
    /// Loads a long aggregate, replaying every event and from a snapshot.
    LoadAggregate(LoadAggregateArgs),
    /// Puts HTTP load on a `strata serve` child process: shop commands, queries, raw
    /// appends.
    Http(HttpArgs),
    /// The same shop queries answered through the Redis query cache and without it
    /// (needs a Redis server: --redis or STRATA_REDIS).
    QueryCache(QueryCacheArgs),
    /// On a PostgreSQL server: bank-account commands from 1, 8 and 32 clients and bulk
    /// appends, each beside raw INSERTs of the same rows into the same table.
    Postgres(PostgresArgs),
    /// Relays a pre-filled log to each broker given (NATS, RabbitMQ, Kafka): events per
    /// second catching up, and the latency from an append to a consumer of the broker.
    Relay(RelayArgs),
    /// The cost per event (ns/event) of append, read-all, open and rebuild at several log
    /// sizes (--sizes), and of appends against the number of streams (--streams), each
    /// with its spread across sizes. Not part of `all`.
    Scale(ScaleArgs),
    /// Runs the store and shop scenarios at the sizes in docs/benchmarks.md; --full adds
    /// the long ones (open, import, rebuild, http), --quick runs them all tiny.
    All(AllArgs),
}

/// `strata bench disk`.
#[derive(Debug, Clone, Args)]
pub struct DiskArgs {
    /// Measure in a temporary directory under this one (default: under the data
    /// directory).
    #[arg(long, value_name = "DIR")]
    pub(crate) dir: Option<PathBuf>,

    /// Records per fdatasync; a list gives one line per value.
    #[arg(long, value_name = "N,..", value_delimiter = ',', default_values_t = [1u64, 1000], value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) events_per_sync: Vec<u64>,

    /// Bytes per record.
    #[arg(long, value_name = "B", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) record_bytes: u64,

    /// Seconds to write for, per value of --events-per-sync.
    #[arg(long, value_name = "S", default_value_t = 1.0, value_parser = positive_seconds)]
    pub(crate) seconds: f64,
}

/// A number of seconds to wait: finite and not negative.
fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => Ok(seconds),
        _ => Err(format!("{text:?} is not a number of seconds (0 or more)")),
    }
}
