//! `strata bench`: performance scenarios, each printing one JSON line of results. Every
//! run first measures the disk in the same process (the batch ceiling and the latency of
//! one fdatasync), prints that as a `disk_ceiling` line, and reports every result in
//! proportion to it. Benchmarks measure; they never assert a time.

mod args;
mod disk;
mod fixtures;
mod http;
mod importing;
mod load;
mod open;
mod report;
mod shop;
mod stats;
mod store;

#[cfg(test)]
mod tests;

use std::future::Future;
use std::io::Write;
use std::path::Path;

use anyhow::Context as _;

use crate::args::{BenchScenario, DiskArgs};

pub(crate) use args::{
    AllArgs, BulkArgs, Common, Expect, HttpArgs, ImportArgs, LagArgs, LoadAggregateArgs, OpenArgs,
    OpenChildArgs, ReadAllArgs, ReadStreamArgs, RebuildArgs, Shape, ShopCommandsArgs, WritersArgs,
};
pub(crate) use disk::measure_disk_ceiling;
#[cfg(test)]
pub(crate) use disk::percentile_ms;
pub(crate) use report::{ScenarioResult, print_result};

use report::Baseline;

/// Runs one scenario (or `all`) and prints its result lines.
pub(crate) fn run(
    data_dir: &Path,
    scenario: &BenchScenario,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match scenario {
        BenchScenario::Disk(args) => disk(data_dir, args, out),
        BenchScenario::OpenChild(args) => open::child(args, out),
        BenchScenario::AppendBulk(args) => family(data_dir, &args.common, out, async |d, b| {
            store::append_bulk(d, args, b).await
        }),
        BenchScenario::Writers(args) => family(data_dir, &args.common, out, async |d, b| {
            store::writers(d, args, b).await
        }),
        BenchScenario::ReadStream(args) => family(data_dir, &args.common, out, async |d, b| {
            Ok(vec![store::read_stream(d, args, b).await?])
        }),
        BenchScenario::ReadAll(args) => family(data_dir, &args.common, out, async |d, b| {
            store::read_all(d, args, b).await
        }),
        BenchScenario::Open(args) => family(data_dir, &args.common, out, async |d, b| {
            Ok(vec![open::open(d, args, b).await?])
        }),
        BenchScenario::Import(args) => family(data_dir, &args.common, out, async |d, b| {
            Ok(vec![importing::import(d, args, b).await?])
        }),
        BenchScenario::ShopCommands(args) => family(data_dir, &args.common, out, async |d, b| {
            shop::commands(d, args, b).await
        }),
        BenchScenario::Rebuild(args) => family(data_dir, &args.common, out, async |d, b| {
            Ok(vec![shop::rebuild(d, args, b).await?])
        }),
        BenchScenario::Lag(args) => family(data_dir, &args.common, out, async |d, b| {
            Ok(vec![shop::lag(d, args, b).await?])
        }),
        BenchScenario::LoadAggregate(args) => family(data_dir, &args.common, out, async |d, b| {
            shop::load_aggregate(d, args, b).await
        }),
        BenchScenario::Http(args) => family(data_dir, &args.common, out, async |d, b| {
            http::http(d, args, b).await
        }),
        BenchScenario::All(args) => all(data_dir, args, out),
    }
}

fn disk(data_dir: &Path, args: &DiskArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let dir = args.dir.as_deref().unwrap_or(data_dir);
    let ceiling = measure_disk_ceiling(dir, args.rounds)
        .with_context(|| format!("cannot measure the disk ceiling in {}", dir.display()))?;
    print_result(out, &ScenarioResult::of_ceiling(&ceiling))
}

/// Measures the disk, prints it, runs `scenario` against it and prints its results.
fn family(
    data_dir: &Path,
    common: &Common,
    out: &mut impl Write,
    scenario: impl AsyncFnOnce(&Path, &Baseline) -> anyhow::Result<Vec<ScenarioResult>>,
) -> anyhow::Result<()> {
    let dir = common.dir.as_deref().unwrap_or(data_dir);
    let baseline = Baseline::measure(dir, common)?;
    print_result(out, &ScenarioResult::of_baseline(&baseline))?;
    for result in block_on(scenario(dir, &baseline))? {
        print_result(out, &result)?;
    }
    Ok(())
}

/// Runs `future` to completion from synchronous code inside the command's runtime (the
/// runtime's other threads keep running the tasks it spawns).
fn block_on<F: Future>(future: F) -> F::Output {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) => tokio::task::block_in_place(|| handle.block_on(future)),
        Err(_) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("an async runtime for the benchmark")
            .block_on(future),
    }
}

/// Sizes of `strata bench all`: the issues' sizes, or tiny ones that only check that
/// every scenario works.
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
            common.ceiling_rounds = common.ceiling_rounds.min(2);
            common.fsync_rounds = common.fsync_rounds.min(5);
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
                reads: if quick { 5 } else { 100 },
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
                loads: if quick { 5 } else { 200 },
                shape: vec![Shape::Receipts, Shape::Checkout],
                common: common.clone(),
            },
            common,
            long,
        }
    }
}

/// `strata bench all`: every quick scenario at the issues' sizes (with `--full` also the
/// long ones; with `--quick` everything, tiny). Each family measures the disk again just
/// before it runs and prints that line first.
fn all(data_dir: &Path, args: &AllArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let p = Plan::new(args);
    let c = &p.common;
    family(data_dir, c, out, async |d, b| {
        store::append_bulk(d, &p.bulk, b).await
    })?;
    family(data_dir, c, out, async |d, b| {
        store::writers(d, &p.writers, b).await
    })?;
    family(data_dir, c, out, async |d, b| {
        Ok(vec![store::read_stream(d, &p.read_stream, b).await?])
    })?;
    family(data_dir, c, out, async |d, b| {
        store::read_all(d, &p.read_all, b).await
    })?;
    family(data_dir, c, out, async |d, b| {
        shop::commands(d, &p.shop_commands, b).await
    })?;
    family(data_dir, c, out, async |d, b| {
        Ok(vec![shop::lag(d, &p.lag, b).await?])
    })?;
    family(data_dir, c, out, async |d, b| {
        shop::load_aggregate(d, &p.load_aggregate, b).await
    })?;
    if let Some(long) = &p.long {
        family(data_dir, c, out, async |d, b| {
            Ok(vec![open::open(d, &long.open, b).await?])
        })?;
        family(data_dir, c, out, async |d, b| {
            Ok(vec![importing::import(d, &long.import, b).await?])
        })?;
        family(data_dir, c, out, async |d, b| {
            Ok(vec![shop::rebuild(d, &long.rebuild, b).await?])
        })?;
        family(data_dir, c, out, async |d, b| {
            http::http(d, &long.http, b).await
        })?;
    }
    Ok(())
}
