//! strata's benchmark harness: the scenarios behind `strata bench`, each printing one
//! JSON line per result. Every result stands beside the ceiling that bounds it, measured
//! in the same process around the scenario: durable writes against the disk written in
//! the shape the store used in that run (its events per fdatasync and bytes per event),
//! reads against `pread` of the same bytes, and the rest against nothing, saying so.
//! Benchmarks measure; they never assert a time.
//!
//! Some scenarios run the `strata` binary itself as a child process (`open` re-runs it
//! with a hidden `bench open-child`, `import` runs `strata import`, `http` runs `strata
//! serve`), so [`run`] must be called from that binary.

mod args;
mod bank;
mod error;
mod fixtures;
mod http;
mod importing;
mod load;
mod open;
mod postgres;
mod probe;
mod relay;
mod report;
mod scale;
mod shop;
mod stats;
mod store;
mod system;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::io::Write;
use std::path::Path;
use std::time::Duration;

pub use args::{
    AllArgs, BenchArgs, BulkArgs, Common, DiskArgs, Expect, HttpArgs, ImportArgs, LagArgs,
    LoadAggregateArgs, OpenArgs, OpenChildArgs, PostgresArgs, QueryCacheArgs, ReadAllArgs,
    ReadStreamArgs, RebuildArgs, RelayArgs, ScaleArgs, ScalePhase, Scenario, Shape,
    ShopCommandsArgs, WritersArgs,
};
pub use error::BenchError;
pub use stats::MIN_P99_SAMPLES;

use error::{Context as _, Result};
use probe::{SyncShape, probe_sync};
use report::{Probes, ScenarioResult, print_result};

/// Runs one scenario (or `all`) and prints its result lines.
///
/// `data_dir` is the data directory of the command line: scenarios work under it unless
/// their `--dir` says otherwise. Results go to `out`, one JSON line each, as they come.
pub fn run(data_dir: &Path, scenario: &Scenario, out: &mut impl Write) -> Result<(), BenchError> {
    match scenario {
        Scenario::Disk(args) => disk(data_dir, args, out),
        Scenario::OpenChild(args) => open::child(args, out),
        Scenario::AppendBulk(args) => family(data_dir, &args.common, out, async |d, probes| {
            store::append_bulk(d, args, probes).await
        }),
        Scenario::Writers(args) => family(data_dir, &args.common, out, async |d, probes| {
            store::writers(d, args, probes).await
        }),
        Scenario::ReadStream(args) => family(data_dir, &args.common, out, async |d, probes| {
            Ok(vec![store::read_stream(d, args, probes).await?])
        }),
        Scenario::ReadAll(args) => family(data_dir, &args.common, out, async |d, probes| {
            store::read_all(d, args, probes).await
        }),
        Scenario::Open(args) => family(data_dir, &args.common, out, async |d, probes| {
            Ok(vec![open::open(d, args, probes).await?])
        }),
        Scenario::Import(args) => family(data_dir, &args.common, out, async |d, probes| {
            Ok(vec![importing::import(d, args, probes).await?])
        }),
        Scenario::ShopCommands(args) => family(data_dir, &args.common, out, async |d, probes| {
            shop::commands(d, args, probes).await
        }),
        Scenario::Rebuild(args) => family(data_dir, &args.common, out, async |d, probes| {
            Ok(vec![shop::rebuild(d, args, probes).await?])
        }),
        Scenario::Lag(args) => family(data_dir, &args.common, out, async |d, probes| {
            Ok(vec![shop::lag(d, args, probes).await?])
        }),
        Scenario::LoadAggregate(args) => family(data_dir, &args.common, out, async |d, probes| {
            shop::load_aggregate(d, args, probes).await
        }),
        Scenario::Http(args) => family(data_dir, &args.common, out, async |d, probes| {
            http::http(d, args, probes).await
        }),
        Scenario::QueryCache(args) => family(data_dir, &args.common, out, async |d, probes| {
            shop::query_cache(d, args, probes).await
        }),
        Scenario::Relay(args) => family(data_dir, &args.common, out, async |d, probes| {
            relay::relay(d, args, probes).await
        }),
        Scenario::Scale(args) => family(data_dir, &args.common, out, async |d, probes| {
            scale::scale(d, args, probes).await
        }),
        Scenario::Postgres(args) => {
            for result in block_on(postgres::postgres(args))? {
                print_result(out, &result)?;
            }
            Ok(())
        }
        Scenario::All(args) => all(data_dir, args, out),
    }
}

/// `strata bench disk`: the write ceiling alone, one line per group size.
fn disk(data_dir: &Path, args: &DiskArgs, out: &mut impl Write) -> Result<()> {
    let dir = args.dir.as_deref().unwrap_or(data_dir);
    for &events_per_sync in &args.events_per_sync {
        let shape = SyncShape {
            events_per_sync,
            record_bytes: args.record_bytes,
        };
        let probe = probe_sync(dir, shape, Duration::from_secs_f64(args.seconds))
            .with_context(|| format!("cannot measure the disk in {}", dir.display()))?;
        print_result(out, &ScenarioResult::of_probe(&probe))?;
    }
    Ok(())
}

/// Runs `scenario` with its probes and prints its results.
fn family(
    data_dir: &Path,
    common: &Common,
    out: &mut impl Write,
    scenario: impl AsyncFnOnce(&Path, &Probes) -> Result<Vec<ScenarioResult>>,
) -> Result<()> {
    let dir = common.dir.as_deref().unwrap_or(data_dir);
    let probes = Probes {
        dir: dir.to_owned(),
        duration: common.probe_duration(),
    };
    for result in block_on(scenario(dir, &probes))? {
        print_result(out, &result)?;
    }
    Ok(())
}

/// Runs `future` to completion from synchronous code: inside the caller's runtime (which
/// must be multi-threaded; its other threads keep running the tasks the scenario spawns),
/// or in one of its own when there is none.
fn block_on<T>(future: impl Future<Output = Result<T>>) -> Result<T> {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => tokio::task::block_in_place(|| handle.block_on(future)),
        Err(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("cannot start an async runtime for the benchmark")?
            .block_on(future),
    }
}

/// How long each probe runs at most with `all --quick`.
const QUICK_PROBE_SECONDS: f64 = 0.05;

/// Sizes of `strata bench all`: the sizes in docs/benchmarks.md, or tiny ones that only
/// check that every scenario works.
struct Plan {
    common: Common,
    bulk: BulkArgs,
    writers: WritersArgs,
    read_stream: ReadStreamArgs,
    read_all: ReadAllArgs,
    shop_commands: ShopCommandsArgs,
    lag: LagArgs,
    load_aggregate: LoadAggregateArgs,
    /// The long scenarios, when asked for.
    long: Option<LongPlan>,
}

struct LongPlan {
    open: OpenArgs,
    import: ImportArgs,
    rebuild: RebuildArgs,
    http: HttpArgs,
}

impl Plan {
    fn new(args: &AllArgs) -> Self {
        let quick = args.quick;
        let pick = |full: u64, tiny: u64| if quick { tiny } else { full };
        let seconds = if quick { 0.2 } else { 5.0 };
        let mut common = args.common.clone();
        if quick {
            common.probe_seconds = common.probe_seconds.min(QUICK_PROBE_SECONDS);
        }
        let long = (args.full || quick).then(|| LongPlan {
            open: OpenArgs {
                events: pick(10_000_000, 2_000),
                events_per_stream: 10,
                event_bytes: 256,
                opens: if quick { 1 } else { 3 },
                common: common.clone(),
            },
            import: ImportArgs {
                events: pick(1_000_000, 2_000),
                events_per_stream: 10,
                event_bytes: 256,
                common: common.clone(),
            },
            rebuild: RebuildArgs {
                events: pick(1_000_000, 2_000),
                products: pick(1000, 10),
                common: common.clone(),
            },
            http: HttpArgs {
                connections: pick(64, 4),
                seconds,
                products: pick(100, 4),
                event_bytes: 256,
                common: common.clone(),
            },
        });
        Self {
            bulk: BulkArgs {
                events: pick(1_000_000, 4_000),
                batch: 1000,
                event_bytes: 256,
                in_flight: vec![1, 4],
                expected: vec![Expect::Any, Expect::Exact],
                common: common.clone(),
            },
            writers: WritersArgs {
                writers: vec![pick(256, 8) as usize, 1],
                seconds,
                event_bytes: 256,
                expected: vec![Expect::Any, Expect::Exact],
                common: common.clone(),
            },
            read_stream: ReadStreamArgs {
                events: pick(10_000, 500),
                reads: if quick { 5 } else { 1000 },
                event_bytes: 256,
                common: common.clone(),
            },
            read_all: ReadAllArgs {
                events: pick(1_000_000, 3_000),
                events_per_stream: 10,
                page: 4096,
                passes: if quick { 1 } else { 3 },
                event_bytes: 256,
                common: common.clone(),
            },
            shop_commands: ShopCommandsArgs {
                clients: vec![pick(256, 8) as usize, 1],
                seconds,
                products: pick(100, 4),
                common: common.clone(),
            },
            lag: LagArgs {
                rate: if quick { 500.0 } else { 10_000.0 },
                seconds,
                products: pick(100, 4),
                common: common.clone(),
            },
            load_aggregate: LoadAggregateArgs {
                events: pick(10_000, 200),
                loads: if quick { 5 } else { 1000 },
                shape: vec![Shape::Receipts, Shape::Checkout],
                common: common.clone(),
            },
            common,
            long,
        }
    }
}

/// `strata bench all`: every quick scenario at the sizes in docs/benchmarks.md (with
/// `--full` also the long ones; with `--quick` everything, tiny). Each result probes its
/// own ceiling.
fn all(data_dir: &Path, args: &AllArgs, out: &mut impl Write) -> Result<()> {
    let p = Plan::new(args);
    let c = &p.common;
    family(data_dir, c, out, async |d, probes| {
        store::append_bulk(d, &p.bulk, probes).await
    })?;
    family(data_dir, c, out, async |d, probes| {
        store::writers(d, &p.writers, probes).await
    })?;
    family(data_dir, c, out, async |d, probes| {
        Ok(vec![store::read_stream(d, &p.read_stream, probes).await?])
    })?;
    family(data_dir, c, out, async |d, probes| {
        store::read_all(d, &p.read_all, probes).await
    })?;
    family(data_dir, c, out, async |d, probes| {
        shop::commands(d, &p.shop_commands, probes).await
    })?;
    family(data_dir, c, out, async |d, probes| {
        Ok(vec![shop::lag(d, &p.lag, probes).await?])
    })?;
    family(data_dir, c, out, async |d, probes| {
        shop::load_aggregate(d, &p.load_aggregate, probes).await
    })?;
    if let Some(long) = &p.long {
        family(data_dir, c, out, async |d, probes| {
            Ok(vec![open::open(d, &long.open, probes).await?])
        })?;
        family(data_dir, c, out, async |d, probes| {
            Ok(vec![importing::import(d, &long.import, probes).await?])
        })?;
        family(data_dir, c, out, async |d, probes| {
            Ok(vec![shop::rebuild(d, &long.rebuild, probes).await?])
        })?;
        family(data_dir, c, out, async |d, probes| {
            http::http(d, &long.http, probes).await
        })?;
    }
    Ok(())
}
